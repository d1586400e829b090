/// A set of internal product ids as one bit per id (query time only; nothing stored in this form).
///
/// Catalog ids are dense (allocated 1, 2, 3, …), so a bitmap over every id is small (100,000
/// products: 12.5 KiB) and makes the operations a facet query repeats cheap: intersecting two
/// sets is an AND over the words, a membership test is one load, counting is a popcount. Chunks
/// read from `catalog.postings` go straight into it without building `[UInt32]`: a bitset chunk's
/// 64 words line up with 64 words here (ORed, or ANDed and popcounted, from the memory map), an
/// array chunk's ids are set or probed one by one (``PostingChunk``).
struct IDBitmap {
    /// Bit `id % 64` of word `id / 64` is set when `id` is in the set.
    private(set) var words: [UInt64]

    /// An empty set sized for ids below `universe` (it grows if a larger id is inserted).
    init(universe: Int) {
        words = [UInt64](repeating: 0, count: (max(universe, 1) + 63) / 64)
    }

    /// Adds `id`.
    @inline(__always)
    mutating func insert(_ id: UInt32) {
        let w = Int(id >> 6)
        if w >= words.count { words.append(contentsOf: repeatElement(0, count: w + 1 - words.count)) }
        words[w] |= 1 << UInt64(id & 63)
    }

    /// Adds every id of a stored posting chunk (``PostingChunk``: a bitset is ORed word by word
    /// from the stored bytes, an array's ids are set one by one); `chunk` is its number.
    mutating func insert(chunk bytes: UnsafeRawBufferPointer, number chunk: Int) {
        if PostingChunk.isBitset(bytes) {
            let first = chunk * PostingChunk.words
            let needed = first + PostingChunk.words
            if needed > words.count { words.append(contentsOf: repeatElement(0, count: needed - words.count)) }
            words.withUnsafeMutableBufferPointer { w in
                for i in 0..<PostingChunk.words { w[first + i] |= PostingChunk.word(bytes, i) }
            }
            return
        }
        let n = bytes.count / 4
        guard n > 0 else { return }
        let last = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: (n - 1) * 4, as: UInt32.self))
        let needed = Int(last >> 6) + 1
        if needed > words.count { words.append(contentsOf: repeatElement(0, count: needed - words.count)) }
        words.withUnsafeMutableBufferPointer { w in
            for i in 0..<n {
                let id = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))
                let index = Int(id >> 6)
                if index < w.count { w[index] |= 1 << UInt64(id & 63) }
            }
        }
    }

    /// Adds every id of `ids`.
    mutating func insert(contentsOf ids: [UInt32]) {
        for id in ids { insert(id) }
    }

    /// Whether `id` is in the set.
    @inline(__always)
    func contains(_ id: UInt32) -> Bool {
        let w = Int(id >> 6)
        return w < words.count && words[w] & (1 << UInt64(id & 63)) != 0
    }

    /// Keeps only the ids also in `other`.
    mutating func formIntersection(_ other: IDBitmap) {
        let n = min(words.count, other.words.count)
        words.withUnsafeMutableBufferPointer { a in
            other.words.withUnsafeBufferPointer { b in
                for i in 0..<n { a[i] &= b[i] }
                for i in n..<a.count { a[i] = 0 }
            }
        }
    }

    /// Adds the ids of `other`.
    mutating func formUnion(_ other: IDBitmap) {
        if other.words.count > words.count { words.append(contentsOf: repeatElement(0, count: other.words.count - words.count)) }
        words.withUnsafeMutableBufferPointer { a in
            other.words.withUnsafeBufferPointer { b in
                for i in 0..<b.count { a[i] |= b[i] }
            }
        }
    }

    /// The intersection of optional restrictions (nil = no restriction); nil when all are nil.
    static func intersect(_ sets: [IDBitmap?]) -> IDBitmap? {
        var result: IDBitmap?
        for case let set? in sets {
            if result == nil { result = set } else { result!.formIntersection(set) }
        }
        return result
    }

    /// The number of ids.
    var count: Int {
        words.withUnsafeBufferPointer { w in
            var n = 0
            for word in w { n &+= word.nonzeroBitCount }
            return n
        }
    }

    var isEmpty: Bool { !words.contains { $0 != 0 } }

    /// How many of `ids` are in the set (one probe each).
    func count(of ids: [UInt32]) -> Int {
        words.withUnsafeBufferPointer { w in
            var n = 0
            for id in ids { n &+= Self.bit(w, id) }
            return n
        }
    }

    /// 1 when `id` is in the set whose words are `w`, else 0, without a branch on the answer: a
    /// facet count probes thousands of ids whose membership is close to random, and a
    /// mispredicted branch per probe cost more than the probe itself (counting took 2.7× longer).
    @inline(__always)
    private static func bit(_ w: UnsafeBufferPointer<UInt64>, _ id: UInt32) -> Int {
        let index = Int(id >> 6)
        let word = index < w.count ? w[index] : 0  // a select, not a branch: ids past the set's words are absent
        return Int(truncatingIfNeeded: (word >> UInt64(id & 63)) & 1)
    }

    /// How many ids of a stored posting chunk (``PostingChunk``; `chunk` is its number) are in
    /// the set: a bitset is ANDed with the set's words and popcounted, an array's ids probed.
    func count(chunk bytes: UnsafeRawBufferPointer, number chunk: Int) -> Int {
        words.withUnsafeBufferPointer { w in
            var n = 0
            if PostingChunk.isBitset(bytes) {
                let first = chunk * PostingChunk.words
                let end = Swift.min(first + PostingChunk.words, w.count)
                guard first < end else { return 0 }
                for i in first..<end { n &+= (w[i] & PostingChunk.word(bytes, i - first)).nonzeroBitCount }
                return n
            }
            for i in 0..<(bytes.count / 4) {
                n &+= Self.bit(w, UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
            }
            return n
        }
    }

    /// Calls `body` with each id of a stored posting chunk (``PostingChunk``; `chunk` is its
    /// number) that is also in the set, ascending.
    func forEachCommon(chunk bytes: UnsafeRawBufferPointer, number chunk: Int, _ body: (UInt32) throws -> Void) rethrows {
        try words.withUnsafeBufferPointer { w in
            if PostingChunk.isBitset(bytes) {
                let first = chunk * PostingChunk.words
                let end = Swift.min(first + PostingChunk.words, w.count)
                guard first < end else { return }
                for i in first..<end {
                    var bits = w[i] & PostingChunk.word(bytes, i - first)
                    while bits != 0 {
                        try body(UInt32(i * 64 + bits.trailingZeroBitCount))
                        bits &= bits - 1
                    }
                }
                return
            }
            for i in 0..<(bytes.count / 4) {
                let id = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))
                let index = Int(id >> 6)
                if index < w.count && w[index] & (1 << UInt64(id & 63)) != 0 { try body(id) }
            }
        }
    }

    /// The ids, ascending.
    var ids: [UInt32] {
        var out: [UInt32] = []
        out.reserveCapacity(count)
        forEach { out.append($0); return true }
        return out
    }

    /// Calls `body` with each id in ascending order until it returns false.
    func forEach(_ body: (UInt32) throws -> Bool) rethrows {
        for (i, word) in words.enumerated() where word != 0 {
            var bits = word
            while bits != 0 {
                let id = UInt32(i * 64 + bits.trailingZeroBitCount)
                if try !body(id) { return }
                bits &= bits - 1
            }
        }
    }
}
