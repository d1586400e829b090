import Foundation
import Testing
import ToteDomain
import ToteProto
@testable import ToteReadModels

@Suite("Autocomplete")
struct AutocompleteTests {
    static let events: [TestEvent] = {
        var e = [Ev.category("t-shirts", name: "T-Shirts"), Ev.category("shoes", name: "Shoes"), Ev.category("cafe", name: "Café Corner")]
        e += Ev.simpleProduct("p1", name: "Classic T-Shirt", brand: "Acme", categories: ["t-shirts"])
        e += Ev.simpleProduct("p2", name: "Classic Sneaker", brand: "Bolt", categories: ["shoes"])
        e += Ev.simpleProduct("p3", name: "Crème Brûlée Candle", brand: "Élan", categories: ["cafe"], keywords: ["dessert"])
        e += Ev.simpleProduct("p4", name: "Classic Hoodie", brand: "Acme", categories: ["t-shirts"])
        e.append(Ev.order("o1", [("p2", 5), ("p4", 1)]))
        e.append(Ev.order("o2", [("p2", 2)]))
        return e
    }()
    static let store = try! MemoryStore.projecting(events)

    func suggest(_ prefix: String, in store: MemoryStore = Self.store, limit: UInt32 = 10, kinds: [Tote_V1_SuggestionKind] = []) throws -> [Tote_V1_Suggestion] {
        var r = Tote_V1_AutocompleteRequest()
        r.prefix = prefix
        r.limit = limit
        r.kinds = kinds
        return try Autocomplete.suggest(store, request: r).suggestions
    }

    @Test func prefixesIgnoreCaseAndDiacritics() throws {
        #expect(try suggest("CRÈME").map(\.id) == ["p3"])
        #expect(try suggest("creme bru").map(\.id) == ["p3"])
        #expect(try suggest("elan", kinds: [.brand]).map(\.text) == ["Élan"])
        #expect(try suggest("caf", kinds: [.category]).map(\.id) == ["cafe"])
        #expect(try suggest("dess").map(\.id) == ["p3"])  // search keywords
        #expect(try suggest("").isEmpty)
        #expect(try suggest("  -- ").isEmpty)
        #expect(try suggest("zzzzzzzzzz").isEmpty)
    }

    @Test func rankedByUnitsOrdered() throws {
        let classic = try suggest("clas", kinds: [.product])
        #expect(classic.map(\.id) == ["p2", "p4", "p1"])  // 7 units, 1 unit, none
        #expect(classic.allSatisfy { !$0.fuzzy })
        #expect(classic[0].score > classic[1].score)
        // Brand and category popularity follow their products.
        let brands = try suggest("b", kinds: [.brand])
        #expect(brands.first?.id == "bolt")
        #expect(try suggest("sho", kinds: [.category]).first?.score == AutocompleteTop.score(units: 7, exactTokens: 1))  // class 3 + 1 + 65
        #expect(try suggest("c", limit: 2).count == 2)
    }

    @Test func oneTypoFromFourCharacters() throws {
        let r = try suggest("clasic")
        #expect(Set(r.map(\.id)).isSuperset(of: ["p1", "p2", "p4"]))
        #expect(r.allSatisfy { $0.fuzzy })
        #expect(try suggest("snaeker").map(\.id) == ["p2"])  // transposition
        // Short prefixes stay exact while exact matches exist…
        #expect(try suggest("cl").allSatisfy { !$0.fuzzy })
        // …and a short misspelling still gets its nearest match rather than nothing.
        let near = try suggest("hpo")
        #expect(near.map(\.id).contains("p4"))
        #expect(near.allSatisfy { $0.fuzzy })
        // A first-letter typo is found by the wider search.
        #expect(try suggest("xlassic").map(\.id).contains("p2"))
    }

    @Test func synonyms() throws {
        let tee = try suggest("tee", kinds: [.product])
        #expect(tee.map(\.id) == ["p1"])
        #expect(tee.first?.fuzzy == true)
        #expect(try suggest("trainer", kinds: [.product]).map(\.id) == ["p2"])
    }

    @Test func archivedProductsAndOrphanBrandsDisappear() throws {
        var store = Self.store
        try store.project([Ev.archived("p2")])
        #expect(try suggest("sneak", in: store, kinds: [.product]).isEmpty)
        #expect(try suggest("bolt", in: store, kinds: [.brand]).isEmpty)
        #expect(try suggest("classic", in: store, kinds: [.product]).map(\.id) == ["p4", "p1"])
        // Unused words leave the vocabulary.
        #expect(try store.get(AutocompleteLayout.dictionary, Array("sneaker".utf8)) == nil)
        // Renames re-index categories.
        try store.project([Ev.renamed("shoes", "Footwear")])
        #expect(try suggest("foot", in: store).map(\.id) == ["shoes"])
        #expect(try suggest("shoe", in: store, kinds: [.category]).isEmpty)
    }

