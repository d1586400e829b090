import CLMDB
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An LMDB environment: one folder holding `data.mdb` and `lock.mdb`, memory-mapped.
///
/// Threading rules (the environment is opened with `MDB_NOTLS`):
/// - ``read(_:)`` may be called from any thread; the read transaction is opened, used and
///   ended inside the call, on the calling thread. Never `await` inside it (the closure is
///   synchronous, so the compiler enforces this).
/// - ``write(_:)`` runs a write transaction synchronously on the calling thread. LMDB allows
///   one writer at a time (a second one blocks); Tote runs every write on one dedicated thread
///   through a ``Writer``, which is the API to use from async code.
/// - The map grows: when a write transaction finds the map full, the environment aborts it,
///   doubles the map size (up to ``Configuration/maxMapSize``) and runs the closure again.
///   Resizing waits for this process's read transactions to end (a process-wide
///   readers–writer lock), because it remaps the file. Readers in other processes adopt the
///   new size when LMDB tells them (`MDB_MAP_RESIZED`).
public final class Environment: Sendable {
    /// How to open an environment.
    public struct Configuration: Sendable, Hashable {
        /// The initial map size in bytes (rounded by LMDB to whole pages). Grows on demand.
        public var mapSize: Int
        /// The largest size the map may grow to.
        public var maxMapSize: Int
        /// The most concurrent read transactions across all processes.
        public var maxReaders: UInt32
        /// The most named databases.
        public var maxDatabases: UInt32
        /// Open read-only (`MDB_RDONLY`): no write transactions; the folder must exist.
        public var readOnly: Bool
        /// Skip the fsync at commit (`MDB_NOSYNC`): for tests and rebuilds that are synced
        /// explicitly before use. A crash may lose the last commits, never corrupt.
        public var noSync: Bool
        /// One fsync per commit instead of two (`MDB_NOMETASYNC`): the data pages are flushed,
        /// the meta page is written but flushed only by the next commit or ``Environment/sync(force:)``.
        /// Integrity holds; a system crash may undo the last commit (a process crash loses nothing).
        public var noMetaSync: Bool
        /// The file mode of created files.
        public var fileMode: UInt32

        public init(
            mapSize: Int = 64 << 20,
            maxMapSize: Int = 1 << 40,
            maxReaders: UInt32 = 512,
            maxDatabases: UInt32 = 64,
            readOnly: Bool = false,
            noSync: Bool = false,
            noMetaSync: Bool = false,
            fileMode: UInt32 = 0o644
        ) {
            self.mapSize = mapSize
            self.maxMapSize = maxMapSize
            self.maxReaders = maxReaders
            self.maxDatabases = maxDatabases
            self.readOnly = readOnly
            self.noSync = noSync
            self.noMetaSync = noMetaSync
            self.fileMode = fileMode
        }
    }

    /// Facts about an open environment.
    public struct Info: Sendable, Hashable {
        /// The current map size in bytes.
        public var mapSize: Int
        /// The last used page number (pages in use − 1).
        public var lastPage: Int
        /// The id of the last committed transaction.
        public var lastTransactionID: Int
        /// Reader slots configured and in use.
        public var maxReaders: Int
        public var readersInUse: Int
        /// The page size in bytes.
        public var pageSize: Int
    }

    /// `MDB_env*`: LMDB documents an environment handle as usable from any thread (and with
    /// `MDB_NOTLS` read transactions are not tied to thread-local storage); it never changes.
    nonisolated(unsafe) let handle: OpaquePointer
    /// The folder.
    public let path: String
    public let configuration: Configuration
    /// Held shared by read transactions of this process and exclusively while the map is
    /// resized (LMDB requires that no transaction of the process is active then).
    let resizeLock: ReadWriteLock
    /// Named database handles, opened once.
    private let databases = Mutex<[String: Database]>([:])
    /// How many stale reader slots ``readerCheck()`` cleared at open.
    public let staleReadersClearedAtOpen: Int

