import EventStore
import Foundation
import SwiftProtobuf
import Logging
import Metrics
import Postgres
import Synchronization
import ToteAPI
import ToteCommands
import ToteDomain

/// The automation bridge of one warehouse (docs/AUTOMATION.md): serves `tote.v1.Automation/Connect`
/// to warehouse controllers and `tote.v1.Operations` to operators, and — while it is the active
/// bridge — turns paid orders into pick and pack tasks, dispatches them to stations, records every
/// report, and takes tasks away from controllers lost beyond the grace period.
///
/// Active/standby: ``run()`` holds a PostgreSQL session advisory lock per warehouse on a dedicated
/// connection. Without it the bridge is a standby: it refuses Connect and Operations calls with
/// UNAVAILABLE and polls the lock; when the active bridge dies (its connection, and so its lock,
/// goes) a standby takes over and resumes from the log.
public final class BridgeServices: RPCService, Sendable {
    public let runner: CommandRunner
    public let configuration: BridgeConfiguration
    let clock: @Sendable () -> Int64
    let logger: Logger
    private let engine = Mutex<BridgeEngine?>(nil)

    /// - Parameters:
    ///   - clock: the sessions' clock (heartbeats, redelivery, grace period), µs since the epoch.
    public init(runner: CommandRunner, configuration: BridgeConfiguration = .init(), clock: @escaping @Sendable () -> Int64 = CommandRunner.systemClock, logger: Logger = Logger(label: "tote.bridge")) {
        self.runner = runner
        self.configuration = configuration
        self.clock = clock
        self.logger = logger
    }

    /// True while this bridge holds the warehouse's lock.
    public var isActive: Bool { engine.withLock { $0 != nil } }

