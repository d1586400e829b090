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
/// - ``run()`` runs until its task is cancelled: reads up to ``batchSize`` available events,
///   applies them, waits on the log (``EventStore/subscribe(from:batchSize:)``) when caught up.
/// - ``watch`` is advanced after every commit: the query service in this process waits on it
///   for consistency tokens.
/// - Given a ``ReadModelDirectory``, the runner writes to its live generation and follows a
///   switch made by a rebuild (checked between batches).
public final class ProjectorRunner: Sendable {
    public let projections: [any Projection]
    public let eventStore: EventStore
    public let batchSize: Int
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
    public convenience init(projections: [any Projection], eventStore: EventStore, store: LMDBReadModelStore, batchSize: Int = 1000, logger: Logger = Logger(label: "tote.projector")) throws {
        try self.init(projections: projections, eventStore: eventStore, target: .store(store), batchSize: batchSize, logger: logger)
    }

    /// A runner writing to the live generation of `directory`, following switches.
    public convenience init(projections: [any Projection], eventStore: EventStore, directory: ReadModelDirectory, batchSize: Int = 1000, logger: Logger = Logger(label: "tote.projector")) throws {
        try self.init(projections: projections, eventStore: eventStore, target: .directory(directory), batchSize: batchSize, logger: logger)
    }

    private init(projections: [any Projection], eventStore: EventStore, target: Target, batchSize: Int, logger: Logger) throws {
        precondition(batchSize > 0, "a batch holds at least one event")
        precondition(Set(projections.map(\.name)).count == projections.count, "projection names must be unique")
        self.projections = projections
        self.eventStore = eventStore
        self.target = target
        self.batchSize = batchSize
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

    // MARK: Running

    /// Applies batches until the task is cancelled (then returns normally).
    public func run() async throws {
        var store = try currentStore(nil)
        logger.info("projector starting", metadata: ["path": "\(store.path)", "position": "\(watch.position)", "projections": "\(projections.map(\.name))"])
        do {
            while true {
                try Task.checkCancellation()
                store = try currentStore(store)
                let batch: [RecordedEvent]
                let after = watch.position
                do {
                    batch = try await nextBatch()
                } catch let error as EventStoreError where error.code == .unavailable {
                    // The database is restarting: the cursor is safe in LMDB, try again shortly.
                    logger.warning("event store unavailable; retrying", metadata: ["error": "\(error)"])
                    try await Task.sleep(for: .milliseconds(500))
                    continue
                }
                let before = store
                store = try currentStore(store)
                if store !== before { continue }  // switched while waiting: read from the new cursors
                try await apply(batch, to: store, after: after)
            }
        } catch is CancellationError {
            logger.info("projector stopped", metadata: ["position": "\(watch.position)"])
        }
    }

    /// Up to ``batchSize`` events after the position; when none is available, waits on the
    /// subscription (woken by appends) for the next one and takes what follows it.
    private func nextBatch() async throws -> [RecordedEvent] {
        let batch = try await eventStore.readAll(after: watch.position, limit: batchSize)
        if !batch.isEmpty { return batch }
        var iterator = eventStore.subscribe(from: watch.position, batchSize: batchSize).makeAsyncIterator()
        guard let first = try await iterator.next() else { throw CancellationError() }
        guard batchSize > 1 else { return [first] }
        return [first] + (try await eventStore.readAll(after: first.position, limit: batchSize - 1))
    }

    /// Applies everything available now, batch by batch; returns the number of events read.
    ///
    /// While a batch is applied (on the writer thread), the next one is already being read from
    /// the log: reading and applying overlap. The prefetched batch is used only if the position
    /// is still the one it was read after (a switch or another runner may have moved it);
    /// otherwise it is dropped and read again.
    @discardableResult
    public func catchUp() async throws -> Int {
        var total = 0
        let eventStore = self.eventStore, batchSize = self.batchSize
        var prefetched: (after: LogPosition, task: Task<[RecordedEvent], any Error>)?
        defer { prefetched?.task.cancel() }
        while true {
            let store = try currentStore(nil)
            let after = watch.position
            let batch: [RecordedEvent]
            if let p = prefetched, p.after == after {
                batch = try await p.task.value
            } else {
                prefetched?.task.cancel()
                batch = try await eventStore.readAll(after: after, limit: batchSize)
            }
            prefetched = nil
            guard let last = batch.last?.position else { return total }
            if batch.count == batchSize {
                prefetched = (last, Task { try await eventStore.readAll(after: last, limit: batchSize) })
            }
            try await apply(batch, to: store, after: after)
            total += batch.count
        }
    }

    /// One batch, one write transaction: each projection applies the events after its own
    /// cursor, then the cursors move to the batch's last position.
    ///
    /// - Parameter after: the position the batch was read after, when known; a projection whose
    ///   cursor is behind it would miss events, so the batch is refused (nothing written).
    public func apply(_ batch: [RecordedEvent], to store: LMDBReadModelStore, after: LogPosition? = nil) async throws {
        guard let last = batch.last?.position else { return }
        let projections = self.projections
        let path = store.path
        try await store.write { writer in
            for projection in projections {
                let cursor = try writer.cursor(projection.name) ?? .start
                if let after, cursor < after {
                    throw LMDBReadModelStore.Failure(description: "projection \(projection.name) in \(path) is at \(cursor), behind the batch read after \(after): refusing a gap")
                }
                try writer.recordLayout(of: projection)
                guard last > cursor else { continue }
                let first = batch.firstIndex { $0.position > cursor } ?? batch.endIndex
                try projection.apply(batch: batch[first...], to: &writer)
                try writer.setCursor(projection.name, last)
            }
        }
        // Another runner may have been further: report what the store holds.
        watch.advance(to: max(last, try store.position))
        lastBatch.withLock { $0 = (batch.count, ContinuousClock.now) }
        logger.trace("batch applied", metadata: ["events": "\(batch.count)", "position": "\(last)"])
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
    public static func rebuild(projections: [any Projection], eventStore: EventStore, directory: ReadModelDirectory, batchSize: Int = 1000, configuration: Environment.Configuration? = nil, logger: Logger = Logger(label: "tote.projector.rebuild")) async throws -> String {
        let (name, fresh) = try directory.makeGeneration(configuration: configuration)
        logger.info("rebuild starting", metadata: ["generation": "\(name)"])
        let runner = try ProjectorRunner(projections: projections, eventStore: eventStore, store: fresh, batchSize: batchSize, logger: logger)
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
