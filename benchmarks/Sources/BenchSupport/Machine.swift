import Glibc  // Linux only: /proc, clock_gettime, getloadavg

/// CLOCK_PROCESS_CPUTIME_ID: CPU time of every thread of this process.
public func processCPUNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

/// CLOCK_MONOTONIC in nanoseconds: the latency clock (no allocation, vDSO).
@inline(__always)
public func monotonicNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

/// The 1-minute load average, to show whether something else was busy during the run.
public func loadAverage() -> Double {
    var loads = [Double](repeating: 0, count: 3)
    return getloadavg(&loads, 3) > 0 ? loads[0] : -1
}

/// An error of the benchmark itself (setup, verification, protocol with a child process).
public struct BenchError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Writes `text` to a file descriptor unbuffered (1 = standard output, 2 = standard error).
public func writeUnbuffered(_ text: String, to descriptor: Int32) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        if written < 0, errno == EINTR { continue }
        guard written > 0 else { return }
        bytes = bytes.dropFirst(written)
    }
}

/// `value` with `decimals` digits after the point (no Foundation formatting needed).
public func formatFixed(_ value: Double, _ decimals: Int) -> String {
    guard value.isFinite else { return "\(value)" }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let scaled = (abs(value) * scale).rounded()
    let whole = UInt64(scaled / scale)
    let fraction = UInt64(scaled - Double(whole) * scale)
    var text = (value < 0 && scaled != 0 ? "-" : "") + "\(whole)"
    if decimals > 0 {
        let digits = String(fraction)
        text += "." + String(repeating: "0", count: decimals - digits.count) + digits
    }
    return text
}

/// Busy time of the whole machine (every process, every CPU, including time stolen by the
/// hypervisor) from /proc/stat, to tell how much CPU something other than the benchmark took
/// during a measurement.
public struct MachineCPU: Sendable {
    /// Busy nanoseconds summed over all CPUs since boot (10 ms resolution).
    public var busyNanoseconds: UInt64

    /// Number of online CPUs.
    public static let cpuCount = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))

    /// The counters now, or zero if /proc/stat cannot be read.
    public static func current() -> MachineCPU {
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
