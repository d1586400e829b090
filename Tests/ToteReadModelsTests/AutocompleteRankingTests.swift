import Foundation
import Testing
import ToteDomain
import ToteProto
@testable import ToteReadModels

/// Counts what a store is asked: reads (get, withValue, scan) and puts per database and key.
final class StoreCalls {
    var reads = 0
    var puts: [(database: String, key: [UInt8])] = []

    func puts(in database: String) -> [[UInt8]] { puts.filter { $0.database == database }.map(\.key) }
}

/// A `MemoryStore` that records the calls made to it (the real store underneath does the work).
struct CountingStore: ReadModelWriter {
    var base: MemoryStore
    let calls = StoreCalls()

    func get(_ database: String, _ key: [UInt8]) throws -> [UInt8]? {
        calls.reads += 1
        return try base.get(database, key)
    }

    func withValue<R>(_ database: String, _ key: [UInt8], _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R? {
        calls.reads += 1
        return try base.withValue(database, key, body)
    }

    func scan(_ database: String, prefix: [UInt8], from start: [UInt8]?, reverse: Bool, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        calls.reads += 1
        try base.scan(database, prefix: prefix, from: start, reverse: reverse, body)
    }

    mutating func put(_ database: String, _ key: [UInt8], _ value: [UInt8]) throws {
        calls.puts.append((database, key))
        try base.put(database, key, value)
    }

    mutating func delete(_ database: String, _ key: [UInt8]) throws {
        calls.puts.append((database, key))
        try base.delete(database, key)
    }
}

/// Ranking (exact matches before typo and synonym matches, then popularity), the one-get answer
/// of a token whose exact matches fill the limit, and list maintenance that writes only lists
/// whose order or records change.
@Suite("Autocomplete ranking and maintenance")
struct AutocompleteRankingTests {
    static func request(_ prefix: String, limit: UInt32 = 10, kinds: [Tote_V1_SuggestionKind] = []) -> Tote_V1_AutocompleteRequest {
        var r = Tote_V1_AutocompleteRequest()
        r.prefix = prefix
        r.limit = limit
        r.kinds = kinds
        return r
    }

    /// Both paths' answers, checked equal.
    static func both(_ store: some ReadModelReader, _ r: Tote_V1_AutocompleteRequest) throws -> [Tote_V1_Suggestion] {
        let table = try AutocompleteTopTests.ranked(Autocomplete.answer(store, r))
        let general = try AutocompleteTopTests.ranked(Autocomplete.answer(store, r, useTable: false))
        #expect(table == general, "\(r.prefix)")
        return table
    }

    static func apply(_ events: [TestEvent], to store: inout some ReadModelWriter) throws {
        for e in events { try AutocompleteProjection().apply(stream: e.stream, data: e.data, to: &store) }
    }

    /// "Lamp Shade" (no sales) and "Lama Wool Scarf" (100 units), one edit apart on "lamp"/"lama";
    /// "Alpha Widget" (100 units) and "Alpha Gadget" (10 units) under "alpha".
    static func small() throws -> MemoryStore {
        var store = MemoryStore()
        var events = [Ev.category("home", name: "Home")]
        events += Ev.simpleProduct("lamp", name: "Lamp Shade", brand: "Lumo", categories: ["home"])
        events += Ev.simpleProduct("lama", name: "Lama Wool Scarf", brand: "Woolly", categories: ["home"])
        events += Ev.simpleProduct("widget", name: "Alpha Widget", brand: "Acme", categories: ["home"])
        events += Ev.simpleProduct("gadget", name: "Alpha Gadget", brand: "Acme", categories: ["home"])
        events.append(Ev.order("o1", [("lama", 100), ("widget", 100), ("gadget", 10)]))
        try apply(events, to: &store)
        return store
    }

