import EventStore
import Foundation
import Synchronization
import Testing
import ToteAPI
import ToteCommands
import ToteDomain
import ToteServices
import ToteTestSupport

/// The bridge records a burst of controller reports in one append (`append(commands:)`), and
/// keeps every guarantee of recording them one by one: each report is acknowledged only once it
/// is in the log, none is lost or recorded twice, every task ends exactly once — also when a part
/// of the batch conflicts with a write made elsewhere (an operator's action racing the report, or
/// an append that committed but whose answer was lost).
@Suite("Bridge report batches, on a real PostgreSQL", .localCluster, .serialized)
struct BridgeBatchTests {
    @Test("twelve stations reporting at once: every report acknowledged once, every task finished exactly once, fewer appends than reports")
    func burstOfReports() async throws {
        let node = try await BridgeNode.start()
        defer { Task { await node.stop() } }
        try await node.waitUntilActive()
        try await seedBridgeCatalog(node, skus: ["BATCH-M": 2500], stock: 1000)
        let stations = (1...12).map { String(format: "batch-pick-%02d", $0) }
        let board = StationBoard()
        let shopper = try await node.connect()
        let controllers = try await node.connect(apiKey: BridgeKeys.controller)

        try await withThrowingTaskGroup(of: Void.self) { group in
            for id in stations {
                group.addTask {
                    try await controllerSession(controllers, id: id, kind: .pick) { c, _ in
                        board.online(id)
                        // Take every command the bridge sends this station (the bridge may give a
                        // station more than one: an acknowledged command no longer counts as
                        // open) until each order's command has arrived somewhere.
                        var mine: [Tote_V1_BridgeCommand] = []
                        let deadline = ContinuousClock.now + .seconds(90)
                        while board.allCommands.count < stations.count {
                            guard ContinuousClock.now < deadline else { throw BridgeTestFailure("timed out waiting for every order's command") }
                            guard let command = try await c.nextCommandIfAny(within: .seconds(1)) else { continue }
                            try await c.ack(command.sequence)
                            mine.append(command)
                            board.received(id, command)
                        }
                        // Every station reports at the same moment: ACCEPTED, RUNNING, FINISHED back
                        // to back for each of its commands.
                        try await waitWithHeartbeats(c) { board.phase >= 1 }
                        var sequence: UInt64 = 0
                        for command in mine {
                            try await c.report(sequence + 1, command, .accepted)
                            try await c.report(sequence + 2, command, .running)
                            try await c.report(sequence + 3, command, .finished, picked: ScriptedController.fullPick(command))
                            sequence += 3
                        }
                        var acks: [UInt64] = []
                        while acks.last ?? 0 < sequence { acks.append(try await c.nextAck(timeout: .seconds(60))) }
                        board.acked(id, acks)
                    }
                }
            }
            try await eventually(timeout: .seconds(30), "every station online") { board.onlineCount == stations.count }
            for _ in stations { _ = try await placePaidOrder(shopper, lines: ["BATCH-M": 1]) }
            try await eventually(timeout: .seconds(90), "every order's command at a station") { board.allCommands.count == stations.count }
            board.advance(to: 1)
            try await group.waitForAll()
        }
        await shopper.close()
        await controllers.close()

        // Acknowledged once: each station saw strictly increasing acks ending at its last report.
        let all = board.allCommands
        var reportsOf: [String: UInt64] = [:]
        for (id, _) in all { reportsOf[id, default: 0] += 3 }
        for (id, count) in reportsOf {
            let acks = board.acks[id] ?? []
            #expect(acks.last == count, "\(id): acks \(acks)")
            #expect(zip(acks, acks.dropFirst()).allSatisfy { $0 < $1 }, "\(id): acks \(acks)")
        }
        let events = try await node.allEvents()
        let recorded = try reportsRecorded(events)
        var transactions = Set<UInt64>()
        for (id, count) in reportsOf {
            #expect(recorded[id]?.map(\.sequence) == Array(1...count), "\(id): reports recorded \(recorded[id]?.map(\.sequence) ?? [])")
            for r in recorded[id] ?? [] { transactions.insert(r.transactionID) }
        }
        // Recorded in fewer appends than there were reports: the burst went to the log together.
        #expect(transactions.count < 3 * stations.count, "\(transactions.count) appends for \(3 * stations.count) reports")
        // Every task finished exactly once, by the station it was dispatched to.
        #expect(Set(all.map { ScriptedController.taskID($0.command) }).count == stations.count)
        for (id, command) in all {
            let taskEvents = try taskEvents(events, StreamName.task(ScriptedController.taskID(command)))
            let finished = taskEvents.compactMap { e -> Tote_V1_TaskFinished? in
                if case .taskFinished(let f)? = e.event { return f } else { return nil }
            }
            #expect(finished.count == 1, "\(id): \(finished.count) TaskFinished")
            #expect(finished.first?.controllerID == id)
        }
        let audit = try await LogAudit.run(node.store, now: CommandRunner.systemClock())
        #expect(audit.problems.isEmpty, "\(audit.problems.prefix(5))")
    }

