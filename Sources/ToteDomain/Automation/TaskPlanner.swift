import ToteProto

/// Turns an order's state into warehouse work, purely (the bridge's process manager calls it after
/// each order or task event and runs what it returns; running it twice creates nothing twice,
/// because task ids are derived from the order and ``TaskDecider`` ignores an identical create):
///
/// - PAID → `startPicking` on the order, and one pick task per storage location
///   (`<orderID>-pick-<n>`, n from 1 in location order; a location id `warehouse/zone…` gives the
///   warehouse and the zone);
/// - PICKING and every pick task DONE → one pack task (`<orderID>-pack`) with what was picked;
/// - the pack task DONE → `markPacked` on the order;
/// - CANCELLED (or refunded before packing) → cancel every task that is not final.
public enum TaskPlanner {
    /// What to do next for an order.
    public struct Plan: Sendable, Equatable {
        /// Tasks to create (``TaskCommand/create(_:)``).
        public var create: [TaskSpec] = []
        /// Commands for existing tasks, by task id.
        public var taskCommands: [TaskIDCommand] = []
        /// A command for the order, if any.
        public var orderCommand: OrderCommand? = nil

        public init(create: [TaskSpec] = [], taskCommands: [TaskIDCommand] = [], orderCommand: OrderCommand? = nil) {
            self.create = create
            self.taskCommands = taskCommands
            self.orderCommand = orderCommand
        }

        /// Nothing to do.
        public var isEmpty: Bool { create.isEmpty && taskCommands.isEmpty && orderCommand == nil }
    }

    /// A command addressed to one task.
    public struct TaskIDCommand: Sendable, Equatable {
        public var taskID: String
        public var command: TaskCommand

        public init(taskID: String, command: TaskCommand) {
            self.taskID = taskID
            self.command = command
        }
    }

    /// The id of the order's pick task number `n` (1-based).
    public static func pickTaskID(orderID: String, number n: Int) -> String { "\(orderID)-pick-\(n)" }
    /// The id of the order's pack task.
    public static func packTaskID(orderID: String) -> String { "\(orderID)-pack" }

    /// `(warehouse, zone)` of a location id: `main/A/01-03` → (`main`, `A`); `main` → (`main`, ``).
    public static func warehouseAndZone(of location: String) -> (warehouse: String, zone: String) {
        let parts = location.split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false)
        return (parts.first.map(String.init) ?? "", parts.count > 1 ? String(parts[1]) : "")
    }

    /// The pick tasks of an order: its lines grouped by location, in location order (lines in order
    /// within a location); refunded units are not picked.
    public static func pickTasks(for order: OrderDecider.State) -> [TaskSpec] {
        var byLocation: [String: [Tote_V1_TaskLine]] = [:]
        for line in order.lines {
            let units = line.quantity > line.quantityRefunded ? line.quantity - line.quantityRefunded : 0
            guard units > 0 else { continue }
            var t = Tote_V1_TaskLine()
            t.lineID = line.lineID
            t.sku = line.sku
            t.quantity = units
            t.location = line.locationID
            t.zone = warehouseAndZone(of: line.locationID).zone
            t.displayName = line.displayName
            byLocation[line.locationID, default: []].append(t)
        }
        return byLocation.keys.sorted().enumerated().map { index, location in
            let (warehouse, zone) = warehouseAndZone(of: location)
            return TaskSpec(taskID: pickTaskID(orderID: order.orderID, number: index + 1), kind: .pick, orderID: order.orderID, warehouseID: warehouse, zone: zone, lines: byLocation[location]!)
        }
    }

    /// The pack task once every pick task is DONE (nil before): the units picked, summed per SKU.
    public static func packTask(for order: OrderDecider.State, pickTasks: [TaskDecider.State]) -> TaskSpec? {
        guard !pickTasks.isEmpty, pickTasks.allSatisfy({ $0.status == .done }) else { return nil }
        var quantities: [String: UInt32] = [:]
        var names: [String: String] = [:]
        var skus: [String] = []
        for task in pickTasks.sorted(by: { $0.taskID < $1.taskID }) {
            for p in task.picked where p.quantity > 0 {
                if quantities[p.sku] == nil { skus.append(p.sku) }
                quantities[p.sku, default: 0] += p.quantity
                names[p.sku] = task.lines.first { $0.sku == p.sku }?.displayName ?? ""
            }
        }
        let lines = skus.map { sku in
            var t = Tote_V1_TaskLine()
            t.lineID = sku
            t.sku = sku
            t.quantity = quantities[sku]!
            t.displayName = names[sku] ?? ""
            return t
        }
        guard !lines.isEmpty else { return nil }  // nothing was picked: an operator must decide
        let warehouse = pickTasks.map(\.warehouseID).sorted().first ?? ""
        return TaskSpec(taskID: packTaskID(orderID: order.orderID), kind: .pack, orderID: order.orderID, warehouseID: warehouse, lines: lines, sourceTaskIDs: pickTasks.map(\.taskID).sorted(), shipTo: order.shippingAddress)
    }

    /// What to do next for `order`, given the states of its tasks (by task id; absent = not created).
    public static func plan(order: OrderDecider.State, tasks: [String: TaskDecider.State]) -> Plan {
        var plan = Plan()
        let stage = order.status == .partiallyRefunded || order.status == .disputed ? order.stage : order.status
        switch stage {
        case .paid, .picking:
            if stage == .paid { plan.orderCommand = .startPicking(reason: "warehouse tasks planned") }
            let picks = pickTasks(for: order)
            plan.create = picks.filter { tasks[$0.taskID] == nil }
            guard plan.create.isEmpty, stage == .picking else { return plan }
            let pickStates = picks.compactMap { tasks[$0.taskID] }
            let packID = packTaskID(orderID: order.orderID)
            if let pack = tasks[packID] {
                if pack.status == .done { plan.orderCommand = .markPacked(reason: "packed by task \(packID)") }
            } else if let spec = packTask(for: order, pickTasks: pickStates) {
                plan.create = [spec]
            }
        case .cancelled, .refunded:
            plan.taskCommands = tasks.keys.sorted().compactMap { id in
                guard let t = tasks[id], t.status != .unspecified, !t.status.isFinal else { return nil }
                return TaskIDCommand(taskID: id, command: .cancel(reason: "order \(order.orderID) \(stage == .cancelled ? "cancelled" : "refunded")"))
            }
        default:
            break
        }
        return plan
    }
}
