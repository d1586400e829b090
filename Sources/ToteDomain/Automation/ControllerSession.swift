import ToteProto

/// The bridge's side of one controller's sessions (docs/AUTOMATION.md), as a state machine with no
/// I/O in the postgres-nio style: the bridge feeds it ``Input``s with the current time and performs
/// the ``Action``s it returns (send on a stream, append an event, close a stream, reassign tasks).
///
/// One value per controller id lives across that controller's connections, so it owns what must
/// survive a reconnect: the outbox of open commands with their sequences, the report sequences
/// recorded, and how long the controller has been away. A restarted bridge rebuilds it from the
/// controller's stream (``init(controllerID:configuration:restoring:nowMicros:)``).
///
/// Sending new work: ``makeCommand(commandID:action:nowMicros:)`` reserves the next sequence; the
/// bridge appends `TaskDispatched` and ``ControllerLog/issued(_:taskID:controllerID:nowMicros:)``,
/// then feeds ``Input/enqueue(_:)`` (or ``Input/abandon(sequence:)`` if the append failed). Commands
/// go out in sequence order, at most ``Configuration/maxUnacknowledged`` unacknowledged at a time.
public struct ControllerSession: Sendable, Equatable {
    /// Timings and limits of the protocol.
    public struct Configuration: Sendable, Equatable {
        /// How often each side sends a heartbeat (sent in the welcome).
        public var heartbeatIntervalMicros: Int64
        /// Heartbeat intervals of silence after which a session is broken.
        public var missedHeartbeats: Int64
        /// The window N: commands sent and not acknowledged (sent in the welcome).
        public var maxUnacknowledged: Int
        /// A command not acknowledged for this long is sent again (same id and sequence).
        public var redeliveryTimeoutMicros: Int64
        /// The first message must be a hello within this time.
        public var helloTimeoutMicros: Int64
        /// A controller away for longer loses its open tasks.
        public var gracePeriodMicros: Int64

        public init(heartbeatIntervalMicros: Int64 = 2_000_000, missedHeartbeats: Int64 = 3, maxUnacknowledged: Int = 32, redeliveryTimeoutMicros: Int64 = 5_000_000, helloTimeoutMicros: Int64 = 10_000_000, gracePeriodMicros: Int64 = 30_000_000) {
            self.heartbeatIntervalMicros = heartbeatIntervalMicros
            self.missedHeartbeats = missedHeartbeats
            self.maxUnacknowledged = maxUnacknowledged
            self.redeliveryTimeoutMicros = redeliveryTimeoutMicros
            self.helloTimeoutMicros = helloTimeoutMicros
            self.gracePeriodMicros = gracePeriodMicros
        }
    }

    /// The bridge's id for one accepted `Automation/Connect` call (e.g. the connection and stream id).
    public typealias ConnectionID = UInt64

    /// The status a stream is ended with (gRPC numbering, as in docs/PROTOCOL.md §7).
    public enum CloseStatus: Int32, Sendable, Equatable {
        case ok = 0
        case invalidArgument = 3
        case deadlineExceeded = 4
        case aborted = 10
        case unavailable = 14
    }

    /// A controller report to record.
    public enum Report: Sendable, Equatable {
        case actionState(Tote_V1_ActionState)
        case exception(Tote_V1_ExceptionReport)

        /// The controller's report counter value.
        public var reportSequence: UInt64 {
            switch self {
            case .actionState(let a): a.reportSequence
            case .exception(let e): e.reportSequence
            }
        }

        /// The command it concerns (empty for a station-wide exception).
        public var commandID: String {
            switch self {
            case .actionState(let a): a.commandID
            case .exception(let e): e.commandID
            }
        }

        /// The task it concerns (empty for a station-wide exception).
        public var taskID: String {
            switch self {
            case .actionState(let a): a.taskID
            case .exception(let e): e.taskID
            }
        }
    }

    /// What happens to the session.
    public enum Input: Sendable, Equatable {
        /// A controller opened an `Automation/Connect` call (routed here by its hello's controller id).
        case streamOpened(ConnectionID)
        /// A message arrived on a stream.
        case received(ConnectionID, Tote_V1_ControllerMessage)
        /// The controller ended its side in order.
        case streamEnded(ConnectionID)
        /// The stream or its connection failed (reset, transport error).
        case streamFailed(ConnectionID, reason: String)
        /// Time passed: heartbeats, redelivery, timeouts, grace period.
        case tick
        /// A command made by ``makeCommand(commandID:action:nowMicros:)`` is recorded: send it.
        case enqueue(Tote_V1_BridgeCommand)
        /// A sequence reserved by ``makeCommand(commandID:action:nowMicros:)`` will never be used.
        case abandon(sequence: UInt64)
        /// A command is no longer open (task cancelled, reassigned, retried or done by hand).
        case commandClosed(commandID: String)
        /// Reports up to this sequence are recorded in the log: acknowledge them.
        case reportsRecorded(upTo: UInt64)
        /// The bridge stops (shutdown or lost leadership).
        case shutdown
    }

