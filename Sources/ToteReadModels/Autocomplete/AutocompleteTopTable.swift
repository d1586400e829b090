import Foundation
import ToteProto

/// The prefix → top-k table of the autocomplete model (`autocomplete.top`, layout in
/// docs/READMODELS.md): for every normalized prefix of 1 to ``maxPrefixLength`` characters of an
/// active entity's tokens, the best ``capacity`` entities under it, stored as the encoded
/// `AutocompleteResponse` they make (so the common query is one get and a slice), followed by what
/// maintenance needs (units and entity key of each).
///
/// Key: table `u8` (0 = every kind, 1 product, 2 category, 3 brand) · prefix (UTF-8). Value:
/// `u8 n` · n × `u32` end offset of suggestion i in the records · records (the `suggestions`
/// fields of `tote.v1.AutocompleteResponse`, best first, exact matches: `fuzzy` false, score =
/// units + 1) · n × (`u64` units · `u16` length · entity key). Integers big-endian.
public enum AutocompleteTop {
    /// The longest prefix (in Unicode scalars) with a list. Ten covers whole common words
    /// ("television", "smartphone") and every typo neighbour of a 9-character token; longer query
    /// tokens are so selective that scanning their terms is short.
    public static let maxPrefixLength = 10
    /// Entities kept per prefix: the largest limit a request may ask for.
    public static let capacity = Autocomplete.maxLimit
    /// Key of the alphabet record: every Unicode scalar ever used in an entity's tokens, sorted
    /// (UTF-8); the characters the typo pass tries for substitutions and insertions.
    static let alphabetKey: [UInt8] = [0xff] + Array("alphabet".utf8)

    /// One entity in a list: what ranks it and what its suggestion shows.
    struct Entry: Equatable {
        /// Units ordered (score = units + 1).
        var units: UInt64
        /// Entity key; `key[0]` is the kind.
        var key: [UInt8]
        /// Display text (UTF-8).
        var text: [UInt8]
        /// Suggestion id (UTF-8).
        var ref: [UInt8]

        var kind: UInt8 { key[0] }

        /// The list order: more units first, then kind, text, id and entity key ascending (bytes).
        func precedes(_ o: Entry) -> Bool {
            if units != o.units { return units > o.units }
            return Self.tieBreak(self, o)
        }

        /// Kind, text, id, entity key ascending: the order among equal scores.
        static func tieBreak(_ a: Entry, _ b: Entry) -> Bool {
            if a.kind != b.kind { return a.kind < b.kind }
            if a.text != b.text { return a.text.lexicographicallyPrecedes(b.text) }
            if a.ref != b.ref { return a.ref.lexicographicallyPrecedes(b.ref) }
            return a.key.lexicographicallyPrecedes(b.key)
        }
    }

    /// A ranked suggestion: an entry with the score it got in this answer.
    struct Candidate {
        var entry: Entry
        var fuzzy: Bool
        /// (units + 1), halved for typo and synonym matches.
        var score: Double { (Double(entry.units) + 1) * (fuzzy ? 0.5 : 1) }

        /// Higher score first, then kind, text, id, key.
        func precedes(_ o: Candidate) -> Bool {
            let a = score, b = o.score
            if a != b { return a > b }
            return Entry.tieBreak(entry, o.entry)
        }
    }

    static func key(_ table: UInt8, _ prefix: [UInt8]) -> [UInt8] { [table] + prefix }

    /// The prefixes (UTF-8, cut at scalar boundaries) of 1 to ``maxPrefixLength`` scalars of `tokens`.
    static func prefixes(_ tokens: [String]) -> Set<[UInt8]> {
        var out = Set<[UInt8]>()
        for t in tokens {
            let bytes = Array(t.utf8)
            var end = 0, n = 0
            for s in t.unicodeScalars {
                end += UTF8.width(s)
                n += 1
                out.insert(Array(bytes[..<end]))
                if n == maxPrefixLength { break }
            }
        }
        return out
    }

    // MARK: Encoding

    static func varint(_ v: Int, into out: inout [UInt8]) {
        var v = UInt64(v)
        while v >= 0x80 { out.append(UInt8(v & 0x7f) | 0x80); v >>= 7 }
        out.append(UInt8(v))
    }

