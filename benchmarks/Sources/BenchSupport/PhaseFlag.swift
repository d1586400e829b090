import Synchronization

/// The benchmark phase every caller (or writer) checks between calls.
public final class PhaseFlag: Sendable {
    public static let warmup = 0, measuring = 1, stopping = 2
    private let state = Atomic<Int>(PhaseFlag.warmup)

    public init() {}

    @inline(__always)
    public var current: Int { state.load(ordering: .relaxed) }

    public func set(_ phase: Int) { state.store(phase, ordering: .relaxed) }
}
