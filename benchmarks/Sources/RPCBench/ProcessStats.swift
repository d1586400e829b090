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

/// CLOCK_PROCESS_CPUTIME_ID: CPU time of every thread of this process.
func processCPUNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

/// CLOCK_MONOTONIC in nanoseconds: the latency clock (no allocation, vDSO).
@inline(__always)
func monotonicNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

/// The 1-minute load average, to show whether something else was busy during the run.
func loadAverage() -> Double {
    var loads = [Double](repeating: 0, count: 3)
    return getloadavg(&loads, 3) > 0 ? loads[0] : -1
}

/// An error of the benchmark itself (setup, verification, protocol with the server process).
struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Writes `text` to a file descriptor unbuffered (1 = standard output, 2 = standard error).
func writeUnbuffered(_ text: String, to descriptor: Int32) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        if written < 0, errno == EINTR { continue }
        guard written > 0 else { return }
        bytes = bytes.dropFirst(written)
    }
}

/// Busy time of the whole machine (every process, every CPU, including time stolen by the
/// hypervisor) from /proc/stat, to tell how much CPU something other than the benchmark took
/// during a measurement.
struct MachineCPU: Sendable {
    /// Busy nanoseconds summed over all CPUs since boot (10 ms resolution).
    var busyNanoseconds: UInt64

    /// Number of online CPUs.
    static let cpuCount = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))

    /// The counters now, or zero if /proc/stat cannot be read.
    static func current() -> MachineCPU {
        // First line: "cpu  user nice system idle iowait irq softirq steal guest guest_nice" (ticks).
        guard let line = readFirstLine("/proc/stat"), line.hasPrefix("cpu ") else { return MachineCPU(busyNanoseconds: 0) }
        let ticks = line.split(separator: " ").dropFirst().compactMap { UInt64($0) }
        guard ticks.count >= 8 else { return MachineCPU(busyNanoseconds: 0) }
        // guest time is already counted in user; idle (3) and iowait (4) are not busy.
        let busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7]
        let ticksPerSecond = UInt64(max(1, sysconf(Int32(_SC_CLK_TCK))))
        return MachineCPU(busyNanoseconds: busy * (1_000_000_000 / ticksPerSecond))
    }

    private static func readFirstLine(_ path: String) -> String? {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: 512)
        let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        let bytes = buffer[..<count]
        return String(decoding: bytes.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)
    }
}
