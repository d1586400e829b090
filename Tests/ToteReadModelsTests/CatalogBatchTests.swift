@testable import EventStore
import Foundation
import Testing
import ToteDomain
import ToteProto
@testable import ToteReadModels

/// `CatalogProjection.apply(batch:to:)` must give the bytes of event-by-event application for any
/// split of the log: the projector's crash/resume test compares a resumed store with a rebuild
/// (cut into batches elsewhere) byte for byte.
@Suite("Catalog batches")
struct CatalogBatchTests {
    /// A generated catalog with churn mixed in: products whose category arrives later, a category
    /// moved while its products are being published, renames, details updates that change
    /// categories, archive and re-publish, price changes (and customer-group prices), stock going
    /// to zero and back, reservations and releases.
    static let events: [TestEvent] = {
        var random = LMDBTestRandom(state: 2026)
        let generated = CatalogGenerator(seed: 7).events(products: 300, orders: 60).map(\.test)
        var categories: [(id: String, ancestors: [String])] = []
        var products: [String] = []
        var skus: [String] = []
        for e in generated {
            if e.stream.hasPrefix("category-"), case .categoryCreated(let c)? = try? Tote_V1_CategoryEvent(serializedBytes: e.data).event {
                categories.append((c.categoryID, c.ancestorIds))
            } else if e.stream.hasPrefix("product-"), case .productCreated(let c)? = try? Tote_V1_ProductEvent(serializedBytes: e.data).event {
                products.append(c.productID)
            } else if e.stream.hasPrefix("sku-") {
                skus.append(String(e.stream.dropFirst("sku-".count)))
            }
        }
        let roots = categories.filter { $0.ancestors.isEmpty }.map(\.id)
        let inner = categories.filter { !$0.ancestors.isEmpty }.map(\.id)

        func churn(_ n: Int) -> [TestEvent] {
            var out: [TestEvent] = []
            for _ in 0..<n {
                let product = products.randomElement(using: &random)!
                let sku = skus.randomElement(using: &random)!
                switch Int.random(in: 0..<10, using: &random) {
                case 0: out.append(Ev.stock(sku, "main", onHand: 0))
                case 1: out.append(Ev.stock(sku, "main", onHand: Int64.random(in: 1...5, using: &random)))
                case 2: out += [Ev.reserved(sku, "store", 2, id: "r\(out.count)"), Ev.released(sku, "store", 2, id: "r\(out.count)")]
                case 3: out.append(Ev.reserved(sku, "main", 50, id: "r\(out.count)"))
                case 4: out += [Ev.archived(product)] + (Bool.random(using: &random) ? [Ev.published(product, at: 99)] : [])
                case 5: out.append(Ev.prices(product, "EUR", [(sku, Int64.random(in: 100...90_000, using: &random))]))
                case 6: out.append(Ev.prices(product, "USD", [(sku, 1)], group: "wholesale"))
                case 7:
                    let cats = [inner.randomElement(using: &random)!, inner.randomElement(using: &random)!]
                    out.append(Ev.updated(product, Ev.details(name: "Renamed \(product.prefix(4)) Shirt", brand: "Acme", categories: cats,
                                                               attributes: [Ev.attribute("material", Ev.text(Bool.random(using: &random) ? "wool" : "silk"))])))
                case 8: out.append(Ev.moved(inner.randomElement(using: &random)!, ancestors: [roots.randomElement(using: &random)!]))
                default: out.append(Ev.renamed(categories.randomElement(using: &random)!.id, "Renamed \(out.count)"))
                }
            }
            return out
        }

        // Products listed in categories created only later.
        var all = Ev.simpleProduct("late-1", name: "Early Bird Shirt", categories: ["late-leaf"], colours: ["red", "blue"])
        all += Ev.simpleProduct("late-2", name: "Early Owl Shirt", categories: ["late-leaf"])
        let half = generated.count / 2
        all += generated[..<half]
        all += churn(150)
        all += [Ev.category("late-root"), Ev.category("late-leaf", ancestors: ["late-root"])]
        all += generated[half...]
        all += churn(250)
        all += [Ev.moved("late-leaf", ancestors: [roots[0]])]
        return all
    }()

