@testable import EventStore
import Foundation
import Testing
import ToteAPI
import ToteDomain
import ToteProto
@testable import ToteReadModels
import ToteServices

private func productEvent(_ stream: String, _ version: Int64, _ position: Int64, _ body: (inout Tote_V1_ProductEvent) -> Void) -> RecordedEvent {
    var e = Tote_V1_ProductEvent()
    body(&e)
    return RecordedEvent(position: LogPosition(transactionID: UInt64(position), globalPosition: position), stream: stream, streamVersion: version,
                         eventID: UUID(), type: "x", schemaVersion: 1, data: try! e.serializedBytes(),
                         metadata: EventMetadata(actorID: "t", actorRole: "operator"), recordedAtMicros: 0)
}

private func categoryEvent(_ position: Int64, _ body: (inout Tote_V1_CategoryEvent) -> Void) -> RecordedEvent {
    var e = Tote_V1_CategoryEvent()
    body(&e)
    return RecordedEvent(position: LogPosition(transactionID: UInt64(position), globalPosition: position), stream: "category-x", streamVersion: 1,
                         eventID: UUID(), type: "x", schemaVersion: 1, data: try! e.serializedBytes(),
                         metadata: EventMetadata(actorID: "t", actorRole: "operator"), recordedAtMicros: 0)
}

private func created(_ id: String, name: String, parent: String = "", ancestors: [String] = [], position: UInt32 = 0) -> (inout Tote_V1_CategoryEvent) -> Void {
    { e in
        var c = Tote_V1_CategoryCreated()
        c.categoryID = id
        c.slug = id
        c.name = name
        c.parentID = parent
        c.ancestorIds = ancestors
        c.position = position
        e.categoryCreated = c
    }
}

private func apply(_ events: [RecordedEvent], splitEvery size: Int) throws -> MemoryStore {
    var store = MemoryStore()
    var start = 0
    while start < events.count {
        let end = min(events.count, start + size)
        try StorefrontProjection().apply(batch: events[start..<end], to: &store)
        start = end
    }
    return store
}

private func request(id: String) -> Tote_V1_GetProductRequest {
    var r = Tote_V1_GetProductRequest()
    r.productID = id
    return r
}

private func request(slug: String) -> Tote_V1_GetProductRequest {
    var r = Tote_V1_GetProductRequest()
    r.slug = slug
    return r
}

private func tree(_ root: String = "", depth: UInt32 = 0) -> Tote_V1_GetCategoryTreeRequest {
    var r = Tote_V1_GetCategoryTreeRequest()
    r.rootSlug = root
    r.depth = depth
    return r
}

@Suite("Storefront model: product pages and the category tree as stored responses")
struct StorefrontProjectionTests {
    static let events = recordedLog(CatalogGenerator(seed: 7).events(products: 300, orders: 50))

    @Test("any split of the same events into batches gives the same bytes as event by event")
    func batchSplitsGiveTheSameBytes() throws {
        var single = MemoryStore()
        for event in Self.events { try StorefrontProjection().apply(event, to: &single) }
        #expect(!(single.databases[StorefrontLayout.products] ?? [:]).isEmpty)
        for size in [2, 7, 64, 1000, Self.events.count] {
            #expect(try apply(Self.events, splitEvery: size) == single, "split every \(size)")
        }
    }

