import Testing
import ToteDomain
import ToteProto

// MARK: - Fixture (file-private: the test module is shared with other deciders' tests)

private typealias S = ControllerSession
private let t0: Int64 = 1_700_000_000_000_000
private let ms: Int64 = 1_000
private let config = S.Configuration(heartbeatIntervalMicros: 1_000 * ms, missedHeartbeats: 3, maxUnacknowledged: 2, redeliveryTimeoutMicros: 500 * ms, helloTimeoutMicros: 2_000 * ms, gracePeriodMicros: 10_000 * ms)

private func hello(_ lastSeen: UInt64 = 0, id: String = "c1", kind: Tote_V1_StationKind = .pick) -> Tote_V1_ControllerMessage {
    var h = Tote_V1_ControllerHello()
    h.controllerID = id
    h.stationKind = kind
    h.lastSequenceSeen = lastSeen
    h.protocolVersion = 1
    h.zones = ["A"]
    var m = Tote_V1_ControllerMessage()
    m.body = .hello(h)
    return m
}

private func ack(_ sequence: UInt64) -> Tote_V1_ControllerMessage {
    var a = Tote_V1_ControllerAck()
    a.sequence = sequence
    var m = Tote_V1_ControllerMessage()
    m.body = .ack(a)
    return m
}

private func heartbeat() -> Tote_V1_ControllerMessage {
    var h = Tote_V1_ControllerHeartbeat()
    h.status = .busy
    var m = Tote_V1_ControllerMessage()
    m.body = .heartbeat(h)
    return m
}

private func state(_ report: UInt64, command: String, _ status: Tote_V1_ActionStatus) -> Tote_V1_ControllerMessage {
    var a = Tote_V1_ActionState()
    a.reportSequence = report
    a.commandID = command
    a.status = status
    var m = Tote_V1_ControllerMessage()
    m.body = .actionState(a)
    return m
}

private func exceptionReport(_ report: UInt64) -> Tote_V1_ControllerMessage {
    var e = Tote_V1_ExceptionReport()
    e.reportSequence = report
    e.exceptionID = "x-\(report)"
    e.kind = .shortPick
    var m = Tote_V1_ControllerMessage()
    m.body = .exceptionReport(e)
    return m
}

private func pick(_ taskID: String) -> Tote_V1_BridgeCommand.OneOf_Action {
    var p = Tote_V1_PickTask()
    p.taskID = taskID
    p.orderID = "o1"
    return .pickTask(p)
}

/// A compact, comparable rendering of actions.
private func render(_ actions: [S.Action]) -> [String] {
    actions.map { action in
        switch action {
        case .send(let c, let m):
            switch m.body {
            case .welcome(let w)?: "\(c) welcome(resume \(w.resumeFromSequence), reports \(w.lastReportSequenceRecorded))"
            case .command(let cmd)?: "\(c) command(\(cmd.sequence))"
            case .heartbeat?: "\(c) heartbeat"
            case .ack(let a)?: "\(c) ack(\(a.reportSequence))"
            case nil: "\(c) empty"
            }
        case .redeliver(let c, let cmd): "\(c) redeliver(\(cmd.sequence))"
        case .record(let e):
            switch e.event {
            case .controllerDisconnected(let d)?: "record ControllerDisconnected(\(d.state == .broken ? "broken" : "offline"))"
            default: "record \(e.typeName)"
            }
        case .recordReport(let r): "recordReport(\(r.reportSequence))"
        case .markConnection(let s): "mark \(s == .online ? "online" : s == .offline ? "offline" : "broken")"
        case .close(let c, let status, _): "\(c) close(\(status))"
        case .reassignTasks(let ids): "reassign \(ids.joined(separator: ","))"
        }
    }
}

/// A session in a phase: disconnected (fresh), awaiting hello on stream 1, or online on stream 1.
private enum Phase: String, CaseIterable, Sendable { case disconnected, awaitingHello, online }

