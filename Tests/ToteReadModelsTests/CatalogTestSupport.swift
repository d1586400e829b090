@testable import EventStore
import Foundation
import SwiftProtobuf
import ToteDomain
import ToteProto
import Testing
@testable import ToteReadModels

// Event builders and a brute-force reference for the catalog and autocomplete tests.

/// A (stream, envelope bytes) pair.
struct TestEvent {
    var stream: String
    var data: [UInt8]
}

enum Ev {
    static func ts(_ micros: Int64) -> Tote_V1_Timestamp { var t = Tote_V1_Timestamp(); t.unixMicros = micros; return t }

    static func text(_ s: String) -> Tote_V1_AttributeValue { var v = Tote_V1_AttributeValue(); v.stringValue = s; return v }
    static func number(_ u: Int64, _ scale: UInt32) -> Tote_V1_AttributeValue {
        var d = Tote_V1_Decimal(); d.unscaled = u; d.scale = scale
        var v = Tote_V1_AttributeValue(); v.numberValue = d; return v
    }
    static func attribute(_ key: String, _ values: Tote_V1_AttributeValue...) -> Tote_V1_Attribute {
        var a = Tote_V1_Attribute(); a.key = key; a.values = values; return a
    }

    static func product(_ id: String, _ e: Tote_V1_ProductEvent) -> TestEvent { TestEvent(stream: "product-\(id)", data: try! e.serializedBytes()) }

    static func details(name: String, brand: String = "", categories: [String], attributes: [Tote_V1_Attribute] = [], keywords: [String] = []) -> Tote_V1_ProductDetails {
        var d = Tote_V1_ProductDetails()
        d.name = name
        d.slug = CatalogGenerator.slugify(name)
        d.brand = brand
        d.categorySlugs = categories
        d.attributes = attributes
        d.searchKeywords = keywords
        return d
    }

    static func created(_ id: String, _ details: Tote_V1_ProductDetails, at: Int64 = 1) -> TestEvent {
        var c = Tote_V1_ProductCreated(); c.productID = id; c.details = details; c.createdAt = ts(at)
        var e = Tote_V1_ProductEvent(); e.productCreated = c
        return product(id, e)
    }

    static func updated(_ id: String, _ details: Tote_V1_ProductDetails) -> TestEvent {
        var u = Tote_V1_ProductDetailsUpdated(); u.productID = id; u.details = details
        var e = Tote_V1_ProductEvent(); e.productDetailsUpdated = u
        return product(id, e)
    }

    static func variant(_ id: String, sku: String, options: [(String, String)] = []) -> TestEvent {
        var v = Tote_V1_Variant(); v.sku = sku
        v.optionValues = options.map { var o = Tote_V1_OptionValue(); o.option = $0.0; o.value = $0.1; return o }
        var a = Tote_V1_VariantAdded(); a.productID = id; a.variant = v
        var e = Tote_V1_ProductEvent(); e.variantAdded = a
        return product(id, e)
    }

    static func prices(_ id: String, _ currency: String, _ prices: [(String, Int64)], removed: [String] = [], group: String = "") -> TestEvent {
        var p = Tote_V1_ProductPricesSet(); p.productID = id; p.currency = currency; p.customerGroup = group
        p.prices = prices.map { var vp = Tote_V1_VariantPrice(); vp.sku = $0.0; vp.price.currency = currency; vp.price.minorUnits = $0.1; return vp }
        p.removedSkus = removed
        var e = Tote_V1_ProductEvent(); e.productPricesSet = p
        return product(id, e)
    }

    static func published(_ id: String, at: Int64 = 10) -> TestEvent {
        var p = Tote_V1_ProductPublished(); p.productID = id; p.publishedAt = ts(at)
        var e = Tote_V1_ProductEvent(); e.productPublished = p
        return product(id, e)
    }

    static func archived(_ id: String) -> TestEvent {
        var p = Tote_V1_ProductArchived(); p.productID = id; p.reason = "gone"
        var e = Tote_V1_ProductEvent(); e.productArchived = p
        return product(id, e)
    }

    static func category(_ id: String, name: String? = nil, ancestors: [String] = []) -> TestEvent {
        var c = Tote_V1_CategoryCreated(); c.categoryID = id; c.slug = id; c.name = name ?? id.capitalized
        c.parentID = ancestors.last ?? ""; c.ancestorIds = ancestors
        var e = Tote_V1_CategoryEvent(); e.categoryCreated = c
        return TestEvent(stream: "category-\(id)", data: try! e.serializedBytes())
    }

