import EventStore
import Foundation
import LMDB
import Logging
import Synchronization

// Applying a batch with the projections running side by side.
//
// LMDB has one write transaction at a time, and applying a batch is almost all Swift work
// (decoding, deriving keys): the LMDB puts at the end are a few per cent of it. So each
// projection *stages* its changes on a thread of its own, reading a snapshot (a read transaction:
// the state the last commit left) through an overlay of its own changes, and the writer thread
// then only copies every overlay into one write transaction with the cursors. The projections
// write disjoint databases, so their overlays never overlap, and the bytes are those of applying
// them one after another in one transaction.

/// What one projection changed while staging a batch: the last value put under each key
/// (nil = deleted), by database, and per database an index of its keys in LMDB order for scans.
final class StagedChanges: @unchecked Sendable {
    // Touched by one staging thread, then (after that thread is done) by the writer thread.
    let overlay = WriteOverlay()
    /// database → its overlay keys: a sorted run plus the keys added since it was last merged.
    /// Projections scan a database while adding to it (an order's events, a token's terms), so
    /// sorting everything before each scan would cost O(n log n) per scan; merging the recent
    /// keys only once there are more than about 2√n of them keeps scans and inserts cheap.
    private var indexes: [String: KeyIndex] = [:]

    private struct KeyIndex {
        var sorted: [[UInt8]] = []
        var recent: [[UInt8]] = []

        mutating func merge() {
            guard !recent.isEmpty else { return }
            recent.sort { StagingWriter.compare($0, $1) < 0 }
            var merged: [[UInt8]] = []
            merged.reserveCapacity(sorted.count + recent.count)
            var i = 0, j = 0
            while i < sorted.count, j < recent.count {
                if StagingWriter.compare(sorted[i], recent[j]) < 0 { merged.append(sorted[i]); i += 1 } else { merged.append(recent[j]); j += 1 }
            }
            merged.append(contentsOf: sorted[i...])
            merged.append(contentsOf: recent[j...])
            sorted = merged
            recent = []
        }
    }

    func set(_ database: String, _ key: [UInt8], _ value: [UInt8]?) {
        let before = overlay.count
        overlay.set(database, key, value)
        if overlay.count != before { indexes[database, default: KeyIndex()].recent.append(key) }
    }

    /// Every overlay key of `database`, in order.
    func keysInOrder(_ database: String) -> [[UInt8]] {
        indexes[database, default: KeyIndex()].merge()
        return indexes[database]?.sorted ?? []
    }

    /// The overlay keys of `database` that start with `prefix`, in order.
    func keys(_ database: String, prefix: [UInt8]) -> [[UInt8]] {
        guard var index = indexes.removeValue(forKey: database) else { return [] }
        defer { indexes[database] = index }
        if index.recent.count > max(64, 2 * Int(Double(index.sorted.count).squareRoot())) { index.merge() }
        var low = 0, high = index.sorted.count
        while low < high {
            let mid = (low + high) / 2
            if StagingWriter.compare(index.sorted[mid], prefix) < 0 { low = mid + 1 } else { high = mid }
        }
        var found: [[UInt8]] = []
        while low < index.sorted.count, index.sorted[low].starts(with: prefix) {
            found.append(index.sorted[low])
            low += 1
        }
        let recent = index.recent.filter { $0.starts(with: prefix) }
        guard !recent.isEmpty else { return found }
        return (found + recent).sorted { StagingWriter.compare($0, $1) < 0 }
    }
}

/// Thrown while staging when the staged path cannot give the classic path's result (a key LMDB
/// would refuse, whose error must be LMDB's), or at the write when another runner committed
/// since the snapshot: the batch is then applied the classic way, in the write transaction.
struct StagingFallback: Error {
    var reason: String
}

/// A projection's writer while it stages a batch: reads see the snapshot through the staged
/// changes; writes go to the changes only. A scan merges both in key order, as a scan of the
/// write transaction after the changes were put would see them.
struct StagingWriter: ReadModelWriter {
    let snapshot: LMDBReadModelReader
    let changes: StagedChanges
    let path: String

    private func check(_ database: String) throws {
        guard snapshot.handles[database] != nil else { throw LMDBReadModelStore.undeclared(database, path) }
    }

    func get(_ database: String, _ key: [UInt8]) throws -> [UInt8]? {
        if let pending = changes.overlay.lookup(database, key) { return pending }
        return try snapshot.get(database, key)
    }