private func session(_ phase: Phase, now: Int64 = t0) -> S {
    var s = S(controllerID: "c1", configuration: config, nowMicros: now)
    switch phase {
    case .disconnected: break
    case .awaitingHello: _ = s.handle(.streamOpened(1), nowMicros: now)
    case .online:
        _ = s.handle(.streamOpened(1), nowMicros: now)
        _ = s.handle(.received(1, hello()), nowMicros: now)
    }
    return s
}

/// Issues a pick command through make → enqueue.
private func issue(_ s: inout S, _ taskID: String, now: Int64 = t0) -> [String] {
    let c = s.makeCommand(commandID: "cmd-\(taskID)", action: pick(taskID), nowMicros: now)
    return render(s.handle(.enqueue(c), nowMicros: now))
}

private struct Row: Sendable, CustomStringConvertible {
    var name: String
    var input: S.Input
    var expected: [Phase: [String]]
    var after: [Phase: S.Phase]
    var description: String { name }
}

private let on1 = S.Phase.online(1)
private let awaiting1 = S.Phase.awaitingHello(1, openedAt: t0)

/// Every input (and every controller message) in every phase, at t0 + 1 ms (before any timeout).
private let rows: [Row] = [
    Row(name: "hello", input: .received(1, hello()), expected: [
        .disconnected: [],
        .awaitingHello: ["1 welcome(resume 1, reports 0)", "record ControllerConnected", "mark online"],
        .online: ["1 close(invalidArgument)", "record ControllerDisconnected(broken)", "mark broken"],
    ], after: [.disconnected: .disconnected, .awaitingHello: on1, .online: .disconnected]),
    Row(name: "heartbeat", input: .received(1, heartbeat()), expected: [
        .disconnected: [], .awaitingHello: ["1 close(invalidArgument)"], .online: [],
    ], after: [.disconnected: .disconnected, .awaitingHello: .disconnected, .online: on1]),
    Row(name: "ack beyond sent", input: .received(1, ack(1)), expected: [
        .disconnected: [], .awaitingHello: ["1 close(invalidArgument)"],
        .online: ["1 close(invalidArgument)", "record ControllerDisconnected(broken)", "mark broken"],
    ], after: [.disconnected: .disconnected, .awaitingHello: .disconnected, .online: .disconnected]),
    Row(name: "ack zero (repeat)", input: .received(1, ack(0)), expected: [
        .disconnected: [], .awaitingHello: ["1 close(invalidArgument)"], .online: [],
    ], after: [.disconnected: .disconnected, .awaitingHello: .disconnected, .online: on1]),
    Row(name: "action state", input: .received(1, state(1, command: "cmd-x", .accepted)), expected: [
        .disconnected: [], .awaitingHello: ["1 close(invalidArgument)"], .online: ["recordReport(1)"],
    ], after: [.disconnected: .disconnected, .awaitingHello: .disconnected, .online: on1]),
    Row(name: "action state with report sequence 0", input: .received(1, state(0, command: "cmd-x", .accepted)), expected: [
        .disconnected: [], .awaitingHello: ["1 close(invalidArgument)"],
        .online: ["1 close(invalidArgument)", "record ControllerDisconnected(broken)", "mark broken"],
    ], after: [.disconnected: .disconnected, .awaitingHello: .disconnected, .online: .disconnected]),
    Row(name: "exception report", input: .received(1, exceptionReport(1)), expected: [
        .disconnected: [], .awaitingHello: ["1 close(invalidArgument)"], .online: ["recordReport(1)"],
    ], after: [.disconnected: .disconnected, .awaitingHello: .disconnected, .online: on1]),
    Row(name: "empty message", input: .received(1, Tote_V1_ControllerMessage()), expected: [
        .disconnected: [], .awaitingHello: ["1 close(invalidArgument)"],
        .online: ["1 close(invalidArgument)", "record ControllerDisconnected(broken)", "mark broken"],
    ], after: [.disconnected: .disconnected, .awaitingHello: .disconnected, .online: .disconnected]),
    Row(name: "message on a stale stream", input: .received(9, hello()), expected: [
        .disconnected: [], .awaitingHello: [], .online: [],
    ], after: [.disconnected: .disconnected, .awaitingHello: awaiting1, .online: on1]),
    Row(name: "stream opened", input: .streamOpened(2), expected: [
        .disconnected: [], .awaitingHello: ["1 close(aborted)"],
        .online: ["1 close(aborted)", "record ControllerDisconnected(offline)", "mark offline"],
    ], after: [.disconnected: .awaitingHello(2, openedAt: t0 + ms), .awaitingHello: .awaitingHello(2, openedAt: t0 + ms), .online: .awaitingHello(2, openedAt: t0 + ms)]),
    Row(name: "stream ended", input: .streamEnded(1), expected: [
        .disconnected: [], .awaitingHello: ["1 close(ok)"],
        .online: ["1 close(ok)", "record ControllerDisconnected(offline)", "mark offline"],
    ], after: [.disconnected: .disconnected, .awaitingHello: .disconnected, .online: .disconnected]),
    Row(name: "stream failed", input: .streamFailed(1, reason: "connection reset"), expected: [
        .disconnected: [], .awaitingHello: [],
        .online: ["record ControllerDisconnected(broken)", "mark broken"],
    ], after: [.disconnected: .disconnected, .awaitingHello: .disconnected, .online: .disconnected]),
    Row(name: "tick", input: .tick, expected: [
        .disconnected: [], .awaitingHello: [], .online: [],
    ], after: [.disconnected: .disconnected, .awaitingHello: awaiting1, .online: on1]),
    Row(name: "reports recorded", input: .reportsRecorded(upTo: 3), expected: [
        .disconnected: [], .awaitingHello: [], .online: ["1 ack(3)"],
    ], after: [.disconnected: .disconnected, .awaitingHello: awaiting1, .online: on1]),
    Row(name: "command closed (unknown)", input: .commandClosed(commandID: "nope"), expected: [
        .disconnected: [], .awaitingHello: [], .online: [],
    ], after: [.disconnected: .disconnected, .awaitingHello: awaiting1, .online: on1]),
    Row(name: "abandon (unknown)", input: .abandon(sequence: 5), expected: [
        .disconnected: [], .awaitingHello: [], .online: [],
    ], after: [.disconnected: .disconnected, .awaitingHello: awaiting1, .online: on1]),
    Row(name: "shutdown", input: .shutdown, expected: [
        .disconnected: [], .awaitingHello: ["1 close(unavailable)"],
        .online: ["1 close(unavailable)", "record ControllerDisconnected(offline)", "mark offline"],
    ], after: [.disconnected: .disconnected, .awaitingHello: .disconnected, .online: .disconnected]),
]

