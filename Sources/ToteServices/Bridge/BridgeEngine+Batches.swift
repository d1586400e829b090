import EventStore
import Foundation
import Logging
import ToteAPI
import ToteCommands
import ToteDomain

/// A task on its way to a station: the command made for it (its sequence reserved in the
/// station's session), not yet in the log.
struct Dispatch: Sendable {
    var taskID: String
    var controllerID: String
    var command: Tote_V1_BridgeCommand
}

/// The streams one batched append writes, as the attempt has decided them so far: parts of
/// several commands may follow each other on one stream, each expecting the version the one
/// before it leaves.
private struct BatchStreams {
    var tasks: [String: (state: TaskDecider.State, version: Int64)] = [:]
    var orders: [String: (state: OrderDecider.State, version: Int64)] = [:]
    var controllers: [String: Int64] = [:]
}

/// Why a batched append gives up: a conflict that kept coming back, or another error.
private let maxBatchAttempts = 5

/// Batched appends of the engine: a burst's reports, a planning pass's task creations and a
/// dispatch pass's commands each go to the log in one `append(commands:)` (one transaction, one
/// round trip, one WAL flush), with expected versions taken from the engine's index, so nothing
/// is read on the way. A part whose expected version is stale makes the whole append fail with
/// nothing written: the engine re-reads that stream, decides the batch again and retries. Every
/// guarantee of the one-append-per-input engine holds: a report is acknowledged only after its
/// events are durable, a command is enqueued only after it is in the log, and a report already
/// in the log (an append that committed but whose answer was lost) is acknowledged, not written
/// twice.
extension BridgeEngine {
    // MARK: - Reports

    /// Records the reports the burst queued so far (one append), then acknowledges them. If the
    /// append cannot be made (not a conflict: e.g. the database is away), each report is tried
    /// alone, so one bad part costs only its own report; an unrecorded report is not
    /// acknowledged, and the controller resends it after its next reconnect.
    func flushReports() async {
        guard !queuedReports.isEmpty else { return }
        let burst = queuedReports
        queuedReports = []
        guard !stopping, !Task.isCancelled else { return }
        if await record(burst) || burst.count == 1 { return }
        for report in burst where !Task.isCancelled { _ = await record([report]) }
    }

