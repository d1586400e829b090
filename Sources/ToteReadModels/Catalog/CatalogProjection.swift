import EventStore
import SwiftProtobuf
import ToteDomain
import ToteProto

/// The catalog facets read model: published products with posting lists per (category, attribute,
/// value), text tokens, price buckets, the in-stock set, sort indexes and product summaries stored
/// as encoded `tote.v1.ProductSummary` bytes. Fed by `product-`, `category-`, `sku-` and `stock-`
/// events; everything else is ignored. Layout: ``CatalogLayout``.
///
/// Every change to a product recomputes the set of keys it belongs in from its record (and its
/// categories' ancestors and its SKUs' stock), and applies the difference to the set stored in
/// ``CatalogLayout/memberships``: replaying the same events always gives the same bytes.
public struct CatalogProjection: Projection {
    public let name = "catalog"
    public var databases: [String] { CatalogLayout.all }

    public init() {}

    public func apply(_ event: RecordedEvent, to store: inout some ReadModelWriter) throws {
        try apply(stream: event.stream, data: event.data, to: &store)
    }

    /// The projection over a stream name and the event's protobuf envelope bytes (what
    /// ``apply(_:to:)`` uses; also handy for generated events that never went through the log).
    public func apply<W: ReadModelWriter>(stream: String, data: [UInt8], to store: inout W) throws {
        if stream.hasPrefix("product-") {
            try applyProduct(try Tote_V1_ProductEvent(serializedBytes: data), &store)
        } else if stream.hasPrefix("category-") {
            try applyCategory(try Tote_V1_CategoryEvent(serializedBytes: data), &store)
        } else if stream.hasPrefix("stock-") {
            try applyStock(try Tote_V1_StockItemEvent(serializedBytes: data), &store)
        } else if stream.hasPrefix("sku-") {
            let e = try Tote_V1_SkuClaimEvent(serializedBytes: data)
            if case .skuClaimed(let c)? = e.event, let id = try existingID(c.productID, store) {
                try store.put(CatalogLayout.skus, Array(c.sku.utf8), CatalogLayout.u32(id))
            }
        }
    }

    // MARK: Products

    private func applyProduct<W: ReadModelWriter>(_ event: Tote_V1_ProductEvent, _ store: inout W) throws {
        let productID: String
        switch event.event {
        case .productCreated(let e)?: productID = e.productID
        case .productDetailsUpdated(let e)?: productID = e.productID
        case .variantAdded(let e)?: productID = e.productID
        case .productPricesSet(let e)?: productID = e.productID
        case .productPublished(let e)?: productID = e.productID
        case .productArchived(let e)?: productID = e.productID
        case nil: return
        }
        let id = try allocateID(productID, &store)
        var record = try Self.record(id, store) ?? Tote_V1_Product()
        record.productID = productID
        switch event.event {
        case .productCreated(let e)?:
            record.status = .draft
            record.details = e.details
            record.createdAt = e.createdAt
        case .productDetailsUpdated(let e)?:
            record.details = e.details
        case .variantAdded(let e)?:
            if let i = record.variants.firstIndex(where: { $0.sku == e.variant.sku }) {
                record.variants[i] = e.variant
            } else {
                record.variants.append(e.variant)
            }
            try store.put(CatalogLayout.skus, Array(e.variant.sku.utf8), CatalogLayout.u32(id))
        case .productPricesSet(let e)?:
            // Only a currency's default slot (base prices and its default list) is searchable.
            guard e.customerGroup.isEmpty else { return }
            if record.prices.isEmpty { record.prices = [Tote_V1_ProductPrices()] }
            var entries = record.prices[0].prices.filter { p in
                !(p.price.currency == e.currency && (e.removedSkus.contains(p.sku) || e.prices.contains { $0.sku == p.sku }))
            }
            for p in e.prices {
                var p = p
                p.price.currency = e.currency
                entries.append(p)
            }
            entries.sort { ($0.price.currency, $0.sku) < ($1.price.currency, $1.sku) }
            record.prices[0].prices = entries
        case .productPublished(let e)?:
            record.status = .published
            if !record.hasPublishedAt { record.publishedAt = e.publishedAt }
        case .productArchived?:
            record.status = .archived
        case nil:
            return
        }
        try store.put(CatalogLayout.products, CatalogLayout.u32(id), try record.serializedBytes())
        try refresh(id, record: record, &store)
    }

    /// The internal id of `productID`, allocating the next one on first sight.
    private func allocateID<W: ReadModelWriter>(_ productID: String, _ store: inout W) throws -> UInt32 {
        if let id = try existingID(productID, store) { return id }
        let next = try store.get(CatalogLayout.meta, Array("next_id".utf8)).map { CatalogLayout.readU32($0) } ?? 1
        try store.put(CatalogLayout.meta, Array("next_id".utf8), CatalogLayout.u32(next + 1))
        try store.put(CatalogLayout.productIDs, Array(productID.utf8), CatalogLayout.u32(next))
        return next
    }