@Suite("Automation: controller session")
struct AutomationSessionTests {
    @Test("every input in every phase", arguments: rows)
    fileprivate func everyInputInEveryPhase(row: Row) {
        for phase in Phase.allCases {
            var s = session(phase)
            let got = render(s.handle(row.input, nowMicros: t0 + ms))
            #expect(got == row.expected[phase], "\(row.name) while \(phase)")
            #expect(s.phase == row.after[phase], "\(row.name) while \(phase): phase")
        }
    }

    @Test func enqueueInEveryPhase() {
        for phase in Phase.allCases {
            var s = session(phase)
            let got = issue(&s, "t1")
            #expect(got == (phase == .online ? ["1 command(1)"] : []), "\(phase)")
            #expect(s.outbox.count == 1)
        }
    }

    @Test func windowLimitsUnacknowledgedCommands() {
        var s = session(.online)
        #expect(issue(&s, "t1") == ["1 command(1)"])
        #expect(issue(&s, "t2") == ["1 command(2)"])
        #expect(issue(&s, "t3") == [])  // window of 2 is full
        #expect(issue(&s, "t4") == [])
        #expect(s.unacknowledgedCount == 2)
        #expect(render(s.handle(.received(1, ack(1)), nowMicros: t0)) == ["1 command(3)"])
        #expect(render(s.handle(.received(1, ack(3)), nowMicros: t0)) == ["1 command(4)"])
        #expect(s.unacknowledgedCount == 1)
    }

