import BenchSupport
import EventStore
import Foundation
import Glibc
import LocalPostgres
import Logging
import Postgres
import Synchronization
import ToteAPI
import ToteCommands
import ToteDomain
import ToteServices

/// BridgeBench: the automation bridge under a steady order flow. A Tote node (commerce services
/// and the bridge, configured as `tote serve` configures them) on real TCP, on a durable
/// PostgreSQL cluster; 100 simulated controllers (80 pick stations spread over the zones, 20
/// pack stations) connected over `Automation/Connect`; orders placed and paid at a fixed rate.
/// Measures OrderPaid → first pick command received at a controller (from the payment reply,
/// i.e. after the paid event committed) and tasks completed per second. See benchmarks/README.md.
///
///     BridgeBench [--rates 20,40] [--seconds S] [--warmup-seconds S] [--controllers PICK,PACK]
///                 [--zones N] [--skus N] [--work-ms MEAN/JITTER] [--tick-ms MS]
@main
enum BridgeBench {
    struct Options {
        /// Orders per second offered at each point.
        var rates = [20, 40]
        var seconds = 30.0
        var warmupSeconds = 5.0
        var pickStations = 80
        var packStations = 20
        var zones = 4
        var skus = 200
        /// A station's time per task (mean ± uniform jitter).
        var workMillis = (mean: 200, jitter: 50)
        /// The bridge's tick (BridgeConfiguration.tickInterval; the product default is 100 ms).
        var tickMillis: Int?
    }

    static let usage = "usage: BridgeBench [--rates 20,40] [--seconds S] [--warmup-seconds S] [--controllers PICK,PACK] [--zones N] [--skus N] [--work-ms MEAN/JITTER] [--tick-ms MS]"

    static let storefrontKey = "bench-storefront-key-01"
    static let operatorKey = "bench-operator-key-0001"
    static let controllerKey = "bench-controller-key-01"

    static func main() async {
        signal(SIGPIPE, SIG_IGN)
        var options = Options()
        var arguments = Arguments(Array(CommandLine.arguments.dropFirst()), usage: usage)
        do {
            while let option = arguments.nextOption() {
                switch option {
                case "--rates": options.rates = try arguments.counts()
                case "--seconds": options.seconds = try arguments.seconds()
                case "--warmup-seconds": options.warmupSeconds = try arguments.seconds()
                case "--controllers":
                    let counts = try arguments.counts()
                    guard counts.count == 2 else { throw BenchError("--controllers wants PICK,PACK, e.g. 80,20") }
                    (options.pickStations, options.packStations) = (counts[0], counts[1])
                case "--zones": options.zones = try arguments.count()
                case "--skus": options.skus = try arguments.count()
                case "--work-ms":
                    let text = try arguments.value()
                    let parts = text.split(separator: "/").map { Int($0) }
                    guard parts.count == 2, let mean = parts[0], let jitter = parts[1], mean >= 0, jitter >= 0, jitter <= mean else {
                        throw BenchError("--work-ms wants MEAN/JITTER in ms with JITTER ≤ MEAN, e.g. 200/50")
                    }
                    options.workMillis = (mean, jitter)
                case "--tick-ms": options.tickMillis = try arguments.count()
                case "-h", "--help": print(usage); return
                default: throw arguments.unknownOption()
                }
            }
            guard options.zones <= 26 else { throw BenchError("--zones: at most 26 (zones are named A–Z)") }
            guard options.skus >= 2 * options.zones else { throw BenchError("--skus: at least 2 per zone") }
        } catch {
            writeUnbuffered("BridgeBench: \(error)\n", to: 2)
            exit(2)
        }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("tote-bridge-bench-\(UUID().uuidString.prefix(8).lowercased())")
        var cluster: LocalPostgresCluster?
        var failed = false
        do {
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
            // Durable: fsync and synchronous_commit on, as in the other benchmarks.
            cluster = try LocalPostgresCluster.start(in: root.appendingPathComponent("cluster"), durable: true)
            try await run(options, cluster: cluster!)
        } catch {
            writeUnbuffered("BridgeBench: \(error)\n", to: 2)
            failed = true
        }
        try? cluster?.stop(immediate: true)
        cluster?.destroy()
        try? FileManager.default.removeItem(at: root)
        if failed { exit(1) }
    }

