import BenchSupport
import EventStore
import Foundation
import Postgres

/// What one writer did: its latencies, or the error that stopped it.
struct WriterResult: Sendable {
    var latency = LatencyHistogram()
    var failure: String?
}

/// Tote's side: concurrent writers appending through `EventStore.append(to:expectedVersion:events:)`.
enum Appends {
    /// Creates the event store's schema in the database.
    static func prepare(connectionString: String) async throws {
        let pool = PostgresPool(configuration: .init(connectionString: connectionString, size: 1, applicationName: "tote-bench"))
        let store = EventStore(pool: pool)
        do {
            try await store.migrate()
        } catch {
            await store.shutdown()
            try? await pool.shutdown()
            throw error
        }
        await store.shutdown()
        try await pool.shutdown()
    }

    /// One point: `writers` tasks, each appending back-to-back (one event, or `batchSize` events
    /// to one stream) to a random stream with `expectedVersion: .any`, through a pool of
    /// `--pool` connections (default `min(writers, 64)`); warm-up, then the measured window.
    static func measure(
        _ workload: Workload,
        writers: Int,
        connectionString: String,
        options: BenchOptions,
        postmaster: ClusterProcesses,
        waits: WaitSampling?
    ) async throws -> WriteMeasurement {
        let pool = PostgresPool(configuration: .init(connectionString: connectionString, size: options.poolSize ?? min(writers, 64), applicationName: "tote-bench"))
        let store = EventStore(pool: pool)
        let payload = randomBytes(options.payloadBytes)
        let streams = (0..<options.streams).map { "bench-\($0)" }
        let eventsPerAppend = workload.eventsPerTransaction(options)
        let phase = PhaseFlag()

        let (results, start, end, waitSummary) = await withTaskGroup(of: WriterResult.self) { group in
            for writer in 0..<writers {
                group.addTask {
                    await writeLoop(writer: writer, streams: streams, payload: payload, eventsPerAppend: eventsPerAppend, phase: phase) { stream, events in
                        _ = try await store.append(to: stream, expectedVersion: .any, events: events)
                    }
                }
            }
            try? await Task.sleep(for: .seconds(options.warmupSeconds))
            let sampler = try? waits?.start()
            phase.set(PhaseFlag.measuring)
            let start = Snapshot.take(postmaster)
            try? await Task.sleep(for: .seconds(options.durationSeconds))
            phase.set(PhaseFlag.stopping)
            let end = Snapshot.take(postmaster)
            let waitSummary = await sampler?.stop()
            var results: [WriterResult] = []
            for await result in group { results.append(result) }
            return (results, start, end, waitSummary)
        }
        await store.shutdown()
        try await pool.shutdown()

        var latency = LatencyHistogram()
        var failures: [String] = []
        for result in results {
            latency.merge(result.latency)
            if let failure = result.failure { failures.append(failure) }
        }
        guard failures.isEmpty else {
            throw BenchError("\(failures.count) of \(writers) writers failed (\(workload.rawValue)); first: \(failures[0])")
        }
        return WriteMeasurement(
            workload: workload,
            writers: writers,
            transactions: latency.count,
            eventsPerTransaction: eventsPerAppend,
            seconds: Double(end.monotonic - start.monotonic) / 1e9,
            latency: latency,
            clientCPUNanoseconds: end.client &- start.client,
            serverCPUNanoseconds: end.server &- start.server,
            machineBusyNanoseconds: end.machine.busyNanoseconds &- start.machine.busyNanoseconds,
            note: waitSummary ?? ""
        )
    }

    /// One writer: back-to-back appends until the phase says stop. Records the latency of each
    /// append that completes while measuring (from before the call to its result).
    private static func writeLoop(
        writer: Int,
        streams: [String],
        payload: [UInt8],
        eventsPerAppend: Int,
        phase: PhaseFlag,
        append: @Sendable (String, [NewEvent]) async throws -> Void
    ) async -> WriterResult {
        var result = WriterResult()
        var random = SplitMix64(seed: UInt64(writer) &* 0x1000_0001 &+ monotonicNanoseconds())
        var sequence = 0
        while phase.current != PhaseFlag.stopping {
            let stream = streams[Int(random.next() % UInt64(streams.count))]
            // As a command would: one correlation id per append, a fresh event id per event.
            sequence += 1
            let metadata = EventMetadata(actorID: "bench", actorRole: "system", correlationID: "w\(writer)-\(sequence)")
            let events = (0..<eventsPerAppend).map { _ in NewEvent(type: "BenchEvent", data: payload, metadata: metadata) }
            let start = monotonicNanoseconds()
            do {
                try await append(stream, events)
                let end = monotonicNanoseconds()
                if phase.current == PhaseFlag.measuring {
                    result.latency.record(end &- start)
                }
            } catch {
                result.failure = "\(error)"
                return result
            }
        }
        return result
    }
}
