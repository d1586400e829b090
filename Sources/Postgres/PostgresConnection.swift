import CLibPQ
import Foundation

/// A notification received on a channel this connection LISTENs to.
public struct PostgresNotification: Sendable, Hashable {
    public let channel: String
    public let payload: String
    public let backendPID: Int32
}

/// One libpq connection (`PGconn*`): statements with binary parameters and results, a cache of
/// prepared statements, transactions, and LISTEN/NOTIFY.
///
/// Every call blocks its thread; run them on a thread pool (``PostgresPool`` does), never on an
/// event loop.
public final class PostgresConnection: @unchecked Sendable {
    // @unchecked Sendable: libpq forbids using one PGconn from two threads at once. A connection
    // is only ever used by whoever leased it from PostgresPool (one closure at a time, on one
    // pool thread) or by the single task that created it; it is never shared concurrently.
    let handle: OpaquePointer
    private var prepared: [String: String] = [:]

    private init(handle: OpaquePointer) {
        self.handle = handle
    }

    deinit {
        PQfinish(handle)
    }

    /// Connects with a libpq connection string (`host=/run/pg port=5432 dbname=tote user=tote`).
    ///
    /// - Throws: ``PostgresError`` with a connection code (08006) when the server cannot be
    ///   reached; the message is libpq's, never the connection string.
    public static func connect(_ connectionString: String, timeoutSeconds: Int = 5) throws(PostgresError) -> PostgresConnection {
        guard let handle = PQconnectdb("\(connectionString) connect_timeout=\(max(1, timeoutSeconds))") else {
            throw PostgresError(.connectionFailure, "libpq could not allocate a connection")
        }
        guard PQstatus(handle) == CONNECTION_OK else {
            let error = PostgresError.fromConnection(handle)
            PQfinish(handle)
            throw error
        }
        return PostgresConnection(handle: handle)
    }

    /// Whether the connection is still usable.
    public var isHealthy: Bool { PQstatus(handle) == CONNECTION_OK }

    /// Whether a transaction is open (or failed and not yet rolled back).
    public var inTransaction: Bool { PQtransactionStatus(handle) != PQTRANS_IDLE }

    /// The server's version as a number, e.g. 150018.
    public var serverVersion: Int { Int(PQserverVersion(handle)) }

    /// The server process serving this connection.
    public var backendPID: Int32 { PQbackendPID(handle) }

    // MARK: Statements

    /// Runs one statement with binary parameters, returning binary rows. The statement is
    /// prepared on first use on this connection and reused afterwards.
    public func execute(_ sql: String, _ parameters: [PostgresValue] = []) throws(PostgresError) -> PostgresResult {
        let name = try preparedName(for: sql, parameters)
        let encoded = parameters.map { $0.encoded() }
        var storage: [UInt8] = []
        var offsets: [Int] = []
        var lengths: [Int32] = []
        for value in encoded {
            offsets.append(storage.count)
            lengths.append(Int32(value?.count ?? 0))
            if let value { storage.append(contentsOf: value) }
        }
        storage.append(0)  // never empty, so the base address is never nil
        let formats = [Int32](repeating: 1, count: parameters.count)
        let result: OpaquePointer? = storage.withUnsafeBufferPointer { bytes in
            let base = UnsafeRawPointer(bytes.baseAddress!).assumingMemoryBound(to: CChar.self)
            let pointers: [UnsafePointer<CChar>?] = encoded.indices.map { index in
                encoded[index] == nil ? nil : base + offsets[index]
            }
            return pointers.withUnsafeBufferPointer { values in
                lengths.withUnsafeBufferPointer { lengths in
                    formats.withUnsafeBufferPointer { formats in
                        PQexecPrepared(handle, name, Int32(parameters.count), values.baseAddress, lengths.baseAddress, formats.baseAddress, 1)
                    }
                }
            }
        }
        return try check(result, expecting: [PGRES_TUPLES_OK, PGRES_COMMAND_OK])
    }

    /// Runs SQL text with no parameters, possibly several statements (migrations, SET, LISTEN).
    public func executeScript(_ sql: String) throws(PostgresError) {
        _ = try check(PQexec(handle, sql), expecting: [PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY])
    }

    private func preparedName(for sql: String, _ parameters: [PostgresValue]) throws(PostgresError) -> String {
        if let name = prepared[sql] { return name }
        let name = "tote_\(prepared.count)"
        let types = parameters.map(\.oid)
        let result = types.withUnsafeBufferPointer { types in
            PQprepare(handle, name, sql, Int32(types.count), types.baseAddress)
        }
        _ = try check(result, expecting: [PGRES_COMMAND_OK])
        prepared[sql] = name
        return name
    }

    private func check(_ result: OpaquePointer?, expecting statuses: [ExecStatusType]) throws(PostgresError) -> PostgresResult {
        guard let result else { throw PostgresError.fromConnection(handle) }
        guard statuses.contains(PQresultStatus(result)) else {
            let error = PostgresError.from(result: result, connection: handle)
            PQclear(result)
            throw error
        }
        return PostgresResult(result)
    }

    // MARK: Transactions

    /// Runs `body` in a transaction: COMMIT when it returns, ROLLBACK when it throws.
    public func transaction<R>(isolation: String = "READ COMMITTED", _ body: (PostgresConnection) throws -> R) throws -> R {
        try executeScript("BEGIN ISOLATION LEVEL \(isolation)")
        let value: R
        do {
            value = try body(self)
        } catch {
            if isHealthy { try? executeScript("ROLLBACK") }
            throw error
        }
        try executeScript("COMMIT")
        return value
    }

    // MARK: LISTEN / NOTIFY

    /// Starts listening on a channel (an identifier: letters, digits, underscores).
    public func listen(_ channel: String) throws(PostgresError) {
        guard !channel.isEmpty, channel.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
            throw PostgresError(.syntaxError, "invalid channel name \(channel)")
        }
        try executeScript("LISTEN \(channel)")
    }

    /// Returns pending notifications, waiting up to `timeoutMillis` for the first one.
    public func waitForNotifications(timeoutMillis: Int32) throws(PostgresError) -> [PostgresNotification] {
        var notifications = try drainNotifications()
        if !notifications.isEmpty { return notifications }
        var descriptor = pollfd(fd: PQsocket(handle), events: Int16(POLLIN), revents: 0)
        guard descriptor.fd >= 0 else { throw PostgresError.fromConnection(handle) }
        let ready = poll(&descriptor, 1, timeoutMillis)
        if ready < 0, errno != EINTR { throw PostgresError(.connectionFailure, "poll failed: errno \(errno)") }
        notifications = try drainNotifications()
        return notifications
    }

    private func drainNotifications() throws(PostgresError) -> [PostgresNotification] {
        guard PQconsumeInput(handle) == 1 else { throw PostgresError.fromConnection(handle) }
        var notifications: [PostgresNotification] = []
        while let notify = PQnotifies(handle) {
            notifications.append(PostgresNotification(
                channel: String(cString: notify.pointee.relname),
                payload: String(cString: notify.pointee.extra),
                backendPID: notify.pointee.be_pid
            ))
            PQfreemem(notify)
        }
        return notifications
    }
}
