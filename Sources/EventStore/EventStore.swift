import Foundation
import Metrics
import Postgres

/// The event log in PostgreSQL: Tote's single source of truth and audit trail.
///
/// - ``append(_:commandID:)`` writes to one or several streams in one transaction, each with an
///   expected version; a repeated command id returns the first result and writes nothing.
/// - ``readStream(_:from:limit:)`` reads one stream in version order.
/// - ``readAll(after:limit:)`` reads the whole log in (transaction id, global position) order,
///   never past the oldest transaction still running, so that no reader ever skips an event
///   that commits later with a lower position.
/// - ``subscribe(from:batchSize:)`` catches up, then follows the log live (NOTIFY, with a poll).
public final class EventStore: Sendable {
    /// The NOTIFY channel appends are announced on; readers use it only as a wake-up hint. It is
    /// sent after commit, coalesced, from a connection of its own: a NOTIFY inside the append
    /// transaction would hold PostgreSQL's global notify lock through the commit's WAL flush and
    /// serialize every append in the cluster.
    public static let notifyChannel = "tote_events"

    public let pool: PostgresPool
    let notifier: AppendNotifier
    let metrics = AppendMetrics()

    public init(pool: PostgresPool, pollInterval: Duration = .milliseconds(250)) {
        self.pool = pool
        self.notifier = AppendNotifier(connectionString: pool.configuration.connectionString, pollInterval: pollInterval)
    }

    /// Creates or upgrades the schema (idempotent; safe from many processes at once).
    public func migrate() async throws {
        _ = try await map { try await Migrations.apply(using: self.pool) }
    }

    /// Stops the live-notification listener. The pool belongs to the caller.
    public func shutdown() async {
        await notifier.stop()
    }

    // MARK: Append

    /// Appends events to one or more streams atomically.
    ///
    /// - Parameters:
    ///   - commandID: the command's idempotency key. If a command with this id was already
    ///     processed, nothing is written and its stored result is returned (with `deduplicated`
    ///     set), even if the earlier append is still committing concurrently.
    ///   - reply: bytes stored with the command id and returned in ``AppendResult/reply`` by this
    ///     append and by every repeat of it (the command layer's answer to its caller).
    /// - Throws: ``EventStoreError`` `.wrongExpectedVersion` naming the stream and its actual
    ///   version (nothing is written), `.invalidAppend`, or `.unavailable` when the database
    ///   cannot be reached (retry).
    public func append(_ appends: [StreamAppend], commandID: String? = nil, reply: [UInt8]? = nil) async throws -> AppendResult {
        try Self.validate(appends)
        if appends.count == 1, commandID == nil, let only = appends.first {
            // One stream and no command id: a single statement, atomic on its own.
            let result = try await measured(events: only.events.count) {
                try await map {
                    try await self.pool.withConnection { connection in
                        let (version, position) = try Self.appendToStream(only, commandID: nil, on: connection)
                        return AppendResult(streamVersions: [only.stream: version], position: position, reply: reply)
                    }
                }
            }
            notifier.appended()
            return result
        }
        return try await append(commands: [CommandAppend(commandID: commandID, reply: reply, appends: appends)])[0]
    }

    /// Appends the events of several commands in one transaction and one round trip (the
    /// `tote_append` function): all of them or none. Parts of different commands may follow each
    /// other on one stream (the second expecting the version the first leaves), which is how the
    /// command runtime appends a hot stream's queued commands in one batch.
    ///
    /// - Returns: each command's result, in order. A single command whose id was processed
    ///   before gets its stored result (`deduplicated`), and nothing is written.
    /// - Throws: ``EventStoreError`` `.wrongExpectedVersion` naming the stream and its actual
    ///   version, `.alreadyProcessed` naming a command id when a batch of several holds one
    ///   already processed, `.invalidAppend`, `.unavailable`. Nothing is written then.
    public func append(commands: [CommandAppend]) async throws -> [AppendResult] {
        guard !commands.isEmpty else { throw EventStoreError(.invalidAppend, "an append needs at least one command") }
        var ids = Set<String>()
        for command in commands {
            try Self.validate(command.appends)
            if let id = command.commandID, !id.isEmpty, !ids.insert(id).inserted {
                throw EventStoreError(.invalidAppend, "command \(id) appears twice in one append")
            }
        }
        let results = try await measured(events: commands.reduce(0) { $0 + $1.appends.reduce(0) { $0 + $1.events.count } }) {
            try await map {
                try await self.pool.withConnection { connection in try Self.append(commands: commands, on: connection) }
            }
        }
        if results.contains(where: { !$0.deduplicated }) { notifier.appended() }
        return results
    }

