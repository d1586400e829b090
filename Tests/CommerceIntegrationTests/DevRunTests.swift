import Foundation
import Testing
import ToteAPI
import ToteDomain

#if canImport(Glibc)
import Glibc
#endif

/// `tote dev` as a user runs it: the real binary (.build/debug/tote) in its own process, with its
/// own PostgreSQL cluster and the simulated controllers it starts (tools/controller).
@Suite("tote dev as a process: its simulated controllers pack an order; SIGTERM leaves nothing behind", .serialized)
struct DevRunTests {
    @Test("a paid order from the Swift client and one from the C client reach PACKED through tote dev's simulators and show in /metrics; after SIGTERM no tote, postgres or simulator process is left")
    func devRunsOrdersToPackedAndStopsClean() async throws {
        let tote = Binaries.tote
        guard FileManager.default.isExecutableFile(atPath: tote) else {
            Issue.record("\(tote) is missing: build it first (swift build --build-tests builds it)")
            return
        }
        guard let simulator = await Binaries.controllerSimulator() else {
            print("SKIPPED devRunsOrdersToPackedAndStopsClean: `make -C tools/controller` failed (need gcc and libprotobuf-c-dev)")
            return
        }
        // The server prints its address, then the stations it started.
        let dev = try await DevProcess.start(["--controllers", "1,1", "--controller-sim", simulator, "--demo-products", "200", "--traffic", "2"],
                                             stations: "dev: started 1 pick and 1 pack station(s)")
        defer { dev.cleanup() }
        let folder = dev.folder, port = dev.port, metrics = dev.metrics
        let simulators = processes(containing: folder.path).filter { $0.commandLine.split(separator: " ").first?.hasSuffix("tote-controller-sim") == true }
        #expect(simulators.count == 2, "simulators running: \(simulators.map(\.commandLine))")

        // One purchase over the wire with the development keys, paid at once.
        let admin = try await dev.connect(apiKey: DevProcess.operatorKey)
        try await seedDevCatalog(admin, sku: "DEV-TEE-M", stock: 5)
        await admin.close()
        let shopper = try await dev.connect()
        let orderID = try await placePaidOrder(shopper, lines: ["DEV-TEE-M": 2])
        try await eventually(timeout: .seconds(120), "order \(orderID) PACKED by the simulated stations") {
            try await getOrder(shopper, orderID).state == .packed
        }

        // The demo catalog was loaded, and the simulated shoppers buy from it.
        let started = dev.said
        #expect(started.contains("dev: loaded the demo catalog: 200 products"), "\(started.prefix(1500))")
        var page = ""
        try await eventually(timeout: .seconds(120), "simulated shoppers' orders to show in /metrics") {
            page = try await httpGet(metrics).1
            return (sample(page, #"tote_rpc_requests_total{method="tote.v1.Checkout/PlaceOrder",code="OK"}"#) ?? 0) >= 3
        }
        #expect(sample(page, #"tote_bridge_controllers_online{warehouse="all"}"#) == 2)
        #expect((sample(page, #"tote_rpc_requests_total{method="tote.v1.Query/SearchCatalog",code="OK"}"#) ?? 0) >= 1)
        #expect((sample(page, "tote_eventstore_appended_events_total") ?? 0) >= 10)

        // The same purchase from the C client (tools/c/tote_purchase.c, protobuf-c over the wire
        // protocol): paid, packed by the same stations, counted in /metrics.
        var cOrderID: String?
        let (purchaseTool, problem) = await Binaries.cClientTool("tote-purchase")
        if let purchaseTool {
            let cClient = ["--server", "127.0.0.1:\(port)", "--api-key", DevProcess.storefrontKey, "--timeout-ms", "15000"]
            let before = try await httpGet(metrics).1
            let bought = try await runProgram(purchaseTool, cClient + ["--sku", "DEV-TEE-M:1", "--customer", "c-client-devrun"])
            #expect(bought.status == 0, "tote-purchase: exit \(bought.status)\n\(bought.stdout)\(bought.stderr)")
            let id = bought.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(bought.stderr.contains("AUTHORIZED"), "\(bought.stderr)")
            cOrderID = id
            var view = Tote_V1_OrderView()
            try await eventually(timeout: .seconds(120), "the C client's order \(id) PACKED by the simulated stations") {
                view = try await getOrder(shopper, id)
                return view.state == .packed
            }
            #expect(view.customerID == "c-client-devrun" && view.lines.map(\.sku) == ["DEV-TEE-M"] && view.lines.first?.quantity == 1)
            // An unknown SKU: the C client prints the status and exits 2; the server counts that
            // AddLine as NOT_FOUND (the simulated shoppers only buy SKUs that exist, so the count
            // moves by exactly this call).
            let refused = try await runProgram(purchaseTool, cClient + ["--sku", "NO-SUCH-SKU:1"])
            #expect(refused.status == 2 && refused.stderr.contains("error: NOT_FOUND: ") && refused.stderr.contains("NO-SUCH-SKU") && refused.stdout.isEmpty,
                    "exit \(refused.status): \(refused.stdout)\(refused.stderr)")
            let notFound = #"tote_rpc_requests_total{method="tote.v1.Cart/AddLine",code="NOT_FOUND"}"#
            try await eventually(timeout: .seconds(30), "the C client's calls to show in /metrics") {
                page = try await httpGet(metrics).1
                return (sample(page, notFound) ?? 0) == (sample(before, notFound) ?? 0) + 1
            }
            for method in ["tote.v1.Cart/CreateCart", "tote.v1.Checkout/PlaceOrder", "tote.v1.Payments/AuthorizePayment"] {
                let series = "tote_rpc_requests_total{method=\"\(method)\",code=\"OK\"}"
                #expect((sample(page, series) ?? 0) >= (sample(before, series) ?? 0) + 1, "\(series) did not move")
            }
        } else {
            print("SKIPPED the C client's purchase in devRunsOrdersToPackedAndStopsClean: \(problem)")
        }

        // The operator CLI against tote dev: the packed order's history, and a cancellation by hand
        // recorded with the operator and the reason (DevAdminTests has the other interventions).
        let server = dev.adminServer
        let statusTable = try await runTote(["admin", "status", "--metrics", metrics] + server)
        #expect(statusTable.status == 0 && statusTable.stdout.contains("SERVING") && statusTable.stdout.contains("ACTIVE, 2 station(s) online") && statusTable.stdout.contains("event(s) behind"), "\(statusTable.stdout) \(statusTable.stderr)")
        let statusJSON = try await runTote(["admin", "status", "--metrics", metrics, "--json"] + server)
        let parsed = try JSONSerialization.jsonObject(with: Data(statusJSON.stdout.utf8)) as? [String: Any]
        #expect(parsed?["serving"] as? Bool == true && ((parsed?["bridges"] as? [[String: Any]])?.first?["controllersOnline"] as? Int) == 2, "\(statusJSON.stdout)")
        let shown = try await runTote(["admin", "order", "show", orderID] + server)
        #expect(shown.status == 0 && shown.stdout.contains("OrderPacked") && shown.stdout.contains("PACKED"), "\(shown.stdout) \(shown.stderr)")
        let unpaid = try await placeOrder(shopper, checkoutID: try await readyCheckout(shopper, lines: ["DEV-TEE-M": 1]))
        let cancelled = try await runTote(["admin", "order", "cancel", unpaid.orderID, "--reason", "test cancellation", "--operator-id", "ops-1"] + server)
        #expect(cancelled.status == 0, "\(cancelled.stderr)")
        let history = try await getOrder(shopper, unpaid.orderID).timeline
        #expect(history.contains { $0.eventType == "OrderCancelled" && $0.actor.id == "ops-1" && $0.reason == "test cancellation" })
        await shopper.close()

        // SIGTERM: tote stops its stations, the server and PostgreSQL, and exits 0.
        let postmaster = try dev.postmaster()
        let before = processes(containing: folder.path)
        #expect(before.contains { $0.pid == postmaster })
        try await dev.stop()
        #expect(dev.status & 0x7f == 0 && (dev.status >> 8) & 0xff == 0, "tote dev exit status \(dev.status)")
        let said = dev.said
        #expect(said.contains("dev: stopped the simulated stations: 2 after SIGTERM, 0 killed"), "tote dev's output:\n\(said.suffix(1500))")
        for process in before + simulators {
            #expect(!isAlive(process.pid), "left running: \(process.pid) \(process.commandLine)")
        }
        #expect(!isAlive(postmaster), "postmaster \(postmaster) left running")
        let left = processes(containing: dev.base.path)
        #expect(left.isEmpty, "processes left: \(left.map { "\($0.pid) \($0.commandLine)" })")
        // The stations' logs (in the folder) show the work: the pick and the pack of each order.
        let pickLog = (try? String(contentsOfFile: folder.appendingPathComponent("controllers/sim-pick-01.log").path, encoding: .utf8)) ?? ""
        let packLog = (try? String(contentsOfFile: folder.appendingPathComponent("controllers/sim-pack-01.log").path, encoding: .utf8)) ?? ""
        for id in [orderID] + (cOrderID.map { [$0] } ?? []) {
            #expect(pickLog.contains("finished pick task=\(TaskPlanner.pickTaskID(orderID: id, number: 1))"), "pick station log:\n\(pickLog.suffix(2000))")
            #expect(packLog.contains("finished pack task=\(TaskPlanner.packTaskID(orderID: id))"), "pack station log:\n\(packLog.suffix(2000))")
        }
    }

    @Test("a malformed --controllers is refused with a message naming the option, before anything starts")
    func badControllerCounts() async throws {
        let tote = Binaries.tote
        guard FileManager.default.isExecutableFile(atPath: tote) else {
            Issue.record("\(tote) is missing: build it first (swift build --build-tests builds it)")
            return
        }
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("tote-devrun-\(UUID().uuidString.prefix(8).lowercased())")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: base) }
        for bad in ["3", "a,1", "1,-1", "1,2,3", "99,1"] {
            let output = base.appendingPathComponent("out-\(bad.count).log").path
            let pid = try spawnClean(tote, ["dev", "--folder", base.appendingPathComponent("dev").path, "--controllers", bad], output: output)
            var status: Int32 = 0
            try await eventually(timeout: .seconds(30), "tote dev --controllers \(bad) to exit") { waitpid(pid, &status, WNOHANG) == pid }
            let said = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            #expect(status & 0x7f == 0 && (status >> 8) & 0xff == 64, "--controllers \(bad): exit status \(status)")
            #expect(said.contains("--controllers"), "--controllers \(bad): \(said)")
            #expect(!FileManager.default.fileExists(atPath: base.appendingPathComponent("dev/postgres").path), "--controllers \(bad) started PostgreSQL")
        }
    }
}