    @Test("an exact match ranks before a far more popular typo match, in the table path and the general path")
    func exactBeforeTypo() throws {
        let store = try Self.small()
        let got = try Self.both(store, Self.request("lamp", kinds: [.product]))
        #expect(got.map(\.id) == ["lamp", "lama"])
        #expect(got.map(\.fuzzy) == [false, true])
        #expect(got[0].score > got[1].score)  // higher is better, though "lama" sold 100 units
        #expect(got[0].score == AutocompleteTop.score(units: 0, exactTokens: 1))
        #expect(got[1].score == AutocompleteTop.score(units: 100, exactTokens: 0))
        // The misspelling alone still finds its near match.
        let typo = try Self.both(store, Self.request("lamx", kinds: [.product]))
        #expect(typo.map(\.id) == ["lama", "lamp"])  // both one typo away: popularity decides
        #expect(typo.allSatisfy { $0.fuzzy })
        // Several tokens: fewer typo-matched tokens first.
        let two = try Self.both(store, Self.request("lamp sha", kinds: [.product]))
        #expect(two.map(\.id) == ["lamp"])
        let typoInBoth = try Self.both(store, Self.request("lamx wool", kinds: [.product]))
        #expect(typoInBoth.map(\.id) == ["lama"])
        #expect(typoInBoth.first?.fuzzy == true)
    }

    @Test("synonym matches fill after exact ones")
    func synonymsAfterExact() throws {
        var store = MemoryStore()
        var events = [Ev.category("c", name: "Clothing")]
        events += Ev.simpleProduct("hood", name: "Zip Hoodie", brand: "Acme", categories: ["c"])
        events += Ev.simpleProduct("sweat", name: "Crew Sweatshirt", brand: "Acme", categories: ["c"])
        events.append(Ev.order("o1", [("sweat", 40)]))
        try Self.apply(events, to: &store)
        let got = try Self.both(store, Self.request("hoodie", kinds: [.product]))
        #expect(got.map(\.id) == ["hood", "sweat"])
        #expect(got.map(\.fuzzy) == [false, true])
        // With room for one suggestion only, the exact match is the whole answer: a slice of its list.
        let one = Self.request("hoodie", limit: 1, kinds: [.product])
        guard case .encoded(let bytes) = try Autocomplete.answer(store, one) else { Issue.record("not a point read"); return }
        #expect(try Tote_V1_AutocompleteResponse(serializedBytes: bytes).suggestions.map(\.id) == ["hood"])
    }

    @Test("a 5-letter token whose exact list fills the limit is answered by exactly one read")
    func fullExactListIsOneRead() throws {
        let generated = GeneratedFixture.store
        var checked = 0
        for prefix in ["class", "urban", "cotto", "jacke", "nordi", "summe", "light", "linen"] {
            let r = Self.request(prefix)
            let exact = try generated.withValue(AutocompleteLayout.top, [0] + Array(prefix.utf8)) { Int($0[0]) } ?? 0
            guard exact >= 10 else { continue }
            let counting = CountingStore(base: generated)
            let answer = try Autocomplete.answer(counting, r)
            guard case .encoded(let bytes) = answer else { Issue.record("\(prefix): not a point read"); continue }
            #expect(counting.calls.reads == 1, "\(prefix)")
            let suggestions = try Tote_V1_AutocompleteResponse(serializedBytes: bytes).suggestions
            #expect(suggestions.count == 10 && suggestions.allSatisfy { !$0.fuzzy })
            #expect(try AutocompleteTopTests.ranked(Autocomplete.answer(generated, r, useTable: false)) == suggestions)
            checked += 1
        }
        #expect(checked >= 3)
    }

    @Test("a units increase that moves no entry and keeps the popularity class writes no list; a class change or an overtake does")
    func unitsIncreaseWritesOnlyWhatChanges() throws {
        var store = CountingStore(base: try Self.small())
        let alpha = [UInt8(0)] + Array("alpha".utf8)
        let before = try store.get(AutocompleteLayout.top, alpha)

        // widget 100 → 101 units: still first everywhere, class 7 either way.
        try Self.apply([Ev.order("o2", [("widget", 1)])], to: &store)
        #expect(store.calls.puts(in: AutocompleteLayout.top).isEmpty)
        #expect(!store.calls.puts(in: AutocompleteLayout.entities).isEmpty)  // the units are counted
        #expect(try store.get(AutocompleteLayout.top, alpha) == before)
        #expect(try AutocompleteTopTests.storedTable(store) == AutocompleteTopTests.bruteForceTable(store))

        // gadget 10 → 60 units: still below widget (101), but its class goes 4 → 6: the records
        // showing its score change.
        store.calls.puts.removeAll()
        try Self.apply([Ev.order("o3", [("gadget", 50)])], to: &store)
        #expect(store.calls.puts(in: AutocompleteLayout.top).contains([1] + Array("alpha".utf8)))
        #expect(try AutocompleteTopTests.storedTable(store) == AutocompleteTopTests.bruteForceTable(store))

        // gadget 60 → 160 units: it overtakes widget.
        store.calls.puts.removeAll()
        try Self.apply([Ev.order("o4", [("gadget", 100)])], to: &store)
        #expect(store.calls.puts(in: AutocompleteLayout.top).contains([1] + Array("alpha".utf8)))
        let products = try Self.both(store, Self.request("alpha", kinds: [.product]))
        #expect(products.map(\.id) == ["gadget", "widget"])
        #expect(try AutocompleteTopTests.storedTable(store) == AutocompleteTopTests.bruteForceTable(store))
    }

