import ToteProto

/// What a new task is: built by ``TaskPlanner`` from an order.
public struct TaskSpec: Sendable, Equatable {
    /// Deterministic id derived from the order (see ``TaskPlanner``).
    public var taskID: String
    public var kind: Tote_V1_StationKind
    public var orderID: String
    public var warehouseID: String
    /// The zone of a pick task's lines; empty when none.
    public var zone: String
    public var lines: [Tote_V1_TaskLine]
    /// Pack tasks: the pick tasks whose units it packs.
    public var sourceTaskIDs: [String]
    /// Pack tasks: the shipping address.
    public var shipTo: Tote_V1_Address

    public init(taskID: String, kind: Tote_V1_StationKind, orderID: String, warehouseID: String = "", zone: String = "", lines: [Tote_V1_TaskLine], sourceTaskIDs: [String] = [], shipTo: Tote_V1_Address = Tote_V1_Address()) {
        self.taskID = taskID
        self.kind = kind
        self.orderID = orderID
        self.warehouseID = warehouseID
        self.zone = zone
        self.lines = lines
        self.sourceTaskIDs = sourceTaskIDs
        self.shipTo = shipTo
    }
}

/// What can be asked of a task. Controller reports come from the bridge; operator commands from
/// `tote.v1.Operations` (actor from the ``CommandContext``, a reason required); system commands from
/// the bridge's process managers (planner, grace-period expiry).
public enum TaskCommand: Sendable, Equatable {
    /// Creates the task. → PENDING. The same spec again is a no-op.
    case create(TaskSpec)
    /// Gives the task to a controller with a new command (id and the controller's next sequence).
    /// PENDING → DISPATCHED (TaskAssigned + TaskDispatched). The same command id again is a no-op.
    case dispatch(controllerID: String, commandID: String, sequence: UInt64)
    /// An `ActionState` reported by `controllerID`. Reports about another command than the task's
    /// current one, repeats and reports going backwards are no-ops.
    case report(Tote_V1_ActionState, controllerID: String)
    /// An `ExceptionReport` about the task. Records TaskExceptionRaised once per exception id.
    case raiseException(Tote_V1_ExceptionReport, controllerID: String)
    /// No station can take the task. Non-final → NEEDS_INTERVENTION.
    case requireIntervention(reason: String)
    /// Dispatch again: FAILED, NEEDS_INTERVENTION, DISPATCHED, ACCEPTED or RUNNING → PENDING.
    case retry(reason: String)
    /// Take the task from its controller; `targetControllerID` empty = any station of its kind.
    /// Non-final → PENDING.
    case reassign(targetControllerID: String, reason: String)
    /// Cancel the task. Non-final → CANCELLED; CANCELLED again is a no-op.
    case cancel(reason: String)
    /// Record the task as done by hand; `picked` empty = every line in full. Non-final → DONE;
    /// DONE again is a no-op.
    case markDone(picked: [Tote_V1_PickedQuantity], packed: Tote_V1_PackResult?, reason: String)
}

/// The warehouse task aggregate (stream `task-<id>`, see ``StreamName/task(_:)``):
///
///     PENDING → DISPATCHED → ACCEPTED → RUNNING → DONE
///     DISPATCHED | ACCEPTED | RUNNING → FAILED (→ PENDING when retriable and attempts are left)
///     FAILED | NEEDS_INTERVENTION | DISPATCHED | ACCEPTED | RUNNING → PENDING (retry)
///     any non-final → PENDING (reassign), CANCELLED (cancel), DONE (mark done), NEEDS_INTERVENTION
///
/// Every transition is an event, so a restarted bridge resumes from the log. Refusals name the
/// state with ``DomainError/wrongState(_:currentState:)`` (`TASK_STATE_*`).
public enum TaskDecider: Decider {
    public typealias Command = TaskCommand
    public typealias Event = Tote_V1_TaskEvent

    /// Dispatches per task before a retriable failure needs an operator.
    public static let maxAutomaticAttempts: UInt32 = 3

