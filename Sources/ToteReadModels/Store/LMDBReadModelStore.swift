import EventStore
import LMDB
import Synchronization

/// The read models in one LMDB environment: ``ReadModelReader``/``ReadModelWriter`` over the
/// wrapper's transactions, and a ``ReadModelSource`` for queries.
///
/// - Databases are addressed by name (each projection's ``Projection/databases``); the store
///   maps names to LMDB handles, opened once.
/// - Each projection's cursor (the last log position it applied) lives in the `_cursors`
///   database: key = projection name (UTF-8), value = 8-byte big-endian transaction id +
///   8-byte big-endian global position. It is written in the same transaction as the
///   projection's changes, so the two never disagree.
/// - Opened writable, the store owns the environment's one ``Writer`` thread; opened
///   read-only (the query service), it never writes and sees databases the projector creates
///   later.
public final class LMDBReadModelStore: ReadModelSource {
    /// The database holding the projections' cursors.
    public static let cursorsDatabase = "_cursors"
    /// The database holding each projection's layout version (key = projection name, value =
    /// u32 big-endian): see ``adoptLayouts(_:)``.
    public static let layoutsDatabase = "_layouts"

    /// Why the store refused an operation.
    public struct Failure: Error, Sendable, Hashable, CustomStringConvertible {
        public var description: String
    }

    /// A write to a database no projection of the store at `path` declared.
    static func undeclared(_ database: String, _ path: String) -> Failure {
        Failure(description: "database \(database) is not declared by any projection of the store at \(path)")
    }

    public let environment: Environment
    /// The single writer (nil when opened read-only).
    public let writer: Writer?
    /// The projections whose cursors make up ``position``.
    public let projectionNames: [String]
    /// The database names this store knows; writes to any other name are refused.
    public let databaseNames: Set<String>

    /// Opens (or creates) the environment in folder `path` for databases `databases` and the
    /// cursors of `projections`.
    ///
    /// A writable store commits with one fsync instead of two (`noMetaSync`): a system crash
    /// may undo the last commit, whose events the projector then reads again (the cursors
    /// commit with the data), and integrity holds.
    public init(path: String, databases: [String], projections: [String], configuration: Environment.Configuration = .init()) throws {
        var configuration = configuration
        if !configuration.readOnly { configuration.noMetaSync = true }
        environment = try Environment(path: path, configuration: configuration)
        projectionNames = projections
        databaseNames = Set(databases + [Self.cursorsDatabase, Self.layoutsDatabase])
        if configuration.readOnly {
            writer = nil
        } else {
            for name in databaseNames.sorted() { _ = try environment.database(name) }
            writer = Writer(environment: environment, name: "tote-projector-writer")
        }
    }

    /// Opens the store for `projections` (their databases and cursors).
    public convenience init(path: String, projections: [any Projection], configuration: Environment.Configuration = .init()) throws {
        try self.init(path: path, databases: projections.flatMap(\.databases), projections: projections.map(\.name), configuration: configuration)
    }

    /// The folder of the environment.
    public var path: String { environment.path }

    /// The handle of database `name`, nil when it does not exist (yet).
    private func existingDatabase(_ name: String) throws(LMDBError) -> Database? {
        let result = Result { () throws(LMDBError) in try environment.database(name, create: false) }
        switch result {
        case .success(let database): return database
        case .failure(let error) where error.code == .notFound: return nil
        case .failure(let error): throw error
        }
    }

    /// Handles of the declared databases that exist, and when missing ones were last looked for.
    private let handles = Mutex<(known: [String: Database], lastLookup: ContinuousClock.Instant?)>(([:], nil))

    /// The handles of the declared databases. A read-only store looks again for those that do
    /// not exist yet (the projector creates them) at most every 50 ms. Called before a
    /// transaction begins: a handle opened inside a transaction is unknown to transactions
    /// that began earlier.
    func databaseHandles() throws -> [String: Database] {
        let now = ContinuousClock.now
        let (known, stale) = handles.withLock { handles in
            (handles.known, handles.known.count < databaseNames.count && (handles.lastLookup.map { now - $0 > .milliseconds(50) } ?? true))
        }
        guard stale else { return known }
        var found = known
        for name in databaseNames where found[name] == nil {
            found[name] = try existingDatabase(name)
        }
        return handles.withLock { handles in
            handles.known.merge(found) { old, _ in old }
            handles.lastLookup = now
            return handles.known
        }
    }