    static func run(_ options: Options, cluster: LocalPostgresCluster) async throws {
        let zones = (0..<options.zones).map { String(UnicodeScalar(UInt8(65 + $0))) }
        print("BridgeBench: rates \(options.rates) orders/s, \(formatFixed(options.seconds, 0)) s measured after \(formatFixed(options.warmupSeconds, 0)) s warm-up per rate; \(options.pickStations) pick stations over zones \(zones.joined(separator: ",")) + \(options.packStations) pack stations; work \(options.workMillis.mean)±\(options.workMillis.jitter) ms per task; bridge tick \(options.tickMillis.map { "\($0) ms" } ?? "default (100 ms)"); loadavg(1m) \(formatFixed(loadAverage(), 2))")
        let admin = try PostgresConnection.connect(cluster.connectionString)
        try admin.executeScript("CREATE DATABASE bridge")
        // As `tote serve`: a pool of 16, the event store's default poll interval.
        let pool = PostgresPool(configuration: .init(connectionString: cluster.connectionString(database: "bridge"), size: 16, applicationName: "bridge-bench"))
        let store = EventStore(pool: pool)
        try await store.migrate()
        let floor = try await appendFloor(store)
        print("reference: one durable single-event append, one writer, idle node: p50 \(ms(floor, 50)) ms, p99 \(ms(floor, 99)) ms (the dispatch path makes two appends in a row: plan, then dispatch)")

        let runner = CommandRunner(store: store)
        var settings = StoreSettings.demo
        settings.locations = zones.map { "main/\($0)" }
        var gatewayConfiguration = SimulatedGateway.Configuration()
        gatewayConfiguration.webhookDelivery = .none
        let services = CommerceServices(runner: runner, settings: settings, gateways: ["simulated": SimulatedGateway(configuration: gatewayConfiguration)])
        var router = RPCRouter()
        services.register(into: &router)
        var bridgeConfiguration = BridgeConfiguration(warehouseID: "main", bridgeID: "bridge-bench")
        if let tick = options.tickMillis { bridgeConfiguration.tickInterval = .milliseconds(tick) }
        var bridgeLogger = Logger(label: "tote.bridge")
        bridgeLogger.logLevel = .critical
        let bridge = BridgeServices(runner: runner, configuration: bridgeConfiguration, logger: bridgeLogger)
        bridge.register(into: &router)
        var logger = Logger(label: "bench")
        logger.logLevel = .critical
        let keyring = APIKeyring([storefrontKey: .storefront, operatorKey: .operator, controllerKey: .controller])
        let server = RPCServer(configuration: .init(host: "127.0.0.1", port: 0, drainTimeout: .seconds(5)), router: router, keyring: keyring, logger: logger)
        let port = try await server.start().port!
        let bridgeTask = Task { try await bridge.run() }
        var deadline = monotonicNanoseconds() + 30_000_000_000
        while !bridge.isActive {
            guard monotonicNanoseconds() < deadline else { throw BenchError("the bridge did not become active within 30 s") }
            try await Task.sleep(for: .milliseconds(20))
        }

        let skus = (0..<options.skus).map { i in (sku: String(format: "BB-%@-%04d", zones[i % zones.count], i), location: "main/\(zones[i % zones.count])") }
        try await seed(skus, port: port)
        print("seeded \(skus.count) SKUs, each stocked in one zone (\(skus.count / zones.count) per zone)")

        // The controllers: each on its own connection.
        let observations = Observations()
        let online = Counter()
        var controllers: [(Task<Void, Never>, ClientConnection)] = []
        let work = (UInt64(options.workMillis.mean) * 1_000_000, UInt64(options.workMillis.jitter) * 1_000_000)
        for i in 0..<(options.pickStations + options.packStations) {
            let isPick = i < options.pickStations
            let controller = SimulatedController(
                id: isPick ? String(format: "pick-%02d", i + 1) : String(format: "pack-%02d", i - options.pickStations + 1),
                kind: isPick ? .pick : .pack, zones: isPick ? [zones[i % zones.count]] : [], workNanos: work, observations: observations)
            let connection = try await ClientConnection.connect(host: "127.0.0.1", port: port, configuration: .init(apiKey: controllerKey))
            controllers.append((Task { await controller.run(connection: connection) { online.value.add(1, ordering: .relaxed) } }, connection))
        }
        deadline = monotonicNanoseconds() + 30_000_000_000
        while online.value.load(ordering: .relaxed) < controllers.count {
            guard monotonicNanoseconds() < deadline else { throw BenchError("only \(online.value.load(ordering: .relaxed)) of \(controllers.count) controllers online after 30 s: \(observations.snapshot().errors.prefix(3))") }
            try await Task.sleep(for: .milliseconds(20))
        }
        print("\(controllers.count) controllers online (\(options.pickStations) pick, \(options.packStations) pack), each on its own TCP connection")

        let shoppers = try await (0..<16).asyncMap { _ in
            try await ClientConnection.connect(host: "127.0.0.1", port: port, configuration: .init(apiKey: storefrontKey))
        }
        var rows: [String] = []
        for rate in options.rates {
            let row = try await point(rate: rate, options: options, skus: skus.map(\.sku), shoppers: shoppers, observations: observations)
            rows.append(row)
        }
        let final = observations.snapshot()
        // How the bridge batched its appends over the whole run (every rate and the warm-ups).
        let batching = try await pool.withConnection { connection in
            let r = try connection.execute("""
                SELECT type, count(*)::int8, count(DISTINCT tx_id::text)::int8 FROM events
                WHERE type IN ('ControllerReportRecorded', 'ControllerCommandIssued', 'TaskCreated') GROUP BY type ORDER BY type
                """)
            var lines: [String] = []
            for row in 0..<r.rowCount { lines.append("\(try r.string(row, 0)) \(try r.int64(row, 1)) in \(try r.int64(row, 2)) appends") }
            return lines
        }
        print("bridge appends over the run: \(batching.joined(separator: ", "))")
        print("""

            | offered orders/s | placed+paid orders/s | paid→command p50 ms | p90 ms | p99 ms | max ms | tasks done/s | paid→pack done p50 ms | p99 ms | place+pay call p99 ms |
            |--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|
            \(rows.joined(separator: "\n"))

            commands received \(final.commands), redeliveries \(final.duplicates), session errors \(final.errors.count)\(final.errors.isEmpty ? "" : ": \(final.errors.prefix(3))")
            loadavg(1m) at end: \(formatFixed(loadAverage(), 2))
            """)

        for connection in shoppers { await connection.close() }
        for (task, _) in controllers { task.cancel() }
        for (task, connection) in controllers {
            await task.value
            await connection.close()
        }
        bridgeTask.cancel()
        _ = await bridgeTask.result
        await server.shutdownGracefully()
        await store.shutdown()
        try await pool.shutdown()
    }