    @Test("a product page is the command side's product (base prices only), for published products only")
    func pagesMatchTheDomainFold() throws {
        let store = try apply(Self.events, splitEvery: 500)
        var states: [String: (ProductDecider.State, Int64)] = [:]
        for event in Self.events where event.stream.hasPrefix("product-") {
            let e = try Tote_V1_ProductEvent(serializedBytes: event.data)
            let id = String(event.stream.dropFirst("product-".count))
            states[id] = (ProductDecider.evolve(states[id]?.0 ?? ProductDecider.initialState, e), event.streamVersion)
        }
        var published = 0
        for (_, (state, version)) in states {
            let id = try #require(state.productId)
            let page = try StorefrontQueries.product(store, request(id: id))
            guard state.status == .published else {
                #expect(page == nil, "a \(state.status) product is not served")
                continue
            }
            published += 1
            var base = state
            base.prices = state.prices.filter { $0.key.customerGroup.isEmpty }
            let expected = base.proto(version: version)
            let served = try Tote_V1_Product(serializedBytes: try #require(page))
            #expect(served == expected)
            #expect(try StorefrontQueries.product(store, request(slug: state.details.slug)) == page)
        }
        #expect(published > 200)
    }

    @Test("a slug change moves the slug; a slug taken over by another product stays with it")
    func slugChanges() throws {
        func details(_ slug: String) -> Tote_V1_ProductDetails {
            var d = Tote_V1_ProductDetails()
            d.name = slug
            d.slug = slug
            return d
        }
        let events = [
            productEvent("product-a", 1, 1) { var c = Tote_V1_ProductCreated(); c.productID = "a"; c.details = details("shirt"); $0.productCreated = c },
            productEvent("product-a", 2, 2) { var p = Tote_V1_ProductPublished(); p.productID = "a"; $0.productPublished = p },
            productEvent("product-b", 1, 3) { var c = Tote_V1_ProductCreated(); c.productID = "b"; c.details = details("tee"); $0.productCreated = c },
            productEvent("product-a", 3, 4) { var u = Tote_V1_ProductDetailsUpdated(); u.productID = "a"; u.details = details("tee"); $0.productDetailsUpdated = u },
            productEvent("product-b", 2, 5) { var u = Tote_V1_ProductDetailsUpdated(); u.productID = "b"; u.details = details("top"); $0.productDetailsUpdated = u },
        ]
        let store = try apply(events, splitEvery: 2)
        #expect(try apply(events, splitEvery: 1) == store)
        #expect(try StorefrontQueries.product(store, request(slug: "shirt")) == nil)
        let page = try Tote_V1_Product(serializedBytes: try #require(try StorefrontQueries.product(store, request(slug: "tee"))))
        #expect(page.productID == "a" && page.version == 3)
        #expect(try StorefrontQueries.product(store, request(slug: "top")) == nil, "b is a draft")
        #expect(try store.get(StorefrontLayout.productSlugs, Array("top".utf8)) == Array("b".utf8))
    }

    @Test("archiving withdraws the page")
    func archivedIsNotServed() throws {
        let events = [
            productEvent("product-a", 1, 1) { var c = Tote_V1_ProductCreated(); c.productID = "a"; c.details.name = "A"; c.details.slug = "a"; $0.productCreated = c },
            productEvent("product-a", 2, 2) { var p = Tote_V1_ProductPublished(); p.productID = "a"; $0.productPublished = p },
        ]
        var store = try apply(events, splitEvery: 5)
        #expect(try StorefrontQueries.product(store, request(id: "a")) != nil)
        try StorefrontProjection().apply(productEvent("product-a", 3, 3) { var a = Tote_V1_ProductArchived(); a.productID = "a"; $0.productArchived = a }, to: &store)
        #expect(try StorefrontQueries.product(store, request(id: "a")) == nil)
        #expect(try StorefrontQueries.product(store, request(slug: "a")) == nil)
    }

    @Test("a request naming neither an id nor a slug, or an empty one, is refused naming the field")
    func badProductRequests() throws {
        let store = MemoryStore()
        #expect(throws: OrderQueryError(field: "ref", reason: "is required: set product_id or slug")) { try StorefrontQueries.product(store, Tote_V1_GetProductRequest()) }
        #expect(throws: OrderQueryError(field: "product_id", reason: "is empty")) { try StorefrontQueries.product(store, request(id: "")) }
        #expect(throws: OrderQueryError(field: "slug", reason: "is empty")) { try StorefrontQueries.product(store, request(slug: "")) }
    }

    @Test("the tree is depth first with siblings by position; subtrees and depth limits; a moved subtree keeps its descendants")
    func categoryTree() throws {
        var events = [
            categoryEvent(1, created("men", name: "Men", position: 2)),
            categoryEvent(2, created("women", name: "Women", position: 1)),
            categoryEvent(3, created("women-tops", name: "Tops", parent: "women", ancestors: ["women"], position: 2)),
            categoryEvent(4, created("women-shoes", name: "Shoes", parent: "women", ancestors: ["women"], position: 1)),
            categoryEvent(5, created("women-tops-tees", name: "Tees", parent: "women-tops", ancestors: ["women", "women-tops"])),
        ]
        var store = try apply(events, splitEvery: 2)
        func slugs(_ r: Tote_V1_GetCategoryTreeRequest) throws -> [String]? {
            try StorefrontQueries.categoryTree(store, r).map { try Tote_V1_GetCategoryTreeResponse(serializedBytes: $0).categories.map(\.slug) }
        }
        #expect(try slugs(tree()) == ["women", "women-shoes", "women-tops", "women-tops-tees", "men"])
        #expect(try slugs(tree(depth: 1)) == ["women", "men"])
        #expect(try slugs(tree("women", depth: 1)) == ["women", "women-shoes", "women-tops"])
        #expect(try slugs(tree("women-tops")) == ["women-tops", "women-tops-tees"])
        #expect(try StorefrontQueries.categoryTree(store, tree("kids")) == nil)
        let whole = try Tote_V1_GetCategoryTreeResponse(serializedBytes: try #require(try StorefrontQueries.categoryTree(store, tree())))
        let tees = try #require(whole.categories.first { $0.slug == "women-tops-tees" })
        #expect(tees.parentSlug == "women-tops" && tees.ancestorSlugs == ["women", "women-tops"])

        // Tops moves under Men: Tees follows without an event of its own.
        events.append(categoryEvent(6) { e in
            var m = Tote_V1_CategoryMoved()
            m.categoryID = "women-tops"
            m.parentID = "men"
            m.ancestorIds = ["men"]
            e.categoryMoved = m
        })
        try StorefrontProjection().apply(batch: events[5...], to: &store)
        #expect(try apply(events, splitEvery: 4) == store)
        #expect(try slugs(tree("men")) == ["men", "women-tops", "women-tops-tees"])
        let moved = try Tote_V1_GetCategoryTreeResponse(serializedBytes: try #require(try StorefrontQueries.categoryTree(store, tree())))
        #expect(moved.categories.first { $0.slug == "women-tops-tees" }?.ancestorSlugs == ["men", "women-tops"])
    }
}

@Suite("GetProduct and GetCategoryTree over the wire")
struct StorefrontQueryServiceTests {
    @Test("pages and the tree are served as stored; unknown ones are NOT_FOUND and bad requests INVALID_ARGUMENT")
    func overTheWire() async throws {
        let events = recordedLog(CatalogGenerator(seed: 9).events(products: 50))
        var store = MemoryStore()
        try StorefrontProjection().apply(batch: events[...], to: &store)
        let source = StorefrontTestSource(store: store)
        var router = RPCRouter()
        QueryService(source: source).register(into: &router)
        let keyring = APIKeyring(["storefront-test-key-0001": .storefront])
        let server = RPCServer(configuration: .init(host: "127.0.0.1", port: 0, drainTimeout: .seconds(5)), router: router, keyring: keyring)
        let port = try #require(try await server.start().port)
        let client = try await ClientConnection.connect(host: "127.0.0.1", port: port, configuration: .init(apiKey: "storefront-test-key-0001"))
        defer { Task { await client.close(); await server.shutdownGracefully() } }

        let stored = try #require(store.databases[StorefrontLayout.products]?.first { $0.value.first == StorefrontLayout.servedFlag })
        let expected = try Tote_V1_Product(serializedBytes: Array(stored.value.dropFirst()))
        #expect(try await client.unary(QueryAPI.getProduct, request(id: expected.productID)) == expected)
        #expect(try await client.unary(QueryAPI.getProduct, request(slug: expected.details.slug)) == expected)
        let whole = try await client.unary(QueryAPI.getCategoryTree, tree())
        #expect(whole.categories.count == CatalogGenerator(seed: 9).categories().count)

        for (call, code, text) in [
            ({ _ = try await client.unary(QueryAPI.getProduct, request(id: "no-such-product")) }, RPCError.Code.notFound, "no published product no-such-product"),
            ({ _ = try await client.unary(QueryAPI.getProduct, Tote_V1_GetProductRequest()) }, .invalidArgument, "ref"),
            ({ _ = try await client.unary(QueryAPI.getCategoryTree, tree("no-such-category")) }, .notFound, "no category with slug no-such-category"),
        ] as [(() async throws -> Void, RPCError.Code, String)] {
            do {
                try await call()
                Issue.record("expected \(code)")
            } catch let error as RPCError {
                #expect(error.code == code && error.message.contains(text), "\(error)")
            }
        }
    }
}

/// A fixed in-memory snapshot at the start of the log.
private final class StorefrontTestSource: ReadModelSource {
    let store: MemoryStore
    init(store: MemoryStore) { self.store = store }
    func read<R>(_ body: (any ReadModelReader) throws -> R) throws -> R { try body(store) }
    var position: LogPosition { .start }
}