    @Test func duplicateAndOutOfOrderAcksAreIgnored() {
        var s = session(.online)
        _ = issue(&s, "t1")
        _ = issue(&s, "t2")
        #expect(render(s.handle(.received(1, ack(2)), nowMicros: t0)) == [])
        #expect(s.unacknowledgedCount == 0)
        #expect(render(s.handle(.received(1, ack(2)), nowMicros: t0)) == [])  // duplicate
        #expect(render(s.handle(.received(1, ack(1)), nowMicros: t0)) == [])  // older
        #expect(s.phase == on1)
        #expect(s.highestAcked == 2)
    }

    @Test func unacknowledgedCommandIsRedeliveredWithSameIdAndSequence() {
        var s = session(.online)
        let c = s.makeCommand(commandID: "cmd-a", action: pick("t1"), nowMicros: t0)
        #expect(render(s.handle(.enqueue(c), nowMicros: t0)) == ["1 command(1)"])
        #expect(render(s.handle(.tick, nowMicros: t0 + 499 * ms)) == [])
        let again = s.handle(.tick, nowMicros: t0 + 500 * ms)
        #expect(again == [.redeliver(1, c)])
        #expect(render(s.handle(.tick, nowMicros: t0 + 999 * ms)) == [])  // timer restarted
        #expect(render(s.handle(.tick, nowMicros: t0 + 1_000 * ms)) == ["1 redeliver(1)"])
        // The controller re-acks; nothing more is sent but heartbeats.
        _ = s.handle(.received(1, ack(1)), nowMicros: t0 + 1_100 * ms)
        #expect(render(s.handle(.tick, nowMicros: t0 + 2_000 * ms)) == ["1 heartbeat"])
        #expect(s.outbox.first?.writes == 3)
    }

    @Test func heartbeatsBothWaysAndTimeout() {
        var s = session(.online)
        #expect(render(s.handle(.tick, nowMicros: t0 + 999 * ms)) == [])
        #expect(render(s.handle(.tick, nowMicros: t0 + 1_000 * ms)) == ["1 heartbeat"])
        _ = s.handle(.received(1, heartbeat()), nowMicros: t0 + 2_500 * ms)
        #expect(s.lastHeartbeat?.status == .busy)
        #expect(render(s.handle(.tick, nowMicros: t0 + 5_499 * ms)) == ["1 heartbeat"])
        #expect(render(s.handle(.tick, nowMicros: t0 + 5_500 * ms)) == ["1 close(unavailable)", "record ControllerDisconnected(broken)", "mark broken"])
        #expect(s.connection == .broken && s.lostSinceMicros == t0 + 5_500 * ms)
    }

    @Test func helloTimeout() {
        var s = session(.awaitingHello)
        #expect(render(s.handle(.tick, nowMicros: t0 + 1_999 * ms)) == [])
        #expect(render(s.handle(.tick, nowMicros: t0 + 2_000 * ms)) == ["1 close(deadlineExceeded)"])
        #expect(s.phase == .disconnected)
    }

    @Test func helloIsValidated() {
        for bad in [hello(id: "c2"), hello(kind: .unspecified)] {
            var s = session(.awaitingHello)
            #expect(render(s.handle(.received(1, bad), nowMicros: t0)) == ["1 close(invalidArgument)"])
            #expect(s.phase == .disconnected)
        }
    }