    /// One rate: prepares the checkouts, places and pays them on a fixed schedule, waits for the
    /// pipeline to drain, and returns the table row.
    static func point(rate: Int, options: Options, skus: [String], shoppers: [ClientConnection], observations: Observations) async throws -> String {
        let warmup = Int((Double(rate) * options.warmupSeconds).rounded())
        let measured = Int((Double(rate) * options.seconds).rounded())
        let checkouts = try await prepare(warmup + measured, skus: skus, connections: shoppers)
        observations.startPoint()
        let load = loadAverage()
        let cpuBefore = MachineCPU.current()
        let interval = 1e9 / Double(rate)
        let start = monotonicNanoseconds() + 50_000_000
        let windowStart = start + UInt64(Double(warmup) * interval)
        let record = CallRecord()
        let inFlight = Counter()
        let late = Counter()
        // Open loop: order k starts at start + k × interval, whether or not earlier ones finished.
        await withTaskGroup(of: Void.self) { group in
            for (k, checkoutID) in checkouts.enumerated() {
                let due = start + UInt64(Double(k) * interval)
                let now = monotonicNanoseconds()
                if due > now { try? await Task.sleep(for: .nanoseconds(due - now)) } else if now - due > 5_000_000 { late.value.add(1, ordering: .relaxed) }
                let isMeasured = k >= warmup
                let client = shoppers[k % shoppers.count]
                group.addTask {
                    let current = inFlight.value.add(1, ordering: .relaxed).newValue
                    inFlight.peak.max(current, ordering: .relaxed)
                    defer { inFlight.value.subtract(1, ordering: .relaxed) }
                    do {
                        let began = monotonicNanoseconds()
                        var place = Tote_V1_PlaceOrderRequest()
                        place.checkoutID = checkoutID
                        let placed = try await client.unary(CheckoutAPI.placeOrder, place, options: key())
                        var authorize = Tote_V1_AuthorizePaymentRequest()
                        authorize.orderID = placed.orderID
                        _ = try await client.unary(PaymentsAPI.authorizePayment, authorize, options: key())
                        let paid = monotonicNanoseconds()
                        observations.paid(placed.orderID, at: paid, measured: isMeasured)
                        if isMeasured { record.latency.withLock { $0.record(paid - began) } }
                    } catch {
                        record.failures.withLock { $0.append("\(error)") }
                    }
                }
            }
        }
        let windowEnd = monotonicNanoseconds()
        let cpuAfter = MachineCPU.current()
        // Drain: every measured order's first command, then its pack task (bounded).
        var deadline = monotonicNanoseconds() + 30_000_000_000
        while observations.waitingForCommand() > 0, monotonicNanoseconds() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        deadline = monotonicNanoseconds() + 30_000_000_000
        while monotonicNanoseconds() < deadline {
            let unpacked = observations.snapshot().orders.values.count { $0.measured && $0.paidNanos != nil && $0.packedNanos == nil }
            if unpacked == 0 { break }
            try await Task.sleep(for: .milliseconds(50))
        }

        let snapshot = observations.snapshot()
        var dispatch = LatencyHistogram()
        var packed = LatencyHistogram()
        var paidCount = 0
        var lastPaid: UInt64 = windowStart
        var negative = 0
        var noCommand = 0
        for order in snapshot.orders.values where order.measured {
            guard let paid = order.paidNanos else { continue }
            paidCount += 1
            lastPaid = max(lastPaid, paid)
            if let command = order.firstCommandNanos {
                if command < paid { negative += 1 }
                dispatch.record(command > paid ? command - paid : 0)
            } else {
                noCommand += 1
            }
            if let done = order.packedNanos, done > paid { packed.record(done - paid) }
        }
        let windowSeconds = Double(windowEnd - windowStart) / 1e9
        let tasksDone = snapshot.finishedAcks.count { $0 >= windowStart && $0 < windowEnd }
        let tasksPerSecond = Double(tasksDone) / windowSeconds
        let achieved = Double(paidCount) / (Double(max(lastPaid, windowStart + 1) - windowStart) / 1e9)
        let cpuShare = Double(cpuAfter.busyNanoseconds &- cpuBefore.busyNanoseconds) / (Double(windowEnd - start) * Double(MachineCPU.cpuCount))
        let calls = record.latency.withLock { $0 }
        let failed = record.failures.withLock { $0 }
        print("rate \(rate)/s: \(paidCount) measured orders paid (\(formatFixed(achieved, 1))/s achieved; \(late.value.load(ordering: .relaxed)) started >5 ms late, at most \(inFlight.peak.load(ordering: .relaxed)) in flight, \(failed.count) failed\(failed.isEmpty ? "" : ": \(failed.prefix(2))")); paid→command p50 \(ms(dispatch, 50)) ms, p90 \(ms(dispatch, 90)) ms, p99 \(ms(dispatch, 99)) ms, max \(formatFixed(Double(dispatch.max) / 1e6, 2)) ms (\(noCommand) without a command, \(negative) before the reply); \(formatFixed(tasksPerSecond, 1)) tasks done/s; paid→pack done p50 \(ms(packed, 50)) ms, p99 \(ms(packed, 99)) ms (\(packed.count) orders); machine CPU \(formatFixed(cpuShare * 100, 0)) %; loadavg(1m) before \(formatFixed(load, 2))")
        return "| \(rate) | \(formatFixed(achieved, 1)) | \(ms(dispatch, 50)) | \(ms(dispatch, 90)) | \(ms(dispatch, 99)) | \(formatFixed(Double(dispatch.max) / 1e6, 2)) | \(formatFixed(tasksPerSecond, 1)) | \(ms(packed, 50)) | \(ms(packed, 99)) | \(ms(calls, 99)) |"
    }