    /// Records `reports` in one append: per report, the task events it causes (decided in
    /// order on the task as the reports before it in the batch left it) and
    /// `ControllerReportRecorded` (plus `ControllerExceptionRaised` for a station-wide
    /// exception); then feeds each controller `.reportsRecorded(upTo:)`. False if nothing was
    /// written.
    private func record(_ reports: [(controllerID: String, report: ControllerSession.Report)]) async -> Bool {
        // Reports the log already holds (found after a conflict on the controller's stream).
        var inLog: [String: UInt64] = [:]
        for attempt in 1...maxBatchAttempts {
            var streams = BatchStreams()
            do {
                var commands: [CommandAppend] = []
                var acks: [String: UInt64] = [:]
                for (controllerID, report) in reports {
                    let n = report.reportSequence
                    acks[controllerID] = max(acks[controllerID] ?? 0, n)
                    if let recorded = inLog[controllerID], n <= recorded { continue }
                    let context = CommandContext(actor: Principal(id: controllerID, role: "controller"), nowMicros: clock())
                    let correlationID = "report-\(controllerID)-\(n)"
                    var appends: [StreamAppend] = []
                    var controllerEvents: [Tote_V1_ControllerEvent] = []
                    if let taskCommand = report.taskCommand(controllerID: controllerID) {
                        let id = taskCommand.taskID
                        var task = try await batchTask(id, in: streams)
                        var events = try? TaskDecider.decide(taskCommand.command, state: task.state, context: context)
                        if events == nil, streams.tasks[id] == nil {
                            // A refusal writes nothing to the task, so no expected version checks
                            // it: it stands only on the task as the log has it now.
                            task = try await freshTask(id)
                            events = try? TaskDecider.decide(taskCommand.command, state: task.state, context: context)
                        }
                        // Still refused: a report about an unknown, closed or cancelled command is
                        // recorded and changes nothing.
                        if let events, !events.isEmpty {
                            appends.append(StreamAppend(stream: StreamName.task(id), expectedVersion: Self.expected(task.version),
                                                        events: try events.map { try EventCodec.encode($0, context: context, commandID: "", correlationID: correlationID) }))
                            task = (TaskDecider.fold(events, from: task.state), task.version + Int64(events.count))
                        }
                        streams.tasks[id] = task
                    } else if case .exception(let e) = report {
                        controllerEvents.append(ControllerLog.stationException(e, controllerID: controllerID, nowMicros: context.nowMicros))
                    }
                    controllerEvents.append(ControllerLog.reportRecorded(report, controllerID: controllerID, nowMicros: context.nowMicros))
                    appends.append(try await controllerPart(controllerID, controllerEvents, context: context, correlationID: correlationID, in: &streams))
                    commands.append(CommandAppend(commandID: nil, appends: appends))
                }
                if !commands.isEmpty {
                    _ = try await runner.store.append(commands: commands)
                    commit(streams)
                }
                for (controllerID, upTo) in acks.sorted(by: { $0.key < $1.key }) {
                    await feed(controllerID, .reportsRecorded(upTo: upTo))
                }
                return true
            } catch let error as EventStoreError where error.code == .wrongExpectedVersion && attempt < maxBatchAttempts {
                guard let stream = error.stream else {
                    // Which part is unknown: forget every controller version of this batch.
                    for (controllerID, _) in reports { controllerVersions[controllerID] = nil }
                    continue
                }
                if let log = await refresh(stream) { inLog[log.controllerID] = log.lastReportRecorded }
            } catch {
                logger.error("could not record controller reports; their controllers resend them after a reconnect", metadata: [
                    "reports": "\(reports.count)", "controllers": "\(Set(reports.map(\.controllerID)).sorted().prefix(5))", "error": "\(error)"])
                return false
            }
        }
        return false
    }

    // MARK: - Dispatches

    /// Appends, for every task of `batch`, TaskAssigned + TaskDispatched and the
    /// ControllerCommandIssued of its command, all in one append; then enqueues each command in
    /// its session. A task that is no longer PENDING (found after a conflict) gets its sequence
    /// abandoned; if the append cannot be made every sequence is abandoned and the tasks stay
    /// PENDING for the next pass.
    func dispatch(_ batch: [Dispatch]) async {
        var remaining = batch
        for attempt in 1...maxBatchAttempts {
            var streams = BatchStreams()
            do {
                var commands: [CommandAppend] = []
                var kept: [Dispatch] = []
                var refused: [Dispatch] = []
                let context = CommandContext(actor: Principal(id: configuration.bridgeID, role: "system"), nowMicros: clock())
                for d in remaining {
                    let task = try await batchTask(d.taskID, in: streams)
                    let command = TaskCommand.dispatch(controllerID: d.controllerID, commandID: d.command.commandID, sequence: d.command.sequence)
                    guard let events = try? TaskDecider.decide(command, state: task.state, context: context), !events.isEmpty else {
                        refused.append(d)
                        continue
                    }
                    let correlationID = "dispatch-\(d.taskID)"
                    let taskPart = StreamAppend(stream: StreamName.task(d.taskID), expectedVersion: Self.expected(task.version),
                                                events: try events.map { try EventCodec.encode($0, context: context, commandID: "", correlationID: correlationID) })
                    streams.tasks[d.taskID] = (TaskDecider.fold(events, from: task.state), task.version + Int64(events.count))
                    let issued = ControllerLog.issued(d.command, taskID: d.taskID, controllerID: d.controllerID, nowMicros: context.nowMicros)
                    let controllerPart = try await controllerPart(d.controllerID, [issued], context: context, correlationID: correlationID, in: &streams)
                    commands.append(CommandAppend(commandID: nil, appends: [taskPart, controllerPart]))
                    kept.append(d)
                }
                for d in refused { await feed(d.controllerID, .abandon(sequence: d.command.sequence)) }
                remaining = kept
                guard !commands.isEmpty else { return }
                _ = try await runner.store.append(commands: commands)
                commit(streams)
                for d in kept { await feed(d.controllerID, .enqueue(d.command)) }
                return
            } catch let error as EventStoreError where error.code == .wrongExpectedVersion && attempt < maxBatchAttempts {
                if let stream = error.stream {
                    _ = await refresh(stream)
                } else {
                    for d in remaining { controllerVersions[d.controllerID] = nil }
                }
            } catch {
                logger.warning("dispatch failed", metadata: ["tasks": "\(remaining.count)", "error": "\(error)"])
                break
            }
        }
        for d in remaining {
            await feed(d.controllerID, .abandon(sequence: d.command.sequence))
            _ = try? await freshTask(d.taskID)
        }
    }

