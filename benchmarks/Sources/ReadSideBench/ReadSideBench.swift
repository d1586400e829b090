import BenchSupport
import EventStore
import Foundation
import Glibc
import LocalPostgres
import Logging
import Postgres
import ToteAPI
import ToteReadModels
import ToteRPC
import ToteServices

/// ReadSideBench: the read side on a generated 100,000-product catalog, each figure against its
/// peer in the same run (see benchmarks/README.md and run-readside.sh):
///
/// 1. projection catch-up from position zero over the real event log in PostgreSQL (events/s);
/// 2. order-view and autocomplete point reads over Tote's wire protocol (64 callers) against
///    `redis-benchmark -t get -c 64` on a private redis-server with values of the same size;
/// 3. a facet query (category with descendants + 2 attribute filters, disjunctive counts) against
///    the equivalent PostgreSQL GROUP BY query on the same data in indexed tables;
/// 4. live lag: commit → visible in the query service while orders are appended at a steady rate.
///
///     ReadSideBench [--products N] [--orders N] [--seconds S] [--callers N] [--connections N]
///                   [--facet-calls N] [--live-rate N] [--live-seconds S] [--redis-port P]
///                   [--catch-up-only] [--facets-only] [--apply-only [--projection NAME]]
///
/// `--apply-only` measures the projections alone on the generated log held in memory, with no
/// PostgreSQL (ApplyOnly.swift); `--projection NAME` limits it to one projection alone, or
/// `all` to the run of all of them together (for `perf`). `--catch-up-only` stops after the catch-up and also measures each projection alone (catalog,
/// autocomplete, orders), each from zero into its own fresh environment: to iterate on the
/// projections without the point-read, facet and live phases. `--facets-only` skips the point
/// reads and the live phase.
@main
enum ReadSideBench {
    struct Options {
        var products = 100_000
        var orders = 20_000
        var seconds = 5.0
        var callers = 64
        var connections = 4
        var facetCalls = 2_000
        var liveRate = 200
        var liveSeconds = 10.0
        var batchSize = 1000
        /// The most events per transaction while catching up (batches grow to it); 0 = batchSize.
        var maxBatchSize = 16_384
        /// Catch-up commits synced like live ones (no deferred fsync).
        var syncedCatchUp = false
        /// Live batches commit without fsync, flushed alongside the writer.
        var deferLive = false
        var redisPort: Int?
        var redisBenchmark = "redis-benchmark"
        var seed: UInt64 = 2026
        var catchUpOnly = false
        var facetsOnly = false
        var applyOnly = false
        /// `--projection NAME` (apply-only): measure only this projection, alone (`all`: only all together).
        var projection: String?
    }

    static let usage = "usage: ReadSideBench [--products N] [--orders N] [--seconds S] [--callers N] [--connections N] [--facet-calls N] [--live-rate N] [--live-seconds S] [--batch-size N] [--max-batch-size N] [--synced-catch-up] [--defer-live] [--redis-port P] [--redis-benchmark PATH] [--catch-up-only] [--facets-only] [--apply-only [--projection NAME]]"

    static func main() async {
        signal(SIGPIPE, SIG_IGN)
        var options = Options()
        var arguments = Arguments(Array(CommandLine.arguments.dropFirst()), usage: usage)
        do {
            while let option = arguments.nextOption() {
                switch option {
                case "--products": options.products = try arguments.count()
                case "--orders": options.orders = try arguments.count()
                case "--seconds": options.seconds = try arguments.seconds()
                case "--callers": options.callers = try arguments.count()
                case "--connections": options.connections = try arguments.count()
                case "--facet-calls": options.facetCalls = try arguments.count()
                case "--live-rate": options.liveRate = try arguments.count()
                case "--live-seconds": options.liveSeconds = try arguments.seconds()
                case "--batch-size": options.batchSize = try arguments.count()
                case "--max-batch-size": options.maxBatchSize = try arguments.count()
                case "--synced-catch-up": options.syncedCatchUp = true
                case "--defer-live": options.deferLive = true
                case "--redis-port": options.redisPort = try arguments.count()
                case "--redis-benchmark": options.redisBenchmark = try arguments.value()
                case "--catch-up-only": options.catchUpOnly = true
                case "--facets-only": options.facetsOnly = true
                case "--apply-only": options.applyOnly = true
                case "--projection": options.projection = try arguments.value()
                case "-h", "--help": print(usage); return
                default: throw arguments.unknownOption()
                }
            }
        } catch {
            writeUnbuffered("ReadSideBench: \(error)\n", to: 2)
            exit(2)
        }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("tote-readside-bench-\(UUID().uuidString.prefix(8).lowercased())")
        var cluster: LocalPostgresCluster?
        var failed = false
        do {
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
            if options.applyOnly {
                try await ApplyOnly.run(options, folder: root.appendingPathComponent("models").path)
                try? FileManager.default.removeItem(at: root)
                return
            }
            // Durable: fsync and synchronous_commit on.
            cluster = try LocalPostgresCluster.start(in: root.appendingPathComponent("cluster"), durable: true)
            try await run(options, cluster: cluster!, folder: root.appendingPathComponent("models").path)
        } catch {
            writeUnbuffered("ReadSideBench: \(error)\n", to: 2)
            failed = true
        }
        try? cluster?.stop(immediate: true)
        cluster?.destroy()
        try? FileManager.default.removeItem(at: root)
        if failed { exit(1) }
    }