    @Test("an entity that stays below a full list's last entry does not touch that list")
    func belowAFullListTouchesNothing() throws {
        let generated = GeneratedFixture.store
        let entities = try AutocompleteTopTests.activeEntities(generated)
        let units = Dictionary(uniqueKeysWithValues: entities.map { ($0.key, $0.entity.score) })
        // A full every-kind list whose last entry has ≥ 2 units more than a product under its
        // prefix that the list does not hold.
        var found: (list: [UInt8], product: String)?
        try generated.scan(AutocompleteLayout.top, prefix: [0], from: nil, reverse: false) { k, v in
            guard let list = AutocompleteTop.decode(v), list.count == AutocompleteTop.capacity,
                  let last = list.last.flatMap({ units[$0.key] }), last >= 2 else { return true }
            let prefix = String(decoding: k.dropFirst(), as: UTF8.self)
            let held = Set(list.map(\.key))
            if let outside = entities.first(where: { e in
                e.key[0] == 1 && !held.contains(e.key) && e.entity.score + 1 < last && e.entity.tokens.contains { $0.hasPrefix(prefix) }
            }) {
                found = (Array(k), outside.entity.ref)
                return false
            }
            return true
        }
        let (list, product) = try #require(found)
        var store = CountingStore(base: generated)
        let before = try store.get(AutocompleteLayout.top, list)
        try Self.apply([Ev.order("below-1", [(product, 1)])], to: &store)
        #expect(!store.calls.puts(in: AutocompleteLayout.top).contains(list))
        #expect(try store.get(AutocompleteLayout.top, list) == before)
        #expect(try AutocompleteTopTests.storedTable(store) == AutocompleteTopTests.bruteForceTable(store))
    }

    @Test("live orders read many lists but write few: most units changes move nothing (figures printed for the report)")
    func maintenanceWritesFewLists() throws {
        var store = MemoryStore()
        let events = GeneratedFixture.events
        let recorded = events.enumerated().map { $0.element.recorded(position: Int64($0.offset + 1)) }
        var catchUp = AutocompleteTop.FlushStats()
        for start in stride(from: 0, to: recorded.count, by: 1000) {
            catchUp += try AutocompleteProjection().applyCounting(batch: recorded[start..<min(start + 1000, recorded.count)], to: &store)
        }
        // The last 300 orders once more, one per batch, as the live projector sees them.
        var live = AutocompleteTop.FlushStats()
        for o in recorded.filter({ $0.stream.hasPrefix("order-") }).suffix(300) {
            live += try AutocompleteProjection().applyCounting(batch: [o][...], to: &store)
        }
        print("autocomplete maintenance: catch-up of \(recorded.count) events in batches of 1000: lists read \(catchUp.lists), written \(catchUp.written), rescans \(catchUp.rescans), left as they were although units changed \(catchUp.unitsOnly)")
        print("autocomplete maintenance: 300 live orders: lists read \(live.lists), written \(live.written), rescans \(live.rescans), left as they were although units changed \(live.unitsOnly)")
        #expect(live.lists > 1000)
        #expect(live.written * 2 < live.lists)
        #expect(live.unitsOnly > live.written)
        #expect(try AutocompleteTopTests.storedTable(store) == AutocompleteTopTests.bruteForceTable(store))
    }
}