    /// Appends one `suggestions` field (tag, length, `tote.v1.Suggestion`) exactly as
    /// swift-protobuf encodes it.
    static func appendSuggestion(kind: UInt8, text: [UInt8], ref: [UInt8], score: Double, fuzzy: Bool, into out: inout [UInt8]) {
        var s: [UInt8] = [0x08, kind]
        if !text.isEmpty { s.append(0x12); varint(text.count, into: &s); s += text }
        if !ref.isEmpty { s.append(0x1a); varint(ref.count, into: &s); s += ref }
        if score != 0 {
            s.append(0x21)
            let bits = score.bitPattern
            for i in 0..<8 { s.append(UInt8((bits >> (8 * UInt64(i))) & 0xff)) }
        }
        if fuzzy { s += [0x28, 1] }
        out.append(0x0a)
        varint(s.count, into: &out)
        out += s
    }

    /// The encoded `AutocompleteResponse` of ranked candidates.
    static func encodeResponse(_ candidates: some Sequence<Candidate>) -> [UInt8] {
        var out: [UInt8] = []
        for c in candidates { appendSuggestion(kind: c.entry.kind, text: c.entry.text, ref: c.entry.ref, score: c.score, fuzzy: c.fuzzy, into: &out) }
        return out
    }

    /// A list's stored value.
    static func encode(_ list: [Entry]) -> [UInt8] {
        var records: [UInt8] = []
        var ends: [Int] = []
        for e in list {
            appendSuggestion(kind: e.kind, text: e.text, ref: e.ref, score: Double(e.units) + 1, fuzzy: false, into: &records)
            ends.append(records.count)
        }
        var out: [UInt8] = [UInt8(list.count)]
        for end in ends { out += CatalogLayout.u32(UInt32(end)) }
        out += records
        for e in list {
            for j in 0..<8 { out.append(UInt8((e.units >> (56 - 8 * UInt64(j))) & 0xff)) }
            out += [UInt8(e.key.count >> 8), UInt8(e.key.count & 0xff)]
            out += e.key
        }
        return out
    }

    /// The encoded response of the first `limit` entries of a stored list (a slice of it); nil
    /// when malformed.
    static func slice(_ b: UnsafeRawBufferPointer, limit: Int) -> UnsafeRawBufferPointer? {
        guard b.count >= 1 else { return nil }
        let n = Int(b[0]), start = 1 + 4 * n
        guard n > 0, limit > 0, b.count >= start else { return n == 0 ? UnsafeRawBufferPointer(rebasing: b[0..<0]) : nil }
        let end = start + Int(CatalogLayout.readU32(b, at: 1 + 4 * (min(limit, n) - 1)))
        guard end <= b.count else { return nil }
        return UnsafeRawBufferPointer(rebasing: b[start..<end])
    }

    /// Decodes a stored list; nil when malformed.
    static func decode(_ b: UnsafeRawBufferPointer) -> [Entry]? {
        guard b.count >= 1 else { return nil }
        let n = Int(b[0]), start = 1 + 4 * n
        guard b.count >= start else { return nil }
        var entries: [Entry] = []
        entries.reserveCapacity(n)
        var recordStart = start
        var trailer = start + (n == 0 ? 0 : Int(CatalogLayout.readU32(b, at: 1 + 4 * (n - 1))))
        for i in 0..<n {
            let end = start + Int(CatalogLayout.readU32(b, at: 1 + 4 * i))
            guard end <= b.count, recordStart < end, trailer + 10 <= b.count else { return nil }
            // The record: 0x0a, varint length, then the Suggestion's fields.
            var p = recordStart + 1
            while p < end, b[p] & 0x80 != 0 { p += 1 }
            p += 1
            var text: [UInt8] = [], ref: [UInt8] = []
            while p < end {
                let tag = b[p]; p += 1
                switch tag & 7 {
                case 0: while p < end, b[p] & 0x80 != 0 { p += 1 }; p += 1
                case 1: p += 8
                case 2:
                    var len = 0, shift = 0
                    while p < end { let byte = b[p]; p += 1; len |= Int(byte & 0x7f) << shift; shift += 7; if byte & 0x80 == 0 { break } }
                    guard p + len <= end else { return nil }
                    if tag == 0x12 { text = Array(b[p..<(p + len)]) } else if tag == 0x1a { ref = Array(b[p..<(p + len)]) }
                    p += len
                default: return nil
                }
            }
            recordStart = end
            let units = CatalogLayout.readU64(b, at: trailer)
            let kn = Int(b[trailer + 8]) << 8 | Int(b[trailer + 9])
            guard trailer + 10 + kn <= b.count, kn > 0 else { return nil }
            entries.append(Entry(units: units, key: Array(b[(trailer + 10)..<(trailer + 10 + kn)]), text: text, ref: ref))
            trailer += 10 + kn
        }
        return entries
    }

