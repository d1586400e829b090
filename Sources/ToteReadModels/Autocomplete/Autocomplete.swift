import ToteDomain
import ToteProto

/// Autocomplete over the ``AutocompleteProjection`` model: every query token is matched as a
/// prefix of an entity's tokens (case and diacritics ignored); tokens of 4+ characters also match
/// with one typo, and built-in synonyms expand whole words. Suggestions rank as Meilisearch's
/// "typo" rule does: fewer typo/synonym-matched tokens first (exact matches before `fuzzy` ones),
/// then popularity (units ordered), then kind, text, id. Typo and synonym matches thus only fill
/// what exact matches leave. When nothing matches, a wider search (one typo from 2 characters,
/// two from 8, any first letter) gives a misspelled query its nearest matches.
public enum Autocomplete {
    /// Suggestions when the request gives no limit.
    public static let defaultLimit = 10
    /// The most suggestions served.
    public static let maxLimit = 50

    /// Built-in synonym groups (normalized tokens); a whole query word in a group also matches the
    /// others as prefixes.
    public static let synonymGroups: [[String]] = [
        ["tee", "tshirt"], ["sneaker", "trainer"], ["sneakers", "trainers"], ["hoodie", "sweatshirt"],
        ["pants", "trousers"], ["jumper", "sweater", "pullover"], ["sofa", "couch"], ["tv", "television"],
        ["laptop", "notebook"], ["phone", "smartphone", "mobile"], ["jacket", "coat"], ["bag", "handbag"],
    ]

    private static let synonyms: [String: [String]] = {
        var map: [String: [String]] = [:]
        for group in synonymGroups { for word in group { map[word, default: []] += group.filter { $0 != word } } }
        return map
    }()

    /// What an answer is made of: a stored slice (already the encoded response) or ranked
    /// candidates.
    enum Answer {
        case encoded([UInt8])
        case ranked([AutocompleteTop.Candidate])
    }

    /// Answers one autocomplete request from one snapshot.
    public static func suggest(_ reader: some ReadModelReader, request: Tote_V1_AutocompleteRequest) throws -> Tote_V1_AutocompleteResponse {
        switch try answer(reader, request) {
        case .encoded(let bytes):
            return try Tote_V1_AutocompleteResponse(serializedBytes: bytes)
        case .ranked(let candidates):
            var response = Tote_V1_AutocompleteResponse()
            response.suggestions = candidates.map { c in
                var s = Tote_V1_Suggestion()
                s.kind = Tote_V1_SuggestionKind(rawValue: Int(c.entry.kind)) ?? .unspecified
                s.text = String(decoding: c.entry.text, as: UTF8.self)
                s.id = String(decoding: c.entry.ref, as: UTF8.self)
                s.fuzzy = c.fuzzy
                s.score = c.score
                return s
            }
            return response
        }
    }

    /// The same answer as ``suggest(_:request:)``, as the encoded `tote.v1.AutocompleteResponse`
    /// (the same bytes swift-protobuf writes). The common request (one token of up to 10
    /// characters whose exact matches fill the limit, or of up to 3 characters with no synonym;
    /// at most one kind) is one get whose value is sliced, never decoded.
    public static func suggestEncoded(_ reader: some ReadModelReader, request: Tote_V1_AutocompleteRequest) throws -> [UInt8] {
        switch try answer(reader, request) {
        case .encoded(let bytes): return bytes
        case .ranked(let candidates): return AutocompleteTop.encodeResponse(candidates)
        }
    }

    /// The answer to `request`; `useTable: false` skips the prefix lists (tests compare both).
    static func answer(_ reader: some ReadModelReader, _ request: Tote_V1_AutocompleteRequest, useTable: Bool = true) throws -> Answer {
        var v = Validator()
        v.require(request.prefix.count <= 100, "prefix", "at most 100 characters")
        for (i, k) in request.kinds.enumerated() {
            v.require(k == .product || k == .category || k == .brand, "kinds[\(i)]", "unknown suggestion kind")
        }
        try v.check()
        let limit = request.limit == 0 ? defaultLimit : min(Int(request.limit), maxLimit)
        let kinds = Set(request.kinds.map { UInt8($0.rawValue) })
        let tokens = TextNormalizer.queryTokens(request.prefix)
        guard !tokens.isEmpty else { return .ranked([]) }
        if useTable, tokens.count == 1, let fast = try AutocompleteTop.answer(reader, token: tokens[0], limit: limit, kinds: kinds, synonyms: synonyms[tokens[0]] ?? []) {
            return fast
        }
        // The general path: several tokens, long tokens, or nothing matched exactly.
        var found = try candidates(reader, tokens, wide: false, kinds: kinds)
        if found.isEmpty { found = try candidates(reader, tokens, wide: true, kinds: kinds) }

        // Keep the best `limit` while reading: a candidate's units come from the first bytes of its
        // record, and its text and id are decoded only when it can enter the kept list (most
        // candidates of a short prefix cannot). Same order as sorting every candidate.
        var best: [AutocompleteTop.Candidate] = []
        best.reserveCapacity(limit + 1)
        for (key, typos) in found {
            let kind = key[0]
            let header: (units: UInt64, active: Bool)? = try reader.withValue(AutocompleteLayout.entities, key) { b in
                guard b.count >= 15 else { return nil }
                return (CatalogLayout.readU64(b, at: 0), b[12] != 0)
            } ?? nil
            guard let header, header.active else { continue }
            if best.count == limit, let last = best.last {
                if typos > last.typos { continue }
                if typos == last.typos && (header.units < last.entry.units || (header.units == last.entry.units && kind > last.entry.kind)) { continue }
            }
            guard let candidate = try reader.withValue(AutocompleteLayout.entities, key, { b -> AutocompleteTop.Candidate? in
                guard let (text, ref) = Self.textAndRef(b) else { return nil }
                return AutocompleteTop.Candidate(entry: .init(units: header.units, key: key, text: text, ref: ref), typos: typos, exact: tokens.count - typos)
            }) ?? nil else { continue }
            let at = best.firstIndex { candidate.precedes($0) } ?? best.count
            if at < limit {
                best.insert(candidate, at: at)
                if best.count > limit { best.removeLast() }
            }
        }
        return .ranked(best)
    }

