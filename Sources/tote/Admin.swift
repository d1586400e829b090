import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import SwiftProtobuf
import ToteAPI
import ToteProto
import ToteRPC

/// `tote admin …`: the operations team's command line. Finds orders and shows them with their
/// full event history, shows stock with its reservations and stuck warehouse tasks, and
/// intervenes (cancel or refund an order, release a reservation, retry, reassign, cancel or
/// finish a task) — each intervention a command recorded in the log with the operator's id and
/// reason. Tables for people, `--json` (the responses in protobuf JSON) for scripts. It talks to a
/// running server over the wire protocol with an operator key, like any other client.
struct Admin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Operate a running Tote: find orders, inspect stock and tasks, intervene.",
        subcommands: [StatusShow.self, OrderCommands.self, OrdersList.self, StockShow.self, ReservationRelease.self, TaskCommands.self])
}

/// What every `tote admin` call needs: where the server is, the key, and the output format.
struct AdminOptions: ParsableArguments {
    @Option(help: "Server address, HOST:PORT.")
    var server: HostAndPort = HostAndPort(argument: "127.0.0.1:7700")!

    @Option(help: "Operator API key (default: the TOTE_API_KEY environment variable).")
    var apiKey: String?

    @Option(help: "Who you are, recorded with every intervention (default: $USER).")
    var operatorID: String?

    @Flag(help: "Print the responses as JSON (protobuf JSON mapping) instead of tables.")
    var json = false

    @Option(help: "Timeout of each call in milliseconds.")
    var timeoutMs: Int = 10_000

    var actor: Tote_V1_Actor {
        var actor = Tote_V1_Actor()
        actor.id = operatorID ?? ProcessInfo.processInfo.environment["USER"] ?? "operator"
        actor.role = .operator
        return actor
    }

    /// Runs `body` on a connection; RPC errors end the process with a message naming the status
    /// (exit 3 when the server is unavailable, 2 otherwise).
    func call<R: Sendable>(_ body: (ClientConnection, CallOptions) async throws -> R) async throws -> R {
        do {
            let connection = try await ClientConnection.connect(
                host: server.host, port: server.port,
                configuration: .init(apiKey: apiKey ?? ProcessInfo.processInfo.environment["TOTE_API_KEY"] ?? "", connectTimeout: .milliseconds(Int64(timeoutMs))))
            defer { Task { await connection.close() } }
            return try await body(connection, CallOptions(timeout: .milliseconds(Int64(timeoutMs))))
        } catch let error as RPCError {
            FileHandle.standardError.write(Data("error: \(error.code): \(error.message)\n".utf8))
            throw ExitCode(error.code == .unavailable ? 3 : 2)
        }
    }

    /// Options of an intervention: a fresh idempotency key unless the caller gives one (a script
    /// that retries passes the same key and cannot act twice), and the operator's id as the call's
    /// `actor-id` metadata, so that the log records the operator as the actor also of commands
    /// whose request names no actor (a reservation released by hand).
    func command(_ options: CallOptions, key: String?) -> CallOptions {
        var options = options
        options.idempotencyKey = key ?? UUID().uuidString
        options.metadata["actor-id"] = actor.id
        return options
    }

    /// Prints `message` as JSON, or `table()` for people.
    func output(_ message: some SwiftProtobuf.Message, table: () -> String) throws {
        if json {
            var options = JSONEncodingOptions()
            options.alwaysPrintEnumsAsInts = false
            print(try message.jsonString(options: options))
        } else {
            print(table())
        }
    }
}

/// Options of every intervention.
struct InterventionOptions: ParsableArguments {
    @Option(help: "Why (recorded in the log).")
    var reason: String

    @Option(help: "Idempotency key: repeat the call with the same key and it acts once.")
    var idempotencyKey: String?
}

// MARK: Status

