import Foundation
import Testing
import ToteAPI
import ToteDomain
import ToteProto
import ToteTestSupport

/// What one run of the real `tote` binary printed, and how it ended.
struct CommandLineRun: Sendable {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs this build's `tote` (``Binaries/tote``) with `arguments`, to completion.
func runTote(_ arguments: [String]) async throws -> CommandLineRun {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: Binaries.tote)
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Read both pipes before waiting, so a large output cannot fill a pipe and stall the child.
    nonisolated(unsafe) let child = process
    return try await offCooperativeThreads {
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        child.waitUntilExit()
        return CommandLineRun(status: child.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
    }
}

@Suite("tote admin against a live node: find, show and intervene, every intervention in the order's history", .localCluster, .serialized)
struct AdminCLITests {
    @Test("order show, stock, orders by state, cancel (idempotent) and release, as tables and JSON; bad input is a typed error")
    func adminCommands() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("admin-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: folder) }
        // The node's clock is the wall clock: the query service ages orders by the wall clock.
        let node = try await Node.start(clock: TestClock(micros: Int64(Date().timeIntervalSince1970 * 1_000_000)), readModels: folder.path)
        defer { Task { await node.stop() } }
        try await seedCatalog(node, skus: ["ADM-1": 1999], stock: 10)
        let shopper = try await node.connect()
        let placed = try await placeOrder(shopper, checkoutID: try await readyCheckout(shopper, lines: ["ADM-1": 2]))
        await shopper.close()
        let server = ["--server", "127.0.0.1:\(node.port)", "--api-key", Keys.operator]

        // The order with its history, as a table.
        let shown = try await runTote(["admin", "order", "show", placed.orderID] + server)
        #expect(shown.status == 0, "\(shown.stderr)")
        #expect(shown.stdout.contains(placed.orderNumber) && shown.stdout.contains("PLACED") && shown.stdout.contains("OrderPlaced"))
        #expect(shown.stdout.contains("ADM-1") && shown.stdout.contains("EUR 39.98"))

        // Stock with the order's reservation.
        let stock = try await runTote(["admin", "stock", "ADM-1"] + server)
        #expect(stock.status == 0, "\(stock.stderr)")
        #expect(stock.stdout.contains("reservations:") && stock.stdout.contains(placed.orderID))

        // Orders by state, from the read models (which follow the log shortly after).
        var listed = CommandLineRun(status: -1, stdout: "", stderr: "")
        for _ in 0..<50 {
            listed = try await runTote(["admin", "orders", "--state", "placed"] + server)
            if listed.stdout.contains(placed.orderID) { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(listed.status == 0 && listed.stdout.contains(placed.orderID), "\(listed.stdout) \(listed.stderr)")

        // Cancel, twice with one idempotency key: one cancellation, by the named operator.
        let cancel = ["admin", "order", "cancel", placed.orderID, "--reason", "customer called", "--operator-id", "alice", "--idempotency-key", "admin-test-1"] + server
        let first = try await runTote(cancel)
        let again = try await runTote(cancel)
        #expect(first.status == 0 && first.stdout.contains("CANCELLED"), "\(first.stderr)")
        #expect(again.status == 0 && again.stdout == first.stdout)

        let json = try await runTote(["admin", "order", "show", placed.orderID, "--json"] + server)
        let view = try Tote_V1_OrderView(jsonString: json.stdout)
        let cancellations = view.timeline.filter { $0.eventType == "OrderCancelled" }
        #expect(view.state == .cancelled && cancellations.count == 1)
        #expect(cancellations.first?.actor.id == "alice" && cancellations.first?.reason == "customer called")

        // A reservation released by hand.
        let operatorClient = try await node.connect(apiKey: Keys.operator)
        var reserve = Tote_V1_ReserveStockRequest()
        reserve.key = stockKey("ADM-1")
        reserve.quantity = 1
        reserve.ttl = seconds(600)
        reserve.reference = "phone order"
        let reservation = try await operatorClient.unary(InventoryAPI.reserveStock, reserve, options: command())
        let released = try await runTote(["admin", "release", "ADM-1", "main", reservation.reservationID, "--reason", "phone order abandoned"] + server)
        #expect(released.status == 0, "\(released.stderr)")
        var get = Tote_V1_GetStockRequest()
        get.sku = "ADM-1"
        let level = try await operatorClient.unary(InventoryAPI.getStock, get, options: CallOptions(timeout: .seconds(10))).levels.first
        #expect(level?.reserved == 0 && level?.available == 10)
        await operatorClient.close()

        // Bad input: typed errors naming the problem, non-zero exits.
        let missing = try await runTote(["admin", "order", "show", "no-such-order"] + server)
        #expect(missing.status == 2 && missing.stderr.contains("NOT_FOUND") && missing.stderr.contains("no-such-order"))
        let storefront = try await runTote(["admin", "order", "refund", placed.orderID, "--reason", "x", "--server", "127.0.0.1:\(node.port)", "--api-key", Keys.storefront])
        #expect(storefront.status == 2 && storefront.stderr.contains("PERMISSION_DENIED"))
        let state = try await runTote(["admin", "orders", "--state", "lost"] + server)
        #expect(state.status != 0 && state.stderr.contains("unknown order state 'lost'"))
        let age = try await runTote(["admin", "orders", "--state", "paid", "--older-than", "soon"] + server)
        #expect(age.status != 0 && age.stderr.contains("not a duration"))
        let noReason = try await runTote(["admin", "order", "cancel", placed.orderID] + server)
        #expect(noReason.status != 0 && noReason.stderr.contains("--reason"))
    }

    @Test("task interventions: stuck tasks listed, a pick done by hand, a pack cancelled, each recorded with operator and reason; a refused one exits non-zero naming the state")
    func taskInterventions() async throws {
        // A bridge with no stations: a paid order's pick task waits for one.
        let node = try await BridgeNode.start()
        defer { Task { await node.stop() } }
        try await node.waitUntilActive()
        try await seedBridgeCatalog(node, skus: ["TEE-M": 2500], stock: 10)
        let shopper = try await node.connect()
        let orderID = try await placePaidOrder(shopper, lines: ["TEE-M": 1])
        await shopper.close()
        let pick = TaskPlanner.pickTaskID(orderID: orderID, number: 1), pack = TaskPlanner.packTaskID(orderID: orderID)
        let server = ["--server", "127.0.0.1:\(node.port)", "--api-key", Keys.operator, "--operator-id", "op-cli"]

        var stuck = CommandLineRun(status: -1, stdout: "", stderr: "")
        try await eventually("the pick task to be listed") {
            stuck = try await runTote(["admin", "task", "stuck", "--older-than", "0s"] + server)
            return stuck.stdout.contains(pick)
        }
        #expect(stuck.status == 0 && stuck.stdout.contains("PICK"))

        let done = try await runTote(["admin", "task", "done", pick, "--reason", "picked by hand"] + server)
        #expect(done.status == 0 && done.stdout.contains("DONE"), "\(done.stdout) \(done.stderr)")
        try await eventually("the pack task to be created") { try await node.runner.read(TaskDecider.self, StreamName.task(pack)).version > 0 }
        let cancelled = try await runTote(["admin", "task", "cancel", pack, "--reason", "customer collects in store", "--json"] + server)
        #expect(cancelled.status == 0, "\(cancelled.stderr)")
        #expect(try Tote_V1_CancelTaskResponse(jsonString: cancelled.stdout).task.state == .cancelled)
        let refused = try await runTote(["admin", "task", "retry", pack, "--reason", "try again"] + server)
        #expect(refused.status == 2 && refused.stderr.contains("FAILED_PRECONDITION"), "\(refused.stdout) \(refused.stderr)")
        let unknown = try await runTote(["admin", "task", "reassign", "no-such-task", "--reason", "x"] + server)
        #expect(unknown.status == 2 && unknown.stderr.contains("NOT_FOUND"), "\(unknown.stderr)")

        let events = try await node.allEvents()
        let byHand = try taskEvents(events, StreamName.task(pick)).compactMap { if case .taskCompletedByHand(let e)? = $0.event { e } else { nil } }
        #expect(byHand.count == 1 && byHand.first?.actorID == "op-cli" && byHand.first?.reason == "picked by hand")
        let cancels = try taskEvents(events, StreamName.task(pack)).compactMap { if case .taskCancelled(let e)? = $0.event { e } else { nil } }
        #expect(cancels.count == 1 && cancels.first?.actorID == "op-cli" && cancels.first?.reason == "customer collects in store")
    }
}