    /// The body of ``append(commands:)`` on `connection`, inside the caller's transaction if
    /// one is open (tests hold one open to race readers against it). No validation, no wake-up.
    static func append(commands: [CommandAppend], on connection: PostgresConnection) throws -> [AppendResult] {
        do {
            return try readAppendRows(try connection.execute(appendFunctionSQL, appendCall(commands)), commands: commands)
        } catch let error as PostgresError where error.code.rawValue == "TOTEV" {
            throw EventStoreError(.wrongExpectedVersion, error.message, stream: error.detail, actualVersion: error.hint.flatMap { Int64($0) })
        } catch let error as PostgresError where error.code.rawValue == "TOTED" {
            throw EventStoreError(.alreadyProcessed, error.message, commandID: error.detail)
        }
    }

    /// ``append(commands:on:)`` for one command.
    static func append(_ appends: [StreamAppend], commandID: String?, reply: [UInt8]? = nil, on connection: PostgresConnection) throws -> AppendResult {
        try append(commands: [CommandAppend(commandID: commandID, reply: reply, appends: appends)], on: connection)[0]
    }

    static let appendFunctionSQL = "SELECT * FROM tote_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"

    /// The parameters of ``appendFunctionSQL``: per command, per stream part (sorted by stream,
    /// stably, so that every append locks streams in one order and parts of one stream keep
    /// theirs), and per event (flattened in part order).
    static func appendCall(_ commands: [CommandAppend]) -> [PostgresValue] {
        var parts: [(command: Int32, append: StreamAppend)] = []
        for (index, command) in commands.enumerated() {
            for append in command.appends { parts.append((Int32(index + 1), append)) }
        }
        parts = parts.enumerated().sorted { ($0.element.append.stream, $0.offset) < ($1.element.append.stream, $1.offset) }.map(\.element)
        var eventIDs: [UUID] = [], types: [String] = [], schemaVersions: [Int32] = [], data: [[UInt8]] = []
        var actorIDs: [String] = [], actorRoles: [String] = [], causationIDs: [String] = [], correlationIDs: [String] = [], eventCommandIDs: [String] = []
        for (command, append) in parts {
            let commandID = commands[Int(command) - 1].commandID
            for event in append.events {
                eventIDs.append(event.eventID)
                types.append(event.type)
                schemaVersions.append(event.schemaVersion)
                data.append(event.data)
                actorIDs.append(event.metadata.actorID)
                actorRoles.append(event.metadata.actorRole)
                causationIDs.append(event.metadata.causationID)
                correlationIDs.append(event.metadata.correlationID)
                eventCommandIDs.append(commandID ?? event.metadata.commandID)
            }
        }
        return [
            .textArray(commands.map { $0.commandID ?? "" }),
            .byteaArray(commands.map { $0.reply ?? [] }),
            .int32Array(commands.map { $0.reply == nil ? 0 : 1 }),
            .int32Array(parts.map(\.command)),
            .textArray(parts.map(\.append.stream)),
            .int64Array(parts.map {
                switch $0.append.expectedVersion {
                case .noStream: -1
                case .any: -2
                case .exact(let version): version
                }
            }),
            .int32Array(parts.map { Int32($0.append.events.count) }),
            .uuidArray(eventIDs), .textArray(types), .int32Array(schemaVersions), .byteaArray(data),
            .textArray(actorIDs), .textArray(actorRoles), .textArray(causationIDs), .textArray(correlationIDs), .textArray(eventCommandIDs),
        ]
    }

