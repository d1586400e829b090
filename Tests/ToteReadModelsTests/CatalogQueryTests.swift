import Foundation
import Testing
import ToteDomain
import ToteProto
@testable import ToteReadModels

@Suite("Catalog search")
struct CatalogQueryTests {
    /// Four shirts: red cotton, blue cotton, red wool, green wool (green out of stock).
    static let small: MemoryStore = {
        var events = [Ev.category("shirts")]
        events += Ev.simpleProduct("a", name: "Red Cotton Shirt", brand: "Acme", categories: ["shirts"], colours: ["red"], price: 1000, attributes: [Ev.attribute("material", Ev.text("cotton"))], publishedAt: 1)
        events += Ev.simpleProduct("b", name: "Blue Cotton Shirt", brand: "Acme", categories: ["shirts"], colours: ["blue"], price: 2000, attributes: [Ev.attribute("material", Ev.text("cotton"))], publishedAt: 2)
        events += Ev.simpleProduct("c", name: "Red Wool Shirt", brand: "Bolt", categories: ["shirts"], colours: ["red"], price: 3000, attributes: [Ev.attribute("material", Ev.text("wool"))], publishedAt: 3)
        events += Ev.simpleProduct("d", name: "Green Wool Shirt", brand: "Bolt", categories: ["shirts"], colours: ["green"], price: 4000,
                                   attributes: [Ev.attribute("material", Ev.text("wool")), Ev.attribute("size_cm", Ev.number(155, 1))], inStock: false, publishedAt: 4)
        return try! MemoryStore.projecting(events)
    }()

    func filter(_ attribute: String, _ values: String...) -> Tote_V1_AttributeFilter {
        var f = Tote_V1_AttributeFilter(); f.attribute = attribute; f.values = values.map(Ev.text); return f
    }

    func counts(_ r: Tote_V1_SearchCatalogResponse, _ attribute: String) -> [String: UInt64] {
        Dictionary(uniqueKeysWithValues: (r.facets.first { $0.attribute == attribute }?.values ?? []).map { ($0.value.referenceKey, $0.count) })
    }

    @Test func facetsAreDisjunctiveWithinAndConjunctiveAcross() throws {
        let r = try search(Self.small) { $0.filters = [filter("colour", "red")] }
        #expect(r.totalCount == 2)
        // Colour ignores its own filter: blue and green still counted.
        #expect(counts(r, "colour") == ["text(\"red\")": 2, "text(\"blue\")": 1, "text(\"green\")": 1])
        // Material counts only red products.
        #expect(counts(r, "material") == ["text(\"cotton\")": 1, "text(\"wool\")": 1])
        let selected = r.facets.first { $0.attribute == "colour" }!.values.filter(\.selected).map(\.value.stringValue)
        #expect(selected == ["red"])
        // OR within colour, AND with material.
        let both = try search(Self.small) { $0.filters = [filter("colour", "red", "blue"), filter("material", "wool")] }
        #expect(both.totalCount == 1)
        #expect(both.products.map(\.productID) == ["c"])
        #expect(counts(both, "colour") == ["text(\"red\")": 1, "text(\"green\")": 1, "text(\"blue\")": 0])  // blue: selected, none left
        #expect(counts(both, "material") == ["text(\"cotton\")": 2, "text(\"wool\")": 1])
    }

    @Test func selectedValuesAppearEvenWithoutMatches() throws {
        let r = try search(Self.small) { $0.filters = [filter("colour", "purple")] }
        #expect(r.totalCount == 0)
        let purple = r.facets.first { $0.attribute == "colour" }?.values.first { $0.value.stringValue == "purple" }
        #expect(purple?.count == 0 && purple?.selected == true)
    }

    @Test func numericRangesAndInStock() throws {
        var f = Tote_V1_AttributeFilter()
        f.attribute = "size_cm"
        f.min.unscaled = 15; f.min.scale = 0
        f.max.unscaled = 1551; f.max.scale = 2
        #expect(try search(Self.small) { $0.filters = [f] }.products.map(\.productID) == ["d"])
        f.max.unscaled = 1549
        #expect(try search(Self.small) { $0.filters = [f] }.totalCount == 0)
        #expect(try search(Self.small) { $0.inStockOnly = true }.totalCount == 3)
    }

