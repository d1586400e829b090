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
    @Test("a paid order reaches PACKED through tote dev's simulators; after SIGTERM no tote, postgres or simulator process is left")
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
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("tote-devrun-\(UUID().uuidString.prefix(8).lowercased())")
        let folder = base.appendingPathComponent("dev")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        let output = base.appendingPathComponent("stdout.log").path
        let postgresPort = Int.random(in: 20_000...29_999)  // names the unix socket inside the folder only
        let pid = try spawnClean(tote, ["dev", "--folder", folder.path, "--listen", "127.0.0.1:0", "--postgres-port", "\(postgresPort)",
                                        "--controllers", "1,1", "--controller-sim", simulator,
                                        "--metrics-listen", "127.0.0.1:0", "--demo-products", "200", "--traffic", "2"], output: output)
        var exited = false
        defer {
            if !exited { kill(pid, SIGKILL); var s: Int32 = 0; waitpid(pid, &s, 0) }
            killLeftovers(containing: base.path)
            try? FileManager.default.removeItem(at: base)
        }

        // The server prints its address, then the stations it started.
        var address: String?
        try await eventually(timeout: .seconds(120), "tote dev to listen and start its controllers") {
            let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("listening on ") }) { address = String(line.dropFirst("listening on ".count)) }
            if reaped(pid) { exited = true; throw BridgeTestFailure("tote dev exited early:\n\(text)") }
            return address != nil && text.contains("dev: started 1 pick and 1 pack station(s)")
        }
        let port = try #require(address.flatMap { $0.split(separator: ":").last }.flatMap { Int($0) })
        let simulators = processes(containing: folder.path).filter { $0.commandLine.split(separator: " ").first?.hasSuffix("tote-controller-sim") == true }
        #expect(simulators.count == 2, "simulators running: \(simulators.map(\.commandLine))")

        // One purchase over the wire with the development keys, paid at once.
        let admin = try await ClientConnection.connect(host: "127.0.0.1", port: port, configuration: .init(apiKey: "dev-operator-key-00001"))
        try await seedDevCatalog(admin, sku: "DEV-TEE-M", stock: 5)
        await admin.close()
        let shopper = try await ClientConnection.connect(host: "127.0.0.1", port: port, configuration: .init(apiKey: "dev-storefront-key-0001"))
        let orderID = try await placePaidOrder(shopper, lines: ["DEV-TEE-M": 2])
        try await eventually(timeout: .seconds(120), "order \(orderID) PACKED by the simulated stations") {
            try await getOrder(shopper, orderID).state == .packed
        }

        // The demo catalog was loaded, and the simulated shoppers buy from it.
        let started = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        #expect(started.contains("dev: loaded the demo catalog: 200 products"), "\(started.prefix(1500))")
        let metrics = try #require(started.split(separator: "\n").first { $0.hasPrefix("metrics on http://") }.map { String($0.dropFirst("metrics on ".count)) })
        var page = ""
        try await eventually(timeout: .seconds(120), "simulated shoppers' orders to show in /metrics") {
            page = try await httpGet(metrics).1
            return (sample(page, #"tote_rpc_requests_total{method="tote.v1.Checkout/PlaceOrder",code="OK"}"#) ?? 0) >= 3
        }
        #expect(sample(page, #"tote_bridge_controllers_online{warehouse="all"}"#) == 2)
        #expect((sample(page, #"tote_rpc_requests_total{method="tote.v1.Query/SearchCatalog",code="OK"}"#) ?? 0) >= 1)
        #expect((sample(page, "tote_eventstore_appended_events_total") ?? 0) >= 10)

        // The operator CLI against tote dev: the packed order's history, and a cancellation by hand
        // recorded with the operator and the reason.
        let server = ["--server", "127.0.0.1:\(port)", "--api-key", "dev-operator-key-00001"]
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
        let postmaster = try #require(Int32((try String(contentsOfFile: folder.appendingPathComponent("postgres/data/postmaster.pid").path, encoding: .utf8)).split(separator: "\n").first ?? ""))
        let before = processes(containing: folder.path)
        #expect(before.contains { $0.pid == postmaster })
        kill(pid, SIGTERM)
        var status: Int32 = 0
        try await eventually(timeout: .seconds(60), "tote dev to exit after SIGTERM") {
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid { exited = true }
            return exited
        }
        #expect(status & 0x7f == 0 && (status >> 8) & 0xff == 0, "tote dev exit status \(status)")
        let said = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        #expect(said.contains("dev: stopped the simulated stations: 2 after SIGTERM, 0 killed"), "tote dev's output:\n\(said.suffix(1500))")
        for process in before + simulators {
            #expect(!isAlive(process.pid), "left running: \(process.pid) \(process.commandLine)")
        }
        #expect(!isAlive(postmaster), "postmaster \(postmaster) left running")
        let left = processes(containing: base.path)
        #expect(left.isEmpty, "processes left: \(left.map { "\($0.pid) \($0.commandLine)" })")
        // The stations' logs (in the folder) show the work: the pick and the pack of this order.
        let pickLog = (try? String(contentsOfFile: folder.appendingPathComponent("controllers/sim-pick-01.log").path, encoding: .utf8)) ?? ""
        #expect(pickLog.contains("finished pick task=\(TaskPlanner.pickTaskID(orderID: orderID, number: 1))"), "pick station log:\n\(pickLog.suffix(2000))")
        let packLog = (try? String(contentsOfFile: folder.appendingPathComponent("controllers/sim-pack-01.log").path, encoding: .utf8)) ?? ""
        #expect(packLog.contains("finished pack task=\(TaskPlanner.packTaskID(orderID: orderID))"), "pack station log:\n\(packLog.suffix(2000))")
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

/// A product with one variant `sku`, priced, published, with `stock` units at `main`.
private func seedDevCatalog(_ admin: ClientConnection, sku: String, stock: Int64) async throws {
    var create = Tote_V1_CreateProductRequest()
    create.details.name = "Dev Tee"
    create.details.slug = "dev-tee-\(UUID().uuidString.prefix(6).lowercased())"
    let product = try await admin.unary(CatalogAPI.createProduct, create, options: command())
    var variant = Tote_V1_AddVariantRequest()
    variant.productID = product.productID
    variant.variant.sku = sku
    _ = try await admin.unary(CatalogAPI.addVariant, variant, options: command())
    var prices = Tote_V1_SetPricesRequest()
    prices.productID = product.productID
    var price = Tote_V1_VariantPrice()
    price.sku = sku
    price.price = Money(2500, "EUR").proto
    prices.prices = [price]
    _ = try await admin.unary(CatalogAPI.setPrices, prices, options: command())
    var publish = Tote_V1_PublishProductRequest()
    publish.productID = product.productID
    _ = try await admin.unary(CatalogAPI.publishProduct, publish, options: command())
    var receive = Tote_V1_ReceiveStockRequest()
    receive.key = stockKey(sku)
    receive.quantity = stock
    receive.reference = "PO-\(sku)"
    _ = try await admin.unary(InventoryAPI.receiveStock, receive, options: command())
}

/// posix_spawn of `executable` with stdout and stderr to `output`, an empty signal mask and
/// default signal handlers (a child of the test process would otherwise inherit blocked signals).
private func spawnClean(_ executable: String, _ arguments: [String], output: String) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attributes, &empty)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for signal in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    var pid: pid_t = 0
    let result = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
    guard result == 0 else { throw BridgeTestFailure("cannot start \(executable): \(String(cString: strerror(result)))") }
    return pid
}

