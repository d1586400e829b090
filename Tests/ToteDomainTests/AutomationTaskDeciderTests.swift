import Testing
import ToteDomain
import ToteProto

// MARK: - Fixture (file-private: the test module is shared with other deciders' tests)

private typealias D = TaskDecider
private let t0: Int64 = 1_700_000_000_000_000
private let second: Int64 = 1_000_000
private let operatorActor = Principal(id: "op-7", role: "operator")
private let controllerActor = Principal(id: "c1", role: "controller")

private func ctx(_ now: Int64 = t0 + second, actor: Principal = operatorActor) -> CommandContext {
    CommandContext(actor: actor, nowMicros: now)
}

private func line(_ id: String, _ sku: String, _ qty: UInt32, _ location: String = "main/A/01") -> Tote_V1_TaskLine {
    var l = Tote_V1_TaskLine()
    l.lineID = id
    l.sku = sku
    l.quantity = qty
    l.location = location
    l.zone = "A"
    return l
}

private let spec = TaskSpec(taskID: "o1-pick-1", kind: .pick, orderID: "o1", warehouseID: "main", zone: "A", lines: [line("l1", "SKU-1", 2), line("l2", "SKU-2", 1)])

private func actionState(_ status: Tote_V1_ActionStatus, command: String = "cmd-1", retriable: Bool = false, code: String = "", seq: UInt64 = 1) -> Tote_V1_ActionState {
    var a = Tote_V1_ActionState()
    a.reportSequence = seq
    a.commandID = command
    a.taskID = spec.taskID
    a.status = status
    a.retriable = retriable
    a.failureCode = code
    if status == .finished {
        var p = Tote_V1_PickedQuantity()
        p.lineID = "l1"
        p.sku = "SKU-1"
        p.location = "main/A/01"
        p.quantity = 2
        a.picked = [p]
    }
    return a
}

private func exception(_ id: String) -> Tote_V1_ExceptionReport {
    var e = Tote_V1_ExceptionReport()
    e.reportSequence = 9
    e.exceptionID = id
    e.kind = .jam
    e.commandID = "cmd-1"
    e.taskID = spec.taskID
    return e
}

/// Runs `commands` from the initial state, failing the test on a refusal.
private func run(_ commands: [TaskCommand], from state: D.State = D.initialState) throws -> D.State {
    var s = state
    for (i, c) in commands.enumerated() {
        let events = try D.decide(c, state: s, context: ctx(t0 + Int64(i) * second))
        s = D.fold(events, from: s)
    }
    return s
}

private let dispatch1 = TaskCommand.dispatch(controllerID: "c1", commandID: "cmd-1", sequence: 1)

/// One state per TaskState value, reached through commands.
private func state(_ status: Tote_V1_TaskState) throws -> D.State {
    switch status {
    case .unspecified: return D.initialState
    case .pending: return try run([.create(spec)])
    case .dispatched: return try run([.create(spec), dispatch1])
    case .accepted: return try run([.create(spec), dispatch1, .report(actionState(.accepted), controllerID: "c1")])
    case .running: return try run([.create(spec), dispatch1, .report(actionState(.running), controllerID: "c1")])
    case .done: return try run([.create(spec), dispatch1, .report(actionState(.finished), controllerID: "c1")])
    case .failed: return try run([.create(spec), dispatch1, .report(actionState(.failed, code: "LOCATION_EMPTY"), controllerID: "c1")])
    case .cancelled: return try run([.create(spec), .cancel(reason: "order cancelled")])
    case .needsIntervention: return try run([.create(spec), .requireIntervention(reason: "no pick station")])
    case .UNRECOGNIZED: fatalError()
    }
}

private let allStates: [Tote_V1_TaskState] = [.unspecified, .pending, .dispatched, .accepted, .running, .done, .failed, .cancelled, .needsIntervention]

/// What a command does in a state.
private enum Outcome: Equatable, CustomStringConvertible {
    case events([String])
    case refused(DomainError.Code, String?)