    static func list(_ reader: some ReadModelReader, _ tableKey: [UInt8]) throws -> [Entry] {
        try reader.withValue(AutocompleteLayout.top, tableKey) { decode($0) }.flatMap { $0 } ?? []
    }

    // MARK: Maintenance

    /// The entities a batch changed, each with its record before the batch's first change, and
    /// every scalar their tokens used on the way: what ``flush(_:_:)`` rewrites the lists from.
    struct Changes {
        var before: [[UInt8]: AutocompleteEntity?] = [:]
        var asciiScalars: (UInt64, UInt64) = (0, 0)
        var otherScalars = Set<Unicode.Scalar>()

        /// Notes that the entity under `key` is about to change from `old` to `new`.
        mutating func note(_ key: [UInt8], old: AutocompleteEntity?, new: AutocompleteEntity) {
            if before.index(forKey: key) == nil { before[key] = .some(old) }
            for t in new.tokens {
                for s in t.unicodeScalars {
                    if s.value < 64 { asciiScalars.0 |= 1 << UInt64(s.value) }
                    else if s.value < 128 { asciiScalars.1 |= 1 << UInt64(s.value - 64) }
                    else { otherScalars.insert(s) }
                }
            }
        }
    }

    /// A change of one list: the entity to take out, and what to put back (nil: no longer under
    /// the prefix or not active).
    private struct Change {
        var key: [UInt8]
        var new: Entry?
    }

    /// Rewrites every list the batch's changes touch, each once, and grows the alphabet. The
    /// result depends only on the entities' records at the end (the lists are a function of
    /// them) and on every token seen, so any split of the same events gives the same bytes.
    static func flush(_ changes: Changes, _ store: inout some ReadModelWriter) throws {
        var byTable: [[UInt8]: [Change]] = [:]
        for (key, old) in changes.before {
            let new = try AutocompleteProjection.entity(key, store)
            let o = old.flatMap { $0.active ? $0 : nil }, n = new.flatMap { $0.active ? $0 : nil }
            if o?.score == n?.score && o?.text == n?.text && o?.ref == n?.ref && o?.tokens == n?.tokens { continue }
            let oldPrefixes = prefixes(o?.tokens ?? []), newPrefixes = prefixes(n?.tokens ?? [])
            let entry = n.map { Entry(units: $0.score, key: key, text: Array($0.text.utf8.prefix(0xffff)), ref: Array($0.ref.utf8.prefix(0xffff))) }
            for p in oldPrefixes.union(newPrefixes) {
                let change = Change(key: key, new: newPrefixes.contains(p) ? entry : nil)
                byTable[[0] + p, default: []].append(change)
                byTable[[key[0]] + p, default: []].append(change)
            }
        }
        for (tableKey, list) in byTable { try update(tableKey, list, &store) }
        try growAlphabet(changes, &store)
    }