    @Test func helloProblems() {
        var h = Tote_V1_ControllerHello()
        h.stationKind = .pack
        for (id, ok) in [("pick-01.a_B", true), ("", false), ("a b", false), ("é", false), (String(repeating: "x", count: 64), true), (String(repeating: "x", count: 65), false)] {
            h.controllerID = id
            #expect((S.helloProblem(h) == nil) == ok, "\(id)")
        }
        h.controllerID = "c1"
        h.stationKind = .unspecified
        #expect(S.helloProblem(h) == "station_kind must be PICK or PACK")
    }

    @Test func resumeAfterReconnectFromTheControllersLastSequence() {
        var s = session(.online)
        for t in ["t1", "t2", "t3"] { _ = issue(&s, t) }
        _ = s.handle(.received(1, ack(1)), nowMicros: t0)  // 2 and 3 in flight
        _ = s.handle(.streamFailed(1, reason: "reset"), nowMicros: t0 + ms)
        #expect(issue(&s, "t4") == [])  // queued while away
        _ = s.handle(.streamOpened(2), nowMicros: t0 + 2 * ms)
        // The controller stored up to 2 before the connection broke.
        let actions = render(s.handle(.received(2, hello(2)), nowMicros: t0 + 3 * ms))
        #expect(actions == ["2 welcome(resume 3, reports 0)", "record ControllerConnected", "mark online", "2 redeliver(3)", "2 command(4)"])
        #expect(s.highestSent == 4)
        #expect(render(s.handle(.received(2, ack(4)), nowMicros: t0 + 4 * ms)) == [])
        // New commands continue the sequence.
        #expect(issue(&s, "t5") == ["2 command(5)"])
    }

    @Test func controllerThatLostItsStateGetsEveryOpenCommandAgain() {
        var s = session(.online)
        for t in ["t1", "t2"] { _ = issue(&s, t) }
        _ = s.handle(.received(1, ack(2)), nowMicros: t0)
        _ = s.handle(.received(1, state(1, command: "cmd-t1", .finished)), nowMicros: t0)  // t1 closed
        _ = s.handle(.streamEnded(1), nowMicros: t0)
        _ = s.handle(.streamOpened(2), nowMicros: t0)
        #expect(render(s.handle(.received(2, hello(0)), nowMicros: t0)) == ["2 welcome(resume 1, reports 0)", "record ControllerConnected", "mark online", "2 redeliver(2)"])
        // Gaps are fine: the next command is 3.
        #expect(issue(&s, "t3") == ["2 command(3)"])
    }

    @Test func helloBeyondWhatWasIssuedMovesTheSequenceOn() {
        var s = session(.awaitingHello)
        _ = s.handle(.received(1, hello(40)), nowMicros: t0)
        #expect(issue(&s, "t1") == ["1 command(41)"])
    }

    @Test func commandsGoOutInSequenceOrderEvenWhenRecordedOutOfOrder() {
        var s = session(.online)
        let a = s.makeCommand(commandID: "a", action: pick("ta"), nowMicros: t0)
        let b = s.makeCommand(commandID: "b", action: pick("tb"), nowMicros: t0)
        #expect(render(s.handle(.enqueue(b), nowMicros: t0)) == [])  // waits for a
        #expect(render(s.handle(.enqueue(a), nowMicros: t0)) == ["1 command(1)", "1 command(2)"])
        let c = s.makeCommand(commandID: "c", action: pick("tc"), nowMicros: t0)
        _ = s.handle(.received(1, ack(2)), nowMicros: t0)
        let d = s.makeCommand(commandID: "d", action: pick("td"), nowMicros: t0)
        #expect(render(s.handle(.enqueue(d), nowMicros: t0)) == [])
        #expect(render(s.handle(.abandon(sequence: c.sequence), nowMicros: t0)) == ["1 command(4)"])
        // Enqueuing the same command twice is a no-op.
        #expect(render(s.handle(.enqueue(d), nowMicros: t0)) == [])
        #expect(s.outbox.count == 3)
    }