    var description: String {
        switch self {
        case .events(let names): names.isEmpty ? "no events" : names.joined(separator: "+")
        case .refused(let code, let state): "refused \(code) \(state ?? "")"
        }
    }
}

private func outcome(_ command: TaskCommand, in status: Tote_V1_TaskState) throws -> Outcome {
    let s = try state(status)
    #expect(s.status == status)
    do {
        return .events(try D.decide(command, state: s, context: ctx(t0 + 100 * second)).map(\.typeName))
    } catch {
        return .refused(error.code, error.currentState)
    }
}

private let nonFinal: [Tote_V1_TaskState] = [.pending, .dispatched, .accepted, .running, .failed, .needsIntervention]
private let atController: [Tote_V1_TaskState] = [.dispatched, .accepted, .running]

/// Expected outcomes: a default for every state, with exceptions.
private func table(_ entries: [Tote_V1_TaskState: Outcome], default fallback: Outcome) -> [Tote_V1_TaskState: Outcome] {
    var t: [Tote_V1_TaskState: Outcome] = [.unspecified: .refused(.notFound, nil)]
    for s in allStates where s != .unspecified { t[s] = entries[s] ?? fallback }
    return t
}

private func wrong(_ s: Tote_V1_TaskState) -> Outcome { .refused(.failedPrecondition, s.protoName) }
private let none = Outcome.events([])

private struct Row: Sendable, CustomStringConvertible {
    var name: String
    var command: TaskCommand
    var expected: [Tote_V1_TaskState: Outcome]
    var description: String { name }
}

private let rows: [Row] = [
    Row(name: "create", command: .create(spec), expected: {
        var t = table([:], default: none)
        t[.unspecified] = .events(["TaskCreated"])
        return t
    }()),
    Row(name: "dispatch", command: .dispatch(controllerID: "c2", commandID: "cmd-2", sequence: 2), expected: table(
        [.pending: .events(["TaskAssigned", "TaskDispatched"]),
         .dispatched: wrong(.dispatched), .accepted: wrong(.accepted), .running: wrong(.running), .done: wrong(.done),
         .failed: wrong(.failed), .cancelled: wrong(.cancelled), .needsIntervention: wrong(.needsIntervention)], default: none)),
    Row(name: "report accepted", command: .report(actionState(.accepted), controllerID: "c1"), expected: table(
        [.dispatched: .events(["TaskAccepted"])], default: none)),
    Row(name: "report running", command: .report(actionState(.running), controllerID: "c1"), expected: table(
        [.dispatched: .events(["TaskStarted"]), .accepted: .events(["TaskStarted"])], default: none)),
    Row(name: "report finished", command: .report(actionState(.finished), controllerID: "c1"), expected: table(
        [.dispatched: .events(["TaskFinished"]), .accepted: .events(["TaskFinished"]), .running: .events(["TaskFinished"])], default: none)),
    Row(name: "report failed", command: .report(actionState(.failed, code: "NO_BOX"), controllerID: "c1"), expected: table(
        [.dispatched: .events(["TaskFailed"]), .accepted: .events(["TaskFailed"]), .running: .events(["TaskFailed"])], default: none)),
    Row(name: "report failed retriable", command: .report(actionState(.failed, retriable: true, code: "JAM"), controllerID: "c1"), expected: table(
        [.dispatched: .events(["TaskFailed", "TaskRetried"]), .accepted: .events(["TaskFailed", "TaskRetried"]), .running: .events(["TaskFailed", "TaskRetried"])], default: none)),
    Row(name: "report from another controller", command: .report(actionState(.finished), controllerID: "c9"), expected: table([:], default: none)),
    Row(name: "raise exception", command: .raiseException(exception("x-1"), controllerID: "c1"), expected: table([:], default: .events(["TaskExceptionRaised"]))),
    Row(name: "require intervention", command: .requireIntervention(reason: "no station"), expected: table(
        [.needsIntervention: none, .done: wrong(.done), .cancelled: wrong(.cancelled)], default: .events(["TaskInterventionRequired"]))),
    Row(name: "retry", command: .retry(reason: "station fixed"), expected: table(
        [.pending: wrong(.pending), .done: wrong(.done), .cancelled: wrong(.cancelled)], default: .events(["TaskRetried"]))),
    Row(name: "reassign", command: .reassign(targetControllerID: "", reason: "station down"), expected: table(
        [.done: wrong(.done), .cancelled: wrong(.cancelled)], default: .events(["TaskReassigned"]))),
    Row(name: "cancel", command: .cancel(reason: "customer called"), expected: table(
        [.done: wrong(.done), .cancelled: none], default: .events(["TaskCancelled"]))),
    Row(name: "mark done", command: .markDone(picked: [], packed: nil, reason: "picked by hand"), expected: table(
        [.done: none, .cancelled: wrong(.cancelled)], default: .events(["TaskCompletedByHand"]))),
]