    /// Each command's result from the rows of `tote_append`.
    static func readAppendRows(_ rows: borrowing PostgresResult, commands: [CommandAppend]) throws -> [AppendResult] {
        if commands.count == 1, rows.rowCount == 1, !rows.isNull(0, 5) {
            return [try storedResult(json: try rows.string(0, 5), reply: rows.isNull(0, 6) ? nil : try rows.bytes(0, 6))]
        }
        var results = commands.map { AppendResult(streamVersions: [:], position: .start, reply: $0.reply) }
        for row in 0..<rows.rowCount {
            let index = Int(try rows.int64(row, 0)) - 1
            let stream = try rows.string(row, 1)
            results[index].streamVersions[stream] = max(results[index].streamVersions[stream] ?? 0, try rows.int64(row, 2))
            results[index].position = max(results[index].position, LogPosition(transactionID: try rows.uint64(row, 3), globalPosition: try rows.int64(row, 4)))
        }
        return results
    }

    /// The stored result of a processed command id, or nil if none was processed (or it is still
    /// committing). A command that decides nothing on a repeat asks this, so it still answers
    /// with its first result.
    public func processedResult(commandID: String) async throws -> AppendResult? {
        try await map {
            try await self.pool.withConnection { connection in
                let stored = try connection.execute(
                    "SELECT result, reply FROM processed_commands WHERE command_id = $1 AND result <> '{}'::jsonb", [.text(commandID)])
                guard stored.rowCount == 1 else { return nil }
                return try Self.storedResult(json: try stored.string(0, 0), reply: stored.isNull(0, 1) ? nil : try stored.bytes(0, 1))
            }
        }
    }

    /// A stored result, marked `deduplicated`. Rows written before the `reply` column existed
    /// carry the reply inside the JSON.
    static func storedResult(json: String, reply: [UInt8]?) throws -> AppendResult {
        var result = try JSONDecoder().decode(AppendResult.self, from: Data(json.utf8))
        result.deduplicated = true
        if let reply { result.reply = reply }
        return result
    }

    /// Appends to a single stream.
    public func append(to stream: String, expectedVersion: ExpectedVersion, events: [NewEvent], commandID: String? = nil) async throws -> AppendResult {
        try await append([StreamAppend(stream: stream, expectedVersion: expectedVersion, events: events)], commandID: commandID)
    }

    static func validate(_ appends: [StreamAppend]) throws(EventStoreError) {
        guard !appends.isEmpty else { throw EventStoreError(.invalidAppend, "an append needs at least one stream") }
        var seen = Set<String>()
        for append in appends {
            guard !append.stream.isEmpty else { throw EventStoreError(.invalidAppend, "stream names must not be empty") }
            guard !append.events.isEmpty else { throw EventStoreError(.invalidAppend, "no events to append to stream \(append.stream)") }
            guard seen.insert(append.stream).inserted else { throw EventStoreError(.invalidAppend, "stream \(append.stream) appears twice in one append") }
            if case .exact(let version) = append.expectedVersion, version < 1 {
                throw EventStoreError(.invalidAppend, "expected version \(version) of \(append.stream) is not a version (they start at 1; use noStream)")
            }
        }
    }

    /// How each expected version reserves the stream: a statement returning the stream's id and
    /// its new version, or no row when the expected version does not hold. It also locks the
    /// stream's row until the transaction (or the single statement) ends.
    private static func reserveSQL(_ expected: ExpectedVersion) -> String {
        switch expected {
        case .noStream:
            "INSERT INTO streams (name, version) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING id, version"
        case .exact:
            "UPDATE streams SET version = version + $2 WHERE name = $1 AND version = $12 RETURNING id, version"
        case .any:
            """
            INSERT INTO streams (name, version) VALUES ($1, $2)
            ON CONFLICT (name) DO UPDATE SET version = streams.version + EXCLUDED.version RETURNING id, version
            """
        }
    }

