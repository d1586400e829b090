@testable import EventStore
import Foundation
import SwiftProtobuf
import Testing
import ToteAPI
import ToteDomain
import ToteProto
import ToteRPC
import ToteServices
@testable import ToteReadModels

/// The prefix → top-k table (`autocomplete.top`): its lists equal a brute-force ranking, any split
/// of the events into batches gives the same bytes (in memory and in LMDB), its answers equal the
/// general path's, and the service sends its bytes as they are.
@Suite("Autocomplete top table")
struct AutocompleteTopTests {
    /// Every active entity, straight from the entity records.
    static func activeEntities(_ store: some ReadModelReader) throws -> [(key: [UInt8], entity: AutocompleteEntity)] {
        var out: [(key: [UInt8], entity: AutocompleteEntity)] = []
        try store.scan(AutocompleteLayout.entities, prefix: [], from: nil, reverse: false) { k, v in
            if let e = AutocompleteEntity(bytes: v), e.active { out.append((Array(k), e)) }
            return true
        }
        return out
    }

    /// Every list the table must hold, computed by ranking all active entities under each prefix.
    static func bruteForceTable(_ store: some ReadModelReader) throws -> [[UInt8]: [AutocompleteTop.Stored]] {
        var under: [[UInt8]: [AutocompleteTop.Entry]] = [:]
        for (key, e) in try activeEntities(store) {
            let entry = AutocompleteTop.Entry(units: e.score, key: key, text: Array(e.text.utf8), ref: Array(e.ref.utf8))
            var prefixes = Set<String>()
            for t in e.tokens {
                let scalars = Array(t.unicodeScalars)
                for n in 1...min(scalars.count, 10) {
                    var v = String.UnicodeScalarView()
                    v.append(contentsOf: scalars[..<n])
                    prefixes.insert(String(v))
                }
            }
            for p in prefixes {
                under[[0] + Array(p.utf8), default: []].append(entry)
                under[[key[0]] + Array(p.utf8), default: []].append(entry)
            }
        }
        return under.mapValues { list in
            Array(list.sorted { a, b in
                if a.units != b.units { return a.units > b.units }
                if a.kind != b.kind { return a.kind < b.kind }
                if a.text != b.text { return a.text.lexicographicallyPrecedes(b.text) }
                if a.ref != b.ref { return a.ref.lexicographicallyPrecedes(b.ref) }
                return a.key.lexicographicallyPrecedes(b.key)
            }.prefix(50)).map { AutocompleteTop.Stored(key: $0.key, text: $0.text, ref: $0.ref, score: AutocompleteTop.score(units: $0.units, exactTokens: 1)) }
        }
    }

    static func storedTable(_ store: some ReadModelReader) throws -> [[UInt8]: [AutocompleteTop.Stored]] {
        var out: [[UInt8]: [AutocompleteTop.Stored]] = [:]
        try store.scan(AutocompleteLayout.top, prefix: [], from: nil, reverse: false) { k, v in
            if k.first != 0xff { out[Array(k)] = AutocompleteTop.decode(v) }
            return true
        }
        return out
    }

    @Test("every stored list is the brute-force top 50 of its prefix, and every prefix has its list")
    func listsEqualBruteForce() throws {
        let store = GeneratedFixture.store
        let expected = try Self.bruteForceTable(store)
        let stored = try Self.storedTable(store)
        #expect(stored.count == expected.count)
        var mismatches = 0
        for (key, list) in expected where stored[key] != list { mismatches += 1 }
        #expect(mismatches == 0)
        #expect(expected[[0] + Array("c".utf8)]?.count == 50)
        // The stored records are exactly what swift-protobuf writes for those suggestions.
        let value = try #require(try store.get(AutocompleteLayout.top, [0] + Array("cl".utf8)))
        let sliced = try #require(value.withUnsafeBytes { AutocompleteTop.slice($0, limit: 10).map { Array($0) } })
        let decoded = try Tote_V1_AutocompleteResponse(serializedBytes: sliced)
        #expect(decoded.suggestions.count == 10)
        #expect(try decoded.serializedBytes() == sliced)
        #expect(decoded.suggestions.allSatisfy { !$0.fuzzy && $0.score >= 1 })
    }