    static func moved(_ id: String, ancestors: [String]) -> TestEvent {
        var m = Tote_V1_CategoryMoved(); m.categoryID = id; m.parentID = ancestors.last ?? ""; m.ancestorIds = ancestors
        var e = Tote_V1_CategoryEvent(); e.categoryMoved = m
        return TestEvent(stream: "category-\(id)", data: try! e.serializedBytes())
    }

    static func renamed(_ id: String, _ name: String) -> TestEvent {
        var r = Tote_V1_CategoryRenamed(); r.categoryID = id; r.name = name
        var e = Tote_V1_CategoryEvent(); e.categoryRenamed = r
        return TestEvent(stream: "category-\(id)", data: try! e.serializedBytes())
    }

    static func stock(_ sku: String, _ location: String, onHand: Int64) -> TestEvent {
        var a = Tote_V1_StockAdjusted(); a.key.sku = sku; a.key.locationID = location; a.onHandAfter = onHand; a.delta = 1
        var e = Tote_V1_StockItemEvent(); e.stockAdjusted = a
        return TestEvent(stream: "stock-\(sku)@\(location)", data: try! e.serializedBytes())
    }

    static func reserved(_ sku: String, _ location: String, _ quantity: Int64, id: String = "r1") -> TestEvent {
        var r = Tote_V1_StockReserved(); r.key.sku = sku; r.key.locationID = location; r.reservation.reservationID = id; r.reservation.quantity = quantity
        var e = Tote_V1_StockItemEvent(); e.stockReserved = r
        return TestEvent(stream: "stock-\(sku)@\(location)", data: try! e.serializedBytes())
    }

    static func released(_ sku: String, _ location: String, _ quantity: Int64, id: String = "r1") -> TestEvent {
        var r = Tote_V1_ReservationReleased(); r.key.sku = sku; r.key.locationID = location; r.reservationID = id; r.quantity = quantity
        var e = Tote_V1_StockItemEvent(); e.reservationReleased = r
        return TestEvent(stream: "stock-\(sku)@\(location)", data: try! e.serializedBytes())
    }

    static func order(_ id: String, _ lines: [(product: String, quantity: UInt32)]) -> TestEvent {
        var o = Tote_V1_OrderPlaced(); o.orderID = id; o.currency = "EUR"
        o.lines = lines.enumerated().map { i, l in var line = Tote_V1_OrderLine(); line.lineID = "\(id)-\(i)"; line.productID = l.product; line.quantity = l.quantity; return line }
        var e = Tote_V1_OrderEvent(); e.orderPlaced = o
        return TestEvent(stream: "order-\(id)", data: try! e.serializedBytes())
    }

    /// A published product with one variant per colour priced in EUR, in stock at "main".
    static func simpleProduct(_ id: String, name: String, brand: String = "", categories: [String], colours: [String] = ["red"], price: Int64 = 1000,
                              attributes: [Tote_V1_Attribute] = [], inStock: Bool = true, publishedAt: Int64 = 10, keywords: [String] = []) -> [TestEvent] {
        var out = [created(id, details(name: name, brand: brand, categories: categories, attributes: attributes, keywords: keywords))]
        for c in colours { out.append(variant(id, sku: "\(id)-\(c)", options: [("colour", c)])) }
        out.append(prices(id, "EUR", colours.enumerated().map { ("\(id)-\($0.element)", price + Int64($0.offset)) }))
        out.append(published(id, at: publishedAt))
        if inStock { for c in colours { out.append(stock("\(id)-\(c)", "main", onHand: 5)) } }
        return out
    }
}

extension MemoryStore {
    /// Applies events through both projections' stream/bytes entry points.
    mutating func project(_ events: [TestEvent], catalog: Bool = true, autocomplete: Bool = true) throws {
        for e in events {
            if catalog { try CatalogProjection().apply(stream: e.stream, data: e.data, to: &self) }
            if autocomplete { try AutocompleteProjection().apply(stream: e.stream, data: e.data, to: &self) }
        }
    }

    static func projecting(_ events: [TestEvent]) throws -> MemoryStore {
        var s = MemoryStore()
        try s.project(events)
        return s
    }
}

extension GeneratedEvent {
    var test: TestEvent { TestEvent(stream: stream, data: data) }
}

/// Checks a search answer against the brute-force evaluator's: the total, the first `page` ids,
/// every non-zero facet count, and the price stats.
func expectSameAnswer(_ got: Tote_V1_SearchCatalogResponse, _ want: BruteCatalog.Answer, page: Int, _ context: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(Int(got.totalCount) == want.total, "\(context)", sourceLocation: sourceLocation)
    #expect(got.products.map(\.productID) == Array(want.ids.prefix(page)), "\(context)", sourceLocation: sourceLocation)
    var gotFacets: [String: [String: Int]] = [:]
    for f in got.facets {
        for v in f.values where v.count > 0 { gotFacets[f.attribute, default: [:]][v.value.referenceKey] = Int(v.count) }
    }
    #expect(gotFacets == want.facets, "\(context)", sourceLocation: sourceLocation)
    if let (lo, hi) = want.priceStats {
        #expect(got.priceStats.min.minorUnits == lo && got.priceStats.max.minorUnits == hi, "\(context)", sourceLocation: sourceLocation)
    } else {
        #expect(!got.hasPriceStats, "\(context)", sourceLocation: sourceLocation)
    }
}