    @Test func sortsAndText() throws {
        #expect(try search(Self.small) { _ in }.products.map(\.productID) == ["d", "c", "b", "a"])
        #expect(try search(Self.small) { $0.sort = .priceAsc }.products.map(\.productID) == ["a", "b", "c", "d"])
        #expect(try search(Self.small) { $0.sort = .priceDesc }.products.map(\.productID) == ["d", "c", "b", "a"])
        #expect(try search(Self.small) { $0.text = "WOOL sh" }.products.map(\.productID) == ["c", "d"])
        #expect(try search(Self.small) { $0.text = "bol" }.totalCount == 2)  // brand
        #expect(try search(Self.small) { $0.text = "cotton" ; $0.sort = .priceDesc }.products.map(\.productID) == ["b", "a"])
        // Relevance: whole-word matches before prefix-only matches.
        #expect(try search(Self.small) { $0.text = "red" }.products.map(\.productID) == ["a", "c"])
        let stats = try search(Self.small) { $0.priceRange.minMinorUnits = 2500 }.priceStats
        #expect(stats.min.minorUnits == 1000 && stats.max.minorUnits == 4003 - 3)  // stats ignore the price filter
    }

    @Test("omit_price_stats leaves price_stats unset and changes nothing else")
    func omittedPriceStats() throws {
        let store = GeneratedFixture.store
        for category in ["", "clothing", "shoes"] {
            let full = try search(store) { $0.categorySlug = category; $0.facetAttributes = ["colour", "material"] }
            var omitted = try search(store) { $0.categorySlug = category; $0.facetAttributes = ["colour", "material"]; $0.omitPriceStats = true }
            #expect(full.hasPriceStats && full.totalCount > 0)
            #expect(!omitted.hasPriceStats)
            omitted.priceStats = full.priceStats
            #expect(omitted == full)
        }
    }

    @Test func pagingWalksEveryResultOnce() throws {
        let store = GeneratedFixture.store
        for sort in [Tote_V1_SearchSort.newest, .priceAsc, .priceDesc, .relevance] {
            let whole = try search(store) { $0.categorySlug = "clothing"; $0.sort = sort; $0.text = sort == .relevance ? "s" : ""; $0.page.pageSize = 100 }
            var walked: [String] = []
            var token = ""
            var pages = 0
            repeat {
                let r = try search(store) { $0.categorySlug = "clothing"; $0.sort = sort; $0.text = sort == .relevance ? "s" : ""; $0.page.pageSize = 7; $0.page.pageToken = token }
                walked += r.products.map(\.productID)
                token = r.pageInfo.nextPageToken
                pages += 1
            } while !token.isEmpty && pages < 14  // 98 of the first 100
            #expect(walked == Array(whole.products.map(\.productID).prefix(walked.count)), "\(sort)")
            #expect(Set(walked).count == walked.count)
        }
        let last = try search(store) { $0.page.pageToken = "999999" }
        #expect(last.products.isEmpty && last.pageInfo.nextPageToken.isEmpty)
    }

    @Test func invalidRequestsAreRefused() throws {
        func refused(_ field: String, _ configure: (inout Tote_V1_SearchCatalogRequest) -> Void) {
            do {
                _ = try search(Self.small, configure)
                Issue.record("accepted a request with a bad \(field)")
            } catch let e as DomainError {
                #expect(e.code == .invalidArgument)
                #expect(e.violations.contains { $0.field.hasPrefix(field) }, "\(e.violations)")
            } catch {
                Issue.record("unexpected \(error)")
            }
        }
        refused("currency") { $0.currency = "" }
        refused("currency") { $0.currency = "eur" }
        refused("page.page_token") { $0.page.pageToken = "abc" }
        refused("page.page_token") { $0.page.pageToken = "-1" }
        refused("price_range") { $0.priceRange.minMinorUnits = 10; $0.priceRange.maxMinorUnits = 5 }
        refused("price_range.min_minor_units") { $0.priceRange.minMinorUnits = -1 }
        refused("filters[1].attribute") { $0.filters = [filter("colour", "red"), filter("colour", "blue")] }
        refused("filters[0]") { $0.filters = [filter("colour")] }
        refused("filters[0].attribute") { $0.filters = [filter("", "x")] }
        refused("filters[0].min") { r in
            var f = Tote_V1_AttributeFilter(); f.attribute = "size_cm"; f.min.unscaled = 20; f.max.unscaled = 10
            r.filters = [f]
        }
        refused("sort") { $0.sort = Tote_V1_SearchSort(rawValue: 42)! }
    }