// MARK: - Every command in every state

@Suite("Automation: task state machine")
struct AutomationTaskDeciderTests {
    @Test("every command in every state", arguments: rows)
    fileprivate func everyCommandInEveryState(row: Row) throws {
        for status in allStates {
            let got = try outcome(row.command, in: status)
            #expect(got == row.expected[status], "\(row.name) in \(status.protoName)")
        }
    }

    @Test func fullHappyPathAndState() throws {
        let s = try state(.done)
        #expect(s.status == .done)
        #expect(s.attempts == 1)
        #expect(s.controllerID == "c1")
        #expect(s.commandID == "")
        #expect(s.picked.map(\.quantity) == [2])
    }

    @Test func dispatchRecordsCommandAndAttempt() throws {
        let events = try D.decide(dispatch1, state: try state(.pending), context: ctx())
        guard case .taskDispatched(let d)? = events.last?.event else { Issue.record("no dispatch"); return }
        #expect(d.commandID == "cmd-1")
        #expect(d.sequence == 1)
        #expect(d.attempt == 1)
        #expect(d.controllerID == "c1")
        let s = D.fold(events, from: try state(.pending))
        #expect(s.status == .dispatched && s.commandID == "cmd-1" && s.sequence == 1)
        // The same dispatch again is a no-op; a malformed one is refused.
        #expect(try D.decide(dispatch1, state: s, context: ctx()).isEmpty)
        #expect(throws: DomainError.self) { try D.decide(.dispatch(controllerID: "", commandID: "", sequence: 0), state: try state(.pending), context: ctx()) }
    }

    @Test func staleReportAfterRetryIsIgnored() throws {
        let s = try run([.retry(reason: "stuck")], from: try state(.running))
        #expect(s.status == .pending)
        let redispatched = try run([.dispatch(controllerID: "c2", commandID: "cmd-2", sequence: 7)], from: s)
        // The old controller finishing the old command changes nothing.
        #expect(try D.decide(.report(actionState(.finished, command: "cmd-1"), controllerID: "c1"), state: redispatched, context: ctx()).isEmpty)
        // The new one does.
        var report = actionState(.finished, command: "cmd-2")
        report.taskID = spec.taskID
        #expect(try D.decide(.report(report, controllerID: "c2"), state: redispatched, context: ctx()).map(\.typeName) == ["TaskFinished"])
    }

    @Test func retriableFailuresNeedAnOperatorAfterMaxAttempts() throws {
        var s = try state(.pending)
        for attempt in 1...D.maxAutomaticAttempts {
            s = try run([.dispatch(controllerID: "c1", commandID: "cmd-\(attempt)", sequence: UInt64(attempt))], from: s)
            let events = try D.decide(.report(actionState(.failed, command: "cmd-\(attempt)", retriable: true, code: "JAM"), controllerID: "c1"), state: s, context: ctx())
            s = D.fold(events, from: s)
            if attempt < D.maxAutomaticAttempts {
                #expect(events.map(\.typeName) == ["TaskFailed", "TaskRetried"])
                #expect(s.status == .pending)
            } else {
                #expect(events.map(\.typeName) == ["TaskFailed", "TaskInterventionRequired"])
                #expect(s.status == .needsIntervention)
            }
        }
        #expect(s.attempts == D.maxAutomaticAttempts)
        #expect(s.lastFailureCode == "JAM")
        guard case .taskRetried(let r)? = (try D.decide(.retry(reason: "cleared the jam"), state: s, context: ctx())).first?.event else { Issue.record("no retry"); return }
        #expect(r.actorID == "op-7" && r.actorRole == "operator" && r.reason == "cleared the jam")
    }

