import EventStore
import Foundation
import LMDB
import Logging
import Synchronization

/// How far a projector is behind the event log.
public struct ProjectorLag: Sendable, Hashable, CustomStringConvertible {
    /// The position applied.
    public var position: LogPosition
    /// Events in the log after ``position`` (counted up to a probe limit).
    public var eventsBehind: Int
    /// True when ``eventsBehind`` hit the probe limit: at least that many.
    public var eventsBehindIsLowerBound: Bool
    /// Age of the oldest event not yet applied (0 when caught up).
    public var secondsBehind: Double

    public var description: String {
        "\(eventsBehindIsLowerBound ? "≥" : "")\(eventsBehind) events, \(String(format: "%.3f", secondsBehind)) s behind at \(position)"
    }
}

/// Tails the event log and keeps LMDB read models current: each batch of events is applied by
/// every projection in ONE write transaction that also stores each projection's cursor, so a
/// crash mid-batch leaves the read models exactly as before the batch (effectively-once).
///
/// - Inside the transaction each projection skips events at or before its stored cursor, so a
///   replayed batch, two runners on one environment (a live projector meeting a rebuild
///   after a switch), or a projection added later that starts from zero stay correct.
/// - ``run()`` runs until its task is cancelled: reads available events, applies them, waits on
///   the log (``EventStore/subscribe(from:batchSize:)``) when caught up. Far behind, batches grow
///   up to ``maxBatchSize``, commits skip the fsync (``BatchPlanner``) and the next batch is read
///   while this one is applied; caught up, small batches commit synced at once.
/// - ``watch`` is advanced after every commit: the query service in this process waits on it
///   for consistency tokens.
/// - Given a ``ReadModelDirectory``, the runner writes to its live generation and follows a
///   switch made by a rebuild (checked between batches).
public final class ProjectorRunner: Sendable {
    public let projections: [any Projection]
    public let eventStore: EventStore
    /// The most events per transaction when caught up (live batches are what is available,
    /// up to this).
    public let batchSize: Int
    /// The most events per transaction while far behind: batches grow from ``batchSize`` up
    /// to this while reads come back full (``BatchPlanner``).
    public let maxBatchSize: Int
    /// Whether commits skip the fsync while far behind (``BatchPlanner/deferSync``).
    public let deferSyncWhileBehind: Bool
    /// Whether live batches skip the fsync at commit, flushed right after by a sync alongside
    /// the writer (``BatchPlanner/deferLive``): the fsync leaves the commit → visible path.
    /// Read when ``run()`` or ``catchUp()`` starts.
    public var deferSyncWhenLive: Bool {
        get { deferLiveSetting.load(ordering: .relaxed) }
        set { deferLiveSetting.store(newValue, ordering: .relaxed) }
    }
    private let deferLiveSetting: Atomic<Bool>
    /// Threads that stage a batch of at least ``LMDBReadModelStore/stagingMinimum`` events, each projection on its
    /// own snapshot, before the writer copies their changes into the batch's transaction
    /// (StagedApply.swift). 1 applies every projection inside the transaction, one after
    /// another. Default: the machine's cores.
    public var stagingThreads: Int {
        get { stagingSetting.load(ordering: .relaxed) }
        set { stagingSetting.store(max(1, newValue), ordering: .relaxed) }
    }
    private let stagingSetting = Atomic<Int>(ProcessInfo.processInfo.activeProcessorCount)
    /// Set while a sync alongside the writer runs (one at a time).
    private let syncingAlongside = Atomic<Bool>(false)
    /// The applied position, advanced at each commit.
    public let watch: PositionWatch
    private let target: Target
    private let logger: Logger
    private let lastBatch = Mutex<(count: Int, at: ContinuousClock.Instant?)>((0, nil))

    private enum Target: Sendable {
        case store(LMDBReadModelStore)
        case directory(ReadModelDirectory)
    }