/// The generated 2,000-product catalog, projected once for all tests.
enum GeneratedFixture {
    static let events: [GeneratedEvent] = CatalogGenerator(seed: 42).events(products: 2_000, orders: 3_000)
    static let store: MemoryStore = try! MemoryStore.projecting(events.map(\.test))
    static let reference: BruteCatalog = {
        var b = BruteCatalog()
        for e in events { b.apply(e.test) }
        return b
    }()
}

func search(_ store: MemoryStore, _ configure: (inout Tote_V1_SearchCatalogRequest) -> Void) throws -> Tote_V1_SearchCatalogResponse {
    var r = Tote_V1_SearchCatalogRequest()
    r.currency = "EUR"
    configure(&r)
    return try CatalogQuery.search(store, request: r)
}

/// A naive model of the catalog built straight from the events, answering searches by checking
/// every product: the reference the read model is compared with.
struct BruteCatalog {
    struct Product {
        var order: Int
        var id: String
        var status: Tote_V1_ProductStatus = .draft
        var details = Tote_V1_ProductDetails()
        var variants: [Tote_V1_Variant] = []
        var prices: [String: [String: Int64]] = [:]  // currency → sku → price
        var publishedAt: Int64 = 0
    }
    var products: [String: Product] = [:]
    var ancestors: [String: [String]] = [:]
    var stock: [String: Int64] = [:]  // "sku@loc" → available

    mutating func apply(_ e: TestEvent) {
        if e.stream.hasPrefix("product-") {
            let env = try! Tote_V1_ProductEvent(serializedBytes: e.data)
            switch env.event {
            case .productCreated(let c)?:
                var p = products[c.productID] ?? Product(order: products.count, id: c.productID)
                p.details = c.details
                products[c.productID] = p
            case .productDetailsUpdated(let u)?: products[u.productID]?.details = u.details
            case .variantAdded(let v)?: products[v.productID]?.variants.append(v.variant)
            case .productPricesSet(let s)?:
                guard s.customerGroup.isEmpty else { return }
                for p in s.prices { products[s.productID]?.prices[s.currency, default: [:]][p.sku] = p.price.minorUnits }
                for sku in s.removedSkus { products[s.productID]?.prices[s.currency]?[sku] = nil }
            case .productPublished(let p)?:
                if products[p.productID]?.publishedAt == 0 { products[p.productID]?.publishedAt = p.publishedAt.unixMicros }
                products[p.productID]?.status = .published
            case .productArchived(let a)?: products[a.productID]?.status = .archived
            default: break
            }
        } else if e.stream.hasPrefix("category-") {
            let env = try! Tote_V1_CategoryEvent(serializedBytes: e.data)
            switch env.event {
            case .categoryCreated(let c)?: ancestors[c.categoryID] = c.ancestorIds
            case .categoryMoved(let m)?:
                ancestors[m.categoryID] = m.ancestorIds
                for (id, a) in ancestors { if let i = a.firstIndex(of: m.categoryID) { ancestors[id] = m.ancestorIds + a[i...] } }
            default: break
            }
        } else if e.stream.hasPrefix("stock-") {
            let env = try! Tote_V1_StockItemEvent(serializedBytes: e.data)
            switch env.event {
            case .stockReceived(let r)?: stock["\(r.key.sku)@\(r.key.locationID)"] = r.onHandAfter
            case .stockAdjusted(let a)?: stock["\(a.key.sku)@\(a.key.locationID)"] = a.onHandAfter
            default: break
            }
        }
    }

    func facetValues(_ p: Product) -> [String: Set<String>] {
        var out: [String: Set<String>] = [:]
        func key(_ v: Tote_V1_AttributeValue) -> String { ProductDecider.AttributeValue(v).map { "\($0.normalized)" } ?? "?" }
        for a in p.details.attributes { for v in a.values { out[a.key, default: []].insert(key(v)) } }
        for variant in p.variants {
            for o in variant.optionValues where !p.details.attributes.contains(where: { $0.key == o.option }) { out[o.option, default: []].insert(key(Ev.text(o.value))) }
        }
        return out
    }

    func inStock(_ p: Product) -> Bool {
        p.variants.contains { v in CatalogGenerator.locations.contains { (stock["\(v.sku)@\($0)"] ?? 0) > 0 } || (stock["\(v.sku)@main"] ?? 0) > 0 }
    }

