import CAllocCounter
import Glibc  // Linux only: /proc, posix_spawn, glibc's allocator

/// A snapshot of this process's resource counters, to difference around a measured interval.
struct ProcessStats: Sendable {
    /// Allocation calls so far (see CAllocCounter), over all threads.
    var allocations: UInt64
    /// CPU time (user + system) consumed so far by all threads, in nanoseconds.
    var cpuNanoseconds: UInt64

    /// This process's counters now.
    static func current() -> ProcessStats {
        ProcessStats(allocations: alloc_counter_total(), cpuNanoseconds: processCPUNanoseconds())
    }

    /// Whether the allocation counter is really interposed (else allocations read as 0).
    static var countsAllocations: Bool { alloc_counter_is_active() != 0 }

    /// The wire form used between the driver and a server process: "<allocations> <cpu ns>".
    var line: String { "\(allocations) \(cpuNanoseconds)" }

    init(allocations: UInt64, cpuNanoseconds: UInt64) {
        self.allocations = allocations
        self.cpuNanoseconds = cpuNanoseconds
    }

    /// Parses ``line``.
    init?(line: some StringProtocol) {
        let fields = line.split(separator: " ")
        guard fields.count == 2, let allocations = UInt64(fields[0]), let cpu = UInt64(fields[1]) else { return nil }
        self.init(allocations: allocations, cpuNanoseconds: cpu)
    }

    /// Counter increases from `earlier` to `self`.
    func since(_ earlier: ProcessStats) -> ProcessStats {
        ProcessStats(
            allocations: allocations &- earlier.allocations,
            cpuNanoseconds: cpuNanoseconds &- earlier.cpuNanoseconds
        )
    }
}
