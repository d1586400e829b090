import Foundation
import NIOPosix
import Postgres
import Synchronization

/// The events of the log from a position on, forever: see ``EventStore/subscribe(from:batchSize:)``.
public struct EventSubscription: AsyncSequence, Sendable {
    public typealias Element = RecordedEvent
    let store: EventStore
    let position: LogPosition
    let batchSize: Int

    /// Reads a batch when its buffer is empty; waits for an append (or the poll) when caught up.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let store: EventStore
        var position: LogPosition
        let batchSize: Int
        var buffer: [RecordedEvent] = []
        var index = 0

        public mutating func next() async throws -> RecordedEvent? {
            while index == buffer.count {
                try Task.checkCancellation()
                let seen = store.notifier.generation
                do {
                    buffer = try await store.readAll(after: position, limit: batchSize)
                    index = 0
                } catch let error as EventStoreError where error.code == .unavailable {
                    buffer = []
                    index = 0
                    try await Task.sleep(for: .milliseconds(200))  // the database is restarting: try again
                    continue
                }
                if buffer.isEmpty { try await store.notifier.waitForAppend(after: seen) }
            }
            defer { index += 1 }
            position = buffer[index].position
            return buffer[index]
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(store: store, position: position, batchSize: batchSize)
    }
}

/// Announces this process's appends and wakes waiting subscriptions.
///
/// - Appends made here wake local subscriptions at once, in memory, and schedule one NOTIFY
///   for other processes, sent after commit from a connection of its own with asynchronous
///   commit; appends made while one is pending share it.
/// - A dedicated connection LISTENs for other processes' NOTIFYs.
/// - Waiters are also woken every poll interval, so a lost notification only delays readers.
final class AppendNotifier: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var waiters: [(UInt64, CheckedContinuation<Void, Never>)] = []
        var started = false
        var stopped = false
        var senderStarted = false
        var notifyPending = false
    }

    private let connectionString: String
    private let pollMillis: Int32
    private let state = Mutex(State())
    private let thread = NIOThreadPool(numberOfThreads: 1)
    private let sender = NIOThreadPool(numberOfThreads: 1)
    /// The sender's connection; touched only on the sender's one thread.
    private let senderConnection = Mutex<PostgresConnection?>(nil)

    init(connectionString: String, pollInterval: Duration) {
        self.connectionString = connectionString
        let (seconds, attoseconds) = pollInterval.components
        self.pollMillis = Int32(max(10, seconds * 1000 + attoseconds / 1_000_000_000_000_000))
    }

    /// Increases whenever an append was signalled (or a poll interval passed).
    var generation: UInt64 { state.withLock { $0.generation } }

    /// Returns once the generation has moved past `seen`.
    func waitForAppend(after seen: UInt64) async throws {
        startIfNeeded()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if state.generation != seen || state.stopped { return true }
                state.waiters.append((seen, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }

    func stop() async {
        let (waiters, started, senderStarted) = state.withLock { state in
            state.stopped = true
            defer { state.waiters.removeAll() }
            return (state.waiters, state.started, state.senderStarted)
        }
        for (_, waiter) in waiters { waiter.resume() }
        if started { try? await thread.shutdownGracefully() }
        if senderStarted { try? await sender.shutdownGracefully() }
        senderConnection.withLock { $0 = nil }
    }

    /// An append committed in this process: wake local readers now, tell other processes soon.
    func appended() {
        bump()
        let submit = state.withLock { state -> Bool in
            guard !state.stopped, !state.notifyPending else { return false }
            state.notifyPending = true
            if !state.senderStarted {
                state.senderStarted = true
                sender.start()
            }
            return true
        }
        guard submit else { return }
        sender.submit { [self] _ in sendNotify() }
    }

    /// Runs on the sender's thread: one NOTIFY for every append since the last one.
    private func sendNotify() {
        state.withLock { $0.notifyPending = false }
        senderConnection.withLock { connection in
            do {
                if connection == nil {
                    let fresh = try PostgresConnection.connect(connectionString, timeoutSeconds: 2)
                    try fresh.executeScript("SET synchronous_commit = off")
                    connection = fresh
                }
                _ = try connection!.execute("SELECT pg_notify($1, '')", [.text(EventStore.notifyChannel)])
            } catch {
                connection = nil  // readers in other processes fall back to polling until it works again
            }
        }
    }

    private func startIfNeeded() {
        let start = state.withLock { state -> Bool in
            defer { state.started = true }
            return !state.started && !state.stopped
        }
        guard start else { return }
        thread.start()
        thread.submit { [self] _ in listenLoop() }
    }

    private func bump() {
        let waiters = state.withLock { state in
            state.generation &+= 1
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for (_, waiter) in waiters { waiter.resume() }
    }

    /// Runs on the notifier's own thread until stopped.
    private func listenLoop() {
        var connection: PostgresConnection?
        while !state.withLock({ $0.stopped }) {
            do {
                if connection == nil {
                    let fresh = try PostgresConnection.connect(connectionString, timeoutSeconds: 2)
                    try fresh.listen(EventStore.notifyChannel)
                    connection = fresh
                }
                _ = try connection!.waitForNotifications(timeoutMillis: pollMillis)
            } catch {
                connection = nil
                usleep(UInt32(pollMillis) * 1000)
            }
            bump()
        }
    }
}
