import ToteProto

extension StreamName {
    /// A warehouse task (pick or pack): `task-<id>`.
    public static func task(_ id: String) -> String { "task-\(id)" }
    /// A warehouse controller's connection history: `controller-<id>`.
    public static func controller(_ id: String) -> String { "controller-\(id)" }
}

/// Small helpers shared by the automation deciders and state machines.
enum AutomationSupport {
    static func timestamp(_ micros: Int64) -> Tote_V1_Timestamp {
        var t = Tote_V1_Timestamp()
        t.unixMicros = micros
        return t
    }

    static func duration(_ micros: Int64) -> Tote_V1_Duration {
        var d = Tote_V1_Duration()
        d.micros = micros
        return d
    }

    /// `text` without leading and trailing white space.
    static func trimmed(_ text: String) -> Substring {
        var s = Substring(text)
        while s.first?.isWhitespace == true { s.removeFirst() }
        while s.last?.isWhitespace == true { s.removeLast() }
        return s
    }
}

extension Tote_V1_TaskState {
    /// The proto enum value's name, e.g. `TASK_STATE_DONE` (what ``DomainError/currentState`` carries).
    public var protoName: String {
        switch self {
        case .unspecified: "TASK_STATE_UNSPECIFIED"
        case .pending: "TASK_STATE_PENDING"
        case .dispatched: "TASK_STATE_DISPATCHED"
        case .accepted: "TASK_STATE_ACCEPTED"
        case .running: "TASK_STATE_RUNNING"
        case .done: "TASK_STATE_DONE"
        case .failed: "TASK_STATE_FAILED"
        case .cancelled: "TASK_STATE_CANCELLED"
        case .needsIntervention: "TASK_STATE_NEEDS_INTERVENTION"
        case .UNRECOGNIZED(let n): "TASK_STATE_\(n)"
        }
    }

    /// DONE or CANCELLED: nothing more happens to the task.
    public var isFinal: Bool { self == .done || self == .cancelled }

    /// DISPATCHED, ACCEPTED or RUNNING: a controller holds an open command for the task.
    public var isAtController: Bool { self == .dispatched || self == .accepted || self == .running }
}

extension Tote_V1_TaskEvent: DomainEvent {
    /// The case message's name, e.g. `TaskDispatched`.
    public var typeName: String {
        switch event {
        case .taskCreated?: "TaskCreated"
        case .taskAssigned?: "TaskAssigned"
        case .taskDispatched?: "TaskDispatched"
        case .taskAccepted?: "TaskAccepted"
        case .taskStarted?: "TaskStarted"
        case .taskFinished?: "TaskFinished"
        case .taskFailed?: "TaskFailed"
        case .taskExceptionRaised?: "TaskExceptionRaised"
        case .taskReassigned?: "TaskReassigned"
        case .taskCancelled?: "TaskCancelled"
        case .taskRetried?: "TaskRetried"
        case .taskCompletedByHand?: "TaskCompletedByHand"
        case .taskInterventionRequired?: "TaskInterventionRequired"
        case nil: "TaskEvent"
        }
    }
}

extension Tote_V1_ControllerEvent: DomainEvent {
    /// The case message's name, e.g. `ControllerConnected`.
    public var typeName: String {
        switch event {
        case .controllerConnected?: "ControllerConnected"
        case .controllerDisconnected?: "ControllerDisconnected"
        case .controllerGraceExpired?: "ControllerGraceExpired"
        case .controllerCommandIssued?: "ControllerCommandIssued"
        case .controllerCommandClosed?: "ControllerCommandClosed"
        case .controllerReportRecorded?: "ControllerReportRecorded"
        case .controllerExceptionRaised?: "ControllerExceptionRaised"
        case nil: "ControllerEvent"
        }
    }
}