    /// A runner writing to `store`.
    ///
    /// - Parameters:
    ///   - batchSize: the most events per write transaction once caught up.
    ///   - maxBatchSize: the most while far behind (default `batchSize`: no growth).
    ///   - deferSyncWhileBehind: commit full batches without fsync (synced every 16th, when
    ///     caught up, and when stopped); a system crash may then lose those commits, which are
    ///     read again from the log.
    ///   - deferSyncWhenLive: commit live batches without fsync too, and flush them right after
    ///     with a sync alongside the writer (a system crash may lose the last ~fsync-time of
    ///     commits, read again from the log).
    public convenience init(projections: [any Projection], eventStore: EventStore, store: LMDBReadModelStore, batchSize: Int = 1000, maxBatchSize: Int? = nil, deferSyncWhileBehind: Bool = true, deferSyncWhenLive: Bool = false, logger: Logger = Logger(label: "tote.projector")) throws {
        try self.init(projections: projections, eventStore: eventStore, target: .store(store), batchSize: batchSize, maxBatchSize: maxBatchSize, deferSync: deferSyncWhileBehind, deferLive: deferSyncWhenLive, logger: logger)
    }

    /// A runner writing to the live generation of `directory`, following switches.
    public convenience init(projections: [any Projection], eventStore: EventStore, directory: ReadModelDirectory, batchSize: Int = 1000, maxBatchSize: Int? = nil, deferSyncWhileBehind: Bool = true, deferSyncWhenLive: Bool = false, logger: Logger = Logger(label: "tote.projector")) throws {
        try self.init(projections: projections, eventStore: eventStore, target: .directory(directory), batchSize: batchSize, maxBatchSize: maxBatchSize, deferSync: deferSyncWhileBehind, deferLive: deferSyncWhenLive, logger: logger)
    }

    private init(projections: [any Projection], eventStore: EventStore, target: Target, batchSize: Int, maxBatchSize: Int?, deferSync: Bool, deferLive: Bool, logger: Logger) throws {
        precondition(batchSize > 0, "a batch holds at least one event")
        precondition((maxBatchSize ?? batchSize) >= batchSize, "maxBatchSize is at least batchSize")
        precondition(Set(projections.map(\.name)).count == projections.count, "projection names must be unique")
        self.projections = projections
        self.eventStore = eventStore
        self.target = target
        self.batchSize = batchSize
        self.maxBatchSize = maxBatchSize ?? batchSize
        self.deferSyncWhileBehind = deferSync
        self.deferLiveSetting = Atomic(deferLive)
        self.logger = logger
        let store: LMDBReadModelStore
        switch target {
        case .store(let fixed): store = fixed
        case .directory(let directory): store = try directory.current
        }
        // A projection whose stored layout is of another version starts again from the log.
        let cleared = try store.adoptLayouts(projections)
        if !cleared.isEmpty {
            logger.notice("read models of another layout version cleared; they are rebuilt from the log", metadata: ["projections": "\(cleared)", "path": "\(store.path)"])
        }
        self.watch = PositionWatch(try store.position)
    }

    /// The position every projection has applied.
    public var position: LogPosition { watch.position }

    /// Waits until ``position`` ≥ `token`; false after `timeout`.
    public func wait(until token: LogPosition, timeout: Duration) async -> Bool {
        await watch.wait(until: token, timeout: timeout)
    }

    /// A fresh planner with this runner's sizes.
    private func makePlanner() -> BatchPlanner {
        BatchPlanner(baseSize: batchSize, maxSize: maxBatchSize, deferSync: deferSyncWhileBehind, deferLive: deferSyncWhenLive)
    }

    /// The store written now (the directory's live one when following a directory); when it
    /// changed since the last batch, the position restarts from the new store's cursors.
    private func currentStore(_ known: LMDBReadModelStore?) throws -> LMDBReadModelStore {
        let store: LMDBReadModelStore
        switch target {
        case .store(let fixed): store = fixed
        case .directory(let directory): store = try directory.current
        }
        if let known, known !== store {
            let position = try store.position
            logger.info("read models switched", metadata: ["path": "\(store.path)", "position": "\(position)"])
            watch.reset(to: position)
        }
        return store
    }

    /// The next batch being read from the log while the current one is applied.
    private struct ReadAhead {
        let after: LogPosition
        let limit: Int
        let task: Task<[RecordedEvent], any Error>
    }

    /// The events after `after`, up to `limit`: the read-ahead when it was made after that
    /// position (else it is dropped: a switch or another runner moved the position), or a
    /// fresh read. Returns the events and the limit they were read with.
    private func read(after: LogPosition, limit: Int, ahead: inout ReadAhead?) async throws -> (events: [RecordedEvent], limit: Int) {
        let pending = ahead
        ahead = nil
        if let pending, pending.after == after {
            return (try await pending.task.value, pending.limit)
        }
        pending?.task.cancel()
        return (try await eventStore.readAll(after: after, limit: limit), limit)
    }