    @Test func operatorActionsRecordActorReasonAndController() throws {
        let running = try state(.running)
        let cancelled = try D.decide(.cancel(reason: "  damaged shelf "), state: running, context: ctx())
        guard case .taskCancelled(let c)? = cancelled.first?.event else { Issue.record("no cancel"); return }
        #expect(c.actorID == "op-7" && c.reason == "damaged shelf" && c.controllerID == "c1" && c.commandID == "cmd-1")

        let reassigned = try D.decide(.reassign(targetControllerID: "c2", reason: "c1 is slow"), state: running, context: ctx())
        guard case .taskReassigned(let r)? = reassigned.first?.event else { Issue.record("no reassign"); return }
        #expect(r.previousControllerID == "c1" && r.previousCommandID == "cmd-1" && r.targetControllerID == "c2")
        let pending = D.fold(reassigned, from: running)
        #expect(pending.status == .pending && pending.targetControllerID == "c2")
        // Reserved for c2: another controller may not take it.
        #expect(throws: DomainError.self) { try D.decide(.dispatch(controllerID: "c3", commandID: "cmd-9", sequence: 9), state: pending, context: ctx()) }
        #expect(try D.decide(.dispatch(controllerID: "c2", commandID: "cmd-9", sequence: 9), state: pending, context: ctx()).count == 2)
        // Reassigning to the controller that has it is refused.
        #expect(throws: DomainError.self) { try D.decide(.reassign(targetControllerID: "c1", reason: "x"), state: running, context: ctx()) }
    }

    @Test func operatorCommandsRequireAReason() throws {
        let s = try state(.failed)
        for command: TaskCommand in [.retry(reason: " "), .reassign(targetControllerID: "", reason: ""), .cancel(reason: ""), .markDone(picked: [], packed: nil, reason: "\n"), .requireIntervention(reason: "")] {
            do {
                _ = try D.decide(command, state: s, context: ctx())
                Issue.record("accepted \(command) without a reason")
            } catch {
                #expect(error.code == .invalidArgument)
                #expect(error.violations.map(\.field) == ["reason"])
            }
        }
    }

    @Test func markDoneDefaultsToFullPickAndValidatesLines() throws {
        let s = try state(.running)
        let events = try D.decide(.markDone(picked: [], packed: nil, reason: "picked by hand"), state: s, context: ctx())
        guard case .taskCompletedByHand(let e)? = events.first?.event else { Issue.record("no event"); return }
        #expect(e.picked.map(\.quantity) == [2, 1])
        #expect(e.controllerID == "c1" && e.commandID == "cmd-1")
        #expect(D.fold(events, from: s).status == .done)
        var bad = Tote_V1_PickedQuantity()
        bad.lineID = "nope"
        do {
            _ = try D.decide(.markDone(picked: [bad], packed: nil, reason: "x"), state: s, context: ctx())
            Issue.record("unknown line accepted")
        } catch {
            #expect(error.violations.map(\.field) == ["picked[0].line_id"])
        }
        #expect(throws: DomainError.self) { try D.decide(.markDone(picked: [], packed: Tote_V1_PackResult(), reason: "x"), state: s, context: ctx()) }
    }