    /// What the decider knows about one task.
    public struct State: Sendable, Equatable {
        public var status: Tote_V1_TaskState = .unspecified
        public var taskID = ""
        public var kind: Tote_V1_StationKind = .unspecified
        public var orderID = ""
        public var warehouseID = ""
        public var zone = ""
        public var lines: [Tote_V1_TaskLine] = []
        public var sourceTaskIDs: [String] = []
        public var shipTo = Tote_V1_Address()
        /// The controller holding (or last holding) the task; empty when none.
        public var controllerID = ""
        /// The open command at ``controllerID``; empty when none.
        public var commandID = ""
        public var sequence: UInt64 = 0
        /// Dispatches so far.
        public var attempts: UInt32 = 0
        /// Only this controller may take it; empty = any of its kind.
        public var targetControllerID = ""
        public var lastFailureCode = ""
        public var lastFailureText = ""
        /// What was picked (DONE pick tasks, or partial after a failure).
        public var picked: [Tote_V1_PickedQuantity] = []
        public var packed: Tote_V1_PackResult? = nil
        /// Exceptions recorded (idempotency).
        public var exceptionIDs: Set<String> = []
        /// Exceptions recorded since the last dispatch.
        public var openExceptions: [Tote_V1_ExceptionReport] = []
        public var createdAtMicros: Int64 = 0
        /// When it entered ``status``.
        public var stateSinceMicros: Int64 = 0

        public init() {}

        /// The spec it was created with.
        public var spec: TaskSpec {
            TaskSpec(taskID: taskID, kind: kind, orderID: orderID, warehouseID: warehouseID, zone: zone, lines: lines, sourceTaskIDs: sourceTaskIDs, shipTo: shipTo)
        }
    }

    public static var initialState: State { State() }

    public static func decide(_ command: TaskCommand, state: State, context: CommandContext) throws(DomainError) -> [Tote_V1_TaskEvent] {
        let now = AutomationSupport.timestamp(context.nowMicros)
        if case .create(let spec) = command {
            return try create(spec, state: state, context: context)
        }
        guard state.status != .unspecified else {
            throw DomainError(.notFound, "task not found")
        }
        switch command {
        case .create:
            return []  // handled above

        case .dispatch(let controllerID, let commandID, let sequence):
            var v = Validator()
            v.require(!controllerID.isEmpty, "controller_id", "required")
            v.require(!commandID.isEmpty, "command_id", "required")
            v.require(sequence > 0, "sequence", "must be positive")
            try v.check()
            if state.commandID == commandID && state.status.isAtController { return [] }
            guard state.status == .pending else {
                throw .wrongState("only a PENDING task can be dispatched", currentState: state.status.protoName)
            }
            if !state.targetControllerID.isEmpty && state.targetControllerID != controllerID {
                throw .wrongState("task is reserved for controller \(state.targetControllerID)", currentState: state.status.protoName)
            }
            var assigned = Tote_V1_TaskAssigned()
            assigned.taskID = state.taskID
            assigned.controllerID = controllerID
            assigned.assignedAt = now
            var dispatched = Tote_V1_TaskDispatched()
            dispatched.taskID = state.taskID
            dispatched.controllerID = controllerID
            dispatched.commandID = commandID
            dispatched.sequence = sequence
            dispatched.attempt = state.attempts + 1
            dispatched.dispatchedAt = now
            return [event(.taskAssigned(assigned)), event(.taskDispatched(dispatched))]

        case .report(let report, let controllerID):
            return try decideReport(report, controllerID: controllerID, state: state, context: context)

        case .raiseException(let report, let controllerID):
            guard !report.exceptionID.isEmpty else { throw .invalid("exception_id", "required") }
            if state.exceptionIDs.contains(report.exceptionID) { return [] }
            var e = Tote_V1_TaskExceptionRaised()
            e.taskID = state.taskID
            e.report = report
            e.controllerID = controllerID
            e.recordedAt = now
            return [event(.taskExceptionRaised(e))]

        case .requireIntervention(let reason):
            let reason = try requireReason(reason)
            if state.status == .needsIntervention { return [] }
            guard !state.status.isFinal else {
                throw .wrongState("a finished or cancelled task needs no intervention", currentState: state.status.protoName)
            }
            return [intervention(state: state, reason: reason, context: context)]

        case .retry(let reason):
            let reason = try requireReason(reason)
            guard state.status == .failed || state.status == .needsIntervention || state.status.isAtController else {
                throw .wrongState("only a failed, stuck or dispatched task can be retried", currentState: state.status.protoName)
            }
            return [retried(state: state, reason: reason, context: context)]

        case .reassign(let target, let reason):
            let reason = try requireReason(reason)
            guard !state.status.isFinal else {
                throw .wrongState("a finished or cancelled task cannot be reassigned", currentState: state.status.protoName)
            }
            if target != "" && target == state.controllerID && state.status.isAtController {
                throw .wrongState("task is already at controller \(target)", currentState: state.status.protoName)
            }
            var e = Tote_V1_TaskReassigned()
            e.taskID = state.taskID
            if state.status.isAtController || state.status == .failed {
                e.previousControllerID = state.controllerID
                e.previousCommandID = state.commandID
            }
            e.targetControllerID = target
            e.actorID = context.actor.id
            e.actorRole = context.actor.role
            e.reason = reason
            e.reassignedAt = now
            return [event(.taskReassigned(e))]

        case .cancel(let reason):
            let reason = try requireReason(reason)
            if state.status == .cancelled { return [] }
            guard state.status != .done else {
                throw .wrongState("a finished task cannot be cancelled", currentState: state.status.protoName)
            }
            var e = Tote_V1_TaskCancelled()
            e.taskID = state.taskID
            if state.status.isAtController {
                e.controllerID = state.controllerID
                e.commandID = state.commandID
            }
            e.actorID = context.actor.id
            e.actorRole = context.actor.role
            e.reason = reason
            e.cancelledAt = now
            return [event(.taskCancelled(e))]

        case .markDone(let picked, let packed, let reason):
            let reason = try requireReason(reason)
            if state.status == .done { return [] }
            guard state.status != .cancelled else {
                throw .wrongState("a cancelled task cannot be done", currentState: state.status.protoName)
            }
            var v = Validator()
            let lineIDs = Set(state.lines.map(\.lineID))
            for (i, p) in picked.enumerated() {
                v.require(lineIDs.contains(p.lineID), "picked[\(i)].line_id", "not a line of the task")
            }
            v.require(state.kind == .pick || picked.isEmpty, "picked", "only for pick tasks")
            v.require(state.kind == .pack || packed == nil, "packed", "only for pack tasks")
            try v.check()
            var e = Tote_V1_TaskCompletedByHand()
            e.taskID = state.taskID
            if state.status.isAtController {
                e.controllerID = state.controllerID
                e.commandID = state.commandID
            }
            if state.kind == .pick {
                e.picked = picked.isEmpty ? state.lines.map(fullPick) : picked
            }
            if let packed { e.packed = packed }
            e.actorID = context.actor.id
            e.actorRole = context.actor.role
            e.reason = reason
            e.completedAt = now
            return [event(.taskCompletedByHand(e))]
        }
    }