    /// A generated log plus changes that make full lists lose members (archiving the most popular
    /// products, a brand change, category renames), as the event store would deliver it.
    static let churnLog: [RecordedEvent] = {
        let generated = CatalogGenerator(seed: 7).events(products: 300, orders: 600)
        var events = generated.enumerated().map { $0.element.recorded(position: Int64($0.offset + 1)) }
        var store = MemoryStore()
        for e in generated { try! AutocompleteProjection().apply(stream: e.stream, data: e.data, to: &store) }
        let popular = try! activeEntities(store).filter { $0.key[0] == 1 }.sorted { $0.entity.score > $1.entity.score }.prefix(12)
        var tail: [TestEvent] = popular.prefix(8).map { Ev.archived($0.entity.ref) }
        for p in popular.suffix(4) {
            tail.append(Ev.updated(p.entity.ref, Ev.details(name: "Renamed \(p.entity.text)", brand: "Zzz Newbrand", categories: [])))
        }
        tail.append(Ev.order("churn-1", popular.suffix(4).map { (product: $0.entity.ref, quantity: UInt32(50)) }))
        for (i, e) in tail.enumerated() {
            let position = Int64(events.count + i + 1)
            events.append(RecordedEvent(position: LogPosition(transactionID: UInt64(position), globalPosition: position), stream: e.stream, streamVersion: 1,
                                        eventID: UUID(), type: "test", schemaVersion: 1, data: e.data,
                                        metadata: EventMetadata(actorID: "test", actorRole: "system"), recordedAtMicros: 0))
        }
        return events
    }()

    static func applied(_ events: [RecordedEvent], batch size: Int) throws -> MemoryStore {
        var store = MemoryStore()
        for start in stride(from: 0, to: events.count, by: size) {
            try AutocompleteProjection().apply(batch: events[start..<min(start + size, events.count)], to: &store)
        }
        return store
    }

    @Test("any split of the same events into batches gives the same bytes, equal to event-by-event application")
    func batchSplitsGiveTheSameBytes() async throws {
        let events = Self.churnLog
        var single = MemoryStore()
        for e in events { try AutocompleteProjection().apply(e, to: &single) }
        for size in [1, 7, 100, 1000, events.count] {
            let batched = try Self.applied(events, batch: size)
            #expect(batched == single, "batches of \(size)")
        }
        // The churn really emptied popular entries out of full lists, and the lists are still right.
        #expect(try Self.storedTable(single) == Self.bruteForceTable(single))
        #expect(try single.get(AutocompleteLayout.top, [3] + Array("zzz".utf8)) != nil)

        // The same through a real LMDB environment, 250 events per write transaction.
        let folder = LMDBTestFolder()
        let lmdb = try LMDBReadModelStore(path: folder.path, projections: [AutocompleteProjection()], configuration: .init(noSync: true))
        for start in stride(from: 0, to: events.count, by: 250) {
            let slice = Array(events[start..<min(start + 250, events.count)])
            try await lmdb.write { writer in try AutocompleteProjection().apply(batch: slice[...], to: &writer) }
        }
        #expect(try lmdb.snapshot() == single)
        await lmdb.shutdown()
    }

    /// Single-token requests of every shape: short and long prefixes, typos of each kind,
    /// synonyms, kinds filters, limits.
    static func requests() -> [Tote_V1_AutocompleteRequest] {
        var words = GeneratedFixture.reference.products.values.filter { $0.status == .published }
            .flatMap { TextNormalizer.queryTokens($0.details.name) }
        words = Array(Set(words)).sorted()
        var rng = SplitMix64(seed: 11)
        var prefixes = ["c", "cl", "ka", "lo", "sm", "ur", "mo", "b", "zen", "nor", "st", "tee", "tv", "couch", "sneaker", "qq", "zzzzzzzz"]
        for _ in 0..<80 {
            let w = Array(words[Int(rng.next() % UInt64(words.count))].unicodeScalars)
            let n = 1 + Int(rng.next() % UInt64(min(w.count, 10)))
            var p = Array(w[..<n])
            if p.count >= 4 {
                let i = 1 + Int(rng.next() % UInt64(p.count - 1))
                switch rng.next() % 5 {
                case 0: p[i] = p[i] == "x" ? "y" : "x"
                case 1: p.remove(at: i)
                case 2: p.insert("e", at: i)
                case 3: p.swapAt(i - 1, i)
                default: break
                }
            }
            var v = String.UnicodeScalarView()
            v.append(contentsOf: p)
            prefixes.append(String(v))
        }
        var out: [Tote_V1_AutocompleteRequest] = []
        for (i, prefix) in prefixes.enumerated() {
            for (limit, kinds) in [(UInt32(0), [Tote_V1_SuggestionKind]()), (1, [.product]), (50, [.brand, .category]), (7, [.product, .category, .brand])] {
                var r = Tote_V1_AutocompleteRequest()
                r.prefix = i % 3 == 0 ? prefix.uppercased() : prefix
                r.limit = limit
                r.kinds = kinds
                out.append(r)
            }
        }
        return out
    }

