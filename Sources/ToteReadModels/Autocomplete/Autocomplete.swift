import ToteDomain
import ToteProto

/// Autocomplete over the ``AutocompleteProjection`` model: every query token is matched as a
/// prefix of an entity's tokens (case and diacritics ignored); tokens of 4+ characters also match
/// with one typo, and built-in synonyms expand whole words. Suggestions rank by popularity; typo
/// and synonym matches (`fuzzy`) count half. When nothing matches, a wider search (one typo from 2
/// characters, two from 8, any first letter) gives a misspelled query its nearest matches.
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

    /// Answers one autocomplete request from one snapshot.
    public static func suggest(_ reader: some ReadModelReader, request: Tote_V1_AutocompleteRequest) throws -> Tote_V1_AutocompleteResponse {
        var v = Validator()
        v.require(request.prefix.count <= 100, "prefix", "at most 100 characters")
        for (i, k) in request.kinds.enumerated() {
            v.require(k == .product || k == .category || k == .brand, "kinds[\(i)]", "unknown suggestion kind")
        }
        try v.check()
        let limit = request.limit == 0 ? defaultLimit : min(Int(request.limit), maxLimit)
        let kinds = Set(request.kinds.map { UInt8($0.rawValue) })
        let tokens = TextNormalizer.queryTokens(request.prefix)
        var response = Tote_V1_AutocompleteResponse()
        guard !tokens.isEmpty else { return response }
        var found = try candidates(reader, tokens, wide: false, kinds: kinds)
        if found.isEmpty { found = try candidates(reader, tokens, wide: true, kinds: kinds) }

        // Keep the best `limit` while reading: a candidate's score comes from the first bytes of its
        // record, and its text and id are decoded only when it can enter the kept list (most
        // candidates of a short prefix cannot). Same order as sorting every candidate.
        var best: [Ranked] = []
        best.reserveCapacity(limit + 1)
        for (key, fuzzy) in found {
            let kind = key[0]
            let header: (score: Double, active: Bool)? = try reader.withValue(AutocompleteLayout.entities, key) { b in
                guard b.count >= 15 else { return nil }
                return ((Double(CatalogLayout.readU64(b, at: 0)) + 1) * (fuzzy ? 0.5 : 1), b[12] != 0)
            } ?? nil
            guard let header, header.active else { continue }
            if best.count == limit, let last = best.last, header.score < last.score || (header.score == last.score && kind > last.kind) { continue }
            guard let candidate = try reader.withValue(AutocompleteLayout.entities, key, { Ranked(bytes: $0, score: header.score, kind: kind, fuzzy: fuzzy) }) ?? nil else { continue }
            let at = best.firstIndex { candidate.precedes($0) } ?? best.count
            if at < limit {
                best.insert(candidate, at: at)
                if best.count > limit { best.removeLast() }
            }
        }
        response.suggestions = best.map { r in
            var s = Tote_V1_Suggestion()
            s.kind = Tote_V1_SuggestionKind(rawValue: Int(r.kind)) ?? .unspecified
            s.text = r.text
            s.id = r.ref
            s.fuzzy = r.fuzzy
            s.score = r.score
            return s
        }
        return response
    }

    /// A candidate suggestion: what ranks it (score, kind, text, id) and its fuzzy flag.
    private struct Ranked {
        var score: Double
        var kind: UInt8
        var text: String
        var ref: String
        var fuzzy: Bool

        /// Decodes text and id from an entity record (see ``AutocompleteEntity/bytes``), skipping its tokens.
        init?(bytes b: UnsafeRawBufferPointer, score: Double, kind: UInt8, fuzzy: Bool) {
            guard b.count >= 15 else { return nil }
            var i = 13
            let tn = Int(b[i]) << 8 | Int(b[i + 1]); i += 2
            guard i + tn + 2 <= b.count else { return nil }
            text = String(decoding: UnsafeRawBufferPointer(rebasing: b[i..<(i + tn)]), as: UTF8.self); i += tn
            let rn = Int(b[i]) << 8 | Int(b[i + 1]); i += 2
            guard i + rn <= b.count else { return nil }
            ref = String(decoding: UnsafeRawBufferPointer(rebasing: b[i..<(i + rn)]), as: UTF8.self)
            self.score = score
            self.kind = kind
            self.fuzzy = fuzzy
        }

        /// Higher score first, then kind, text and id ascending.
        func precedes(_ other: Ranked) -> Bool {
            if score != other.score { return score > other.score }
            if kind != other.kind { return kind < other.kind }
            if text != other.text { return text < other.text }
            return ref < other.ref
        }
    }

    /// Entity keys matching every token, each with whether any token matched only fuzzily.
    private static func candidates(_ reader: some ReadModelReader, _ tokens: [String], wide: Bool, kinds: Set<UInt8>) throws -> [[UInt8]: Bool] {
        var combined: [[UInt8]: Bool]?
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
                var next: [[UInt8]: Bool] = [:]
                for (key, fuzzy) in matched { if let f = c[key] { next[key] = f || fuzzy } }
                combined = next
            } else {
                combined = matched
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
