import LMDB

/// How the projector cuts the log into write transactions, as a pure decision (no I/O): how
/// many events the next read may take, and whether a batch's commit waits for the disk.
///
/// - Far behind (a read came back full), the limit doubles after each full read, up to
///   ``maxSize``: fewer, bigger transactions write each touched LMDB page once for many events,
///   and fewer commits pay the fsync.
/// - Far behind, commits are ``LMDB/Writer/Durability/deferred`` (no fsync) when ``deferSync``
///   is on, except every ``syncEvery``-th one, which is synced and so makes the earlier ones
///   durable too: a system crash loses at most that many batches, which the projector reads
///   again from the log (each cursor commits with its data).
/// - Once a read comes back short (the head of the log is reached), the limit returns to
///   ``baseSize`` and the commit is synced (or, with ``deferLive``, deferred and flushed by the
///   runner alongside the writer): live batches are small and commit promptly.
public struct BatchPlanner: Sendable, Hashable {
    /// The limit of a read when caught up, and of the first read after catching up.
    public let baseSize: Int
    /// The most events in one transaction while far behind.
    public let maxSize: Int
    /// Whether commits of full batches skip the fsync.
    public let deferSync: Bool
    /// At most this many commits in a row are deferred; the next one is synced.
    public let syncEvery: Int
    /// Whether short (live) batches skip the fsync too: the runner then flushes them with a
    /// sync alongside the writer, off the commit path.
    public let deferLive: Bool
    /// The limit of the next read.
    public private(set) var limit: Int
    /// Deferred commits since the last synced one.
    public private(set) var deferredInARow = 0

    /// A planner starting at `baseSize`.
    public init(baseSize: Int, maxSize: Int, deferSync: Bool = true, syncEvery: Int = 16, deferLive: Bool = false) {
        precondition(baseSize > 0 && maxSize >= baseSize && syncEvery > 0)
        self.baseSize = baseSize
        self.maxSize = maxSize
        self.deferSync = deferSync
        self.syncEvery = syncEvery
        self.deferLive = deferLive
        self.limit = baseSize
    }

    /// A batch of `count` events came back from a read with limit `limit`: returns how to commit
    /// it, and moves ``limit`` for the next read (doubled after a full read, back to
    /// ``baseSize`` after a short one).
    public mutating func read(_ count: Int, limit used: Int) -> Writer.Durability {
        let full = count >= used
        limit = full ? min(maxSize, max(limit, used) * 2) : baseSize
        if !full, deferLive {
            deferredInARow = 0
            return .deferred
        }
        guard full, deferSync, deferredInARow + 1 < syncEvery else {
            deferredInARow = 0
            return .synced
        }
        deferredInARow += 1
        return .deferred
    }

    /// Nothing more to read: the limit returns to ``baseSize``. Returns whether commits since
    /// the last synced one are still to be flushed (the caller syncs the store).
    public mutating func caughtUp() -> Bool {
        defer {
            deferredInARow = 0
            limit = baseSize
        }
        return deferredInARow > 0
    }
}
