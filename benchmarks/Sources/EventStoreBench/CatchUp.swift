import BenchSupport
import EventStore
import Foundation
import LocalPostgres
import Postgres

/// Catch-up: a reader starting from the beginning of a log that already holds
/// `catchUpEvents` events, reading it all as fast as it can.
enum CatchUp {
    /// The readers, in the order of odd rounds.
    static let readers = ["readAll", "subscribe", "sql"]

    static func run(cluster: LocalPostgresCluster, database: String, options: BenchOptions, postmaster: ClusterProcesses) async throws -> [ReadMeasurement] {
        let connectionString = cluster.connectionString(database: database)
        try await Appends.prepare(connectionString: connectionString)
        let admin = try PostgresConnection.connect(connectionString)
        let pool = PostgresPool(configuration: .init(connectionString: connectionString, size: options.catchUpLoaders, applicationName: "tote-bench"))
        let store = EventStore(pool: pool)
        do {
            let measurements = try await run(store: store, admin: admin, options: options, postmaster: postmaster)
            await store.shutdown()
            try await pool.shutdown()
            return measurements
        } catch {
            await store.shutdown()
            try? await pool.shutdown()
            throw error
        }
    }

    private static func run(store: EventStore, admin: PostgresConnection, options: BenchOptions, postmaster: ClusterProcesses) async throws -> [ReadMeasurement] {
        // Load: appends of `catchUpAppendSize` events to random streams, `catchUpLoaders` at a time.
        let loadStart = monotonicNanoseconds()
        try await load(store: store, options: options)
        let loadSeconds = Double(monotonicNanoseconds() - loadStart) / 1e9
        let total = Int(try admin.execute("SELECT count(*) FROM events").int64(0, 0))
        guard total == options.catchUpEvents else { throw BenchError("loaded \(total) events, expected \(options.catchUpEvents)") }
        let size = try admin.execute("SELECT pg_total_relation_size('events')").int64(0, 0)
        print("catch-up: loaded \(total) events in \(formatFixed(loadSeconds, 1)) s (\(formatFixed(Double(total) / loadSeconds, 0)) events/s; \(options.catchUpLoaders) concurrent appends of \(options.catchUpAppendSize) events), events table \(size / 1_048_576) MiB with indexes")

        var measurements: [ReadMeasurement] = []
        func measure(_ reader: String, round: String) async throws {
            let measurement = try await read(reader, round: round, store: store, expected: total, batchSize: options.catchUpReadBatch, postmaster: postmaster)
            measurements.append(measurement)
            print("catch-up \(round) \(Report.line(measurement))")
        }
        // Straight after the load, as a projection started at that moment would read it: the
        // first reader also sets the rows' hint bits, and the planner has no statistics yet.
        try admin.executeScript("CHECKPOINT")
        try await measure("readAll", round: "fresh")
        // Then the steady state of an older log: vacuumed and analyzed (as autovacuum leaves it).
        try admin.executeScript("VACUUM (ANALYZE) events, streams")
        try admin.executeScript("CHECKPOINT")
        for round in 1...options.rounds {
            for reader in round % 2 == 1 ? readers : readers.reversed() {
                try await measure(reader, round: "round \(round)")
            }
        }
        return measurements
    }

    private static func load(store: EventStore, options: BenchOptions) async throws {
        let payload = randomBytes(options.payloadBytes)
        let appends = (options.catchUpEvents + options.catchUpAppendSize - 1) / options.catchUpAppendSize
        try await withThrowingTaskGroup(of: Void.self) { group in
            for loader in 0..<options.catchUpLoaders {
                group.addTask {
                    var random = SplitMix64(seed: UInt64(loader) &+ 0x5EED)
                    for index in stride(from: loader, to: appends, by: options.catchUpLoaders) {
                        let count = min(options.catchUpAppendSize, options.catchUpEvents - index * options.catchUpAppendSize)
                        let metadata = EventMetadata(actorID: "bench", actorRole: "system", correlationID: "load-\(index)")
                        let events = (0..<count).map { _ in NewEvent(type: "BenchEvent", data: payload, metadata: metadata) }
                        let stream = "bench-\(random.next() % UInt64(options.streams))"
                        _ = try await store.append(to: stream, expectedVersion: .any, events: events)
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// Reads the whole log from the start with one reader and times it.
    private static func read(_ reader: String, round: String, store: EventStore, expected: Int, batchSize: Int, postmaster: ClusterProcesses) async throws -> ReadMeasurement {
        let start = Snapshot.take(postmaster)
        var count = 0
        var checksum = 0
        switch reader {
        case "readAll":
            var position = LogPosition.start
            while true {
                let batch = try await store.readAll(after: position, limit: batchSize)
                guard let last = batch.last else { break }
                count += batch.count
                checksum &+= batch[batch.count / 2].data.count
                position = last.position
            }
        case "subscribe":
            if expected > 0 {
                for try await event in store.subscribe(from: .start, batchSize: batchSize) {
                    count += 1
                    checksum &+= event.data.count
                    if count == expected { break }
                }
            }
        case "sql":
            // The same query as readAll on a leased connection, without building RecordedEvents:
            // what the database and libpq cost alone (a reference, not a Tote API).
            var position = LogPosition.start
            while true {
                let after = position
                let (rows, last) = try await store.pool.withConnection { connection in
                    let result = try connection.execute(sqlReadAll, [.xid8(after.transactionID), .int64(after.globalPosition), .int64(Int64(batchSize))])
                    let rows = result.rowCount
                    guard rows > 0 else { return (0, after) }
                    return (rows, LogPosition(transactionID: try result.uint64(rows - 1, 0), globalPosition: try result.int64(rows - 1, 1)))
                }
                guard rows > 0 else { break }
                count += rows
                position = last
            }
        default:
            throw BenchError("unknown reader \(reader)")
        }
        let end = Snapshot.take(postmaster)
        guard count == expected else { throw BenchError("\(reader) read \(count) events, expected \(expected)") }
        _ = checksum
        return ReadMeasurement(
            reader: reader,
            round: round,
            events: count,
            seconds: Double(end.monotonic - start.monotonic) / 1e9,
            clientCPUNanoseconds: end.client &- start.client,
            serverCPUNanoseconds: end.server &- start.server,
            machineBusyNanoseconds: end.machine.busyNanoseconds &- start.machine.busyNanoseconds
        )
    }

    /// EventStore.readAll's statement (Sources/EventStore/EventStore.swift), copied: keep in step.
    static let sqlReadAll = """
        SELECT e.tx_id, e.global_position, s.name, e.stream_version, e.event_id, e.type, e.schema_version, e.data,
               e.actor_id, e.actor_role, e.causation_id, e.correlation_id, e.command_id, e.recorded_at
        FROM events e JOIN streams s ON s.id = e.stream_id
         WHERE (e.tx_id, e.global_position) > ($1::xid8, $2::int8)
           AND e.tx_id < pg_snapshot_xmin(pg_current_snapshot())
         ORDER BY e.tx_id, e.global_position
         LIMIT $3
        """
}