    /// Starts reading the batch after `batch` when `batch` was full (more is waiting).
    private func readAhead(after batch: [RecordedEvent], limit used: Int, next: Int) -> ReadAhead? {
        guard batch.count >= used, let last = batch.last?.position else { return nil }
        let eventStore = self.eventStore
        return ReadAhead(after: last, limit: next, task: Task { try await eventStore.readAll(after: last, limit: next) })
    }

    // MARK: Running

    /// Applies batches until the task is cancelled (then flushes deferred commits and returns
    /// normally). Far behind, batches grow up to ``maxBatchSize`` and the next one is read
    /// while this one is applied; caught up, each batch is what is available (up to
    /// ``batchSize``), committed with a synced commit as soon as it is read.
    public func run() async throws {
        var store = try currentStore(nil)
        logger.info("projector starting", metadata: ["path": "\(store.path)", "position": "\(watch.position)", "projections": "\(projections.map(\.name))"])
        var planner = makePlanner()
        let deferSyncWhenLive = planner.deferLive
        var ahead: ReadAhead?
        defer { ahead?.task.cancel() }
        do {
            while true {
                try Task.checkCancellation()
                store = try currentStore(store)
                let after = watch.position
                var batch: [RecordedEvent]
                var limit: Int
                do {
                    (batch, limit) = try await read(after: after, limit: planner.limit, ahead: &ahead)
                    if batch.isEmpty {
                        // Caught up: make deferred commits durable before waiting (or, with
                        // deferred live commits, alongside the writer while waiting).
                        if planner.caughtUp() || store.unsyncedCommits > 0 {
                            if deferSyncWhenLive { syncAlongside(store) } else { try await store.sync() }
                        }
                        batch = try await nextLiveBatch(after: after)
                        limit = batchSize
                    }
                } catch let error as EventStoreError where error.code == .unavailable {
                    // The database is restarting: the cursor is safe in LMDB, try again shortly.
                    logger.warning("event store unavailable; retrying", metadata: ["error": "\(error)"])
                    try await Task.sleep(for: .milliseconds(500))
                    continue
                }
                let before = store
                store = try currentStore(store)
                if store !== before {  // switched while waiting: read from the new cursors
                    if before.unsyncedCommits > 0 { try await before.sync() }
                    continue
                }
                let durability = planner.read(batch.count, limit: limit)
                ahead = readAhead(after: batch, limit: limit, next: planner.limit)
                try await apply(batch, to: store, after: after, durability: durability)
            }
        } catch is CancellationError {
            try? await store.sync()
            logger.info("projector stopped", metadata: ["position": "\(watch.position)"])
        }
    }

    /// Starts a sync of `store` alongside the writer unless one is running.
    private func syncAlongside(_ store: LMDBReadModelStore) {
        guard syncingAlongside.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else { return }
        Task { [self] in
            // Until nothing is owed: commits made during a flush are flushed by the next round.
            var failed = false
            repeat {
                do { try await store.syncAlongside() } catch {
                    logger.warning("read-model sync failed", metadata: ["error": "\(error)"])
                    failed = true
                }
            } while !failed && store.unsyncedCommits > 0
            syncingAlongside.store(false, ordering: .releasing)
            // A commit that came between the last check and the flag: flush it too.
            if !failed, store.unsyncedCommits > 0 { syncAlongside(store) }
        }
    }

    /// Waits on the subscription (woken by appends) for the next event after `after` and takes
    /// what follows it, up to ``batchSize`` events.
    private func nextLiveBatch(after: LogPosition) async throws -> [RecordedEvent] {
        var iterator = eventStore.subscribe(from: after, batchSize: batchSize).makeAsyncIterator()
        guard let first = try await iterator.next() else { throw CancellationError() }
        guard batchSize > 1 else { return [first] }
        return [first] + (try await eventStore.readAll(after: first.position, limit: batchSize - 1))
    }

