import BenchSupport
import EventStore
import Foundation
import Postgres
import ToteAPI
import ToteReadModels
import ToteRPC

/// Live lag: orders appended at a steady rate by a separate event-store client (as a command node
/// in another process would: the projector learns of them through PostgreSQL's NOTIFY), each
/// followed at once by a GetOrderView carrying the append's consistency token. The lag of an
/// order is from its append's commit (the append returned) to the query's answer.
enum LiveLag {
    struct Result {
        var latency: LatencyHistogram
        var rate: Double
        /// Live commits skipped the fsync (flushed alongside the writer).
        var deferred: Bool
        var row: String {
            let p99 = Double(latency.value(atPercentile: 99)) / 1e6
            return "| live lag, commit → visible in the query service (\(latency.count) orders at \(formatFixed(rate, 0))/s, \(deferred ? "deferred" : "synced") commits) | p50 \(ms(latency, 50)) / p99 \(ms(latency, 99)) ms (max \(formatFixed(Double(latency.max) / 1e6, 1))) | — | — | p99 < 50 ms: \(p99 < 50 ? "met" : "missed") |"
        }
    }

    static func run(options: ReadSideBench.Options, held: [GeneratedEvent], connectionString: String, projector: ProjectorRunner, connection: ClientConnection) async throws -> Result {
        let following = Task { try await projector.run() }
        defer { following.cancel() }
        let pool = PostgresPool(configuration: .init(connectionString: connectionString, size: 4, applicationName: "readside-bench-writer"))
        let writer = EventStore(pool: pool)
        let interval = 1.0 / Double(options.liveRate)
        let start = monotonicNanoseconds()
        let latency = try await withThrowingTaskGroup(of: UInt64.self) { group in
            for (i, event) in held.enumerated() {
                // A steady rate: the i-th order is due at start + i × interval.
                let due = start + UInt64(Double(i) * interval * 1e9)
                let now = monotonicNanoseconds()
                if due > now { try await Task.sleep(for: .nanoseconds(Int64(due - now))) }
                group.addTask {
                    let appended = try await writer.append(to: event.stream, expectedVersion: .any, events: [event.newEvent])
                    let committed = monotonicNanoseconds()
                    var token = Tote_V1_ConsistencyToken()
                    token.transactionID = appended.position.transactionID
                    token.globalPosition = appended.position.globalPosition
                    var request = Tote_V1_GetOrderViewRequest()
                    request.orderID = String(event.stream.dropFirst("order-".count))
                    _ = try await connection.unary(QueryAPI.getOrderView, request, options: CallOptions(timeout: .seconds(10), consistencyToken: token))
                    return monotonicNanoseconds() - committed
                }
            }
            var histogram = LatencyHistogram()
            for try await lag in group { histogram.record(lag) }
            return histogram
        }
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        await writer.shutdown()
        try await pool.shutdown()
        following.cancel()
        _ = await following.result
        let rate = Double(held.count) / seconds
        print("live lag: \(held.count) orders at \(formatFixed(rate, 0))/s, \(projector.deferSyncWhenLive ? "deferred" : "synced") live commits; loadavg(1m) \(formatFixed(loadAverage(), 2)): commit → visible p50 \(ms(latency, 50)) ms, p99 \(ms(latency, 99)) ms, max \(formatFixed(Double(latency.max) / 1e6, 1)) ms")
        return Result(latency: latency, rate: rate, deferred: projector.deferSyncWhenLive)
    }
}