    @Test func reportsAreDeliveredOnceAndAckedWhenRecorded() {
        var s = session(.online)
        #expect(render(s.handle(.received(1, state(1, command: "x", .accepted)), nowMicros: t0)) == ["recordReport(1)"])
        #expect(render(s.handle(.received(1, state(1, command: "x", .accepted)), nowMicros: t0)) == [])  // being recorded
        #expect(render(s.handle(.received(1, exceptionReport(2)), nowMicros: t0)) == ["recordReport(2)"])
        #expect(render(s.handle(.reportsRecorded(upTo: 2), nowMicros: t0)) == ["1 ack(2)"])
        #expect(render(s.handle(.reportsRecorded(upTo: 1), nowMicros: t0)) == [])  // older
        #expect(render(s.handle(.received(1, state(1, command: "x", .accepted)), nowMicros: t0)) == ["1 ack(2)"])  // re-ack
        // After a reconnect the welcome says what is recorded; unrecorded reports are taken again.
        _ = s.handle(.received(1, state(3, command: "x", .running)), nowMicros: t0)
        _ = s.handle(.streamFailed(1, reason: "reset"), nowMicros: t0)
        _ = s.handle(.streamOpened(2), nowMicros: t0)
        #expect(render(s.handle(.received(2, hello()), nowMicros: t0)).first == "2 welcome(resume 1, reports 2)")
        #expect(render(s.handle(.received(2, state(3, command: "x", .running)), nowMicros: t0)) == ["recordReport(3)"])
    }

    @Test func finalReportClosesItsCommandAndFreesTheWindow() {
        var s = session(.online)
        for t in ["t1", "t2", "t3"] { _ = issue(&s, t) }
        #expect(render(s.handle(.received(1, state(1, command: "cmd-t1", .finished)), nowMicros: t0)) == ["recordReport(1)", "1 command(3)"])
        #expect(render(s.handle(.received(1, state(2, command: "cmd-t2", .failed)), nowMicros: t0)) == ["recordReport(2)"])
        #expect(s.outbox.map(\.command.commandID) == ["cmd-t3"])
        #expect(render(s.handle(.commandClosed(commandID: "cmd-t3"), nowMicros: t0)) == [])
        #expect(s.outbox.isEmpty)
    }

    @Test func gracePeriodExpiryReassignsOpenTasksOnce() {
        var s = session(.online)
        _ = issue(&s, "t1")
        _ = issue(&s, "t2")
        _ = s.handle(.streamEnded(1), nowMicros: t0)
        #expect(render(s.handle(.tick, nowMicros: t0 + 9_999 * ms)) == [])
        #expect(render(s.handle(.tick, nowMicros: t0 + 10_000 * ms)) == ["record ControllerGraceExpired", "reassign t1,t2"])
        #expect(render(s.handle(.tick, nowMicros: t0 + 20_000 * ms)) == [])
        #expect(s.openTaskIDs == ["t1", "t2"])  // until the tasks close their commands
        // Back online: the grace period starts over at the next loss.
        _ = s.handle(.streamOpened(2), nowMicros: t0 + 30_000 * ms)
        _ = s.handle(.received(2, hello(2)), nowMicros: t0 + 30_000 * ms)
        #expect(!s.graceHandled && s.lostSinceMicros == nil)
    }

    @Test func graceWithoutOpenTasksRecordsNothing() {
        var s = S(controllerID: "c1", configuration: config, nowMicros: t0)
        #expect(render(s.handle(.tick, nowMicros: t0 + 10_000 * ms)) == [])
        #expect(s.graceHandled)
    }