    // MARK: - Planning

    /// Creates the tasks and runs the order commands of `plans` in one append (one command per
    /// order: its tasks' TaskCreated and, e.g., OrderPickingStarted). Returns the orders whose
    /// part could not be written (refused on the order as the log has it, or the append failed).
    func create(_ plans: [(orderID: String, plan: TaskPlanner.Plan)]) async -> Set<String> {
        var remaining = plans
        var failed = Set<String>()
        for attempt in 1...maxBatchAttempts {
            var streams = BatchStreams()
            do {
                var commands: [CommandAppend] = []
                var kept: [(orderID: String, plan: TaskPlanner.Plan)] = []
                let context = CommandContext(actor: .system, nowMicros: clock())
                for (orderID, plan) in remaining {
                    // One order's part, decided on copies so that a refusal leaves the batch as it was.
                    var part = streams
                    var appends: [StreamAppend] = []
                    let correlationID = "plan-\(orderID)"
                    do {
                        for spec in plan.create {
                            // A task the index does not know is taken as new, not read: two
                            // round trips fewer on the way from OrderPaid to the command. If it
                            // exists after all, `.noStream` conflicts and it is read then.
                            let task = part.tasks[spec.taskID] ?? tasks[spec.taskID] ?? (TaskDecider.initialState, 0)
                            let events = try TaskDecider.decide(.create(spec), state: task.state, context: context)
                            guard !events.isEmpty else { continue }
                            appends.append(StreamAppend(stream: StreamName.task(spec.taskID), expectedVersion: Self.expected(task.version),
                                                        events: try events.map { try EventCodec.encode($0, context: context, commandID: "", correlationID: correlationID) }))
                            part.tasks[spec.taskID] = (TaskDecider.fold(events, from: task.state), task.version + Int64(events.count))
                        }
                        if let command = plan.orderCommand {
                            let order = try await batchOrder(orderID, in: part)
                            let events = try OrderDecider.decide(command, state: order.state, context: context)
                            if !events.isEmpty {
                                appends.append(StreamAppend(stream: StreamName.order(orderID), expectedVersion: Self.expected(order.version),
                                                            events: try events.map { try EventCodec.encode($0, context: context, commandID: "", correlationID: correlationID) }))
                                part.orders[orderID] = (OrderDecider.fold(events, from: order.state), order.version + Int64(events.count))
                            }
                        }
                    } catch let error as DomainError {
                        logger.warning("planning refused", metadata: ["order": "\(orderID)", "error": "\(error)"])
                        failed.insert(orderID)
                        continue
                    }
                    streams = part
                    kept.append((orderID, plan))
                    if !appends.isEmpty { commands.append(CommandAppend(commandID: nil, appends: appends)) }
                }
                remaining = kept
                if !commands.isEmpty {
                    _ = try await runner.store.append(commands: commands)
                    commit(streams)
                }
                return failed
            } catch let error as EventStoreError where error.code == .wrongExpectedVersion && attempt < maxBatchAttempts {
                if let stream = error.stream {
                    _ = await refresh(stream)
                } else {
                    for (orderID, _) in remaining { if let fresh = try? await runner.read(OrderDecider.self, StreamName.order(orderID)) { orders[orderID] = fresh } }
                }
            } catch {
                logger.warning("planning failed", metadata: ["orders": "\(remaining.count)", "error": "\(error)"])
                break
            }
        }
        return failed.union(remaining.map(\.orderID))
    }