    /// The statement that checks a stream's expected version, advances the stream and inserts
    /// its events (a data-modifying CTE): it returns one row per event, or none when the
    /// expected version did not hold, and then nothing was written.
    ///
    /// Parameters: `$1` stream name, `$2` event count, `$3`…`$11` the events' id, type, schema
    /// version, data, actor id, actor role, causation id, correlation id and command id — scalars
    /// when `singleEvent` (the common case: cheaper for the server than unnesting arrays), else
    /// arrays — and `$12` the expected version for `.exact`. Public so that the benchmark can have
    /// pgbench run the very statement the store runs.
    public static func appendStatement(_ expected: ExpectedVersion, singleEvent: Bool) -> String {
        let columns = "stream_id, stream_version, event_id, type, schema_version, data, actor_id, actor_role, causation_id, correlation_id, command_id"
        if singleEvent {
            return """
                WITH stream AS (\(reserveSQL(expected)))
                INSERT INTO events (\(columns))
                SELECT stream.id, stream.version, $3::uuid, $4::text, $5::int4, $6::bytea, $7::text, $8::text, $9::text, $10::text, $11::text
                FROM stream
                RETURNING tx_id, global_position, stream_version
                """
        }
        return """
            WITH stream AS (\(reserveSQL(expected)))
            INSERT INTO events (\(columns))
            SELECT stream.id, stream.version - $2 + e.n, e.event_id, e.type, e.schema_version, e.data,
                   e.actor_id, e.actor_role, e.causation_id, e.correlation_id, e.command_id
            FROM stream, unnest($3::uuid[], $4::text[], $5::int4[], $6::bytea[], $7::text[], $8::text[],
                                $9::text[], $10::text[], $11::text[])
                 WITH ORDINALITY AS e(event_id, type, schema_version, data, actor_id, actor_role,
                                      causation_id, correlation_id, command_id, n)
            RETURNING tx_id, global_position, stream_version
            """
    }

    /// Runs ``appendStatement(_:singleEvent:)`` for one stream's part of an append. Returns the
    /// stream's new version and the position of its last event.
    private static func appendToStream(_ append: StreamAppend, commandID: String?, on connection: PostgresConnection) throws -> (Int64, LogPosition) {
        let events = append.events
        var parameters: [PostgresValue] = [.text(append.stream), .int64(Int64(events.count))]
        if events.count == 1, let event = events.first {
            parameters += [
                .uuid(event.eventID), .text(event.type), .int32(event.schemaVersion), .bytea(event.data),
                .text(event.metadata.actorID), .text(event.metadata.actorRole), .text(event.metadata.causationID),
                .text(event.metadata.correlationID), .text(commandID ?? event.metadata.commandID),
            ]
        } else {
            parameters += [
                .uuidArray(events.map(\.eventID)), .textArray(events.map(\.type)), .int32Array(events.map(\.schemaVersion)),
                .byteaArray(events.map(\.data)), .textArray(events.map(\.metadata.actorID)), .textArray(events.map(\.metadata.actorRole)),
                .textArray(events.map(\.metadata.causationID)), .textArray(events.map(\.metadata.correlationID)),
                .textArray(events.map { commandID ?? $0.metadata.commandID }),
            ]
        }
        if case .exact(let expected) = append.expectedVersion { parameters.append(.int64(expected)) }
        let inserted = try connection.execute(appendStatement(append.expectedVersion, singleEvent: events.count == 1), parameters)
        guard inserted.rowCount == events.count else {
            let actual = try connection.execute("SELECT version FROM streams WHERE name = $1", [.text(append.stream)])
            let actualVersion = actual.rowCount == 1 ? try actual.int64(0, 0) : nil
            throw EventStoreError(
                .wrongExpectedVersion,
                "stream \(append.stream) expected \(append.expectedVersion), but it is at \(actualVersion.map { "version \($0)" } ?? "no stream")",
                stream: append.stream,
                actualVersion: actualVersion
            )
        }
        var version: Int64 = 0
        var last = LogPosition.start
        for row in 0..<inserted.rowCount {
            version = max(version, try inserted.int64(row, 2))
            last = max(last, LogPosition(transactionID: try inserted.uint64(row, 0), globalPosition: try inserted.int64(row, 1)))
        }
        return (version, last)
    }