    private static func update(_ tableKey: [UInt8], _ changes: [Change], _ store: inout some ReadModelWriter) throws {
        let stored = try store.get(AutocompleteLayout.top, tableKey) ?? []
        guard var list = SlotList(stored) else { throw AutocompleteTop.corrupt(tableKey) }
        // A full list holds the best `capacity`; entities ranked after its last one are not
        // stored, so below that last entry the list is only trusted again after a rescan.
        let threshold = list.slots.count >= capacity ? list.slots.last : nil
        var changed = list.remove(keys: changes.map(\.key))
        for c in changes {
            guard let e = c.new else { continue }
            let slot = list.add(e)
            // Below the old last entry, an entity the list never held may rank higher.
            if let threshold, list.precedes(threshold, slot) { continue }
            list.insert(slot)
            changed = true
        }
        guard changed else { return }
        if threshold != nil && list.slots.count < capacity {
            let refilled = try rescan(tableKey, store)
            try store.put(AutocompleteLayout.top, tableKey, encode(refilled))
            return
        }
        if list.slots.count > capacity { list.slots.removeSubrange(capacity...) }
        if list.slots.isEmpty {
            try store.delete(AutocompleteLayout.top, tableKey)
        } else {
            try store.put(AutocompleteLayout.top, tableKey, list.encoded())
        }
    }

    static func corrupt(_ key: [UInt8]) -> OrderProjectionError {
        .corruptRecord("autocomplete.top \(String(decoding: key.dropFirst(), as: UTF8.self))")
    }

    /// A stored list worked on in place: each entry is a slot of byte ranges into the stored value
    /// or into `fresh` (the records of entries added now), so an update copies bytes instead of
    /// decoding and re-encoding every entry.
    struct SlotList {
        struct Slot {
            var fresh: Bool
            var units: UInt64
            var record: Range<Int>
            var text: Range<Int>
            var ref: Range<Int>
            var key: Range<Int>
        }

        let stored: [UInt8]
        var fresh: [UInt8] = []
        var slots: [Slot] = []

        /// Parses a stored value (empty = empty list); nil when malformed.
        init?(_ stored: [UInt8]) {
            self.stored = stored
            guard !stored.isEmpty else { return }
            let b = stored
            let n = Int(b[0]), start = 1 + 4 * n
            guard b.count >= start else { return nil }
            func u32(_ at: Int) -> Int { Int(b[at]) << 24 | Int(b[at + 1]) << 16 | Int(b[at + 2]) << 8 | Int(b[at + 3]) }
            var recordStart = start
            var trailer = start + (n == 0 ? 0 : u32(1 + 4 * (n - 1)))
            slots.reserveCapacity(n + 1)
            for i in 0..<n {
                let end = start + u32(1 + 4 * i)
                guard end <= b.count, recordStart < end, trailer + 10 <= b.count,
                      let (text, ref) = Self.textAndRef(b, recordStart, end) else { return nil }
                var units: UInt64 = 0
                for j in 0..<8 { units = units << 8 | UInt64(b[trailer + j]) }
                let kn = Int(b[trailer + 8]) << 8 | Int(b[trailer + 9])
                guard kn > 0, trailer + 10 + kn <= b.count else { return nil }
                slots.append(Slot(fresh: false, units: units, record: recordStart..<end, text: text, ref: ref, key: (trailer + 10)..<(trailer + 10 + kn)))
                recordStart = end
                trailer += 10 + kn
            }
        }

        /// The text and id ranges of one `suggestions` field record.
        static func textAndRef(_ b: [UInt8], _ start: Int, _ end: Int) -> (Range<Int>, Range<Int>)? {
            var p = start + 1
            while p < end, b[p] & 0x80 != 0 { p += 1 }
            p += 1
            var text = p..<p, ref = p..<p
            while p < end {
                let tag = b[p]; p += 1
                switch tag & 7 {
                case 0: while p < end, b[p] & 0x80 != 0 { p += 1 }; p += 1
                case 1: p += 8
                case 2:
                    var len = 0, shift = 0
                    while p < end { let byte = b[p]; p += 1; len |= Int(byte & 0x7f) << shift; shift += 7; if byte & 0x80 == 0 { break } }
                    guard p + len <= end else { return nil }
                    if tag == 0x12 { text = p..<(p + len) } else if tag == 0x1a { ref = p..<(p + len) }
                    p += len
                default: return nil
                }
            }
            return (text, ref)
        }