    // MARK: - Streams of a batch

    /// The expected version of an append to a stream at `version` (0: it does not exist yet).
    static func expected(_ version: Int64) -> ExpectedVersion { version == 0 ? .noStream : .exact(version) }

    /// A task as the batch left it, else as the index has it, else as the log has it.
    private func batchTask(_ id: String, in streams: BatchStreams) async throws -> (state: TaskDecider.State, version: Int64) {
        if let copy = streams.tasks[id] { return copy }
        if let known = tasks[id] { return known }
        return try await freshTask(id)
    }

    /// An order as the batch left it, else as the index has it, else as the log has it.
    private func batchOrder(_ id: String, in streams: BatchStreams) async throws -> (state: OrderDecider.State, version: Int64) {
        if let copy = streams.orders[id] { return copy }
        if let known = orders[id] { return known }
        let fresh = try await runner.read(OrderDecider.self, StreamName.order(id))
        orders[id] = fresh
        return fresh
    }

    /// A task as the log has it now (indexed).
    private func freshTask(_ id: String) async throws -> (state: TaskDecider.State, version: Int64) {
        let fresh = try await runner.read(TaskDecider.self, StreamName.task(id))
        if fresh.version > 0 { index(id, fresh.state, version: fresh.version) }
        return fresh
    }

    /// The part of a batch that appends `events` to `controller-<id>`, at the version the batch
    /// (or this bridge, or the log) has for it.
    private func controllerPart(_ controllerID: String, _ events: [Tote_V1_ControllerEvent], context: CommandContext, correlationID: String, in streams: inout BatchStreams) async throws -> StreamAppend {
        let version: Int64
        if let copy = streams.controllers[controllerID] {
            version = copy
        } else if let known = controllerVersions[controllerID] {
            version = known
        } else {
            version = try await runner.read(ControllerStreamDecider.self, StreamName.controller(controllerID)).version
            controllerVersions[controllerID] = version
        }
        streams.controllers[controllerID] = version + Int64(events.count)
        return StreamAppend(stream: StreamName.controller(controllerID), expectedVersion: Self.expected(version),
                            events: try events.map { try EventCodec.encode($0, context: context, commandID: "", correlationID: correlationID) })
    }

    /// After a batch is in the log: its streams' states and versions become the engine's.
    private func commit(_ streams: BatchStreams) {
        for (id, task) in streams.tasks { index(id, task.state, version: task.version) }
        for (id, order) in streams.orders where order.version > (orders[id]?.version ?? 0) { orders[id] = order }
        for (id, version) in streams.controllers { controllerVersions[id] = version }
    }

    /// After a conflict on `stream`: reads it again, so the next attempt expects its real version.
    /// For a controller stream, returns its log (which reports it already holds).
    private func refresh(_ stream: String) async -> ControllerLog.State? {
        do {
            if stream.hasPrefix("task-") {
                _ = try await freshTask(String(stream.dropFirst("task-".count)))
            } else if stream.hasPrefix("order-") {
                orders[String(stream.dropFirst("order-".count))] = try await runner.read(OrderDecider.self, stream)
            } else if stream.hasPrefix("controller-") {
                let id = String(stream.dropFirst("controller-".count))
                let (log, version) = try await runner.read(ControllerStreamDecider.self, stream)
                controllerVersions[id] = version
                var known = log
                known.controllerID = id
                return known
            }
        } catch {
            logger.warning("could not re-read a stream after a conflict", metadata: ["stream": "\(stream)", "error": "\(error)"])
        }
        return nil
    }

    /// Keeps the controller versions this bridge knows in step with an append made another way.
    func noteControllerVersions(_ result: AppendResult?) {
        guard let result, !result.deduplicated else { return }
        for (stream, version) in result.streamVersions where stream.hasPrefix("controller-") {
            let id = String(stream.dropFirst("controller-".count))
            controllerVersions[id] = max(controllerVersions[id] ?? 0, version)
        }
    }
}
