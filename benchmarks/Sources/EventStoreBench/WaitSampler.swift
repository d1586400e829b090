import BenchSupport
import Foundation
import Postgres
import Synchronization

/// `--wait-events`: what the benchmark's backends are doing, sampled from pg_stat_activity every
/// 10 ms during the measured window, on a thread and connection of its own: running (CPU),
/// waiting (lock, WAL flush...), idle in a transaction (waiting for the client's next statement),
/// or idle (between transactions). A cheap profile of where a write's time goes.
final class WaitSampler: Sendable {
    private let counts = Mutex<[String: Int]>([:])
    private let samples = Atomic<Int>(0)
    private let stopped = Atomic<Bool>(false)
    private let finished = Atomic<Bool>(false)

    /// Starts sampling the client backends of `database` (except its own).
    init(connectionString: String, database: String) throws {
        let connection = try PostgresConnection.connect(connectionString)
        let query = """
            SELECT CASE WHEN state = 'active' THEN coalesce(wait_event_type || ':' || wait_event, 'CPU') ELSE state END, count(*)
            FROM pg_stat_activity
            WHERE backend_type = 'client backend' AND datname = $1 AND pid <> pg_backend_pid()
            GROUP BY 1
            """
        let thread = Thread { [self] in
            while !stopped.load(ordering: .relaxed) {
                if let result = try? connection.execute(query, [.text(database)]) {
                    var sample: [(String, Int)] = []
                    for row in 0..<result.rowCount {
                        if let state = try? result.string(row, 0), let count = try? result.int64(row, 1) { sample.append((state, Int(count))) }
                    }
                    counts.withLock { counts in
                        for (state, count) in sample { counts[state, default: 0] += count }
                    }
                    samples.add(1, ordering: .relaxed)
                }
                usleep(10_000)
            }
            finished.store(true, ordering: .releasing)
        }
        thread.start()
    }

    /// Stops sampling; returns "state share%, ..." over all samples, biggest first.
    func stop() async -> String {
        stopped.store(true, ordering: .relaxed)
        while !finished.load(ordering: .acquiring) { try? await Task.sleep(for: .milliseconds(5)) }
        let counts = counts.withLock { $0 }
        let total = max(1, counts.values.reduce(0, +))
        let parts = counts.sorted { $0.value > $1.value }.map { "\($0.key) \(formatFixed(Double($0.value) * 100 / Double(total), 0))%" }
        return "waits (\(samples.load(ordering: .relaxed)) samples of the backends): " + parts.joined(separator: ", ")
    }
}

/// Where to sample from, when `--wait-events` is given.
struct WaitSampling: Sendable {
    let connectionString: String
    let database: String

    func start() throws -> WaitSampler {
        try WaitSampler(connectionString: connectionString, database: database)
    }
}