    @Test func brandChangeMovesPopularity() throws {
        var store = Self.store
        try store.project([Ev.updated("p2", Ev.details(name: "Classic Sneaker", brand: "Acme", categories: ["shoes"]))])
        #expect(try suggest("bolt", in: store, kinds: [.brand]).isEmpty)
        #expect(try suggest("acme", in: store, kinds: [.brand]).first?.score == AutocompleteTop.score(units: 8, exactTokens: 1))  // 7 + 1 units
    }

    @Test func invalidRequests() throws {
        #expect(throws: DomainError.self) { try suggest(String(repeating: "a", count: 101)) }
        #expect(throws: DomainError.self) { try suggest("a", kinds: [.unspecified]) }
    }

    @Test func prefixDistance() {
        func d(_ q: String, _ w: String, _ limit: Int = 2) -> Int { Autocomplete.prefixDistance(Array(q.unicodeScalars), Array(w.unicodeScalars), limit: limit) }
        #expect(d("clas", "classic") == 0)
        #expect(d("clasi", "classic") == 1)
        #expect(d("calssic", "classic") == 1)
        #expect(d("xlassic", "classic") == 1)
        #expect(d("zzzz", "classic") == 3)
        #expect(d("", "x") == 0)
    }

    @Test func misspelledQueriesFindNearMatchesInTheGeneratedCatalog() throws {
        let store = GeneratedFixture.store
        var rng = SplitMix64(seed: 3)
        let names = GeneratedFixture.reference.products.values.filter { $0.status == .published }.map(\.details.name).sorted()
        var misses: [String] = []
        for _ in 0..<60 {
            let word = TextNormalizer.queryTokens(names[Int(rng.next() % UInt64(names.count))]).first { $0.count >= 5 }
            guard var chars = word.map(Array.init) else { continue }
            let i = 1 + Int(rng.next() % UInt64(chars.count - 1))
            chars[i] = chars[i] == "q" ? "x" : "q"
            let typo = String(chars)
            if try suggest(typo, in: store).isEmpty { misses.append(typo) }
        }
        #expect(misses.isEmpty, "no suggestion for \(misses)")
        // Exact prefixes rank popular products first: the top suggestion has the highest score.
        let top = try suggest("cl", in: store, kinds: [.product])
        #expect(top.count == 10)
        #expect(zip(top, top.dropFirst()).allSatisfy { $0.score >= $1.score })
    }

    @Test("the top suggestions of short prefixes equal a brute-force ranking of every matching active entity")
    func topSuggestionsEqualBruteForce() throws {
        let store = GeneratedFixture.store
        // Every active entity with its tokens, read straight from the entity records.
        var entities: [(key: [UInt8], entity: AutocompleteEntity)] = []
        try store.scan(AutocompleteLayout.entities, prefix: [], from: nil, reverse: false) { k, v in
            if let e = AutocompleteEntity(bytes: v), e.active { entities.append((Array(k), e)) }
            return true
        }
        var checked = 0
        for prefix in ["c", "cl", "ka", "lo", "sm", "ur", "mo", "b", "zen", "nor", "st"] {
            for limit: UInt32 in [1, 10, 50] {
                let expected = entities
                    .filter { $0.entity.tokens.contains { $0.hasPrefix(prefix) } }
                    .map { (units: $0.entity.score, kind: $0.key[0], text: $0.entity.text, id: $0.entity.ref) }
                    .sorted { a, b in
                        if a.units != b.units { return a.units > b.units }
                        if a.kind != b.kind { return a.kind < b.kind }
                        if a.text != b.text { return a.text < b.text }
                        return a.id < b.id
                    }
                    .prefix(Int(limit))
                let got = try suggest(prefix, in: store, limit: limit)
                #expect(got.map(\.id) == expected.map(\.id), "\(prefix) limit \(limit)")
                #expect(got.map(\.score) == expected.map { AutocompleteTop.score(units: $0.units, exactTokens: 1) }, "\(prefix) limit \(limit)")
                #expect(got.map(\.text) == expected.map(\.text), "\(prefix) limit \(limit)")
                checked += got.count
            }
        }
        #expect(checked > 300)
    }

    @Test func replayIsDeterministic() throws {
        let a = try MemoryStore.projecting(Self.events)
        let b = try MemoryStore.projecting(Self.events)
        #expect(a == b)
        var onlyAutocomplete = MemoryStore()
        try onlyAutocomplete.project(Self.events, catalog: false)
        #expect(Set(onlyAutocomplete.databases.keys).isSubset(of: Set(AutocompleteLayout.all)))
    }
}