    /// Call options of one command: a fresh idempotency key.
    @Sendable static func key() -> CallOptions { CallOptions(timeout: .seconds(60), idempotencyKey: UUID().uuidString) }

    static func ms(_ histogram: LatencyHistogram, _ percentile: Double) -> String {
        formatFixed(Double(histogram.value(atPercentile: percentile)) / 1e6, 2)
    }

    /// Serial single-event appends on the idle node for one second: the floor of one commit.
    static func appendFloor(_ store: EventStore) async throws -> LatencyHistogram {
        var histogram = LatencyHistogram()
        let payload = [UInt8](repeating: 7, count: 100)
        let end = monotonicNanoseconds() + 1_000_000_000
        var n = 0
        while monotonicNanoseconds() < end {
            let began = monotonicNanoseconds()
            _ = try await store.append(to: "floor-\(n % 100)", expectedVersion: .any, events: [
                NewEvent(type: "BenchEvent", data: payload, metadata: EventMetadata(actorID: "bench", actorRole: "system", correlationID: "floor-\(n)")),
            ])
            histogram.record(monotonicNanoseconds() - began)
            n += 1
        }
        return histogram
    }

    /// One product per SKU, priced in EUR, published, with 10,000,000 units at its zone's location.
    static func seed(_ skus: [(sku: String, location: String)], port: Int) async throws {
        let client = try await ClientConnection.connect(host: "127.0.0.1", port: port, configuration: .init(apiKey: operatorKey))
        try await skus.concurrentForEach(width: 16) { item in
            var create = Tote_V1_CreateProductRequest()
            create.details.name = "Bench \(item.sku)"
            create.details.slug = item.sku.lowercased()
            let product = try await client.unary(CatalogAPI.createProduct, create, options: key())
            var variant = Tote_V1_AddVariantRequest()
            variant.productID = product.productID
            variant.variant.sku = item.sku
            _ = try await client.unary(CatalogAPI.addVariant, variant, options: key())
            var prices = Tote_V1_SetPricesRequest()
            prices.productID = product.productID
            var price = Tote_V1_VariantPrice()
            price.sku = item.sku
            price.price = Money(1999, "EUR").proto
            prices.prices = [price]
            _ = try await client.unary(CatalogAPI.setPrices, prices, options: key())
            var publish = Tote_V1_PublishProductRequest()
            publish.productID = product.productID
            _ = try await client.unary(CatalogAPI.publishProduct, publish, options: key())
            var receive = Tote_V1_ReceiveStockRequest()
            receive.key.sku = item.sku
            receive.key.locationID = item.location
            receive.quantity = 10_000_000
            receive.reference = "PO"
            _ = try await client.unary(InventoryAPI.receiveStock, receive, options: key())
        }
        await client.close()
    }