    /// Applies everything available now, batch by batch; returns the number of events read.
    /// Deferred commits are flushed before it returns.
    ///
    /// While a batch is applied (on the writer thread), the next one is already being read from
    /// the log: reading and applying overlap. The read-ahead is used only if the position is
    /// still the one it was read after (a switch or another runner may have moved it);
    /// otherwise it is dropped and read again.
    @discardableResult
    public func catchUp() async throws -> Int {
        var total = 0
        var planner = makePlanner()
        var ahead: ReadAhead?
        defer { ahead?.task.cancel() }
        var store = try currentStore(nil)
        while true {
            let next = try currentStore(store)
            if next !== store, store.unsyncedCommits > 0 { try await store.sync() }
            store = next
            let after = watch.position
            let (batch, limit) = try await read(after: after, limit: planner.limit, ahead: &ahead)
            guard !batch.isEmpty else {
                if planner.caughtUp() || store.unsyncedCommits > 0 { try await store.sync() }
                return total
            }
            let durability = planner.read(batch.count, limit: limit)
            ahead = readAhead(after: batch, limit: limit, next: planner.limit)
            do {
                try await apply(batch, to: store, after: after, durability: durability)
            } catch {
                // What committed before the failure stays; make it durable as a stop would.
                if store.unsyncedCommits > 0 { try? await store.sync() }
                throw error
            }
            total += batch.count
        }
    }

    /// One batch, one write transaction: each projection applies the events after its own
    /// cursor, then the cursors move to the batch's last position. A batch too big for one
    /// LMDB transaction (`MDB_TXN_FULL`) is applied in two halves.
    ///
    /// - Parameters:
    ///   - after: the position the batch was read after, when known; a projection whose cursor
    ///     is behind it would miss events, so the batch is refused (nothing written).
    ///   - durability: whether the commit waits for the disk.
    public func apply(_ batch: [RecordedEvent], to store: LMDBReadModelStore, after: LogPosition? = nil, durability: Writer.Durability = .synced) async throws {
        guard let last = batch.last?.position else { return }
        try await store.apply(batch, projections: projections, after: after, durability: durability, stagingThreads: stagingThreads, logger: logger)
        // Another runner may have been further: report what the store holds.
        watch.advance(to: max(last, try store.position))
        lastBatch.withLock { $0 = (batch.count, ContinuousClock.now) }
        logger.trace("batch applied", metadata: ["events": "\(batch.count)", "position": "\(last)", "durability": "\(durability)"])
    }

    // MARK: Lag

    /// How far the applied position is behind the log head: counts up to `probe` unapplied
    /// events and the age of the oldest one.
    public func lag(probe: Int = 10_000) async throws -> ProjectorLag {
        let position = watch.position
        let pending = try await eventStore.readAll(after: position, limit: probe)
        let seconds: Double
        if let oldest = pending.first {
            seconds = max(0, Date().timeIntervalSince1970 - Double(oldest.recordedAtMicros) / 1_000_000)
        } else {
            seconds = 0
        }
        return ProjectorLag(position: position, eventsBehind: pending.count, eventsBehindIsLowerBound: pending.count == probe, secondsBehind: seconds)
    }

    // MARK: Rebuild

    /// Builds a fresh generation of `directory` from position zero beside the live one and,
    /// once it has caught up with the log and with the live generation, switches the directory
    /// to it atomically (queries never fail; see ``ReadModelDirectory``). Returns the new
    /// generation's name; the live projector, following the directory, continues on it.
    ///
    /// - Parameter configuration: for the fresh environment (e.g. `noSync`, synced before the
    ///   switch); by default the directory's.
    @discardableResult
    public static func rebuild(projections: [any Projection], eventStore: EventStore, directory: ReadModelDirectory, batchSize: Int = 1000, maxBatchSize: Int? = nil, configuration: Environment.Configuration? = nil, logger: Logger = Logger(label: "tote.projector.rebuild")) async throws -> String {
        let (name, fresh) = try directory.makeGeneration(configuration: configuration)
        logger.info("rebuild starting", metadata: ["generation": "\(name)"])
        let runner = try ProjectorRunner(projections: projections, eventStore: eventStore, store: fresh, batchSize: batchSize, maxBatchSize: maxBatchSize, logger: logger)
        while true {
            try Task.checkCancellation()
            try await runner.catchUp()
            let live = try directory.refresh().position
            if runner.position >= live { break }
            // The live projector saw events this read did not yet: read again shortly.
            try await Task.sleep(for: .milliseconds(5))
        }
        try fresh.environment.sync()
        try directory.switchTo(name, store: fresh)
        logger.info("rebuild switched", metadata: ["generation": "\(name)", "position": "\(runner.position)"])
        return name
    }
}
