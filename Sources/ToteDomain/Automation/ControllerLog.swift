import ToteProto

/// The fold of a controller's stream (`controller-<id>`, see ``StreamName/controller(_:)``): what a
/// (re)started bridge needs to resume a controller exactly where it was — the highest sequence
/// issued, the open commands, the highest report recorded and the last connection state.
///
/// The bridge appends ``Tote_V1_ControllerCommandIssued`` atomically with the task's
/// `TaskDispatched`, and ``Tote_V1_ControllerReportRecorded`` atomically with the task events a
/// report caused, so this state never disagrees with the tasks.
public enum ControllerLog {
    /// What the log says about one controller.
    public struct State: Sendable, Equatable {
        public var controllerID = ""
        public var stationKind: Tote_V1_StationKind = .unspecified
        /// The last recorded connection state (`.unspecified` = never connected).
        public var connection: Tote_V1_ConnectionState = .unspecified
        /// When it went offline or broken; nil while online or never connected.
        public var lostSinceMicros: Int64? = nil
        /// The highest command sequence ever issued to it.
        public var highestSequenceIssued: UInt64 = 0
        /// Open commands, by sequence.
        public var openCommands: [Tote_V1_BridgeCommand] = []
        /// The task of each open command, by command id.
        public var taskOfCommand: [String: String] = [:]
        /// The highest report sequence recorded.
        public var lastReportRecorded: UInt64 = 0

        public init() {}
    }

    /// The state after `event`.
    public static func evolve(_ state: State, _ event: Tote_V1_ControllerEvent) -> State {
        var s = state
        switch event.event {
        case .controllerConnected(let e)?:
            s.controllerID = e.controllerID
            s.stationKind = e.stationKind
            s.connection = .online
            s.lostSinceMicros = nil
            s.highestSequenceIssued = max(s.highestSequenceIssued, e.lastSequenceSeen)
        case .controllerDisconnected(let e)?:
            s.controllerID = e.controllerID
            s.connection = e.state
            s.lostSinceMicros = e.disconnectedAt.unixMicros
        case .controllerGraceExpired?, .controllerExceptionRaised?:
            break
        case .controllerCommandIssued(let e)?:
            s.controllerID = e.controllerID
            s.highestSequenceIssued = max(s.highestSequenceIssued, e.command.sequence)
            if s.taskOfCommand[e.command.commandID] == nil {
                s.openCommands.append(e.command)
                s.openCommands.sort { $0.sequence < $1.sequence }
                s.taskOfCommand[e.command.commandID] = e.taskID
            }
        case .controllerCommandClosed(let e)?:
            s.close(commandID: e.commandID)
        case .controllerReportRecorded(let e)?:
            s.lastReportRecorded = max(s.lastReportRecorded, e.reportSequence)
            if e.status == .finished || e.status == .failed { s.close(commandID: e.commandID) }
        case nil:
            break
        }
        return s
    }

    /// Folds `events` from `state`.
    public static func fold<S: Sequence>(_ events: S, from state: State = State()) -> State where S.Element == Tote_V1_ControllerEvent {
        events.reduce(state, evolve)
    }

    /// The event recording that `command` (about `taskID`) was issued to `controllerID`.
    public static func issued(_ command: Tote_V1_BridgeCommand, taskID: String, controllerID: String, nowMicros: Int64) -> Tote_V1_ControllerEvent {
        var e = Tote_V1_ControllerCommandIssued()
        e.controllerID = controllerID
        e.command = command
        e.taskID = taskID
        e.issuedAt = AutomationSupport.timestamp(nowMicros)
        var envelope = Tote_V1_ControllerEvent()
        envelope.event = .controllerCommandIssued(e)
        return envelope
    }

    /// The event recording that a command is no longer open.
    public static func closed(commandID: String, sequence: UInt64, controllerID: String, reason: String, nowMicros: Int64) -> Tote_V1_ControllerEvent {
        var e = Tote_V1_ControllerCommandClosed()
        e.controllerID = controllerID
        e.commandID = commandID
        e.sequence = sequence
        e.reason = reason
        e.at = AutomationSupport.timestamp(nowMicros)
        var envelope = Tote_V1_ControllerEvent()
        envelope.event = .controllerCommandClosed(e)
        return envelope
    }

    /// The event recording a station-wide exception (a report about no task).
    public static func stationException(_ report: Tote_V1_ExceptionReport, controllerID: String, nowMicros: Int64) -> Tote_V1_ControllerEvent {
        var e = Tote_V1_ControllerExceptionRaised()
        e.controllerID = controllerID
        e.report = report
        e.recordedAt = AutomationSupport.timestamp(nowMicros)
        var envelope = Tote_V1_ControllerEvent()
        envelope.event = .controllerExceptionRaised(e)
        return envelope
    }

    /// The event recording that a report was recorded (append it with the task events it caused).
    public static func reportRecorded(_ report: ControllerSession.Report, controllerID: String, nowMicros: Int64) -> Tote_V1_ControllerEvent {
        var e = Tote_V1_ControllerReportRecorded()
        e.controllerID = controllerID
        e.reportSequence = report.reportSequence
        e.commandID = report.commandID
        e.taskID = report.taskID
        if case .actionState(let a) = report { e.status = a.status }
        e.at = AutomationSupport.timestamp(nowMicros)
        var envelope = Tote_V1_ControllerEvent()
        envelope.event = .controllerReportRecorded(e)
        return envelope
    }
}

extension ControllerLog.State {
    mutating func close(commandID: String) {
        guard taskOfCommand.removeValue(forKey: commandID) != nil else { return }
        openCommands.removeAll { $0.commandID == commandID }
    }
}
