import Testing
import ToteDomain
import ToteProto

// Fixture (file-private: the test module is shared with other deciders' tests).
private let t0: Int64 = 1_700_000_000_000_000

private func line(_ id: String, _ sku: String, _ location: String) -> Tote_V1_OrderLine {
    var l = Tote_V1_OrderLine()
    l.lineID = id
    l.sku = sku
    l.quantity = 1
    l.locationID = location
    return l
}

private func order(_ status: Tote_V1_OrderState, _ locations: [String]) -> OrderDecider.State {
    var o = OrderDecider.State()
    o.orderID = "o1"
    o.status = status
    o.stage = status
    o.lines = locations.enumerated().map { line("l\($0.offset + 1)", "SKU-\($0.offset + 1)", $0.element) }
    return o
}

/// A created pick task of `warehouse` that entered its state at `since`.
private func task(_ id: String, warehouse: String = "main", kind: Tote_V1_StationKind = .pick, since: Int64) throws -> TaskDecider.State {
    var l = Tote_V1_TaskLine()
    l.lineID = "l1"
    l.sku = "SKU-1"
    l.quantity = 1
    l.location = "\(warehouse)/A/01"
    let spec = TaskSpec(taskID: id, kind: kind, orderID: "o-\(id)", warehouseID: warehouse, zone: "A", lines: kind == .pick ? [l] : [{ var p = l; p.location = ""; return p }()])
    return TaskDecider.fold(try TaskDecider.decide(.create(spec), state: TaskDecider.initialState, context: CommandContext(actor: .system, nowMicros: since)))
}

@Suite("Automation: warehouse scope")
struct AutomationScopeTests {
    @Test func homeWarehouseIsTheFirstWarehouseOfTheLocations() {
        #expect(WarehouseScope.homeWarehouse(of: order(.paid, ["south/A/01", "north/B/02"])) == "north")
        #expect(WarehouseScope.homeWarehouse(of: order(.paid, ["main/A/01"])) == "main")
        #expect(WarehouseScope.homeWarehouse(of: order(.paid, [])) == "")
    }

    @Test func onlyTheHomeBridgePlansAnOrder() {
        let o = order(.paid, ["south/A/01", "north/B/02"])
        let plan = TaskPlanner.plan(order: o, tasks: [:])
        #expect(plan.create.map(\.warehouseID) == ["north", "south"])
        let north = WarehouseScope(warehouseID: "north").restrict(plan, order: o, tasks: [:])
        #expect(north == plan)  // the home bridge creates every task, the other warehouse's too
        #expect(WarehouseScope(warehouseID: "south").restrict(plan, order: o, tasks: [:]).isEmpty)
        #expect(WarehouseScope.all.restrict(plan, order: o, tasks: [:]) == plan)
        #expect(WarehouseScope.all.plans(o) && WarehouseScope(warehouseID: "north").plans(o) && !WarehouseScope(warehouseID: "south").plans(o))
    }

    @Test func eachBridgeCancelsOnlyItsOwnWarehousesTasks() throws {
        let o = order(.cancelled, ["south/A/01", "north/B/02"])
        let tasks = ["o1-pick-1": try task("o1-pick-1", warehouse: "north", since: t0), "o1-pick-2": try task("o1-pick-2", warehouse: "south", since: t0)]
        let plan = TaskPlanner.plan(order: o, tasks: tasks)
        #expect(plan.taskCommands.map(\.taskID) == ["o1-pick-1", "o1-pick-2"])
        #expect(WarehouseScope(warehouseID: "north").restrict(plan, order: o, tasks: tasks).taskCommands.map(\.taskID) == ["o1-pick-1"])
        #expect(WarehouseScope(warehouseID: "south").restrict(plan, order: o, tasks: tasks).taskCommands.map(\.taskID) == ["o1-pick-2"])
        #expect(WarehouseScope(warehouseID: "east").restrict(plan, order: o, tasks: tasks).isEmpty)
    }

    @Test func servesItsWarehouseOnly() {
        #expect(WarehouseScope(warehouseID: "main").serves(warehouse: "main"))
        #expect(!WarehouseScope(warehouseID: "main").serves(warehouse: "annex"))
        #expect(WarehouseScope.all.serves(warehouse: "annex"))
    }
}

@Suite("Automation: stuck task pages")
struct AutomationStuckTaskPageTests {
    @Test func pagesAreLongestStuckFirstAndCoverEveryTaskOnce() throws {
        // 25 pending tasks, entered their state at t0 + i s (ids out of time order), all stuck.
        var tasks: [(state: TaskDecider.State, version: Int64)] = []
        for i in 0..<25 { tasks.append((try task("t\(String(format: "%02d", 24 - i))", since: t0 + Int64(i) * 1_000_000), 1)) }
        var seen: [String] = []
        var token = ""
        var pages = 0
        repeat {
            let after = token.isEmpty ? nil : StuckTaskPage.cursor(token)
            #expect(token.isEmpty || after != nil)
            let page = StuckTaskPage.page(tasks.shuffled(), after: after, pageSize: 10, nowMicros: t0 + 3_600_000_000, olderThanMicros: 0)
            seen += page.tasks.map(\.taskID)
            token = page.nextPageToken
            pages += 1
        } while !token.isEmpty && pages < 10
        #expect(pages == 3)
        #expect(seen == (0..<25).map { "t\(String(format: "%02d", 24 - $0))" })  // oldest state first
    }

    @Test func filtersAndThresholds() throws {
        let tasks = [(try task("a", since: t0), Int64(1)), (try task("b", warehouse: "annex", since: t0), 1), (try task("c", since: t0 + 500_000_000), 1)]
        let recent = StuckTaskPage.page(tasks, after: nil, pageSize: 0, nowMicros: t0 + 600_000_000, olderThanMicros: 300_000_000)
        #expect(recent.tasks.map(\.taskID) == ["a", "b"] && recent.nextPageToken.isEmpty)
        let main = StuckTaskPage.page(tasks, after: nil, pageSize: 0, nowMicros: t0 + 600_000_000, olderThanMicros: 0) { $0.warehouseID == "main" }
        #expect(main.tasks.map(\.taskID) == ["a", "c"])
        #expect(main.tasks.allSatisfy { !$0.stuckReason.isEmpty })
        let exact = StuckTaskPage.page(tasks, after: nil, pageSize: 3, nowMicros: t0 + 600_000_000, olderThanMicros: 0)
        #expect(exact.tasks.count == 3 && exact.nextPageToken.isEmpty)  // no empty last page
    }

    @Test func tokensRoundTripAndForeignTokensAreRejected() {
        let cursor = StuckTaskPage.Cursor(stateSinceMicros: t0, taskID: "o-1:pick/2")
        #expect(StuckTaskPage.cursor(StuckTaskPage.token(cursor)) == cursor)
        #expect(StuckTaskPage.token(cursor).allSatisfy { $0.isLetter || $0.isNumber || "._-".contains($0) })
        for bad in ["x", "st1.", "st1.!!!", "st1.bm90LWEtY3Vyc29y", "st1.MTIzOg", "12", String(repeating: "A", count: 500)] {
            #expect(StuckTaskPage.cursor(bad) == nil, "\(bad)")
        }
    }
}
