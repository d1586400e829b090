import Testing
import ToteDomain
import ToteProto

// MARK: - Fixture (file-private: the test module is shared with other deciders' tests)

private let t0: Int64 = 1_700_000_000_000_000

private func orderLine(_ id: String, _ sku: String, _ qty: UInt32, _ location: String, refunded: UInt32 = 0) -> Tote_V1_OrderLine {
    var l = Tote_V1_OrderLine()
    l.lineID = id
    l.sku = sku
    l.quantity = qty
    l.locationID = location
    l.displayName = "Name of \(sku)"
    l.quantityRefunded = refunded
    return l
}

private func order(_ status: Tote_V1_OrderState, lines: [Tote_V1_OrderLine]? = nil) -> OrderDecider.State {
    var o = OrderDecider.State()
    o.orderID = "o1"
    o.status = status
    o.stage = status
    o.lines = lines ?? [
        orderLine("l1", "SKU-1", 2, "main/B/07"),
        orderLine("l2", "SKU-2", 1, "main/A/01"),
        orderLine("l3", "SKU-3", 4, "main/B/07"),
        orderLine("l4", "SKU-4", 1, "annex"),
    ]
    o.shippingAddress.city = "Berlin"
    return o
}

/// Creates the task, dispatches it, and finishes it as the station would (all lines in full).
private func done(_ spec: TaskSpec) throws -> TaskDecider.State {
    let ctx = CommandContext(actor: .system, nowMicros: t0)
    var s = TaskDecider.fold(try TaskDecider.decide(.create(spec), state: TaskDecider.initialState, context: ctx))
    s = TaskDecider.fold(try TaskDecider.decide(.markDone(picked: [], packed: nil, reason: "test"), state: s, context: ctx), from: s)
    return s
}

private func created(_ spec: TaskSpec) throws -> TaskDecider.State {
    TaskDecider.fold(try TaskDecider.decide(.create(spec), state: TaskDecider.initialState, context: CommandContext(actor: .system, nowMicros: t0)))
}

@Suite("Automation: task planner")
struct AutomationPlannerTests {
    @Test func groupsLinesByLocationWithDeterministicIds() {
        let tasks = TaskPlanner.pickTasks(for: order(.paid))
        #expect(tasks.map(\.taskID) == ["o1-pick-1", "o1-pick-2", "o1-pick-3"])
        #expect(tasks.map { $0.lines.map(\.lineID) } == [["l4"], ["l2"], ["l1", "l3"]])
        #expect(tasks.map(\.zone) == ["", "A", "B"])
        #expect(tasks.map(\.warehouseID) == ["annex", "main", "main"])
        #expect(tasks.allSatisfy { $0.kind == .pick && $0.orderID == "o1" })
        #expect(tasks[2].lines.map(\.zone) == ["B", "B"])
        #expect(TaskPlanner.pickTasks(for: order(.paid)) == tasks)  // same input, same ids
    }

    @Test func locationParsing() {
        #expect(TaskPlanner.warehouseAndZone(of: "main/A") == ("main", "A"))
        #expect(TaskPlanner.warehouseAndZone(of: "main/A/01-02") == ("main", "A"))
        #expect(TaskPlanner.warehouseAndZone(of: "main") == ("main", ""))
        #expect(TaskPlanner.warehouseAndZone(of: "") == ("", ""))
    }

    @Test func refundedUnitsAreNotPicked() {
        let o = order(.paid, lines: [orderLine("l1", "SKU-1", 2, "main/A", refunded: 2), orderLine("l2", "SKU-2", 3, "main/A", refunded: 1)])
        let tasks = TaskPlanner.pickTasks(for: o)
        #expect(tasks.count == 1)
        #expect(tasks[0].lines.map(\.quantity) == [2])
    }

    @Test func paidOrderStartsPickingAndCreatesPickTasks() {
        let plan = TaskPlanner.plan(order: order(.paid), tasks: [:])
        #expect(plan.orderCommand == .startPicking(reason: "warehouse tasks planned"))
        #expect(plan.create.count == 3)
        #expect(plan.taskCommands.isEmpty)
    }

    @Test func pickingCreatesMissingPickTasksOnly() throws {
        let picks = TaskPlanner.pickTasks(for: order(.picking))
        let plan = TaskPlanner.plan(order: order(.picking), tasks: [picks[0].taskID: try created(picks[0])])
        #expect(plan.create.map(\.taskID) == ["o1-pick-2", "o1-pick-3"])
        #expect(plan.orderCommand == nil)
    }

