import BenchSupport
import EventStore
import Foundation
import Glibc
import LocalPostgres
import Synchronization

/// pgbench's side: PostgreSQL's own load generator on the same cluster, inserting rows shaped like
/// events into a table shaped like `events`, as fast as `clients` connections can.
struct PgBench: Sendable {
    /// The table pgbench inserts into: the columns and indexes of `events` that a single-row
    /// insert can fill without Tote's stream bookkeeping (no `streams` table, no stream version).
    static let tableSQL = """
        CREATE TABLE bench_events (
            global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tx_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
            stream_id bigint NOT NULL,
            event_id uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
            type text NOT NULL,
            data bytea NOT NULL,
            correlation_id text NOT NULL,
            recorded_at timestamptz NOT NULL DEFAULT clock_timestamp()
        );
        CREATE INDEX bench_events_stream ON bench_events (stream_id, global_position);
        CREATE INDEX bench_events_tx_position ON bench_events (tx_id, global_position);
        CREATE INDEX bench_events_correlation ON bench_events (correlation_id) WHERE correlation_id <> '';
        """

    /// The pgbench process running now, if any: killed if the benchmark is interrupted.
    static let running = Mutex<pid_t?>(nil)

    let executable: String
    private let host: String
    private let port: Int
    private let database: String
    private let workDirectory: URL
    private let options: BenchOptions

    /// pgbench's `-T`: whole seconds covering warm-up and window, plus one to spare.
    var durationArgument: Int { Int((options.warmupSeconds + options.durationSeconds).rounded(.up)) + 1 }

