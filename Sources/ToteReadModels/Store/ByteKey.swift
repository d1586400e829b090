/// Bytes as a dictionary or set key, hashed in one call over the whole buffer.
///
/// `[UInt8]`'s own `Hashable` feeds the hasher one byte at a time, which made hashing the largest
/// single cost of the projections' per-batch dictionaries (keys of 10–60 bytes): see the
/// catch-up profile in benchmarks/RESULTS.md. Equality is the arrays'.
struct ByteKey: Hashable {
    var bytes: [UInt8]

    @inline(__always)
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    @inline(__always)
    func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }
}