    @Test func encodedAnswerDecodesToTheSameResponse() throws {
        var r = Tote_V1_SearchCatalogRequest()
        r.currency = "EUR"
        r.categorySlug = "electronics"
        r.page.pageSize = 15
        let decoded = try CatalogQuery.search(GeneratedFixture.store, request: r)
        let bytes = try CatalogQuery.searchEncoded(GeneratedFixture.store, request: r)
        #expect(try Tote_V1_SearchCatalogResponse(serializedBytes: bytes) == decoded)
        #expect(decoded.products.count == 15)
    }

    /// Random queries over the generated 2,000-product catalog against the brute-force reference.
    @Test func randomQueriesMatchBruteForce() throws {
        let store = GeneratedFixture.store
        let reference = GeneratedFixture.reference
        var rng = SplitMix64(seed: 7)
        let categories = [""] + CatalogGenerator(seed: 42).categories().map(\.id)
        let branches = CatalogGenerator(seed: 42).categories().filter { !$0.isLeaf }.map(\.id)
        let colours = CatalogGenerator.colours
        let materials = ["cotton", "wool", "leather", "plastic", "steel", "oak", "rubber"]
        let words = ["cl", "urb", "caf", "elan", "shirt", "lamp", "no", "modern", "l", "sne"]
        var nonEmpty = 0, withFacets = 0
        for round in 0..<120 {
            var request = Tote_V1_SearchCatalogRequest()
            request.currency = rng.next() % 4 == 0 ? "USD" : "EUR"
            switch round % 3 {
            case 0: request.categorySlug = ""
            case 1: request.categorySlug = branches[Int(rng.next() % UInt64(branches.count))]
            default: request.categorySlug = categories[Int(rng.next() % UInt64(categories.count))]
            }
            var filters: [String: (values: Set<String>, range: (Double, Double)?)] = [:]
            if rng.next() % 2 == 0 {
                let picked = Set((0..<(1 + Int(rng.next() % 2))).map { _ in colours[Int(rng.next() % UInt64(colours.count))] })
                request.filters.append(filter("colour", picked.sorted()[0]))
                request.filters[request.filters.count - 1].values = picked.sorted().map(Ev.text)
                filters["colour"] = (Set(picked.map { "text(\"\($0)\")" }), nil)
            }
            if rng.next() % 3 == 0 {
                let m = materials[Int(rng.next() % UInt64(materials.count))]
                request.filters.append(filter("material", m))
                filters["material"] = (["text(\"\(m)\")"], nil)
            }
            if rng.next() % 5 == 0 {
                var f = Tote_V1_AttributeFilter(); f.attribute = "screen_size"
                f.min.unscaled = 14; f.max.unscaled = 27
                request.filters.append(f)
                filters["screen_size"] = ([], (14, 27))
            }
            var priceRange: (Int64, Int64)?
            if rng.next() % 3 == 0 {
                let lo = Int64(rng.next() % 8_000), hi = lo + Int64(rng.next() % 30_000)
                request.priceRange.minMinorUnits = lo
                request.priceRange.maxMinorUnits = hi
                priceRange = (lo == 0 ? 0 : lo, hi == 0 ? Int64.max : hi)
            }
            request.inStockOnly = rng.next() % 2 == 0
            if rng.next() % 3 == 0 { request.text = words[Int(rng.next() % UInt64(words.count))] }
            let sorts: [Tote_V1_SearchSort] = [.newest, .priceAsc, .priceDesc, .unspecified]
            request.sort = sorts[Int(rng.next() % 4)]
            request.page.pageSize = 25
            request.maxFacetValues = 100
            if request.sort == .unspecified && !request.text.isEmpty { request.sort = .newest }

            let got = try CatalogQuery.search(store, request: request)
            let want = reference.search(category: request.categorySlug, tokens: TextNormalizer.queryTokens(request.text), filters: filters,
                                        currency: request.currency, priceRange: priceRange, inStockOnly: request.inStockOnly, sort: request.sort)
            let context = "round \(round): \(request)"
            if want.total > 0 { nonEmpty += 1 }
            if want.facets.count > 1 { withFacets += 1 }
            expectSameAnswer(got, want, page: 25, context)
        }
        // The random queries are not trivially empty.
        print("random catalog queries: \(nonEmpty) of 120 non-empty, \(withFacets) with facets")
        #expect(nonEmpty > 50)
        #expect(withFacets > 50)
    }
}