    // MARK: Read

    static let selectColumns = """
        SELECT e.tx_id, e.global_position, s.name, e.stream_version, e.event_id, e.type, e.schema_version, e.data,
               e.actor_id, e.actor_role, e.causation_id, e.correlation_id, e.command_id, e.recorded_at
        FROM events e JOIN streams s ON s.id = e.stream_id
        """

    /// Events of one stream with version ≥ `from`, in version order.
    public func readStream(_ stream: String, from version: Int64 = 1, limit: Int = 10_000) async throws -> [RecordedEvent] {
        try await map {
            try await self.pool.withConnection { connection in
                let result = try connection.execute(
                    Self.selectColumns + " WHERE s.name = $1 AND e.stream_version >= $2 ORDER BY e.stream_version LIMIT $3",
                    [.text(stream), .int64(version), .int64(Int64(limit))])
                return try Self.events(in: result)
            }
        }
    }

    /// Events of one stream whose data contains `bytes` (e.g. the events of a stock item that
    /// name one order's reservations, whose ids start with the order id), in version order. A
    /// scan of that one stream: for an operator's history of one order, not for hot paths.
    public func readStream(_ stream: String, containing bytes: [UInt8], limit: Int = 10_000) async throws -> [RecordedEvent] {
        try await map {
            try await self.pool.withConnection { connection in
                let result = try connection.execute(
                    Self.selectColumns + " WHERE s.name = $1 AND position($2::bytea in e.data) > 0 ORDER BY e.stream_version LIMIT $3",
                    [.text(stream), .bytea(bytes), .int64(Int64(limit))])
                return try Self.events(in: result)
            }
        }
    }

    /// The stream's current version, or nil if it does not exist.
    public func streamVersion(_ stream: String) async throws -> Int64? {
        try await map {
            try await self.pool.withConnection { connection in
                let result = try connection.execute("SELECT version FROM streams WHERE name = $1", [.text(stream)])
                return result.rowCount == 1 ? try result.int64(0, 0) : nil
            }
        }
    }

    /// The current versions of `streams` in one query (a stream that does not exist is absent).
    public func streamVersions(_ streams: [String]) async throws -> [String: Int64] {
        try await map {
            try await self.pool.withConnection { connection in
                let result = try connection.execute("SELECT name, version FROM streams WHERE name = ANY($1)", [.textArray(streams)])
                var versions: [String: Int64] = [:]
                for row in 0..<result.rowCount { versions[try result.string(row, 0)] = try result.int64(row, 1) }
                return versions
            }
        }
    }

    /// Names of the streams that start with `prefix`, in name order (e.g. every stock item of a
    /// SKU: `stock-<sku>@`). For small, bounded families of streams, not for scanning the log.
    public func streamNames(withPrefix prefix: String, limit: Int = 1000) async throws -> [String] {
        let pattern = prefix.replacingOccurrences(of: "\\", with: "\\\\")
            .replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_") + "%"
        return try await map {
            try await self.pool.withConnection { connection in
                let result = try connection.execute(
                    "SELECT name FROM streams WHERE name LIKE $1 ORDER BY name LIMIT $2", [.text(pattern), .int64(Int64(limit))])
                return try (0..<result.rowCount).map { try result.string($0, 0) }
            }
        }
    }

    /// Up to `limit` events after `position`, in log order, stopping before the oldest
    /// transaction still in progress: an event returned later can never sort before one
    /// returned now, so a reader that continues from its last position never skips one.
    public func readAll(after position: LogPosition, limit: Int = 1000) async throws -> [RecordedEvent] {
        try await map {
            try await self.pool.withConnection { connection in
                try Self.readAll(after: position, limit: limit, on: connection)
            }
        }
    }

