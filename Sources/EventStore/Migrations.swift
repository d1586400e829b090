import Postgres

/// One versioned, forward-only schema change. Applied at most once, in order, each in its own
/// transaction; never edited after it has shipped (add a new one instead).
public struct Migration: Sendable {
    public let version: Int
    public let name: String
    public let sql: String
}

/// The event store's schema, and the runner that applies it under an advisory lock so that any
/// number of processes may start at once (`tote migrate`, or every role at start-up).
public enum Migrations {
    /// Arbitrary but fixed key of the advisory lock held while migrating.
    static let lockKey: Int64 = 0x746F_7465_6D69_6772  // "totemigr"

    public static let all: [Migration] = [
        Migration(version: 1, name: "event log: streams, events, processed commands", sql: """
            CREATE TABLE streams (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                name text NOT NULL UNIQUE,
                -- The version of the stream's last event; versions start at 1.
                version bigint NOT NULL CHECK (version > 0)
            );

            CREATE TABLE events (
                global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                -- The writing transaction: readers order by (tx_id, global_position) and never
                -- read past pg_snapshot_xmin(pg_current_snapshot()), so no event is ever skipped.
                tx_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
                stream_id bigint NOT NULL REFERENCES streams (id),
                stream_version bigint NOT NULL CHECK (stream_version > 0),
                event_id uuid NOT NULL UNIQUE,
                type text NOT NULL,
                schema_version integer NOT NULL CHECK (schema_version > 0),
                data bytea NOT NULL,
                actor_id text NOT NULL,
                actor_role text NOT NULL,
                causation_id text NOT NULL,
                correlation_id text NOT NULL,
                command_id text NOT NULL,
                recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
                UNIQUE (stream_id, stream_version)
            );
            CREATE INDEX events_tx_position ON events (tx_id, global_position);
            CREATE INDEX events_correlation ON events (correlation_id) WHERE correlation_id <> '';

            -- Idempotency: a command id seen before returns the result stored here.
            CREATE TABLE processed_commands (
                command_id text PRIMARY KEY,
                result jsonb NOT NULL,
                processed_at timestamptz NOT NULL DEFAULT now()
            );
            """),
    ]

    /// Applies every migration not yet applied; returns the versions it applied.
    @discardableResult
    public static func apply(using pool: PostgresPool, migrations: [Migration] = Migrations.all) async throws -> [Int] {
        try await pool.withConnection { connection in
            _ = try connection.execute("SELECT pg_advisory_lock($1)", [.int64(lockKey)])
            defer { _ = try? connection.execute("SELECT pg_advisory_unlock($1)", [.int64(lockKey)]) }
            try connection.executeScript("""
                CREATE TABLE IF NOT EXISTS tote_schema_migrations (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """)
            let applied = try connection.execute("SELECT version FROM tote_schema_migrations")
            var done = Set<Int>()
            for row in 0..<applied.rowCount { done.insert(Int(try applied.int64(row, 0))) }
            var newlyApplied: [Int] = []
            for migration in migrations.sorted(by: { $0.version < $1.version }) where !done.contains(migration.version) {
                try connection.transaction { connection in
                    try connection.executeScript(migration.sql)
                    _ = try connection.execute(
                        "INSERT INTO tote_schema_migrations (version, name) VALUES ($1, $2)",
                        [.int32(Int32(migration.version)), .text(migration.name)]
                    )
                }
                newlyApplied.append(migration.version)
            }
            return newlyApplied
        }
    }
}