    static func ranked(_ answer: Autocomplete.Answer) throws -> [Tote_V1_Suggestion] {
        switch answer {
        case .encoded(let bytes): return try Tote_V1_AutocompleteResponse(serializedBytes: bytes).suggestions
        case .ranked(let c):
            return try Tote_V1_AutocompleteResponse(serializedBytes: AutocompleteTop.encodeResponse(c)).suggestions
        }
    }

    @Test("answers from the table equal the general path's (terms and vocabulary scans) for every request shape")
    func tableAnswersEqualTheGeneralPath() throws {
        let store = GeneratedFixture.store
        var pointReads = 0, fullExactLists = 0, nonEmpty = 0, fuzzy = 0
        for r in Self.requests() {
            let table = try Autocomplete.answer(store, r)
            if case .encoded = table { pointReads += 1 }
            // A token of 4+ characters whose exact list (one table) fills the limit skips the typo pass.
            let token = TextNormalizer.queryTokens(r.prefix).first ?? ""
            let limit = r.limit == 0 ? Autocomplete.defaultLimit : Int(r.limit)
            let tables = Set(r.kinds).count == 1 ? [UInt8(r.kinds[0].rawValue)] : (Set(r.kinds).count == 3 || r.kinds.isEmpty ? [UInt8(0)] : [])
            if token.unicodeScalars.count >= 4, let t = tables.first,
               let n = try store.withValue(AutocompleteLayout.top, [t] + Array(token.utf8), { Int($0[0]) }), n >= limit {
                fullExactLists += 1
                if case .encoded = table {} else { Issue.record("\(r.prefix) limit \(limit): not a point read") }
            }
            let got = try Self.ranked(table)
            let expected = try Self.ranked(Autocomplete.answer(store, r, useTable: false))
            #expect(got == expected, "\(r.prefix) limit \(r.limit) kinds \(r.kinds)")
            // Exact matches first: no fuzzy suggestion ranks above an exact one, scores never rise.
            #expect(!zip(got, got.dropFirst()).contains { $0.fuzzy && !$1.fuzzy }, "\(r.prefix)")
            #expect(zip(got, got.dropFirst()).allSatisfy { $0.score >= $1.score }, "\(r.prefix)")
            if !got.isEmpty { nonEmpty += 1 }
            if got.contains(where: \.fuzzy) { fuzzy += 1 }
        }
        #expect(pointReads > 100)
        #expect(fullExactLists > 8)
        #expect(nonEmpty > 300)
        #expect(fuzzy > 50)
    }

    @Test("the encoded answer is the bytes swift-protobuf writes for the typed answer, multi-token and misspelled queries included")
    func encodedEqualsTyped() throws {
        let store = GeneratedFixture.store
        var requests = Self.requests()
        for prefix in ["classic sh", "urban b", "xlassic", "hpo", "t-sh", "crème", "  "] {
            var r = Tote_V1_AutocompleteRequest()
            r.prefix = prefix
            requests.append(r)
        }
        for r in requests {
            let typed = try Autocomplete.suggest(store, request: r)
            #expect(try Autocomplete.suggestEncoded(store, request: r) == typed.serializedBytes(), "\(r.prefix)")
        }
    }

    /// Every neighbour of `token` (one edit) that has a list in one of `tables`, with pruning or
    /// without, and how many lookups the enumeration made.
    static func neighboursWithLists(_ reader: some ReadModelReader, _ token: [UInt8], tables: [UInt8], pruned: Bool) throws -> (Set<[UInt8]>, Int) {
        let letters = try AutocompleteTop.alphabet(reader)
        let following = pruned ? try AutocompleteTop.followingBytes(reader, tables: tables, token: token) : nil
        var found = Set<[UInt8]>(), lookups = 0
        try AutocompleteTop.forEachNeighbour(ascii: token, letters, following: following) { n in
            for t in tables {
                lookups += 1
                if try reader.withValue(AutocompleteLayout.top, [t] + n, { _ in true }) == true { found.insert([t] + n) }
            }
        }
        return (found, lookups)
    }

