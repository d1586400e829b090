/// The stored form of one posting chunk (the ids of a list between `c · 4096` and
/// `c · 4096 + 4095`, `c` = the chunk number at the end of its key), chosen per chunk as roaring
/// bitmaps choose their containers:
///
/// - fewer than ``bitsetThreshold`` ids: a **sorted array**, the ids as `u32` little-endian
///   (at most 508 bytes);
/// - otherwise a **bitset**: exactly ``bitsetBytes`` (512) bytes, 64 `u64` little-endian words,
///   bit `id % 64` of word `(id % 4096) / 64` set when `id` is in the chunk.
///
/// The length tells them apart (an array is never 512 bytes long). The form is a function of the
/// chunk's ids only, so any cut of the log into batches still gives the same bytes. A bitset's
/// words line up with the words of an ``IDBitmap`` (`4096 / 64` words per chunk), so a query ORs,
/// ANDs and popcounts them straight from the memory map, without decoding ids.
enum PostingChunk {
    /// Ids per chunk (`1 << Postings.chunkShift`).
    static let span = 4096
    /// 64-bit words of a bitset chunk.
    static let words = 64
    /// Bytes of a bitset chunk.
    static let bitsetBytes = 512
    /// A chunk with at least this many ids is a bitset (where 4 bytes per id reach 512 bytes).
    static let bitsetThreshold = 128

    /// Whether stored chunk bytes are a bitset.
    @inline(__always)
    static func isBitset(_ bytes: UnsafeRawBufferPointer) -> Bool { bytes.count == bitsetBytes }

    /// The chunk number at the end of a `catalog.postings` key (`u16` BE).
    @inline(__always)
    static func number(ofKey key: UnsafeRawBufferPointer) -> Int {
        Int(key[key.count - 2]) << 8 | Int(key[key.count - 1])
    }

    /// Word `i` of a bitset chunk.
    @inline(__always)
    static func word(_ bytes: UnsafeRawBufferPointer, _ i: Int) -> UInt64 {
        UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))
    }

    /// The number of ids in a stored chunk.
    static func count(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard isBitset(bytes) else { return bytes.count / 4 }
        var n = 0
        for i in 0..<words { n &+= word(bytes, i).nonzeroBitCount }
        return n
    }

    /// The ids of a stored chunk, ascending.
    static func ids(_ bytes: UnsafeRawBufferPointer, chunk: Int) -> [UInt32] {
        var out: [UInt32] = []
        if isBitset(bytes) {
            out.reserveCapacity(count(bytes))
            let base = UInt32(chunk * span)
            for i in 0..<words {
                var bits = word(bytes, i)
                while bits != 0 {
                    out.append(base + UInt32(i * 64 + bits.trailingZeroBitCount))
                    bits &= bits - 1
                }
            }
        } else {
            let n = bytes.count / 4
            out = [UInt32](repeating: 0, count: n)
            for i in 0..<n { out[i] = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)) }
        }
        return out
    }

    /// The stored form of a chunk's ids (ascending, unique, all in chunk `chunk`).
    static func encode(sortedIDs ids: [UInt32], chunk: Int) -> [UInt8] {
        if ids.count < bitsetThreshold { return PostingList(sortedUnique: ids).bytes }
        var bits = [UInt64](repeating: 0, count: words)
        let base = UInt32(chunk * span)
        for id in ids {
            let offset = Int(id - base)
            bits[offset >> 6] |= 1 << UInt64(offset & 63)
        }
        return encode(bits: bits)
    }

    /// A bitset chunk's bytes from its 64 words.
    static func encode(bits: [UInt64]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: bitsetBytes)
        out.withUnsafeMutableBytes { raw in
            for (i, w) in bits.enumerated() { raw.storeBytes(of: w.littleEndian, toByteOffset: i * 8, as: UInt64.self) }
        }
        return out
    }
}