    @Test func restartedBridgeResumesFromTheControllerLog() {
        // The log of a first bridge: two commands issued, one finished, reports up to 5 recorded.
        var first = session(.online)
        let c1 = first.makeCommand(commandID: "cmd-1", action: pick("t1"), nowMicros: t0)
        let c2 = first.makeCommand(commandID: "cmd-2", action: pick("t2"), nowMicros: t0)
        var finished = Tote_V1_ActionState()
        finished.reportSequence = 5
        finished.commandID = "cmd-1"
        finished.status = .finished
        let log = ControllerLog.fold([
            ControllerLog.issued(c1, taskID: "t1", controllerID: "c1", nowMicros: t0),
            ControllerLog.issued(c2, taskID: "t2", controllerID: "c1", nowMicros: t0),
            ControllerLog.reportRecorded(.actionState(finished), controllerID: "c1", nowMicros: t0),
        ])
        #expect(log.openCommands.map(\.commandID) == ["cmd-2"])
        #expect(log.highestSequenceIssued == 2 && log.lastReportRecorded == 5)
        let closed = ControllerLog.evolve(log, ControllerLog.closed(commandID: "cmd-2", sequence: 2, controllerID: "c1", reason: "cancelled", nowMicros: t0))
        #expect(closed.openCommands.isEmpty && closed.taskOfCommand.isEmpty)

        var s = S(controllerID: "c1", configuration: config, restoring: log, nowMicros: t0 + ms)
        _ = s.handle(.streamOpened(7), nowMicros: t0 + ms)
        #expect(render(s.handle(.received(7, hello(1)), nowMicros: t0 + ms)) == ["7 welcome(resume 2, reports 5)", "record ControllerConnected", "mark online", "7 command(2)"])
        #expect(issue(&s, "t3") == ["7 command(3)"])
        // Not reconnecting: its tasks go after the grace period from the restart.
        var away = S(controllerID: "c1", configuration: config, restoring: log, nowMicros: t0)
        #expect(render(away.handle(.tick, nowMicros: t0 + 10_000 * ms)) == ["record ControllerGraceExpired", "reassign t2"])
    }

    @Test func connectedEventCarriesTheHello() {
        var s = session(.awaitingHello)
        let actions = s.handle(.received(1, hello(3)), nowMicros: t0 + 5)
        guard case .record(let e) = actions[1], case .controllerConnected(let c)? = e.event else { Issue.record("no event"); return }
        #expect(c.controllerID == "c1" && c.stationKind == .pick && c.lastSequenceSeen == 3 && c.zones == ["A"])
        #expect(c.sessionID == s.sessionID && c.connectedAt.unixMicros == t0 + 5)
        guard case .send(_, let m) = actions[0], case .welcome(let w)? = m.body else { Issue.record("no welcome"); return }
        #expect(w.maxUnacknowledged == 2 && w.heartbeatInterval.micros == 1_000 * ms && w.protocolVersion == 1 && w.sessionID == s.sessionID)
        let log = ControllerLog.fold([e])
        #expect(log.connection == .online && log.highestSequenceIssued == 3)
    }
}

// MARK: - Randomized: never lost, never doubled

/// A controller that follows docs/AUTOMATION.md, on a network that drops connections.
private struct SimulatedController {
    var highestStored: UInt64 = 0
    var executions: [String: Int] = [:]
    var lost: [String] = []
    var toFinish: [Tote_V1_BridgeCommand] = []
    var reportSequence: UInt64 = 0
    var orderViolations = 0

    /// Handles one command; returns the ack to send.
    mutating func receive(_ c: Tote_V1_BridgeCommand) -> UInt64 {
        if c.sequence <= highestStored {
            if executions[c.commandID] == nil { lost.append(c.commandID) }  // would never run
            return highestStored
        }
        highestStored = c.sequence
        executions[c.commandID, default: 0] += 1
        toFinish.append(c)
        return highestStored
    }
}

/// A small deterministic generator (no Foundation).
private struct LCG {
    var state: UInt64
    mutating func next(_ n: Int) -> Int {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Int((state >> 33) % UInt64(n))
    }
}