    @Test func packTaskAfterTheLastPick() throws {
        let o = order(.picking)
        let picks = TaskPlanner.pickTasks(for: o)
        var tasks: [String: TaskDecider.State] = [:]
        for p in picks { tasks[p.taskID] = try created(p) }
        #expect(TaskPlanner.plan(order: o, tasks: tasks).isEmpty)
        tasks[picks[0].taskID] = try done(picks[0])
        tasks[picks[1].taskID] = try done(picks[1])
        #expect(TaskPlanner.plan(order: o, tasks: tasks).isEmpty)
        tasks[picks[2].taskID] = try done(picks[2])
        let plan = TaskPlanner.plan(order: o, tasks: tasks)
        #expect(plan.create.count == 1)
        let pack = try #require(plan.create.first)
        #expect(pack.taskID == "o1-pack" && pack.kind == .pack)
        #expect(pack.sourceTaskIDs == ["o1-pick-1", "o1-pick-2", "o1-pick-3"])
        #expect(pack.shipTo.city == "Berlin")
        #expect(Dictionary(uniqueKeysWithValues: pack.lines.map { ($0.sku, $0.quantity) }) == ["SKU-1": 2, "SKU-2": 1, "SKU-3": 4, "SKU-4": 1])
        // The pack task exists: nothing until it is done; then the order is marked packed.
        tasks[pack.taskID] = try created(pack)
        #expect(TaskPlanner.plan(order: o, tasks: tasks).isEmpty)
        tasks[pack.taskID] = try done(pack)
        #expect(TaskPlanner.plan(order: o, tasks: tasks).orderCommand == .markPacked(reason: "packed by task o1-pack"))
    }

    @Test func shortPicksArePackedAsPicked() throws {
        let o = order(.picking, lines: [orderLine("l1", "SKU-1", 3, "main/A"), orderLine("l2", "SKU-2", 1, "main/A")])
        let spec = try #require(TaskPlanner.pickTasks(for: o).first)
        var short = Tote_V1_PickedQuantity()
        short.lineID = "l1"
        short.sku = "SKU-1"
        short.quantity = 2
        var none = short
        none.lineID = "l2"
        none.sku = "SKU-2"
        none.quantity = 0
        let ctx = CommandContext(actor: Principal(id: "op", role: "operator"), nowMicros: t0)
        var s = try created(spec)
        s = TaskDecider.fold(try TaskDecider.decide(.markDone(picked: [short, none], packed: nil, reason: "short"), state: s, context: ctx), from: s)
        let pack = try #require(TaskPlanner.packTask(for: o, pickTasks: [s]))
        #expect(pack.lines.map(\.sku) == ["SKU-1"])
        #expect(pack.lines.map(\.quantity) == [2])
        // Nothing picked at all: no pack task (an operator decides).
        var empty = try created(spec)
        empty = TaskDecider.fold(try TaskDecider.decide(.markDone(picked: [none], packed: nil, reason: "none"), state: empty, context: ctx), from: empty)
        #expect(TaskPlanner.packTask(for: o, pickTasks: [empty]) == nil)
        #expect(TaskPlanner.packTask(for: o, pickTasks: []) == nil)
    }

    @Test func cancelledOrderCancelsOpenTasks() throws {
        let o = order(.cancelled)
        let picks = TaskPlanner.pickTasks(for: o)
        let tasks: [String: TaskDecider.State] = [
            picks[0].taskID: try done(picks[0]),
            picks[1].taskID: try created(picks[1]),
            picks[2].taskID: try created(picks[2]),
        ]
        let plan = TaskPlanner.plan(order: o, tasks: tasks)
        #expect(plan.create.isEmpty && plan.orderCommand == nil)
        #expect(plan.taskCommands.map(\.taskID) == ["o1-pick-2", "o1-pick-3"])
        #expect(plan.taskCommands.allSatisfy { $0.command == .cancel(reason: "order o1 cancelled") })
    }

    @Test func otherOrderStatesPlanNothing() {
        for status: Tote_V1_OrderState in [.unspecified, .placed, .packed, .shipped, .delivered] {
            #expect(TaskPlanner.plan(order: order(status), tasks: [:]).isEmpty, "\(status)")
        }
        // A partial refund keeps the fulfilment stage.
        var o = order(.partiallyRefunded)
        o.stage = .paid
        #expect(TaskPlanner.plan(order: o, tasks: [:]).create.count == 3)
    }
}