/// `tote admin status`: is the server serving, is its bridge active and how many stations are
/// online, how far behind is its projector, how old is the oldest open database transaction —
/// from Health/Check and the process's metrics endpoint (`--metrics-listen`).
struct StatusShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Server health, bridge and stations, projector lag, database.")
    @OptionGroup var admin: AdminOptions
    @Option(help: "The server's metrics endpoint (its --metrics-listen address).") var metrics: String = "http://127.0.0.1:7702/metrics"

    /// What `status` reports (also its `--json` form).
    struct Status: Codable {
        var server: String
        var serving: Bool
        var version: String
        var bridges: [Bridge]
        var projector: Projector?
        var oldestTransactionSeconds: Double?
        var liveReservations: Double?
        var expiredReservations: Double?

        struct Bridge: Codable {
            var warehouse: String
            var active: Bool
            var controllersOnline: Int
            var commandsInFlight: Int
            var redeliveries: Int
        }

        struct Projector: Codable {
            var lagEvents: Double
            var lagSeconds: Double
            var appliedGlobalPosition: Double
        }
    }

    func run() async throws {
        let health = try await admin.call { try await $0.unary(Health.check, Tote_V1_HealthCheckRequest(), options: $1) }
        let page: String
        do {
            guard let url = URL(string: metrics.hasSuffix("/metrics") ? metrics : metrics + "/metrics") else { throw ValidationError("--metrics: '\(metrics)' is not a URL") }
            let (data, response) = try await URLSession.shared.data(from: url)
            guard (response as? HTTPURLResponse)?.statusCode == 200 else { throw ValidationError("\(metrics) answered \((response as? HTTPURLResponse)?.statusCode ?? 0)") }
            page = String(decoding: data, as: UTF8.self)
        } catch let error as ValidationError {
            throw error
        } catch {
            FileHandle.standardError.write(Data("error: cannot read the metrics endpoint \(metrics): \(error.localizedDescription) (start the server with --metrics-listen)\n".utf8))
            throw ExitCode(3)
        }
        let samples = AdminMetrics.parse(page)
        let warehouses = Set(samples.filter { $0.name.hasPrefix("tote_bridge_") }.compactMap { $0.labels["warehouse"] }).sorted()
        func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
            samples.first { $0.name == name && $0.labels == labels }?.value
        }
        let status = Status(
            server: admin.server.description, serving: health.status == .serving, version: health.serverVersion,
            bridges: warehouses.map { warehouse in
                let labels = ["warehouse": warehouse]
                return Status.Bridge(
                    warehouse: warehouse, active: value("tote_bridge_active", labels) == 1,
                    controllersOnline: Int(value("tote_bridge_controllers_online", labels) ?? 0),
                    commandsInFlight: Int(value("tote_bridge_commands_in_flight", labels) ?? 0),
                    redeliveries: Int(value("tote_bridge_redeliveries_total", labels) ?? 0))
            },
            projector: value("tote_projector_lag_events").map {
                Status.Projector(lagEvents: $0, lagSeconds: value("tote_projector_lag_seconds") ?? 0, appliedGlobalPosition: value("tote_projector_applied_global_position") ?? 0)
            },
            oldestTransactionSeconds: value("tote_postgres_oldest_transaction_seconds"),
            liveReservations: value("tote_reaper_pending", ["tracker": "stock_reservations"]),
            expiredReservations: value("tote_reaper_expired_total", ["tracker": "stock_reservations"]))
        if admin.json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(status), as: UTF8.self))
            return
        }
        var rows = [["server", "\(status.server)  \(status.serving ? "SERVING" : "NOT SERVING")  (\(status.version))"]]
        for bridge in status.bridges {
            rows.append(["bridge", "warehouse \(bridge.warehouse): \(bridge.active ? "ACTIVE" : "standby"), \(bridge.controllersOnline) station(s) online, \(bridge.commandsInFlight) command(s) in flight, \(bridge.redeliveries) redelivered"])
        }
        if status.bridges.isEmpty { rows.append(["bridge", "none (no database)"]) }
        if let projector = status.projector {
            rows.append(["projector", "\(Int(projector.lagEvents)) event(s) behind, \(String(format: "%.3f", projector.lagSeconds)) s, at position \(Int(projector.appliedGlobalPosition))"])
        } else {
            rows.append(["projector", "not in this process (or not sampled yet)"])
        }
        if let oldest = status.oldestTransactionSeconds { rows.append(["postgres", "oldest open transaction \(String(format: "%.1f", oldest)) s"]) }
        if let live = status.liveReservations { rows.append(["stock", "\(Int(live)) live reservation(s), \(Int(status.expiredReservations ?? 0)) expired"]) }
        print(AdminFormat.table(["PART", "STATUS"], rows))
    }
}

