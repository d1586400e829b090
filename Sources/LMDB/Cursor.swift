import CLMDB

/// A position in one database of one transaction, for range and prefix scans. Not copyable
/// and only lent to a closure (``ReadTransaction/withCursor(_:_:)``), so it is closed exactly
/// once and before its transaction ends.
public struct Cursor: ~Copyable {
    /// `MDB_cursor*`.
    let handle: OpaquePointer
    let database: Database

    /// Where to move.
    public enum Move: Sendable {
        case first, last, next, previous
    }

    init(transaction: OpaquePointer, database: Database) throws(LMDBError) {
        var cursor: OpaquePointer?
        try LMDBError.check(mdb_cursor_open(transaction, database.handle, &cursor), "mdb_cursor_open(\(database.name))")
        self.handle = cursor!
        self.database = database
    }

    deinit { mdb_cursor_close(handle) }

    /// Moves; returns false (and the position is unspecified) when there is no such entry.
    @discardableResult
    public func move(_ move: Move) throws(LMDBError) -> Bool {
        let op: MDB_cursor_op = switch move {
        case .first: MDB_FIRST
        case .last: MDB_LAST
        case .next: MDB_NEXT
        case .previous: MDB_PREV
        }
        var key = MDB_val(), value = MDB_val()
        return try get(&key, &value, op)
    }

    /// Moves to the first key ≥ `key`; false when there is none.
    public func seek(atLeast key: [UInt8]) throws(LMDBError) -> Bool {
        if key.isEmpty { return try move(.first) }
        return try TransactionOperations.typed {
            try key.withUnsafeBytes { bytes in
                var k = MDB_val(mv_size: bytes.count, mv_data: UnsafeMutableRawPointer(mutating: bytes.baseAddress))
                var value = MDB_val()
                return try get(&k, &value, MDB_SET_RANGE)
            }
        }
    }

    /// Moves to the last key ≤ `key`; false when there is none.
    public func seek(atMost key: [UInt8]) throws(LMDBError) -> Bool {
        guard try seek(atLeast: key) else { return try move(.last) }
        if try TransactionOperations.typed({ try withCurrent { current, _ in TransactionOperations.compare(current, key) == 0 } }) { return true }
        return try move(.previous)
    }

    /// Moves to the last key < `key`; false when there is none.
    public func seek(below key: [UInt8]) throws(LMDBError) -> Bool {
        guard try seek(atLeast: key) else { return try move(.last) }
        return try move(.previous)
    }

    /// Calls `body` with the current key and value, borrowed without copying.
    ///
    /// - Throws: ``LMDBError`` when the cursor is not on an entry (e.g. `.invalidArgument` or
    ///   `.notFound` before the first move).
    public func withCurrent<R>(_ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> R) throws -> R {
        var key = MDB_val(), value = MDB_val()
        let rc = mdb_cursor_get(handle, &key, &value, MDB_GET_CURRENT)
        try LMDBError.check(rc, "mdb_cursor_get(current, \(database.name))")
        return try body(UnsafeRawBufferPointer(start: key.mv_data, count: key.mv_size), UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size))
    }

    private func get(_ key: inout MDB_val, _ value: inout MDB_val, _ op: MDB_cursor_op) throws(LMDBError) -> Bool {
        let rc = mdb_cursor_get(handle, &key, &value, op)
        if rc == MDB_NOTFOUND { return false }
        try LMDBError.check(rc, "mdb_cursor_get(\(database.name))")
        return true
    }
}