    init(cluster: LocalPostgresCluster, database: String, serverVersion: Int, workDirectory: URL, options: BenchOptions) throws {
        let major = serverVersion / 10000
        let candidates = ["/usr/lib/postgresql/\(major)/bin/pgbench", "/usr/lib/postgresql/15/bin/pgbench", "/usr/lib/postgresql/16/bin/pgbench", "/usr/lib/postgresql/17/bin/pgbench", "/usr/bin/pgbench"]
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw BenchError("pgbench not found (Debian: apt install postgresql-\(major), which ships it)")
        }
        executable = found
        host = cluster.directory.path
        port = cluster.port
        self.database = database
        self.workDirectory = workDirectory
        self.options = options
        try FileManager.default.createDirectory(at: workDirectory, withIntermediateDirectories: true)
        try script(for: .pgbench).write(to: scriptFile(.pgbench), atomically: true, encoding: .utf8)
        try script(for: .pgbenchBatch).write(to: scriptFile(.pgbenchBatch), atomically: true, encoding: .utf8)
        try script(for: .pgbenchAppend).write(to: scriptFile(.pgbenchAppend), atomically: true, encoding: .utf8)
    }

    private func scriptFile(_ workload: Workload) -> URL {
        workDirectory.appendingPathComponent("\(workload.rawValue).sql")
    }

    /// One INSERT per transaction (autocommit): a row, or `batchSize` rows, for a random stream,
    /// with the same payload size as Tote's events and a random correlation id.
    func script(for workload: Workload) -> String {
        let payload = randomBytes(options.payloadBytes).map { byte in
            let digits = Array("0123456789abcdef")
            return String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
        }.joined()
        let header = """
            \\set stream random(1, \(options.streams))
            \\set correlation random(1, 1000000000)

            """
        if workload == .pgbenchAppend {
            // The store's statement with its parameters spelled as pgbench expressions, highest
            // number first so that `$1` does not match inside `$10`. Same streams as Tote's
            // `append` workload, a fresh event id per row.
            let values: [(String, String)] = [
                ("$11", "''"), ("$10", "CAST(:correlation AS text)"), ("$9", "''"), ("$8", "'system'"), ("$7", "'bench'"),
                ("$6", "'\\x\(payload)'"), ("$5", "1"), ("$4", "'BenchEvent'"), ("$3", "gen_random_uuid()"),
                ("$2", "1"), ("$1", "'bench-' || (:stream - 1)"),
            ]
            var statement = EventStore.appendStatement(.any, singleEvent: true)
            for (parameter, value) in values { statement = statement.replacingOccurrences(of: parameter, with: value) }
            return header + statement.split(separator: "\n").joined(separator: " ") + ";\n"
        }
        if workload == .pgbenchBatch {
            return header + """
                INSERT INTO bench_events (stream_id, type, data, correlation_id) SELECT CAST(:stream AS bigint), 'BenchEvent', '\\x\(payload)'::bytea, CAST(:correlation AS text) FROM generate_series(1, \(options.batchSize));

                """
        }
        return header + """
            INSERT INTO bench_events (stream_id, type, data, correlation_id) VALUES (:stream, 'BenchEvent', '\\x\(payload)'::bytea, :correlation);

            """
    }

    /// Runs pgbench with `clients` connections for warm-up + window (+1 s), and measures the
    /// window exactly like Tote's: transactions that completed inside it (from pgbench's
    /// per-transaction log) and the CPU counters at its ends.
    func measure(_ workload: Workload, clients: Int, postmaster: ClusterProcesses, waits: WaitSampling?) async throws -> WriteMeasurement {
        let logPrefix = workDirectory.appendingPathComponent("log-\(workload.rawValue)-\(clients)").path
        let outputPath = workDirectory.appendingPathComponent("output.txt").path
        let arguments = [
            "-h", host, "-p", String(port), "-U", "postgres",
            "-n", "-M", "prepared", "-c", String(clients), "-j", String(min(2, clients)), "-T", String(durationArgument),
            "-f", scriptFile(workload).path, "--log", "--log-prefix=\(logPrefix)",
            database,
        ]
        let pid = try spawn(executable, arguments, outputPath: outputPath)
        var exited = false
        defer {
            if !exited {
                kill(pid, SIGKILL)
                _ = waitpid(pid, nil, 0)
                Self.running.withLock { $0 = nil }
            }
        }

        try await Task.sleep(for: .seconds(options.warmupSeconds))
        let sampler = try waits?.start()
        let startEpoch = realtimeMicroseconds()
        let start = Snapshot.take(postmaster, clientPID: pid)
        try await Task.sleep(for: .seconds(options.durationSeconds))
        let end = Snapshot.take(postmaster, clientPID: pid)
        let endEpoch = realtimeMicroseconds()
        let waitSummary = await sampler?.stop()

        var status: Int32 = 0
        while true {
            let waited = waitpid(pid, &status, WNOHANG)
            if waited == pid { break }
            if waited < 0, errno != EINTR { throw BenchError("waitpid(pgbench) failed: errno \(errno)") }
            try await Task.sleep(for: .milliseconds(20))
        }
        exited = true
        Self.running.withLock { $0 = nil }
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        guard status & 0x7f == 0, (status >> 8) & 0xff == 0 else {
            throw BenchError("pgbench \(arguments.joined(separator: " ")) failed (status \(status)):\n\(output)")
        }

        let log = try readLogs(prefix: logPrefix, from: startEpoch, to: endEpoch)
        guard log.lastCompletion >= endEpoch - 100_000 else {
            throw BenchError("pgbench's log ends \(Double(endEpoch - log.lastCompletion) / 1e6) s before the window's end: it ran too short")
        }
        if log.firstCompletion > startEpoch {
            writeUnbuffered("warning: pgbench's first transaction completed \(Double(log.firstCompletion - startEpoch) / 1e6) s into the window (connecting \(clients) clients took longer than the warm-up)\n", to: 2)
        }
        guard log.failures == 0 else { throw BenchError("pgbench logged \(log.failures) failed or skipped transactions in the window") }

        // pgbench's own figure, over its whole run: "tps = 1234.567890 (without initial connection time)".
        let tps = output.split(separator: "\n").first { $0.hasPrefix("tps = ") }.map { String($0.dropFirst("tps = ".count).prefix { $0 != " " }) }
        return WriteMeasurement(
            workload: workload,
            writers: clients,
            transactions: log.latency.count,
            eventsPerTransaction: workload.eventsPerTransaction(options),
            seconds: Double(end.monotonic - start.monotonic) / 1e9,
            latency: log.latency,
            clientCPUNanoseconds: end.client &- start.client,
            serverCPUNanoseconds: end.server &- start.server,
            machineBusyNanoseconds: end.machine.busyNanoseconds &- start.machine.busyNanoseconds,
            note: "pgbench's own tps over its \(durationArgument) s: \(tps.flatMap(Double.init).map { formatFixed($0, 0) } ?? "?")" + (waitSummary.map { ", " + $0 } ?? "")
        )
    }

    /// Reads and deletes pgbench's per-transaction logs (`<prefix>.<pid>[.<thread>]`, one line per
    /// transaction: `client_id transaction_no time_us script_no time_epoch time_us`), keeping
    /// those that completed in [from, to] (Unix epoch µs).
    private func readLogs(prefix: String, from: Int64, to: Int64) throws -> (latency: LatencyHistogram, failures: Int, firstCompletion: Int64, lastCompletion: Int64) {
        let directory = (prefix as NSString).deletingLastPathComponent
        let base = (prefix as NSString).lastPathComponent + "."
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix(base) }
        guard !files.isEmpty else { throw BenchError("pgbench wrote no transaction log in \(directory)") }
        var latency = LatencyHistogram()
        var failures = 0
        var first = Int64.max, last = Int64.min
        for file in files {
            let path = directory + "/" + file
            let text = try String(contentsOfFile: path, encoding: .utf8)
            try? FileManager.default.removeItem(atPath: path)
            for line in text.split(separator: "\n") {
                let fields = line.split(separator: " ")
                guard fields.count >= 6, let seconds = Int64(fields[4]), let micros = Int64(fields[5]) else { continue }
                let completion = seconds * 1_000_000 + micros
                first = min(first, completion)
                last = max(last, completion)
                guard completion >= from, completion <= to else { continue }
                if let elapsed = UInt64(fields[2]) {
                    latency.record(elapsed * 1000)
                } else {
                    failures += 1  // "failed" or "skipped"
                }
            }
        }
        return (latency, failures, first, last)
    }

    /// posix_spawn with standard output and error in `outputPath`; returns the child's pid.
    private func spawn(_ executable: String, _ arguments: [String], outputPath: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        // pgbench ends its -T run on SIGALRM: the child must not inherit this thread's blocked
        // signals, nor the signals this process ignores.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for number in [SIGPIPE, SIGINT, SIGTERM, SIGALRM] { sigaddset(&defaults, number) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard spawned == 0 else { throw BenchError("cannot run \(executable): \(String(cString: strerror(spawned)))") }
        Self.running.withLock { $0 = pid }
        return pid
    }
}

/// CLOCK_REALTIME in microseconds since the Unix epoch: the clock of pgbench's log.
func realtimeMicroseconds() -> Int64 {
    var time = timespec()
    clock_gettime(CLOCK_REALTIME, &time)
    return Int64(time.tv_sec) * 1_000_000 + Int64(time.tv_nsec) / 1000
}
