import EventStore
import Foundation
import Logging
import Metrics
import SwiftProtobuf
import ToteDomain

/// Runs commands against the event log: load the streams a command needs, fold them with their
/// deciders, decide, and append everything decided in one atomic append whose expected versions
/// are the versions that were read. Nothing is ever written from a stale state.
///
/// - **Idempotency.** Every command carries an id (the call's idempotency key). The append stores
///   the command's reply with it, so a repeat — also a concurrent one — writes nothing and gets
///   the first reply.
/// - **Conflicts** (another writer appended to a stream in between) are retried from a fresh read,
///   with jittered backoff, up to ``Configuration/maxAttempts``; then ``CommandError/conflict``.
/// - **Hot streams.** A unit of work may ``UnitOfWork/serialize(_:)`` the streams it will write
///   (a flash-sale SKU): commands on the same stream inside this process then decide one after
///   another instead of racing and retrying, each on the state the one before it left (cached,
///   or still committing), and their appends go to the ``BatchCommitter``, which writes the
///   queue in batches — one round trip and one WAL flush for many commands.
/// - Folded states are cached, so a stream is never re-read from version 1 (only newer events).
public final class CommandRunner: Sendable {
    /// Tuning.
    public struct Configuration: Sendable {
        /// Attempts of one command before a conflict is reported (ABORTED on the wire).
        public var maxAttempts: Int
        /// The first retry waits up to this long (uniformly random); each later one up to twice
        /// the previous bound, capped by ``maxBackoff``.
        public var baseBackoff: Duration
        public var maxBackoff: Duration
        /// Streams whose folded state is kept in memory.
        public var cachedStreams: Int

        public init(maxAttempts: Int = 12, baseBackoff: Duration = .milliseconds(2), maxBackoff: Duration = .milliseconds(100), cachedStreams: Int = 50_000) {
            self.maxAttempts = maxAttempts
            self.baseBackoff = baseBackoff
            self.maxBackoff = maxBackoff
            self.cachedStreams = cachedStreams
        }
    }

    public let store: EventStore
    public let configuration: Configuration
    let clock: @Sendable () -> Int64
    let locks = StreamLocks()
    let cache: StateCache
    let committer: BatchCommitter

    /// - Parameter clock: the time given to deciders, in microseconds since the Unix epoch
    ///   (tests pass a controllable one).
    public init(store: EventStore, configuration: Configuration = .init(), clock: @escaping @Sendable () -> Int64 = CommandRunner.systemClock) {
        self.store = store
        self.configuration = configuration
        self.clock = clock
        self.cache = StateCache(capacity: configuration.cachedStreams)
        self.committer = BatchCommitter(store: store, cache: cache)
    }

    /// The wall clock in microseconds since the Unix epoch.
    public static let systemClock: @Sendable () -> Int64 = {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1000
    }

    /// The current time as deciders see it.
    public var nowMicros: Int64 { clock() }

