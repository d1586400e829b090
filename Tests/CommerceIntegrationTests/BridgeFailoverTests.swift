import EventStore
import Foundation
import Postgres
import Testing
import ToteAPI
import ToteCommands
import ToteDomain
import ToteServices
import ToteTestSupport

/// Child processes of one test (real `tote serve` servers and C controller simulators), with their
/// output in files under `folder`. ``stopAll()`` ends them (SIGTERM, then SIGKILL: a child started
/// from a Swift test may inherit a blocked SIGTERM) and waits until they are gone; tests call it
/// however they end.
final class ChildProcesses {
    let folder: URL
    private(set) var processes: [(name: String, process: Process)] = []

    init() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("bridge-failover-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    /// Starts `executable` with `arguments`; stdout goes to `<name>.out`, stderr to `<name>.err`.
    @discardableResult
    func start(_ name: String, _ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        for (suffix, set) in [("out", { (h: FileHandle) in p.standardOutput = h }), ("err", { (h: FileHandle) in p.standardError = h })] {
            let path = folder.appendingPathComponent("\(name).\(suffix)").path
            FileManager.default.createFile(atPath: path, contents: nil)
            set(FileHandle(forWritingAtPath: path)!)
        }
        try p.run()
        processes.append((name, p))
        return p
    }

    /// The text a child wrote to `<name>.<suffix>` so far.
    func output(_ name: String, _ suffix: String = "out") -> String {
        (try? String(contentsOf: folder.appendingPathComponent("\(name).\(suffix)"), encoding: .utf8)) ?? ""
    }

    /// Starts `tote serve` on an ephemeral port with the database and keys; returns its port.
    func startServer(_ name: String, tote: String, database: String, keys: String) async throws -> (process: Process, port: Int) {
        let p = try start(name, tote, ["serve", "--listen", "127.0.0.1:0", "--database", database, "--pool-size", "4", "--drain-timeout", "1", "--log-level", "info"], environment: ["TOTE_API_KEYS": keys])
        var port: Int?
        try await eventually(timeout: .seconds(60), "\(name) listening") {
            guard p.isRunning else { throw BridgeTestFailure("\(name) exited: \(self.output(name, "err").suffix(800))") }
            port = self.output(name).split(separator: "\n").lazy.compactMap { line in
                line.hasPrefix("listening on ") ? line.split(separator: ":").last.flatMap { Int($0) } : nil
            }.first
            return port != nil
        }
        return (p, port!)
    }

    /// Ends every child still running and waits until all are gone.
    func stopAll() async {
        await stopProcesses(processes.map(\.process), grace: .seconds(2))
    }

    /// The last lines of every child's output, for a failure message.
    func tails(lines: Int = 12) -> String {
        processes.map { name, _ in
            let out = (output(name) + output(name, "err")).split(separator: "\n").suffix(lines).joined(separator: "\n  ")
            return "\(name):\n  \(out)"
        }.joined(separator: "\n")
    }

    deinit {
        // Last resort (e.g. a test that forgot stopAll): nothing may outlive the test.
        for (_, p) in processes where p.isRunning { kill(p.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: folder)
    }
}

/// Every event of the log, in order.
func allEvents(_ store: EventStore) async throws -> [RecordedEvent] {
    var events: [RecordedEvent] = []
    var position = LogPosition.start
    while true {
        let page = try await store.readAll(after: position, limit: 1000)
        events += page
        guard let last = page.last, page.count == 1000 else { return events }
        position = last.position
    }
}

/// Checks against the log that every task reached exactly one final state (TaskFinished, since
/// nothing fails here) and every order was started and packed exactly once; returns the problems.
func taskAndOrderProblems(_ events: [RecordedEvent], orders: [String]) throws -> [String] {
    var problems: [String] = []
    let taskStreams = Set(events.map(\.stream).filter { $0.hasPrefix("task-") })
    if taskStreams.count != 2 * orders.count { problems.append("\(taskStreams.count) task streams for \(orders.count) orders (want one pick and one pack each)") }
    for stream in taskStreams.sorted() {
        let task = try taskEvents(events, stream)
        let finished = task.filter { if case .taskFinished? = $0.event { true } else { false } }.count
        let otherFinals = task.filter { e in
            switch e.event {
            case .taskCancelled?, .taskCompletedByHand?: true
            default: false
            }
        }.count
        if finished != 1 || otherFinals != 0 { problems.append("\(stream): finished \(finished) times, cancelled/done by hand \(otherFinals) times") }
    }
    for id in orders {
        let types = events.filter { $0.stream == StreamName.order(id) }.map(\.type)
        for type in ["OrderPickingStarted", "OrderPacked"] where types.filter({ $0 == type }).count != 1 {
            problems.append("order \(id): \(types.filter { $0 == type }.count) × \(type)")
        }
    }
    return problems
}

@Suite("Automation bridge failover with real processes", .localCluster, .serialized)
struct BridgeFailoverTests {
    /// The storefront, operator and controller keys of the `tote serve` processes.
    static let keys = "storefront:\(Keys.storefront),operator:\(Keys.operator),controller:\(BridgeKeys.controller)"

    /// True if the server at `port` is the active bridge (Operations answers; a standby says UNAVAILABLE).
    static func isActive(port: Int) async -> Bool {
        guard let ops = try? await ClientConnection.connect(host: "127.0.0.1", port: port, configuration: .init(apiKey: Keys.operator)) else { return false }
        defer { Task { await ops.close() } }
        var list = Tote_V1_ListStuckTasksRequest()
        list.page.pageSize = 1
        return (try? await ops.unary(OperationsAPI.listStuckTasks, list, options: CallOptions(timeout: .seconds(5)))) != nil
    }

    @Test("kill -9 the active `tote serve` mid-flow: the standby takes over, the simulators follow, every task ends exactly once and every order is PACKED")
    func killActiveServer() async throws {
        let tote = Binaries.tote
        try #require(FileManager.default.isExecutableFile(atPath: tote), "\(tote) is missing: run `swift build --build-tests` first")
        let sim = try #require(await Binaries.controllerSimulator(), "`make -C tools/controller` failed (needs gcc and libprotobuf-c-dev)")
        let cluster = try LocalCluster.cluster
        let database = try await cluster.createDatabase()
        let databaseURL = cluster.connectionString(database: database)
        let children = try ChildProcesses()
        let pool = PostgresPool(configuration: .init(connectionString: databaseURL, size: 2))
        let store = EventStore(pool: pool, pollInterval: .milliseconds(50))
        do {
            // Two servers on one database: one active bridge, one standby.
            let a = try await children.startServer("tote-a", tote: tote, database: databaseURL, keys: Self.keys)
            let b = try await children.startServer("tote-b", tote: tote, database: databaseURL, keys: Self.keys)
            var ports: [String: Int] = ["tote-a": a.port, "tote-b": b.port]
            var activeName = ""
            try await eventually(timeout: .seconds(30), "one active bridge") {
                let active = await [("tote-a", a.port), ("tote-b", b.port)].asyncFilter { await Self.isActive(port: $0.1) }
                guard active.count == 1 else { return false }
                activeName = active[0].0
                return true
            }
            let survivorName = activeName == "tote-a" ? "tote-b" : "tote-a"
            let activeProcess = activeName == "tote-a" ? a.process : b.process

            let first = try await ClientConnection.connect(host: "127.0.0.1", port: ports[activeName]!, configuration: .init(apiKey: Keys.operator))
            try await seedBridgeCatalog(first, skus: ["TEE-M": 2500, "TEE-L": 2700], stock: 100)

            // Real C stations that know both addresses (controllers sit behind a failover address).
            let servers = "127.0.0.1:\(a.port),127.0.0.1:\(b.port)"
            for (id, kind) in [("sim-pick-01", "pick"), ("sim-pick-02", "pick"), ("sim-pack-01", "pack")] {
                try children.start(id, sim, ["--servers", servers, "--key", BridgeKeys.controller, "--id", id, "--kind", kind,
                                             "--pick-ms", "300/50", "--backoff-ms", "50/400",
                                             "--state-file", children.folder.appendingPathComponent("\(id).state").path])
            }

            // Orders before the crash, on the active server.
            let shopper = try await ClientConnection.connect(host: "127.0.0.1", port: ports[activeName]!, configuration: .init(apiKey: Keys.storefront))
            var orderIDs: [String] = []
            for i in 0..<6 { orderIDs.append(try await placePaidOrder(shopper, lines: i % 2 == 0 ? ["TEE-M": 2, "TEE-L": 1] : ["TEE-L": 1])) }
            // Mid-flow: some task has finished, and some order is not packed yet.
            try await eventually(timeout: .seconds(60), "a task finished") {
                try await allEvents(store).contains { $0.stream.hasPrefix("task-") && $0.type == "TaskFinished" }
            }
            let beforeKill = try await allEvents(store)
            let packedBefore = beforeKill.filter { $0.type == "OrderPacked" }.count
            #expect(packedBefore < orderIDs.count, "the crash must come mid-flow")
            // Tasks at a station when the server dies (last event: dispatched, accepted or started).
            var lastTaskEvent: [String: String] = [:]
            for e in beforeKill where e.stream.hasPrefix("task-") { lastTaskEvent[e.stream] = e.type }
            let inFlight = lastTaskEvent.values.filter { ["TaskDispatched", "TaskAccepted", "TaskStarted"].contains($0) }.count
            #expect(inFlight > 0, "some task must be at a station when the active server dies")

            kill(activeProcess.processIdentifier, SIGKILL)
            try await eventually(timeout: .seconds(10), "the active server gone") { !activeProcess.isRunning }
            ports[activeName] = nil
            await shopper.close()
            await first.close()

            // The standby takes over; more orders go in through it.
            try await eventually(timeout: .seconds(30), "the standby takes over") { await Self.isActive(port: ports[survivorName]!) }
            let survivor = try await ClientConnection.connect(host: "127.0.0.1", port: ports[survivorName]!, configuration: .init(apiKey: Keys.storefront))
            for _ in 0..<3 { orderIDs.append(try await placePaidOrder(survivor, lines: ["TEE-M": 1])) }
            try await eventually(timeout: .seconds(120), "every order PACKED") {
                for id in orderIDs where try await getOrder(survivor, id).state != .packed { return false }
                return true
            }
            await survivor.close()

            let events = try await allEvents(store)
            let problems = try taskAndOrderProblems(events, orders: orderIDs)
            #expect(problems.isEmpty, "\(problems)")
            let audit = try await LogAudit.run(store, now: CommandRunner.systemClock())
            #expect(audit.problems.isEmpty, "\(audit.problems)")
            // Work was done on both sides of the crash, and the stations came back through the survivor.
            let finishedAfter = events.filter { $0.type == "TaskFinished" }.count - beforeKill.filter { $0.type == "TaskFinished" }.count
            #expect(finishedAfter > 0)
            #expect(children.output(survivorName, "err").contains("bridge is active"))
            print("failover: killed \(activeName) with \(inFlight) task(s) at stations, \(packedBefore) of 6 orders packed; \(survivorName) took over and finished \(finishedAfter) task(s); \(orderIDs.count) orders PACKED")
            for id in ["sim-pick-01", "sim-pick-02", "sim-pack-01"] {
                #expect(children.output(id).components(separatedBy: "session online").count >= 3, "\(id) did not come back online after the crash")
            }
        } catch {
            Issue.record("failover test failed: \(error)\n\(children.tails())")
        }
        await children.stopAll()
        #expect(children.processes.allSatisfy { !$0.process.isRunning })
        await store.shutdown()
        try? await pool.shutdown()
    }

    @Test("kill -9 a pick station mid-task: after the grace period its task goes to the other pick station and finishes once")
    func killControllerMidTask() async throws {
        let sim = try #require(await Binaries.controllerSimulator(), "`make -C tools/controller` failed (needs gcc and libprotobuf-c-dev)")
        let node = try await BridgeNode.start(session: .init(heartbeatIntervalMicros: 500_000, redeliveryTimeoutMicros: 1_000_000, gracePeriodMicros: 1_500_000))
        let children = try ChildProcesses()
        do {
            try await node.waitUntilActive()
            try await seedBridgeCatalog(node, skus: ["TEE-M": 2500], stock: 10)
            var stations: [String: Process] = [:]
            for (id, kind, ms) in [("sim-pick-a", "pick", "2500/0"), ("sim-pick-b", "pick", "2500/0"), ("sim-pack-a", "pack", "50/0")] {
                stations[id] = try children.start(id, sim, ["--host", "127.0.0.1", "--port", "\(node.port)", "--key", BridgeKeys.controller, "--id", id, "--kind", kind,
                                                            "--pick-ms", ms, "--heartbeat-ms", "500", "--backoff-ms", "50/300"])
            }
            let shopper = try await node.connect()
            try await eventually(timeout: .seconds(20), "three stations online") {
                ["sim-pick-a", "sim-pick-b", "sim-pack-a"].allSatisfy { children.output($0).contains("session online") }
            }
            let orderID = try await placePaidOrder(shopper, lines: ["TEE-M": 1])
            let taskID = TaskPlanner.pickTaskID(orderID: orderID, number: 1)
            var victim = ""
            try await eventually(timeout: .seconds(20), "the pick task accepted or running at a station") {
                let task = try await node.runner.read(TaskDecider.self, StreamName.task(taskID)).state
                victim = task.controllerID
                return task.status == .accepted || task.status == .running
            }
            kill(stations[victim]!.processIdentifier, SIGKILL)
            let other = victim == "sim-pick-a" ? "sim-pick-b" : "sim-pick-a"

            try await eventually(timeout: .seconds(30), "order PACKED") { try await getOrder(shopper, orderID).state == .packed }
            await shopper.close()
            let events = try taskEvents(try await node.allEvents(), StreamName.task(taskID))
            let dispatched = events.compactMap { if case .taskDispatched(let e)? = $0.event { e.controllerID } else { nil } }
            #expect(dispatched == [victim, other])
            #expect(events.filter { if case .taskReassigned? = $0.event { true } else { false } }.count == 1)
            let finished = events.compactMap { if case .taskFinished(let e)? = $0.event { e.controllerID } else { nil } }
            #expect(finished == [other])
        } catch {
            Issue.record("controller kill test failed: \(error)\n\(children.tails())")
        }
        await children.stopAll()
        #expect(children.processes.allSatisfy { !$0.process.isRunning })
        await node.stop()
    }
}

extension Array {
    /// The elements for which the async `predicate` holds, in order.
    func asyncFilter(_ predicate: (Element) async -> Bool) async -> [Element] {
        var out: [Element] = []
        for e in self where await predicate(e) { out.append(e) }
        return out
    }
}
