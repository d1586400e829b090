/// A log-linear latency histogram in the spirit of HdrHistogram: fixed memory, no allocation
/// when recording, and a bounded relative error.
///
/// Values are nanoseconds. Values below `2 × subBucketHalf` are counted exactly; above that each
/// power-of-two range is split into `subBucketHalf` equal buckets, so a reported percentile is
/// within 1/`subBucketHalf` (0.8 %) of the true sample value. Each caller records into its own
/// histogram; they are merged at the end.
public struct LatencyHistogram: Sendable {
    /// log2 of the number of sub-buckets per power of two.
    private static let subBucketBits = 7
    private static let subBucketHalf: UInt64 = 1 << subBucketBits
    private static let bucketCount = (63 - subBucketBits) * Int(subBucketHalf) + 2 * Int(subBucketHalf)

    private var counts: [UInt64]
    /// Number of recorded values.
    public private(set) var count: UInt64 = 0
    /// Smallest and largest recorded values (exact).
    public private(set) var min: UInt64 = .max
    public private(set) var max: UInt64 = 0
    private var sum: UInt64 = 0

    public init() {
        counts = [UInt64](repeating: 0, count: Self.bucketCount)
    }

    /// The mean of the recorded values, or 0 if none.
    public var mean: Double { count == 0 ? 0 : Double(sum) / Double(count) }

    @inline(__always)
    private static func index(of value: UInt64) -> Int {
        if value < 2 * subBucketHalf { return Int(value) }
        let msb = UInt64.bitWidth - 1 - value.leadingZeroBitCount
        let shift = msb - subBucketBits
        return shift * Int(subBucketHalf) + Int(value >> UInt64(shift))
    }

    /// The range of values bucket `index` holds.
    private static func range(of index: Int) -> ClosedRange<UInt64> {
        if index < 2 * Int(subBucketHalf) { return UInt64(index)...UInt64(index) }
        let shift = index / Int(subBucketHalf) - 1
        let sub = UInt64(index % Int(subBucketHalf)) + subBucketHalf
        return (sub << UInt64(shift))...(((sub + 1) << UInt64(shift)) &- 1)  // wraps to .max at the top
    }

    /// Records one value, in nanoseconds.
    @inline(__always)
    public mutating func record(_ nanoseconds: UInt64) {
        counts[Self.index(of: nanoseconds)] &+= 1
        count &+= 1
        sum &+= nanoseconds
        if nanoseconds < min { min = nanoseconds }
        if nanoseconds > max { max = nanoseconds }
    }

    /// Adds every value recorded in `other`.
    public mutating func merge(_ other: LatencyHistogram) {
        for index in counts.indices where other.counts[index] != 0 {
            counts[index] &+= other.counts[index]
        }
        count &+= other.count
        sum &+= other.sum
        min = Swift.min(min, other.min)
        max = Swift.max(max, other.max)
    }

    /// The value below which `percentile` % of the recorded values fall (nearest rank), reported
    /// as the midpoint of its bucket and clamped to the exact min and max. 0 if nothing was recorded.
    public func value(atPercentile percentile: Double) -> UInt64 {
        guard count > 0 else { return 0 }
        let rank = Swift.max(1, UInt64((percentile / 100 * Double(count)).rounded(.up)))
        var seen: UInt64 = 0
        for index in counts.indices where counts[index] != 0 {
            seen += counts[index]
            if seen >= rank {
                let bucket = Self.range(of: index)
                let midpoint = bucket.lowerBound + (bucket.upperBound - bucket.lowerBound) / 2
                return Swift.min(Swift.max(midpoint, min), max)
            }
        }
        return max
    }
}
