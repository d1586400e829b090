import Foundation
import NIOPosix
import Synchronization

/// A fixed-size pool of connections whose blocking libpq calls run on a dedicated thread pool
/// (one thread per connection), never on NIO event loops or the Swift concurrency pool.
///
/// Sized so that concurrent transactions commit together: PostgreSQL flushes the WAL for every
/// commit waiting at that moment (group commit), so N connections committing at once cost about
/// one flush. A connection that fails with a connection error is discarded, and the next lease
/// connects afresh: when the database comes back, the pool recovers by itself. While it is down,
/// leases fail fast with the connection error (retryable: UNAVAILABLE on the wire).
public final class PostgresPool: Sendable {
    public struct Configuration: Sendable {
        /// libpq connection string.
        public var connectionString: String
        /// Connections (and threads).
        public var size: Int
        public var connectTimeoutSeconds: Int
        /// `statement_timeout` for every session; nil leaves the server's.
        public var statementTimeoutMillis: Int?
        /// `idle_in_transaction_session_timeout`: a transaction left open this long is ended by
        /// the server, so it cannot hold back the event log's read horizon.
        public var idleInTransactionTimeoutMillis: Int?
        public var applicationName: String

        public init(
            connectionString: String,
            size: Int = 8,
            connectTimeoutSeconds: Int = 5,
            statementTimeoutMillis: Int? = 30_000,
            idleInTransactionTimeoutMillis: Int? = 60_000,
            applicationName: String = "tote"
        ) {
            self.connectionString = connectionString
            self.size = size
            self.connectTimeoutSeconds = connectTimeoutSeconds
            self.statementTimeoutMillis = statementTimeoutMillis
            self.idleInTransactionTimeoutMillis = idleInTransactionTimeoutMillis
            self.applicationName = applicationName
        }
    }

    private struct State {
        var idle: [PostgresConnection] = []
        /// Connections that exist or are being created.
        var open = 0
        var waiters: [CheckedContinuation<PostgresConnection?, any Error>] = []
        var closed = false
    }

    public let configuration: Configuration
    private let threads: NIOThreadPool
    private let state = Mutex(State())

    public init(configuration: Configuration) {
        precondition(configuration.size > 0, "pool size must be positive")
        self.configuration = configuration
        threads = NIOThreadPool(numberOfThreads: configuration.size)
        threads.start()
    }

    /// Leases a connection, runs `body` with it on a pool thread, and returns it to the pool.
    ///
    /// `body` must leave no transaction open (use ``PostgresConnection/transaction(isolation:_:)``);
    /// a connection returned mid-transaction or broken is discarded.
    public func withConnection<R: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> R) async throws -> R {
        let leased = try await acquire()
        do {
            return try await threads.runIfActive { [self] in
                let connection: PostgresConnection
                do {
                    connection = try leased ?? makeConnection()
                } catch {
                    discard(nil)
                    throw error
                }
                do {
                    let value = try body(connection)
                    release(connection)
                    return value
                } catch {
                    release(connection)
                    throw error
                }
            }
        } catch let error as NIOThreadPoolError.ThreadPoolInactive {
            discard(leased)
            throw PostgresError(.connectionFailure, "the connection pool is shut down: \(error)")
        } catch is CancellationError {
            // The task was cancelled before a pool thread ran the work (the work itself never
            // throws this): give the lease back, or enough of these empty the pool and hang
            // whoever waits on it.
            if let leased { release(leased) } else { discard(nil) }
            throw CancellationError()
        }
    }

    /// Closes idle connections and fails waiters; later leases fail.
    public func shutdown() async throws {
        let waiters = state.withLock { state in
            state.closed = true
            state.idle.removeAll()
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(throwing: PostgresError(.connectionFailure, "the connection pool is shut down")) }
        try await threads.shutdownGracefully()
    }

    /// Connections currently idle in the pool (for tests and metrics).
    public var idleCount: Int { state.withLock { $0.idle.count } }

    // MARK: Leasing

    /// An idle connection, or nil meaning "you may open a new one", or waits for one.
    private func acquire() async throws -> PostgresConnection? {
        enum Lease { case connection(PostgresConnection), create, wait, closed }
        let lease = state.withLock { state -> Lease in
            if state.closed { return .closed }
            if let connection = state.idle.popLast() { return .connection(connection) }
            if state.open < configuration.size {
                state.open += 1
                return .create
            }
            return .wait
        }
        switch lease {
        case .connection(let connection): return connection
        case .create: return nil
        case .closed: throw PostgresError(.connectionFailure, "the connection pool is shut down")
        case .wait:
            return try await withCheckedThrowingContinuation { continuation in
                let immediate = state.withLock { state -> Lease? in
                    if state.closed { return .closed }
                    if let connection = state.idle.popLast() { return .connection(connection) }
                    if state.open < configuration.size {
                        state.open += 1
                        return .create
                    }
                    state.waiters.append(continuation)
                    return nil
                }
                switch immediate {
                case .connection(let connection): continuation.resume(returning: connection)
                case .create: continuation.resume(returning: nil)
                case .closed: continuation.resume(throwing: PostgresError(.connectionFailure, "the connection pool is shut down"))
                case .wait, nil: break
                }
            }
        }
    }

    /// Returns a connection: to a waiter, to the idle list, or away if it is broken or mid-transaction.
    private func release(_ connection: PostgresConnection) {
        guard connection.isHealthy, !connection.inTransaction else { return discard(connection) }
        let waiter = state.withLock { state -> CheckedContinuation<PostgresConnection?, any Error>? in
            if state.closed {
                state.open -= 1
                return nil
            }
            if !state.waiters.isEmpty { return state.waiters.removeFirst() }
            state.idle.append(connection)
            return nil
        }
        waiter?.resume(returning: connection)
    }

    /// Gives up a connection slot (the connection, if any, closes when released); a waiter gets
    /// the slot to open a fresh connection.
    private func discard(_ connection: PostgresConnection?) {
        let waiter = state.withLock { state -> CheckedContinuation<PostgresConnection?, any Error>? in
            if !state.closed, !state.waiters.isEmpty { return state.waiters.removeFirst() }
            state.open -= 1
            return nil
        }
        waiter?.resume(returning: nil)
    }

    private func makeConnection() throws -> PostgresConnection {
        let connection = try PostgresConnection.connect(configuration.connectionString, timeoutSeconds: configuration.connectTimeoutSeconds)
        var settings = ["SET client_min_messages = warning", "SET application_name = '\(configuration.applicationName.filter { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })'"]
        if let ms = configuration.statementTimeoutMillis { settings.append("SET statement_timeout = \(ms)") }
        if let ms = configuration.idleInTransactionTimeoutMillis { settings.append("SET idle_in_transaction_session_timeout = \(ms)") }
        try connection.executeScript(settings.joined(separator: "; "))
        return connection
    }
}