    func prices(_ p: Product, _ currency: String) -> [Int64] {
        let skus = Set(p.variants.map(\.sku))
        return (p.prices[currency] ?? [:]).filter { skus.contains($0.key) }.map(\.value).sorted()
    }

    func text(_ p: Product) -> [String] {
        var t = [p.details.name, p.details.brand] + p.details.searchKeywords
        for a in p.details.attributes { for v in a.values { if case .stringValue(let s)? = v.value { t.append(s) } } }
        for v in p.variants { for o in v.optionValues { t.append(o.value) } }
        return t.flatMap(TextNormalizer.tokens)
    }

    struct Answer {
        var total: Int
        var ids: [String]  // every match, in the requested order
        var facets: [String: [String: Int]]
        var priceStats: (Int64, Int64)?
    }

    /// `filters`: attribute → accepted value keys (`"\(AttributeValue)"`) or a numeric range.
    func search(category: String, tokens: [String], filters: [String: (values: Set<String>, range: (Double, Double)?)], currency: String,
                priceRange: (Int64, Int64)?, inStockOnly: Bool, sort: Tote_V1_SearchSort) -> Answer {
        let published = products.values.filter { $0.status == .published }
        func inCategory(_ p: Product) -> Bool {
            category.isEmpty || p.details.categorySlugs.contains { $0 == category || (ancestors[$0] ?? []).contains(category) }
        }
        func matchesText(_ p: Product) -> Bool {
            let own = text(p)
            return tokens.allSatisfy { q in own.contains { $0.hasPrefix(q) } }
        }
        func matchesPrice(_ p: Product) -> Bool {
            guard let (lo, hi) = priceRange else { return true }
            return prices(p, currency).contains { $0 >= lo && $0 <= hi }
        }
        func matches(_ p: Product, filter attribute: String) -> Bool {
            guard let f = filters[attribute] else { return true }
            let vs = facetValues(p)[attribute] ?? []
            return vs.contains { v in
                (f.values.isEmpty || f.values.contains(v)) && (f.range.map { r in Self.numeric(v).map { $0 >= r.0 && $0 <= r.1 } ?? false } ?? true)
            }
        }
        let base = published.filter { inCategory($0) && matchesText($0) && (!inStockOnly || inStock($0)) }
        let withoutPrice = base.filter { p in filters.keys.allSatisfy { matches(p, filter: $0) } }
        let result = withoutPrice.filter(matchesPrice)
        var facets: [String: [String: Int]] = [:]
        for p in base where matchesPrice(p) {
            for (attribute, values) in facetValues(p) {
                guard filters.keys.filter({ $0 != attribute }).allSatisfy({ matches(p, filter: $0) }) else { continue }
                for v in values { facets[attribute, default: [:]][v, default: 0] += 1 }
            }
        }
        let allPrices = withoutPrice.flatMap { prices($0, currency) }
        let stats = allPrices.isEmpty ? nil : (allPrices.min()!, allPrices.max()!)
        let ordered: [Product]
        switch sort {
        case .priceAsc:
            ordered = result.sorted { a, b in
                let pa = prices(a, currency).first, pb = prices(b, currency).first
                switch (pa, pb) {
                case let (x?, y?): return x != y ? x < y : a.order < b.order
                case (nil, nil): return a.order < b.order
                case (nil, _): return false
                case (_, nil): return true
                }
            }
        case .priceDesc:
            ordered = result.sorted { a, b in
                let pa = prices(a, currency).last, pb = prices(b, currency).last
                switch (pa, pb) {
                case let (x?, y?): return x != y ? x > y : a.order > b.order
                case (nil, nil): return a.order < b.order
                case (nil, _): return false
                case (_, nil): return true
                }
            }
        default:  // newest
            ordered = result.sorted { $0.publishedAt != $1.publishedAt ? $0.publishedAt > $1.publishedAt : $0.order > $1.order }
        }
        return Answer(total: result.count, ids: ordered.map(\.id), facets: facets, priceStats: stats)
    }

    static func numeric(_ key: String) -> Double? {
        // "number(unscaled: 156, scale: 1)"
        guard key.hasPrefix("number(") else { return nil }
        let digits = key.split(whereSeparator: { !"-0123456789".contains($0) }).compactMap { Int64($0) }
        guard digits.count == 2 else { return nil }
        return Double(digits[0]) / pow(10, Double(digits[1]))
    }
}

extension Tote_V1_AttributeValue {
    /// The brute-force key of a value.
    var referenceKey: String { ProductDecider.AttributeValue(self).map { "\($0.normalized)" } ?? "?" }
}
