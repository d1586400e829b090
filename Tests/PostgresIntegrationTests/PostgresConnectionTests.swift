import Foundation
import ToteTestSupport
import Synchronization
import Testing
@testable import Postgres

@Suite("libpq wrapper against a real PostgreSQL", .localCluster, .serialized, .timeLimit(.minutes(2)))
struct PostgresConnectionTests {
    func connect() throws -> PostgresConnection {
        try PostgresConnection.connect(LocalCluster.cluster.connectionString)
    }

    @Test("binary parameters and results round-trip every supported type")
    func roundTrip() throws {
        let connection = try connect()
        let id = UUID()
        let result = try connection.execute(
            "SELECT $1::int8, $2::text, $3::bytea, $4::uuid, $5::bool, $6::timestamptz, $7::jsonb, $8::int4, $9::int8",
            [.int64(Int64.min), .text("grüße ✓"), .bytea([0, 1, 255]), .uuid(id), .bool(true),
             .timestamp(microsSinceEpoch: 1_763_700_000_123_456), .jsonb(#"{"a": 1}"#), .int32(-7), .null(oid: PostgresValue.OID.int8)]
        )
        #expect(result.rowCount == 1)
        #expect(try result.int64(0, 0) == Int64.min)
        #expect(try result.string(0, 1) == "grüße ✓")
        #expect(try result.bytes(0, 2) == [0, 1, 255])
        #expect(try result.uuid(0, 3) == id)
        #expect(try result.bool(0, 4))
        #expect(try result.timestampMicros(0, 5) == 1_763_700_000_123_456)
        #expect(try result.string(0, 6) == #"{"a": 1}"#)
        #expect(try result.int64(0, 7) == -7)
        let isNull = result.isNull(0, 8)
        #expect(isNull)
        #expect(throws: PostgresError.self) { try result.int64(0, 8) }
    }

    @Test("arrays go in binary: unnest turns them into rows")
    func arrays() throws {
        let connection = try connect()
        let ids = [UUID(), UUID(), UUID()]
        let result = try connection.execute(
            "SELECT * FROM unnest($1::int8[], $2::text[], $3::bytea[], $4::uuid[], $5::jsonb[])",
            [.int64Array([1, 2, 3]), .textArray(["a", "", "c"]), .byteaArray([[1], [], [3, 3]]), .uuidArray(ids), .jsonbArray(["1", "[]", "{}"])]
        )
        #expect(result.rowCount == 3)
        for row in 0..<3 {
            #expect(try result.int64(row, 0) == Int64(row + 1))
            #expect(try result.uuid(row, 3) == ids[row])
        }
        #expect(try result.string(1, 1) == "")
        #expect(try result.bytes(2, 2) == [3, 3])
        #expect(try result.string(1, 4) == "[]")
    }

    @Test("SQLSTATEs map to typed codes with the server's message")
    func errors() throws {
        let connection = try connect()
        try connection.executeScript("CREATE TABLE t_unique (id int PRIMARY KEY)")
        _ = try connection.execute("INSERT INTO t_unique VALUES ($1)", [.int32(1)])
        #expect { _ = try connection.execute("INSERT INTO t_unique VALUES ($1)", [.int32(1)]) } throws: { error in
            guard let error = error as? PostgresError else { return false }
            return error.code == .uniqueViolation && error.message.contains("t_unique_pkey") && !error.isRetryable
        }
        #expect { try connection.executeScript("SELEC 1") } throws: { ($0 as? PostgresError)?.code == .syntaxError }
        #expect { _ = try connection.execute("SELECT * FROM no_such_table") } throws: { ($0 as? PostgresError)?.code == .undefinedTable }
        // The connection is still fine afterwards.
        #expect(try connection.execute("SELECT 1").int64(0, 0) == 1)
    }

    @Test("a transaction commits on return and rolls back on throw")
    func transactions() throws {
        let connection = try connect()
        try connection.executeScript("CREATE TABLE t_tx (v int)")
        struct Abort: Error {}
        try connection.transaction { try $0.execute("INSERT INTO t_tx VALUES (1)") }
        #expect(throws: Abort.self) {
            try connection.transaction { connection in
                _ = try connection.execute("INSERT INTO t_tx VALUES (2)")
                throw Abort()
            }
        }
        #expect(!connection.inTransaction)
        #expect(try connection.execute("SELECT count(*) FROM t_tx").int64(0, 0) == 1)
    }