    @Test("conflicting parts in a burst: a report racing an operator's done-by-hand, and one the log already holds, are each recorded once; the burst's other reports too")
    func conflictingParts() async throws {
        let node = try await BridgeNode.start()
        defer { Task { await node.stop() } }
        try await node.waitUntilActive()
        try await seedBridgeCatalog(node, skus: ["RACE-M": 2500], stock: 1000)
        // Another node writing to the same streams (a bridge that has just lost its lock, say):
        // the active bridge learns of it only through the conflict.
        let elsewhere = CommandRunner(store: node.store)
        let stations = ["race-done-by-hand", "race-lost-answer", "race-plain"]
        let board = StationBoard()
        let shopper = try await node.connect()
        let controllers = try await node.connect(apiKey: BridgeKeys.controller)

        try await withThrowingTaskGroup(of: Void.self) { group in
            for id in stations {
                group.addTask {
                    try await controllerSession(controllers, id: id, kind: .pick) { c, _ in
                        board.online(id)
                        let command = try await c.nextCommand(timeout: .seconds(90))
                        try await c.ack(command.sequence)
                        try await c.report(1, command, .accepted)
                        var acks = [try await c.nextAck(timeout: .seconds(30))]
                        board.received(id, command)
                        try await waitWithHeartbeats(c) { board.phase >= 1 }
                        try await c.report(2, command, .finished, picked: ScriptedController.fullPick(command))
                        while acks.last != 2 { acks.append(try await c.nextAck(timeout: .seconds(60))) }
                        board.acked(id, acks)
                    }
                }
            }
            try await eventually(timeout: .seconds(30), "every station online") { board.onlineCount == stations.count }
            for _ in stations { _ = try await placePaidOrder(shopper, lines: ["RACE-M": 1]) }
            // As long as the batch test above gives dispatch under a loaded CI (it once took over 60 s here).
            try await eventually(timeout: .seconds(120), "every station's ACCEPTED acknowledged") { board.commands.count == stations.count }
            let commands = board.commands

            // 1. An operator marks the first station's task done by hand, elsewhere: the task
            //    event and the close of its command, in one append (as a bridge does it).
            let byHand = commands[stations[0]]!
            _ = try await elsewhere.execute(commandID: "", actor: Principal(id: "op-7", role: "operator"), correlationID: "race") { unit -> Tote_V1_MarkTaskDoneResponse in
                try await unit.decide(TaskDecider.self, StreamName.task(ScriptedController.taskID(byHand)), .markDone(picked: [], packed: nil, reason: "done at the station by hand"))
                try await unit.recordController(stations[0], [ControllerLog.closed(commandID: byHand.commandID, sequence: byHand.sequence, controllerID: stations[0], reason: "done by hand", nowMicros: unit.context.nowMicros)])
                return Tote_V1_MarkTaskDoneResponse()
            }
            // 2. The second station's FINISHED is already in the log, exactly as the bridge
            //    writes it (an append that committed, whose answer never came back).
            let lost = commands[stations[1]]!
            var finished = Tote_V1_ActionState()
            finished.reportSequence = 2
            finished.commandID = lost.commandID
            finished.sequence = lost.sequence
            finished.taskID = ScriptedController.taskID(lost)
            finished.status = .finished
            finished.picked = ScriptedController.fullPick(lost)
            _ = try await elsewhere.execute(commandID: "", actor: Principal(id: stations[1], role: "controller"), correlationID: "report-\(stations[1])-2") { unit -> Tote_V1_MarkTaskDoneResponse in
                try await unit.decide(TaskDecider.self, StreamName.task(finished.taskID), .report(finished, controllerID: stations[1]))
                try await unit.recordController(stations[1], [ControllerLog.reportRecorded(.actionState(finished), controllerID: stations[1], nowMicros: unit.context.nowMicros)])
                return Tote_V1_MarkTaskDoneResponse()
            }
            // 3. Every station reports FINISHED at once.
            board.advance(to: 1)
            try await group.waitForAll()
        }
        await shopper.close()
        await controllers.close()

        for id in stations {
            let acks = board.acks[id] ?? []
            #expect(acks == [1, 2], "\(id): acks \(acks)")
        }
        let events = try await node.allEvents()
        let recorded = try reportsRecorded(events)
        for id in stations {
            #expect(recorded[id]?.map(\.sequence) == [1, 2], "\(id): reports recorded \(recorded[id]?.map(\.sequence) ?? [])")
        }
        let commands = board.commands
        func finals(_ station: String) throws -> [String] {
            try taskEvents(events, StreamName.task(ScriptedController.taskID(commands[station]!))).compactMap { e in
                switch e.event {
                case .taskFinished?: "finished"
                case .taskCompletedByHand?: "by hand"
                case .taskFailed?: "failed"
                case .taskCancelled?: "cancelled"
                default: nil
                }
            }
        }
        #expect(try finals(stations[0]) == ["by hand"])
        #expect(try finals(stations[1]) == ["finished"])
        #expect(try finals(stations[2]) == ["finished"])
        let audit = try await LogAudit.run(node.store, now: CommandRunner.systemClock())
        #expect(audit.problems.isEmpty, "\(audit.problems.prefix(5))")
    }