    // MARK: Reading

    /// Runs `body` over one snapshot: one read transaction on the calling thread.
    public func read<R>(_ body: (any ReadModelReader) throws -> R) throws -> R {
        let handles = try databaseHandles()
        return try environment.read { txn in
            try withUnsafePointer(to: txn) { pointer in
                try body(LMDBReadModelReader(transaction: pointer, handles: handles))
            }
        }
    }

    /// The minimum applied cursor of ``projectionNames`` (`.start` for one that never ran).
    public var position: LogPosition {
        get throws {
            let cursors = try self.cursors()
            return projectionNames.map { cursors[$0] ?? .start }.min() ?? cursors.values.min() ?? .start
        }
    }

    /// Every stored cursor, by projection name.
    public func cursors() throws -> [String: LogPosition] {
        try read { reader in
            var cursors: [String: LogPosition] = [:]
            try reader.scan(Self.cursorsDatabase, prefix: [], from: nil, reverse: false) { key, value in
                if let position = Self.decodePosition(value) { cursors[String(decoding: key, as: UTF8.self)] = position }
                return true
            }
            return cursors
        }
    }

    /// A copy of every database (without `_cursors` unless asked): for tests comparing the
    /// store with a ``MemoryStore`` or with a fresh rebuild, byte for byte.
    public func snapshot(includingCursors: Bool = false) throws -> MemoryStore {
        try read { reader in
            var copy = MemoryStore()
            for name in databaseNames.sorted() where includingCursors || (name != Self.cursorsDatabase && name != Self.layoutsDatabase) {
                var entries: [([UInt8], [UInt8])] = []
                try reader.scan(name, prefix: [], from: nil, reverse: false) { key, value in
                    entries.append((Array(key), Array(value)))
                    return true
                }
                for (key, value) in entries { try copy.put(name, key, value) }
            }
            return copy
        }
    }

    // MARK: Layout versions

    /// Brings the stored layout of each projection to its ``Projection/layoutVersion``: a
    /// projection whose databases were written by another version (a store from before versions
    /// were recorded counts as version 1) has its databases cleared and its cursor removed, so
    /// the projector replays the log into it from the start while the others carry on. A store
    /// whose projection never ran just records the version. Returns the names of the
    /// projections cleared. Call before the projector starts (it writes on the calling thread).
    @discardableResult
    public func adoptLayouts(_ projections: [any Projection]) throws -> [String] {
        guard writer != nil else { return [] }
        let handles = try databaseHandles()
        func handle(_ name: String) throws -> Database {
            guard let database = handles[name] else { throw Failure(description: "database \(name) is not open in \(path)") }
            return database
        }
        let layouts = try handle(Self.layoutsDatabase), cursors = try handle(Self.cursorsDatabase)
        // Look first in a read transaction: the common case (nothing to clear) writes nothing
        // here; the versions are recorded with the projector's next batch (`recordLayout`).
        let stale = try read { reader in
            try projections.contains { projection in
                let key = Array(projection.name.utf8)
                let stored = try reader.get(Self.layoutsDatabase, key).map(Self.decodeVersion)
                    ?? (try reader.get(Self.cursorsDatabase, key) == nil ? nil : 1)
                return stored.map { $0 != UInt32(projection.layoutVersion) } ?? false
            }
        }
        guard stale else { return [] }
        return try environment.write { txn in
            var cleared: [String] = []
            for projection in projections {
                let key = Array(projection.name.utf8)
                let wanted = UInt32(projection.layoutVersion)
                let stored = try txn.get(layouts, key).map(Self.decodeVersion)
                    ?? (try txn.get(cursors, key) == nil ? nil : 1)
                if let stored, stored != wanted {
                    for name in projection.databases { try txn.clear(try handle(name)) }
                    _ = try txn.delete(cursors, key)
                    cleared.append(projection.name)
                }
                if stored != wanted { try txn.put(layouts, key, Self.encodeVersion(wanted)) }
            }
            return cleared
        }
    }

    static func encodeVersion(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }
    static func decodeVersion(_ b: [UInt8]) -> UInt32 { b.reduce(UInt32(0)) { $0 << 8 | UInt32($1) } }

    // MARK: Writing