    /// Opens (creating unless read-only) the environment in folder `path`.
    ///
    /// - Throws: ``LMDBError`` (e.g. `ENOENT` when a read-only folder does not exist).
    public init(path: String, configuration: Configuration = .init()) throws(LMDBError) {
        var env: OpaquePointer?
        try LMDBError.check(mdb_env_create(&env), "mdb_env_create")
        guard let env else { throw LMDBError(code: .init(rawValue: ENOMEM), operation: "mdb_env_create") }
        do throws(LMDBError) {
            try LMDBError.check(mdb_env_set_mapsize(env, configuration.mapSize), "mdb_env_set_mapsize(\(configuration.mapSize))")
            try LMDBError.check(mdb_env_set_maxreaders(env, configuration.maxReaders), "mdb_env_set_maxreaders")
            try LMDBError.check(mdb_env_set_maxdbs(env, configuration.maxDatabases), "mdb_env_set_maxdbs")
            if !configuration.readOnly, mkdir(path, 0o755) != 0, errno != EEXIST {
                throw LMDBError(code: .init(rawValue: errno), operation: "mkdir(\(path))")
            }
            var flags = UInt32(MDB_NOTLS)
            if configuration.readOnly { flags |= UInt32(MDB_RDONLY) }
            if configuration.noSync { flags |= UInt32(MDB_NOSYNC) }
            if configuration.noMetaSync { flags |= UInt32(MDB_NOMETASYNC) }
            try LMDBError.check(mdb_env_open(env, path, flags, mdb_mode_t(configuration.fileMode)), "mdb_env_open(\(path))")
        } catch {
            mdb_env_close(env)
            throw error
        }
        self.handle = env
        self.path = path
        self.configuration = configuration
        self.resizeLock = ReadWriteLock()
        var dead: Int32 = 0
        _ = mdb_reader_check(env, &dead)
        self.staleReadersClearedAtOpen = Int(dead)
    }

    deinit {
        mdb_env_close(handle)
    }

    /// Clears reader slots left by processes that died mid-read (they pin old pages and stop
    /// the file from reusing space). Returns how many were cleared.
    @discardableResult
    public func readerCheck() throws(LMDBError) -> Int {
        var dead: Int32 = 0
        try LMDBError.check(mdb_reader_check(handle, &dead), "mdb_reader_check(\(path))")
        return Int(dead)
    }

    /// The environment's map size, pages and readers.
    public func info() throws(LMDBError) -> Info {
        var info = MDB_envinfo()
        try LMDBError.check(mdb_env_info(handle, &info), "mdb_env_info(\(path))")
        var stat = MDB_stat()
        try LMDBError.check(mdb_env_stat(handle, &stat), "mdb_env_stat(\(path))")
        return Info(
            mapSize: info.me_mapsize, lastPage: info.me_last_pgno, lastTransactionID: info.me_last_txnid,
            maxReaders: Int(info.me_maxreaders), readersInUse: Int(info.me_numreaders), pageSize: Int(stat.ms_psize))
    }

    /// Flushes the data to disk (needed after writes with ``Configuration/noSync`` or
    /// ``Writer/Durability/deferred``). Blocks for the disk: from async code use
    /// ``Writer/sync()``.
    public func sync(force: Bool = true) throws(LMDBError) {
        try LMDBError.check(mdb_env_sync(handle, force ? 1 : 0), "mdb_env_sync(\(path))")
    }

    /// Turns `MDB_NOSYNC` on or off for the following commits (``Writer/Durability/deferred``).
    /// LMDB reads the flag at commit: call it only between write transactions, on the thread
    /// that runs them (the ``Writer``'s).
    func setNoSync(_ on: Bool) throws(LMDBError) {
        try LMDBError.check(mdb_env_set_flags(handle, UInt32(MDB_NOSYNC), on ? 1 : 0), "mdb_env_set_flags(MDB_NOSYNC, \(on), \(path))")
    }

    /// Whether commits skip the fsync now (`MDB_NOSYNC` set at open or by a deferred write).
    public var commitsSkipSync: Bool {
        var flags: UInt32 = 0
        _ = mdb_env_get_flags(handle, &flags)
        return flags & UInt32(MDB_NOSYNC) != 0
    }