    private func existingID(_ productID: String, _ store: some ReadModelReader) throws -> UInt32? {
        try store.get(CatalogLayout.productIDs, Array(productID.utf8)).map { CatalogLayout.readU32($0) }
    }

    static func record(_ id: UInt32, _ store: some ReadModelReader) throws -> Tote_V1_Product? {
        try store.get(CatalogLayout.products, CatalogLayout.u32(id)).map { try Tote_V1_Product(serializedBytes: $0) }
    }

    // MARK: Categories

    private func applyCategory<W: ReadModelWriter>(_ event: Tote_V1_CategoryEvent, _ store: inout W) throws {
        switch event.event {
        case .categoryCreated(let e)?:
            var c = Tote_V1_Category()
            c.slug = e.slug.isEmpty ? e.categoryID : e.slug
            c.name = e.name
            c.parentSlug = e.parentID
            c.position = e.position
            c.ancestorSlugs = e.ancestorIds
            try store.put(CatalogLayout.categories, Array(e.categoryID.utf8), try c.serializedBytes())
            try store.put(CatalogLayout.categorySlugs, Array(c.slug.utf8), Array(e.categoryID.utf8))
            try refreshProducts(inCategory: e.categoryID, &store)
        case .categoryRenamed(let e)?:
            guard var c = try Self.category(e.categoryID, store) else { return }
            c.name = e.name
            try store.put(CatalogLayout.categories, Array(e.categoryID.utf8), try c.serializedBytes())
        case .categoryMoved(let e)?:
            guard var c = try Self.category(e.categoryID, store) else { return }
            c.parentSlug = e.parentID
            c.position = e.position
            c.ancestorSlugs = e.ancestorIds
            try store.put(CatalogLayout.categories, Array(e.categoryID.utf8), try c.serializedBytes())
            // Descendants keep their path below the moved category under its new ancestors.
            var descendants: [(String, Tote_V1_Category)] = []
            try store.scan(CatalogLayout.categories, prefix: [], from: nil, reverse: false) { k, v in
                let d = try Tote_V1_Category(serializedBytes: Array(v))
                if let i = d.ancestorSlugs.firstIndex(of: e.categoryID) {
                    var moved = d
                    moved.ancestorSlugs = e.ancestorIds + d.ancestorSlugs[i...]
                    descendants.append((String(decoding: k, as: UTF8.self), moved))
                }
                return true
            }
            for (id, d) in descendants { try store.put(CatalogLayout.categories, Array(id.utf8), try d.serializedBytes()) }
            try refreshProducts(inCategory: e.categoryID, &store)
        case nil:
            return
        }
    }

    static func category(_ id: String, _ store: some ReadModelReader) throws -> Tote_V1_Category? {
        try store.get(CatalogLayout.categories, Array(id.utf8)).map { try Tote_V1_Category(serializedBytes: $0) }
    }

    /// Recomputes every published product listed in `category` or below it (its `c<cat>\0` list).
    private func refreshProducts<W: ReadModelWriter>(inCategory category: String, _ store: inout W) throws {
        let list = try Postings.read(store, CatalogLayout.categoryAll(category))
        for id in list.ids {
            if let record = try Self.record(id, store) { try refresh(id, record: record, &store) }
        }
    }

    // MARK: Stock

    private func applyStock<W: ReadModelWriter>(_ event: Tote_V1_StockItemEvent, _ store: inout W) throws {
        let key: Tote_V1_StockItemKey
        var onHand: Int64?
        var reservedDelta: Int64 = 0
        switch event.event {
        case .stockReceived(let e)?: key = e.key; onHand = e.onHandAfter
        case .stockAdjusted(let e)?: key = e.key; onHand = e.onHandAfter
        case .stockReserved(let e)?: key = e.key; reservedDelta = e.reservation.quantity
        case .reservationExtended?: return
        case .reservationReleased(let e)?: key = e.key; reservedDelta = -e.quantity
        case .reservationCommitted(let e)?: key = e.key; reservedDelta = -e.quantity; onHand = e.onHandAfter
        case .reservationExpired(let e)?: key = e.key; reservedDelta = -e.quantity
        case nil: return
        }
        let itemKey = CatalogLayout.stockItem(key.sku, key.locationID)
        var (hand, reserved) = try store.withValue(CatalogLayout.stock, itemKey) { b in
            (CatalogLayout.readSortable(b, at: 0), CatalogLayout.readSortable(b, at: 8))
        } ?? (0, 0)
        let wasAvailable = hand - reserved > 0
        if let onHand { hand = onHand }
        reserved = max(0, reserved + reservedDelta)
        try store.put(CatalogLayout.stock, itemKey, CatalogLayout.sortable(hand) + CatalogLayout.sortable(reserved))
        let isAvailable = hand - reserved > 0
        guard wasAvailable != isAvailable else { return }
        let skuKey = Array(key.sku.utf8)
        let before = try store.get(CatalogLayout.skuStock, skuKey).map { CatalogLayout.readU32($0) } ?? 0
        let after = isAvailable ? before + 1 : (before > 0 ? before - 1 : 0)
        if after == 0 { try store.delete(CatalogLayout.skuStock, skuKey) } else { try store.put(CatalogLayout.skuStock, skuKey, CatalogLayout.u32(after)) }
        if (before == 0) != (after == 0), let id = try store.get(CatalogLayout.skus, skuKey).map({ CatalogLayout.readU32($0) }),
           let record = try Self.record(id, store) {
            try refresh(id, record: record, &store)
        }
    }

