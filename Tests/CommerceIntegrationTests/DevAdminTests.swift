import EventStore
import Foundation
import Testing
import ToteAPI
import ToteCommands
import ToteDomain

#if canImport(Glibc)
import Glibc
#endif

/// `tote admin` against one live `tote dev` process (the real binaries, its own PostgreSQL, its
/// simulated stations): every intervention of the operator CLI, each checked in the order's
/// history (`tote admin order show --json`) or, where the order's history does not show it yet,
/// in the event log itself with the operator's id and reason; and bad input.
@Suite("tote admin against a live tote dev: refund, release, task retry/reassign/done/cancel, each recorded with operator and reason", .serialized)
struct DevAdminTests {
    @Test("every operator intervention against one tote dev is recorded with the operator and the reason; unknown ids and a missing --reason are clear errors; tote dev still stops clean")
    func interventionsAgainstDev() async throws {
        guard FileManager.default.isExecutableFile(atPath: Binaries.tote) else {
            Issue.record("\(Binaries.tote) is missing: build it first (swift build --build-tests builds it)")
            return
        }
        guard let simulator = await Binaries.controllerSimulator() else {
            print("SKIPPED interventionsAgainstDev: `make -C tools/controller` failed (need gcc and libprotobuf-c-dev)")
            return
        }
        // Stations that accept every task and never finish one (a pick takes 10 minutes), so the
        // tasks stay at a station for the interventions: tote dev's own arguments, with a slower
        // --pick-ms after them (the simulator takes the last).
        let dev = try await DevProcess.start(["--controllers", "2,1", "--demo-products", "0", "--traffic", "0", "--log-format", "json", "--log-level", "debug"], stations: "dev: started 2 pick and 1 pack station(s)") { base in
            let wrapper = base.appendingPathComponent("stalling-sim")
            try "#!/bin/sh\nexec '\(simulator)' \"$@\" --pick-ms 600000/0\n".write(to: wrapper, atomically: true, encoding: .utf8)
            chmod(wrapper.path, 0o755)
            return ["--controller-sim", wrapper.path]
        }
        defer { dev.cleanup() }
        let admin = try await dev.connect(apiKey: DevProcess.operatorKey)
        try await seedDevCatalog(admin, sku: "ADM-TEE", stock: 10)
        await admin.close()
        let shopper = try await dev.connect()
        defer { Task { await shopper.close() } }

        // Task interventions on a paid order's pick task, once a station has it.
        let taskOrder = try await placePaidOrder(shopper, lines: ["ADM-TEE": 1])
        let pick = TaskPlanner.pickTaskID(orderID: taskOrder, number: 1), pack = TaskPlanner.packTaskID(orderID: taskOrder)
        try await eventually(timeout: .seconds(60), "a station to take \(pick)") {
            try await dev.taskEvents(pick).contains { if case .taskDispatched? = $0.1.event { true } else { false } }
        }
        let taskOperator = dev.adminServer + ["--operator-id", "ops-task"]
        let retried = try await runTote(["admin", "task", "retry", pick, "--reason", "jam cleared", "--json"] + taskOperator)
        #expect(retried.status == 0, "\(retried.stdout) \(retried.stderr)")
        #expect(try Tote_V1_RetryTaskResponse(jsonString: retried.stdout).task.taskID == pick)
        // Once the retry is sent again, move the task to the other pick station.
        var station = ""
        try await eventually(timeout: .seconds(60), "\(pick) to be dispatched again after the retry") {
            let dispatches = try await dev.taskEvents(pick).compactMap { if case .taskDispatched(let e)? = $0.1.event { e.controllerID } else { nil } }
            station = dispatches.last ?? ""
            return dispatches.count >= 2
        }
        let target = station == "sim-pick-01" ? "sim-pick-02" : "sim-pick-01"
        let reassigned = try await runTote(["admin", "task", "reassign", pick, "--station", target, "--reason", "\(station) is down"] + taskOperator)
        #expect(reassigned.status == 0 && reassigned.stdout.contains(pick), "\(reassigned.stdout) \(reassigned.stderr)")
        let done = try await runTote(["admin", "task", "done", pick, "--reason", "picked by hand"] + taskOperator)
        #expect(done.status == 0 && done.stdout.contains("DONE"), "\(done.stdout) \(done.stderr)")
        // The pick done by hand plans the pack; the pack station takes it and never finishes it.
        try await eventually(timeout: .seconds(60), "the pack task \(pack) to reach the pack station") {
            try await dev.taskEvents(pack).contains { if case .taskDispatched? = $0.1.event { true } else { false } }
        }
        let cancelled = try await runTote(["admin", "task", "cancel", pack, "--reason", "customer collects in store", "--json"] + taskOperator)
        #expect(cancelled.status == 0, "\(cancelled.stdout) \(cancelled.stderr)")
        #expect(try Tote_V1_CancelTaskResponse(jsonString: cancelled.stdout).task.state == .cancelled)
        // A finished task cannot be retried: a typed refusal naming the state, exit 2.
        let refused = try await runTote(["admin", "task", "retry", pick, "--reason", "again"] + taskOperator)
        #expect(refused.status == 2 && refused.stderr.contains("FAILED_PRECONDITION"), "\(refused.stdout) \(refused.stderr)")

        // Each task intervention is an event on the task's stream with the operator and the reason.
        let pickEvents = try await dev.taskEvents(pick), packEvents = try await dev.taskEvents(pack)
        let retries = pickEvents.compactMap { if case .taskRetried(let e)? = $0.1.event { e } else { nil } }
        #expect(retries.count == 1 && retries.first?.actorID == "ops-task" && retries.first?.actorRole == "operator" && retries.first?.reason == "jam cleared", "\(retries)")
        let moves = pickEvents.compactMap { if case .taskReassigned(let e)? = $0.1.event { e } else { nil } }
        #expect(moves.count == 1 && moves.first?.actorID == "ops-task" && moves.first?.reason == "\(station) is down" && moves.first?.targetControllerID == target, "\(moves)")
        let byHand = pickEvents.compactMap { if case .taskCompletedByHand(let e)? = $0.1.event { e } else { nil } }
        #expect(byHand.count == 1 && byHand.first?.actorID == "ops-task" && byHand.first?.reason == "picked by hand", "\(byHand)")
        let packCancels = packEvents.compactMap { if case .taskCancelled(let e)? = $0.1.event { e } else { nil } }
        #expect(packCancels.count == 1 && packCancels.first?.actorID == "ops-task" && packCancels.first?.reason == "customer collects in store", "\(packCancels)")
        for (recorded, event) in pickEvents + packEvents where [.taskRetried, .taskReassigned, .taskCompletedByHand, .taskCancelled].contains(event.kind) {
            #expect(recorded.metadata.actorID == "ops-task" && recorded.metadata.actorRole == "operator", "\(recorded.type): \(recorded.metadata)")
        }

        // Refund part of a paid order: in the order's history with the operator and the reason.
        let refundOrder = try await placePaidOrder(shopper, lines: ["ADM-TEE": 2])
        let refunded = try await runTote(["admin", "order", "refund", refundOrder, "--amount", "1000", "--reason", "damaged in transit", "--operator-id", "ops-refund"] + dev.adminServer)
        #expect(refunded.status == 0 && refunded.stdout.contains("refund recorded"), "\(refunded.stdout) \(refunded.stderr)")
        let refundJSON = try await runTote(["admin", "order", "show", refundOrder, "--json"] + dev.adminServer)
        let refundView = try Tote_V1_OrderView(jsonString: refundJSON.stdout)
        let refunds = refundView.timeline.filter { $0.eventType == "OrderRefunded" }
        #expect(refunds.count == 1 && refunds.first?.actor.id == "ops-refund" && refunds.first?.actor.role == .operator && refunds.first?.reason == "damaged in transit", "\(refunds)")
        #expect(refundView.refundedTotal.minorUnits == 1000 && refundView.state == .partiallyRefunded)
        let refundTable = try await runTote(["admin", "order", "show", refundOrder] + dev.adminServer)
        #expect(refundTable.stdout.contains("operator:ops-refund") && refundTable.stdout.contains("damaged in transit") && refundTable.stdout.contains("PARTIALLY_REFUNDED"), "\(refundTable.stdout)")
        // Found by its state, spelled as the wire enum spells it (the read models follow shortly).
        var listed = CommandLineRun(status: -1, stdout: "", stderr: "")
        try await eventually(timeout: .seconds(30), "the refunded order listed as partially_refunded") {
            listed = try await runTote(["admin", "orders", "--state", "partially_refunded"] + dev.adminServer)
            return listed.stdout.contains(refundOrder)
        }
        #expect(listed.status == 0 && listed.stdout.contains("PARTIALLY_REFUNDED"), "\(listed.stdout) \(listed.stderr)")

        // Release an unpaid order's reservation by hand: the stock is free again, and the stock
        // item's log records the release with the operator (the call's actor) and the reason.
        let unpaid = try await placeOrder(shopper, checkoutID: try await readyCheckout(shopper, lines: ["ADM-TEE": 1])).orderID
        let stockJSON = try await runTote(["admin", "stock", "ADM-TEE", "--location", "main", "--json"] + dev.adminServer)
        let level = try #require(try Tote_V1_GetStockResponse(jsonString: stockJSON.stdout).levels.first)
        let reservation = try #require(level.reservations.first { $0.reference == "order:\(unpaid)" }, "\(level.reservations)")
        let released = try await runTote(["admin", "release", "ADM-TEE", "main", reservation.reservationID, "--reason", "phone order abandoned", "--operator-id", "ops-release"] + dev.adminServer)
        #expect(released.status == 0 && released.stdout.contains("released"), "\(released.stdout) \(released.stderr)")
        let after = try await runTote(["admin", "stock", "ADM-TEE", "--location", "main", "--json"] + dev.adminServer)
        let levelAfter = try #require(try Tote_V1_GetStockResponse(jsonString: after.stdout).levels.first)
        #expect(levelAfter.reserved == level.reserved - 1 && !levelAfter.reservations.contains { $0.reservationID == reservation.reservationID })
        let stockEvents = try await dev.withLog { try await $0.readStream(StreamName.stockItem(sku: "ADM-TEE", location: "main")) }
        let releases = try stockEvents.filter { $0.type == "ReservationReleased" }.map { ($0, try EventCodec.decode($0, as: Tote_V1_StockItemEvent.self)) }
            .filter { if case .reservationReleased(let e)? = $0.1.event { e.reservationID == reservation.reservationID } else { false } }
        #expect(releases.count == 1 && releases.first?.0.metadata.actorID == "ops-release" && releases.first?.0.metadata.actorRole == "operator", "\(releases.map(\.0.metadata))")
        if case .reservationReleased(let e)? = releases.first?.1.event {
            #expect(e.reason == "phone order abandoned (by ops-release)" && e.quantity == 1)
        }

        // The order's history (`order show`) holds the interventions on its tasks and on its
        // reservations, each with its stream, the operator and the reason.
        let taskHistory = try Tote_V1_OrderView(jsonString: try await runTote(["admin", "order", "show", taskOrder, "--json"] + dev.adminServer).stdout).timeline
        for (type, reason) in [("TaskRetried", "jam cleared"), ("TaskReassigned", "\(station) is down"), ("TaskCompletedByHand", "picked by hand"), ("TaskCancelled", "customer collects in store")] {
            #expect(taskHistory.contains { $0.eventType == type && $0.actor.id == "ops-task" && $0.reason == reason && $0.stream.hasPrefix("task-\(taskOrder)-") },
                    "\(type) not in the history of \(taskOrder)")
        }
        #expect(taskHistory.map(\.at.unixMicros) == taskHistory.map(\.at.unixMicros).sorted(), "the history is in log order")
        let releaseShow = try await runTote(["admin", "order", "show", unpaid, "--json"] + dev.adminServer)
        let releaseHistory = try Tote_V1_OrderView(jsonString: releaseShow.stdout).timeline
        #expect(releaseHistory.contains { $0.eventType == "ReservationReleased" && $0.actor.id == "ops-release" && $0.stream == "stock-ADM-TEE@main" }, "the release is not in the history of \(unpaid)")
        let releaseTable = try await runTote(["admin", "order", "show", unpaid] + dev.adminServer).stdout
        #expect(releaseTable.contains("stock-ADM-TEE@main") && releaseTable.contains("ReservationReleased") && releaseTable.contains("ops-release"), "\(releaseTable)")