    // MARK: Databases

    /// The named database `name`, opened once (in a write transaction when `create`, and then
    /// created if missing; in a read transaction otherwise, and always in a read-only
    /// environment, which cannot create).
    ///
    /// - Throws: ``LMDBError`` `.notFound` when it does not exist and `create` is false.
    public func database(_ name: String, create: Bool = true) throws(LMDBError) -> Database {
        if let known = databases.withLock({ $0[name] }) { return known }
        let creating = create && !configuration.readOnly
        let open: (OpaquePointer) throws(LMDBError) -> Database = { txn throws(LMDBError) in
            var dbi: MDB_dbi = 0
            try LMDBError.check(mdb_dbi_open(txn, name, creating ? UInt32(MDB_CREATE) : 0, &dbi), "mdb_dbi_open(\(name))")
            return Database(name: name, handle: dbi)
        }
        let database: Database
        if creating {
            database = try Self.typed { try write { txn in try open(txn.handle) } }
        } else {
            database = try Self.typed { try read { txn in try open(txn.handle) } }
        }
        return databases.withLock { known in
            if let existing = known[name] { return existing }
            known[name] = database
            return database
        }
    }

    /// Narrows an error known to be an ``LMDBError``.
    static func typed<R>(_ body: () throws -> R) throws(LMDBError) -> R {
        do { return try body() } catch let error as LMDBError { throw error } catch {
            throw LMDBError(code: .init(rawValue: EINVAL), operation: "\(error)")
        }
    }

    // MARK: Transactions

    /// Runs `body` in a read transaction on the calling thread: ended when `body` returns or
    /// throws. The transaction cannot escape `body` (it is borrowed and not copyable). Do not
    /// start a read transaction inside another one on the same thread.
    ///
    /// - Throws: what `body` throws, or ``LMDBError`` when the transaction cannot begin (e.g.
    ///   `.readersFull`).
    public func read<R>(_ body: (borrowing ReadTransaction) throws -> R) throws -> R {
        resizeLock.lockShared()
        defer { resizeLock.unlockShared() }
        let transaction = try beginRead()
        let result = try body(transaction)
        transaction.end()
        return result
    }

    /// Begins a read transaction, adopting a map size grown by another process. Called with
    /// the resize lock held shared.
    private func beginRead() throws(LMDBError) -> ReadTransaction {
        var txn: OpaquePointer?
        var rc = mdb_txn_begin(handle, nil, UInt32(MDB_RDONLY), &txn)
        if rc == MDB_MAP_RESIZED {
            // Another process grew the map; adopting it needs no active transaction here.
            resizeLock.unlockShared()
            adoptResizedMap()
            resizeLock.lockShared()
            rc = mdb_txn_begin(handle, nil, UInt32(MDB_RDONLY), &txn)
        }
        try LMDBError.check(rc, "mdb_txn_begin(read, \(path))")
        return ReadTransaction(handle: txn!)
    }

    /// Takes the new map size another process set (no transaction of ours may be active).
    private func adoptResizedMap() {
        resizeLock.lockExclusive()
        defer { resizeLock.unlockExclusive() }
        _ = mdb_env_set_mapsize(handle, 0)
    }

    /// Runs `body` in a write transaction on the calling thread: committed when `body` returns,
    /// aborted when it throws. When the map is full (thrown by a put in `body` or by the
    /// commit) the transaction is aborted, the map grown, and `body` run again from scratch:
    /// `body` must have no effects outside the transaction and must let LMDB errors through.
    ///
    /// Call from one thread at a time: use a ``Writer`` from async code.
    public func write<R>(_ body: (borrowing WriteTransaction) throws -> R) throws -> R {
        if configuration.readOnly {
            throw LMDBError(code: .readOnly, operation: "write transaction on read-only environment \(path)")
        }
        while true {
            switch try attemptWrite(body) {
            case .done(let result): return result
            case .retry: continue
            case .grow: try grow()
            }
        }
    }

    private enum WriteAttempt<R> {
        case done(R)
        /// Another process grew the map: begin again.
        case retry
        /// The map is full: grow it and begin again.
        case grow
    }