    @Test func createValidatesAndRefusesOtherDetails() throws {
        let s = try state(.pending)
        var other = spec
        other.lines = [line("l1", "SKU-1", 5)]
        do { _ = try D.decide(.create(other), state: s, context: ctx()); Issue.record("accepted") } catch { #expect(error.code == .alreadyExists) }
        let bad = TaskSpec(taskID: "", kind: .unspecified, orderID: "", lines: [line("l1", "", 0, "")])
        do {
            _ = try D.decide(.create(bad), state: D.initialState, context: ctx())
            Issue.record("accepted")
        } catch {
            #expect(Set(error.violations.map(\.field)) == ["task_id", "order_id", "kind", "lines[0].sku", "lines[0].quantity", "lines[0].location"])
        }
        let created = try D.decide(.create(spec), state: D.initialState, context: ctx(t0, actor: .system))
        guard case .taskCreated(let e)? = created.first?.event else { Issue.record("no event"); return }
        #expect(e.actorRole == "system" && e.createdAt.unixMicros == t0 && e.lines.count == 2)
    }

    @Test func exceptionsAreRecordedOncePerIdAndKeptOpenUntilRedispatch() throws {
        var s = try state(.running)
        s = try run([.raiseException(exception("x-1"), controllerID: "c1")], from: s)
        #expect(try D.decide(.raiseException(exception("x-1"), controllerID: "c1"), state: s, context: ctx()).isEmpty)
        #expect(s.openExceptions.map(\.exceptionID) == ["x-1"])
        #expect(throws: DomainError.self) { try D.decide(.raiseException(exception(""), controllerID: "c1"), state: s, context: ctx()) }
        s = try run([.retry(reason: "jam cleared"), .dispatch(controllerID: "c1", commandID: "cmd-5", sequence: 5)], from: s)
        #expect(s.openExceptions.isEmpty)
        #expect(s.exceptionIDs == ["x-1"])
    }

    @Test func reportWithoutStatusIsInvalidAndTimesComeFromTheBridge() throws {
        #expect(throws: DomainError.self) { try D.decide(.report(actionState(.unspecified), controllerID: "c1"), state: try state(.dispatched), context: ctx()) }
        var report = actionState(.accepted)
        report.at.unixMicros = 42  // a station clock far off
        let events = try D.decide(.report(report, controllerID: "c1"), state: try state(.dispatched), context: ctx(t0 + 77))
        #expect(D.fold(events, from: try state(.dispatched)).stateSinceMicros == t0 + 77)
    }

    @Test func typeNamesAndStreamNames() {
        var e = Tote_V1_TaskEvent()
        #expect(e.typeName == "TaskEvent")
        e.event = .taskCompletedByHand(.init())
        #expect(e.typeName == "TaskCompletedByHand")
        var c = Tote_V1_ControllerEvent()
        c.event = .controllerReportRecorded(.init())
        #expect(c.typeName == "ControllerReportRecorded")
        #expect(StreamName.task("o1-pick-1") == "task-o1-pick-1")
        #expect(StreamName.controller("c1") == "controller-c1")
        #expect(Tote_V1_TaskState.needsIntervention.protoName == "TASK_STATE_NEEDS_INTERVENTION")
    }
}

extension AutomationTaskDeciderTests {
    @Test func summaryAndStuckReason() throws {
        let running = try state(.running)
        let summary = running.summary(version: 4, stuckReason: "x")
        #expect(summary.taskID == "o1-pick-1" && summary.state == .running && summary.controllerID == "c1" && summary.attempts == 1 && summary.version == 4 && summary.stuckReason == "x")
        #expect(try state(.pending).summary(version: 1).controllerID == "")
        let minute: Int64 = 60_000_000
        #expect(running.stuckReason(nowMicros: running.stateSinceMicros + 44 * minute, olderThanMicros: 45 * minute) == nil)
        #expect(running.stuckReason(nowMicros: running.stateSinceMicros + 45 * minute, olderThanMicros: 45 * minute) == "TASK_STATE_RUNNING for 45 min")
        #expect(try state(.failed).stuckReason(nowMicros: 0, olderThanMicros: 0) == "FAILED: LOCATION_EMPTY")
        #expect(try state(.needsIntervention).stuckReason(nowMicros: 0, olderThanMicros: .max) == "needs intervention")
        #expect(try state(.done).stuckReason(nowMicros: .max, olderThanMicros: 0) == nil)
    }
}
