import ToteProto

/// A station as the dispatcher sees it (from its session's hello, heartbeats and outbox).
public struct StationAvailability: Sendable, Equatable {
    public var controllerID: String
    public var kind: Tote_V1_StationKind
    /// Empty = any warehouse.
    public var warehouseID: String
    /// Zones it picks from; empty = all.
    public var zones: [String]
    /// A session is open.
    public var online: Bool
    /// Its open commands (the load).
    public var openCommands: Int
    /// From its last heartbeat; FAULT stations get no new work.
    public var status: Tote_V1_StationStatus

    public init(controllerID: String, kind: Tote_V1_StationKind, warehouseID: String = "", zones: [String] = [], online: Bool = true, openCommands: Int = 0, status: Tote_V1_StationStatus = .idle) {
        self.controllerID = controllerID
        self.kind = kind
        self.warehouseID = warehouseID
        self.zones = zones
        self.online = online
        self.openCommands = openCommands
        self.status = status
    }

    /// True if it may take `task` (kind, warehouse, zone; online and not in fault).
    public func canTake(_ task: TaskDecider.State) -> Bool {
        online && status != .fault && kind == task.kind
            && (warehouseID.isEmpty || task.warehouseID.isEmpty || warehouseID == task.warehouseID)
            && (zones.isEmpty || task.zone.isEmpty || zones.contains(task.zone))
    }
}

/// Chooses stations for tasks, purely.
public enum TaskDispatcher {
    /// The station a PENDING task goes to: its target if the task has one (and the target can take
    /// it), else the station that can take it with the fewest open commands (ties: lowest id); nil
    /// when none can now.
    public static func choose(for task: TaskDecider.State, among stations: [StationAvailability]) -> String? {
        guard task.status == .pending else { return nil }
        let able = stations.filter { $0.canTake(task) }
        if !task.targetControllerID.isEmpty {
            return able.first { $0.controllerID == task.targetControllerID }?.controllerID
        }
        return able.min { ($0.openCommands, $0.controllerID) < ($1.openCommands, $1.controllerID) }?.controllerID
    }

    /// What to do with a task whose controller stayed away beyond the grace period: reassign it if
    /// another station can take it, else raise it for manual intervention; nil if the task is no
    /// longer at that controller.
    public static func afterControllerLost(_ task: TaskDecider.State, lostControllerID: String, stations: [StationAvailability]) -> TaskCommand? {
        guard task.status.isAtController, task.controllerID == lostControllerID else { return nil }
        let others = stations.filter { $0.controllerID != lostControllerID && $0.canTake(task) }
        if others.isEmpty {
            return .requireIntervention(reason: "controller \(lostControllerID) lost and no other station can take the task")
        }
        return .reassign(targetControllerID: "", reason: "controller \(lostControllerID) lost for longer than the grace period")
    }
}

extension ControllerSession.Report {
    /// The task command a report means (``TaskCommand/report(_:controllerID:)`` or
    /// ``TaskCommand/raiseException(_:controllerID:)``), or nil for a report about no task (a
    /// station-wide exception: recorded on the controller stream only).
    public func taskCommand(controllerID: String) -> TaskPlanner.TaskIDCommand? {
        guard !taskID.isEmpty else { return nil }
        switch self {
        case .actionState(let a): return .init(taskID: taskID, command: .report(a, controllerID: controllerID))
        case .exception(let e): return .init(taskID: taskID, command: .raiseException(e, controllerID: controllerID))
        }
    }
}