    /// Runs `body` as one command: it loads and decides through the ``UnitOfWork``, returns its
    /// reply, and everything it decided is appended atomically under `commandID`.
    ///
    /// - Returns: the reply (the stored one if `commandID` was processed before) and the append's
    ///   result (nil when the command decided nothing, e.g. an idempotent repeat of a state it
    ///   already reached).
    /// - Throws: ``DomainError`` from a decider, ``CommandError``, or `EventStoreError`
    ///   (`.unavailable` when the database is down).
    public func execute<Reply: SwiftProtobuf.Message>(
        commandID: String,
        actor: Principal,
        correlationID: String,
        _ body: (inout UnitOfWork) async throws -> Reply
    ) async throws -> CommandOutcome<Reply> {
        let held = HeldLocks()
        defer { if !held.streams.isEmpty { locks.unlock(held.streams) } }
        var attempt = 0
        while true {
            attempt += 1
            var unit = UnitOfWork(runner: self, context: CommandContext(actor: actor, nowMicros: clock()), commandID: commandID, correlationID: correlationID, held: held)
            let reply: Reply
            do {
                reply = try await body(&unit)
            } catch {
                // A refusal decided on states still committing stands only if they commit, and
                // one decided on trusted cached states only if no other process moved them. It
                // writes nothing, so the next command on its streams need not wait for the check.
                release(held)
                guard try await unit.decisionStands() || attempt >= configuration.maxAttempts else { continue }
                // A repeat of a command that succeeded before may be refused by the state it
                // moved on to (an AddLine replayed after checkout, an edit replayed with its now
                // stale expected version): it answers as the first time did. Failures of the
                // store itself are reported as they are.
                if !commandID.isEmpty, !(error is CancellationError), !(error is EventStoreError),
                   let stored = try? await store.processedResult(commandID: commandID) {
                    return CommandOutcome(reply: try stored.reply.map { try Reply(serializedBytes: $0) } ?? Reply(), append: stored)
                }
                throw error
            }
            let appends = unit.appends()
            if appends.isEmpty {
                release(held)
                guard try await unit.decisionStands() || attempt >= configuration.maxAttempts else { continue }
                // Nothing to write: either a no-op, or a repeat of a command that already wrote
                // (its state now makes it a no-op) and must answer as it did the first time.
                if !commandID.isEmpty, let stored = try await store.processedResult(commandID: commandID) {
                    return CommandOutcome(reply: try stored.reply.map { try Reply(serializedBytes: $0) } ?? reply, append: stored)
                }
                return CommandOutcome(reply: reply, append: nil)
            }
            let command = CommandAppend(commandID: commandID.isEmpty ? nil : commandID, reply: try reply.serializedBytes(), appends: appends)
            do {
                let result: AppendResult
                if held.streams.isEmpty {
                    result = try await store.append(command.appends, commandID: command.commandID, reply: command.reply)
                    if !result.deduplicated { unit.commit(result, into: cache) }
                } else {
                    // A hot stream: queue the append behind the ones in flight and let the next
                    // command on these streams decide on this one's states at once.
                    let ticket = committer.enqueue(command, states: unit.decidedStates(), dependencies: unit.dependencies)
                    release(held)
                    do {
                        result = try await ticket.value()
                    } catch BatchCommitter.Failure.alreadyProcessed {
                        result = try await store.append(command.appends, commandID: command.commandID, reply: command.reply)
                    }
                }
                if result.deduplicated {
                    let stored = try result.reply.map { try Reply(serializedBytes: $0) } ?? reply
                    return CommandOutcome(reply: stored, append: result)
                }
                return CommandOutcome(reply: reply, append: result)
            } catch let failure as BatchCommitter.Failure {
                // A conflict in the batch, or a command this one was decided on failed.
                Self.retries.increment()
                guard attempt < configuration.maxAttempts else {
                    throw CommandError(.conflict, "gave up after \(attempt) attempts: another writer kept changing the streams of this command")
                }
                if case .conflict(let error?) = failure, error.stream != nil { try await Task.sleep(for: backoff(attempt: attempt)) }
            } catch let error as EventStoreError where error.code == .wrongExpectedVersion {
                Self.retries.increment()
                if let stream = error.stream { cache.evict(stream) }
                guard attempt < configuration.maxAttempts else {
                    throw CommandError(.conflict, "gave up after \(attempt) attempts: \(error.message)", stream: error.stream)
                }
                try await Task.sleep(for: backoff(attempt: attempt))
            }
        }
    }

    /// Gives back the in-process stream locks a command holds (a retry takes them again).
    private func release(_ held: HeldLocks) {
        guard !held.streams.isEmpty else { return }
        locks.unlock(held.streams)
        held.streams = []
    }

    /// Attempts decided again after a conflict (another writer, or a failed dependency).
    static let retries = Counter(label: "tote_command_retries_total")

    /// A random delay in [0, min(max, base × 2^(attempt-1))]: "full jitter", so that retrying
    /// writers spread out instead of colliding again.
    func backoff(attempt: Int) -> Duration {
        let bound = min(configuration.maxBackoff, configuration.baseBackoff * (1 << min(attempt - 1, 20)))
        let nanos = bound.components.seconds * 1_000_000_000 + bound.components.attoseconds / 1_000_000_000
        return .nanoseconds(Int64.random(in: 0...max(nanos, 1)))
    }

    /// The current state and version of a stream (version 0: it does not exist), for answering
    /// queries from the command side (the cache makes a hot stream cheap to read).
    public func read<D: Decider>(_ decider: D.Type, _ stream: String) async throws -> (state: D.State, version: Int64) {
        var state = D.initialState
        var version: Int64 = 0
        if let cached = cache.get(stream), let cachedState = cached.state as? D.State {
            state = cachedState
            version = cached.version
        }
        for recorded in try await readStream(stream, from: version + 1) {
            do {
                state = D.evolve(state, try EventCodec.decode(recorded, as: D.Event.self))
            } catch {
                throw CommandError(.corruptStream, "\(error)", stream: stream)
            }
            version = recorded.streamVersion
        }
        if version > 0 { cache.put(stream, version: version, state: state) }
        return (state, version)
    }