    /// One write transaction: begin, run `body`, commit (or abort).
    private func attemptWrite<R>(_ body: (borrowing WriteTransaction) throws -> R) throws -> WriteAttempt<R> {
        var txn: OpaquePointer?
        let rc = mdb_txn_begin(handle, nil, 0, &txn)
        if rc == MDB_MAP_RESIZED {
            adoptResizedMap()
            return .retry
        }
        try LMDBError.check(rc, "mdb_txn_begin(write, \(path))")
        let transaction = WriteTransaction(handle: txn!)
        let outcome = Result<R, any Error> { try body(transaction) }
        switch outcome {
        case .success(let result):
            let rc = transaction.commit()
            if rc == MDB_MAP_FULL { return .grow }
            try LMDBError.check(rc, "mdb_txn_commit(\(path))")
            return .done(result)
        case .failure(let error):
            transaction.abort()
            if let error = error as? LMDBError, error.code == .mapFull { return .grow }
            throw error
        }
    }

    /// Doubles the map size, waiting for this process's readers to finish.
    private func grow() throws(LMDBError) {
        let current = try info().mapSize
        guard current < configuration.maxMapSize else {
            throw LMDBError(code: .mapFull, operation: "grow map of \(path) beyond maxMapSize \(configuration.maxMapSize)")
        }
        let next = min(configuration.maxMapSize, max(current * 2, current + (1 << 20)))
        resizeLock.lockExclusive()
        defer { resizeLock.unlockExclusive() }
        try LMDBError.check(mdb_env_set_mapsize(handle, next), "mdb_env_set_mapsize(\(next), \(path))")
    }
}

/// A process-local readers–writer lock (`pthread_rwlock_t`, reader-preferring), allocated so
/// that its address never moves.
final class ReadWriteLock: Sendable {
    /// Only touched through the pthread functions, which are thread-safe by contract.
    private nonisolated(unsafe) let lock: UnsafeMutablePointer<pthread_rwlock_t>

    init() {
        lock = .allocate(capacity: 1)
        #if canImport(Glibc)
        var attributes = pthread_rwlockattr_t()
        pthread_rwlockattr_init(&attributes)
        // Readers first: a read transaction nested in another on one thread cannot deadlock.
        pthread_rwlockattr_setkind_np(&attributes, Int32(PTHREAD_RWLOCK_PREFER_READER_NP))
        pthread_rwlock_init(lock, &attributes)
        pthread_rwlockattr_destroy(&attributes)
        #else
        pthread_rwlock_init(lock, nil)
        #endif
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    func lockShared() { pthread_rwlock_rdlock(lock) }
    func unlockShared() { pthread_rwlock_unlock(lock) }
    func lockExclusive() { pthread_rwlock_wrlock(lock) }
    func unlockExclusive() { pthread_rwlock_unlock(lock) }
}

// MARK: Inspection

extension Environment {
    /// The names of the named databases in this environment (the keys of LMDB's main database),
    /// in key order.
    public func namedDatabaseNames() throws -> [String] {
        // MAIN_DBI (1) is always open: the main database, whose keys name the named databases.
        let main = Database(name: "", handle: 1)
        return try read { txn in
            var names: [String] = []
            try txn.scan(main) { key, _ in
                names.append(String(decoding: key, as: UTF8.self))
                return true
            }
            return names
        }
    }

    /// Every key and value of every named database, in one snapshot, keyed by database name
    /// (like `mdb_dump -a`): for tests comparing two environments byte for byte.
    public func dump() throws -> [String: [(key: [UInt8], value: [UInt8])]] {
        let names = try namedDatabaseNames()
        let handles = try names.map { name throws(LMDBError) in try database(name, create: false) }
        return try read { txn in
            var out: [String: [(key: [UInt8], value: [UInt8])]] = [:]
            for database in handles {
                var entries: [(key: [UInt8], value: [UInt8])] = []
                try txn.scan(database) { key, value in
                    entries.append((Array(key), Array(value)))
                    return true
                }
                out[database.name] = entries
            }
            return out
        }
    }
}
