import Dispatch
import Foundation
import Synchronization

/// The one writer of an ``Environment``: a dedicated thread on which every write transaction
/// runs, one after another, with an async API for everyone else.
///
/// LMDB allows one write transaction at a time and ties it to the thread that began it;
/// running them all on one thread keeps async callers off LMDB's writer mutex and keeps each
/// transaction begin, body and commit on the same thread.
public final class Writer: Sendable {
    /// The environment written.
    public let environment: Environment

    private struct State {
        var jobs: [@Sendable () -> Void] = []
        var stopped = false
    }

    /// What the writer thread shares with callers (a box, so that the thread does not retain
    /// the writer and `deinit` can stop it).
    private final class Shared: Sendable {
        let state = Mutex(State())
        /// Counts queued jobs (and the final wake-up on shutdown) for the writer thread.
        let wakeUp = DispatchSemaphore(value: 0)
        /// Signalled by the thread when it has drained its queue after shutdown.
        let finished = DispatchSemaphore(value: 0)
        /// Deferred commits not yet flushed (see ``Writer/unsyncedCommits``).
        let unsynced = Atomic<Int>(0)
    }

    private let shared = Shared()
    private var wakeUp: DispatchSemaphore { shared.wakeUp }
    private var finished: DispatchSemaphore { shared.finished }

    /// Starts the writer thread for `environment`.
    public init(environment: Environment, name: String = "tote-lmdb-writer") {
        self.environment = environment
        let shared = self.shared
        let thread = Thread {
            let wakeUp = shared.wakeUp, finished = shared.finished
            while true {
                wakeUp.wait()
                let next = shared.state.withLock { state -> (@Sendable () -> Void)? in
                    state.jobs.isEmpty ? nil : state.jobs.removeFirst()
                }
                guard let next else {
                    if shared.state.withLock({ $0.stopped && $0.jobs.isEmpty }) { break }
                    continue
                }
                next()
            }
            finished.signal()
        }
        thread.name = name
        thread.start()
    }

    deinit {
        stop()
    }

    /// Whether a commit waits for the disk.
    public enum Durability: Sendable, Hashable {
        /// The commit returns once its data is on disk (as the environment is configured:
        /// two fsyncs, or one with ``Environment/Configuration/noMetaSync``).
        case synced
        /// The commit skips the fsync (`MDB_NOSYNC` for this transaction only): the pages reach
        /// the disk with the next synced commit, ``sync()``, or the kernel's writeback. A process
        /// crash loses nothing; a system crash may lose these commits (and, unless the file
        /// system keeps write order, damage the file). For work that can be redone, such as
        /// read models whose cursor commits with their data.
        case deferred
    }

    /// Commits made with ``Durability/deferred`` since the last synced commit or ``sync()``.
    public var unsyncedCommits: Int { shared.unsynced.load(ordering: .relaxed) }

    /// Runs `body` in a write transaction on the writer thread: committed when it returns,
    /// aborted when it throws; rerun from scratch if the map had to grow (see
    /// ``Environment/write(_:)``). With `durability` ``Durability/deferred`` the commit does not
    /// wait for the disk.
    ///
    /// - Throws: what `body` throws, ``LMDBError``, or `.cancelled` once the writer is stopped.
    public func write<R: Sendable>(durability: Durability = .synced, _ body: @escaping @Sendable (borrowing WriteTransaction) throws -> R) async throws -> R {
        let environment = self.environment, shared = self.shared
        // Deferring changes nothing when the environment never syncs at commit anyway.
        let deferring = durability == .deferred && !environment.configuration.noSync
        return try await enqueue { () throws -> R in
            guard deferring else {
                let result = try environment.write(body)
                if !environment.configuration.noSync { shared.unsynced.store(0, ordering: .relaxed) }
                return result
            }
            try environment.setNoSync(true)
            defer { try? environment.setNoSync(false) }
            let result = try environment.write(body)
            shared.unsynced.add(1, ordering: .relaxed)
            return result
        }
    }

    /// Flushes every commit so far to disk (`mdb_env_sync`), on the writer thread (between
    /// transactions, off the caller's thread).
    public func sync() async throws {
        let environment = self.environment, shared = self.shared
        try await enqueue { () throws -> Void in
            try environment.sync(force: true)
            shared.unsynced.store(0, ordering: .relaxed)
        }
    }

    /// Flushes every commit so far to disk from a thread of its own, while the writer goes on
    /// committing (``sync()`` waits behind queued writes and holds up the ones after it). For
    /// commits that skipped the fsync: LMDB's sync only flushes the file, it takes no lock.
    public func syncAlongside() async throws {
        let environment = self.environment, shared = self.shared
        let owed = shared.unsynced.load(ordering: .relaxed)
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try environment.sync(force: true) })
            }
        }
        // Commits made during the flush may not be on disk yet: only those counted before it are settled.
        _ = shared.unsynced.wrappingSubtract(min(owed, shared.unsynced.load(ordering: .relaxed)), ordering: .relaxed)
    }

    /// Runs `job` on the writer thread and returns its result.
    private func enqueue<R: Sendable>(_ job: @escaping @Sendable () throws -> R) async throws -> R {
        let environment = self.environment
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<R, any Error>) in
            let accepted = shared.state.withLock { state -> Bool in
                guard !state.stopped else { return false }
                state.jobs.append {
                    continuation.resume(with: Result { try job() })
                }
                return true
            }
            if accepted {
                wakeUp.signal()
            } else {
                continuation.resume(throwing: LMDBError(code: .cancelled, operation: "write on stopped writer of \(environment.path)"))
            }
        }
    }

    /// Stops accepting writes; the ones queued still run. Returns at once.
    public func stop() {
        let first = shared.state.withLock { state -> Bool in
            defer { state.stopped = true }
            return !state.stopped
        }
        if first { wakeUp.signal() }
    }

    /// Stops accepting writes and waits until the queued ones have run.
    public func shutdown() async {
        stop()
        let finished = self.finished
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                finished.wait()
                finished.signal()  // later callers of shutdown() return too
                continuation.resume()
            }
        }
    }
}