    /// Runs `body` in one write transaction on the writer thread: committed when it returns,
    /// aborted (nothing visible) when it throws, rerun from scratch if the map had to grow.
    /// With `durability` `.deferred` the commit does not wait for the disk (see
    /// ``LMDB/Writer/Durability``; ``sync()`` or the next synced commit flushes it).
    public func write<R: Sendable>(durability: Writer.Durability = .synced, _ body: @escaping @Sendable (inout LMDBReadModelWriter) throws -> R) async throws -> R {
        guard let writer else { throw Failure(description: "the read-model store at \(path) is open read-only") }
        let handles = try databaseHandles()
        let path = self.path
        return try await writer.write(durability: durability) { txn in
            try withUnsafePointer(to: txn) { pointer in
                var writer = LMDBReadModelWriter(transaction: pointer, handles: handles, path: path)
                let result = try body(&writer)
                try writer.flush()
                return result
            }
        }
    }

    /// Flushes every commit so far to disk, on the writer thread (after deferred commits).
    public func sync() async throws {
        guard let writer else { return }
        try await writer.sync()
    }

    /// Flushes every commit so far to disk on a thread of its own, without holding up the writer.
    public func syncAlongside() async throws {
        guard let writer else { return }
        try await writer.syncAlongside()
    }

    /// Deferred commits not yet on disk (0 when read-only).
    public var unsyncedCommits: Int { writer?.unsyncedCommits ?? 0 }

    /// Stops the writer after the queued writes (the environment closes when released).
    public func shutdown() async {
        await writer?.shutdown()
    }

    // MARK: Cursor encoding

    /// 8-byte big-endian transaction id + 8-byte big-endian global position.
    public static func encodePosition(_ position: LogPosition) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16)
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: position.transactionID >> UInt64(shift))) }
        let global = UInt64(bitPattern: position.globalPosition)
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: global >> UInt64(shift))) }
        return bytes
    }

    /// The inverse of ``encodePosition(_:)``; nil unless exactly 16 bytes.
    public static func decodePosition(_ bytes: UnsafeRawBufferPointer) -> LogPosition? {
        guard bytes.count == 16 else { return nil }
        var tx: UInt64 = 0, global: UInt64 = 0
        for i in 0..<8 { tx = tx << 8 | UInt64(bytes[i]) }
        for i in 8..<16 { global = global << 8 | UInt64(bytes[i]) }
        return LogPosition(transactionID: tx, globalPosition: Int64(bitPattern: global))
    }
}

/// A snapshot of an ``LMDBReadModelStore``: valid only inside the `read` closure that lent it.
struct LMDBReadModelReader: ReadModelReader {
    let transaction: UnsafePointer<ReadTransaction>
    let handles: [String: Database]

    func get(_ database: String, _ key: [UInt8]) throws -> [UInt8]? {
        guard let handle = handles[database] else { return nil }
        return try transaction.pointee.get(handle, key)
    }

    func withValue<R>(_ database: String, _ key: [UInt8], _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R? {
        guard let handle = handles[database] else { return nil }
        return try transaction.pointee.withValue(handle, key, body)
    }

    func scan(_ database: String, prefix: [UInt8], from start: [UInt8]?, reverse: Bool, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        guard let handle = handles[database] else { return }
        try transaction.pointee.scan(handle, prefix: prefix, from: start, reverse: reverse, body)
    }
}

/// The changes of one write transaction not yet handed to LMDB: the last value put under each
/// key (nil = deleted), by database. A key put many times in a batch (a counter, a top list, a
/// record changed by several events) reaches LMDB once, when the batch ends; reads see these
/// changes first. Used only on the writer thread, inside one transaction.
final class WriteOverlay {
    /// database → key → the value to store (nil: delete).
    var databases: [String: [ByteKey: [UInt8]?]] = [:]
    /// Entries over all databases.
    var count = 0
    /// Scans running now: the overlay is not written out past its limit inside one (a scan's
    /// database must not change under its cursor).
    var scanning = 0
    /// Past this many entries the overlay is written out (bounds memory in huge batches).
    static let limit = 200_000

    /// The pending change of `key`: `.some(nil)` when deleted, nil when there is none.
    @inline(__always)
    func lookup(_ database: String, _ key: [UInt8]) -> [UInt8]?? {
        guard count > 0, let entries = databases[database] else { return nil }
        return entries[ByteKey(key)]
    }