    /// Text and id of an entity record (see ``AutocompleteEntity/bytes``), skipping its tokens.
    private static func textAndRef(_ b: UnsafeRawBufferPointer) -> ([UInt8], [UInt8])? {
        guard b.count >= 15 else { return nil }
        var i = 13
        let tn = Int(b[i]) << 8 | Int(b[i + 1]); i += 2
        guard i + tn + 2 <= b.count else { return nil }
        let text = Array(b[i..<(i + tn)]); i += tn
        let rn = Int(b[i]) << 8 | Int(b[i + 1]); i += 2
        guard i + rn <= b.count else { return nil }
        return (text, Array(b[i..<(i + rn)]))
    }

    /// Entity keys matching every token, each with how many tokens matched it only through a typo
    /// or a synonym.
    private static func candidates(_ reader: some ReadModelReader, _ tokens: [String], wide: Bool, kinds: Set<UInt8>) throws -> [[UInt8]: Int] {
        var combined: [[UInt8]: Int]?
        for token in tokens {
            var matched: [[UInt8]: Bool] = [:]
            try entities(reader, prefix: Array(token.utf8)) { key in matched[key] = false }
            for s in synonyms[token] ?? [] {
                try entities(reader, prefix: Array(s.utf8)) { key in if matched[key] == nil { matched[key] = true } }
            }
            let length = token.count
            let typos = wide ? (length >= 8 ? 2 : (length >= 2 ? 1 : 0)) : (length >= 4 ? 1 : 0)
            if typos > 0 {
                for word in try nearWords(reader, token, typos: typos, wide: wide) {
                    try entities(reader, prefix: Array(word.utf8) + [0]) { key in if matched[key] == nil { matched[key] = true } }
                }
            }
            if !kinds.isEmpty { matched = matched.filter { kinds.contains($0.key[0]) } }
            if let c = combined {
                var next: [[UInt8]: Int] = [:]
                for (key, fuzzy) in matched { if let typos = c[key] { next[key] = typos + (fuzzy ? 1 : 0) } }
                combined = next
            } else {
                combined = matched.mapValues { $0 ? 1 : 0 }
            }
            if combined?.isEmpty == true { return [:] }
        }
        return combined ?? [:]
    }

    /// Calls `body` with the entity key of every term entry whose token starts with `prefix`.
    private static func entities(_ reader: some ReadModelReader, prefix: [UInt8], _ body: ([UInt8]) -> Void) throws {
        try reader.scan(AutocompleteLayout.terms, prefix: prefix, from: nil, reverse: false) { k, _ in
            if let sep = k.firstIndex(of: 0) { body(Array(k[(sep + 1)...])) }
            return true
        }
    }

    /// Vocabulary words that `token` is a prefix of with at most `typos` edits (but not with
    /// none: those are exact matches). Normally only words starting with the token's first or
    /// second letter are tried; `wide` tries every word.
    private static func nearWords(_ reader: some ReadModelReader, _ token: String, typos: Int, wide: Bool) throws -> [String] {
        let query = Array(token.unicodeScalars)
        var words: [String] = []
        func consider(_ k: UnsafeRawBufferPointer) -> Bool {
            let word = String(decoding: k, as: UTF8.self)
            let d = prefixDistance(query, Array(word.unicodeScalars), limit: typos)
            if d > 0 && d <= typos { words.append(word) }
            return true
        }
        if wide {
            try reader.scan(AutocompleteLayout.dictionary, prefix: [], from: nil, reverse: false) { k, _ in consider(k) }
        } else {
            var firsts: [String] = []
            for ch in token.prefix(2) where !firsts.contains(String(ch)) { firsts.append(String(ch)) }
            for f in firsts {
                try reader.scan(AutocompleteLayout.dictionary, prefix: Array(f.utf8), from: nil, reverse: false) { k, _ in consider(k) }
            }
        }
        return words
    }

    /// The smallest edit distance (insertions, deletions, substitutions, adjacent transpositions)
    /// between `query` and any prefix of `word`; stops early above `limit` (returns limit + 1).
    static func prefixDistance(_ query: [Unicode.Scalar], _ word: [Unicode.Scalar], limit: Int) -> Int {
        let m = query.count, n = word.count
        if m == 0 { return 0 }
        var prev2 = [Int](repeating: 0, count: n + 1)
        var prev = Array(0...n)
        var cur = [Int](repeating: 0, count: n + 1)
        for i in 1...m {
            cur[0] = i
            var rowMin = cur[0]
            if n > 0 {
                for j in 1...n {
                    let cost = query[i - 1] == word[j - 1] ? 0 : 1
                    var best = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
                    if i > 1 && j > 1 && query[i - 1] == word[j - 2] && query[i - 2] == word[j - 1] { best = min(best, prev2[j - 2] + 1) }
                    cur[j] = best
                    rowMin = min(rowMin, best)
                }
            }
            if rowMin > limit { return limit + 1 }
            (prev2, prev, cur) = (prev, cur, prev2)
        }
        return prev.min() ?? m
    }
}