        /// Compares two byte ranges (of either buffer) as unsigned bytes: <0, 0, >0.
        private func compare(_ aFresh: Bool, _ a: Range<Int>, _ bFresh: Bool, _ b: Range<Int>) -> Int {
            let x = aFresh ? fresh : stored, y = bFresh ? fresh : stored
            return x.withUnsafeBytes { px in
                y.withUnsafeBytes { py in
                    let n = min(a.count, b.count)
                    let c = n == 0 ? 0 : memcmp(px.baseAddress! + a.lowerBound, py.baseAddress! + b.lowerBound, n)
                    return c != 0 ? Int(c) : a.count - b.count
                }
            }
        }

        /// The list order (``Entry/precedes(_:)``).
        func precedes(_ a: Slot, _ b: Slot) -> Bool {
            if a.units != b.units { return a.units > b.units }
            let ka = (a.fresh ? fresh : stored)[a.key.lowerBound], kb = (b.fresh ? fresh : stored)[b.key.lowerBound]
            if ka != kb { return ka < kb }
            let t = compare(a.fresh, a.text, b.fresh, b.text)
            if t != 0 { return t < 0 }
            let r = compare(a.fresh, a.ref, b.fresh, b.ref)
            if r != 0 { return r < 0 }
            return compare(a.fresh, a.key, b.fresh, b.key) < 0
        }

        /// Takes out the entries of these entities; true when one was there.
        mutating func remove(keys: [[UInt8]]) -> Bool {
            let before = slots.count
            if keys.count <= 8 {
                for key in keys {
                    if let i = slots.firstIndex(where: { s in s.key.count == key.count && key.withUnsafeBytes { k in
                        stored.withUnsafeBytes { memcmp($0.baseAddress! + s.key.lowerBound, k.baseAddress!, key.count) == 0 } } }) {
                        slots.remove(at: i)
                    }
                }
            } else {
                let set = Set(keys)
                slots.removeAll { set.contains(Array(stored[$0.key])) }
            }
            return slots.count != before
        }

        /// Encodes `e` into the fresh buffer and returns its slot (not yet in the list).
        mutating func add(_ e: Entry) -> Slot {
            let start = fresh.count
            appendSuggestion(kind: e.kind, text: e.text, ref: e.ref, score: Double(e.units) + 1, fuzzy: false, into: &fresh)
            let end = fresh.count
            guard let (text, ref) = Self.textAndRef(fresh, start, end) else { preconditionFailure("a record just encoded parses") }
            fresh += e.key
            return Slot(fresh: true, units: e.units, record: start..<end, text: text, ref: ref, key: end..<fresh.count)
        }

        /// Inserts a slot at its place (binary search; the list is sorted).
        mutating func insert(_ slot: Slot) {
            var lo = 0, hi = slots.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if precedes(slots[mid], slot) { lo = mid + 1 } else { hi = mid }
            }
            slots.insert(slot, at: lo)
        }