    /// What the bridge must do.
    public enum Action: Sendable, Equatable {
        /// Write a message on the stream (welcome, first delivery of a command, heartbeat, ack).
        case send(ConnectionID, Tote_V1_BridgeMessage)
        /// Write a command again, unchanged (its ack is overdue, or it is resent after a reconnect).
        case redeliver(ConnectionID, Tote_V1_BridgeCommand)
        /// Append to the controller's stream.
        case record(Tote_V1_ControllerEvent)
        /// Record a report (decide the task command it means, append with
        /// ``ControllerLog/reportRecorded(_:controllerID:nowMicros:)``), then feed ``Input/reportsRecorded(upTo:)``.
        case recordReport(Report)
        /// The controller's connection state changed (the dispatcher's view of available stations).
        case markConnection(Tote_V1_ConnectionState)
        /// End the stream with this status.
        case close(ConnectionID, CloseStatus, String)
        /// The grace period expired: reassign these tasks or raise them for intervention.
        case reassignTasks([String])
    }

    /// Where the session is.
    public enum Phase: Sendable, Equatable {
        /// No stream.
        case disconnected
        /// A stream is open, waiting for the hello.
        case awaitingHello(ConnectionID, openedAt: Int64)
        /// Welcomed.
        case online(ConnectionID)
    }

    /// One open command and its delivery on the current stream.
    public struct Entry: Sendable, Equatable {
        public enum Delivery: Sendable, Equatable {
            /// Not sent on the current stream.
            case pending
            /// Sent, not acknowledged.
            case inFlight(sentAt: Int64)
            /// The controller has it.
            case acknowledged
        }
        public var command: Tote_V1_BridgeCommand
        public var delivery: Delivery
        /// Times written on any stream.
        public var writes: Int
    }

    public let controllerID: String
    public let configuration: Configuration
    public private(set) var phase: Phase = .disconnected
    /// The last connection state recorded.
    public private(set) var connection: Tote_V1_ConnectionState = .unspecified
    /// When the controller went away (nil while online).
    public private(set) var lostSinceMicros: Int64?
    /// True once the grace period expiry was handled for the current absence.
    public private(set) var graceHandled = false
    /// Open commands by sequence.
    public private(set) var outbox: [Entry] = []
    /// The highest sequence ever reserved or issued.
    public private(set) var highestSequenceIssued: UInt64 = 0
    /// Sequences reserved by ``makeCommand(commandID:action:nowMicros:)`` and not yet enqueued.
    public private(set) var reserved: Set<UInt64> = []
    /// The highest report sequence recorded in the log.
    public private(set) var lastReportRecorded: UInt64 = 0
    /// The highest report sequence handed to the bridge for recording in this session.
    public private(set) var lastReportAccepted: UInt64 = 0
    /// This session's id (from the welcome).
    public private(set) var sessionID = ""
    /// The hello of the current or last session.
    public private(set) var hello: Tote_V1_ControllerHello?
    /// The last heartbeat received.
    public private(set) var lastHeartbeat: Tote_V1_ControllerHeartbeat?
    /// Per stream: the highest sequence written, and the highest acknowledged.
    public private(set) var highestSent: UInt64 = 0
    public private(set) var highestAcked: UInt64 = 0
    private var lastReceivedAt: Int64 = 0
    private var lastSentAt: Int64 = 0

    /// A controller the log knows nothing about (away since `nowMicros` for the grace period).
    public init(controllerID: String, configuration: Configuration = Configuration(), nowMicros: Int64) {
        self.init(controllerID: controllerID, configuration: configuration, restoring: ControllerLog.State(), nowMicros: nowMicros)
    }

    /// Rebuilds the session from the controller's stream: open commands are redelivered when it
    /// reconnects; it counts as away since `nowMicros` (or since the log says, if earlier).
    public init(controllerID: String, configuration: Configuration = Configuration(), restoring log: ControllerLog.State, nowMicros: Int64) {
        self.controllerID = controllerID
        self.configuration = configuration
        connection = log.connection
        lostSinceMicros = min(log.lostSinceMicros ?? nowMicros, nowMicros)
        outbox = log.openCommands.map { Entry(command: $0, delivery: .pending, writes: 0) }
        highestSequenceIssued = log.highestSequenceIssued
        lastReportRecorded = log.lastReportRecorded
        lastReportAccepted = log.lastReportRecorded
    }