    @Test("the typo pass skips only neighbours no list can have: the same lists are found, with far fewer lookups (memory and LMDB)")
    func neighbourPruningKeepsEveryList() async throws {
        let folder = LMDBTestFolder()
        let lmdb = try LMDBReadModelStore(path: folder.path, projections: [AutocompleteProjection()], configuration: .init(noSync: true))
        let events = GeneratedFixture.events.enumerated().map { $0.element.recorded(position: Int64($0.offset + 1)) }
        for start in stride(from: 0, to: events.count, by: 2000) {
            let slice = Array(events[start..<min(start + 2000, events.count)])
            try await lmdb.write { writer in try AutocompleteProjection().apply(batch: slice[...], to: &writer) }
        }
        let tokens = Self.requests().compactMap { TextNormalizer.queryTokens($0.prefix).first }
            .filter { $0.unicodeScalars.count >= 4 && $0.utf8.allSatisfy { $0 < 0x80 } }
        #expect(tokens.count > 40)
        var all = 0, kept = 0, withLists = 0
        for token in Set(tokens).sorted() {
            for tables in [[UInt8(0)], [UInt8(1), 3]] {
                let (full, fullLookups) = try Self.neighboursWithLists(GeneratedFixture.store, Array(token.utf8), tables: tables, pruned: false)
                let (memory, memoryLookups) = try Self.neighboursWithLists(GeneratedFixture.store, Array(token.utf8), tables: tables, pruned: true)
                let (onDisk, _) = try lmdb.read { try Self.neighboursWithLists($0, Array(token.utf8), tables: tables, pruned: true) }
                #expect(memory == full, "\(token) tables \(tables)")
                #expect(onDisk == full, "\(token) tables \(tables) (LMDB)")
                all += fullLookups
                kept += memoryLookups
                withLists += full.count
            }
        }
        #expect(withLists > 20, "neighbours with lists exist, so the comparison means something")
        #expect(kept * 2 < all, "pruning made \(kept) of \(all) lookups")
        await lmdb.shutdown()
    }

    @Test("over TCP from LMDB, the encoded handler's answer arrives as the stored slice; the typed handler still works")
    func servedVerbatimOverTheWire() async throws {
        let folder = LMDBTestFolder()
        let lmdb = try LMDBReadModelStore(path: folder.path, projections: [AutocompleteProjection()], configuration: .init(noSync: true))
        let events = Self.churnLog
        for start in stride(from: 0, to: events.count, by: 1000) {
            let slice = Array(events[start..<min(start + 1000, events.count)])
            try await lmdb.write { writer in try AutocompleteProjection().apply(batch: slice[...], to: &writer) }
        }
        var catalog = CatalogQueryHandlers()
        catalog.autocompleteEncoded = { reader, request in try Autocomplete.suggestEncoded(reader, request: request) }
        var router = RPCRouter()
        QueryService(source: lmdb, catalog: catalog).register(into: &router)
        let keyring = APIKeyring(["autocomplete-test-key-01": .storefront])
        let server = RPCServer(configuration: .init(host: "127.0.0.1", port: 0, drainTimeout: .seconds(5)), router: router, keyring: keyring)
        let address = try await server.start()
        let client = try await ClientConnection.connect(host: "127.0.0.1", port: try #require(address.port), configuration: .init(apiKey: "autocomplete-test-key-01"))
        for prefix in ["c", "cl", "sm", "clasic", "tee", "classic sh"] {
            var request = Tote_V1_AutocompleteRequest()
            request.prefix = prefix
            let response = try await client.unary(QueryAPI.autocomplete, request)
            let local = try lmdb.read { try Autocomplete.suggest($0, request: request) }
            #expect(response == local, "\(prefix)")
            #expect(!response.suggestions.isEmpty, "\(prefix)")
        }
        var request = Tote_V1_AutocompleteRequest()
        request.prefix = "Cl"
        request.limit = 3
        let response = try await client.unary(QueryAPI.autocomplete, request)
        let stored = try lmdb.read { reader in
            try reader.withValue(AutocompleteLayout.top, [0] + Array("cl".utf8)) { AutocompleteTop.slice($0, limit: 3).map { Array($0) } } ?? nil
        }
        #expect(try response.serializedBytes() == stored)
        #expect(response.suggestions.count == 3)
        let bad = await #expect(throws: RPCError.self) {
            var r = Tote_V1_AutocompleteRequest()
            r.prefix = String(repeating: "a", count: 101)
            _ = try await client.unary(QueryAPI.autocomplete, r)
        }
        #expect(bad?.code == .invalidArgument)
        await client.close()
        await server.shutdownGracefully()
        await lmdb.shutdown()
    }
}