/// Samples of a Prometheus text page.
enum AdminMetrics {
    struct Sample {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    /// `name{a="x",b="y"} value` lines (comments skipped; label values without escapes, as Tote writes them).
    static func parse(_ page: String) -> [Sample] {
        page.split(separator: "\n").compactMap { line in
            guard !line.hasPrefix("#"), let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { return nil }
            let series = line[..<space]
            guard let brace = series.firstIndex(of: "{") else { return Sample(name: String(series), labels: [:], value: value) }
            var labels: [String: String] = [:]
            for pair in series[series.index(after: brace)...].dropLast().split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2 else { continue }
                labels[String(parts[0])] = String(parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"")))
            }
            return Sample(name: String(series[..<brace]), labels: labels, value: value)
        }
    }
}

// MARK: Orders

struct OrderCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "order", abstract: "Show, cancel or refund one order.",
                                                    subcommands: [OrderShow.self, OrderCancel.self, OrderRefund.self])
}

/// `tote admin order show ID`: the order from the event log, with every event as a timeline.
struct OrderShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "An order with its lines, totals and full event history.")
    @OptionGroup var admin: AdminOptions
    @Argument(help: "The order id.") var orderID: String

    func run() async throws {
        var request = Tote_V1_GetOrderRequest()
        request.orderID = orderID
        let view = try await admin.call { try await $0.unary(OrdersAPI.getOrder, request, options: $1) }
        try admin.output(view) { AdminFormat.order(view) }
    }
}

struct OrderCancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cancel", abstract: "Cancel an order (its stock is released, its payment voided or refunded).")
    @OptionGroup var admin: AdminOptions
    @OptionGroup var intervention: InterventionOptions
    @Argument(help: "The order id.") var orderID: String

    func run() async throws {
        var request = Tote_V1_CancelOrderRequest()
        request.orderID = orderID
        request.actor = admin.actor
        request.reason = intervention.reason
        let reply = try await admin.call { try await $0.unary(OrdersAPI.cancelOrder, request, options: admin.command($1, key: intervention.idempotencyKey)) }
        try admin.output(reply) { "order \(orderID) is \(AdminFormat.name(reply.state)) (version \(reply.streamVersion))" }
    }
}

struct OrderRefund: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "refund", abstract: "Refund an order in full, or an amount of it.")
    @OptionGroup var admin: AdminOptions
    @OptionGroup var intervention: InterventionOptions
    @Argument(help: "The order id.") var orderID: String
    @Option(help: "Amount in minor units (cents); omit for a full refund.") var amount: Int64?
    @Flag(help: "Put the refunded units back in stock.") var restock = false

    func run() async throws {
        var request = Tote_V1_RefundOrderRequest()
        request.orderID = orderID
        request.actor = admin.actor
        request.reason = intervention.reason
        request.restock = restock
        if let amount {
            request.amount.minorUnits = amount
        } else {
            request.full = true
        }
        let reply = try await admin.call { connection, options in
            // The amount's currency is the order's.
            if amount != nil {
                var get = Tote_V1_GetOrderRequest()
                get.orderID = orderID
                request.amount.currency = try await connection.unary(OrdersAPI.getOrder, get, options: options).currency
            }
            return try await connection.unary(OrdersAPI.refundOrder, request, options: admin.command(options, key: intervention.idempotencyKey))
        }
        try admin.output(reply) { "order \(orderID): refund recorded (version \(reply.streamVersion))" }
    }
}