    /// Every event of a stream from `version` on, in order, reading in pages.
    func readStream(_ stream: String, from version: Int64) async throws -> [RecordedEvent] {
        var events: [RecordedEvent] = []
        var next = version
        while true {
            let page = try await store.readStream(stream, from: next, limit: 5000)
            events += page
            guard page.count == 5000, let last = page.last else { return events }
            next = last.streamVersion + 1
        }
    }
}

/// The in-process stream locks one command holds: a reference, so that the runner releases them
/// whether the command's body returns or throws. Used by one task only.
final class HeldLocks {
    var streams: [String] = []
}

/// What a command produced.
public struct CommandOutcome<Reply: Sendable>: Sendable {
    /// The command's answer (the first answer, for a repeated command id).
    public var reply: Reply
    /// The append, or nil when the command decided no events.
    public var append: AppendResult?

    /// The version of `stream` after the command, when the command wrote to it.
    public func version(of stream: String) -> Int64? { append?.streamVersions[stream] }
    /// Whether this was a repeat of a command already processed.
    public var deduplicated: Bool { append?.deduplicated ?? false }
}

/// Why the command runtime gave up on a command (domain refusals are ``DomainError``s).
public struct CommandError: Error, Sendable, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        /// Conflicting writers kept winning the race until the attempts ran out: ABORTED, retry later.
        case conflict
        /// A stream holds an event this build cannot read: INTERNAL.
        case corruptStream
        /// The command is missing its idempotency key or another call-level requirement: INVALID_ARGUMENT.
        case badRequest
        /// The caller's expected version of a stream is not its current version: ABORTED with
        /// the current version (reload and decide again).
        case staleVersion
    }

    public var code: Code
    public var message: String
    public var stream: String?
    /// For `staleVersion`: the stream's current version.
    public var currentVersion: Int64?

    public init(_ code: Code, _ message: String, stream: String? = nil, currentVersion: Int64? = nil) {
        self.code = code
        self.message = message
        self.stream = stream
        self.currentVersion = currentVersion
    }

    public var description: String { message }
}

/// One attempt of one command: the streams it has read (and at which version), their folded
/// states including what the command has decided so far, and the events to append.
public struct UnitOfWork {
    /// Who asks, and the time of the decision.
    public let context: CommandContext
    public let commandID: String
    public let correlationID: String
    let runner: CommandRunner
    /// Streams locked in this process for this command (kept across retries, released by the
    /// runner however the command ends).
    let held: HeldLocks

    private struct Loaded {
        /// The version read (0: the stream does not exist).
        var version: Int64
        var state: any Sendable
        var events: [NewEvent] = []
    }
    private var streams: [String: Loaded] = [:]
    private var order: [String] = []
    /// Appends still committing whose states this attempt decided on.
    private(set) var dependencies: [BatchCommitter.Ticket] = []
    /// Streams taken from the cache without reading the log, at the version used.
    private var trusted: [String: Int64] = [:]

    init(runner: CommandRunner, context: CommandContext, commandID: String, correlationID: String, held: HeldLocks) {
        self.runner = runner
        self.context = context
        self.commandID = commandID
        self.correlationID = correlationID
        self.held = held
    }

    /// Runs the rest of this command alone among this process's commands on `streams`: call it
    /// once, before loading them. Other processes are still kept out by expected versions.
    public mutating func serialize(_ streams: [String]) async throws {
        guard held.streams.isEmpty else { return }  // a retry: the locks are still held
        let sorted = Array(Set(streams)).sorted()
        try await runner.locks.lock(sorted)
        held.streams = sorted
    }