    func withValue<R>(_ database: String, _ key: [UInt8], _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R? {
        if let pending = changes.overlay.lookup(database, key) {
            guard let value = pending else { return nil }
            return try value.withUnsafeBytes(body)
        }
        return try snapshot.withValue(database, key, body)
    }

    mutating func put(_ database: String, _ key: [UInt8], _ value: [UInt8]) throws {
        try check(database)
        guard !key.isEmpty, key.count <= 511 else { throw StagingFallback(reason: "a key of \(key.count) bytes") }
        changes.set(database, key, value)
    }

    mutating func delete(_ database: String, _ key: [UInt8]) throws {
        try check(database)
        guard !key.isEmpty, key.count <= 511 else { throw StagingFallback(reason: "a key of \(key.count) bytes") }
        changes.set(database, key, nil)
    }

    func scan(_ database: String, prefix: [UInt8], from start: [UInt8]?, reverse: Bool, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        guard let entries = changes.overlay.databases[database], !entries.isEmpty else {
            return try snapshot.scan(database, prefix: prefix, from: start, reverse: reverse, body)
        }
        // The staged keys this scan covers, in the scan's order.
        var pending = changes.keys(database, prefix: prefix)
        if let start {
            pending.removeAll { key in
                let c = Self.compare(key, start)
                return reverse ? c > 0 : c < 0
            }
        }
        if reverse { pending.reverse() }
        var next = 0
        /// Passes the staged keys that come before `key` in scan order (all when nil) to `body`;
        /// false when `body` stopped the scan.
        func passPending(before key: UnsafeRawBufferPointer?) throws -> Bool {
            while next < pending.count {
                let staged = pending[next]
                if let key {
                    let c = staged.withUnsafeBytes { Self.compare($0, key) }
                    if reverse ? c <= 0 : c >= 0 { break }
                }
                next += 1
                if case .some(.some(let value)) = entries[ByteKey(staged)] {
                    let more = try staged.withUnsafeBytes { k in try value.withUnsafeBytes { v in try body(k, v) } }
                    if !more { return false }
                }
            }
            return true
        }
        var stopped = false
        try snapshot.scan(database, prefix: prefix, from: start, reverse: reverse) { key, value in
            guard try passPending(before: key) else { stopped = true; return false }
            if next < pending.count, pending[next].withUnsafeBytes({ Self.compare($0, key) }) == 0 {
                // Staged over the snapshot's value: the staged one, or nothing when deleted.
                let staged = pending[next]
                next += 1
                guard case .some(.some(let replacement)) = entries[ByteKey(staged)] else { return true }
                let more = try replacement.withUnsafeBytes { try body(key, $0) }
                if !more { stopped = true }
                return more
            }
            let more = try body(key, value)
            if !more { stopped = true }
            return more
        }
        if !stopped { _ = try passPending(before: nil) }
    }

    /// Unsigned lexicographic order, shorter first on a common prefix (LMDB's default).
    static func compare(_ lhs: UnsafeRawBufferPointer, _ rhs: UnsafeRawBufferPointer) -> Int {
        let n = min(lhs.count, rhs.count)
        if n > 0 {
            let c = memcmp(lhs.baseAddress!, rhs.baseAddress!, n)
            if c != 0 { return c < 0 ? -1 : 1 }
        }
        return lhs.count == rhs.count ? 0 : (lhs.count < rhs.count ? -1 : 1)
    }

    static func compare(_ lhs: [UInt8], _ rhs: [UInt8]) -> Int {
        lhs.withUnsafeBytes { l in rhs.withUnsafeBytes { r in compare(l, r) } }
    }
}

/// One projection's staged batch: the cursor its snapshot held (checked again at the write) and
/// its changes (nil when the batch held nothing new for it).
struct StagedBatch: Sendable {
    var projection: any Projection
    var cursor: LogPosition
    var changes: StagedChanges?
}

extension LMDBReadModelStore {
    /// Smaller batches (live ones) are applied inside the transaction: starting threads would
    /// cost more than it saves.
    public static let stagingMinimum = 256

