import BenchSupport
import Dispatch
import Foundation
import Glibc
import LocalPostgres
import Postgres
import Synchronization

/// EventStoreBench: Tote's event store against pgbench on one durable PostgreSQL cluster, in one
/// run, and catch-up read throughput. See benchmarks/README.md.
///
///     EventStoreBench [--duration S] [--warmup S] [--writers 1,16,64] [--rounds N]
///                     [--workloads append,batch,pgbench,pgbench-batch,catchup] [--payload BYTES]
///                     [--streams N] [--batch-size N] [--catchup-events N] [--catchup-batch N]
///                     [--wait-events]
@main
enum EventStoreBench {
    static let usage = """
        usage: EventStoreBench [--duration SECONDS] [--warmup SECONDS] [--writers 1,16,64] [--rounds N]
                               [--workloads append,batch,pgbench,pgbench-batch,catchup] [--payload BYTES]
                               [--streams N] [--batch-size N] [--catchup-events N] [--catchup-batch N]
                               [--wait-events]
        """

    /// The cluster to stop and delete if the run is interrupted (SIGINT, SIGTERM).
    static let activeCluster = Mutex<LocalPostgresCluster?>(nil)

    static func main() async {
        signal(SIGPIPE, SIG_IGN)
        let options: BenchOptions
        do {
            options = try parseOptions(Array(CommandLine.arguments.dropFirst()))
        } catch {
            writeUnbuffered("EventStoreBench: \(error)\n", to: 2)
            exit(2)
        }
        if options.help {
            print(usage)
            return
        }
        // No server may outlive the benchmark: on SIGINT/SIGTERM stop and delete the cluster.
        let signalSources = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { @Sendable in interrupted(by: number) }
            source.resume()
            return source
        }
        defer { withExtendedLifetime(signalSources) {} }

        let root = FileManager.default.temporaryDirectory.appendingPathComponent("tote-eventstore-bench-\(UUID().uuidString.prefix(8).lowercased())")
        var failed = false
        do {
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
            try await run(options, root: root)
        } catch {
            writeUnbuffered("EventStoreBench: \(error)\n", to: 2)
            failed = true
        }
        if let cluster = activeCluster.withLock({ state in defer { state = nil }; return state }) {
            cluster.destroy()
            print("cluster stopped and deleted")
        }
        try? FileManager.default.removeItem(at: root)
        if failed { exit(1) }
    }

    /// SIGINT or SIGTERM: kill pgbench if it runs, stop and delete the cluster, exit.
    nonisolated static func interrupted(by number: Int32) {
        writeUnbuffered("EventStoreBench: signal \(number), stopping the cluster\n", to: 2)
        if let pid = PgBench.running.withLock({ $0 }) { kill(pid, SIGKILL) }
        if let cluster = activeCluster.withLock({ $0 }) {
            cluster.destroy()
            try? FileManager.default.removeItem(at: cluster.directory.deletingLastPathComponent())  // the run's folder
        }
        _exit(128 + number)
    }

    static func run(_ options: BenchOptions, root: URL) async throws {
        print("EventStoreBench: writers \(options.writers), workloads \(options.workloads.map(\.rawValue).joined(separator: ","))\(options.catchUp ? ",catchup" : ""), payload \(options.payloadBytes) B, streams \(options.streams), batch \(options.batchSize) events, warmup \(formatFixed(options.warmupSeconds, 1)) s, duration \(formatFixed(options.durationSeconds, 1)) s, rounds \(options.rounds)")
        print("loadavg(1m) at start: \(formatFixed(loadAverage(), 2))")

        // A durable cluster (fsync and synchronous_commit on: the defaults) in a fresh folder.
        let cluster = try LocalPostgresCluster.start(in: root.appendingPathComponent("cluster"), durable: true)
        activeCluster.withLock { $0 = cluster }
        let postmaster = try ClusterProcesses(dataDirectory: cluster.dataDirectory)
        let admin = try PostgresConnection.connect(cluster.connectionString)
        print("cluster: \(cluster.directory.path) (unix socket, port \(cluster.port)), \(try settings(of: admin))")

        var measurements: [WriteMeasurement] = []
        if !options.workloads.isEmpty {
            try admin.executeScript("CREATE DATABASE \(Database.writes)")
            let connection = try PostgresConnection.connect(cluster.connectionString(database: Database.writes))
            try await Appends.prepare(connectionString: cluster.connectionString(database: Database.writes))
            try connection.executeScript(PgBench.tableSQL)
            let pgbench = try PgBench(
                cluster: cluster,
                database: Database.writes,
                serverVersion: connection.serverVersion,
                workDirectory: root.appendingPathComponent("pgbench"),
                options: options
            )
            let waits = options.waitEvents ? WaitSampling(connectionString: cluster.connectionString, database: Database.writes) : nil
            print("pgbench: \(pgbench.executable) (-M prepared -n, -j min(2, clients), -T \(pgbench.durationArgument); latency and TPS from its per-transaction log over the same window as Tote's)")
            for round in 1...options.rounds {
                for writers in options.writers {
                    // Alternate which goes first, so the table growing and slow drift hit both sides.
                    let order = round % 2 == 1 ? options.workloads : options.workloads.reversed()
                    for workload in order {
                        // Every measurement starts right after a checkpoint: none lands in the window
                        // by chance, and each pays the same full-page writes after it.
                        try connection.executeScript("CHECKPOINT")
                        let measurement: WriteMeasurement
                        if workload.isPgBench {
                            measurement = try await pgbench.measure(workload, clients: writers, postmaster: postmaster, waits: waits)
                        } else {
                            measurement = try await Appends.measure(
                                workload,
                                writers: writers,
                                connectionString: cluster.connectionString(database: Database.writes),
                                options: options,
                                postmaster: postmaster,
                                waits: waits
                            )
                        }
                        measurements.append(measurement)
                        print("round \(round) \(Report.line(measurement))")
                    }
                }
            }
            let sizes = try connection.execute(
                "SELECT (SELECT count(*) FROM events), pg_total_relation_size('events'), (SELECT count(*) FROM bench_events), pg_total_relation_size('bench_events')")
            print("tables after the write runs: events \(try sizes.int64(0, 0)) rows, \(try sizes.int64(0, 1) / 1_048_576) MiB with indexes; bench_events \(try sizes.int64(0, 2)) rows, \(try sizes.int64(0, 3) / 1_048_576) MiB with indexes")
        }

        var reads: [ReadMeasurement] = []
        if options.catchUp {
            try admin.executeScript("CREATE DATABASE \(Database.catchUp)")
            reads = try await CatchUp.run(cluster: cluster, database: Database.catchUp, options: options, postmaster: postmaster)
        }
        print("loadavg(1m) at end: \(formatFixed(loadAverage(), 2))\n")
        print(Report.render(measurements, reads, options: options))
    }

    enum Database {
        static let writes = "tote_bench"
        static let catchUp = "tote_catchup"
    }

    /// The server settings that matter for the figures, on one line.
    static func settings(of connection: PostgresConnection) throws -> String {
        let names = ["server_version", "fsync", "synchronous_commit", "full_page_writes", "wal_sync_method", "shared_buffers", "max_wal_size", "max_connections"]
        var parts: [String] = []
        for name in names {
            let result = try connection.execute("SELECT current_setting($1)", [.text(name)])
            parts.append("\(name)=\(try result.string(0, 0))")
        }
        return parts.joined(separator: " ")
    }

    static func parseOptions(_ arguments: [String]) throws -> BenchOptions {
        var options = BenchOptions()
        var arguments = Arguments(arguments, usage: usage)
        while let option = arguments.nextOption() {
            switch option {
            case "-h", "--help", "help": options.help = true
            case "--duration": options.durationSeconds = try arguments.seconds()
            case "--warmup": options.warmupSeconds = try arguments.seconds()
            case "--writers": options.writers = try arguments.counts()
            case "--rounds": options.rounds = try arguments.count()
            case "--workloads":
                let names = try arguments.value().split(separator: ",").map(String.init)
                options.catchUp = names.contains("catchup")
                options.workloads = try names.filter { $0 != "catchup" }.map { name in
                    guard let workload = Workload(rawValue: name) else {
                        throw BenchError("unknown workload \(name) (\(Workload.allCases.map(\.rawValue).joined(separator: ", ")), catchup)")
                    }
                    return workload
                }
            case "--payload": options.payloadBytes = try arguments.byteCount()
            case "--wait-events": options.waitEvents = true
            case "--streams": options.streams = try arguments.count()
            case "--pool": options.poolSize = try arguments.count()
            case "--batch-size": options.batchSize = try arguments.count()
            case "--catchup-events": options.catchUpEvents = try arguments.count()
            case "--catchup-batch": options.catchUpReadBatch = try arguments.count()
            default: throw arguments.unknownOption()
            }
        }
        return options
    }
}