    /// The advisory lock key of a warehouse (FNV-1a of `tote-bridge/<warehouse>`).
    public static func lockKey(warehouseID: String) -> Int64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in "tote-bridge/\(warehouseID)".utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        return Int64(bitPattern: hash)
    }

    // MARK: - Leadership and the bridge loop

    /// Competes for the warehouse's lock and, while holding it, runs the bridge (follow the log,
    /// plan, dispatch, sessions); until cancelled. Losing the lock connection ends the term: every
    /// controller stream is ended with UNAVAILABLE and the bridge goes back to standby.
    public func run() async throws {
        let key = Self.lockKey(warehouseID: configuration.warehouseID)
        let active = BridgeMetrics(warehouseID: configuration.warehouseID).active
        active.record(0)
        defer { active.record(0) }
        while !Task.isCancelled {
            guard let lock = await Self.blocking({ self.tryLock(key) }) else {
                try await Task.sleep(for: configuration.leadershipPollInterval)
                continue
            }
            logger.info("bridge is active", metadata: ["bridge": "\(configuration.bridgeID)", "warehouse": "\(configuration.warehouseID)"])
            active.record(1)
            await lead(lock)
            active.record(0)
            logger.info("bridge is no longer active", metadata: ["bridge": "\(configuration.bridgeID)"])
        }
    }

    /// Runs a blocking libpq call (connect, the lock's queries) on a thread of its own: on the
    /// cooperative pool (two threads on a 2-core machine) a connect to a database that is down
    /// would stall every task of the process for the connect timeout.
    static func blocking<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            lockQueue.async { continuation.resume(returning: work()) }
        }
    }
    private static let lockQueue = DispatchQueue(label: "tote.bridge.lock")

    /// A connection holding the lock, or nil (the connection is closed, so nothing lingers).
    private func tryLock(_ key: Int64) -> PostgresConnection? {
        do {
            let connection = try PostgresConnection.connect(runner.store.pool.configuration.connectionString)
            let result = try connection.execute("SELECT pg_try_advisory_lock($1)", [.int64(key)])
            return try result.bool(0, 0) ? connection : nil
        } catch {
            logger.warning("bridge lock attempt failed", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// One term as the active bridge; returns when the lock connection fails or on cancellation.
    private func lead(_ lock: PostgresConnection) async {
        let bridge = BridgeEngine(runner: runner, configuration: configuration, clock: clock, logger: logger)
        engine.withLock { $0 = bridge }
        let interval = configuration.tickInterval
        let poll = configuration.leadershipPollInterval
        let store = runner.store
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await bridge.run() }
            group.addTask {
                do {
                    for try await event in store.subscribe(from: .start, batchSize: 1000) {
                        guard event.stream.hasPrefix("order-") || event.stream.hasPrefix("task-") else { continue }
                        bridge.submit(.logged(event))
                    }
                } catch {}
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    bridge.submit(.tick)
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: poll)
                    if Task.isCancelled { return }
                    let alive = await Self.blocking { (try? lock.execute("SELECT 1")) != nil }
                    if !alive { return }  // the lock's connection is gone, and the lock with it
                }
            }
            _ = await group.next()
            engine.withLock { $0 = nil }
            group.cancelAll()
        }
        withExtendedLifetime(lock) {}
    }

    private func activeEngine() throws -> BridgeEngine {
        guard let e = engine.withLock({ $0 }) else {
            throw RPCError(.unavailable, "standby bridge \(configuration.bridgeID): not the active bridge of warehouse '\(configuration.warehouseID)'; retry")
        }
        return e
    }

    // MARK: - Services

    public func register(into router: inout RPCRouter) {
        router.register(AutomationAPI.connect, bidirectional: { requests, writer, _ in
            try await self.connect(requests, writer)
        })
        router.register(OperationsAPI.listStuckTasks, unary: { request, _ in
            guard case .tasks(let tasks, let next) = try await self.ask(.listStuck(request)) else { throw RPCError(.internal, "unexpected answer") }
            var response = Tote_V1_ListStuckTasksResponse()
            response.tasks = tasks
            response.pageInfo.nextPageToken = next
            return response
        })
        router.register(OperationsAPI.retryTask, unary: { request, context in
            try await self.operation(request.taskID, .retry(reason: request.reason), actorID: request.actor.id, context, reply: Tote_V1_RetryTaskResponse.self)
        })
        router.register(OperationsAPI.reassignTask, unary: { request, context in
            try await self.operation(request.taskID, .reassign(targetControllerID: request.targetControllerID, reason: request.reason), actorID: request.actor.id, context, reply: Tote_V1_ReassignTaskResponse.self)
        })
        router.register(OperationsAPI.cancelTask, unary: { request, context in
            try await self.operation(request.taskID, .cancel(reason: request.reason), actorID: request.actor.id, context, reply: Tote_V1_CancelTaskResponse.self)
        })
        router.register(OperationsAPI.markTaskDone, unary: { request, context in
            let packed: Tote_V1_PackResult? = request.hasPacked ? request.packed : nil
            return try await self.operation(request.taskID, .markDone(picked: request.picked, packed: packed, reason: request.reason), actorID: request.actor.id, context, reply: Tote_V1_MarkTaskDoneResponse.self)
        })
    }

    private func ask(_ request: BridgeOperatorRequest) async throws -> BridgeOperatorResult {
        let bridge = try activeEngine()
        return try await withCheckedThrowingContinuation { reply in
            bridge.submit(.operate(request, reply))
        }
    }

    /// An operator's command on a task: idempotent by the call's key, recorded with the operator's id.
    /// An operator's action on a task, answered in the reply shape every Operations command shares.
    private func operation<Reply: TaskOperationReply>(_ taskID: String, _ command: TaskCommand, actorID: String, _ context: ServerContext, reply: Reply.Type) async throws -> Reply {
        let (task, version, token) = try await operate(taskID, command, actorID: actorID, context)
        var response = Reply()
        response.task = task
        response.streamVersion = version
        if let token { response.consistencyToken = token }
        return response
    }

    private func operate(_ taskID: String, _ command: TaskCommand, actorID: String, _ context: ServerContext) async throws -> (Tote_V1_TaskSummary, Int64, Tote_V1_ConsistencyToken?) {
        guard !context.idempotencyKey.isEmpty else {
            throw RPCError.invalidArgument("commands need an idempotency key (call header idempotency_key)", fieldViolations: [("idempotency_key", "required for commands")])
        }
        guard !taskID.isEmpty else { throw RPCError.invalidArgument("task_id is required", fieldViolations: [("task_id", "required")]) }
        let request = BridgeOperatorRequest.task(
            taskID: taskID, command: command, actor: CommandSupport.actor(context, actorID: actorID),
            commandID: "\(context.method)#\(context.idempotencyKey)", correlationID: context.correlationID)
        guard case .task(let summary, let version, let position) = try await ask(request) else { throw RPCError(.internal, "unexpected answer") }
        return (summary, version, position.map(CommandSupport.token))
    }

    /// One controller session: the hello routes it to its controller's session in the engine; the
    /// engine's answers are written until it closes the stream.
    private func connect(_ requests: RequestStream<Tote_V1_ControllerMessage>, _ writer: ResponseWriter<Tote_V1_BridgeMessage>) async throws {
        let bridge = try activeEngine()
        guard let first = try await firstMessage(requests) else { return }
        guard case .hello(let hello)? = first.body else {
            throw RPCError(.invalidArgument, "the first message must be ControllerHello")
        }
        if let problem = ControllerSession.helloProblem(hello) { throw RPCError(.invalidArgument, problem) }
        if !hello.warehouseID.isEmpty, !configuration.scope.serves(warehouse: hello.warehouseID) {
            throw RPCError(.failedPrecondition, "controller \(hello.controllerID) is in warehouse '\(hello.warehouseID)', this is the bridge of warehouse '\(configuration.warehouseID)': connect to your warehouse's bridge")
        }
        // The rest of the call's messages (the stream's storage is shared: the hello is not seen again).
        let iterator = requests.makeAsyncIterator()
        let (outgoing, out) = AsyncStream<BridgeOutgoing>.makeStream()
        let c = bridge.nextConnectionID()
        bridge.submit(.opened(c, hello, out))
        let reader = Task { [iterator] in
            var it = iterator
            do {
                while let message = try await it.next() { bridge.submit(.received(c, message)) }
                bridge.submit(.ended(c))
            } catch {
                bridge.submit(.failed(c, "stream failed: \(error)"))
            }
        }
        defer { reader.cancel() }
        for await item in outgoing {
            switch item {
            case .message(let message):
                do {
                    try await writer.write(message)
                } catch {
                    bridge.submit(.failed(c, "write failed: \(error)"))
                    throw error
                }
            case .close(let status, let text):
                if status == .ok { return }
                throw RPCError(RPCError.Code(rawValue: status.rawValue), text)
            }
        }
        throw RPCError(.unavailable, "bridge shutting down")
    }
}