    private static func create(_ spec: TaskSpec, state: State, context: CommandContext) throws(DomainError) -> [Tote_V1_TaskEvent] {
        var v = Validator()
        v.require(!spec.taskID.isEmpty, "task_id", "required")
        v.require(!spec.orderID.isEmpty, "order_id", "required")
        v.require(spec.kind == .pick || spec.kind == .pack, "kind", "must be PICK or PACK")
        v.require(!spec.lines.isEmpty, "lines", "at least one line")
        for (i, line) in spec.lines.enumerated() {
            v.require(!line.sku.isEmpty, "lines[\(i)].sku", "required")
            v.require(line.quantity > 0, "lines[\(i)].quantity", "must be positive")
            v.require(spec.kind == .pack || !line.location.isEmpty, "lines[\(i)].location", "required for a pick")
        }
        try v.check()
        if state.status != .unspecified {
            if state.spec == spec { return [] }
            throw DomainError(.alreadyExists, "task \(spec.taskID) exists with other details")
        }
        var e = Tote_V1_TaskCreated()
        e.taskID = spec.taskID
        e.kind = spec.kind
        e.orderID = spec.orderID
        e.warehouseID = spec.warehouseID
        e.zone = spec.zone
        e.lines = spec.lines
        e.sourceTaskIds = spec.sourceTaskIDs
        e.shipTo = spec.shipTo
        e.createdAt = AutomationSupport.timestamp(context.nowMicros)
        e.actorID = context.actor.id
        e.actorRole = context.actor.role
        return [event(.taskCreated(e))]
    }

