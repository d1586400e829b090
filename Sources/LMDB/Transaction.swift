import CLMDB

/// A read transaction: a consistent snapshot of the environment. Not copyable, so it ends
/// exactly once: ``Environment/read(_:)`` ends it when its closure returns or throws, and the
/// closure only borrows it, so neither the transaction nor the bytes it lends can escape.
public struct ReadTransaction: ~Copyable {
    /// `MDB_txn*`; with `MDB_NOTLS` it is not tied to a thread, but it is used and ended on
    /// the thread that began it.
    let handle: OpaquePointer

    init(handle: OpaquePointer) { self.handle = handle }

    /// Ends the snapshot normally. `mdb_txn_commit`, not abort: a read transaction has
    /// nothing to write, but commit keeps the database handles opened inside it.
    consuming func end() {
        _ = mdb_txn_commit(handle)
        discard self
    }

    deinit { mdb_txn_abort(handle) }

    /// A copy of the value under `key`, or nil.
    public func get(_ database: Database, _ key: [UInt8]) throws(LMDBError) -> [UInt8]? {
        try TransactionOperations.get(handle, database, key)
    }

    /// Calls `body` with the value under `key`, borrowed from the memory map without copying;
    /// nil when the key is absent. The bytes must not escape `body`.
    public func withValue<R>(_ database: Database, _ key: [UInt8], _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R? {
        try TransactionOperations.withValue(handle, database, key, body)
    }

    /// Calls `body` for each entry whose key starts with `prefix`, in key order (descending
    /// when `reverse`), from the first key ≥ `start` (≤ `start` when reverse), until it
    /// returns false. Keys and values are borrowed, zero-copy.
    public func scan(_ database: Database, prefix: [UInt8] = [], from start: [UInt8]? = nil, reverse: Bool = false, _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool) throws {
        try TransactionOperations.scan(handle, database, prefix: prefix, from: start, reverse: reverse, body)
    }

    /// Runs `body` with a cursor over `database`, closed when `body` ends.
    public func withCursor<R>(_ database: Database, _ body: (borrowing Cursor) throws -> R) throws -> R {
        let cursor = try Cursor(transaction: handle, database: database)
        return try body(cursor)
    }

    /// Entry count and tree shape of `database` in this snapshot.
    public func statistics(_ database: Database) throws(LMDBError) -> DatabaseStatistics {
        try TransactionOperations.statistics(handle, database)
    }
}

/// A write transaction: changes become visible to readers, atomically, when it commits. Not
/// copyable, so it ends exactly once; ``Environment/write(_:)`` commits it when its closure
/// returns and aborts it when the closure throws (and a transaction dropped without ending is
/// aborted).
public struct WriteTransaction: ~Copyable {
    /// `MDB_txn*`, used only on the thread that began it.
    let handle: OpaquePointer

    init(handle: OpaquePointer) { self.handle = handle }

    /// Makes the changes durable and visible; returns LMDB's code. The transaction ends
    /// whatever the outcome.
    consuming func commit() -> Int32 {
        let rc = mdb_txn_commit(handle)
        discard self
        return rc
    }

    /// Discards the changes.
    consuming func abort() {
        mdb_txn_abort(handle)
        discard self
    }

    deinit { mdb_txn_abort(handle) }

    /// A copy of the value under `key` (including this transaction's own changes), or nil.
    public func get(_ database: Database, _ key: [UInt8]) throws(LMDBError) -> [UInt8]? {
        try TransactionOperations.get(handle, database, key)
    }

