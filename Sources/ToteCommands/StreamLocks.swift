import Synchronization

/// In-process, first-come-first-served locks on stream names, so that commands on one hot stream
/// inside a node wait their turn instead of racing each other into optimistic-concurrency
/// conflicts and retries. Several streams are always taken in sorted order (no deadlock).
/// Correctness never depends on them: expected versions still guard every append.
final class StreamLocks: Sendable {
    private struct Entry {
        var waiters: [CheckedContinuation<Void, any Error>] = []
        var waiterIDs: [Int] = []
    }
    private struct State {
        /// Held streams, with the callers queued behind the holder.
        var held: [String: Entry] = [:]
        var nextID = 0
    }
    private let state = Mutex(State())

    /// Takes every stream in `sorted` (which must be sorted and unique), waiting for each in turn.
    /// If the task is cancelled while waiting, the streams already taken are given back.
    func lock(_ sorted: [String]) async throws {
        var taken: [String] = []
        do {
            for stream in sorted {
                try await lock(stream)
                taken.append(stream)
            }
        } catch {
            unlock(taken)
            throw error
        }
    }

    /// Releases the streams, handing each to its next waiter.
    func unlock(_ streams: [String]) {
        for stream in streams {
            let next = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                guard var entry = state.held[stream] else { return nil }
                if entry.waiters.isEmpty {
                    state.held[stream] = nil
                    return nil
                }
                let waiter = entry.waiters.removeFirst()
                entry.waiterIDs.removeFirst()
                state.held[stream] = entry
                return waiter
            }
            next?.resume()
        }
    }

    /// Streams currently held (for tests and metrics).
    var heldCount: Int { state.withLock { $0.held.count } }

    private func lock(_ stream: String) async throws {
        let id = state.withLock { state -> Int? in
            if state.held[stream] == nil {
                state.held[stream] = Entry()
                return nil
            }
            state.nextID += 1
            return state.nextID
        }
        guard let id else { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                enum Outcome { case cancelled, acquired, queued }
                let outcome = state.withLock { state -> Outcome in
                    if Task.isCancelled { return .cancelled }
                    if state.held[stream] == nil {
                        // Released since the first look: take it.
                        state.held[stream] = Entry()
                        return .acquired
                    }
                    state.held[stream]!.waiters.append(continuation)
                    state.held[stream]!.waiterIDs.append(id)
                    return .queued
                }
                switch outcome {
                case .cancelled: continuation.resume(throwing: CancellationError())
                case .acquired: continuation.resume()
                case .queued: break  // resumed by unlock, or by the cancellation handler
                }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                guard var entry = state.held[stream], let index = entry.waiterIDs.firstIndex(of: id) else { return nil }
                entry.waiterIDs.remove(at: index)
                let waiter = entry.waiters.remove(at: index)
                state.held[stream] = entry
                return waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }
}