/// `tote admin orders --state paid --older-than 30m` or `--customer ID`, from the read models.
struct OrdersList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "orders", abstract: "Find orders by customer, or by state and age.")
    @OptionGroup var admin: AdminOptions
    @Option(help: "A customer's orders, newest first.") var customer: String?
    @Option(help: "Orders in this state (placed, paid, picking, packed, shipped, delivered, cancelled, refunded, partially_refunded, disputed).") var state: String?
    @Option(help: "Only orders in that state for longer than this (e.g. 30m, 2h, 1d).") var olderThan: String?
    @Option(help: "Page size.") var limit: Int = 50

    func run() async throws {
        if let customer {
            var request = Tote_V1_ListCustomerOrdersRequest()
            request.customerID = customer
            request.page.pageSize = UInt32(limit)
            let reply = try await admin.call { try await $0.unary(QueryAPI.listCustomerOrders, request, options: $1) }
            try admin.output(reply) { AdminFormat.orders(reply.orders) }
        } else if let state {
            guard let orderState = AdminFormat.orderState(state) else { throw ValidationError("unknown order state '\(state)'") }
            var request = Tote_V1_ListOrdersByStateRequest()
            request.state = orderState
            request.page.pageSize = UInt32(limit)
            if let olderThan {
                guard let micros = AdminFormat.micros(olderThan) else { throw ValidationError("--older-than: '\(olderThan)' is not a duration like 45s, 30m, 2h or 1d") }
                request.olderThan.micros = micros
            }
            let reply = try await admin.call { try await $0.unary(QueryAPI.listOrdersByState, request, options: $1) }
            try admin.output(reply) { AdminFormat.orders(reply.orders) }
        } else {
            throw ValidationError("give --customer ID, or --state STATE [--older-than AGE]")
        }
    }
}

// MARK: Stock

struct StockShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stock", abstract: "Stock of a SKU at each location, with its reservations.")
    @OptionGroup var admin: AdminOptions
    @Argument(help: "The SKU.") var sku: String
    @Option(help: "Only this location.") var location: String?

    func run() async throws {
        var request = Tote_V1_GetStockRequest()
        request.sku = sku
        request.locationID = location ?? ""
        let reply = try await admin.call { try await $0.unary(InventoryAPI.getStock, request, options: $1) }
        try admin.output(reply) { AdminFormat.stock(reply.levels) }
    }
}

struct ReservationRelease: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "release", abstract: "Release a stock reservation by hand.")
    @OptionGroup var admin: AdminOptions
    @OptionGroup var intervention: InterventionOptions
    @Argument(help: "The SKU.") var sku: String
    @Argument(help: "The stock location.") var location: String
    @Argument(help: "The reservation id (see `tote admin stock SKU`).") var reservationID: String

    func run() async throws {
        var request = Tote_V1_ReleaseReservationRequest()
        request.key.sku = sku
        request.key.locationID = location
        request.reservationID = reservationID
        request.reason = "\(intervention.reason) (by \(admin.actor.id))"
        let reply = try await admin.call { try await $0.unary(InventoryAPI.releaseReservation, request, options: admin.command($1, key: intervention.idempotencyKey)) }
        try admin.output(reply) { "reservation \(reservationID) of \(sku)@\(location) released (version \(reply.streamVersion))" }
    }
}

// MARK: Warehouse tasks

struct TaskCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "task", abstract: "Stuck warehouse tasks, and interventions on one.",
                                                    subcommands: [TaskStuck.self, TaskRetry.self, TaskReassign.self, TaskCancel.self, TaskDone.self])
}

struct TaskStuck: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stuck", abstract: "Tasks stuck or needing intervention, longest stuck first.")
    @OptionGroup var admin: AdminOptions
    @Option(help: "Only tasks unchanged for longer than this (e.g. 10m).") var olderThan: String?
    @Option(help: "Page size.") var limit: Int = 50

    func run() async throws {
        var request = Tote_V1_ListStuckTasksRequest()
        request.page.pageSize = UInt32(limit)
        if let olderThan {
            guard let micros = AdminFormat.micros(olderThan) else { throw ValidationError("--older-than: '\(olderThan)' is not a duration like 45s, 30m, 2h or 1d") }
            request.olderThan.micros = micros
        }
        let reply = try await admin.call { try await $0.unary(OperationsAPI.listStuckTasks, request, options: $1) }
        try admin.output(reply) { AdminFormat.tasks(reply.tasks) }
    }
}

