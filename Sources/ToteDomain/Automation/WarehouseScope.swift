import ToteProto

/// Which warehouse's work one active bridge does (docs/AUTOMATION.md, "One active bridge per
/// warehouse"). A location id `<warehouse>/<zone>/…` names its warehouse, so every task has one
/// (``TaskDecider/State/warehouseID``) and every order a **home warehouse**: the first (in sort
/// order) warehouse of its lines' locations, where its pack task is packed.
///
/// - The bridge of the home warehouse plans the order: it creates every task of the order (pick
///   tasks of other warehouses included) and moves the order (PICKING, PACKED).
/// - Each bridge dispatches, takes away and cancels only the tasks of its own warehouse, so only
///   one bridge ever issues commands to a given station.
/// - The empty warehouse id is the single-bridge setup: it serves every warehouse. Do not run it
///   next to bridges with a warehouse id.
public struct WarehouseScope: Sendable, Equatable {
    /// The warehouse served; "" = every warehouse.
    public var warehouseID: String

    public init(warehouseID: String) {
        self.warehouseID = warehouseID
    }

    /// Every warehouse (one bridge for everything).
    public static let all = WarehouseScope(warehouseID: "")

    /// True if tasks (and stations) of `warehouseID` are this bridge's to dispatch.
    public func serves(warehouse: String) -> Bool {
        self.warehouseID.isEmpty || self.warehouseID == warehouse
    }

    /// True if this bridge plans `order` (it is the order's home warehouse).
    public func plans(_ order: OrderDecider.State) -> Bool {
        serves(warehouse: Self.homeWarehouse(of: order))
    }

    /// The order's home warehouse: the first warehouse, in sort order, of its lines' locations
    /// ("" for an order without lines).
    public static func homeWarehouse(of order: OrderDecider.State) -> String {
        order.lines.map { TaskPlanner.warehouseAndZone(of: $0.locationID).warehouse }.min() ?? ""
    }

    /// The part of `plan` this bridge runs for `order`: all of it at the home warehouse, else only
    /// the commands for tasks of its own warehouse (e.g. cancelling them).
    public func restrict(_ plan: TaskPlanner.Plan, order: OrderDecider.State, tasks: [String: TaskDecider.State]) -> TaskPlanner.Plan {
        if plans(order) { return filterCommands(plan, tasks: tasks) }
        return TaskPlanner.Plan(taskCommands: filterCommands(plan, tasks: tasks).taskCommands)
    }

    private func filterCommands(_ plan: TaskPlanner.Plan, tasks: [String: TaskDecider.State]) -> TaskPlanner.Plan {
        var p = plan
        p.taskCommands = plan.taskCommands.filter { c in tasks[c.taskID].map { serves(warehouse: $0.warehouseID) } ?? false }
        return p
    }
}
