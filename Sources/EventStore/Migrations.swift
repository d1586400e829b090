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
        Migration(version: 2, name: "append in one round trip: tote_append(), replies stored as bytes", sql: """
            ALTER TABLE processed_commands ADD COLUMN reply bytea;

            -- Appends the events of one or more commands in the caller's transaction (one
            -- statement: its own transaction when sent alone). Each command's id is claimed
            -- first; each stream part is checked against its expected version (-1 no stream,
            -- -2 any, n exact), advanced and given its events; each command's result (stream
            -- versions and last position, as JSON) and reply are stored with its id.
            --   A command id already processed: with one command, its stored result is
            --   returned (one row, deduplicated) and nothing is written; with several, the
            --   statement fails with SQLSTATE TOTED, DETAIL = the id.
            --   An expected version that does not hold: SQLSTATE TOTEV, DETAIL = the stream,
            --   HINT = its actual version ('' when it does not exist). Nothing is written.
            -- One row per stream part: the command's index (1-based), stream, new version,
            -- transaction id and the position of the part's last event.
            CREATE FUNCTION tote_append(
                p_command_ids text[], p_replies bytea[], p_has_reply int4[],
                p_part_commands int4[], p_streams text[], p_expected int8[], p_counts int4[],
                p_event_ids uuid[], p_types text[], p_schema_versions int4[], p_data bytea[],
                p_actor_ids text[], p_actor_roles text[], p_causation_ids text[],
                p_correlation_ids text[], p_event_command_ids text[]
            ) RETURNS TABLE (command_index int4, stream text, version int8, tx_id xid8, last_position int8,
                             stored jsonb, stored_reply bytea)
            LANGUAGE plpgsql AS $fn$
            #variable_conflict use_column
            DECLARE
                v_commands int4 := coalesce(array_length(p_command_ids, 1), 0);
                v_parts int4 := coalesce(array_length(p_streams, 1), 0);
                v_offset int4 := 0;
                v_id int8;
                v_version int8;
                v_actual int8;
                v_last int8;
                v_tx xid8 := pg_current_xact_id();
                v_versions jsonb[] := array_fill('{}'::jsonb, ARRAY[greatest(v_commands, 1)]);
                v_positions int8[] := array_fill(0::int8, ARRAY[greatest(v_commands, 1)]);
                c int4;
                i int4;
            BEGIN
                FOR c IN 1..v_commands LOOP
                    CONTINUE WHEN p_command_ids[c] = '';
                    INSERT INTO processed_commands (command_id, result) VALUES (p_command_ids[c], '{}')
                    ON CONFLICT DO NOTHING;
                    IF NOT FOUND THEN
                        IF v_commands > 1 THEN
                            RAISE EXCEPTION USING ERRCODE = 'TOTED', DETAIL = p_command_ids[c],
                                MESSAGE = format('command %s was already processed', p_command_ids[c]);
                        END IF;
                        RETURN QUERY SELECT 1, NULL::text, NULL::int8, NULL::xid8, NULL::int8, pc.result, pc.reply
                            FROM processed_commands pc WHERE pc.command_id = p_command_ids[c];
                        RETURN;
                    END IF;
                END LOOP;

                FOR i IN 1..v_parts LOOP
                    IF p_expected[i] = -1 THEN
                        INSERT INTO streams AS s (name, version) VALUES (p_streams[i], p_counts[i])
                        ON CONFLICT (name) DO NOTHING RETURNING s.id, s.version INTO v_id, v_version;
                    ELSIF p_expected[i] = -2 THEN
                        INSERT INTO streams AS s (name, version) VALUES (p_streams[i], p_counts[i])
                        ON CONFLICT (name) DO UPDATE SET version = s.version + EXCLUDED.version
                        RETURNING s.id, s.version INTO v_id, v_version;
                    ELSE
                        UPDATE streams AS s SET version = s.version + p_counts[i]
                        WHERE s.name = p_streams[i] AND s.version = p_expected[i]
                        RETURNING s.id, s.version INTO v_id, v_version;
                    END IF;
                    IF v_id IS NULL THEN
                        SELECT s.version INTO v_actual FROM streams s WHERE s.name = p_streams[i];
                        RAISE EXCEPTION USING ERRCODE = 'TOTEV', DETAIL = p_streams[i], HINT = coalesce(v_actual::text, ''),
                            MESSAGE = format('stream %s expected %s, but it is at %s', p_streams[i],
                                CASE p_expected[i] WHEN -1 THEN 'no stream' WHEN -2 THEN 'any' ELSE 'version ' || p_expected[i] END,
                                coalesce('version ' || v_actual, 'no stream'));
                    END IF;
                    WITH inserted AS (
                        INSERT INTO events (stream_id, stream_version, event_id, type, schema_version, data,
                                            actor_id, actor_role, causation_id, correlation_id, command_id)
                        SELECT v_id, v_version - p_counts[i] + e.n, e.event_id, e.type, e.schema_version, e.data,
                               e.actor_id, e.actor_role, e.causation_id, e.correlation_id, e.command_id
                        FROM unnest(p_event_ids[v_offset + 1 : v_offset + p_counts[i]],
                                    p_types[v_offset + 1 : v_offset + p_counts[i]],
                                    p_schema_versions[v_offset + 1 : v_offset + p_counts[i]],
                                    p_data[v_offset + 1 : v_offset + p_counts[i]],
                                    p_actor_ids[v_offset + 1 : v_offset + p_counts[i]],
                                    p_actor_roles[v_offset + 1 : v_offset + p_counts[i]],
                                    p_causation_ids[v_offset + 1 : v_offset + p_counts[i]],
                                    p_correlation_ids[v_offset + 1 : v_offset + p_counts[i]],
                                    p_event_command_ids[v_offset + 1 : v_offset + p_counts[i]])
                             WITH ORDINALITY AS e(event_id, type, schema_version, data, actor_id, actor_role,
                                                  causation_id, correlation_id, command_id, n)
                        RETURNING global_position
                    )
                    SELECT max(global_position) INTO v_last FROM inserted;
                    v_offset := v_offset + p_counts[i];
                    c := p_part_commands[i];
                    v_versions[c] := v_versions[c] || jsonb_build_object(p_streams[i], v_version);
                    v_positions[c] := greatest(v_positions[c], v_last);
                    command_index := c; stream := p_streams[i]; version := v_version; tx_id := v_tx; last_position := v_last;
                    stored := NULL; stored_reply := NULL;
                    RETURN NEXT;
                    v_id := NULL;
                END LOOP;

                FOR c IN 1..v_commands LOOP
                    CONTINUE WHEN p_command_ids[c] = '';
                    UPDATE processed_commands SET
                        result = jsonb_build_object('streamVersions', v_versions[c], 'deduplicated', false,
                            'position', jsonb_build_object('transactionID', v_tx::text::numeric, 'globalPosition', v_positions[c])),
                        reply = CASE WHEN p_has_reply[c] = 1 THEN p_replies[c] END
                    WHERE command_id = p_command_ids[c];
                END LOOP;
            END
            $fn$;
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
