import EventStore
import Foundation
import Testing
import ToteDomain
import ToteProto
@testable import ToteReadModels

@Suite("Catalog projection")
struct CatalogProjectionTests {
    let tree = [Ev.category("clothing"), Ev.category("tops", ancestors: ["clothing"]), Ev.category("shirts", ancestors: ["clothing", "tops"]),
                Ev.category("home")]

    func ids(_ r: Tote_V1_SearchCatalogResponse) -> [String] { r.products.map(\.productID) }

    @Test func publishedProductsOnly() throws {
        var events = tree
        events += [Ev.created("draft", Ev.details(name: "Draft Shirt", categories: ["shirts"])), Ev.variant("draft", sku: "D1"), Ev.prices("draft", "EUR", [("D1", 500)])]
        events += Ev.simpleProduct("live", name: "Live Shirt", categories: ["shirts"])
        let store = try MemoryStore.projecting(events)
        let all = try search(store) { _ in }
        #expect(ids(all) == ["live"])
        #expect(all.totalCount == 1)
        // Ancestors see it too; unrelated categories do not.
        #expect(try ids(search(store) { $0.categorySlug = "clothing" }) == ["live"])
        #expect(try ids(search(store) { $0.categorySlug = "tops" }) == ["live"])
        #expect(try search(store) { $0.categorySlug = "home" }.totalCount == 0)
        // Summary is served from the stored bytes, priced in the currency.
        let s = try #require(all.products.first)
        #expect(s.name == "Live Shirt")
        #expect(s.minPrice.minorUnits == 1000 && s.minPrice.currency == "EUR")
        #expect(s.inStock)
        #expect(s.primaryCategorySlug == "shirts")
        #expect(s.variantCount == 1)
    }

    @Test func archivingRemovesEverythingDerived() throws {
        var events = tree + Ev.simpleProduct("p1", name: "Linen Shirt", categories: ["shirts"])
        let before = try MemoryStore.projecting(events)
        #expect(try search(before) { $0.text = "lin" }.totalCount == 1)
        events.append(Ev.archived("p1"))
        let after = try MemoryStore.projecting(events)
        #expect(try search(after) { _ in }.totalCount == 0)
        #expect(try search(after) { $0.text = "lin" }.totalCount == 0)
        for db in [CatalogLayout.postings, CatalogLayout.sortKeys, CatalogLayout.summaries, CatalogLayout.prices, CatalogLayout.memberships] {
            #expect((after.databases[db] ?? [:]).isEmpty, "\(db) still has entries")
        }
        // The product's internal id survives (stable across replays and re-publication).
        #expect(after.databases[CatalogLayout.productIDs]?.count == 1)
    }

    @Test func categoryMoveRecomputesAncestors() throws {
        var events = tree + Ev.simpleProduct("p1", name: "Oxford Shirt", categories: ["shirts"])
        events.append(Ev.moved("tops", ancestors: ["home"]))
        let store = try MemoryStore.projecting(events)
        #expect(try search(store) { $0.categorySlug = "clothing" }.totalCount == 0)
        #expect(try ids(search(store) { $0.categorySlug = "home" }) == ["p1"])
        #expect(try ids(search(store) { $0.categorySlug = "tops" }) == ["p1"])
        // The descendant's stored path follows the move.
        let shirts = try #require(try CatalogProjection.category("shirts", store))
        #expect(shirts.ancestorSlugs == ["home", "tops"])
        // Same bytes as if the tree had been built that way before the product arrived.
        var direct = [Ev.category("clothing"), Ev.category("home"), Ev.category("tops", ancestors: ["home"]), Ev.category("shirts", ancestors: ["home", "tops"])]
        direct += Ev.simpleProduct("p1", name: "Oxford Shirt", categories: ["shirts"])
        let rebuilt = try MemoryStore.projecting(direct)
        #expect(store.databases[CatalogLayout.postings] == rebuilt.databases[CatalogLayout.postings])
    }

    @Test func categoryCreatedAfterItsProducts() throws {
        var events = Ev.simpleProduct("p1", name: "Late Shirt", categories: ["shirts"])
        events += tree
        let store = try MemoryStore.projecting(events)
        #expect(try ids(search(store) { $0.categorySlug = "clothing" }) == ["p1"])
    }