    @Test("a dispatch whose controller stream another writer moved conflicts, is decided again on the fresh stream, and reaches the station once")
    func dispatchAfterForeignWrite() async throws {
        let node = try await BridgeNode.start()
        defer { Task { await node.stop() } }
        try await node.waitUntilActive()
        try await seedBridgeCatalog(node, skus: ["MOVED-M": 2500], stock: 10)
        let elsewhere = CommandRunner(store: node.store)
        let station = "moved-pick"
        let shopper = try await node.connect()
        let controllers = try await node.connect(apiKey: BridgeKeys.controller)
        let (orderID, command) = try await controllerSession(controllers, id: station, kind: .pick) { c, _ in
            // The bridge has recorded ControllerConnected, so it knows the stream's version; a
            // station-wide exception recorded elsewhere makes that version stale.
            try await eventually(timeout: .seconds(10), "ControllerConnected recorded") {
                try await node.allEvents().contains { $0.stream == StreamName.controller(station) && $0.type == "ControllerConnected" }
            }
            var jam = Tote_V1_ExceptionReport()
            jam.exceptionID = "jam-1"
            jam.kind = .jam
            jam.reportSequence = 99
            _ = try await elsewhere.execute(commandID: "", actor: Principal(id: station, role: "controller"), correlationID: "elsewhere") { unit -> Tote_V1_MarkTaskDoneResponse in
                try await unit.recordController(station, [ControllerLog.stationException(jam, controllerID: station, nowMicros: unit.context.nowMicros)])
                return Tote_V1_MarkTaskDoneResponse()
            }
            let orderID = try await placePaidOrder(shopper, lines: ["MOVED-M": 1])
            let command = try await c.nextCommand(timeout: .seconds(30))
            try await c.ack(command.sequence)
            return (orderID, command)
        }
        await shopper.close()
        await controllers.close()

        let taskID = TaskPlanner.pickTaskID(orderID: orderID, number: 1)
        #expect(ScriptedController.taskID(command) == taskID)
        let events = try await node.allEvents()
        #expect(try taskEvents(events, StreamName.task(taskID)).filter { if case .taskDispatched? = $0.event { true } else { false } }.count == 1)
        let issued = try events.filter { $0.stream == StreamName.controller(station) }.compactMap { e -> Tote_V1_ControllerCommandIssued? in
            if case .controllerCommandIssued(let i)? = try EventCodec.decode(e, as: Tote_V1_ControllerEvent.self).event { return i } else { return nil }
        }
        #expect(issued.map(\.command.commandID) == [command.commandID])
        #expect(events.contains { $0.stream == StreamName.controller(station) && $0.type == "ControllerExceptionRaised" })
    }
}