    static func recorded(_ events: [TestEvent]) -> [RecordedEvent] {
        events.enumerated().map { i, e in
            RecordedEvent(position: LogPosition(transactionID: UInt64(i + 1), globalPosition: Int64(i + 1)), stream: e.stream, streamVersion: 1, eventID: UUID(),
                          type: "", schemaVersion: 1, data: e.data, metadata: EventMetadata(actorID: "test", actorRole: "system"), recordedAtMicros: 0)
        }
    }

    /// Event by event (each event a batch of one).
    static let reference: MemoryStore = {
        var store = MemoryStore()
        for e in events { try! CatalogProjection().apply(stream: e.stream, data: e.data, to: &store) }
        return store
    }()

    static func projected(cuts sizes: some Sequence<Int>) throws -> MemoryStore {
        let all = recorded(events)
        var store = MemoryStore()
        var start = 0
        var iterator = sizes.makeIterator()
        while start < all.count {
            let n = max(1, iterator.next() ?? all.count)
            let end = min(all.count, start + n)
            try CatalogProjection().apply(batch: all[start..<end], to: &store)
            start = end
        }
        return store
    }

    @Test("the reference is not trivial: churn left published, archived, moved and out-of-stock products")
    func referenceIsRich() throws {
        let store = Self.reference
        #expect((store.databases[CatalogLayout.postings]?.count ?? 0) > 1_000)
        #expect((store.databases[CatalogLayout.memberships]?.count ?? 0) > 200)
        let late = try search(store) { $0.categorySlug = "late-leaf" }
        #expect(late.totalCount == 2)
        // Moved under the first root at the end: found there, no longer under late-root.
        #expect(try search(store) { $0.categorySlug = "late-root" }.totalCount == 0)
    }

    @Test("one batch, fixed sizes and random cuts all give the bytes of event-by-event application", arguments: [
        [Int.max], [1], [2], [3], [17], [100], [999],
    ])
    func fixedSplits(sizes: [Int]) throws {
        let store = try Self.projected(cuts: sizes.count == 1 ? Array(repeating: sizes[0], count: Self.events.count) : sizes)
        #expect(store == Self.reference, "batches of \(sizes[0]) differ")
        if store != Self.reference {
            for (db, entries) in Self.reference.databases where store.databases[db] != entries {
                Issue.record("database \(db) differs: \(store.databases[db]?.count ?? 0) vs \(entries.count) entries")
            }
        }
    }

    @Test("random cuts (seeded)", arguments: [1 as UInt64, 2, 3])
    func randomSplits(seed: UInt64) throws {
        var random = LMDBTestRandom(state: seed)
        let sizes = (0..<Self.events.count).map { _ in Int.random(in: 1...400, using: &random) }
        #expect(try Self.projected(cuts: sizes) == Self.reference)
    }

    @Test("batches written through LMDB equal the in-memory reference byte for byte")
    func lmdbBatchesEqualReference() async throws {
        let folder = LMDBTestFolder()
        let store = try LMDBReadModelStore(path: folder.path, databases: CatalogProjection().databases, projections: ["catalog"], configuration: .init(noSync: true))
        let all = Self.recorded(Self.events)
        var random = LMDBTestRandom(state: 9)
        var start = 0
        while start < all.count {
            let end = min(all.count, start + Int.random(in: 1...700, using: &random))
            let slice = all[start..<end]
            try await store.write { writer in try CatalogProjection().apply(batch: slice, to: &writer) }
            start = end
        }
        let snapshot = try store.snapshot()
        #expect(snapshot == Self.reference)
        await store.shutdown()
    }

    @Test("undecodable bytes inside a batch throw (the runner then aborts the whole transaction)")
    func badBytesThrow() throws {
        var all = Self.recorded(Array(Self.events.prefix(50)))
        all.append(RecordedEvent(position: LogPosition(transactionID: 51, globalPosition: 51), stream: "product-x", streamVersion: 1, eventID: UUID(), type: "",
                                 schemaVersion: 1, data: [0xff, 0xff, 0xff], metadata: EventMetadata(actorID: "test", actorRole: "system"), recordedAtMicros: 0))
        var store = MemoryStore()
        #expect(throws: (any Error).self) { try CatalogProjection().apply(batch: all[...], to: &store) }
    }
}