/// A request of an operator's task intervention, and its reply: the fields `tote admin task …`
/// sets and shows.
protocol TaskInterventionRequest: SwiftProtobuf.Message {
    var taskID: String { get set }
    var actor: Tote_V1_Actor { get set }
    var reason: String { get set }
}
protocol TaskInterventionReply: SwiftProtobuf.Message {
    var task: Tote_V1_TaskSummary { get }
}
extension Tote_V1_RetryTaskRequest: TaskInterventionRequest {}
extension Tote_V1_ReassignTaskRequest: TaskInterventionRequest {}
extension Tote_V1_CancelTaskRequest: TaskInterventionRequest {}
extension Tote_V1_MarkTaskDoneRequest: TaskInterventionRequest {}
extension Tote_V1_RetryTaskResponse: TaskInterventionReply {}
extension Tote_V1_ReassignTaskResponse: TaskInterventionReply {}
extension Tote_V1_CancelTaskResponse: TaskInterventionReply {}
extension Tote_V1_MarkTaskDoneResponse: TaskInterventionReply {}

extension AdminOptions {
    /// Sends one task intervention by this operator, with the reason, and prints the task after it.
    func intervene<Request: TaskInterventionRequest, Reply: TaskInterventionReply>(
        _ method: MethodDescriptor<Request, Reply>, taskID: String, _ intervention: InterventionOptions, _ configure: (inout Request) -> Void = { _ in }
    ) async throws {
        var request = Request()
        request.taskID = taskID
        request.actor = actor
        request.reason = intervention.reason
        configure(&request)
        let sent = request
        let reply = try await call { try await $0.unary(method, sent, options: command($1, key: intervention.idempotencyKey)) }
        try output(reply) { AdminFormat.tasks([reply.task]) }
    }
}

struct TaskRetry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "retry", abstract: "Send a failed or stuck task again.")
    @OptionGroup var admin: AdminOptions
    @OptionGroup var intervention: InterventionOptions
    @Argument(help: "The task id.") var taskID: String

    func run() async throws { try await admin.intervene(OperationsAPI.retryTask, taskID: taskID, intervention) }
}

struct TaskReassign: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "reassign", abstract: "Move a task to another station.")
    @OptionGroup var admin: AdminOptions
    @OptionGroup var intervention: InterventionOptions
    @Argument(help: "The task id.") var taskID: String
    @Option(help: "The station (controller id) to move it to; empty lets the bridge choose.") var station: String = ""

    func run() async throws {
        try await admin.intervene(OperationsAPI.reassignTask, taskID: taskID, intervention) { $0.targetControllerID = station }
    }
}

struct TaskCancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cancel", abstract: "Cancel a task.")
    @OptionGroup var admin: AdminOptions
    @OptionGroup var intervention: InterventionOptions
    @Argument(help: "The task id.") var taskID: String

    func run() async throws { try await admin.intervene(OperationsAPI.cancelTask, taskID: taskID, intervention) }
}

struct TaskDone: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "done", abstract: "Mark a task done by hand (the work was done without the station).")
    @OptionGroup var admin: AdminOptions
    @OptionGroup var intervention: InterventionOptions
    @Argument(help: "The task id.") var taskID: String

    func run() async throws { try await admin.intervene(OperationsAPI.markTaskDone, taskID: taskID, intervention) }
}

// MARK: Formatting

