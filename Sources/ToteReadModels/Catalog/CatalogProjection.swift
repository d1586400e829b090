import EventStore
import Glibc
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
    /// 2: posting chunks of 128 ids or more are stored as 512-byte bitsets (``PostingChunk``).
    public var layoutVersion: Int { 2 }
    public var databases: [String] { CatalogLayout.all }

    public init() {}

    public func apply(_ event: RecordedEvent, to store: inout some ReadModelWriter) throws {
        try apply(stream: event.stream, data: event.data, to: &store)
    }

    /// Applies the events of a batch, then brings every touched product's derived keys in line
    /// once, and rewrites each touched posting chunk once. Gives the same bytes as applying the
    /// events one by one (the derived keys are a function of the final records, categories and
    /// stock; see ``Batch``).
    public func apply(batch events: ArraySlice<RecordedEvent>, to store: inout some ReadModelWriter) throws {
        try applyBatch(events, to: &store)
    }

    private func applyBatch<W: ReadModelWriter>(_ events: ArraySlice<RecordedEvent>, to store: inout W) throws {
        // The projector's writers (in the transaction, or staging beside it): run the
        // specialised code (the generic path goes through witness tables and unspecialised
        // generics for every key).
        if W.self == LMDBReadModelWriter.self {
            try withUnsafeMutablePointer(to: &store) { pointer in
                try pointer.withMemoryRebound(to: LMDBReadModelWriter.self, capacity: 1) { lmdb in
                    try applyEvents(events, to: &lmdb.pointee)
                }
            }
        } else if W.self == StagingWriter.self {
            try withUnsafeMutablePointer(to: &store) { pointer in
                try pointer.withMemoryRebound(to: StagingWriter.self, capacity: 1) { staging in
                    try applyEvents(events, to: &staging.pointee)
                }
            }
        } else {
            try applyEvents(events, to: &store)
        }
    }

    private func applyEvents<W: ReadModelWriter>(_ events: ArraySlice<RecordedEvent>, to store: inout W) throws {
        var batch = Batch()
        for event in events { try stage(stream: event.stream, data: event.data, &store, &batch) }
        try flush(&batch, &store)
    }

    /// The projection over a stream name and the event's protobuf envelope bytes (what
    /// ``apply(_:to:)`` uses; also handy for generated events that never went through the log).
    public func apply<W: ReadModelWriter>(stream: String, data: [UInt8], to store: inout W) throws {
        var batch = Batch()
        try stage(stream: stream, data: data, &store, &batch)
        try flush(&batch, &store)
    }

    /// What a batch has changed but not yet written: the product records it touched (written
    /// once, at the end) and the products whose derived keys must be recomputed.
    ///
    /// Why deferring gives the bytes of event-by-event application: after every event, a
    /// product's stored memberships equal ``derive(_:_:_:)`` of its current record, categories and
    /// SKU availability (every event that can change those recomputes the products concerned).
    /// So the derived databases are a function of the final state, and recomputing at the end of
    /// the batch every product an event named (plus the products listed under a category that was
    /// created or moved, read before any posting of the batch is written) yields the same bytes;
    /// recomputing a product whose inputs did not change writes nothing. Everything else (records,
    /// ids, categories, SKUs, stock) is written as each event arrives, in the same order.
    struct Batch {
        /// Records changed in this batch (not yet stored).
        var records: [UInt32: Tote_V1_Product] = [:]
        /// Products to recompute at the end.
        var dirty: Set<UInt32> = []
        /// Posting changes gathered by ``CatalogProjection/flush(_:_:)``, by chunk key.
        var postings: [ByteKey: ChunkChange] = [:]

        /// Whether `id` has a record (without decoding it).
        func hasRecord(_ id: UInt32, _ store: some ReadModelReader) throws -> Bool {
            if records[id] != nil { return true }
            return try store.withValue(CatalogLayout.products, CatalogLayout.u32(id)) { _ in true } ?? false
        }

        /// The current record of `id`: this batch's version, else the stored one.
        func record(_ id: UInt32, _ store: some ReadModelReader) throws -> Tote_V1_Product? {
            if let r = records[id] { return r }
            return try CatalogProjection.record(id, store)
        }
    }

    /// Ids to add to and remove from one posting chunk (each ascending; disjoint, since a product
    /// is recomputed once per batch).
    struct ChunkChange {
        var adds: [UInt32] = []
        var removes: [UInt32] = []
    }

    /// Applies one event's direct changes and notes which products to recompute.
    private func stage<W: ReadModelWriter>(stream: String, data: [UInt8], _ store: inout W, _ batch: inout Batch) throws {
        if stream.hasPrefix("product-") {
            try applyProduct(try Tote_V1_ProductEvent(serializedBytes: data), &store, &batch)
        } else if stream.hasPrefix("category-") {
            try applyCategory(try Tote_V1_CategoryEvent(serializedBytes: data), &store, &batch)
        } else if stream.hasPrefix("stock-") {
            try applyStock(try Tote_V1_StockItemEvent(serializedBytes: data), &store, &batch)
        } else if stream.hasPrefix("sku-") {
            let e = try Tote_V1_SkuClaimEvent(serializedBytes: data)
            if case .skuClaimed(let c)? = e.event, let id = try existingID(c.productID, store) {
                try store.put(CatalogLayout.skus, Array(c.sku.utf8), CatalogLayout.u32(id))
            }
        }
    }

    /// Writes the batch's records, recomputes its products (in id order) and rewrites each
    /// touched posting chunk once.
    private func flush<W: ReadModelWriter>(_ batch: inout Batch, _ store: inout W) throws {
        guard !batch.dirty.isEmpty else { return }
        var categories: [String: Tote_V1_Category?] = [:]
        for id in batch.dirty.sorted() {
            guard let record = try batch.record(id, store) else { continue }
            if batch.records[id] != nil { try store.put(CatalogLayout.products, CatalogLayout.u32(id), try record.serializedBytes()) }
            try refresh(id, record: record, &store, &batch, categories: &categories)
        }
        // In key order: LMDB's puts are cheapest in order.
        for (key, change) in batch.postings.sorted(by: { CatalogLayout.precedes($0.key.bytes, $1.key.bytes) }) {
            try Postings.apply(change, to: key.bytes, &store)
        }
        batch = Batch()
    }

    // MARK: Products

    private func applyProduct<W: ReadModelWriter>(_ event: Tote_V1_ProductEvent, _ store: inout W, _ batch: inout Batch) throws {
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
        // Only a currency's default slot (base prices and its default list) is searchable: a
        // customer group's prices change nothing (the id is allocated all the same).
        if case .productPricesSet(let e)? = event.event, !e.customerGroup.isEmpty { return }
        // Taken out of the batch while it changes, so the message storage is not copied.
        var record = try batch.records.removeValue(forKey: id) ?? CatalogProjection.record(id, store) ?? Tote_V1_Product()
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
            break  // returned above
        }
        batch.records[id] = record
        batch.dirty.insert(id)
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

    private func applyCategory<W: ReadModelWriter>(_ event: Tote_V1_CategoryEvent, _ store: inout W, _ batch: inout Batch) throws {
        switch event.event {
        case .categoryCreated(let e)?:
            let c = Tote_V1_Category(record: e)
            try store.put(CatalogLayout.categories, Array(e.categoryID.utf8), try c.serializedBytes())
            try store.put(CatalogLayout.categorySlugs, Array(c.slug.utf8), Array(e.categoryID.utf8))
            try refreshProducts(inCategory: e.categoryID, store, &batch)
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
            try refreshProducts(inCategory: e.categoryID, store, &batch)
        case nil:
            return
        }
    }

    static func category(_ id: String, _ store: some ReadModelReader) throws -> Tote_V1_Category? {
        try store.get(CatalogLayout.categories, Array(id.utf8)).map { try Tote_V1_Category(serializedBytes: $0) }
    }

    /// Marks for recomputation every published product listed in `category` or below it (its
    /// `c<cat>\0` list as stored before this batch; products the batch touched are marked already).
    private func refreshProducts(inCategory category: String, _ store: some ReadModelReader, _ batch: inout Batch) throws {
        let list = try Postings.read(store, CatalogLayout.categoryAll(category))
        for id in list.ids { batch.dirty.insert(id) }
    }

    // MARK: Stock

    private func applyStock<W: ReadModelWriter>(_ event: Tote_V1_StockItemEvent, _ store: inout W, _ batch: inout Batch) throws {
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
           try batch.hasRecord(id, store) {
            batch.dirty.insert(id)
        }
    }

    // MARK: Derived keys

    /// Which database a membership entry lives in.
    enum Target: UInt8 { case posting = 0, sort = 1, summary = 2, prices = 3 }

    struct Entry: Hashable, Comparable {
        var target: Target
        var key: [UInt8]
        static func < (l: Entry, r: Entry) -> Bool {
            l.target.rawValue != r.target.rawValue ? l.target.rawValue < r.target.rawValue : CatalogLayout.precedes(l.key, r.key)
        }
    }

    /// Brings every derived key of product `id` in line with `record`: a merge of the sorted
    /// stored memberships with the sorted derived ones (no hashing); posting changes are gathered
    /// in `batch`, the rest written at once.
    private func refresh<W: ReadModelWriter>(_ id: UInt32, record: Tote_V1_Product, _ store: inout W, _ batch: inout Batch, categories: inout [String: Tote_V1_Category?]) throws {
        let (entries, values) = try Self.derive(id, record, store, categories: &categories)
        let idKey = CatalogLayout.u32(id)
        var old = try store.get(CatalogLayout.memberships, idKey).map(Self.decodeMemberships) ?? []
        if !old.isStrictlyAscending { old = Array(Set(old)).sorted() }
        func value(_ e: Entry) -> [UInt8] { values.first { $0.0 == e }?.1 ?? [] }
        var i = 0, j = 0
        while i < old.count || j < entries.count {
            if j == entries.count || (i < old.count && old[i] < entries[j]) {
                let e = old[i]
                i += 1
                switch e.target {
                case .posting: batch.postings[ByteKey(Postings.chunkKey(e.key, id)), default: ChunkChange()].removes.append(id)
                case .sort: try store.delete(CatalogLayout.sortKeys, e.key)
                case .summary: try store.delete(CatalogLayout.summaries, e.key)
                case .prices: try store.delete(CatalogLayout.prices, e.key)
                }
                continue
            }
            let e = entries[j]
            let isNew = i == old.count || e < old[i]
            j += 1
            if !isNew { i += 1 }
            switch e.target {
            case .posting:
                if isNew { batch.postings[ByteKey(Postings.chunkKey(e.key, id)), default: ChunkChange()].adds.append(id) }
            case .sort:
                if isNew { try store.put(CatalogLayout.sortKeys, e.key, []) }
            case .summary:
                let v = value(e)
                if try !store.equals(CatalogLayout.summaries, e.key, v) { try store.put(CatalogLayout.summaries, e.key, v) }
            case .prices:
                let v = value(e)
                if try !store.equals(CatalogLayout.prices, e.key, v) { try store.put(CatalogLayout.prices, e.key, v) }
            }
        }
        if entries.isEmpty {
            try store.delete(CatalogLayout.memberships, idKey)
        } else if old != entries {
            try store.put(CatalogLayout.memberships, idKey, Self.encodeMemberships(entries))
        }
    }

    /// The keys a product belongs in (sorted, unique), and the values of its summary and price
    /// entries. Nothing unless it is published. `categories` caches category records (valid
    /// while no category event is applied).
    static func derive(_ id: UInt32, _ p: Tote_V1_Product, _ store: some ReadModelReader, categories: inout [String: Tote_V1_Category?]) throws -> ([Entry], [(Entry, [UInt8])]) {
        guard p.status == .published else { return ([], []) }
        var entries: [Entry] = []
        entries.reserveCapacity(64)
        var values: [(Entry, [UInt8])] = []
        let d = p.details
        func category(_ c: String) throws -> Tote_V1_Category? {
            if let cached = categories[c] { return cached }
            let found = try CatalogProjection.category(c, store)
            categories[c] = found
            return found
        }

        // Categories: each listed category and its ancestors, plus "" (the whole catalog).
        var closure = Set<String>([""])
        for c in d.categorySlugs {
            closure.insert(c)
            if let cat = try category(c) { closure.formUnion(cat.ancestorSlugs) }
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
            entries.append(Entry(target: .posting, key: CatalogLayout.categoryAll(c)))
            for (attribute, vs) in facetValues {
                for v in vs { entries.append(Entry(target: .posting, key: CatalogLayout.categoryValue(c, attribute, v))) }
            }
        }
        // Text: name, brand, attribute and option values, search keywords.
        var text = [d.name, d.brand] + d.searchKeywords
        for a in d.attributes { for v in a.values { if case .stringValue(let s)? = v.value { text.append(s) } } }
        for variant in p.variants {
            for o in variant.optionValues { text.append(o.value) }
            for a in variant.attributes { for v in a.values { if case .stringValue(let s)? = v.value { text.append(s) } } }
        }
        for t in text { for token in TextNormalizer.tokens(t) { entries.append(Entry(target: .posting, key: CatalogLayout.token(token))) } }

        // Stock.
        var inStock = false
        for v in p.variants where try store.get(CatalogLayout.skuStock, Array(v.sku.utf8)) != nil { inStock = true; break }
        if inStock { entries.append(Entry(target: .posting, key: CatalogLayout.inStock)) }

        // Prices per currency (the variants' default-slot prices).
        let skus = Set(p.variants.map(\.sku))
        var byCurrency: [String: [Tote_V1_VariantPrice]] = [:]
        for price in p.prices.first?.prices ?? [] where skus.contains(price.sku) {
            byCurrency[price.price.currency, default: []].append(price)
        }
        let publishedAt = p.publishedAt.unixMicros
        entries.append(Entry(target: .sort, key: CatalogLayout.newest(publishedAt, id)))
        var summary = Tote_V1_ProductSummary()
        summary.productID = p.productID
        summary.slug = d.slug
        summary.name = d.name
        summary.brand = d.brand
        summary.imageURL = d.media.first?.url ?? ""
        summary.inStock = inStock
        summary.publishedAt = p.publishedAt
        if let primary = d.categorySlugs.first { summary.primaryCategorySlug = try category(primary)?.slug ?? primary }
        summary.variantCount = UInt32(p.variants.count)
        let plain = Entry(target: .summary, key: CatalogLayout.summary(id, ""))
        entries.append(plain)
        values.append((plain, try summary.serializedBytes()))
        for (currency, list) in byCurrency {
            let amounts = list.map(\.price.minorUnits).sorted()
            for a in Set(amounts) { entries.append(Entry(target: .posting, key: CatalogLayout.priceBucket(currency, CatalogLayout.bucket(a)))) }
            entries.append(Entry(target: .sort, key: CatalogLayout.minPricePrefix(currency) + CatalogLayout.sortable(amounts.first!) + CatalogLayout.u32(id)))
            entries.append(Entry(target: .sort, key: CatalogLayout.maxPricePrefix(currency) + CatalogLayout.sortable(amounts.last!) + CatalogLayout.u32(id)))
            let priceEntry = Entry(target: .prices, key: CatalogLayout.priceList(currency, id))
            entries.append(priceEntry)
            values.append((priceEntry, amounts.flatMap(CatalogLayout.sortable)))
            let cheapest = list.min { ($0.price.minorUnits, $0.sku) < ($1.price.minorUnits, $1.sku) }!
            let dearest = list.max { ($0.price.minorUnits, $0.sku) < ($1.price.minorUnits, $1.sku) }!
            var s = summary
            s.minPrice = cheapest.price
            s.maxPrice = dearest.price
            if cheapest.hasCompareAtPrice { s.compareAtPrice = cheapest.compareAtPrice }
            let e = Entry(target: .summary, key: CatalogLayout.summary(id, currency))
            entries.append(e)
            values.append((e, try s.serializedBytes()))
        }
        entries.sort()
        var unique: [Entry] = []
        unique.reserveCapacity(entries.count)
        for e in entries where unique.last != e { unique.append(e) }
        return (unique, values)
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

extension Array where Element == CatalogProjection.Entry {
    /// Sorted without duplicates (as stored memberships always are).
    var isStrictlyAscending: Bool {
        var i = 1
        while i < count { if !(self[i - 1] < self[i]) { return false }; i += 1 }
        return true
    }
}

extension ReadModelReader {
    /// Whether `key` holds exactly `value` (false when absent), without copying the stored bytes.
    func equals(_ database: String, _ key: [UInt8], _ value: [UInt8]) throws -> Bool {
        try withValue(database, key) { stored in
            stored.count == value.count && value.withUnsafeBytes { v in stored.count == 0 || memcmp(stored.baseAddress!, v.baseAddress!, stored.count) == 0 }
        } ?? false
    }
}