/// True once the child `pid` has exited (and is reaped now).
private func reaped(_ pid: pid_t) -> Bool {
    var status: Int32 = 0
    return waitpid(pid, &status, WNOHANG) == pid
}

/// A live process: it exists and is not a zombie (a zombie has exited; only its parent's
/// bookkeeping is left).
private func isAlive(_ pid: pid_t) -> Bool {
    guard kill(pid, 0) == 0 || errno == EPERM else { return false }
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return false }
    let state = stat[stat.index(after: close)...].split(separator: " ").first
    return state != "Z" && state != "X"
}

/// Live processes whose command line contains `text`.
private func processes(containing text: String) -> [(pid: pid_t, commandLine: String)] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { entry -> (pid: pid_t, commandLine: String)? in
        guard let pid = pid_t(entry), pid != getpid(),
              let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"), !data.isEmpty else { return nil }
        let commandLine = String(decoding: data.map { $0 == 0 ? UInt8(ascii: " ") : $0 }, as: UTF8.self)
        guard commandLine.contains(text), isAlive(pid) else { return nil }
        return (pid, commandLine)
    }
}

/// After a failure: SIGKILL whatever still runs from this test's folder.
private func killLeftovers(containing text: String) {
    for process in processes(containing: text) { kill(process.pid, SIGKILL) }
}
