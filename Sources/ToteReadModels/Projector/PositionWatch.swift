import EventStore
import Synchronization

/// A log position that only moves forward, and a way to wait, bounded, until it passes a
/// consistency token: the projector advances it after each committed batch, queries wait on it.
public final class PositionWatch: Sendable {
    private struct Waiter {
        let token: LogPosition
        let continuation: CheckedContinuation<Bool, Never>
        /// Ends the wait at the timeout; cancelled when the wait ends earlier.
        var timer: Task<Void, Never>?
    }

    private struct State {
        var position: LogPosition
        var nextID = 0
        var waiters: [Int: Waiter] = [:]
    }

    private let state: Mutex<State>

    public init(_ position: LogPosition = .start) {
        state = Mutex(State(position: position))
    }

    /// The position reached.
    public var position: LogPosition { state.withLock { $0.position } }

    /// Moves the position forward (never back) and wakes the waiters it satisfies.
    public func advance(to position: LogPosition) {
        let ready = state.withLock { state -> [Waiter] in
            guard position > state.position else { return [] }
            state.position = position
            let satisfied = state.waiters.filter { $0.value.token <= position }
            for id in satisfied.keys { state.waiters[id] = nil }
            return Array(satisfied.values)
        }
        for waiter in ready {
            waiter.timer?.cancel()
            waiter.continuation.resume(returning: true)
        }
    }

    /// Replaces the position, also backwards (a switch to another environment).
    public func reset(to position: LogPosition) {
        state.withLock { $0.position = position }
        advance(to: position)
    }

    /// Returns true once the position is ≥ `token`, false if `timeout` passes first or the
    /// task is cancelled.
    public func wait(until token: LogPosition, timeout: Duration) async -> Bool {
        if position >= token { return true }
        let id = state.withLock { state -> Int in
            state.nextID += 1
            return state.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let answer = state.withLock { state -> Bool? in
                    if state.position >= token { return true }
                    if Task.isCancelled { return false }
                    state.waiters[id] = Waiter(token: token, continuation: continuation)
                    return nil
                }
                if let answer {
                    continuation.resume(returning: answer)
                    return
                }
                let timer = Task { [self] in
                    guard (try? await Task.sleep(for: timeout)) != nil else { return }
                    self.give(up: id)
                }
                let ended = state.withLock { state -> Bool in
                    guard state.waiters[id] != nil else { return true }
                    state.waiters[id]!.timer = timer
                    return false
                }
                if ended { timer.cancel() }
            }
        } onCancel: {
            self.give(up: id)
        }
    }

    /// Resumes waiter `id` with false if it is still waiting.
    private func give(up id: Int) {
        let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
        waiter?.timer?.cancel()
        waiter?.continuation.resume(returning: false)
    }
}

extension ReadModelSource {
    /// Polls ``ReadModelSource/position`` until it is ≥ `token` (true) or `timeout` passes
    /// (false): for a query process whose projector runs elsewhere. In the projector's own
    /// process, wait on its ``PositionWatch`` instead (woken at commit, no polling).
    public func waitForPosition(_ token: LogPosition, timeout: Duration, pollInterval: Duration = .milliseconds(2)) async throws -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while true {
            if try position >= token { return true }
            if clock.now >= deadline { return false }
            try await Task.sleep(for: min(pollInterval, deadline - clock.now))
        }
    }
}