/// What the scripted stations of a test share with it: who is online, the command each got, the
/// acks each saw, and the phase the test has reached.
final class StationBoard: Sendable {
    private struct State {
        var online: Set<String> = []
        var commands: [String: Tote_V1_BridgeCommand] = [:]
        var all: [(station: String, command: Tote_V1_BridgeCommand)] = []
        var acks: [String: [UInt64]] = [:]
        var phase = 0
    }
    private let state = Mutex(State())

    func online(_ id: String) { state.withLock { _ = $0.online.insert(id) } }
    func received(_ id: String, _ command: Tote_V1_BridgeCommand) {
        state.withLock { state in
            state.commands[id] = command
            state.all.append((id, command))
        }
    }
    func acked(_ id: String, _ acks: [UInt64]) { state.withLock { $0.acks[id] = acks } }
    func advance(to phase: Int) { state.withLock { $0.phase = phase } }

    var onlineCount: Int { state.withLock { $0.online.count } }
    var commands: [String: Tote_V1_BridgeCommand] { state.withLock { $0.commands } }
    /// Every command received, with its station, in arrival order.
    var allCommands: [(station: String, command: Tote_V1_BridgeCommand)] { state.withLock { $0.all } }
    var acks: [String: [UInt64]] { state.withLock { $0.acks } }
    var phase: Int { state.withLock { $0.phase } }
}

/// Waits until `condition` holds, sending a heartbeat every 200 ms so that the bridge keeps the
/// session online (it hears nothing else from the station meanwhile).
func waitWithHeartbeats(_ c: ScriptedController, timeout: Duration = .seconds(60), _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        guard ContinuousClock.now < deadline else { throw BridgeTestFailure("timed out waiting for the test") }
        try await c.send(.heartbeat(Tote_V1_ControllerHeartbeat()))
        try await Task.sleep(for: .milliseconds(200))
    }
}

/// The `ControllerReportRecorded` events of the log by controller, in log order, each with the
/// transaction that wrote it.
func reportsRecorded(_ events: [RecordedEvent]) throws -> [String: [(sequence: UInt64, transactionID: UInt64)]] {
    var recorded: [String: [(sequence: UInt64, transactionID: UInt64)]] = [:]
    for e in events where e.stream.hasPrefix("controller-") {
        guard case .controllerReportRecorded(let r)? = try EventCodec.decode(e, as: Tote_V1_ControllerEvent.self).event else { continue }
        recorded[String(e.stream.dropFirst("controller-".count)), default: []].append((r.reportSequence, e.position.transactionID))
    }
    return recorded
}