    private static func decideReport(_ report: Tote_V1_ActionState, controllerID: String, state: State, context: CommandContext) throws(DomainError) -> [Tote_V1_TaskEvent] {
        // Stale (an earlier dispatch, another controller) or late (task moved on): nothing changes.
        guard state.status.isAtController, report.commandID == state.commandID, controllerID == state.controllerID else { return [] }
        // The bridge's clock, not the controller's: stuck-task ages must not depend on station clocks.
        let at = AutomationSupport.timestamp(context.nowMicros)
        switch report.status {
        case .accepted:
            guard state.status == .dispatched else { return [] }
            var e = Tote_V1_TaskAccepted()
            e.taskID = state.taskID
            e.commandID = report.commandID
            e.controllerID = controllerID
            e.at = at
            return [event(.taskAccepted(e))]
        case .running:
            guard state.status != .running else { return [] }
            var e = Tote_V1_TaskStarted()
            e.taskID = state.taskID
            e.commandID = report.commandID
            e.controllerID = controllerID
            e.at = at
            return [event(.taskStarted(e))]
        case .finished:
            var e = Tote_V1_TaskFinished()
            e.taskID = state.taskID
            e.commandID = report.commandID
            e.controllerID = controllerID
            e.picked = report.picked
            if report.hasPacked { e.packed = report.packed }
            e.at = at
            return [event(.taskFinished(e))]
        case .failed:
            var e = Tote_V1_TaskFailed()
            e.taskID = state.taskID
            e.commandID = report.commandID
            e.controllerID = controllerID
            e.failureCode = report.failureCode
            e.failureText = report.failureText
            e.retriable = report.retriable
            e.picked = report.picked
            e.at = at
            var events = [event(.taskFailed(e))]
            var after = evolve(state, events[0])
            after.stateSinceMicros = context.nowMicros
            let system = CommandContext(actor: .system, nowMicros: context.nowMicros)
            if report.retriable {
                if state.attempts < maxAutomaticAttempts {
                    events.append(retried(state: after, reason: "automatic retry after \(report.failureCode)", context: system))
                } else {
                    events.append(intervention(state: after, reason: "failed \(state.attempts) times, last: \(report.failureCode)", context: system))
                }
            }
            return events
        case .unspecified, .UNRECOGNIZED:
            throw .invalid("status", "must be ACCEPTED, RUNNING, FINISHED or FAILED")
        }
    }

    private static func retried(state: State, reason: String, context: CommandContext) -> Tote_V1_TaskEvent {
        var e = Tote_V1_TaskRetried()
        e.taskID = state.taskID
        if state.status.isAtController {
            e.previousControllerID = state.controllerID
            e.previousCommandID = state.commandID
        }
        e.actorID = context.actor.id
        e.actorRole = context.actor.role
        e.reason = reason
        e.retriedAt = AutomationSupport.timestamp(context.nowMicros)
        return event(.taskRetried(e))
    }

    private static func intervention(state: State, reason: String, context: CommandContext) -> Tote_V1_TaskEvent {
        var e = Tote_V1_TaskInterventionRequired()
        e.taskID = state.taskID
        if state.status.isAtController {
            e.controllerID = state.controllerID
            e.commandID = state.commandID
        }
        e.actorID = context.actor.id
        e.actorRole = context.actor.role
        e.reason = reason
        e.at = AutomationSupport.timestamp(context.nowMicros)
        return event(.taskInterventionRequired(e))
    }

    private static func requireReason(_ reason: String) throws(DomainError) -> String {
        let trimmed = AutomationSupport.trimmed(reason)
        guard !trimmed.isEmpty else { throw .invalid("reason", "required") }
        return String(trimmed)
    }

    private static func fullPick(_ line: Tote_V1_TaskLine) -> Tote_V1_PickedQuantity {
        var p = Tote_V1_PickedQuantity()
        p.lineID = line.lineID
        p.sku = line.sku
        p.location = line.location
        p.quantity = line.quantity
        return p
    }

