import CLMDB

/// A named database inside an ``Environment`` (`MDB_dbi`): opened once with
/// ``Environment/database(_:create:)`` and valid in every later transaction of that environment.
public struct Database: Sendable, Hashable, CustomStringConvertible {
    /// The database's name.
    public let name: String
    /// LMDB's handle.
    let handle: MDB_dbi

    init(name: String, handle: MDB_dbi) {
        self.name = name
        self.handle = handle
    }

    public var description: String { name }
}

/// How many entries a database holds and how big its B-tree is (`mdb_stat`).
public struct DatabaseStatistics: Sendable, Hashable {
    public var entries: Int
    public var depth: Int
    public var branchPages: Int
    public var leafPages: Int
    public var overflowPages: Int
}
