import EventStore
import Foundation
import Logging
import Metrics
import SwiftProtobuf
import Synchronization
import ToteAPI
import ToteCommands
import ToteDomain

/// Settings of an automation bridge.
public struct BridgeConfiguration: Sendable {
    /// The warehouse this bridge serves (names its advisory lock): it plans the orders whose home
    /// warehouse it is and dispatches only that warehouse's tasks (``WarehouseScope``); "" = one
    /// bridge for every warehouse.
    public var warehouseID: String

    /// What this bridge plans and dispatches.
    public var scope: WarehouseScope { WarehouseScope(warehouseID: warehouseID) }
    /// A name for this bridge process (logs, and the UNAVAILABLE message of a standby).
    public var bridgeID: String
    /// Protocol timings and limits of every controller session (`helloTimeoutMicros`: a Connect
    /// call whose hello has not arrived by then is ended with DEADLINE_EXCEEDED).
    public var session: ControllerSession.Configuration
    /// How often sessions get a `.tick` and planned work is dispatched.
    public var tickInterval: Duration
    /// How often a standby tries the lock, and the active bridge checks its lock connection.
    public var leadershipPollInterval: Duration
    /// Non-final tasks unchanged for this long are listed as stuck.
    public var stuckAfterMicros: Int64

    public init(warehouseID: String = "", bridgeID: String = "bridge-\(UUID().uuidString.prefix(8).lowercased())", session: ControllerSession.Configuration = .init(), tickInterval: Duration = .milliseconds(100), leadershipPollInterval: Duration = .seconds(1), stuckAfterMicros: Int64 = 600_000_000) {
        self.warehouseID = warehouseID
        self.bridgeID = bridgeID
        self.session = session
        self.tickInterval = tickInterval
        self.leadershipPollInterval = leadershipPollInterval
        self.stuckAfterMicros = stuckAfterMicros
    }
}

/// The bridge's metrics, labelled with its warehouse ("all" for a bridge of every warehouse):
/// `tote_bridge_active` (1 while it holds the warehouse's lock), `tote_bridge_controllers_online`,
/// `tote_bridge_commands_in_flight` (sent, not acknowledged; updated every tick) and
/// `tote_bridge_redeliveries_total`.
struct BridgeMetrics: Sendable {
    let active: Gauge
    let controllersOnline: Gauge
    let commandsInFlight: Gauge
    let redeliveries: Counter

    init(warehouseID: String) {
        let dimensions = [("warehouse", warehouseID.isEmpty ? "all" : warehouseID)]
        active = Gauge(label: "tote_bridge_active", dimensions: dimensions)
        controllersOnline = Gauge(label: "tote_bridge_controllers_online", dimensions: dimensions)
        commandsInFlight = Gauge(label: "tote_bridge_commands_in_flight", dimensions: dimensions)
        redeliveries = Counter(label: "tote_bridge_redeliveries_total", dimensions: dimensions)
    }
}

/// What the engine tells one Connect call to do.
enum BridgeOutgoing: Sendable {
    case message(Tote_V1_BridgeMessage)
    case close(ControllerSession.CloseStatus, String)
}

/// An operator's request, answered by the engine.
enum BridgeOperatorRequest: Sendable {
    case listStuck(Tote_V1_ListStuckTasksRequest)
    case task(taskID: String, command: TaskCommand, actor: Principal, commandID: String, correlationID: String)
}

/// The engine's answer to an operator.
enum BridgeOperatorResult: Sendable {
    case tasks([Tote_V1_TaskSummary], nextPageToken: String)
    case task(Tote_V1_TaskSummary, version: Int64, position: LogPosition?)
}

