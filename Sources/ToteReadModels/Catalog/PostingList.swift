/// A set of dense internal product ids as a sorted array of `UInt32` (the sparse form of a
/// stored posting chunk, little-endian 4-byte words; dense chunks are bitsets, see
/// ``PostingChunk``).
///
/// Chosen over roaring bitmaps: lists per (category, attribute, value) are mostly short (tens to a
/// few thousand ids), where a sorted array is as small as a roaring array container and needs no C
/// library; intersections use galloping search, so a short list against a long one costs
/// O(short · log long). Measured with `CatalogPostingListTests` (see docs/READMODELS.md).
public struct PostingList: Sendable, Hashable {
    /// The ids, ascending, without duplicates.
    public private(set) var ids: [UInt32]

    /// An empty list.
    public init() { ids = [] }

    /// A list from ids in any order (sorted and deduplicated here).
    public init<S: Sequence>(_ ids: S) where S.Element == UInt32 {
        var sorted = Array(ids)
        sorted.sort()
        var out: [UInt32] = []
        out.reserveCapacity(sorted.count)
        for id in sorted where out.last != id { out.append(id) }
        self.ids = out
    }

    /// Ids already sorted and unique (not checked).
    init(sortedUnique ids: [UInt32]) { self.ids = ids }

    /// Decodes the stored form (little-endian words); trailing partial words are ignored.
    public init(bytes: UnsafeRawBufferPointer) {
        let n = bytes.count / 4
        var out = [UInt32](repeating: 0, count: n)
        for i in 0..<n { out[i] = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)) }
        ids = out
    }

    /// Decodes a stored `catalog.postings` chunk of either form (sorted array or bitset), given
    /// its key (which ends with the chunk number).
    public init(chunk bytes: UnsafeRawBufferPointer, key: UnsafeRawBufferPointer) {
        ids = PostingChunk.ids(bytes, chunk: PostingChunk.number(ofKey: key))
    }

    /// The stored form.
    public var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: ids.count * 4)
        out.withUnsafeMutableBytes { raw in
            for (i, id) in ids.enumerated() { raw.storeBytes(of: id.littleEndian, toByteOffset: i * 4, as: UInt32.self) }
        }
        return out
    }

    public var count: Int { ids.count }
    public var isEmpty: Bool { ids.isEmpty }

    /// Whether `id` is in the list (binary search).
    public func contains(_ id: UInt32) -> Bool {
        let i = Self.lowerBound(ids, id, from: 0)
        return i < ids.count && ids[i] == id
    }

    /// Adds `id`; returns false when it was there already.
    @discardableResult
    public mutating func insert(_ id: UInt32) -> Bool {
        let i = Self.lowerBound(ids, id, from: 0)
        if i < ids.count && ids[i] == id { return false }
        ids.insert(id, at: i)
        return true
    }

    /// Removes `id`; returns false when it was absent.
    @discardableResult
    public mutating func remove(_ id: UInt32) -> Bool {
        let i = Self.lowerBound(ids, id, from: 0)
        guard i < ids.count && ids[i] == id else { return false }
        ids.remove(at: i)
        return true
    }

    /// The ids in both lists: walks the shorter list and gallops through the longer one.
    public func intersection(_ other: PostingList) -> PostingList {
        let (small, large) = ids.count <= other.ids.count ? (ids, other.ids) : (other.ids, ids)
        if small.isEmpty { return PostingList() }
        var out: [UInt32] = []
        out.reserveCapacity(small.count)
        var j = 0
        for id in small {
            j = Self.gallop(large, id, from: j)
            if j == large.count { break }
            if large[j] == id { out.append(id) }
        }
        return PostingList(sortedUnique: out)
    }

    /// The number of ids in both lists, without building the intersection.
    public func intersectionCount(_ other: PostingList) -> Int {
        let (small, large) = ids.count <= other.ids.count ? (ids, other.ids) : (other.ids, ids)
        var n = 0
        var j = 0
        for id in small {
            j = Self.gallop(large, id, from: j)
            if j == large.count { break }
            if large[j] == id { n += 1 }
        }
        return n
    }

    /// The ids in either list (linear merge).
    public func union(_ other: PostingList) -> PostingList {
        if ids.isEmpty { return other }
        if other.ids.isEmpty { return self }
        var out: [UInt32] = []
        out.reserveCapacity(ids.count + other.ids.count)
        var i = 0, j = 0
        let a = ids, b = other.ids
        while i < a.count && j < b.count {
            if a[i] < b[j] { out.append(a[i]); i += 1 } else if b[j] < a[i] { out.append(b[j]); j += 1 } else { out.append(a[i]); i += 1; j += 1 }
        }
        out.append(contentsOf: a[i...])
        out.append(contentsOf: b[j...])
        return PostingList(sortedUnique: out)
    }

    /// The union of many lists.
    public static func union(_ lists: [PostingList]) -> PostingList {
        if lists.count <= 2 { return lists.reduce(PostingList()) { $0.union($1) } }
        var all: [UInt32] = []
        all.reserveCapacity(lists.reduce(0) { $0 + $1.count })
        for l in lists { all.append(contentsOf: l.ids) }
        return PostingList(all)
    }

    /// The intersection of optional restrictions: nil means "no restriction" (everything).
    static func intersect(_ lists: [PostingList?]) -> PostingList? {
        var present = lists.compactMap { $0 }
        guard !present.isEmpty else { return nil }
        present.sort { $0.count < $1.count }
        var acc = present[0]
        for l in present.dropFirst() {
            if acc.isEmpty { break }
            acc = acc.intersection(l)
        }
        return acc
    }

    /// First index ≥ `from` whose element is ≥ `value` (binary search).
    static func lowerBound(_ a: [UInt32], _ value: UInt32, from: Int) -> Int {
        var lo = from, hi = a.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if a[mid] < value { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// Like ``lowerBound(_:_:from:)`` but probes 1, 2, 4, … steps ahead first (galloping), so a
    /// run of nearby lookups costs O(log distance) each.
    static func gallop(_ a: [UInt32], _ value: UInt32, from: Int) -> Int {
        var lo = from
        if lo >= a.count || a[lo] >= value { return lo }
        var step = 1
        var hi = lo + step
        while hi < a.count && a[hi] < value {
            lo = hi
            step *= 2
            hi = lo + step
        }
        var l = lo + 1, h = min(hi, a.count)
        while l < h {
            let mid = (l + h) / 2
            if a[mid] < value { l = mid + 1 } else { h = mid }
        }
        return l
    }
}

/// Posting lists as stored: each list is split into chunks of 4,096 consecutive ids, one LMDB
/// value per chunk under the list's key followed by the chunk number (u16 BE), each chunk a
/// sorted array or a bitset by its density (``PostingChunk``). Keeps every write small (at most
/// 512 bytes rewritten per change, however long the list) while a read is one short cursor scan
/// whose chunks concatenate in order. Ids must stay below 2^24 (16.7 million products)
/// so that a chunk number's first byte stays below 0x10.
enum Postings {
    /// Bytes of the chunk number after a list's key.
    static let suffixLength = 2
    static let chunkShift: UInt32 = 12

    static func chunkKey(_ key: [UInt8], _ id: UInt32) -> [UInt8] {
        let c = id >> chunkShift
        return key + [UInt8((c >> 8) & 0xff), UInt8(c & 0xff)]
    }

    /// What the first look at a stored chunk decided: the bytes to store (empty: delete), nothing
    /// to do, or a full merge of its ids.
    enum ChunkUpdate { case write([UInt8]), unchanged, merge }

    /// Applies a batch's changes to one chunk (`chunkKey`: list key + chunk number): one read and
    /// at most one write (or delete, when it empties). An id added that is present, or removed
    /// that is absent, changes nothing. The result is stored in the form its count calls for
    /// (``PostingChunk``: a sorted array below 128 ids, a 512-byte bitset from 128 on).
    static func apply<W: ReadModelWriter>(_ change: CatalogProjection.ChunkChange, to chunkKey: [UInt8], _ store: inout W) throws {
        let adds = change.adds.sorted(), removes = change.removes.sorted()
        let chunk = Int(chunkKey[chunkKey.count - 2]) << 8 | Int(chunkKey[chunkKey.count - 1])
        // A bitset chunk: set and clear bits in a copy of its words (no ids decoded).
        // An array chunk (new products, ids allocated in order): nothing removed, every id added
        // is above the chunk's last one and the result stays an array: the stored bytes followed
        // by the new ids, no decoding.
        let next: ChunkUpdate = try store.withValue(CatalogLayout.postings, chunkKey) { old -> ChunkUpdate in
            if PostingChunk.isBitset(old) {
                var bits = (0..<PostingChunk.words).map { PostingChunk.word(old, $0) }
                let before = bits
                let base = UInt32(chunk * PostingChunk.span)
                for id in adds { let o = Int(id - base); bits[o >> 6] |= 1 << UInt64(o & 63) }
                for id in removes { let o = Int(id - base); bits[o >> 6] &= ~(1 << UInt64(o & 63)) }
                if bits == before { return .unchanged }
                let n = bits.reduce(0) { $0 + $1.nonzeroBitCount }
                if n >= PostingChunk.bitsetThreshold { return .write(PostingChunk.encode(bits: bits)) }
                var ids: [UInt32] = []
                ids.reserveCapacity(n)
                for (i, word) in bits.enumerated() {
                    var w = word
                    while w != 0 { ids.append(base + UInt32(i * 64 + w.trailingZeroBitCount)); w &= w - 1 }
                }
                return .write(n == 0 ? [] : PostingList(sortedUnique: ids).bytes)
            }
            let n = old.count / 4
            guard removes.isEmpty, let first = adds.first, n + adds.count < PostingChunk.bitsetThreshold,
                  n == 0 || UInt32(littleEndian: old.loadUnaligned(fromByteOffset: (n - 1) * 4, as: UInt32.self)) < first,
                  zip(adds, adds.dropFirst()).allSatisfy({ $0 < $1 }) else { return .merge }
            var out = [UInt8](repeating: 0, count: (n + adds.count) * 4)
            out.withUnsafeMutableBytes { raw in
                if n > 0 { raw.copyMemory(from: UnsafeRawBufferPointer(rebasing: old[..<(n * 4)])) }
                for (i, id) in adds.enumerated() { raw.storeBytes(of: id.littleEndian, toByteOffset: (n + i) * 4, as: UInt32.self) }
            }
            return .write(out)
        } ?? .merge
        switch next {
        case .unchanged: return
        case .write(let bytes):
            if bytes.isEmpty { try store.delete(CatalogLayout.postings, chunkKey) } else { try store.put(CatalogLayout.postings, chunkKey, bytes) }
            return
        case .merge: break
        }
        let old = try store.withValue(CatalogLayout.postings, chunkKey) { PostingChunk.ids($0, chunk: chunk) } ?? []
        var out: [UInt32] = []
        out.reserveCapacity(old.count + adds.count)
        var i = 0, a = 0, r = 0
        while i < old.count || a < adds.count {
            let next: UInt32
            if a == adds.count || (i < old.count && old[i] <= adds[a]) {
                next = old[i]
                if a < adds.count && adds[a] == next { a += 1 }  // added but already there
                i += 1
            } else {
                next = adds[a]
                a += 1
            }
            while r < removes.count && removes[r] < next { r += 1 }
            if r < removes.count && removes[r] == next { continue }
            out.append(next)
        }
        guard out != old else { return }
        if out.isEmpty { try store.delete(CatalogLayout.postings, chunkKey) } else { try store.put(CatalogLayout.postings, chunkKey, PostingChunk.encode(sortedIDs: out, chunk: chunk)) }
    }

    /// The whole list `key` (its chunks, concatenated). Its chunks sort before any longer key
    /// with the same prefix (a chunk number's first byte is below 0x10, the next byte of a longer
    /// token or attribute key is a letter or digit), so the scan stops at the first other key.
    static func read(_ reader: some ReadModelReader, _ key: [UInt8]) throws -> PostingList {
        var ids: [UInt32] = []
        try reader.scan(CatalogLayout.postings, prefix: key, from: nil, reverse: false) { k, v in
            guard k.count == key.count + suffixLength else { return false }
            ids.append(contentsOf: PostingChunk.ids(v, chunk: PostingChunk.number(ofKey: k)))
            return true
        }
        return PostingList(sortedUnique: ids)
    }
}
