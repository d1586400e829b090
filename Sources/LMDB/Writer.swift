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

    /// Runs `body` in a write transaction on the writer thread: committed when it returns,
    /// aborted when it throws; rerun from scratch if the map had to grow (see
    /// ``Environment/write(_:)``).
    ///
    /// - Throws: what `body` throws, ``LMDBError``, or `.cancelled` once the writer is stopped.
    public func write<R: Sendable>(_ body: @escaping @Sendable (borrowing WriteTransaction) throws -> R) async throws -> R {
        let environment = self.environment
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<R, any Error>) in
            let accepted = shared.state.withLock { state -> Bool in
                guard !state.stopped else { return false }
                state.jobs.append {
                    continuation.resume(with: Result { try environment.write(body) })
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
