import BenchSupport
import Foundation
import Synchronization
import ToteAPI
import ToteRPC

/// What the benchmark observes, shared by the order drivers and the simulated controllers: per
/// order the moment it was paid (payment reply) and the moment a controller received its first
/// pick command; per finished task the moment the bridge acknowledged its FINISHED report.
final class Observations: Sendable {
    struct Order {
        var paidNanos: UInt64?
        var firstCommandNanos: UInt64?
        var packedNanos: UInt64?
        var measured = false
    }

    private struct State {
        var orders: [String: Order] = [:]
        /// Ack times of FINISHED reports (pick and pack), in arrival order.
        var finishedAcks: [UInt64] = []
        var commands = 0
        var duplicates = 0
        var sessionErrors: [String] = []
    }

    private let state = Mutex(State())

    /// The order was paid (its payment reply arrived) at `nanos`.
    func paid(_ orderID: String, at nanos: UInt64, measured: Bool) {
        state.withLock { s in
            s.orders[orderID, default: Order()].paidNanos = nanos
            s.orders[orderID, default: Order()].measured = measured
        }
    }

    /// A controller received a pick command of the order at `nanos`.
    func pickCommand(_ orderID: String, at nanos: UInt64) {
        state.withLock { s in
            s.commands += 1
            if s.orders[orderID]?.firstCommandNanos == nil { s.orders[orderID, default: Order()].firstCommandNanos = nanos }
        }
    }

    /// A controller received a command it already had (a redelivery).
    func duplicate() { state.withLock { $0.duplicates += 1 } }

    func packCommand() { state.withLock { $0.commands += 1 } }

    /// The bridge acknowledged a FINISHED report at `nanos` (of the pack task of `packedOrderID`, if any).
    func finishedAcked(at nanos: UInt64, packedOrderID: String?) {
        state.withLock { s in
            s.finishedAcks.append(nanos)
            if let packedOrderID, s.orders[packedOrderID] != nil { s.orders[packedOrderID]!.packedNanos = nanos }
        }
    }

    func sessionError(_ text: String) { state.withLock { $0.sessionErrors.append(text) } }

    /// Forgets the orders of the previous rate (their late commands and packs are ignored).
    func startPoint() { state.withLock { $0.orders.removeAll() } }

    func snapshot() -> (orders: [String: Order], finishedAcks: [UInt64], commands: Int, duplicates: Int, errors: [String]) {
        state.withLock { ($0.orders, $0.finishedAcks, $0.commands, $0.duplicates, $0.sessionErrors) }
    }

    /// Measured orders that are paid but whose first pick command has not arrived yet.
    func waitingForCommand() -> Int {
        state.withLock { s in s.orders.values.count { $0.measured && $0.paidNanos != nil && $0.firstCommandNanos == nil } }
    }
}

/// A simulated warehouse controller in this process: one `Automation/Connect` session on its own
/// TCP connection, following docs/AUTOMATION.md §10 like the C simulator does (hello, cumulative
/// ack of every new command, ACCEPTED at once, then one task at a time: FINISHED after a work time
/// with everything picked, or a box for a pack; a heartbeat answering each of the bridge's).
/// State is kept in memory only: a session that ends is not resumed (the benchmark counts it as
/// an error).
struct SimulatedController: Sendable {
    let id: String
    let kind: Tote_V1_StationKind
    let zones: [String]
    let workNanos: (mean: UInt64, jitter: UInt64)
    let observations: Observations

    /// Runs the session until the task is cancelled or the bridge ends it; `online` is called once
    /// the welcome arrives.
    func run(connection: ClientConnection, online: @escaping @Sendable () -> Void) async {
        do {
            try await connection.bidirectional(AutomationAPI.connect, options: CallOptions(timeout: nil)) { writer, responses in
                try await session(writer, responses, online: online)
            }
        } catch is CancellationError {
        } catch let error as RPCError where error.code == .cancelled {
        } catch {
            if !Task.isCancelled { observations.sessionError("\(id): \(error)") }
        }
    }

    private enum Outgoing: Sendable {
        case message(Tote_V1_ControllerMessage)
        /// A report; `finished` carries the order id of a pack task (or "" for a pick) so that
        /// its acknowledgement can be attributed.
        case report(Tote_V1_ControllerMessage, finishedPackOrder: String?)
    }