    /// Calls `body` with the value under `key`, borrowed without copying; nil when absent. The
    /// bytes are valid only until the next change in this transaction and must not escape.
    public func withValue<R>(_ database: Database, _ key: [UInt8], _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R? {
        try TransactionOperations.withValue(handle, database, key, body)
    }

    /// See ``ReadTransaction/scan(_:prefix:from:reverse:_:)``. Do not change the database from
    /// inside `body`.
    public func scan(_ database: Database, prefix: [UInt8] = [], from start: [UInt8]? = nil, reverse: Bool = false, _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool) throws {
        try TransactionOperations.scan(handle, database, prefix: prefix, from: start, reverse: reverse, body)
    }

    /// Runs `body` with a cursor over `database`, closed when `body` ends.
    public func withCursor<R>(_ database: Database, _ body: (borrowing Cursor) throws -> R) throws -> R {
        let cursor = try Cursor(transaction: handle, database: database)
        return try body(cursor)
    }

    /// Entry count and tree shape of `database`, including this transaction's changes.
    public func statistics(_ database: Database) throws(LMDBError) -> DatabaseStatistics {
        try TransactionOperations.statistics(handle, database)
    }

    /// Stores `value` under `key`, replacing any value (or, with `overwrite: false`, throwing
    /// `.keyExists`). Keys are 1…511 bytes.
    public func put(_ database: Database, _ key: [UInt8], _ value: [UInt8], overwrite: Bool = true) throws(LMDBError) {
        try TransactionOperations.typed {
            try key.withUnsafeBytes { k in
                try value.withUnsafeBytes { v in
                    try put(database, k, v, overwrite: overwrite)
                }
            }
        }
    }

    /// ``put(_:_:_:overwrite:)`` from borrowed bytes.
    public func put(_ database: Database, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, overwrite: Bool = true) throws(LMDBError) {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
        try LMDBError.check(mdb_put(handle, database.handle, &k, &v, overwrite ? 0 : UInt32(MDB_NOOVERWRITE)), "mdb_put(\(database.name))")
    }

    /// Removes `key`; returns whether it was there.
    @discardableResult
    public func delete(_ database: Database, _ key: [UInt8]) throws(LMDBError) -> Bool {
        try TransactionOperations.typed {
            try key.withUnsafeBytes { k in
                var mk = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
                let rc = mdb_del(handle, database.handle, &mk, nil)
                if rc == MDB_NOTFOUND { return false }
                try LMDBError.check(rc, "mdb_del(\(database.name))")
                return true
            }
        }
    }

    /// Removes every entry of `database` (it stays open).
    public func clear(_ database: Database) throws(LMDBError) {
        try LMDBError.check(mdb_drop(handle, database.handle, 0), "mdb_drop(\(database.name))")
    }
}

/// The operations both kinds of transaction offer, over the raw handle.
enum TransactionOperations {
    static func typed<R>(_ body: () throws -> R) throws(LMDBError) -> R {
        do { return try body() } catch let error as LMDBError { throw error } catch {
            throw LMDBError(code: .invalidArgument, operation: "\(error)")
        }
    }

    static func get(_ txn: OpaquePointer, _ database: Database, _ key: [UInt8]) throws(LMDBError) -> [UInt8]? {
        try typed { try withValue(txn, database, key) { Array($0) } }
    }

    static func withValue<R>(_ txn: OpaquePointer, _ database: Database, _ key: [UInt8], _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R? {
        var value = MDB_val()
        let rc = key.withUnsafeBytes { k in
            var mk = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
            return mdb_get(txn, database.handle, &mk, &value)
        }
        if rc == MDB_NOTFOUND { return nil }
        try LMDBError.check(rc, "mdb_get(\(database.name))")
        return try body(UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size))
    }

    static func statistics(_ txn: OpaquePointer, _ database: Database) throws(LMDBError) -> DatabaseStatistics {
        var stat = MDB_stat()
        try LMDBError.check(mdb_stat(txn, database.handle, &stat), "mdb_stat(\(database.name))")
        return DatabaseStatistics(
            entries: stat.ms_entries, depth: Int(stat.ms_depth), branchPages: stat.ms_branch_pages,
            leafPages: stat.ms_leaf_pages, overflowPages: stat.ms_overflow_pages)
    }

    /// The smallest key greater than every key starting with `prefix`, or nil when there is
    /// none (empty prefix, or all 0xFF).
    static func successor(of prefix: [UInt8]) -> [UInt8]? {
        var bytes = prefix
        while let last = bytes.last {
            if last < 0xFF {
                bytes[bytes.count - 1] = last + 1
                return bytes
            }
            bytes.removeLast()
        }
        return nil
    }

    static func scan(_ txn: OpaquePointer, _ database: Database, prefix: [UInt8], from start: [UInt8]?, reverse: Bool, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        let cursor = try Cursor(transaction: txn, database: database)
        let positioned: Bool
        if !reverse {
            var lower = prefix
            if let start, compare(start, prefix) > 0 { lower = start }
            positioned = try lower.isEmpty ? cursor.move(.first) : cursor.seek(atLeast: lower)
        } else {
            var at = try successor(of: prefix).map { try cursor.seek(below: $0) } ?? cursor.move(.last)
            if let start, at {
                if compare(start, prefix) < 0 && !start.starts(with: prefix) {
                    at = false
                } else if try cursor.withCurrent({ key, _ in compare(key, start) > 0 }) {
                    at = try cursor.seek(atMost: start)
                }
            }
            positioned = at
        }
        guard positioned else { return }
        repeat {
            let keepGoing = try cursor.withCurrent { key, value -> Bool in
                guard key.starts(with: prefix) else { return false }
                return try body(key, value)
            }
            if !keepGoing { return }
        } while try cursor.move(reverse ? .previous : .next)
    }

    /// Unsigned lexicographic comparison (LMDB's default key order).
    static func compare(_ lhs: some Collection<UInt8>, _ rhs: some Collection<UInt8>) -> Int {
        var l = lhs.makeIterator(), r = rhs.makeIterator()
        while true {
            switch (l.next(), r.next()) {
            case (nil, nil): return 0
            case (nil, _): return -1
            case (_, nil): return 1
            case let (a?, b?): if a != b { return a < b ? -1 : 1 }
            }
        }
    }
}
