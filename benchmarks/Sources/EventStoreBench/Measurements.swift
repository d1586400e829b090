import BenchSupport
import Foundation
import Glibc

/// One write workload at one writer count, measured once.
struct WriteMeasurement: Sendable {
    let workload: Workload
    let writers: Int
    /// Appends (Tote) or transactions (pgbench) completed inside the measured window.
    let transactions: UInt64
    let eventsPerTransaction: Int
    let seconds: Double
    /// Latency of each append or transaction completed inside the window, in nanoseconds.
    let latency: LatencyHistogram
    /// CPU time over the window of the client: this process for Tote, the pgbench process for pgbench.
    let clientCPUNanoseconds: UInt64
    /// CPU time over the window of the cluster's processes (postmaster and its children).
    let serverCPUNanoseconds: UInt64
    /// Busy CPU time of the whole machine over the window (all CPUs).
    let machineBusyNanoseconds: UInt64
    /// Extra facts for the per-round line (pgbench's own TPS figure).
    var note = ""

    var transactionsPerSecond: Double { Double(transactions) / seconds }
    var eventsPerSecond: Double { transactionsPerSecond * Double(eventsPerTransaction) }
    var events: UInt64 { transactions * UInt64(eventsPerTransaction) }

    /// Share of the machine's CPU capacity that processes other than the client and the cluster
    /// used during the window (0...1): high values mean the figures are disturbed.
    var othersLoad: Double { othersShare(seconds: seconds, busy: machineBusyNanoseconds, ours: clientCPUNanoseconds + serverCPUNanoseconds) }
}

/// One catch-up read of the whole log, measured once.
struct ReadMeasurement: Sendable {
    /// `readAll`, `subscribe`, or `sql` (the same query on a bare connection: a reference).
    let reader: String
    let round: String
    let events: Int
    let seconds: Double
    let clientCPUNanoseconds: UInt64
    let serverCPUNanoseconds: UInt64
    let machineBusyNanoseconds: UInt64

    var eventsPerSecond: Double { Double(events) / seconds }
    var othersLoad: Double { othersShare(seconds: seconds, busy: machineBusyNanoseconds, ours: clientCPUNanoseconds + serverCPUNanoseconds) }
}

func othersShare(seconds: Double, busy: UInt64, ours: UInt64) -> Double {
    let capacity = seconds * 1e9 * Double(MachineCPU.cpuCount)
    return max(0, Double(busy) - Double(ours)) / capacity
}

/// Counters read at both ends of a measured window.
struct Snapshot: Sendable {
    let monotonic: UInt64
    let machine: MachineCPU
    let server: UInt64
    let client: UInt64

    /// Now: `client` is this process's CPU time, or that of process `clientPID` if given.
    static func take(_ postmaster: ClusterProcesses, clientPID: pid_t? = nil) -> Snapshot {
        Snapshot(
            monotonic: monotonicNanoseconds(),
            machine: MachineCPU.current(),
            server: postmaster.cpuNanoseconds(),
            client: clientPID.map { ClusterProcesses.cpuNanoseconds(ofProcess: $0) } ?? processCPUNanoseconds()
        )
    }
}

/// The CPU time of one PostgreSQL cluster's processes: the postmaster and its children (backends,
/// WAL writer, checkpointer, autovacuum...), read from /proc. Processes that exit within a window
/// are missed, which never happens to the pools' and pgbench's connections while they measure.
struct ClusterProcesses: Sendable {
    let postmasterPID: pid_t

    init(dataDirectory: URL) throws {
        let text = try String(contentsOf: dataDirectory.appendingPathComponent("postmaster.pid"), encoding: .utf8)
        guard let first = text.split(separator: "\n").first, let pid = pid_t(first.trimmingCharacters(in: .whitespaces)) else {
            throw BenchError("cannot read the postmaster's pid in \(dataDirectory.path)")
        }
        postmasterPID = pid
    }

    /// CPU time (user + system, all threads) of the postmaster and its children, in nanoseconds.
    func cpuNanoseconds() -> UInt64 {
        guard let directory = opendir("/proc") else { return 0 }
        defer { closedir(directory) }
        var total: UInt64 = 0
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let pid = pid_t(name), let stat = Self.stat(of: pid) else { continue }
            if pid == postmasterPID || stat.parent == postmasterPID { total += stat.cpu }
        }
        return total
    }

    /// CPU time of one process (all its threads), in nanoseconds; 0 if it is gone.
    static func cpuNanoseconds(ofProcess pid: pid_t) -> UInt64 {
        stat(of: pid)?.cpu ?? 0
    }

    private static let nanosecondsPerTick = 1_000_000_000 / UInt64(max(1, sysconf(Int32(_SC_CLK_TCK))))

    /// Parent pid and utime + stime from /proc/<pid>/stat.
    private static func stat(of pid: pid_t) -> (parent: pid_t, cpu: UInt64)? {
        let descriptor = open("/proc/\(pid)/stat", O_RDONLY)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: 1024)
        let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        // "pid (comm) state ppid ... utime stime ...": comm may hold spaces, so split after the last ')'.
        guard let parenthesis = buffer[..<count].lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = buffer[(parenthesis + 1)..<count].split(separator: UInt8(ascii: " "))
        // After ')': state(0) ppid(1) ... utime(11) stime(12).
        guard fields.count > 12,
              let parent = pid_t(String(decoding: fields[1], as: UTF8.self)),
              let user = UInt64(String(decoding: fields[11], as: UTF8.self)),
              let system = UInt64(String(decoding: fields[12], as: UTF8.self))
        else { return nil }
        return (parent, (user + system) * nanosecondsPerTick)
    }
}

/// A small fast random number generator (SplitMix64) for picking streams: no syscall per draw.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// `count` random bytes.
func randomBytes(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
}