    /// `count` READY checkouts of 2 distinct random SKUs (so an order has one or two pick tasks),
    /// paid by card with the token the simulated provider authorizes at once.
    static func prepare(_ count: Int, skus: [String], connections: [ClientConnection]) async throws -> [String] {
        try await (0..<count).concurrentMap(width: 16) { index -> String in
            let client = connections[index % connections.count]
            var create = Tote_V1_CreateCartRequest()
            create.currency = "EUR"
            let cart = try await client.unary(CartAPI.createCart, create, options: key())
            var picked = Set<String>()
            while picked.count < 2 { picked.insert(skus.randomElement()!) }
            for sku in picked.sorted() {
                var add = Tote_V1_AddLineRequest()
                add.cartID = cart.cart.cartID
                add.sku = sku
                add.quantity = 1
                _ = try await client.unary(CartAPI.addLine, add, options: key())
            }
            var start = Tote_V1_StartCheckoutRequest()
            start.cartID = cart.cart.cartID
            let id = try await client.unary(CheckoutAPI.startCheckout, start, options: key()).checkout.checkoutID
            var address = Tote_V1_SetShippingAddressRequest()
            address.checkoutID = id
            address.address.name = "Bench Shopper"
            address.address.lines = ["Heidestraße 17"]
            address.address.city = "Köln"
            address.address.postalCode = "51147"
            address.address.country = "DE"
            address.address.email = "bench@example.com"
            _ = try await client.unary(CheckoutAPI.setShippingAddress, address, options: key())
            var billing = Tote_V1_SetBillingAddressRequest()
            billing.checkoutID = id
            billing.sameAsShipping = true
            _ = try await client.unary(CheckoutAPI.setBillingAddress, billing, options: key())
            var shipping = Tote_V1_ChooseShippingOptionRequest()
            shipping.checkoutID = id
            shipping.optionID = "standard"
            _ = try await client.unary(CheckoutAPI.chooseShippingOption, shipping, options: key())
            var payment = Tote_V1_ChoosePaymentMethodRequest()
            payment.checkoutID = id
            payment.method.kind = .card
            payment.method.provider = "simulated"
            payment.method.token = "tok_visa_4242"
            _ = try await client.unary(CheckoutAPI.choosePaymentMethod, payment, options: key())
            return id
        }
    }
}

/// The place-and-pay calls of one rate: their latencies and failures.
final class CallRecord: Sendable {
    let latency = Mutex(LatencyHistogram())
    let failures = Mutex<[String]>([])
}