    /// The task ids of the open pick and pack commands.
    public var openTaskIDs: [String] {
        outbox.compactMap { entry in
            switch entry.command.action {
            case .pickTask(let t)?: t.taskID
            case .packTask(let t)?: t.taskID
            default: nil
            }
        }
    }

    /// Commands sent on the current stream and not acknowledged.
    public var unacknowledgedCount: Int {
        outbox.reduce(0) { n, e in if case .inFlight = e.delivery { n + 1 } else { n } }
    }

    /// True when a hello was answered and the stream is open.
    public var isOnline: Bool { if case .online = phase { true } else { false } }

    /// Why a hello is refused (INVALID_ARGUMENT), or nil if it is acceptable. The bridge checks it
    /// before routing a new stream to the session of `hello.controller_id`.
    public static func helloProblem(_ hello: Tote_V1_ControllerHello) -> String? {
        let id = hello.controllerID.utf8
        let allowed = id.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2E || c == 0x5F || c == 0x2D
        }
        if id.isEmpty || id.count > 64 || !allowed { return "controller_id must be 1-64 characters of A-Z a-z 0-9 . _ -" }
        if hello.stationKind != .pick && hello.stationKind != .pack { return "station_kind must be PICK or PACK" }
        return nil
    }

    /// Reserves the next sequence and builds the command; record it, then feed ``Input/enqueue(_:)``.
    public mutating func makeCommand(commandID: String, action: Tote_V1_BridgeCommand.OneOf_Action, nowMicros: Int64, priority: Int32 = 0) -> Tote_V1_BridgeCommand {
        highestSequenceIssued += 1
        reserved.insert(highestSequenceIssued)
        var c = Tote_V1_BridgeCommand()
        c.commandID = commandID
        c.sequence = highestSequenceIssued
        c.issuedAt = AutomationSupport.timestamp(nowMicros)
        c.priority = priority
        c.action = action
        return c
    }

    /// Feeds one input; returns what to do, in order.
    public mutating func handle(_ input: Input, nowMicros now: Int64) -> [Action] {
        switch input {
        case .streamOpened(let c):
            var actions: [Action] = []
            switch phase {
            case .disconnected:
                break
            case .awaitingHello(let old, _):
                actions.append(.close(old, .aborted, "replaced by a new session"))
            case .online(let old):
                actions.append(.close(old, .aborted, "replaced by a new session"))
                actions += lose(.offline, reason: "replaced by a new session", now: now)
            }
            phase = .awaitingHello(c, openedAt: now)
            return actions

        case .received(let c, let message):
            switch phase {
            case .awaitingHello(let current, _) where current == c:
                guard case .hello(let h)? = message.body else {
                    phase = .disconnected
                    return [.close(c, .invalidArgument, "the first message must be ControllerHello")]
                }
                return welcome(c, h, now: now)
            case .online(let current) where current == c:
                lastReceivedAt = now
                return receivedOnline(c, message, now: now)
            default:
                return []  // a stale stream
            }

        case .streamEnded(let c):
            switch phase {
            case .awaitingHello(let current, _) where current == c:
                phase = .disconnected
                return [.close(c, .ok, "session ended before hello")]
            case .online(let current) where current == c:
                return [.close(c, .ok, "session ended")] + lose(.offline, reason: "controller ended the session", now: now)
            default:
                return []
            }

        case .streamFailed(let c, let reason):
            switch phase {
            case .awaitingHello(let current, _) where current == c:
                phase = .disconnected
                return []
            case .online(let current) where current == c:
                return lose(.broken, reason: reason, now: now)
            default:
                return []
            }

        case .tick:
            return tick(now: now)

        case .enqueue(let command):
            reserved.remove(command.sequence)
            guard !command.commandID.isEmpty, command.sequence > 0,
                  !outbox.contains(where: { $0.command.commandID == command.commandID }) else { return [] }
            highestSequenceIssued = max(highestSequenceIssued, command.sequence)
            outbox.append(Entry(command: command, delivery: .pending, writes: 0))
            outbox.sort { $0.command.sequence < $1.command.sequence }
            return flush(now: now)

        case .abandon(let sequence):
            guard reserved.remove(sequence) != nil else { return [] }
            return flush(now: now)

        case .commandClosed(let commandID):
            guard let i = outbox.firstIndex(where: { $0.command.commandID == commandID }) else { return [] }
            outbox.remove(at: i)
            return flush(now: now)

        case .reportsRecorded(let upTo):
            guard upTo > lastReportRecorded else { return [] }
            lastReportRecorded = upTo
            lastReportAccepted = max(lastReportAccepted, upTo)
            guard case .online(let c) = phase else { return [] }
            return [send(c, ack(), now: now)]

        case .shutdown:
            switch phase {
            case .disconnected:
                return []
            case .awaitingHello(let c, _):
                phase = .disconnected
                return [.close(c, .unavailable, "bridge shutting down")]
            case .online(let c):
                return [.close(c, .unavailable, "bridge shutting down")] + lose(.offline, reason: "bridge shutting down", now: now)
            }
        }
    }

    // MARK: - Steps

    private mutating func welcome(_ c: ConnectionID, _ h: Tote_V1_ControllerHello, now: Int64) -> [Action] {
        var problem = Self.helloProblem(h)
        if problem == nil && h.controllerID != controllerID { problem = "controller_id \(h.controllerID) does not match the session's \(controllerID)" }
        if let problem {
            phase = .disconnected
            return [.close(c, .invalidArgument, problem)]
        }
        let seen = h.lastSequenceSeen
        highestSequenceIssued = max(highestSequenceIssued, seen)
        for i in outbox.indices {
            outbox[i].delivery = outbox[i].command.sequence <= seen ? .acknowledged : .pending
        }
        highestSent = seen
        highestAcked = seen
        lastReportAccepted = lastReportRecorded
        lastReceivedAt = now
        lastHeartbeat = nil
        hello = h
        sessionID = "\(controllerID)-\(now)"
        phase = .online(c)
        connection = .online
        lostSinceMicros = nil
        graceHandled = false

        var w = Tote_V1_BridgeWelcome()
        w.resumeFromSequence = seen + 1
        w.heartbeatInterval = AutomationSupport.duration(configuration.heartbeatIntervalMicros)
        w.maxUnacknowledged = UInt32(configuration.maxUnacknowledged)
        w.lastReportSequenceRecorded = lastReportRecorded
        w.sessionID = sessionID
        w.protocolVersion = 1
        w.serverTime = AutomationSupport.timestamp(now)
        var message = Tote_V1_BridgeMessage()
        message.body = .welcome(w)

        var connected = Tote_V1_ControllerConnected()
        connected.controllerID = controllerID
        connected.stationKind = h.stationKind
        connected.capabilities = h.capabilities
        connected.warehouseID = h.warehouseID
        connected.zones = h.zones
        connected.lastSequenceSeen = seen
        connected.sessionID = sessionID
        connected.protocolVersion = 1
        connected.sdkVersion = h.sdkVersion
        connected.firmwareVersion = h.firmwareVersion
        connected.connectedAt = AutomationSupport.timestamp(now)
        var event = Tote_V1_ControllerEvent()
        event.event = .controllerConnected(connected)

        return [send(c, message, now: now), .record(event), .markConnection(.online)] + flush(now: now)
    }

    private mutating func receivedOnline(_ c: ConnectionID, _ message: Tote_V1_ControllerMessage, now: Int64) -> [Action] {
        switch message.body {
        case nil:
            return protocolError(c, "a ControllerMessage must carry a body", now: now)
        case .hello?:
            return protocolError(c, "ControllerHello may only be the first message", now: now)
        case .heartbeat(let h)?:
            lastHeartbeat = h
            return []
        case .ack(let a)?:
            if a.sequence > highestSent {
                return protocolError(c, "ack for sequence \(a.sequence), beyond the highest sent (\(highestSent))", now: now)
            }
            guard a.sequence > highestAcked else { return [] }  // a repeat or an older ack
            highestAcked = a.sequence
            for i in outbox.indices where outbox[i].command.sequence <= a.sequence {
                outbox[i].delivery = .acknowledged
            }
            return flush(now: now)
        case .actionState(let s)?:
            return report(c, .actionState(s), now: now)
        case .exceptionReport(let e)?:
            return report(c, .exception(e), now: now)
        }
    }

    private mutating func report(_ c: ConnectionID, _ report: Report, now: Int64) -> [Action] {
        let n = report.reportSequence
        guard n > 0 else { return protocolError(c, "report_sequence must be positive", now: now) }
        if n <= lastReportAccepted {
            // A repeat: acknowledge again if recorded, else its first copy is being recorded.
            return n <= lastReportRecorded ? [send(c, ack(), now: now)] : []
        }
        lastReportAccepted = n
        var actions: [Action] = [.recordReport(report)]
        if case .actionState(let s) = report, s.status == .finished || s.status == .failed,
           let i = outbox.firstIndex(where: { $0.command.commandID == s.commandID }) {
            outbox.remove(at: i)
            actions += flush(now: now)
        }
        return actions
    }

    private mutating func tick(now: Int64) -> [Action] {
        switch phase {
        case .awaitingHello(let c, let openedAt):
            guard now - openedAt >= configuration.helloTimeoutMicros else { return [] }
            phase = .disconnected
            return [.close(c, .deadlineExceeded, "no ControllerHello within \(configuration.helloTimeoutMicros / 1000) ms")]
        case .online(let c):
            if now - lastReceivedAt >= configuration.missedHeartbeats * configuration.heartbeatIntervalMicros {
                return [.close(c, .unavailable, "heartbeat timeout")] + lose(.broken, reason: "heartbeat timeout", now: now)
            }
            var actions: [Action] = []
            for i in outbox.indices {
                if case .inFlight(let sentAt) = outbox[i].delivery, now - sentAt >= configuration.redeliveryTimeoutMicros {
                    outbox[i].delivery = .inFlight(sentAt: now)
                    outbox[i].writes += 1
                    lastSentAt = now
                    actions.append(.redeliver(c, outbox[i].command))
                }
            }
            if now - lastSentAt >= configuration.heartbeatIntervalMicros {
                var hb = Tote_V1_BridgeHeartbeat()
                hb.sentAt = AutomationSupport.timestamp(now)
                var message = Tote_V1_BridgeMessage()
                message.body = .heartbeat(hb)
                actions.append(send(c, message, now: now))
            }
            return actions
        case .disconnected:
            guard !graceHandled, let since = lostSinceMicros, now - since >= configuration.gracePeriodMicros else { return [] }
            graceHandled = true
            let tasks = openTaskIDs
            guard !tasks.isEmpty else { return [] }
            var e = Tote_V1_ControllerGraceExpired()
            e.controllerID = controllerID
            e.lostSince = AutomationSupport.timestamp(since)
            e.taskIds = tasks
            e.at = AutomationSupport.timestamp(now)
            var event = Tote_V1_ControllerEvent()
            event.event = .controllerGraceExpired(e)
            return [.record(event), .reassignTasks(tasks)]
        }
    }

    /// Writes pending commands in sequence order while the window has room, stopping before a
    /// reserved sequence that is not yet enqueued (so the controller never sees a lower sequence after
    /// a higher one).
    private mutating func flush(now: Int64) -> [Action] {
        guard case .online(let c) = phase else { return [] }
        var inFlight = unacknowledgedCount
        let lowestReserved = reserved.min() ?? UInt64.max
        var actions: [Action] = []
        for i in outbox.indices where outbox[i].delivery == .pending {
            guard inFlight < configuration.maxUnacknowledged, outbox[i].command.sequence < lowestReserved else { break }
            outbox[i].delivery = .inFlight(sentAt: now)
            outbox[i].writes += 1
            highestSent = max(highestSent, outbox[i].command.sequence)
            inFlight += 1
            lastSentAt = now
            if outbox[i].writes > 1 {
                actions.append(.redeliver(c, outbox[i].command))
            } else {
                var message = Tote_V1_BridgeMessage()
                message.body = .command(outbox[i].command)
                actions.append(.send(c, message))
            }
        }
        return actions
    }

    private mutating func protocolError(_ c: ConnectionID, _ message: String, now: Int64) -> [Action] {
        [.close(c, .invalidArgument, message)] + lose(.broken, reason: "protocol error: \(message)", now: now)
    }

    /// The session ended: record it and start the grace period.
    private mutating func lose(_ state: Tote_V1_ConnectionState, reason: String, now: Int64) -> [Action] {
        phase = .disconnected
        connection = state
        lostSinceMicros = now
        graceHandled = false
        for i in outbox.indices { outbox[i].delivery = .pending }
        var e = Tote_V1_ControllerDisconnected()
        e.controllerID = controllerID
        e.sessionID = sessionID
        e.state = state
        e.reason = reason
        e.disconnectedAt = AutomationSupport.timestamp(now)
        var event = Tote_V1_ControllerEvent()
        event.event = .controllerDisconnected(e)
        return [.record(event), .markConnection(state)]
    }

    private func ack() -> Tote_V1_BridgeMessage {
        var a = Tote_V1_BridgeAck()
        a.reportSequence = lastReportRecorded
        var message = Tote_V1_BridgeMessage()
        message.body = .ack(a)
        return message
    }

    private mutating func send(_ c: ConnectionID, _ message: Tote_V1_BridgeMessage, now: Int64) -> Action {
        lastSentAt = now
        return .send(c, message)
    }
}