    func set(_ database: String, _ key: [UInt8], _ value: [UInt8]?) {
        let old = databases[database, default: [:]].updateValue(value, forKey: ByteKey(key))
        if old == nil { count += 1 }
    }
}

/// One write transaction of an ``LMDBReadModelStore``, lent to a `write` closure: the
/// projections' changes and the cursors of the batch, committed together.
///
/// Puts and deletes are kept in a ``WriteOverlay`` and written to LMDB once per key: when the
/// batch ends, before a scan of their database (so scans see them in key order), or when the
/// overlay grows past its limit. The stored bytes are the same as with immediate writes.
public struct LMDBReadModelWriter: ReadModelWriter {
    let transaction: UnsafePointer<WriteTransaction>
    let handles: [String: Database]
    let path: String
    let overlay = WriteOverlay()

    private func handle(_ database: String) throws -> Database {
        guard let handle = handles[database] else { throw LMDBReadModelStore.undeclared(database, path) }
        return handle
    }

    public func get(_ database: String, _ key: [UInt8]) throws -> [UInt8]? {
        if let pending = overlay.lookup(database, key) { return pending }
        return try transaction.pointee.get(try handle(database), key)
    }

    public func withValue<R>(_ database: String, _ key: [UInt8], _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R? {
        if let pending = overlay.lookup(database, key) {
            guard let value = pending else { return nil }
            return try value.withUnsafeBytes(body)
        }
        return try transaction.pointee.withValue(try handle(database), key, body)
    }

    public func scan(_ database: String, prefix: [UInt8], from start: [UInt8]?, reverse: Bool, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        try flush(database)
        overlay.scanning += 1
        defer { overlay.scanning -= 1 }
        try transaction.pointee.scan(try handle(database), prefix: prefix, from: start, reverse: reverse, body)
    }

    public mutating func put(_ database: String, _ key: [UInt8], _ value: [UInt8]) throws {
        let handle = try handle(database)
        // A key LMDB refuses fails now, with LMDB's error, not at the end of the batch.
        guard !key.isEmpty, key.count <= 511 else { return try transaction.pointee.put(handle, key, value) }
        overlay.set(database, key, value)
        if overlay.count > WriteOverlay.limit, overlay.scanning == 0 { try flush() }
    }

    public mutating func delete(_ database: String, _ key: [UInt8]) throws {
        let handle = try handle(database)
        guard !key.isEmpty, key.count <= 511 else {
            try transaction.pointee.delete(handle, key)
            return
        }
        overlay.set(database, key, nil)
        if overlay.count > WriteOverlay.limit, overlay.scanning == 0 { try flush() }
    }

    /// Writes the pending changes of `database` to LMDB.
    func flush(_ database: String) throws {
        guard overlay.count > 0, let entries = overlay.databases.removeValue(forKey: database) else { return }
        overlay.count -= entries.count
        let handle = try handle(database)
        let txn = transaction
        for (key, value) in entries {
            if let value { try txn.pointee.put(handle, key.bytes, value) } else { _ = try txn.pointee.delete(handle, key.bytes) }
        }
    }

    /// Writes every pending change to LMDB (the store does so when the batch's closure returns).
    func flush() throws {
        for database in overlay.databases.keys.sorted() { try flush(database) }
    }

    /// The cursor of projection `name` as of this transaction, nil when it never ran.
    public func cursor(_ name: String) throws -> LogPosition? {
        try withValue(LMDBReadModelStore.cursorsDatabase, Array(name.utf8)) { LMDBReadModelStore.decodePosition($0) } ?? nil
    }

    /// Records that projection `name` has applied everything up to `position`.
    public mutating func setCursor(_ name: String, _ position: LogPosition) throws {
        try put(LMDBReadModelStore.cursorsDatabase, Array(name.utf8), LMDBReadModelStore.encodePosition(position))
    }

    /// Records `projection`'s layout version in `_layouts` when it is not there yet (the
    /// projector does so in each batch's transaction; ``LMDBReadModelStore/adoptLayouts(_:)``
    /// writes only when it must clear a projection).
    public mutating func recordLayout(of projection: any Projection) throws {
        let key = Array(projection.name.utf8), wanted = UInt32(projection.layoutVersion)
        if try get(LMDBReadModelStore.layoutsDatabase, key).map(LMDBReadModelStore.decodeVersion) != wanted {
            try put(LMDBReadModelStore.layoutsDatabase, key, LMDBReadModelStore.encodeVersion(wanted))
        }
    }
}