        /// The stored value of the list (layout of ``AutocompleteTop/encode(_:)``), copied range
        /// by range.
        func encoded() -> [UInt8] {
            var size = 1 + 4 * slots.count
            for s in slots { size += s.record.count + 10 + s.key.count }
            return stored.withUnsafeBytes { st in
                fresh.withUnsafeBytes { fr in
                    [UInt8](unsafeUninitializedCapacity: size) { out, count in
                        let base = UnsafeMutableRawPointer(out.baseAddress!)
                        func put(_ v: UInt64, _ bytes: Int, at i: Int) {
                            for j in 0..<bytes { base.storeBytes(of: UInt8(truncatingIfNeeded: v >> UInt64(8 * (bytes - 1 - j))), toByteOffset: i + j, as: UInt8.self) }
                        }
                        func copy(_ s: Slot, _ r: Range<Int>, at i: Int) {
                            let from = s.fresh ? fr : st
                            (base + i).copyMemory(from: from.baseAddress! + r.lowerBound, byteCount: r.count)
                        }
                        put(UInt64(slots.count), 1, at: 0)
                        var i = 1, end = 0
                        for s in slots { end += s.record.count; put(UInt64(end), 4, at: i); i += 4 }
                        for s in slots { copy(s, s.record, at: i); i += s.record.count }
                        for s in slots {
                            put(s.units, 8, at: i); put(UInt64(s.key.count), 2, at: i + 8); i += 10
                            copy(s, s.key, at: i); i += s.key.count
                        }
                        count = i
                    }
                }
            }
        }
    }

    /// The best `capacity` active entities under a table key, from `autocomplete.terms` (every
    /// term under the prefix): what a full list that lost members is refilled from.
    static func rescan(_ tableKey: [UInt8], _ store: some ReadModelReader) throws -> [Entry] {
        let kind = tableKey[0]
        var seen = Set<[UInt8]>()
        var best: [Entry] = []
        try store.scan(AutocompleteLayout.terms, prefix: Array(tableKey.dropFirst()), from: nil, reverse: false) { k, _ in
            guard let sep = k.firstIndex(of: 0) else { return true }
            let key = Array(k[(sep + 1)...])
            guard !key.isEmpty, kind == 0 || key[0] == kind, seen.insert(key).inserted else { return true }
            guard let e = try AutocompleteProjection.entity(key, store), e.active else { return true }
            let entry = Entry(units: e.score, key: key, text: Array(e.text.utf8), ref: Array(e.ref.utf8))
            if best.count == capacity, let last = best.last, !entry.precedes(last) { return true }
            let at = best.firstIndex { entry.precedes($0) } ?? best.count
            best.insert(entry, at: at)
            if best.count > capacity { best.removeLast() }
            return true
        }
        return best
    }

    private static func growAlphabet(_ changes: Changes, _ store: inout some ReadModelWriter) throws {
        guard changes.asciiScalars != (0, 0) || !changes.otherScalars.isEmpty else { return }
        // Most flushes add nothing: compare the ASCII bits with the stored ones before decoding.
        let known: (UInt64, UInt64, Bool) = try store.withValue(AutocompleteLayout.top, alphabetKey) { b in
            var lo: UInt64 = 0, hi: UInt64 = 0, other = false
            for byte in b {
                if byte < 64 { lo |= 1 << UInt64(byte) } else if byte < 128 { hi |= 1 << UInt64(byte - 64) } else { other = true }
            }
            return (lo, hi, other)
        } ?? (0, 0, false)
        if changes.asciiScalars.0 & ~known.0 == 0 && changes.asciiScalars.1 & ~known.1 == 0 && changes.otherScalars.isEmpty { return }
        var scalars = Set(try alphabet(store))
        let before = scalars.count
        for v in 0..<64 where changes.asciiScalars.0 & (1 << UInt64(v)) != 0 { scalars.insert(Unicode.Scalar(UInt8(v))) }
        for v in 0..<64 where changes.asciiScalars.1 & (1 << UInt64(v)) != 0 { scalars.insert(Unicode.Scalar(UInt8(v + 64))) }
        scalars.formUnion(changes.otherScalars)
        guard scalars.count != before else { return }
        var text = String.UnicodeScalarView()
        text.append(contentsOf: scalars.sorted())
        try store.put(AutocompleteLayout.top, alphabetKey, Array(String(text).utf8))
    }

    /// Every scalar used in tokens so far, ascending.
    static func alphabet(_ reader: some ReadModelReader) throws -> [Unicode.Scalar] {
        try reader.withValue(AutocompleteLayout.top, alphabetKey) { Array(String(decoding: $0, as: UTF8.self).unicodeScalars) } ?? []
    }

    // MARK: Queries

    /// A single-token answer from the lists alone; nil when the token needs the general path
    /// (too long for the table, or nothing matches: the wider typo pass follows).
    static func answer(_ reader: some ReadModelReader, token: String, limit: Int, kinds: Set<UInt8>,
                       synonyms: [String]) throws -> Autocomplete.Answer? {
        let scalars = Array(token.unicodeScalars)
        let m = scalars.count
        let typo = m >= 4
        guard m <= (typo ? maxPrefixLength - 1 : maxPrefixLength), synonyms.allSatisfy({ $0.unicodeScalars.count <= maxPrefixLength }) else { return nil }
        let tables: [UInt8] = kinds.isEmpty || kinds.count == 3 ? [0] : kinds.sorted()
        let prefix = Array(token.utf8)
        if !typo && synonyms.isEmpty && tables.count == 1 {
            // The point read: one get, the response is a slice of the value.
            return try reader.withValue(AutocompleteLayout.top, key(tables[0], prefix)) { b in
                slice(b, limit: limit).map { Autocomplete.Answer.encoded(Array($0)) }
            } ?? nil
        }
        var found: [[UInt8]: Candidate] = [:]
        func add(_ prefix: [UInt8], fuzzy: Bool) throws {
            for t in tables {
                for e in try list(reader, key(t, prefix)) where found[e.key] == nil { found[e.key] = Candidate(entry: e, fuzzy: fuzzy) }
            }
        }
        try add(prefix, fuzzy: false)
        for s in synonyms { try add(Array(s.utf8), fuzzy: true) }
        if typo {
            let letters = try alphabet(reader)
            if prefix.allSatisfy({ $0 < 0x80 }) {
                try forEachNeighbour(ascii: prefix, letters) { candidate in try add(candidate, fuzzy: true) }
            } else {
                for n in neighbours(scalars, letters) { try add(n, fuzzy: true) }
            }
        }
        if found.isEmpty { return nil }
        var ranked = Array(found.values)
        ranked.sort { $0.precedes($1) }
        return .ranked(Array(ranked.prefix(limit)))
    }

    /// ``neighbours(_:_:)`` of an ASCII token, built in one reused buffer without collecting them
    /// (a string may come twice, e.g. the same letter inserted before or after itself: harmless).
    static func forEachNeighbour(ascii token: [UInt8], _ alphabet: [Unicode.Scalar], _ body: ([UInt8]) throws -> Void) throws {
        let m = token.count
        guard m >= 2 else { return }
        let letters = alphabet.map { Array(String($0).utf8) }
        let firsts = (token[0], token[1])
        var buf: [UInt8] = []
        buf.reserveCapacity(m + 4)
        for i in 0..<m {
            buf.removeAll(keepingCapacity: true)
            buf += token[..<i]; buf += token[(i + 1)...]
            try body(buf)
        }
        for i in 0..<(m - 1) where token[i] != token[i + 1] {
            buf.removeAll(keepingCapacity: true)
            buf += token; buf.swapAt(i, i + 1)
            try body(buf)
        }
        for c in letters {
            let first = c.count == 1 && (c[0] == firsts.0 || c[0] == firsts.1)
            for i in 0..<m where (c.count != 1 || c[0] != token[i]) && (i > 0 || first) {
                buf.removeAll(keepingCapacity: true)
                buf += token[..<i]; buf += c; buf += token[(i + 1)...]
                try body(buf)
            }
            for i in 0...m where i > 0 || first {
                buf.removeAll(keepingCapacity: true)
                buf += token[..<i]; buf += c; buf += token[i...]
                try body(buf)
            }
        }
    }

    /// The strings one edit (deletion, insertion, substitution, adjacent transposition) from
    /// `token` that start with its first or second character (UTF-8), without `token` itself:
    /// the prefixes whose entities a typo pass adds.
    static func neighbours(_ token: [Unicode.Scalar], _ alphabet: [Unicode.Scalar]) -> [[UInt8]] {
        let m = token.count
        guard m >= 2 else { return [] }
        var out = Set<[Unicode.Scalar]>()
        let firsts: Set<Unicode.Scalar> = [token[0], token[1]]
        for i in 0..<m { var t = token; t.remove(at: i); out.insert(t) }
        for i in 0..<(m - 1) where token[i] != token[i + 1] { var t = token; t.swapAt(i, i + 1); out.insert(t) }
        for c in alphabet {
            for i in 0..<m where c != token[i] && (i > 0 || firsts.contains(c)) { var t = token; t[i] = c; out.insert(t) }
            for i in 0...m where i > 0 || firsts.contains(c) { var t = token; t.insert(c, at: i); out.insert(t) }
        }
        out.remove(token)
        return out.map { t in
            var s = String.UnicodeScalarView()
            s.append(contentsOf: t)
            return Array(String(s).utf8)
        }
    }
}