    /// The state of `stream` under `decider`, including the events this command has already
    /// decided for it.
    public mutating func load<D: Decider>(_ decider: D.Type, _ stream: String) async throws -> D.State {
        if let loaded = streams[stream] {
            guard let state = loaded.state as? D.State else { preconditionFailure("stream \(stream) loaded as two different aggregates") }
            return state
        }
        let state: D.State
        let version: Int64
        if held.streams.contains(stream), let pending = runner.committer.pending(stream), let pendingState = pending.state as? D.State {
            // Locked here, and decided by a command still committing: decide on top of it.
            (state, version) = (pendingState, pending.version)
            dependencies.append(pending.ticket)
        } else if held.streams.contains(stream), let cached = runner.cache.get(stream), let cachedState = cached.state as? D.State {
            // Locked here, so no command of this process moved it since: trust the cache. A
            // write from another process makes the append conflict (which evicts it); a decision
            // that appends nothing is checked against the stream's version instead.
            (state, version) = (cachedState, cached.version)
            trusted[stream] = version
        } else {
            (state, version) = try await runner.read(decider, stream)
        }
        streams[stream] = Loaded(version: version, state: state)
        order.append(stream)
        return state
    }

    /// Refuses the command when a client's optimistic-concurrency check fails: `version` (0 =
    /// don't check) is not the loaded stream's version.
    public func expect(_ stream: String, version: Int64) throws {
        let current = self.version(of: stream)
        guard version == 0 || version == current else {
            throw CommandError(.staleVersion, "\(stream) is at version \(current), not \(version): reload and retry", stream: stream, currentVersion: current)
        }
    }

    /// The version of a loaded stream as read (0 if it does not exist yet).
    public func version(of stream: String) -> Int64 { streams[stream]?.version ?? 0 }

    /// Decides `command` on `stream`'s state (loading it first if needed), records the events for
    /// the append and returns them with the new state.
    @discardableResult
    public mutating func decide<D: Decider>(_ decider: D.Type, _ stream: String, _ command: D.Command) async throws -> (events: [D.Event], state: D.State) {
        let state = try await load(decider, stream)
        let events = try D.decide(command, state: state, context: context)
        let next = D.fold(events, from: state)
        try record(decider, stream, events, state: next)
        return (events, next)
    }

    /// Records events decided outside ``decide(_:_:_:)`` (e.g. by a pure process function over
    /// several states); `state` is the stream's state after them.
    public mutating func record<D: Decider>(_ decider: D.Type, _ stream: String, _ events: [D.Event], state: D.State) throws {
        guard !events.isEmpty else { return }
        guard streams[stream] != nil else { preconditionFailure("record to \(stream) before loading it") }
        let rows = try events.map { try EventCodec.encode($0, context: context, commandID: commandID, correlationID: correlationID) }
        streams[stream]!.events += rows
        streams[stream]!.state = state
    }

    /// The append this attempt decided: every stream with events, expected at the version read.
    func appends() -> [StreamAppend] {
        order.compactMap { stream in
            guard let loaded = streams[stream], !loaded.events.isEmpty else { return nil }
            return StreamAppend(stream: stream, expectedVersion: loaded.version == 0 ? .noStream : .exact(loaded.version), events: loaded.events)
        }
    }

    /// Whether a decision that appends nothing (a refusal, a no-op) may be answered: every
    /// pending append it was decided on has committed, and no other process has moved a stream
    /// it took from the cache. False: decide again (a moved stream's cache entry is evicted).
    func decisionStands() async throws -> Bool {
        for ticket in dependencies {
            do { _ = try await ticket.value() } catch { return false }
        }
        guard !trusted.isEmpty else { return true }
        let current = try await runner.store.streamVersions(Array(trusted.keys))
        var stands = true
        for (stream, version) in trusted where (current[stream] ?? 0) != version {
            runner.cache.evict(stream)
            stands = false
        }
        return stands
    }

    /// Each stream this attempt writes, with its version and state after the append.
    func decidedStates() -> [String: (version: Int64, state: any Sendable)] {
        var states: [String: (version: Int64, state: any Sendable)] = [:]
        for (stream, loaded) in streams where !loaded.events.isEmpty {
            states[stream] = (loaded.version + Int64(loaded.events.count), loaded.state)
        }
        return states
    }

    /// After a successful append: the states this command saw or made become the cache's.
    func commit(_ result: AppendResult, into cache: StateCache) {
        for (stream, loaded) in streams {
            if loaded.events.isEmpty {
                if loaded.version > 0 { cache.put(stream, version: loaded.version, state: loaded.state) }
            } else if let version = result.streamVersions[stream] {
                cache.put(stream, version: version, state: loaded.state)
            }
        }
    }
}