    @Test func priceChangesMoveBucketsAndSummaries() throws {
        var events = tree + Ev.simpleProduct("p1", name: "Shirt", categories: ["shirts"], price: 1000)
        var store = try MemoryStore.projecting(events)
        #expect(try search(store) { $0.priceRange.minMinorUnits = 900; $0.priceRange.maxMinorUnits = 1100 }.totalCount == 1)
        events = [Ev.prices("p1", "EUR", [("p1-red", 5000)])]
        try store.project(events)
        #expect(try search(store) { $0.priceRange.minMinorUnits = 900; $0.priceRange.maxMinorUnits = 1100 }.totalCount == 0)
        let r = try search(store) { $0.priceRange.minMinorUnits = 4999 }
        #expect(r.totalCount == 1)
        #expect(r.products.first?.minPrice.minorUnits == 5000)
        #expect(r.priceStats.min.minorUnits == 5000 && r.priceStats.max.minorUnits == 5000)
        // A price-list price for a customer group is not a storefront price.
        try store.project([Ev.prices("p1", "EUR", [("p1-red", 1)], group: "wholesale")])
        #expect(try search(store) { $0.priceRange.maxMinorUnits = 10 }.totalCount == 0)
        // Removing the EUR price: the product stays, unpriced, at the end of a price sort.
        try store.project([Ev.prices("p1", "EUR", [], removed: ["p1-red"])])
        let unpriced = try search(store) { $0.sort = .priceAsc }
        #expect(ids(unpriced) == ["p1"])
        #expect(!unpriced.products[0].hasMinPrice)
        #expect(!unpriced.hasPriceStats)
    }

    @Test func stockGoingToZeroAndBack() throws {
        var store = try MemoryStore.projecting(tree + Ev.simpleProduct("p1", name: "Shirt", categories: ["shirts"], colours: ["red", "blue"], inStock: false))
        #expect(try search(store) { $0.inStockOnly = true }.totalCount == 0)
        #expect(try search(store) { _ in }.products.first?.inStock == false)
        try store.project([Ev.stock("p1-blue", "store", onHand: 3)])
        #expect(try search(store) { $0.inStockOnly = true }.totalCount == 1)
        #expect(try search(store) { _ in }.products.first?.inStock == true)
        // Reserved units are not available.
        try store.project([Ev.reserved("p1-blue", "store", 3)])
        #expect(try search(store) { $0.inStockOnly = true }.totalCount == 0)
        try store.project([Ev.released("p1-blue", "store", 3)])
        #expect(try search(store) { $0.inStockOnly = true }.totalCount == 1)
        try store.project([Ev.stock("p1-blue", "store", onHand: 0)])
        #expect(try search(store) { $0.inStockOnly = true }.totalCount == 0)
        // Stock recorded before the variant exists counts once the variant arrives.
        var early = try MemoryStore.projecting(tree + [Ev.stock("p2-red", "main", onHand: 4)])
        try early.project(Ev.simpleProduct("p2", name: "Shirt Two", categories: ["shirts"], inStock: false))
        #expect(try search(early) { $0.inStockOnly = true }.totalCount == 1)
    }

    @Test func detailsUpdateReindexesTextAndAttributes() throws {
        var store = try MemoryStore.projecting(tree + Ev.simpleProduct("p1", name: "Plain Shirt", categories: ["shirts"], attributes: [Ev.attribute("material", Ev.text("cotton"))]))
        #expect(try search(store) { $0.text = "plain" }.totalCount == 1)
        try store.project([Ev.updated("p1", Ev.details(name: "Fancy Blouse", categories: ["home"], attributes: [Ev.attribute("material", Ev.text("silk"))]))])
        #expect(try search(store) { $0.text = "plain" }.totalCount == 0)
        #expect(try search(store) { $0.text = "blou" }.totalCount == 1)
        #expect(try search(store) { $0.categorySlug = "shirts" }.totalCount == 0)
        let r = try search(store) { $0.categorySlug = "home"; $0.facetAttributes = ["material"] }
        #expect(r.facets.first?.values.map(\.value.stringValue) == ["silk"])
    }

    @Test func unknownStreamsAreIgnoredAndBadBytesThrow() throws {
        var store = MemoryStore()
        try CatalogProjection().apply(stream: "cart-1", data: [0xff, 0xff], to: &store)
        #expect(store == MemoryStore())
        #expect(throws: (any Error).self) { try CatalogProjection().apply(stream: "product-1", data: [0xff, 0xff, 0xff], to: &store) }
    }

    @Test func replayIsDeterministicAndRecordedEventsMatch() throws {
        let events = Array(GeneratedFixture.events.prefix(4_000))
        let a = try MemoryStore.projecting(events.map(\.test))
        let b = try MemoryStore.projecting(events.map(\.test))
        #expect(a == b)
        var c = MemoryStore()
        for (i, e) in events.enumerated() {
            try CatalogProjection().apply(e.recorded(position: Int64(i + 1)), to: &c)
            try AutocompleteProjection().apply(e.recorded(position: Int64(i + 1)), to: &c)
        }
        #expect(a == c)
        // Every database the projections write is declared.
        let declared = Set(CatalogProjection().databases + AutocompleteProjection().databases)
        #expect(Set(a.databases.keys).isSubset(of: declared))
    }
}
