import CLMDB

/// An error returned by an LMDB call, with the `MDB_*` code mapped to a case.
///
/// Every LMDB call made anywhere in Tote goes through ``LMDBError/check(_:_:)`` so that a
/// return code is never ignored.
public struct LMDBError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure; an extensible set of well-known LMDB codes.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The raw `MDB_*` or `errno` value.
        public let rawValue: Int32

        @inlinable
        public init(rawValue: Int32) { self.rawValue = rawValue }

        public static let keyExists = Code(rawValue: MDB_KEYEXIST)
        public static let notFound = Code(rawValue: MDB_NOTFOUND)
        public static let mapFull = Code(rawValue: MDB_MAP_FULL)
        public static let mapResized = Code(rawValue: MDB_MAP_RESIZED)
        public static let readersFull = Code(rawValue: MDB_READERS_FULL)
        public static let transactionFull = Code(rawValue: MDB_TXN_FULL)
        public static let databasesFull = Code(rawValue: MDB_DBS_FULL)
        public static let corrupted = Code(rawValue: MDB_CORRUPTED)
        public static let invalid = Code(rawValue: MDB_INVALID)
        public static let versionMismatch = Code(rawValue: MDB_VERSION_MISMATCH)
        public static let badTransaction = Code(rawValue: MDB_BAD_TXN)
        public static let badValueSize = Code(rawValue: MDB_BAD_VALSIZE)
        public static let badDatabase = Code(rawValue: MDB_BAD_DBI)
        public static let incompatible = Code(rawValue: MDB_INCOMPATIBLE)
        /// `ENOENT`: the folder (of a read-only open) does not exist.
        public static let noSuchFile = Code(rawValue: 2)
        /// `EACCES`: a write on a read-only environment, or no permission.
        public static let readOnly = Code(rawValue: 13)
        /// `ECANCELED`: the writer was stopped before the write could run.
        public static let cancelled = Code(rawValue: 125)
        /// `EINVAL`: an invalid argument (e.g. an empty key).
        public static let invalidArgument = Code(rawValue: 22)

        public var description: String { String(cString: mdb_strerror(rawValue)) }
    }

    public let code: Code
    /// What Tote was doing when LMDB failed, e.g. "mdb_env_open(/var/lib/tote/read)".
    public let operation: String

    public init(code: Code, operation: String) {
        self.code = code
        self.operation = operation
    }

    public var description: String { "\(operation): \(code) (\(code.rawValue))" }

    /// Maps an LMDB return code to a thrown ``LMDBError``; `MDB_SUCCESS` returns normally.
    @inlinable
    public static func check(_ rc: Int32, _ operation: @autoclosure () -> String) throws(LMDBError) {
        if rc != MDB_SUCCESS {
            throw LMDBError(code: Code(rawValue: rc), operation: operation())
        }
    }
}

/// Facts about the LMDB library Tote is linked against.
public enum LMDBLibrary {
    /// The linked library's version, e.g. `(0, 9, 24)`.
    public static var version: (major: Int, minor: Int, patch: Int) {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        _ = mdb_version(&major, &minor, &patch)
        return (Int(major), Int(minor), Int(patch))
    }
}