    /// Applies `batch` for `projections` in one write transaction that also moves their cursors
    /// to its last position (what ``ProjectorRunner/apply(_:to:after:durability:)`` does). Each
    /// projection applies only the events after its own cursor. With `stagingThreads` > 1 and a
    /// batch of at least ``stagingMinimum`` events the projections stage their changes side by
    /// side first; otherwise, or when staging cannot stand in (``StagingFallback``), they apply
    /// in turn inside the transaction. The bytes are the same either way. A batch too big for
    /// one LMDB transaction (`MDB_TXN_FULL`) is applied in two halves.
    ///
    /// - Parameter after: the position the batch was read after, when known; a projection whose
    ///   cursor is behind it would miss events, so the batch is refused (nothing written).
    public func apply(_ batch: [RecordedEvent], projections: [any Projection], after: LogPosition? = nil, durability: Writer.Durability = .synced,
                      stagingThreads: Int, logger: Logger) async throws {
        guard let last = batch.last?.position else { return }
        do {
            if stagingThreads > 1, projections.count > 1, batch.count >= Self.stagingMinimum {
                do {
                    // Each projection's changes are copied into the transaction as soon as it and
                    // those before it are staged, while the others still stage: the copy overlaps
                    // their work instead of following it. (The writer thread waits meanwhile; a
                    // map that must grow waits for the staging threads' snapshots to end.)
                    let round = try startStaging(batch, last: last, projections: projections, after: after, threads: stagingThreads)
                    do {
                        try await write(durability: durability) { writer in
                            for index in 0..<round.jobs { try writer.commit(try round.wait(for: index), last: last) }
                        }
                    } catch {
                        await round.allDone()
                        throw error
                    }
                    await round.allDone()
                } catch let fallback as StagingFallback {
                    logger.debug("batch applied inside the transaction", metadata: ["reason": "\(fallback.reason)"])
                    try await applyInTransaction(batch, projections: projections, after: after, durability: durability)
                }
            } else {
                try await applyInTransaction(batch, projections: projections, after: after, durability: durability)
            }
        } catch let error as LMDBError {
            guard error.code == .transactionFull, batch.count > 1 else { throw error }
            let half = batch.count / 2
            logger.notice("batch too big for one LMDB transaction; applying it in halves", metadata: ["events": "\(batch.count)"])
            try await apply(Array(batch[..<half]), projections: projections, after: after, durability: durability, stagingThreads: stagingThreads, logger: logger)
            try await apply(Array(batch[half...]), projections: projections, after: batch[half - 1].position, durability: durability, stagingThreads: stagingThreads, logger: logger)
        }
    }

    /// The refusal of a batch read after `after` by a projection whose cursor is behind it: it
    /// would miss the events in between.
    static func gap(_ projection: any Projection, _ path: String, _ cursor: LogPosition, _ after: LogPosition) -> Failure {
        Failure(description: "projection \(projection.name) in \(path) is at \(cursor), behind the batch read after \(after): refusing a gap")
    }

    /// Every projection applied in turn inside the batch's write transaction.
    private func applyInTransaction(_ batch: [RecordedEvent], projections: [any Projection], after: LogPosition?, durability: Writer.Durability) async throws {
        guard let last = batch.last?.position else { return }
        let path = self.path
        try await write(durability: durability) { writer in
            for projection in projections {
                let cursor = try writer.cursor(projection.name) ?? .start
                if let after, cursor < after { throw Self.gap(projection, path, cursor, after) }
                try writer.recordLayout(of: projection)
                guard last > cursor else { continue }
                let first = batch.firstIndex { $0.position > cursor } ?? batch.endIndex
                try projection.apply(batch: batch[first...], to: &writer)
                try writer.setCursor(projection.name, last)
            }
        }
    }

    /// Stages `batch` for each projection on up to `threads` threads of their own (each takes
    /// the next projection when done), every one over its own snapshot. A projection whose
    /// cursor is behind `after` refuses the batch, as the classic path does.
    func stage(_ batch: [RecordedEvent], projections: [any Projection], after: LogPosition?, threads: Int) async throws -> [StagedBatch] {
        guard let last = batch.last?.position else { return [] }
        let round = try startStaging(batch, last: last, projections: projections, after: after, threads: threads)
        await round.allDone()
        return try (0..<round.jobs).map { try round.wait(for: $0) }
    }