    static func readAll(after position: LogPosition, limit: Int, on connection: PostgresConnection) throws -> [RecordedEvent] {
        let result = try connection.execute(Self.selectColumns + """
             WHERE (e.tx_id, e.global_position) > ($1::xid8, $2::int8)
               AND e.tx_id < pg_snapshot_xmin(pg_current_snapshot())
             ORDER BY e.tx_id, e.global_position
             LIMIT $3
            """, [.xid8(position.transactionID), .int64(position.globalPosition), .int64(Int64(limit))])
        return try events(in: result)
    }

    static func events(in result: borrowing PostgresResult) throws -> [RecordedEvent] {
        var events: [RecordedEvent] = []
        events.reserveCapacity(result.rowCount)
        for row in 0..<result.rowCount {
            events.append(RecordedEvent(
                position: LogPosition(transactionID: try result.uint64(row, 0), globalPosition: try result.int64(row, 1)),
                stream: try result.string(row, 2),
                streamVersion: try result.int64(row, 3),
                eventID: try result.uuid(row, 4),
                type: try result.string(row, 5),
                schemaVersion: Int32(try result.int64(row, 6)),
                data: try result.bytes(row, 7),
                metadata: EventMetadata(
                    actorID: try result.string(row, 8),
                    actorRole: try result.string(row, 9),
                    causationID: try result.string(row, 10),
                    correlationID: try result.string(row, 11),
                    commandID: try result.string(row, 12)
                ),
                recordedAtMicros: try result.timestampMicros(row, 13)
            ))
        }
        return events
    }

    // MARK: Subscribe

    /// Every event after `position`, in log order: first the backlog in batches, then new events
    /// as they commit. Pull-based: a slow consumer slows the reads, nothing piles up in memory.
    /// Survives database restarts (reads are retried); ends only when the consumer stops.
    public func subscribe(from position: LogPosition = .start, batchSize: Int = 1000) -> EventSubscription {
        EventSubscription(store: self, position: position, batchSize: batchSize)
    }

    /// Seconds since the oldest transaction still open in this database began (0 when none),
    /// other than this query's. A long one holds back every reader of the log (they stop at the
    /// oldest open transaction) and vacuum: an alert, not a detail.
    public func oldestOpenTransactionSeconds() async throws -> Double {
        try await map {
            try await self.pool.withConnection { connection in
                let result = try connection.execute("""
                    SELECT coalesce(extract(epoch FROM now() - min(xact_start)), 0)::float8::text FROM pg_stat_activity
                    WHERE datname = current_database() AND xact_start IS NOT NULL AND pid <> pg_backend_pid()
                    """)
                return Double(try result.string(0, 0)) ?? 0
            }
        }
    }

    // MARK: Metrics

    /// The append metrics, made with the store (so after the process bootstrapped its metrics
    /// backend, whatever touched the event store before).
    struct AppendMetrics: Sendable {
        let duration = Metrics.Timer(label: "tote_eventstore_append_duration_seconds")
        let events = Counter(label: "tote_eventstore_appended_events_total")
        let conflicts = Counter(label: "tote_eventstore_append_conflicts_total")
        let failures = Counter(label: "tote_eventstore_append_failures_total")
    }

    /// Runs one append, reporting its duration, its events when it succeeds, and conflicts
    /// (wrong expected version) and other failures.
    private func measured<R>(events: Int, _ body: () async throws -> R) async throws -> R {
        let started = DispatchTime.now()
        do {
            let result = try await body()
            metrics.duration.recordInterval(since: started)
            metrics.events.increment(by: Int64(events))
            return result
        } catch let error as EventStoreError where error.code == .wrongExpectedVersion {
            metrics.conflicts.increment()
            throw error
        } catch {
            metrics.failures.increment()
            throw error
        }
    }

    // MARK: Errors

    /// Turns connection failures into `.unavailable`, leaving other errors as they are.
    func map<R>(_ body: () async throws -> R) async throws -> R {
        do {
            return try await body()
        } catch let error as PostgresError where error.isConnectionError {
            throw EventStoreError(.unavailable, "the event store is unavailable: \(error.message)")
        }
    }
}