/// Terminal tables and names for `tote admin`.
enum AdminFormat {
    /// Left-aligned columns separated by two spaces, with a header row.
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }

    static func money(_ money: Tote_V1_Money) -> String {
        let sign = money.minorUnits < 0 ? "-" : ""
        let units = money.minorUnits.magnitude
        return "\(money.currency) \(sign)\(units / 100).\(String(format: "%02d", units % 100))"
    }

    static func time(_ timestamp: Tote_V1_Timestamp) -> String {
        guard timestamp.unixMicros > 0 else { return "-" }
        let date = Date(timeIntervalSince1970: Double(timestamp.unixMicros) / 1_000_000)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }

    /// "PAID" for `.paid`, "PARTIALLY_REFUNDED" for `.partiallyRefunded`: the wire enum's name
    /// without its prefix.
    static func name(_ value: some SwiftProtobuf.Enum) -> String {
        var out = ""
        for character in String(describing: value).trimmingCharacters(in: CharacterSet(charactersIn: ".")) {
            if character.isUppercase && !out.isEmpty { out += "_" }
            out += character.uppercased()
        }
        return out
    }

    static func orderState(_ text: String) -> Tote_V1_OrderState? {
        // "partially_refunded", "PARTIALLY_REFUNDED", "order_state_partially_refunded" or "partiallyrefunded".
        func plain(_ name: String) -> String { name.lowercased().replacingOccurrences(of: "_", with: "") }
        let wanted = plain(text.lowercased().replacingOccurrences(of: "order_state_", with: ""))
        return Tote_V1_OrderState.allCases.first { plain(name($0)) == wanted && $0 != .unspecified }
    }

    /// Microseconds of "45s", "30m", "2h" or "1d".
    static func micros(_ text: String) -> Int64? {
        guard let unit = text.last, let value = Int64(text.dropLast()), value >= 0 else { return nil }
        let seconds: Int64? = switch unit {
        case "s": value
        case "m": value * 60
        case "h": value * 3600
        case "d": value * 86_400
        default: nil
        }
        return seconds.map { $0 * 1_000_000 }
    }

    static func order(_ view: Tote_V1_OrderView) -> String {
        var out = """
            order \(view.orderNumber) (\(view.orderID))  \(name(view.state)) since \(time(view.stateSince))
            customer \(view.customerID.isEmpty ? "(guest)" : view.customerID)  \(view.email)
            placed \(time(view.placedAt))  total \(money(view.totals.total))\(view.refundedTotal.minorUnits > 0 ? "  refunded \(money(view.refundedTotal))" : "")

            """
        out += table(["LINE", "SKU", "ITEM", "QTY", "UNIT", "TOTAL"], view.lines.map {
            [$0.lineID, $0.sku, $0.displayName, "\($0.quantity)", money($0.unitPrice), money($0.lineTotal)]
        })
        out += "\n\nhistory (\(view.timeline.count) events):\n"
        out += table(["STREAM", "#", "AT", "EVENT", "BY", "STATE", "REASON / WHAT"], view.timeline.map {
            [$0.stream.isEmpty ? "order" : $0.stream, "\($0.streamVersion)", time($0.at), $0.eventType, "\(name($0.actor.role).lowercased()):\($0.actor.id)", name($0.state),
             [$0.reason, $0.summary].filter { !$0.isEmpty }.joined(separator: " — ")]
        })
        return out
    }

    static func orders(_ orders: [Tote_V1_OrderSummary]) -> String {
        guard !orders.isEmpty else { return "no orders" }
        return table(["ORDER", "NUMBER", "CUSTOMER", "STATE", "SINCE", "ITEMS", "TOTAL"], orders.map {
            [$0.orderID, $0.orderNumber, $0.customerID, name($0.state), time($0.stateSince), "\($0.itemCount)", money($0.total)]
        })
    }

    static func stock(_ levels: [Tote_V1_StockLevel]) -> String {
        guard !levels.isEmpty else { return "no stock items" }
        var out = table(["SKU", "LOCATION", "ON HAND", "RESERVED", "AVAILABLE"], levels.map {
            [$0.key.sku, $0.key.locationID, "\($0.onHand)", "\($0.reserved)", "\($0.available)"]
        })
        let reservations = levels.flatMap { level in level.reservations.map { (level.key, $0) } }
        if !reservations.isEmpty {
            out += "\n\nreservations:\n" + table(["LOCATION", "RESERVATION", "QTY", "EXPIRES", "REFERENCE"], reservations.map {
                [$0.0.locationID, $0.1.reservationID, "\($0.1.quantity)", time($0.1.expiresAt), $0.1.reference]
            })
        }
        return out
    }

    static func tasks(_ tasks: [Tote_V1_TaskSummary]) -> String {
        guard !tasks.isEmpty else { return "no tasks" }
        return table(["TASK", "ORDER", "KIND", "STATE", "STATION", "TRIES", "SINCE", "WHY"], tasks.map {
            [$0.taskID, $0.orderID, name($0.stationKind), name($0.state), $0.controllerID, "\($0.attempts)", time($0.stateSince),
             [$0.stuckReason, $0.lastFailureText].filter { !$0.isEmpty }.joined(separator: "; ")]
        })
    }
}