    // MARK: Derived keys

    /// Which database a membership entry lives in.
    enum Target: UInt8 { case posting = 0, sort = 1, summary = 2, prices = 3 }

    struct Entry: Hashable, Comparable {
        var target: Target
        var key: [UInt8]
        static func < (l: Entry, r: Entry) -> Bool {
            l.target.rawValue != r.target.rawValue ? l.target.rawValue < r.target.rawValue : l.key.lexicographicallyPrecedes(r.key)
        }
    }

    /// Brings every derived key of product `id` in line with `record`.
    private func refresh<W: ReadModelWriter>(_ id: UInt32, record: Tote_V1_Product, _ store: inout W) throws {
        let (entries, values) = try Self.derive(id, record, store)
        let idKey = CatalogLayout.u32(id)
        let old = try store.get(CatalogLayout.memberships, idKey).map(Self.decodeMemberships) ?? []
        let oldSet = Set(old), newSet = Set(entries)
        for e in old where !newSet.contains(e) {
            switch e.target {
            case .posting:
                try Postings.remove(id, from: e.key, &store)
            case .sort: try store.delete(CatalogLayout.sortKeys, e.key)
            case .summary: try store.delete(CatalogLayout.summaries, e.key)
            case .prices: try store.delete(CatalogLayout.prices, e.key)
            }
        }
        for e in entries {
            switch e.target {
            case .posting:
                guard !oldSet.contains(e) else { continue }
                try Postings.insert(id, into: e.key, &store)
            case .sort:
                if !oldSet.contains(e) { try store.put(CatalogLayout.sortKeys, e.key, []) }
            case .summary:
                let v = values[e] ?? []
                if try store.get(CatalogLayout.summaries, e.key) != v { try store.put(CatalogLayout.summaries, e.key, v) }
            case .prices:
                let v = values[e] ?? []
                if try store.get(CatalogLayout.prices, e.key) != v { try store.put(CatalogLayout.prices, e.key, v) }
            }
        }
        if entries.isEmpty {
            try store.delete(CatalogLayout.memberships, idKey)
        } else if old != entries {
            try store.put(CatalogLayout.memberships, idKey, Self.encodeMemberships(entries))
        }
    }