/// The active bridge's single serial loop: every controller session, the task index it follows
/// from the log, the planner and the dispatcher. All inputs (stream events, ticks, log events,
/// operator requests) go through one queue and are handled one after another, appends included,
/// so a controller's inputs are handled strictly in order and no two decisions race in-process
/// (other processes are kept out by the advisory lock and by expected versions).
///
/// **Bursts.** The loop takes everything queued at once. Reports in it are recorded together in
/// one `append(commands:)` (one transaction, one WAL flush) before anything else appends, and
/// their acks follow that append; planning, and the dispatches it leads to, run once after the
/// burst, also as one append each (see BridgeEngine+Batches.swift).
actor BridgeEngine {
    enum Input: Sendable {
        case opened(ControllerSession.ConnectionID, Tote_V1_ControllerHello, AsyncStream<BridgeOutgoing>.Continuation)
        case received(ControllerSession.ConnectionID, Tote_V1_ControllerMessage)
        case ended(ControllerSession.ConnectionID)
        case failed(ControllerSession.ConnectionID, String)
        case tick
        case logged(RecordedEvent)
        case operate(BridgeOperatorRequest, CheckedContinuation<BridgeOperatorResult, any Error>)
    }

    /// Inputs waiting for the loop, and whether the loop has stopped taking them.
    private nonisolated let queue = Mutex<(inputs: [Input], closed: Bool)>(([], false))
    /// Wakes the loop when inputs were queued (at most one wake-up pending).
    private nonisolated let wakes: AsyncStream<Void>
    private nonisolated let wake: AsyncStream<Void>.Continuation
    private nonisolated let connectionCounter = Atomic<UInt64>(0)

    let runner: CommandRunner
    let configuration: BridgeConfiguration
    let clock: @Sendable () -> Int64
    let logger: Logger

    private var sessions: [String: ControllerSession] = [:]
    private var connections: [ControllerSession.ConnectionID: (controllerID: String, out: AsyncStream<BridgeOutgoing>.Continuation)] = [:]
    var tasks: [String: (state: TaskDecider.State, version: Int64)] = [:]
    private var pending: Set<String> = []
    var orders: [String: (state: OrderDecider.State, version: Int64)] = [:]
    private var tasksByOrder: [String: Set<String>] = [:]
    private var dirtyOrders: [String: Int] = [:]
    var stopping = false
    private let metrics: BridgeMetrics
    /// Reports the sessions handed over in the current burst, in order, not yet appended.
    var queuedReports: [(controllerID: String, report: ControllerSession.Report)] = []
    /// The version of each `controller-<id>` stream as this bridge last wrote or read it: the
    /// expected version of its next batched append (a stale one conflicts and is re-read).
    var controllerVersions: [String: Int64] = [:]
    /// Planning (and dispatching) asked for by the inputs of the current burst.
    private var planRequested = false
    /// Reports recorded per append at most (a longer burst is recorded in several appends).
    static let maxReportsPerAppend = 256

    init(runner: CommandRunner, configuration: BridgeConfiguration, clock: @escaping @Sendable () -> Int64, logger: Logger) {
        self.runner = runner
        self.configuration = configuration
        self.clock = clock
        self.logger = logger
        self.metrics = BridgeMetrics(warehouseID: configuration.warehouseID)
        (wakes, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Queues an input (from any task). After the loop stopped, an operator request is answered
    /// UNAVAILABLE and a stream is ended; other inputs are dropped.
    nonisolated func submit(_ input: Input) {
        let accepted = queue.withLock { q -> Bool in
            guard !q.closed else { return false }
            q.inputs.append(input)
            return true
        }
        if accepted {
            wake.yield()
        } else {
            Self.refuse(input)
        }
    }

    /// Answers an input the stopped loop will never handle.
    private nonisolated static func refuse(_ input: Input) {
        switch input {
        case .operate(_, let reply): reply.resume(throwing: RPCError(.unavailable, "the bridge stopped; retry"))
        case .opened(_, _, let out):
            out.yield(.close(.unavailable, "bridge shutting down"))
            out.finish()
        default: break
        }
    }

    /// Everything queued so far, in order.
    private nonisolated func takeQueued() -> [Input] {
        queue.withLock { q in
            let taken = q.inputs
            q.inputs.removeAll(keepingCapacity: true)
            return taken
        }
    }

    /// A fresh id for an accepted Connect call.
    nonisolated func nextConnectionID() -> ControllerSession.ConnectionID {
        connectionCounter.add(1, ordering: .relaxed).newValue
    }

    /// Restores every controller known to the log (with a warehouse: those with open commands for
    /// its tasks; the others are restored when they connect), then handles inputs until cancelled;
    /// ends every open stream with UNAVAILABLE on the way out.
    func run() async {
        do {
            for stream in try await runner.store.streamNames(withPrefix: "controller-", limit: 100_000) {
                let id = String(stream.dropFirst("controller-".count))
                if configuration.scope == .all {
                    _ = try await session(id)
                    continue
                }
                let (log, _) = try await runner.read(ControllerStreamDecider.self, StreamName.controller(id))
                for taskID in Set(log.taskOfCommand.values).sorted() {
                    let task = try await runner.read(TaskDecider.self, StreamName.task(taskID)).state
                    guard configuration.scope.serves(warehouse: task.warehouseID) else { continue }
                    sessions[id] = ControllerSession(controllerID: id, configuration: configuration.session, restoring: log, nowMicros: clock())
                    break
                }
            }
        } catch {
            logger.error("bridge could not restore controller sessions", metadata: ["error": "\(error)"])
        }
        loop: for await _ in wakes {
            while true {
                if Task.isCancelled { break loop }
                let burst = takeQueued()
                if burst.isEmpty { break }
                await handle(burst)
            }
        }
        shutdown()
    }

    /// Handles a burst of inputs in order; their reports are recorded together (unless something
    /// else must append first), then what they asked to plan is planned and dispatched once.
    ///
    /// Once the loop is cancelled nothing more is handled (the rest of the burst is answered as
    /// the stopped loop answers it): a pool call of a cancelled task may not run at all, and
    /// `PostgresPool` does not get such a call's connection back, so a long burst handled after
    /// cancellation could drain the pool and hang the shutdown.
    private func handle(_ burst: [Input]) async {
        for (i, input) in burst.enumerated() {
            if Task.isCancelled {
                for rest in burst[i...] { Self.refuse(rest) }
                return
            }
            await handle(input)
        }
        guard !Task.isCancelled else { return }
        await flushReports()
        if planRequested {
            planRequested = false
            await planNow()
        }
    }

    private func shutdown() {
        stopping = true
        let now = clock()
        for id in sessions.keys.sorted() {
            for action in sessions[id]!.handle(.shutdown, nowMicros: now) {
                if case .close(let c, let status, let text) = action { close(c, status, text) }
            }
        }
        for (_, connection) in connections { connection.out.finish() }
        connections.removeAll()
        let left = queue.withLock { q -> [Input] in
            q.closed = true
            defer { q.inputs.removeAll() }
            return q.inputs
        }
        for input in left { Self.refuse(input) }
        wake.finish()
    }

    // MARK: - Inputs

    private func handle(_ input: Input) async {
        switch input {
        case .received, .logged:
            break  // may queue reports; appends nothing by itself
        case .opened, .ended, .failed, .tick, .operate:
            // A session that (re)opens forgets the reports it accepted and did not record, and
            // the rest may append: record what the burst queued so far first, in order.
            await flushReports()
        }
        switch input {
        case .opened(let c, let hello, let out):
            connections[c] = (hello.controllerID, out)
            do {
                _ = try await session(hello.controllerID)
            } catch {
                close(c, .unavailable, "cannot load controller state: \(error)")
                return
            }
            await feed(hello.controllerID, .streamOpened(c))
            var message = Tote_V1_ControllerMessage()
            message.body = .hello(hello)
            await feed(hello.controllerID, .received(c, message))
        case .received(let c, let message):
            guard let id = connections[c]?.controllerID else { return }
            await feed(id, .received(c, message))
            planRequested = true  // a recorded report may complete an order's picks or its pack
        case .ended(let c):
            guard let id = connections[c]?.controllerID else { return }
            await feed(id, .streamEnded(c))
            close(c, .ok, "session ended")
        case .failed(let c, let reason):
            guard let id = connections[c]?.controllerID else { return }
            await feed(id, .streamFailed(c, reason: reason))
            close(c, .unavailable, reason)
        case .tick:
            for id in sessions.keys.sorted() { await feed(id, .tick) }
            await planDirtyOrders()
            await dispatchPending()
            metrics.controllersOnline.record(sessions.values.filter(\.isOnline).count)
            metrics.commandsInFlight.record(sessions.values.reduce(0) { $0 + $1.outbox.count })
        case .logged(let event):
            await follow(event)
            // A live event (not one read while catching up, when the index is still behind the
            // log) is planned at once: OrderPaid → first command costs two appends, not a tick more.
            if clock() - event.recordedAtMicros < 2_000_000 { planRequested = true }
        case .operate(let request, let reply):
            do {
                reply.resume(returning: try await operate(request))
            } catch {
                reply.resume(throwing: error)
            }
            await dispatchPending()
        }
    }

    /// The session of a controller, restored from its stream the first time.
    private func session(_ controllerID: String) async throws -> ControllerSession {
        if let s = sessions[controllerID] { return s }
        let (log, _) = try await runner.read(ControllerStreamDecider.self, StreamName.controller(controllerID))
        let s = ControllerSession(controllerID: controllerID, configuration: configuration.session, restoring: log, nowMicros: clock())
        sessions[controllerID] = s
        return s
    }

    /// Feeds one input to a controller's session and performs what it returns, in order.
    func feed(_ controllerID: String, _ input: ControllerSession.Input) async {
        guard var s = sessions[controllerID] else { return }
        let actions = s.handle(input, nowMicros: clock())
        sessions[controllerID] = s
        for action in actions { await perform(controllerID, action) }
    }

    private func perform(_ controllerID: String, _ action: ControllerSession.Action) async {
        switch action {
        case .send(let c, let message):
            connections[c]?.out.yield(.message(message))
        case .redeliver(let c, let command):
            metrics.redeliveries.increment()
            var message = Tote_V1_BridgeMessage()
            message.body = .command(command)
            connections[c]?.out.yield(.message(message))
        case .close(let c, let status, let text):
            close(c, status, text)
        case .record(let event):
            guard !stopping else { return }
            await flushReports()
            do {
                let outcome = try await runner.execute(commandID: "", actor: Principal(id: configuration.bridgeID, role: "system"), correlationID: "bridge") { unit -> Google_Protobuf_Empty in
                    try await unit.recordController(controllerID, [event])
                    return Google_Protobuf_Empty()
                }
                noteControllerVersions(outcome.append)
            } catch {
                logger.error("could not record a controller event", metadata: ["controller": "\(controllerID)", "event": "\(event.typeName)", "error": "\(error)"])
            }
        case .recordReport(let report):
            // Recorded with the rest of the burst's reports (flushReports), then acknowledged.
            queuedReports.append((controllerID, report))
            if queuedReports.count >= Self.maxReportsPerAppend { await flushReports() }
        case .markConnection:
            break  // stations are derived from the sessions; the next tick dispatches
        case .reassignTasks(let ids):
            await flushReports()
            for id in ids {
                guard let state = try? await taskState(id), configuration.scope.serves(warehouse: state.warehouseID),
                      let command = TaskDispatcher.afterControllerLost(state, lostControllerID: controllerID, stations: stations().filter { $0.controllerID != controllerID }) else { continue }
                do {
                    _ = try await taskCommand(id, command, actor: Principal(id: configuration.bridgeID, role: "system"), commandID: "", correlationID: "grace-\(controllerID)")
                } catch {
                    logger.error("could not take a task from a lost controller", metadata: ["task": "\(id)", "controller": "\(controllerID)", "error": "\(error)"])
                }
            }
        }
    }

    private func close(_ c: ControllerSession.ConnectionID, _ status: ControllerSession.CloseStatus, _ text: String) {
        guard let connection = connections.removeValue(forKey: c) else { return }
        connection.out.yield(.close(status, text))
        connection.out.finish()
    }

    // MARK: - Dispatching

    /// The stations the dispatcher may choose from.
    private func stations() -> [StationAvailability] {
        sessions.values.compactMap { s in
            guard let hello = s.hello, configuration.scope.serves(warehouse: hello.warehouseID) || hello.warehouseID.isEmpty else { return nil }
            return StationAvailability(
                controllerID: s.controllerID, kind: hello.stationKind, warehouseID: hello.warehouseID, zones: hello.zones,
                online: s.isOnline, openCommands: s.outbox.count + s.reserved.count, status: s.lastHeartbeat?.status ?? .idle)
        }
    }

    /// Sends every PENDING task a station can take now.
    private func dispatchPending() async {
        guard !pending.isEmpty, !stopping else { return }
        await flushReports()
        var chosen: [Dispatch] = []
        for id in pending.sorted() {
            guard let task = tasks[id]?.state, task.status == .pending else { pending.remove(id); continue }
            guard let controllerID = TaskDispatcher.choose(for: task, among: stations()) else { continue }
            // Reserve the command's sequence now, so that the next choice sees this station's load.
            guard var s = sessions[controllerID] else { continue }
            let command = s.makeCommand(commandID: UUID().uuidString.lowercased(), action: Self.action(for: task), nowMicros: clock())
            sessions[controllerID] = s
            chosen.append(Dispatch(taskID: task.taskID, controllerID: controllerID, command: command))
        }
        guard !chosen.isEmpty else { return }
        await dispatch(chosen)
    }

    /// The command action that carries a task to its station.
    static func action(for task: TaskDecider.State) -> Tote_V1_BridgeCommand.OneOf_Action {
        switch task.kind {
        case .pack:
            var p = Tote_V1_PackTask()
            p.taskID = task.taskID
            p.orderID = task.orderID
            p.items = task.lines.map { line in
                var item = Tote_V1_PackItem()
                item.sku = line.sku
                item.quantity = line.quantity
                item.displayName = line.displayName
                return item
            }
            p.sourceContainers = task.sourceTaskIDs
            p.shipTo = task.shipTo
            return .packTask(p)
        default:
            var p = Tote_V1_PickTask()
            p.taskID = task.taskID
            p.orderID = task.orderID
            p.zone = task.zone
            p.lines = task.lines.map { line in
                var l = Tote_V1_PickLine()
                l.lineID = line.lineID
                l.sku = line.sku
                l.location = line.location
                l.quantity = line.quantity
                l.displayName = line.displayName
                return l
            }
            return .pickTask(p)
        }
    }

    // MARK: - Task commands (operators, the planner, lost controllers)

    /// Runs a command on a task. If the task was at a controller and the command takes it away,
    /// the same append closes its command and issues a `CancelTask` to that controller; the
    /// session is told afterwards.
    private func taskCommand(_ taskID: String, _ command: TaskCommand, actor: Principal, commandID: String, correlationID: String) async throws -> (state: TaskDecider.State, version: Int64, position: LogPosition?) {
        await flushReports()
        let stream = StreamName.task(taskID)
        let before = try await runner.read(TaskDecider.self, stream).state
        var cancel: (controllerID: String, command: Tote_V1_BridgeCommand)?
        if before.status.isAtController, !before.controllerID.isEmpty {
            var s = try await session(before.controllerID)
            var c = Tote_V1_CancelTask()
            c.taskID = taskID
            c.reason = Self.reason(of: command)
            cancel = (before.controllerID, s.makeCommand(commandID: UUID().uuidString.lowercased(), action: .cancelTask(c), nowMicros: clock()))
            sessions[before.controllerID] = s
        }
        var closed: (controllerID: String, commandID: String)?
        var newState: TaskDecider.State?
        do {
            let outcome = try await runner.execute(commandID: commandID, actor: actor, correlationID: correlationID) { unit -> Google_Protobuf_Empty in
                closed = nil
                newState = nil
                let loaded = try await unit.load(TaskDecider.self, stream)
                let (events, state) = try await unit.decide(TaskDecider.self, stream, command)
                if !events.isEmpty { newState = state }
                if let cancel, !events.isEmpty, loaded.status.isAtController, loaded.controllerID == cancel.controllerID,
                   !(state.status.isAtController && state.commandID == loaded.commandID) {
                    let now = unit.context.nowMicros
                    try await unit.recordController(cancel.controllerID, [
                        ControllerLog.closed(commandID: loaded.commandID, sequence: loaded.sequence, controllerID: cancel.controllerID, reason: Self.reason(of: command), nowMicros: now),
                        ControllerLog.issued(cancel.command, taskID: taskID, controllerID: cancel.controllerID, nowMicros: now),
                    ])
                    closed = (cancel.controllerID, loaded.commandID)
                }
                return Google_Protobuf_Empty()
            }
            let written = outcome.append != nil && !outcome.deduplicated
            if written { noteControllerVersions(outcome.append) }
            if let cancel {
                if written, let closed {
                    await feed(closed.controllerID, .commandClosed(commandID: closed.commandID))
                    await feed(cancel.controllerID, .enqueue(cancel.command))
                } else {
                    await feed(cancel.controllerID, .abandon(sequence: cancel.command.sequence))
                }
            }
            if written, let newState, let version = outcome.version(of: stream) {
                index(taskID, newState, version: version)
                return (newState, version, outcome.append?.position)
            }
            let fresh = try await runner.read(TaskDecider.self, stream)
            index(taskID, fresh.state, version: fresh.version)
            return (fresh.state, fresh.version, outcome.append?.position)
        } catch {
            if let cancel { await feed(cancel.controllerID, .abandon(sequence: cancel.command.sequence)) }
            throw error
        }
    }

    private static func reason(of command: TaskCommand) -> String {
        switch command {
        case .retry(let r), .cancel(let r), .requireIntervention(let r): r
        case .reassign(_, let r): r
        case .markDone(_, _, let r): r
        default: ""
        }
    }

    private func taskState(_ id: String) async throws -> TaskDecider.State {
        if let t = tasks[id] { return t.state }
        let fresh = try await runner.read(TaskDecider.self, StreamName.task(id))
        index(id, fresh.state, version: fresh.version)
        return fresh.state
    }

    // MARK: - Operators

    private func operate(_ request: BridgeOperatorRequest) async throws -> BridgeOperatorResult {
        switch request {
        case .listStuck(let r):
            var after: StuckTaskPage.Cursor?
            if !r.page.pageToken.isEmpty {
                guard let cursor = StuckTaskPage.cursor(r.page.pageToken) else {
                    throw RPCError.invalidArgument("page.page_token is not a token ListStuckTasks issued", fieldViolations: [("page.page_token", "not a token this service issued")])
                }
                after = cursor
            }
            let scope = configuration.scope
            let page = StuckTaskPage.page(
                Array(tasks.values), after: after, pageSize: Int(r.page.pageSize), nowMicros: clock(),
                olderThanMicros: r.hasOlderThan ? r.olderThan.micros : configuration.stuckAfterMicros
            ) { state in
                scope.serves(warehouse: state.warehouseID)
                    && (r.stationKind == .unspecified || r.stationKind == state.kind)
                    && (r.warehouseID.isEmpty || r.warehouseID == state.warehouseID)
            }
            return .tasks(page.tasks, nextPageToken: page.nextPageToken)
        case .task(let taskID, let command, let actor, let commandID, let correlationID):
            let current = try await taskState(taskID)
            if current.status != .unspecified, !configuration.scope.serves(warehouse: current.warehouseID) {
                throw RPCError(.failedPrecondition, "task \(taskID) belongs to warehouse '\(current.warehouseID)'; this bridge serves warehouse '\(configuration.warehouseID)': ask that warehouse's bridge")
            }
            let (state, version, position) = try await taskCommand(taskID, command, actor: actor, commandID: commandID, correlationID: correlationID)
            return .task(state.summary(version: version), version: version, position: position)
        }
    }

    // MARK: - Following the log and planning

    private func follow(_ event: RecordedEvent) async {
        if event.stream.hasPrefix("order-") {
            let id = String(event.stream.dropFirst("order-".count))
            let current = orders[id] ?? (OrderDecider.initialState, 0)
            guard event.streamVersion > current.version else { return }
            if event.streamVersion == current.version + 1, let decoded = try? EventCodec.decode(event, as: OrderDecider.Event.self) {
                orders[id] = (OrderDecider.evolve(current.state, decoded), event.streamVersion)
            } else if let fresh = try? await runner.read(OrderDecider.self, event.stream) {
                orders[id] = fresh
            }
            dirtyOrders[id] = 0
        } else if event.stream.hasPrefix("task-") {
            let id = String(event.stream.dropFirst("task-".count))
            let current = tasks[id] ?? (TaskDecider.initialState, 0)
            guard event.streamVersion > current.version else { return }
            if event.streamVersion == current.version + 1, let decoded = try? EventCodec.decode(event, as: TaskDecider.Event.self) {
                index(id, TaskDecider.evolve(current.state, decoded), version: event.streamVersion)
            } else if let fresh = try? await runner.read(TaskDecider.self, event.stream) {
                index(id, fresh.state, version: fresh.version)
            }
        }
    }

    /// Keeps the task index (and the orders to plan and the tasks to dispatch) up to date.
    func index(_ id: String, _ state: TaskDecider.State, version: Int64) {
        if let current = tasks[id], current.version >= version { return }
        tasks[id] = (state, version)
        if state.status == .pending, configuration.scope.serves(warehouse: state.warehouseID) { pending.insert(id) } else { pending.remove(id) }
        if !state.orderID.isEmpty {
            tasksByOrder[state.orderID, default: []].insert(id)
            dirtyOrders[state.orderID] = dirtyOrders[state.orderID] ?? 0
        }
    }

    /// Plans the orders that changed and dispatches the tasks that made (instead of on the next tick).
    private func planNow() async {
        guard !dirtyOrders.isEmpty else { return }
        await planDirtyOrders()
        await dispatchPending()
    }

    /// Plans every order whose order or task streams changed, and runs the plans: every order's
    /// task creations and order command in one append (``create(_:)``), then the task commands
    /// (cancellations) one by one. An order whose part failed is planned again on a later pass,
    /// at most five times.
    private func planDirtyOrders() async {
        guard !dirtyOrders.isEmpty, !stopping else { return }
        await flushReports()
        var plans: [(orderID: String, plan: TaskPlanner.Plan, attempts: Int)] = []
        for id in dirtyOrders.keys.sorted() {
            let attempts = (dirtyOrders[id] ?? 0) + 1
            dirtyOrders[id] = nil
            guard let order = orders[id]?.state else { continue }
            var states: [String: TaskDecider.State] = [:]
            for taskID in tasksByOrder[id] ?? [] { states[taskID] = tasks[taskID]?.state }
            let plan = configuration.scope.restrict(TaskPlanner.plan(order: order, tasks: states), order: order, tasks: states)
            if !plan.isEmpty { plans.append((id, plan, attempts)) }
        }
        guard !plans.isEmpty else { return }
        let creating = plans.filter { !$0.plan.create.isEmpty || $0.plan.orderCommand != nil }.map { (orderID: $0.orderID, plan: $0.plan) }
        var failed = creating.isEmpty ? [] : await create(creating)
        for (id, plan, _) in plans where !failed.contains(id) {
            do {
                for c in plan.taskCommands {
                    _ = try await taskCommand(c.taskID, c.command, actor: .system, commandID: "", correlationID: "plan-\(id)")
                }
            } catch {
                logger.warning("planning failed", metadata: ["order": "\(id)", "error": "\(error)"])
                failed.insert(id)
            }
        }
        for (id, _, attempts) in plans where failed.contains(id) {
            if let fresh = try? await runner.read(OrderDecider.self, StreamName.order(id)) { orders[id] = fresh }
            dirtyOrders[id] = attempts >= 5 ? nil : attempts
        }
    }
}