/// What to run.
struct BenchOptions: Sendable {
    var help = false
    /// Concurrent writers (Tote tasks, pgbench clients) at each point.
    var writers = [1, 16, 64]
    var workloads: [Workload] = Workload.standard
    var catchUp = true
    /// Sample pg_stat_activity's wait events during each write window (a cheap profile).
    var waitEvents = false
    /// Seconds of back-to-back appends before measuring.
    var warmupSeconds = 1.0
    /// Seconds measured at each point.
    var durationSeconds = 5.0
    /// Times the write matrix (and the catch-up reads) run; the workloads alternate order.
    var rounds = 1
    /// Bytes of each event's payload (random, the same for every event and for pgbench's rows).
    var payloadBytes = 100
    /// Connections in Tote's pool at each point; nil: one per writer, at most 64.
    var poolSize: Int?
    /// Appends go to a stream drawn at random among this many.
    var streams = 1000
    /// Events per append in the `batch` workload (rows per INSERT in `pgbench-batch`).
    var batchSize = 10
    /// Events appended before the catch-up reads, in appends of `catchUpAppendSize` events by
    /// `catchUpLoaders` concurrent writers.
    var catchUpEvents = 500_000
    var catchUpAppendSize = 100
    var catchUpLoaders = 8
    /// `limit` of each readAll call, and the subscription's batch size.
    var catchUpReadBatch = 5000
}

/// The write workloads.
enum Workload: String, CaseIterable, Sendable {
    /// Tote: one event per append, `expectedVersion: .any`.
    case append
    /// Tote: `batchSize` events per append to one stream.
    case batch
    /// pgbench: one single-row INSERT per transaction.
    case pgbench
    /// pgbench: one `batchSize`-row INSERT per transaction.
    case pgbenchBatch = "pgbench-batch"
    /// pgbench running the event store's own single-event append statement
    /// (`EventStore.appendStatement(.any, singleEvent: true)`) on the real `streams`/`events`
    /// tables: what PostgreSQL itself can do for an append with a C client in front, so the
    /// gap to `append` is the Swift client's and the gap to `pgbench` the schema's.
    case pgbenchAppend = "pgbench-append"
    /// The workloads run when `--workloads` is not given.
    static let standard: [Workload] = [.append, .batch, .pgbench, .pgbenchBatch, .pgbenchAppend]

    var isPgBench: Bool { self == .pgbench || self == .pgbenchBatch || self == .pgbenchAppend }

    func eventsPerTransaction(_ options: BenchOptions) -> Int {
        self == .batch || self == .pgbenchBatch ? options.batchSize : 1
    }
}
