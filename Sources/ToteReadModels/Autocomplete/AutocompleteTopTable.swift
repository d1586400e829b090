import Foundation
import ToteProto

/// The prefix → top-k table of the autocomplete model (`autocomplete.top`, layout in
/// docs/READMODELS.md): for every normalized prefix of 1 to ``maxPrefixLength`` characters of an
/// active entity's tokens, the best ``capacity`` entities under it, stored as the encoded
/// `AutocompleteResponse` they make (so the common query is one get and a slice), followed by the
/// entity key of each (what maintenance needs).
///
/// Key: table `u8` (0 = every kind, 1 product, 2 category, 3 brand) · prefix (UTF-8). Value:
/// `u8 n` · n × `u32` end offset of suggestion i in the records · records (the `suggestions`
/// fields of `tote.v1.AutocompleteResponse`, best first, exact matches: `fuzzy` false, score =
/// ``score(units:exactTokens:)`` with one exact token) · n × (`u16` length · entity key).
/// Integers big-endian. Entries rank by the entities' exact units; the list stores no units
/// (they live in the entity records), so a units change that moves no entry and keeps the
/// score's popularity class rewrites nothing.
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

    // MARK: Ranking and scores

    /// The popularity class of a units count: its bit length (0 units → 0, 1 → 1, 2–3 → 2,
    /// 4–7 → 3, …, 64). What a suggestion's score shows of popularity: it changes only when the
    /// units cross a power of two, so the stored records rarely need rewriting.
    static func popularityClass(_ units: UInt64) -> Int { UInt64.bitWidth - units.leadingZeroBitCount }

    /// A suggestion's score: popularity class + 1, plus 65 for each query token matched exactly
    /// (not through a typo or synonym). Higher is better and it never rises down an answer, since
    /// answers rank fewer typos first, then units.
    static func score(units: UInt64, exactTokens: Int) -> Double {
        Double(popularityClass(units) + 1 + 65 * exactTokens)
    }

    /// One entity in a list: what ranks it and what its suggestion shows.
    struct Entry: Equatable {
        /// Units ordered.
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

        /// Kind, text, id, entity key ascending: the order among equal units.
        static func tieBreak(_ a: Entry, _ b: Entry) -> Bool {
            if a.kind != b.kind { return a.kind < b.kind }
            if a.text != b.text { return a.text.lexicographicallyPrecedes(b.text) }
            if a.ref != b.ref { return a.ref.lexicographicallyPrecedes(b.ref) }
            return a.key.lexicographicallyPrecedes(b.key)
        }
    }

    /// A ranked suggestion: an entry with how the query matched it.
    struct Candidate {
        var entry: Entry
        /// Query tokens it matched only through a typo or a synonym.
        var typos: Int
        /// Query tokens it matched exactly (as a prefix of one of its tokens).
        var exact: Int
        var fuzzy: Bool { typos > 0 }
        var score: Double { AutocompleteTop.score(units: entry.units, exactTokens: exact) }

        /// Fewer typos first, then the list order (units, kind, text, id, key).
        func precedes(_ o: Candidate) -> Bool {
            if typos != o.typos { return typos < o.typos }
            return entry.precedes(o.entry)
        }
    }

    static func key(_ table: UInt8, _ prefix: [UInt8]) -> [UInt8] { [table] + prefix }

    /// The prefixes (UTF-8, cut at scalar boundaries) of 1 to ``maxPrefixLength`` scalars of `tokens`.
    static func prefixes(_ tokens: [String]) -> Set<ByteKey> {
        var out = Set<ByteKey>()
        for t in tokens {
            let bytes = Array(t.utf8)
            var end = 0, n = 0
            for s in t.unicodeScalars {
                end += UTF8.width(s)
                n += 1
                out.insert(ByteKey(Array(bytes[..<end])))
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
        var size = 2
        if !text.isEmpty { size += 1 + varintSize(text.count) + text.count }
        if !ref.isEmpty { size += 1 + varintSize(ref.count) + ref.count }
        if score != 0 { size += 9 }
        if fuzzy { size += 2 }
        out.reserveCapacity(out.count + 1 + varintSize(size) + size)
        out.append(0x0a)
        varint(size, into: &out)
        out.append(0x08); out.append(kind)
        if !text.isEmpty { out.append(0x12); varint(text.count, into: &out); out += text }
        if !ref.isEmpty { out.append(0x1a); varint(ref.count, into: &out); out += ref }
        if score != 0 {
            out.append(0x21)
            let bits = score.bitPattern
            for i in 0..<8 { out.append(UInt8((bits >> (8 * UInt64(i))) & 0xff)) }
        }
        if fuzzy { out.append(0x28); out.append(1) }
    }

    private static func varintSize(_ v: Int) -> Int {
        var v = UInt64(v), n = 1
        while v >= 0x80 { v >>= 7; n += 1 }
        return n
    }

    /// The stored record of an entry (an exact match): one `suggestions` field.
    static func record(_ e: Entry) -> [UInt8] {
        var out: [UInt8] = []
        appendSuggestion(kind: e.kind, text: e.text, ref: e.ref, score: score(units: e.units, exactTokens: 1), fuzzy: false, into: &out)
        return out
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
            records += record(e)
            ends.append(records.count)
        }
        var out: [UInt8] = [UInt8(list.count)]
        for end in ends { out += CatalogLayout.u32(UInt32(end)) }
        out += records
        for e in list {
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

    /// One entry of a stored list as decoded: entity key, and what its record shows.
    struct Stored: Equatable {
        var key: [UInt8]
        var text: [UInt8]
        var ref: [UInt8]
        var score: Double
    }

    /// Decodes a stored list; nil when malformed.
    static func decode(_ b: UnsafeRawBufferPointer) -> [Stored]? {
        decode(b, upTo: Int.max, skipping: [])
    }

    /// Decodes the first `max` entries of a stored list whose keys are not in `skipped` (a typo
    /// fill wants a few entries of a 50-entry list); nil when those entries are malformed.
    static func decode(_ b: UnsafeRawBufferPointer, upTo max: Int, skipping skipped: Set<[UInt8]>) -> [Stored]? {
        guard b.count >= 1 else { return nil }
        let n = Int(b[0]), start = 1 + 4 * n
        guard b.count >= start else { return nil }
        var entries: [Stored] = []
        entries.reserveCapacity(n)
        var recordStart = start
        var trailer = start + (n == 0 ? 0 : Int(CatalogLayout.readU32(b, at: 1 + 4 * (n - 1))))
        for i in 0..<n where entries.count < max {
            let end = start + Int(CatalogLayout.readU32(b, at: 1 + 4 * i))
            guard end <= b.count, recordStart < end, trailer + 2 <= b.count else { return nil }
            let kn = Int(b[trailer]) << 8 | Int(b[trailer + 1])
            guard trailer + 2 + kn <= b.count, kn > 0 else { return nil }
            let key = Array(b[(trailer + 2)..<(trailer + 2 + kn)])
            trailer += 2 + kn
            if !skipped.isEmpty, skipped.contains(key) {
                recordStart = end
                continue
            }
            // The record: 0x0a, varint length, then the Suggestion's fields.
            var p = recordStart + 1
            while p < end, b[p] & 0x80 != 0 { p += 1 }
            p += 1
            var text: [UInt8] = [], ref: [UInt8] = [], score = 0.0
            while p < end {
                let tag = b[p]; p += 1
                switch tag & 7 {
                case 0: while p < end, b[p] & 0x80 != 0 { p += 1 }; p += 1
                case 1:
                    guard p + 8 <= end else { return nil }
                    var bits: UInt64 = 0
                    for j in 0..<8 { bits |= UInt64(b[p + j]) << (8 * UInt64(j)) }
                    if tag == 0x21 { score = Double(bitPattern: bits) }
                    p += 8
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
            entries.append(Stored(key: key, text: text, ref: ref, score: score))
        }
        return entries
    }

    static func list(_ reader: some ReadModelReader, _ tableKey: [UInt8]) throws -> [Stored] {
        try reader.withValue(AutocompleteLayout.top, tableKey) { decode($0) }.flatMap { $0 } ?? []
    }

    /// The units of an entity, from the first bytes of its record (0 when it has none).
    static func units(_ key: [UInt8], _ reader: some ReadModelReader) throws -> UInt64 {
        try reader.withValue(AutocompleteLayout.entities, key) { $0.count >= 8 ? CatalogLayout.readU64($0, at: 0) : 0 } ?? 0
    }

    // MARK: Maintenance

    /// The entities a batch changed, each with its record before the batch's first change, and
    /// every scalar their tokens used on the way: what ``flush(_:_:)`` rewrites the lists from.
    struct Changes {
        var before: [ByteKey: AutocompleteEntity?] = [:]
        var asciiScalars: (UInt64, UInt64) = (0, 0)
        var otherScalars = Set<Unicode.Scalar>()
        /// Per product id, the brand and category entity keys its units also go to (what its
        /// `autocomplete.products` record says), so that order lines decode each record once per
        /// batch; dropped when the product's record changes.
        var productTargets: [String: [[UInt8]]] = [:]

        /// Whether the entity's record before the batch is noted already.
        func knows(_ key: [UInt8]) -> Bool { before.index(forKey: ByteKey(key)) != nil }

        /// Notes the record the entity under `key` had before the batch (first call only).
        mutating func noteBefore(_ key: [UInt8], _ old: AutocompleteEntity?) {
            let key = ByteKey(key)
            if before.index(forKey: key) == nil { before[key] = .some(old) }
        }

        /// Notes that the entity under `key` is about to change from `old` to `new`.
        mutating func note(_ key: [UInt8], old: AutocompleteEntity?, new: AutocompleteEntity) {
            noteBefore(key, old)
            if old?.tokens == new.tokens { return }  // no scalar it has not noted (or stored) before
            for t in new.tokens {
                for s in t.unicodeScalars {
                    if s.value < 64 { asciiScalars.0 |= 1 << UInt64(s.value) }
                    else if s.value < 128 { asciiScalars.1 |= 1 << UInt64(s.value - 64) }
                    else { otherScalars.insert(s) }
                }
            }
        }
    }

    /// What a flush did (tests and benchmarks read it).
    struct FlushStats: Equatable {
        /// Lists read because a changed entity is or was under their prefix.
        var lists = 0
        /// Lists written (or deleted).
        var written = 0
        /// Full lists refilled from `autocomplete.terms`.
        var rescans = 0
        /// Lists left as they were although one of their entries' units changed (no move, same
        /// popularity class): each one a rewrite that storing exact scores would have cost.
        var unitsOnly = 0

        static func += (a: inout FlushStats, b: FlushStats) {
            a.lists += b.lists; a.written += b.written; a.rescans += b.rescans; a.unitsOnly += b.unitsOnly
        }
    }

    /// A change of one entity in the lists: what to put back (nil: not active), with its record
    /// encoded once for every list. A class: one change is listed under each of the entity's
    /// prefixes (tens of lists), and a reference is one retain where the struct was five.
    private final class Change {
        let key: [UInt8]
        let new: Entry?
        let record: [UInt8]
        /// Its units before the batch, when it was active then (a full list's last entry is
        /// compared as it was).
        let unitsBefore: UInt64?
        /// Whether the units changed.
        let unitsChanged: Bool

        init(key: [UInt8], new: Entry?, record: [UInt8], unitsBefore: UInt64?, unitsChanged: Bool) {
            self.key = key
            self.new = new
            self.record = record
            self.unitsBefore = unitsBefore
            self.unitsChanged = unitsChanged
        }
    }

    /// A change as one list sees it: the entity stays under the list's prefix, or leaves it.
    private struct Listed {
        let change: Change
        let stays: Bool
        /// What to put back in this list (nil: no longer under the prefix, or not active).
        var new: Entry? { stays ? change.new : nil }
    }

    /// Rewrites every list the batch's changes move or change, each at most once, and grows the
    /// alphabet. The result depends only on the entities' records at the end (the lists are a
    /// function of them) and on every token seen, so any split of the same events gives the same
    /// bytes.
    @discardableResult
    static func flush(_ changes: Changes, _ store: inout some ReadModelWriter) throws -> FlushStats {
        var byTable: [ByteKey: [Listed]] = [:]
        for (byteKey, old) in changes.before {
            let key = byteKey.bytes
            let new = try AutocompleteProjection.entity(key, store)
            let o = old.flatMap { $0.active ? $0 : nil }, n = new.flatMap { $0.active ? $0 : nil }
            if o?.score == n?.score && o?.text == n?.text && o?.ref == n?.ref && o?.tokens == n?.tokens { continue }
            let entry = n.map { Entry(units: $0.score, key: key, text: Array($0.text.utf8.prefix(0xffff)), ref: Array($0.ref.utf8.prefix(0xffff))) }
            let change = Change(key: key, new: entry, record: entry.map(record) ?? [], unitsBefore: o?.score, unitsChanged: o?.score != n?.score)
            let newPrefixes = prefixes(n?.tokens ?? [])
            let all = o?.tokens == n?.tokens ? newPrefixes : newPrefixes.union(prefixes(o?.tokens ?? []))
            for p in all {
                let listed = Listed(change: change, stays: newPrefixes.contains(p))
                byTable[ByteKey([0] + p.bytes), default: []].append(listed)
                byTable[ByteKey([key[0]] + p.bytes), default: []].append(listed)
            }
        }
        var stats = FlushStats()
        var units = UnitsCache()
        for (tableKey, list) in byTable { try update(tableKey.bytes, list, &units, &stats, &store) }
        try growAlphabet(changes, &store)
        return stats
    }

    /// Current units of unchanged entities, read once per flush.
    struct UnitsCache {
        var known: [ByteKey: UInt64] = [:]

        mutating func get(_ key: [UInt8], _ store: some ReadModelReader) throws -> UInt64 {
            if let u = known[ByteKey(key)] { return u }
            let u = try AutocompleteTop.units(key, store)
            known[ByteKey(key)] = u
            return u
        }
    }

    private static func update(_ tableKey: [UInt8], _ changes: [Listed], _ cache: inout UnitsCache, _ stats: inout FlushStats,
                               _ store: inout some ReadModelWriter) throws {
        stats.lists += 1
        let stored = try store.get(AutocompleteLayout.top, tableKey) ?? []
        guard var list = SlotList(stored) else { throw AutocompleteTop.corrupt(tableKey) }
        let original = list.slots
        // A full list holds the best `capacity`; entities ranked after its last one are not
        // stored, so below that last entry (as it was before the batch) the list is only trusted
        // again after a rescan.
        var threshold: SlotList.Slot?
        if list.slots.count >= capacity, var last = list.slots.last {
            let key = list.keyBytes(last)
            last.units = try changes.first(where: { $0.change.key == key })?.change.unitsBefore ?? cache.get(key, store)
            last.unitsKnown = true
            threshold = last
        }
        var hints: [Int?] = []
        hints.reserveCapacity(changes.count)
        for c in changes { hints.append(list.remove(key: c.change.key)) }
        var unitsOnly = false
        for (listed, hint) in zip(changes, hints) {
            guard let e = listed.new else { continue }
            let c = listed.change
            let slot = list.add(record: c.record, key: c.key, units: e.units)
            // Below the old last entry, an entity the list never held may rank higher.
            if let threshold, try list.precedes(threshold, slot, &cache, store) { continue }
            try list.insert(slot, near: hint, &cache, store)
            if hint != nil && c.unitsChanged { unitsOnly = true }
        }
        if threshold != nil && list.slots.count < capacity {
            stats.rescans += 1
            let refilled = encode(try rescan(tableKey, store))
            if refilled != stored {
                stats.written += 1
                try store.put(AutocompleteLayout.top, tableKey, refilled)
            }
            return
        }
        if list.slots.count > capacity { list.slots.removeSubrange(capacity...) }
        if list.same(as: original) {
            if unitsOnly { stats.unitsOnly += 1 }
            return
        }
        stats.written += 1
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
    /// decoding and re-encoding every entry. Units are not stored: a slot's are read from its
    /// entity record when a comparison needs them.
    struct SlotList {
        struct Slot {
            var fresh: Bool
            var unitsKnown: Bool
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
                guard end <= b.count, recordStart < end, trailer + 2 <= b.count,
                      let (text, ref) = Self.textAndRef(b, recordStart, end) else { return nil }
                let kn = Int(b[trailer]) << 8 | Int(b[trailer + 1])
                guard kn > 0, trailer + 2 + kn <= b.count else { return nil }
                slots.append(Slot(fresh: false, unitsKnown: false, units: 0, record: recordStart..<end, text: text, ref: ref,
                                  key: (trailer + 2)..<(trailer + 2 + kn)))
                recordStart = end
                trailer += 2 + kn
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

        func keyBytes(_ s: Slot) -> [UInt8] { Array((s.fresh ? fresh : stored)[s.key]) }

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

        /// A slot's units: known for added slots, else read from its entity record (cached).
        private func units(_ s: Slot, _ cache: inout UnitsCache, _ store: some ReadModelReader) throws -> UInt64 {
            s.unitsKnown ? s.units : try cache.get(keyBytes(s), store)
        }

        /// The list order (``Entry/precedes(_:)``).
        func precedes(_ a: Slot, _ b: Slot, _ cache: inout UnitsCache, _ store: some ReadModelReader) throws -> Bool {
            let ua = try units(a, &cache, store), ub = try units(b, &cache, store)
            if ua != ub { return ua > ub }
            let ka = (a.fresh ? fresh : stored)[a.key.lowerBound], kb = (b.fresh ? fresh : stored)[b.key.lowerBound]
            if ka != kb { return ka < kb }
            let t = compare(a.fresh, a.text, b.fresh, b.text)
            if t != 0 { return t < 0 }
            let r = compare(a.fresh, a.ref, b.fresh, b.ref)
            if r != 0 { return r < 0 }
            return compare(a.fresh, a.key, b.fresh, b.key) < 0
        }

        /// Takes out the entry of this entity; its index when it was there.
        mutating func remove(key: [UInt8]) -> Int? {
            let i = key.withUnsafeBytes { k in
                stored.withUnsafeBytes { st in
                    fresh.withUnsafeBytes { fr in
                        slots.firstIndex { s in
                            s.key.count == k.count && memcmp((s.fresh ? fr : st).baseAddress! + s.key.lowerBound, k.baseAddress!, k.count) == 0
                        }
                    }
                }
            }
            if let i { slots.remove(at: i) }
            return i
        }

        /// Copies an encoded record and key into the fresh buffer and returns its slot (not yet
        /// in the list).
        mutating func add(record: [UInt8], key: [UInt8], units: UInt64) -> Slot {
            let start = fresh.count
            fresh += record
            let end = fresh.count
            guard let (text, ref) = Self.textAndRef(fresh, start, end) else { preconditionFailure("a record just encoded parses") }
            fresh += key
            return Slot(fresh: true, unitsKnown: true, units: units, record: start..<end, text: text, ref: ref, key: end..<fresh.count)
        }

        /// Inserts a slot at its place (the list is sorted): from `hint` (where the entity was)
        /// walking to its neighbours, as most changes move an entry little or not at all; else
        /// by binary search.
        mutating func insert(_ slot: Slot, near hint: Int?, _ cache: inout UnitsCache, _ store: some ReadModelReader) throws {
            if let hint {
                var at = min(hint, slots.count)
                while at > 0, try precedes(slot, resolved(at - 1, &cache, store), &cache, store) { at -= 1 }
                while at < slots.count, try precedes(resolved(at, &cache, store), slot, &cache, store) { at += 1 }
                slots.insert(slot, at: at)
                return
            }
            var lo = 0, hi = slots.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if try precedes(resolved(mid, &cache, store), slot, &cache, store) { lo = mid + 1 } else { hi = mid }
            }
            slots.insert(slot, at: lo)
        }

        /// Slot `i` with its units read (once per flush of this list: a list that takes many
        /// changes compares them with the same neighbours again and again).
        private mutating func resolved(_ i: Int, _ cache: inout UnitsCache, _ store: some ReadModelReader) throws -> Slot {
            if !slots[i].unitsKnown {
                slots[i].units = try cache.get(keyBytes(slots[i]), store)
                slots[i].unitsKnown = true
            }
            return slots[i]
        }

        /// Whether the list still encodes to its stored value: the same entities in the same order
        /// with the same record bytes.
        func same(as original: [Slot]) -> Bool {
            guard slots.count == original.count else { return false }
            for (s, o) in zip(slots, original) {
                if !s.fresh && s.record == o.record { continue }
                if s.record.count != o.record.count || s.key.count != o.key.count { return false }
                if compare(s.fresh, s.record, false, o.record) != 0 || compare(s.fresh, s.key, false, o.key) != 0 { return false }
            }
            return true
        }

        /// The stored value of the list (layout of ``AutocompleteTop/encode(_:)``), copied range
        /// by range.
        func encoded() -> [UInt8] {
            var size = 1 + 4 * slots.count
            for s in slots { size += s.record.count + 2 + s.key.count }
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
                            put(UInt64(s.key.count), 2, at: i); i += 2
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
    ///
    /// Exact matches rank first, so when the token's list holds `limit` entries (or the query
    /// can add no typo or synonym match) the answer is one get and a slice of it. Otherwise typo
    /// and synonym matches fill the rest, from the lists of the synonyms and of every string one
    /// edit away.
    static func answer(_ reader: some ReadModelReader, token: String, limit: Int, kinds: Set<UInt8>,
                       synonyms: [String]) throws -> Autocomplete.Answer? {
        let scalars = Array(token.unicodeScalars)
        let m = scalars.count
        guard m <= maxPrefixLength else { return nil }
        let typo = m >= 4
        let canFill = typo || !synonyms.isEmpty
        let tables: [UInt8] = kinds.isEmpty || kinds.count == 3 ? [0] : kinds.sorted()
        let prefix = Array(token.utf8)
        if tables.count == 1 {
            // The point read: one get, the response is a slice of the value.
            let hit: [UInt8]?? = try reader.withValue(AutocompleteLayout.top, key(tables[0], prefix)) { b in
                guard b.count >= 1, Int(b[0]) >= limit || !canFill else { return nil }
                return slice(b, limit: limit).map { Array($0) }
            }
            if case .some(.some(let bytes)) = hit { return .encoded(bytes) }
            if hit == nil && !canFill { return nil }  // nothing exact: the wider search follows
        }
        var known: [[UInt8]: UInt64] = [:]
        func candidate(_ s: Stored, typos: Int) throws -> Candidate {
            let units: UInt64
            if let u = known[s.key] { units = u } else { units = try Self.units(s.key, reader); known[s.key] = units }
            return Candidate(entry: Entry(units: units, key: s.key, text: s.text, ref: s.ref), typos: typos, exact: 1 - typos)
        }
        var exact: [Candidate] = []
        var seen = Set<[UInt8]>()
        for t in tables {
            for s in try list(reader, key(t, prefix)) where seen.insert(s.key).inserted { exact.append(try candidate(s, typos: 0)) }
        }
        exact.sort { $0.precedes($1) }
        if exact.count >= limit { return .ranked(Array(exact.prefix(limit))) }
        guard canFill else { return exact.isEmpty ? nil : .ranked(exact) }
        // Typo and synonym matches fill what exact matches leave: each source list holds its best
        // 50 by units, so the first `want` entries of each that are not exact matches hold the
        // best `want` of their union.
        guard !typo || m < maxPrefixLength, synonyms.allSatisfy({ $0.unicodeScalars.count <= maxPrefixLength }) else { return nil }
        let want = limit - exact.count
        var fuzzy: [[UInt8]: Candidate] = [:]
        func add(_ prefix: [UInt8]) throws {
            for t in tables {
                let entries = try reader.withValue(AutocompleteLayout.top, key(t, prefix)) { decode($0, upTo: want, skipping: seen) } ?? nil
                for s in entries ?? [] where fuzzy[s.key] == nil { fuzzy[s.key] = try candidate(s, typos: 1) }
            }
        }
        for s in synonyms { try add(Array(s.utf8)) }
        if typo {
            let letters = try alphabet(reader)
            if prefix.allSatisfy({ $0 < 0x80 }) {
                let following = try followingBytes(reader, tables: tables, token: prefix)
                try forEachNeighbour(ascii: prefix, letters, following: following) { n in try add(n) }
            } else {
                for n in neighbours(scalars, letters) { try add(n) }
            }
        }
        if exact.isEmpty && fuzzy.isEmpty { return nil }
        var rest = Array(fuzzy.values)
        rest.sort { $0.precedes($1) }
        return .ranked(exact + rest.prefix(want))
    }

    /// Which bytes follow `token[..<i]` in some list key, for i in 1...token.count: bit `b` of
    /// `result[i - 1]` is set when a list of `tables` has a prefix `token[..<i] + [b] + …`. A
    /// neighbour that puts byte `b` at position `i` can only have a list when that bit is set,
    /// so the typo pass skips the others unread. One cursor seek per following byte (plus one),
    /// instead of one lookup per letter of the alphabet at every position.
    static func followingBytes(_ reader: some ReadModelReader, tables: [UInt8], token: [UInt8]) throws -> [ByteSet] {
        var result = [ByteSet](repeating: ByteSet(), count: token.count)
        guard !token.isEmpty else { return result }
        for i in 1...token.count {
            for t in tables {
                let stem = [t] + token[..<i]
                var next = 0
                while next <= 255 {
                    var found: UInt8?
                    try reader.scan(AutocompleteLayout.top, prefix: stem, from: stem + [UInt8(next)], reverse: false) { key, _ in
                        if key.count > stem.count { found = key[stem.count] }
                        return false
                    }
                    guard let byte = found else { break }
                    result[i - 1].insert(byte)
                    next = Int(byte) + 1
                }
            }
        }
        return result
    }

    /// A set of byte values (256 bits).
    struct ByteSet {
        private var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

        mutating func insert(_ byte: UInt8) {
            let bit = UInt64(1) << UInt64(byte & 63)
            switch byte >> 6 {
            case 0: words.0 |= bit
            case 1: words.1 |= bit
            case 2: words.2 |= bit
            default: words.3 |= bit
            }
        }

        func contains(_ byte: UInt8) -> Bool {
            let word = switch byte >> 6 { case 0: words.0; case 1: words.1; case 2: words.2; default: words.3 }
            return word & (UInt64(1) << UInt64(byte & 63)) != 0
        }
    }

    /// ``neighbours(_:_:)`` of an ASCII token, built in one reused buffer without collecting them
    /// (a string may come twice, e.g. the same letter inserted before or after itself: harmless).
    /// With `following` (``followingBytes(_:tables:token:)``), those that no list can have are
    /// skipped: every neighbour with a list still comes.
    static func forEachNeighbour(ascii token: [UInt8], _ alphabet: [Unicode.Scalar], following: [ByteSet]? = nil, _ body: ([UInt8]) throws -> Void) throws {
        let m = token.count
        guard m >= 2 else { return }
        /// Whether a neighbour whose byte at `i` (≥ 1) is `byte` can have a list.
        func possible(_ i: Int, _ byte: UInt8) -> Bool {
            guard let following, i >= 1, i <= following.count else { return true }
            return following[i - 1].contains(byte)
        }
        let letters = alphabet.map { Array(String($0).utf8) }
        let firsts = (token[0], token[1])
        var buf: [UInt8] = []
        buf.reserveCapacity(m + 4)
        for i in 0..<m where i + 1 >= m || possible(i, token[i + 1]) {
            buf.removeAll(keepingCapacity: true)
            buf += token[..<i]; buf += token[(i + 1)...]
            try body(buf)
        }
        for i in 0..<(m - 1) where token[i] != token[i + 1] && possible(i, token[i + 1]) {
            buf.removeAll(keepingCapacity: true)
            buf += token; buf.swapAt(i, i + 1)
            try body(buf)
        }
        for c in letters {
            let first = c.count == 1 && (c[0] == firsts.0 || c[0] == firsts.1)
            for i in 0..<m where (c.count != 1 || c[0] != token[i]) && (i > 0 || first) && possible(i, c[0]) {
                buf.removeAll(keepingCapacity: true)
                buf += token[..<i]; buf += c; buf += token[(i + 1)...]
                try body(buf)
            }
            for i in 0...m where (i > 0 || first) && possible(i, c[0]) {
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