        // Bad input: unknown ids are NOT_FOUND naming what was asked for (exit 2); a missing
        // --reason is a usage error naming the option (exit 64), not a crash.
        for arguments in [["order", "show", "no-such-order"], ["order", "refund", "no-such-order", "--reason", "x"],
                          ["order", "refund", "no-such-order", "--amount", "100", "--reason", "x"], ["order", "cancel", "no-such-order", "--reason", "x"]] {
            let run = try await runTote(["admin"] + arguments + dev.adminServer)
            #expect(run.status == 2 && run.stderr.contains("error: NOT_FOUND: ") && run.stderr.contains("no-such-order"), "\(arguments): exit \(run.status) \(run.stderr)")
        }
        for arguments in [["task", "retry", "no-such-task", "--reason", "x"], ["task", "done", "no-such-task", "--reason", "x"],
                          ["release", "ADM-TEE", "main", "no-such-reservation", "--reason", "x"]] {
            let run = try await runTote(["admin"] + arguments + dev.adminServer)
            #expect(run.status == 2 && run.stderr.contains("error: NOT_FOUND: "), "\(arguments): exit \(run.status) \(run.stderr)")
        }
        for arguments in [["order", "refund", refundOrder], ["order", "cancel", unpaid], ["release", "ADM-TEE", "main", "x/1"],
                          ["task", "retry", pick], ["task", "reassign", pick], ["task", "cancel", pack], ["task", "done", pick]] {
            let run = try await runTote(["admin"] + arguments + dev.adminServer)
            #expect(run.status == 64 && run.stderr.contains("--reason") && !run.stderr.contains("Fatal error"), "\(arguments): exit \(run.status) \(run.stderr)")
        }
        // Nothing above changed the orders it was refused for.
        #expect(try await getOrder(shopper, unpaid).state == .placed)
        #expect(try await getOrder(shopper, refundOrder).refundedTotal.minorUnits == 1000)

