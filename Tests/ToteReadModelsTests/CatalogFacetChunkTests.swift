import Foundation
import Testing
import ToteDomain
import ToteProto
@testable import ToteReadModels

/// Facet queries over lists that span two posting chunks in both stored forms (bitsets and
/// arrays), against the brute-force reference; the same bytes for any cut into batches while
/// chunks change form; price stats for a set of expensive products among many cheap ones.
@Suite("Catalog facets across chunks")
struct CatalogFacetChunkTests {
    /// The first internal id: products straddle the boundary between chunks 0 and 1 (id 4,096).
    static let firstID: UInt32 = 3_900

    /// 640 products in three roots: `cheap` (many, low prices), `dear` (a few, high prices, ids
    /// spread among the cheap ones), `mixed`; then half of the others archived (bitset chunks fall
    /// below 128 ids and become arrays again) and a fifth of those re-published.
    static let events: [TestEvent] = {
        var rng = SplitMix64(seed: 99)
        let colours = ["red", "blue", "green", "black"]
        let materials = ["cotton", "wool", "steel"]
        var out = [Ev.category("cheap"), Ev.category("cheap-tops", ancestors: ["cheap"]), Ev.category("dear"), Ev.category("mixed")]
        for i in 0..<640 {
            let category: String
            let price: Int64
            if i % 60 == 7 {
                category = "dear"
                price = 90_000 + Int64(rng.next() % 50_000)
            } else if i % 3 == 0 {
                category = "mixed"
                price = 500 + Int64(rng.next() % 20_000)
            } else {
                category = i % 2 == 0 ? "cheap-tops" : "cheap"
                price = 100 + Int64(rng.next() % 400)
            }
            let picked = Array(Set((0..<(1 + Int(rng.next() % 2))).map { _ in colours[Int(rng.next() % 4)] })).sorted()
            out += Ev.simpleProduct("p\(i)", name: "Item \(i)", categories: [category], colours: picked, price: price,
                                    attributes: [Ev.attribute("material", Ev.text(materials[Int(rng.next() % 3)]))], inStock: rng.next() % 5 != 0,
                                    publishedAt: 1 + Int64(rng.next() % 1_000))
        }
        for i in stride(from: 1, to: 640, by: 2) where i % 60 != 7 { out.append(Ev.archived("p\(i)")) }
        for i in stride(from: 1, to: 640, by: 10) where i % 60 != 7 { out.append(Ev.published("p\(i)", at: 2_000)) }
        return out
    }()

    /// A store whose id allocation starts at ``firstID``.
    static func seeded() -> MemoryStore {
        var store = MemoryStore()
        try! store.put(CatalogLayout.meta, Array("next_id".utf8), CatalogLayout.u32(firstID))
        return store
    }

    static let store: MemoryStore = {
        var s = seeded()
        for e in events { try! CatalogProjection().apply(stream: e.stream, data: e.data, to: &s) }
        return s
    }()

    static let reference: BruteCatalog = {
        var b = BruteCatalog()
        for e in events { b.apply(e) }
        return b
    }()

    @Test("the lists really span two chunks in both forms")
    func chunksHaveBothForms() throws {
        let postings = Self.store.databases[CatalogLayout.postings] ?? [:]
        var bitsets = 0, arrays = 0
        var chunks = Set<Int>()
        for (key, value) in postings {
            value.withUnsafeBytes { if PostingChunk.isBitset($0) { bitsets += 1 } else { arrays += 1 } }
            chunks.insert(Int(key[key.count - 2]) << 8 | Int(key[key.count - 1]))
        }
        #expect(bitsets >= 3 && arrays >= 20, "bitsets \(bitsets), arrays \(arrays)")
        #expect(chunks == [0, 1])
    }

    @Test("queries over both chunks and both forms equal the brute-force answers", arguments: ["", "cheap", "cheap-tops", "dear", "mixed"])
    func queriesMatchBruteForce(category: String) throws {
        let colourSets: [[String]] = [[], ["red"], ["blue", "black"]]
        let materialSets: [[String]] = [[], ["wool"]]
        let priceRanges: [(Int64, Int64)?] = [nil, (150, 350), (1_000, 200_000)]
        for colours in colourSets {
            for materials in materialSets {
                for priceRange in priceRanges {
                    for inStock in [false, true] {
                        for sort in [Tote_V1_SearchSort.newest, .priceAsc, .priceDesc] {
                            var request = Tote_V1_SearchCatalogRequest()
                            request.currency = "EUR"
                            request.categorySlug = category
                            var filters: [String: (values: Set<String>, range: (Double, Double)?)] = [:]
                            for (attribute, values) in [("colour", colours), ("material", materials)] where !values.isEmpty {
                                var f = Tote_V1_AttributeFilter(); f.attribute = attribute; f.values = values.map(Ev.text)
                                request.filters.append(f)
                                filters[attribute] = (Set(values.map { "text(\"\($0)\")" }), nil)
                            }
                            if let (lo, hi) = priceRange {
                                request.priceRange.minMinorUnits = lo
                                request.priceRange.maxMinorUnits = hi
                            }
                            request.inStockOnly = inStock
                            request.sort = sort
                            request.page.pageSize = 20
                            request.maxFacetValues = 100
                            let got = try CatalogQuery.search(Self.store, request: request)
                            let want = Self.reference.search(category: category, tokens: [], filters: filters, currency: "EUR", priceRange: priceRange,
                                                             inStockOnly: inStock, sort: sort)
                            let context = "\(category) \(colours) \(materials) \(String(describing: priceRange)) inStock \(inStock) \(sort)"
                            expectSameAnswer(got, want, page: 20, context)
                        }
                    }
                }
            }
        }
    }

    /// The expensive few among many cheap products: the stats are theirs, not the catalog's.
    @Test("price stats of a set of expensive products among cheap ones")
    func priceStatsOfTheDearFew() throws {
        let dear = try search(Self.store) { $0.categorySlug = "dear" }
        let want = Self.reference.search(category: "dear", tokens: [], filters: [:], currency: "EUR", priceRange: nil, inStockOnly: false, sort: .newest)
        #expect(dear.totalCount == UInt64(want.total) && want.total >= 10)
        #expect(dear.priceStats.min.minorUnits >= 90_000)
        #expect(dear.priceStats.min.minorUnits == want.priceStats?.0 && dear.priceStats.max.minorUnits == want.priceStats?.1)
        let all = try search(Self.store) { _ in }
        #expect(all.priceStats.min.minorUnits < 500 && all.priceStats.max.minorUnits == want.priceStats?.1)
    }

    @Test("any cut into batches gives the bytes of event-by-event application while chunks change form", arguments: [1, 7, 100, 100_000])
    func splitsGiveTheSameBytes(size: Int) throws {
        let all = CatalogBatchTests.recorded(Self.events)
        var store = Self.seeded()
        var start = 0
        while start < all.count {
            let end = min(all.count, start + size)
            try CatalogProjection().apply(batch: all[start..<end], to: &store)
            start = end
        }
        #expect(store == Self.store)
    }
}