extension BridgeServices {
    /// The call's first message, or nil if the controller half-closed without one; throws
    /// DEADLINE_EXCEEDED if nothing arrived within the session configuration's `helloTimeoutMicros`.
    func firstMessage(_ requests: RequestStream<Tote_V1_ControllerMessage>) async throws -> Tote_V1_ControllerMessage? {
        let micros = configuration.session.helloTimeoutMicros
        return try await withThrowingTaskGroup(of: Tote_V1_ControllerMessage?.self) { group in
            group.addTask {
                var iterator = requests.makeAsyncIterator()
                return try await iterator.next()
            }
            group.addTask {
                try await Task.sleep(for: .microseconds(micros))
                throw RPCError(.deadlineExceeded, "no ControllerHello within \(micros / 1000) ms of opening the call")
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
    }
}

/// Operations command replies: the task after the action, its stream version and the token.
protocol TaskOperationReply: SwiftProtobuf.Message {
    var task: Tote_V1_TaskSummary { get set }
    var streamVersion: Int64 { get set }
    var consistencyToken: Tote_V1_ConsistencyToken { get set }
}

extension Tote_V1_RetryTaskResponse: TaskOperationReply {}
extension Tote_V1_ReassignTaskResponse: TaskOperationReply {}
extension Tote_V1_CancelTaskResponse: TaskOperationReply {}
extension Tote_V1_MarkTaskDoneResponse: TaskOperationReply {}