        // Structured logs (`--log-format json --log-level debug`): every log line is one JSON
        // object, and every line of a call carries its method and correlation id: a call that
        // names its correlation id finds it on its line, and a refused call's line has its code.
        var trace = Tote_V1_GetOrderRequest()
        trace.orderID = unpaid
        _ = try await shopper.unary(OrdersAPI.getOrder, trace, options: CallOptions(timeout: .seconds(10), correlationID: "devadmin-trace-1"))
        trace.orderID = "no-such-order"
        _ = try? await shopper.unary(OrdersAPI.getOrder, trace, options: CallOptions(timeout: .seconds(10), correlationID: "devadmin-trace-2"))
        var lines: [[String: Any]] = []
        try await eventually(timeout: .seconds(30), "the traced calls' log lines") {
            lines = dev.said.split(separator: "\n").filter { $0.hasPrefix("{") }.compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            return lines.contains { $0["correlation_id"] as? String == "devadmin-trace-2" }
        }
        let jsonLines = dev.said.split(separator: "\n").filter { $0.hasPrefix("{") }
        #expect(jsonLines.count == lines.count, "every log line parses as JSON")
        let calls = lines.filter { $0["msg"] as? String == "call ended" }
        #expect(calls.count >= 10 && calls.allSatisfy { ($0["method"] as? String)?.hasPrefix("tote.v1.") == true && !(($0["correlation_id"] as? String) ?? "").isEmpty },
                "\(calls.prefix(3))")
        let traced = lines.filter { $0["correlation_id"] as? String == "devadmin-trace-1" }
        #expect(traced.contains { $0["method"] as? String == "tote.v1.Orders/GetOrder" && $0["code"] as? String == "OK" && $0["level"] as? String == "debug" }, "\(traced)")
        #expect(lines.contains { $0["correlation_id"] as? String == "devadmin-trace-2" && $0["code"] as? String == "NOT_FOUND" })

        // SIGTERM: the stations (busy with never-ending tasks) stop, then the server and PostgreSQL.
        let postmaster = try dev.postmaster()
        try await dev.stop()
        #expect(dev.status & 0x7f == 0 && (dev.status >> 8) & 0xff == 0, "tote dev exit status \(dev.status)")
        #expect(dev.said.contains("dev: stopped the simulated stations: 3 after SIGTERM, 0 killed"), "\(dev.said.suffix(1500))")
        #expect(!isAlive(postmaster))
        let left = processes(containing: dev.base.path)
        #expect(left.isEmpty, "processes left: \(left.map { "\($0.pid) \($0.commandLine)" })")
    }
}

extension DevProcess {
    /// The events of task `taskID`'s stream, decoded, from tote dev's log.
    func taskEvents(_ taskID: String) async throws -> [(RecordedEvent, Tote_V1_TaskEvent)] {
        try await withLog { store in
            try await store.readStream(StreamName.task(taskID)).map { ($0, try EventCodec.decode($0, as: Tote_V1_TaskEvent.self)) }
        }
    }
}

extension Tote_V1_TaskEvent {
    /// Which intervention (or other event) this is, for filtering.
    enum Kind { case taskRetried, taskReassigned, taskCompletedByHand, taskCancelled, other }

    var kind: Kind {
        switch event {
        case .taskRetried?: .taskRetried
        case .taskReassigned?: .taskReassigned
        case .taskCompletedByHand?: .taskCompletedByHand
        case .taskCancelled?: .taskCancelled
        default: .other
        }
    }
}