    @Test("LISTEN receives NOTIFY from another connection")
    func notify() throws {
        let listener = try connect()
        let notifier = try connect()
        try listener.listen("tote_test")
        #expect(try listener.waitForNotifications(timeoutMillis: 10).isEmpty)
        _ = try notifier.execute("SELECT pg_notify('tote_test', $1)", [.text("hello")])
        var received: [PostgresNotification] = []
        for _ in 0..<50 where received.isEmpty { received = try listener.waitForNotifications(timeoutMillis: 100) }
        #expect(received.map(\.payload) == ["hello"])
        #expect(received.first?.backendPID == notifier.backendPID)
    }

    @Test("a bad connection string or a missing server fails with a connection error, not a crash")
    func connectFailures() throws {
        let cluster = try LocalCluster.cluster
        #expect { _ = try PostgresConnection.connect("host=\(cluster.directory.path) port=1 dbname=postgres user=postgres", timeoutSeconds: 1) } throws: {
            ($0 as? PostgresError)?.isConnectionError == true
        }
        #expect { _ = try PostgresConnection.connect(cluster.connectionString(database: "no_such_db")) } throws: { $0 is PostgresError }
    }
}

@Suite("Connection pool against a real PostgreSQL", .localCluster, .serialized, .timeLimit(.minutes(2)))
struct PostgresPoolTests {
    @Test("concurrent leases share a fixed number of connections")
    func concurrency() async throws {
        let pool = PostgresPool(configuration: .init(connectionString: try LocalCluster.cluster.connectionString, size: 4))
        try await pool.withConnection { try $0.executeScript("CREATE TABLE IF NOT EXISTS counter (n int); TRUNCATE counter; INSERT INTO counter VALUES (0)") }
        try await withThrowingTaskGroup(of: Int32.self) { group in
            for _ in 0..<200 {
                group.addTask {
                    try await pool.withConnection { connection in
                        try connection.transaction { try $0.execute("UPDATE counter SET n = n + 1") }
                        return connection.backendPID
                    }
                }
            }
            var backends = Set<Int32>()
            for try await pid in group { backends.insert(pid) }
            #expect(backends.count <= 4)
        }
        let total = try await pool.withConnection { try $0.execute("SELECT n FROM counter").int64(0, 0) }
        #expect(total == 200)
        #expect(pool.idleCount <= 4)
        try await pool.shutdown()
    }

    @Test("a lease whose task is cancelled before its work runs goes back to the pool")
    func cancelledLeaseIsReturned() async throws {
        let pool = PostgresPool(configuration: .init(connectionString: try LocalCluster.cluster.connectionString, size: 1))
        // Cancelled before it starts: the lease is taken, the thread pool never runs the work.
        let cancelled = Task { try await pool.withConnection { try $0.execute("SELECT 1").int64(0, 0) } }
        cancelled.cancel()
        _ = await cancelled.result
        // With the one connection leaked, this lease would wait until the pool shuts down.
        let answer = Mutex<Int64?>(nil)
        let lease = Task { try await pool.withConnection { try $0.execute("SELECT 42").int64(0, 0) } }
        Task { if let value = try? await lease.value { answer.withLock { $0 = value } } }
        let deadline = ContinuousClock.now + .seconds(20)
        while answer.withLock({ $0 }) == nil, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(answer.withLock { $0 } == 42, "the pool's only connection was not given back")
        try await pool.shutdown()
    }

    @Test("while the database is down leases fail fast and retryably; the pool recovers by itself")
    func recovery() async throws {
        let cluster = try LocalCluster.cluster
        let pool = PostgresPool(configuration: .init(connectionString: cluster.connectionString, size: 2, connectTimeoutSeconds: 2))
        #expect(try await pool.withConnection { try $0.execute("SELECT 1").int64(0, 0) } == 1)
        try await cluster.stopServerAsync()
        let start = ContinuousClock.now
        for _ in 0..<3 {
            await #expect { try await pool.withConnection { try $0.execute("SELECT 1").int64(0, 0) } } throws: {
                ($0 as? PostgresError)?.isRetryable == true
            }
        }
        #expect(ContinuousClock.now - start < .seconds(5), "failing fast, not hanging")
        try await cluster.startServerAsync()
        #expect(try await pool.withConnection { try $0.execute("SELECT 2").int64(0, 0) } == 2)
        try await pool.shutdown()
    }
}