    private func session(_ writer: RequestWriter<Tote_V1_ControllerMessage>, _ responses: ResponseStream<Tote_V1_BridgeMessage>, online: @escaping @Sendable () -> Void) async throws {
        let (outgoing, out) = AsyncStream<Outgoing>.makeStream()
        let (work, workQueue) = AsyncStream<Tote_V1_BridgeCommand>.makeStream()
        // Reports not yet acknowledged by the bridge: report sequence → pack order id ("" = pick) if FINISHED.
        let state = SessionState()
        let observations = self.observations

        @Sendable func report(_ command: Tote_V1_BridgeCommand, _ status: Tote_V1_ActionStatus) {
            var s = Tote_V1_ActionState()
            s.reportSequence = state.reportCounter.add(1, ordering: .relaxed).newValue
            s.commandID = command.commandID
            s.sequence = command.sequence
            s.status = status
            var packOrder: String?
            switch command.action {
            case .pickTask(let t)?:
                s.taskID = t.taskID
                if status == .finished {
                    s.picked = t.lines.map { line in
                        var p = Tote_V1_PickedQuantity()
                        p.lineID = line.lineID
                        p.sku = line.sku
                        p.location = line.location
                        p.quantity = line.quantity
                        return p
                    }
                    packOrder = ""
                }
            case .packTask(let t)?:
                s.taskID = t.taskID
                if status == .finished {
                    var packed = Tote_V1_PackResult()
                    packed.boxUsed = "BOX-M"
                    packed.weightGrams = 1200
                    packed.parcelCount = 1
                    s.packed = packed
                    packOrder = t.orderID
                }
            case .cancelTask(let t)?:
                s.taskID = t.taskID
            case nil:
                break
            }
            var m = Tote_V1_ControllerMessage()
            m.body = .actionState(s)
            out.yield(.report(m, finishedPackOrder: packOrder))
        }

        try await withThrowingTaskGroup(of: Void.self) { group in
            // The only writer of the call: messages leave in the order they were queued.
            group.addTask {
                for await item in outgoing {
                    switch item {
                    case .message(let m):
                        try await writer.write(m)
                    case .report(let m, let packOrder):
                        if let packOrder { state.unacked.withLock { $0[m.actionState.reportSequence] = packOrder } }
                        try await writer.write(m)
                    }
                }
            }
            // The station: one task at a time.
            group.addTask {
                let (mean, jitter) = workNanos
                for await command in work {
                    let spread = jitter == 0 ? 0 : Int64.random(in: -Int64(jitter)...Int64(jitter))
                    let nanos = max(0, Int64(mean) + spread)
                    if nanos > 0 { try await Task.sleep(for: .nanoseconds(nanos)) }
                    report(command, .finished)
                }
            }
            var hello = Tote_V1_ControllerHello()
            hello.controllerID = id
            hello.stationKind = kind
            hello.warehouseID = "main"
            hello.zones = zones
            hello.protocolVersion = 1
            hello.sdkVersion = "bridge-bench"
            var first = Tote_V1_ControllerMessage()
            first.body = .hello(hello)
            out.yield(.message(first))

            var highestSeen: UInt64 = 0
            var known = Set<String>()
            for try await message in responses {
                let now = monotonicNanoseconds()
                switch message.body {
                case .welcome?:
                    online()
                case .command(let command)?:
                    if command.sequence <= highestSeen || known.contains(command.commandID) {
                        observations.duplicate()
                    } else {
                        highestSeen = command.sequence
                        known.insert(command.commandID)
                        switch command.action {
                        case .pickTask(let t)?: observations.pickCommand(t.orderID, at: now)
                        case .packTask?: observations.packCommand()
                        default: break
                        }
                    }
                    var ack = Tote_V1_ControllerMessage()
                    var a = Tote_V1_ControllerAck()
                    a.sequence = highestSeen
                    ack.body = .ack(a)
                    out.yield(.message(ack))
                    guard !known.isEmpty, command.sequence == highestSeen else { break }
                    if case .cancelTask? = command.action {
                        report(command, .finished)
                    } else {
                        report(command, .accepted)
                        workQueue.yield(command)
                    }
                case .ack(let a)?:
                    let done = state.unacked.withLock { pending -> [String] in
                        let covered = pending.keys.filter { $0 <= a.reportSequence }
                        return covered.compactMap { pending.removeValue(forKey: $0) }
                    }
                    for packOrder in done { observations.finishedAcked(at: now, packedOrderID: packOrder.isEmpty ? nil : packOrder) }
                case .heartbeat?:
                    var h = Tote_V1_ControllerMessage()
                    var beat = Tote_V1_ControllerHeartbeat()
                    beat.status = .idle
                    h.body = .heartbeat(beat)
                    out.yield(.message(h))
                default:
                    break
                }
            }
            out.finish()
            workQueue.finish()
            group.cancelAll()
            throw BenchError("\(id): the bridge ended the session")
        }
    }
}

/// One session's report bookkeeping, shared by its reader, writer and station tasks.
final class SessionState: Sendable {
    /// Reports sent and not yet acknowledged that are FINISHED: report sequence → the pack task's
    /// order id, or "" for a pick.
    let unacked = Mutex<[UInt64: String]>([:])
    /// The last report sequence used.
    let reportCounter = Atomic<UInt64>(0)
}

/// A counter shared between tasks.
final class Counter: Sendable {
    let value = Atomic<Int>(0)
    let peak = Atomic<Int>(0)
}