    /// Starts staging `batch`, whose last event is at `last` (see
    /// ``stage(_:projections:after:threads:)``), and returns at once.
    private func startStaging(_ batch: [RecordedEvent], last: LogPosition, projections: [any Projection], after: LogPosition?, threads: Int) throws -> StagingRound {
        let handles = try databaseHandles()
        let environment = self.environment
        let path = self.path
        let shared = StagingRound(jobs: projections.count, workers: max(1, min(threads, projections.count)))
        let stageOne = { @Sendable (index: Int) -> Result<StagedBatch, any Error> in
            let projection = projections[index]
            return Result { () throws -> StagedBatch in
                try environment.read { txn in
                    try withUnsafePointer(to: txn) { pointer in
                        let snapshot = LMDBReadModelReader(transaction: pointer, handles: handles)
                        let cursor = try snapshot.withValue(LMDBReadModelStore.cursorsDatabase, Array(projection.name.utf8)) {
                            LMDBReadModelStore.decodePosition($0)
                        }.flatMap { $0 } ?? .start
                        if let after, cursor < after { throw LMDBReadModelStore.gap(projection, path, cursor, after) }
                        guard last > cursor else { return StagedBatch(projection: projection, cursor: cursor, changes: nil) }
                        let first = batch.firstIndex { $0.position > cursor } ?? batch.endIndex
                        let changes = StagedChanges()
                        var writer = StagingWriter(snapshot: snapshot, changes: changes, path: path)
                        try projection.apply(batch: batch[first...], to: &writer)
                        return StagedBatch(projection: projection, cursor: cursor, changes: changes)
                    }
                }
            }
        }
        for _ in 0..<shared.workers {
            let thread = Thread {
                while let index = shared.nextJob() { shared.finish(index, stageOne(index)) }
                shared.workerDone()
            }
            thread.name = "tote-projector-stage"
            thread.start()
        }
        return shared
    }
}

/// The shared state of one staging round: the next projection to take, each one's outcome as
/// it is staged, and how many threads are still working.
private final class StagingRound: Sendable {
    let jobs: Int
    let workers: Int
    private let next = Atomic<Int>(0)
    private let outcomes: Mutex<[Int: Result<StagedBatch, any Error>]> = Mutex([:])
    /// Signalled once per job when its outcome is in (``wait(for:)`` blocks a thread on it).
    private let staged: [DispatchSemaphore]
    /// Threads still working, and who waits for the last one.
    private let working: Mutex<(count: Int, waiter: CheckedContinuation<Void, Never>?)>

    init(jobs: Int, workers: Int) {
        self.jobs = jobs
        self.workers = workers
        self.staged = (0..<jobs).map { _ in DispatchSemaphore(value: 0) }
        self.working = Mutex((workers, nil))
    }

    /// The next projection's index, nil when all are taken.
    func nextJob() -> Int? {
        let index = next.add(1, ordering: .relaxed).oldValue
        return index < jobs ? index : nil
    }

    func finish(_ index: Int, _ outcome: Result<StagedBatch, any Error>) {
        outcomes.withLock { $0[index] = outcome }
        staged[index].signal()
    }

    /// Projection `index`'s staged batch (or its error), blocking the calling thread until it
    /// is staged: call it from the writer's thread or after ``allDone()``, never on the
    /// cooperative pool while staging runs. May be called again for the same index.
    func wait(for index: Int) throws -> StagedBatch {
        staged[index].wait()
        staged[index].signal()
        return try outcomes.withLock { $0[index]! }.get()
    }

    /// A staging thread has nothing left to take.
    func workerDone() {
        let waiter = working.withLock { state -> CheckedContinuation<Void, Never>? in
            state.count -= 1
            guard state.count == 0 else { return nil }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Returns when every staging thread is done (nothing reads the batch or a snapshot after).
    func allDone() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let finished = working.withLock { state -> Bool in
                if state.count == 0 { return true }
                state.waiter = continuation
                return false
            }
            if finished { continuation.resume() }
        }
    }
}

extension LMDBReadModelWriter {
    /// Copies staged changes into this transaction, each database's keys in order (LMDB's puts
    /// are cheapest in order), after checking that nothing moved the projection's cursor since
    /// its snapshot; then records its layout and its cursor `last`.
    mutating func commit(_ staged: StagedBatch, last: LogPosition) throws {
        let name = staged.projection.name
        guard (try cursor(name) ?? .start) == staged.cursor else {
            throw StagingFallback(reason: "the cursor of \(name) moved since its snapshot")
        }
        try recordLayout(of: staged.projection)
        guard let changes = staged.changes else { return }
        for (database, entries) in changes.overlay.databases.sorted(by: { $0.key < $1.key }) {
            guard let handle = handles[database] else { throw LMDBReadModelStore.undeclared(database, path) }
            for key in changes.keysInOrder(database) {
                if let value = entries[ByteKey(key)]! {
                    try transaction.pointee.put(handle, key, value)
                } else {
                    _ = try transaction.pointee.delete(handle, key)
                }
            }
        }
        try setCursor(name, last)
    }
}