    /// The keys a product belongs in (sorted), and the values of its summary and price entries.
    /// Nothing unless it is published.
    static func derive(_ id: UInt32, _ p: Tote_V1_Product, _ store: some ReadModelReader) throws -> ([Entry], [Entry: [UInt8]]) {
        guard p.status == .published else { return ([], [:]) }
        var entries = Set<Entry>()
        var values: [Entry: [UInt8]] = [:]
        let d = p.details

        // Categories: each listed category and its ancestors, plus "" (the whole catalog).
        var closure = Set<String>([""])
        for c in d.categorySlugs {
            closure.insert(c)
            if let cat = try category(c, store) { closure.formUnion(cat.ancestorSlugs) }
        }
        // Facet values: product attributes, variant attributes and variant option values.
        var facetValues: [String: Set<[UInt8]>] = [:]
        for a in d.attributes {
            for v in a.values { if let value = ProductDecider.AttributeValue(v) { facetValues[a.key, default: []].insert(CatalogLayout.encode(value)) } }
        }
        for variant in p.variants {
            for a in variant.attributes {
                for v in a.values { if let value = ProductDecider.AttributeValue(v) { facetValues[a.key, default: []].insert(CatalogLayout.encode(value)) } }
            }
            for o in variant.optionValues where d.attributes.first(where: { $0.key == o.option }) == nil {
                facetValues[o.option, default: []].insert(CatalogLayout.encode(.text(o.value)))
            }
        }
        for c in closure {
            entries.insert(Entry(target: .posting, key: CatalogLayout.categoryAll(c)))
            for (attribute, vs) in facetValues {
                for v in vs { entries.insert(Entry(target: .posting, key: CatalogLayout.categoryValue(c, attribute, v))) }
            }
        }
        // Text: name, brand, attribute and option values, search keywords.
        var text = [d.name, d.brand] + d.searchKeywords
        for a in d.attributes { for v in a.values { if case .stringValue(let s)? = v.value { text.append(s) } } }
        for variant in p.variants {
            for o in variant.optionValues { text.append(o.value) }
            for a in variant.attributes { for v in a.values { if case .stringValue(let s)? = v.value { text.append(s) } } }
        }
        for t in text { for token in TextNormalizer.tokens(t) { entries.insert(Entry(target: .posting, key: CatalogLayout.token(token))) } }

        // Stock.
        var inStock = false
        for v in p.variants where try store.get(CatalogLayout.skuStock, Array(v.sku.utf8)) != nil { inStock = true; break }
        if inStock { entries.insert(Entry(target: .posting, key: CatalogLayout.inStock)) }

        // Prices per currency (the variants' default-slot prices).
        let skus = Set(p.variants.map(\.sku))
        var byCurrency: [String: [Tote_V1_VariantPrice]] = [:]
        for price in p.prices.first?.prices ?? [] where skus.contains(price.sku) {
            byCurrency[price.price.currency, default: []].append(price)
        }
        let publishedAt = p.publishedAt.unixMicros
        entries.insert(Entry(target: .sort, key: CatalogLayout.newest(publishedAt, id)))
        var summary = Tote_V1_ProductSummary()
        summary.productID = p.productID
        summary.slug = d.slug
        summary.name = d.name
        summary.brand = d.brand
        summary.imageURL = d.media.first?.url ?? ""
        summary.inStock = inStock
        summary.publishedAt = p.publishedAt
        if let primary = d.categorySlugs.first { summary.primaryCategorySlug = try category(primary, store)?.slug ?? primary }
        summary.variantCount = UInt32(p.variants.count)
        let plain = Entry(target: .summary, key: CatalogLayout.summary(id, ""))
        entries.insert(plain)
        values[plain] = try summary.serializedBytes()
        for (currency, list) in byCurrency {
            let amounts = list.map(\.price.minorUnits).sorted()
            for a in Set(amounts) { entries.insert(Entry(target: .posting, key: CatalogLayout.priceBucket(currency, CatalogLayout.bucket(a)))) }
            entries.insert(Entry(target: .sort, key: CatalogLayout.minPricePrefix(currency) + CatalogLayout.sortable(amounts.first!) + CatalogLayout.u32(id)))
            entries.insert(Entry(target: .sort, key: CatalogLayout.maxPricePrefix(currency) + CatalogLayout.sortable(amounts.last!) + CatalogLayout.u32(id)))
            let priceEntry = Entry(target: .prices, key: CatalogLayout.priceList(currency, id))
            entries.insert(priceEntry)
            values[priceEntry] = amounts.flatMap(CatalogLayout.sortable)
            let cheapest = list.min { ($0.price.minorUnits, $0.sku) < ($1.price.minorUnits, $1.sku) }!
            let dearest = list.max { ($0.price.minorUnits, $0.sku) < ($1.price.minorUnits, $1.sku) }!
            var s = summary
            s.minPrice = cheapest.price
            s.maxPrice = dearest.price
            if cheapest.hasCompareAtPrice { s.compareAtPrice = cheapest.compareAtPrice }
            let e = Entry(target: .summary, key: CatalogLayout.summary(id, currency))
            entries.insert(e)
            values[e] = try s.serializedBytes()
        }
        return (entries.sorted(), values)
    }

    static func encodeMemberships(_ entries: [Entry]) -> [UInt8] {
        var out: [UInt8] = []
        for e in entries {
            out.append(e.target.rawValue)
            out.append(UInt8(e.key.count >> 8))
            out.append(UInt8(e.key.count & 0xff))
            out.append(contentsOf: e.key)
        }
        return out
    }

    static func decodeMemberships(_ bytes: [UInt8]) -> [Entry] {
        var out: [Entry] = []
        var i = 0
        while i + 3 <= bytes.count {
            let target = Target(rawValue: bytes[i]) ?? .posting
            let n = Int(bytes[i + 1]) << 8 | Int(bytes[i + 2])
            i += 3
            guard i + n <= bytes.count else { break }
            out.append(Entry(target: target, key: Array(bytes[i..<(i + n)])))
            i += n
        }
        return out
    }
}
