import EventStore

// The seam between read models and their storage. Projections and queries are written against
// these protocols only: unit tests run them over ``MemoryStore``; production runs them over the
// LMDB environment (`LMDBReadModelStore`, the only code here that touches LMDB). Keys and values
// are raw bytes; each model documents its layout in docs/READMODELS.md.

/// Reading a consistent snapshot of the read model (one LMDB read transaction).
public protocol ReadModelReader {
    /// The value under `key` in database `database`, or nil.
    func get(_ database: String, _ key: [UInt8]) throws -> [UInt8]?
    /// The value under `key`, borrowed for the duration of `body` without copying (zero-copy on
    /// LMDB: the bytes live in the memory map and must not escape the closure).
    func withValue<R>(_ database: String, _ key: [UInt8], _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R?
    /// Calls `body` for each entry whose key starts with `prefix`, in key order, from the first
    /// key ≥ `start` (default: the prefix itself), until it returns false.
    func scan(_ database: String, prefix: [UInt8], from start: [UInt8]?, reverse: Bool, _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool) throws
}

/// Changing the read model inside one write transaction (a batch of events plus the cursor).
public protocol ReadModelWriter: ReadModelReader {
    mutating func put(_ database: String, _ key: [UInt8], _ value: [UInt8]) throws
    /// Removes `key`; no error when absent.
    mutating func delete(_ database: String, _ key: [UInt8]) throws
}

/// A read model built from the event log: which databases it owns, and how one event changes
/// them. `apply` must be a pure function of (stored state, event): replaying the same events
/// into an empty store always yields the same bytes.
public protocol Projection: Sendable {
    /// A stable name, e.g. `catalog`; also the projector's cursor key.
    var name: String { get }
    /// The databases (LMDB named databases) it writes.
    var databases: [String] { get }
    /// The version of its stored layout (default 1). Raise it when a change needs the model
    /// built again from the log: a store written by another version is cleared for it and
    /// rebuilt on start (`LMDBReadModelStore.adoptLayouts`).
    var layoutVersion: Int { get }
    func apply(_ event: RecordedEvent, to store: inout some ReadModelWriter) throws
    /// Applies `events` (consecutive, in log order) inside one write transaction. The default
    /// applies them one by one; a projection overrides it to do work once per batch (e.g. once per
    /// touched product) instead of once per event. The result must not depend on where batches
    /// are cut: any split of the same events must yield the same bytes as applying them singly.
    func apply(batch events: ArraySlice<RecordedEvent>, to store: inout some ReadModelWriter) throws
}

extension Projection {
    public var layoutVersion: Int { 1 }

    public func apply(batch events: ArraySlice<RecordedEvent>, to store: inout some ReadModelWriter) throws {
        for event in events { try apply(event, to: &store) }
    }
}

/// A sorted in-memory store implementing both protocols: for unit tests of projections and
/// queries, and as the reference LMDB output is compared with.
public struct MemoryStore: ReadModelWriter, Sendable, Equatable {
    /// database → key → value, keys compared as unsigned bytes (LMDB's default order).
    public private(set) var databases: [String: [[UInt8]: [UInt8]]] = [:]

    public init() {}

    public func get(_ database: String, _ key: [UInt8]) throws -> [UInt8]? {
        databases[database]?[key]
    }

    public func withValue<R>(_ database: String, _ key: [UInt8], _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R? {
        guard let value = databases[database]?[key] else { return nil }
        return try value.withUnsafeBytes(body)
    }

    public func scan(_ database: String, prefix: [UInt8], from start: [UInt8]? = nil, reverse: Bool = false, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        guard let entries = databases[database] else { return }
        var keys = entries.keys.filter { $0.starts(with: prefix) }.sorted { $0.lexicographicallyPrecedes($1) }
        if reverse { keys.reverse() }
        for key in keys {
            if let start {
                // Forward: skip keys before `start`; reverse: `start` is the upper bound.
                if !reverse, key.lexicographicallyPrecedes(start) { continue }
                if reverse, start.lexicographicallyPrecedes(key) { continue }
            }
            let keepGoing = try key.withUnsafeBytes { k in try entries[key]!.withUnsafeBytes { v in try body(k, v) } }
            if !keepGoing { return }
        }
    }

    public mutating func put(_ database: String, _ key: [UInt8], _ value: [UInt8]) throws {
        databases[database, default: [:]][key] = value
    }

    public mutating func delete(_ database: String, _ key: [UInt8]) throws {
        databases[database]?[key] = nil
    }
}

/// Where queries read from: a snapshot of the read models (one short read transaction, opened
/// and closed on the calling thread, never held across an `await`), and how far the projections
/// behind it have read the log.
public protocol ReadModelSource: Sendable {
    /// Runs `body` over one consistent snapshot.
    func read<R>(_ body: (any ReadModelReader) throws -> R) throws -> R
    /// The log position every projection in this source has applied (the minimum of their cursors).
    var position: LogPosition { get throws }
}
