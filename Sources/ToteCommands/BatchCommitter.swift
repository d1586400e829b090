import EventStore
import Metrics
import Synchronization

/// Appends the commands of hot streams in batches.
///
/// A command that serialized its streams in this process (``UnitOfWork/serialize(_:)``) does not
/// append on its own. It hands its append to the committer, which records the states it decided
/// as *pending*, and releases its stream locks at once. The next command on those streams decides
/// on the pending states (it depends on them) while the first is still committing. The
/// committer sends everything queued in one `tote_append` call — one transaction, one WAL flush —
/// so a flash-sale SKU's queue is written N commands per round trip instead of one.
///
/// Correctness does not rest on the committer: every part still carries the expected version it
/// was decided on, so the database refuses anything decided on a state that did not commit.
/// A command whose dependency failed fails too (the runner decides it again), also when a
/// coincidence would make its expected version hold.
final class BatchCommitter: Sendable {
    /// One queued append: resolved once, with the command's result or why it failed.
    final class Ticket: Sendable {
        enum Status { case waiting, committed, failed }
        private struct State {
            var status = Status.waiting
            var result: Result<AppendResult, any Error>?
            var waiters: [CheckedContinuation<AppendResult, any Error>] = []
        }
        private let state = Mutex(State())

        var status: Status { state.withLock { $0.status } }

        func resolve(_ result: Result<AppendResult, any Error>) {
            let waiters = state.withLock { state -> [CheckedContinuation<AppendResult, any Error>] in
                guard state.result == nil else { return [] }
                state.result = result
                if case .success = result { state.status = .committed } else { state.status = .failed }
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume(with: result) }
        }

        /// The command's result once its batch has been appended (or failed).
        func value() async throws -> AppendResult {
            try await withCheckedThrowingContinuation { continuation in
                let ready = state.withLock { state -> Result<AppendResult, any Error>? in
                    if let result = state.result { return result }
                    state.waiters.append(continuation)
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
        }
    }

    /// Why a queued append was not written; the runner decides the command again (or, for
    /// `alreadyProcessed`, asks for the stored result).
    enum Failure: Error {
        /// Another writer moved a stream (or a command this one decided on failed).
        case conflict(EventStoreError?)
        /// The command id was processed before.
        case alreadyProcessed
    }

    /// A state decided but not yet committed.
    struct Pending {
        var version: Int64
        var state: any Sendable
        var ticket: Ticket
    }

    private struct Submission {
        var append: CommandAppend
        var states: [String: (version: Int64, state: any Sendable)]
        var dependencies: [Ticket]
        var ticket: Ticket
    }

    private struct State {
        var queue: [Submission] = []
        var pending: [String: Pending] = [:]
        var draining = false
    }

    /// Commands per `tote_append` call at most.
    static let maxBatch = 256
    /// How many commands each batch carried.
    static let batchSizes = Recorder(label: "tote_command_batch_size")

    private let store: EventStore
    private let cache: StateCache
    private let state = Mutex(State())

    init(store: EventStore, cache: StateCache) {
        self.store = store
        self.cache = cache
    }

    /// The pending state of `stream`, for a command holding its in-process lock.
    func pending(_ stream: String) -> Pending? {
        state.withLock { $0.pending[stream] }
    }

    /// Queues `append`, whose streams will be at `states` once it commits, decided on the
    /// pending states of `dependencies`. Call it while holding the streams' locks; release them
    /// after it returns, then await the ticket.
    func enqueue(_ append: CommandAppend, states: [String: (version: Int64, state: any Sendable)], dependencies: [Ticket]) -> Ticket {
        let ticket = Ticket()
        let start = state.withLock { state -> Bool in
            state.queue.append(Submission(append: append, states: states, dependencies: dependencies, ticket: ticket))
            for (stream, decided) in states {
                state.pending[stream] = Pending(version: decided.version, state: decided.state, ticket: ticket)
            }
            guard !state.draining else { return false }
            state.draining = true
            return true
        }
        if start { Task { await self.drain() } }
        return ticket
    }

    /// Appends what is queued, batch after batch, until the queue is empty.
    private func drain() async {
        while true {
            let batch = state.withLock { state -> [Submission] in
                var batch: [Submission] = []
                var rest: [Submission] = []
                var ids = Set<String>()
                for submission in state.queue {
                    // A repeat of a queued command id waits for the next batch (where it finds
                    // the first one processed).
                    let id = submission.append.commandID ?? ""
                    if batch.count < Self.maxBatch, id.isEmpty || ids.insert(id).inserted {
                        batch.append(submission)
                    } else {
                        rest.append(submission)
                    }
                }
                state.queue = rest
                if batch.isEmpty { state.draining = false }
                return batch
            }
            if batch.isEmpty { return }
            Self.batchSizes.record(batch.count)
            await append(batch)
        }
    }

    /// Appends one batch; a submission the database refuses is failed and the others are sent
    /// again without it.
    private func append(_ batch: [Submission]) async {
        var live = batch
        while true {
            live = live.filter { submission in
                guard submission.dependencies.contains(where: { $0.status == .failed }) else { return true }
                fail(submission, Failure.conflict(nil))
                return false
            }
            if live.isEmpty { return }
            do {
                let results = try await store.append(commands: live.map(\.append))
                for (submission, result) in zip(live, results) { succeed(submission, result) }
                return
            } catch let error as EventStoreError where error.code == .wrongExpectedVersion && error.stream != nil {
                // The earliest part on the stream is the one whose expectation failed; the
                // later ones on it were decided on top of it and fail with it.
                cache.evict(error.stream!)
                guard let index = live.firstIndex(where: { $0.append.appends.contains { $0.stream == error.stream } }) else {
                    live.forEach { fail($0, error) }
                    return
                }
                fail(live.remove(at: index), Failure.conflict(error))
            } catch let error as EventStoreError where error.code == .alreadyProcessed {
                guard let index = live.firstIndex(where: { $0.append.commandID == error.commandID }) else {
                    live.forEach { fail($0, error) }
                    return
                }
                fail(live.remove(at: index), Failure.alreadyProcessed)
            } catch {
                live.forEach { fail($0, error) }
                return
            }
        }
    }

    private func succeed(_ submission: Submission, _ result: AppendResult) {
        // Committed first, then no longer pending: a lock holder looking in between still sees
        // the (identical) pending state.
        for (stream, decided) in submission.states {
            cache.put(stream, version: result.streamVersions[stream] ?? decided.version, state: decided.state)
        }
        state.withLock { state in
            for stream in submission.states.keys where state.pending[stream]?.ticket === submission.ticket {
                state.pending[stream] = nil
            }
        }
        submission.ticket.resolve(.success(result))
    }

    private func fail(_ submission: Submission, _ error: any Error) {
        // Whatever is pending on these streams was decided on top of this submission.
        state.withLock { state in
            for stream in submission.states.keys { state.pending[stream] = nil }
        }
        submission.ticket.resolve(.failure(error))
    }
}