    static func run(_ options: Options, cluster: LocalPostgresCluster, folder: String) async throws {
        print("ReadSideBench: \(options.products) products, \(options.orders) orders (+ \(options.liveRate * Int(options.liveSeconds)) appended live), \(options.callers) callers over \(options.connections) connections, \(options.seconds) s per point; loadavg(1m) \(formatFixed(loadAverage(), 2))")
        let admin = try PostgresConnection.connect(cluster.connectionString)
        try admin.executeScript("CREATE DATABASE readside")
        try admin.executeScript("CREATE DATABASE facets")
        let connectionString = cluster.connectionString(database: "readside")
        let pool = PostgresPool(configuration: .init(connectionString: connectionString, size: 4, applicationName: "readside-bench"))
        let store = EventStore(pool: pool)
        try await store.migrate()

        // 1. The log: the generated catalog and orders, appended in log order.
        let liveOrders = options.liveRate * Int(options.liveSeconds)
        var generated = monotonicNanoseconds()
        var events: [GeneratedEvent] = []
        CatalogGenerator(seed: options.seed).forEachEvent(products: options.products, orders: options.orders + liveOrders) { events.append($0) }
        generated = monotonicNanoseconds() - generated
        let held = Array(events.suffix(liveOrders))
        guard held.allSatisfy({ $0.type == "OrderPlaced" }) else { throw BenchError("the generator's last \(liveOrders) events are not all OrderPlaced") }
        events.removeLast(liveOrders)
        let appendStart = monotonicNanoseconds()
        let end = try await store.appendInLogOrder(events)
        let appendSeconds = Double(monotonicNanoseconds() - appendStart) / 1e9
        print("log: \(events.count) events generated in \(formatFixed(Double(generated) / 1e9, 2)) s (CatalogGenerator, \(options.products) products), appended in \(formatFixed(appendSeconds, 1)) s; end \(end)")
        let orderIDs = events.filter { $0.type == "OrderPlaced" }.map { String($0.stream.dropFirst("order-".count)) }

        // 2. Catch-up from position zero into a fresh LMDB environment, as the projector does when
        // far behind: batches growing from --batch-size to --max-batch-size, commits without
        // fsync but every 16th and the last (unless --synced-catch-up), reads ahead.
        let readSide = try ReadSide(folder: folder, eventStore: store, batchSize: options.batchSize)
        guard let projector = readSide.projector else { throw BenchError("no projector") }
        let maxBatch = max(options.batchSize, options.maxBatchSize)
        let catchUpRunner = try ProjectorRunner(projections: ReadSide.projections, eventStore: store, directory: readSide.directory, batchSize: options.batchSize, maxBatchSize: maxBatch, deferSyncWhileBehind: !options.syncedCatchUp)
        let catchUpStart = monotonicNanoseconds()
        let catchUpCPU = processCPUSeconds()
        let applied = try await catchUpRunner.catchUp()
        let catchUpSeconds = Double(monotonicNanoseconds() - catchUpStart) / 1e9
        let catchUpCPUSeconds = processCPUSeconds() - catchUpCPU
        let catchUpRate = Double(applied) / catchUpSeconds
        // The live phase's projector continues from there.
        projector.watch.advance(to: catchUpRunner.position)
        projector.deferSyncWhenLive = options.deferLive
        print("catch-up: \(applied) events in \(formatFixed(catchUpSeconds, 2)) s = \(formatFixed(catchUpRate, 0)) events/s (batches \(options.batchSize)…\(maxBatch), \(options.syncedCatchUp ? "synced" : "deferred") commits; process CPU \(formatFixed(catchUpCPUSeconds, 1)) s = \(formatFixed(catchUpCPUSeconds * 1e6 / Double(max(applied, 1)), 2)) µs/event); position \(catchUpRunner.position); loadavg(1m) \(formatFixed(loadAverage(), 2))")
        let environment = try readSide.directory.current.environment
        let info = try environment.info()
        print("LMDB: \(info.lastPage * info.pageSize / 1_048_576) MiB used")
        if options.catchUpOnly {
            var rows = ["| all \(ReadSide.projections.count) projections | \(applied) | \(formatFixed(catchUpSeconds, 2)) s | \(formatFixed(catchUpRate, 0)) events/s | \(formatFixed(catchUpCPUSeconds * 1e6 / Double(max(applied, 1)), 2)) µs | \(formatFixed(loadAverage(), 2)) |"]
            for projection in ReadSide.projections {
                let cpu = processCPUSeconds()
                let (seconds, count) = try await catchUpAlone(projection, eventStore: store, folder: folder + "-" + projection.name, batchSize: options.batchSize, maxBatchSize: maxBatch, deferSync: !options.syncedCatchUp)
                let perEvent = (processCPUSeconds() - cpu) * 1e6 / Double(max(count, 1))
                print("catch-up, \(projection.name) alone: \(count) events in \(formatFixed(seconds, 2)) s = \(formatFixed(Double(count) / seconds, 0)) events/s, process CPU \(formatFixed(perEvent, 2)) µs/event; loadavg(1m) \(formatFixed(loadAverage(), 2))")
                rows.append("| \(projection.name) alone | \(count) | \(formatFixed(seconds, 2)) s | \(formatFixed(Double(count) / seconds, 0)) events/s | \(formatFixed(perEvent, 2)) µs | \(formatFixed(loadAverage(), 2)) |")
            }
            await store.shutdown()
            try await pool.shutdown()
            print("""

                ## Catch-up (loadavg(1m) at end: \(formatFixed(loadAverage(), 2)); batches \(options.batchSize)…\(maxBatch), \(options.syncedCatchUp ? "synced" : "deferred") commits)

                | projections | events | time | rate | process CPU per event | loadavg(1m) |
                |---|--:|--:|--:|--:|--:|
                \(rows.joined(separator: "\n"))
                """)
            return
        }

        // The query service on a real TCP port.
        var router = RPCRouter()
        readSide.queryService.register(into: &router)
        var logger = Logger(label: "readside-bench")
        logger.logLevel = .critical
        let key = "bench-storefront-key-01"
        let server = RPCServer(configuration: .init(host: "127.0.0.1", port: 0, drainTimeout: .seconds(5)), router: router, keyring: APIKeyring([key: .storefront]), logger: logger)
        let port = try await server.start().port!
        let connections = try await (0..<options.connections).asyncMap { _ in
            try await ClientConnection.connect(host: "127.0.0.1", port: port, configuration: .init(apiKey: key))
        }

        // 3. Point reads against redis.
        let points = options.facetsOnly ? [] : try await PointReads.run(options: options, readSide: readSide, connections: connections, orderIDs: orderIDs)

        // 4. Facets against PostgreSQL.
        let facets = try await Facets.run(options: options, readSide: readSide, connection: connections[0], cluster: cluster)

        // 5. Live lag.
        let live = options.facetsOnly ? nil : try await LiveLag.run(options: options, held: held, connectionString: connectionString, projector: projector, connection: connections[0])

        for connection in connections { await connection.close() }
        await server.shutdownGracefully()
        await store.shutdown()
        try await pool.shutdown()

        print("""

            ## Summary (loadavg(1m) at end: \(formatFixed(loadAverage(), 2)))

            | figure | Tote | peer | ratio | target |
            |---|--:|--:|--:|---|
            \(points.map(\.row).joined(separator: "\n"))
            \(facets.row)
            | projection catch-up from zero (\(applied) events, batches \(options.batchSize)…\(maxBatch)) | \(formatFixed(catchUpRate, 0)) events/s | — | \(formatFixed(catchUpRate / 200_000, 2))× of target | ≥ 200,000 events/s: \(catchUpRate >= 200_000 ? "met" : "missed") |
            \(live?.row ?? "| live lag | skipped (--facets-only) | | | |")
            """)
    }

    /// Catch-up of one projection alone from zero into a fresh environment (as the full
    /// catch-up: growing batches, deferred commits unless `deferSync` is off): seconds and
    /// events read.
    static func catchUpAlone(_ projection: any Projection, eventStore: EventStore, folder: String, batchSize: Int, maxBatchSize: Int, deferSync: Bool) async throws -> (Double, Int) {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let models = try LMDBReadModelStore(path: folder, projections: [projection])
        let runner = try ProjectorRunner(projections: [projection], eventStore: eventStore, store: models, batchSize: batchSize, maxBatchSize: maxBatchSize, deferSyncWhileBehind: deferSync)
        let start = monotonicNanoseconds()
        let count = try await runner.catchUp()
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        await models.shutdown()
        try? FileManager.default.removeItem(atPath: folder)
        return (seconds, count)
    }

}

/// CPU seconds (user + system) this process has used so far.
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

/// Milliseconds at a percentile of a histogram of nanoseconds, 3 decimals.
func ms(_ histogram: LatencyHistogram, _ percentile: Double) -> String {
    formatFixed(Double(histogram.value(atPercentile: percentile)) / 1e6, 3)
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for element in self { out.append(try await transform(element)) }
        return out
    }
}