    public static func evolve(_ state: State, _ event: Tote_V1_TaskEvent) -> State {
        var s = state
        switch event.event {
        case .taskCreated(let e)?:
            s.status = .pending
            s.taskID = e.taskID
            s.kind = e.kind
            s.orderID = e.orderID
            s.warehouseID = e.warehouseID
            s.zone = e.zone
            s.lines = e.lines
            s.sourceTaskIDs = e.sourceTaskIds
            s.shipTo = e.shipTo
            s.createdAtMicros = e.createdAt.unixMicros
            s.stateSinceMicros = e.createdAt.unixMicros
        case .taskAssigned(let e)?:
            s.controllerID = e.controllerID
        case .taskDispatched(let e)?:
            s.status = .dispatched
            s.controllerID = e.controllerID
            s.commandID = e.commandID
            s.sequence = e.sequence
            s.attempts = e.attempt
            s.targetControllerID = ""
            s.openExceptions = []
            s.stateSinceMicros = e.dispatchedAt.unixMicros
        case .taskAccepted(let e)?:
            s.status = .accepted
            s.stateSinceMicros = e.at.unixMicros
        case .taskStarted(let e)?:
            s.status = .running
            s.stateSinceMicros = e.at.unixMicros
        case .taskFinished(let e)?:
            s.status = .done
            s.commandID = ""
            s.picked = e.picked
            s.packed = e.hasPacked ? e.packed : nil
            s.stateSinceMicros = e.at.unixMicros
        case .taskFailed(let e)?:
            s.status = .failed
            s.commandID = ""
            s.lastFailureCode = e.failureCode
            s.lastFailureText = e.failureText
            s.picked = e.picked
            s.stateSinceMicros = e.at.unixMicros
        case .taskExceptionRaised(let e)?:
            s.exceptionIDs.insert(e.report.exceptionID)
            s.openExceptions.append(e.report)
        case .taskReassigned(let e)?:
            s.status = .pending
            s.commandID = ""
            s.controllerID = ""
            s.targetControllerID = e.targetControllerID
            s.stateSinceMicros = e.reassignedAt.unixMicros
        case .taskCancelled(let e)?:
            s.status = .cancelled
            s.commandID = ""
            s.stateSinceMicros = e.cancelledAt.unixMicros
        case .taskRetried(let e)?:
            s.status = .pending
            s.commandID = ""
            s.controllerID = ""
            s.stateSinceMicros = e.retriedAt.unixMicros
        case .taskCompletedByHand(let e)?:
            s.status = .done
            s.commandID = ""
            s.picked = e.picked
            s.packed = e.hasPacked ? e.packed : nil
            s.stateSinceMicros = e.completedAt.unixMicros
        case .taskInterventionRequired(let e)?:
            s.status = .needsIntervention
            s.commandID = ""
            s.stateSinceMicros = e.at.unixMicros
        case nil:
            break
        }
        return s
    }

    private static func event(_ e: Tote_V1_TaskEvent.OneOf_Event) -> Tote_V1_TaskEvent {
        var envelope = Tote_V1_TaskEvent()
        envelope.event = e
        return envelope
    }
}

extension TaskDecider.State {
    /// The task as operators see it (`tote.v1.TaskSummary`), for the Operations service's replies.
    public func summary(version: Int64, stuckReason: String = "") -> Tote_V1_TaskSummary {
        var t = Tote_V1_TaskSummary()
        t.taskID = taskID
        t.orderID = orderID
        t.stationKind = kind
        t.state = status
        t.controllerID = status.isAtController ? controllerID : ""
        t.attempts = attempts
        t.lastFailureCode = lastFailureCode
        t.lastFailureText = lastFailureText
        t.createdAt = AutomationSupport.timestamp(createdAtMicros)
        t.stateSince = AutomationSupport.timestamp(stateSinceMicros)
        t.openExceptions = openExceptions
        t.stuckReason = stuckReason
        t.version = version
        return t
    }

    /// Why an operator should look at the task at `nowMicros`, or nil: FAILED, NEEDS_INTERVENTION,
    /// or a non-final state held for at least `olderThanMicros`.
    public func stuckReason(nowMicros: Int64, olderThanMicros: Int64) -> String? {
        switch status {
        case .failed: return "FAILED: \(lastFailureCode)"
        case .needsIntervention: return "needs intervention"
        case .unspecified, .done, .cancelled: return nil
        default:
            let age = nowMicros - stateSinceMicros
            guard age >= olderThanMicros else { return nil }
            return "\(status.protoName) for \(age / 60_000_000) min"
        }
    }
}
