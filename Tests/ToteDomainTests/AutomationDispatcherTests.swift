import Testing
import ToteDomain
import ToteProto

// MARK: - Fixture (file-private: the test module is shared with other deciders' tests)

private let t0: Int64 = 1_700_000_000_000_000
private let system = CommandContext(actor: .system, nowMicros: t0)

private func pickTask(zone: String = "A", warehouse: String = "main") throws -> TaskDecider.State {
    var l = Tote_V1_TaskLine()
    l.lineID = "l1"
    l.sku = "SKU-1"
    l.quantity = 1
    l.location = "\(warehouse)/\(zone)/01"
    let spec = TaskSpec(taskID: "o1-pick-1", kind: .pick, orderID: "o1", warehouseID: warehouse, zone: zone, lines: [l])
    return TaskDecider.fold(try TaskDecider.decide(.create(spec), state: TaskDecider.initialState, context: system))
}

private func at(_ controller: String, _ task: TaskDecider.State) throws -> TaskDecider.State {
    TaskDecider.fold(try TaskDecider.decide(.dispatch(controllerID: controller, commandID: "cmd-1", sequence: 1), state: task, context: system), from: task)
}

@Suite("Automation: dispatcher")
struct AutomationDispatcherTests {
    @Test func choosesTheLeastLoadedStationThatCanTakeTheTask() throws {
        let task = try pickTask()
        let stations = [
            StationAvailability(controllerID: "pack-1", kind: .pack),
            StationAvailability(controllerID: "pick-1", kind: .pick, zones: ["A"], openCommands: 3),
            StationAvailability(controllerID: "pick-2", kind: .pick, zones: ["B"]),
            StationAvailability(controllerID: "pick-3", kind: .pick, openCommands: 1),
            StationAvailability(controllerID: "pick-4", kind: .pick, online: false),
            StationAvailability(controllerID: "pick-5", kind: .pick, status: .fault),
            StationAvailability(controllerID: "pick-6", kind: .pick, warehouseID: "annex"),
        ]
        #expect(TaskDispatcher.choose(for: task, among: stations) == "pick-3")
        #expect(TaskDispatcher.choose(for: task, among: Array(stations.prefix(3))) == "pick-1")
        #expect(TaskDispatcher.choose(for: task, among: [stations[0], stations[2]]) == nil)
        // Ties go to the lowest id.
        #expect(TaskDispatcher.choose(for: task, among: [StationAvailability(controllerID: "b", kind: .pick), StationAvailability(controllerID: "a", kind: .pick)]) == "a")
        // Not pending: nothing to choose.
        #expect(TaskDispatcher.choose(for: try at("pick-3", task), among: stations) == nil)
    }

    @Test func aTargetedTaskWaitsForItsTarget() throws {
        var task = try at("pick-1", try pickTask())
        task = TaskDecider.fold(try TaskDecider.decide(.reassign(targetControllerID: "pick-9", reason: "operator"), state: task, context: system), from: task)
        let stations = [StationAvailability(controllerID: "pick-1", kind: .pick)]
        #expect(TaskDispatcher.choose(for: task, among: stations) == nil)
        #expect(TaskDispatcher.choose(for: task, among: stations + [StationAvailability(controllerID: "pick-9", kind: .pick, openCommands: 50)]) == "pick-9")
    }

    @Test func lostControllersTasksAreReassignedOrRaised() throws {
        let task = try at("pick-1", try pickTask())
        let other = StationAvailability(controllerID: "pick-2", kind: .pick)
        let lost = StationAvailability(controllerID: "pick-1", kind: .pick, online: false)
        guard case .reassign(let target, _)? = TaskDispatcher.afterControllerLost(task, lostControllerID: "pick-1", stations: [lost, other]) else {
            Issue.record("not reassigned"); return
        }
        #expect(target == "")
        guard case .requireIntervention? = TaskDispatcher.afterControllerLost(task, lostControllerID: "pick-1", stations: [lost, StationAvailability(controllerID: "pack-1", kind: .pack)]) else {
            Issue.record("not raised"); return
        }
        // The task moved on already: nothing to do.
        #expect(TaskDispatcher.afterControllerLost(task, lostControllerID: "pick-7", stations: [other]) == nil)
        #expect(TaskDispatcher.afterControllerLost(try pickTask(), lostControllerID: "pick-1", stations: [other]) == nil)
        // The command it yields is accepted by the task.
        let command = try #require(TaskDispatcher.afterControllerLost(task, lostControllerID: "pick-1", stations: [other]))
        #expect(try TaskDecider.decide(command, state: task, context: system).map(\.typeName) == ["TaskReassigned"])
    }

    @Test func reportsMapToTaskCommands() {
        var a = Tote_V1_ActionState()
        a.taskID = "t1"
        a.commandID = "cmd-1"
        a.status = .running
        #expect(ControllerSession.Report.actionState(a).taskCommand(controllerID: "c1") == .init(taskID: "t1", command: .report(a, controllerID: "c1")))
        var e = Tote_V1_ExceptionReport()
        e.exceptionID = "x"
        e.taskID = "t1"
        #expect(ControllerSession.Report.exception(e).taskCommand(controllerID: "c1") == .init(taskID: "t1", command: .raiseException(e, controllerID: "c1")))
        e.taskID = ""
        #expect(ControllerSession.Report.exception(e).taskCommand(controllerID: "c1") == nil)
        let event = ControllerLog.stationException(e, controllerID: "c1", nowMicros: t0)
        #expect(event.typeName == "ControllerExceptionRaised")
        #expect(ControllerLog.evolve(ControllerLog.State(), event) == ControllerLog.State())
    }
}