extension AutomationSessionTests {
    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
    func randomizedDeliveryNeverLosesOrDoublesACommand(seed: UInt64) {
        var rng = LCG(state: seed)
        var s = S(controllerID: "c1", configuration: config, nowMicros: t0)
        var controller = SimulatedController()
        var now = t0
        var conn: S.ConnectionID = 0
        var wire: [S.Action] = []  // bridge → controller, in order, current connection only
        var issued: [String] = []
        var reportsToRecord: [UInt64] = []

        func apply(_ actions: [S.Action]) {
            for a in actions {
                switch a {
                case .send(let c, _), .redeliver(let c, _):
                    if c == conn { wire.append(a) }
                case .recordReport(let r):
                    reportsToRecord.append(r.reportSequence)
                case .close(let c, _, _):
                    if c == conn { wire.removeAll() }
                default:
                    break
                }
            }
            #expect(s.unacknowledgedCount <= config.maxUnacknowledged)
        }
        func connect() {
            conn += 1
            wire.removeAll()
            apply(s.handle(.streamOpened(conn), nowMicros: now))
            apply(s.handle(.received(conn, hello(controller.highestStored)), nowMicros: now))
        }
        func deliverOne() {
            guard !wire.isEmpty, s.isOnline else { return }
            let a = wire.removeFirst()
            let command: Tote_V1_BridgeCommand
            switch a {
            case .send(_, let m):
                guard case .command(let c)? = m.body else { return }
                command = c
            case .redeliver(_, let c):
                command = c
            default:
                return
            }
            let acked = controller.receive(command)
            if rng.next(4) > 0 { apply(s.handle(.received(conn, ack(acked)), nowMicros: now)) }  // acks get lost too
        }
        func finishOne() {
            guard s.isOnline, !controller.toFinish.isEmpty else { return }
            let c = controller.toFinish.removeFirst()
            controller.reportSequence += 1
            apply(s.handle(.received(conn, state(controller.reportSequence, command: c.commandID, .finished)), nowMicros: now))
        }

        connect()
        for step in 0..<400 {
            switch rng.next(10) {
            case 0, 1:
                let c = s.makeCommand(commandID: "cmd-\(step)", action: pick("t\(step)"), nowMicros: now)
                issued.append(c.commandID)
                apply(s.handle(.enqueue(c), nowMicros: now))
            case 2, 3, 4:
                deliverOne()
            case 5:
                finishOne()
            case 6:
                if let r = reportsToRecord.popLast() { apply(s.handle(.reportsRecorded(upTo: r), nowMicros: now)) }
            case 7:
                now += 300 * ms
                apply(s.handle(.tick, nowMicros: now))
            case 8:
                if rng.next(3) == 0, s.isOnline {
                    apply(s.handle(.streamFailed(conn, reason: "dropped"), nowMicros: now))
                    wire.removeAll()
                }
            default:
                if !s.isOnline { connect() }
            }
        }
        // Heal the network and drain.
        if !s.isOnline { connect() }
        for _ in 0..<2_000 where !s.outbox.isEmpty || !wire.isEmpty || !controller.toFinish.isEmpty {
            if !wire.isEmpty { deliverOne() } else if !controller.toFinish.isEmpty { finishOne() } else {
                now += 600 * ms
                apply(s.handle(.tick, nowMicros: now))
                apply(s.handle(.received(conn, heartbeat()), nowMicros: now))
            }
        }
        #expect(issued.count > 40 && conn > 2, "the run exercised reconnects (\(conn)) and commands (\(issued.count))")
        #expect(s.outbox.isEmpty)
        #expect(controller.lost.isEmpty, "commands skipped: \(controller.lost)")
        #expect(issued.allSatisfy { controller.executions[$0] == 1 }, "every command run exactly once")
        #expect(Set(controller.executions.keys) == Set(issued))
    }
}
