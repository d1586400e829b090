import BenchSupport
import EventStore
import Foundation
import Glibc
import LocalPostgres
import Logging
import Postgres
import ToteAPI
import ToteCommands
import ToteDomain
import ToteServices

/// CommerceBench: PlaceOrder (3 lines) over the wire against a Tote command node in this
/// process, on a durable PostgreSQL cluster, at each client count; in the same run and on the
/// same cluster the event store's single-event append benchmark at the same concurrency, for
/// the ratio; and add-to-cart latency. See benchmarks/README.md.
///
///     CommerceBench [--clients 16,64] [--orders N] [--skus N] [--append-seconds S]
@main
enum CommerceBench {
    struct Options {
        var clients = [16, 64]
        /// PlaceOrder calls measured at each client count (after 5 % more as warm-up).
        var orders = 4000
        /// Distinct SKUs orders draw their 3 lines from.
        var skus = 300
        /// Length of the append benchmark at each client count.
        var appendSeconds = 5.0
    }

    static let usage = "usage: CommerceBench [--clients 16,64] [--orders N] [--skus N] [--append-seconds S]"

    static func main() async {
        signal(SIGPIPE, SIG_IGN)
        var options = Options()
        var arguments = Arguments(Array(CommandLine.arguments.dropFirst()), usage: usage)
        do {
            while let option = arguments.nextOption() {
                switch option {
                case "--clients": options.clients = try arguments.counts()
                case "--orders": options.orders = try arguments.count()
                case "--skus": options.skus = try arguments.count()
                case "--append-seconds": options.appendSeconds = try arguments.seconds()
                case "-h", "--help": print(usage); return
                default: throw arguments.unknownOption()
                }
            }
        } catch {
            writeUnbuffered("CommerceBench: \(error)\n", to: 2)
            exit(2)
        }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("tote-commerce-bench-\(UUID().uuidString.prefix(8).lowercased())")
        var cluster: LocalPostgresCluster?
        do {
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
            // Durable: fsync and synchronous_commit on, as in EventStoreBench.
            cluster = try LocalPostgresCluster.start(in: root.appendingPathComponent("cluster"), durable: true)
            try await run(options, cluster: cluster!)
        } catch {
            writeUnbuffered("CommerceBench: \(error)\n", to: 2)
        }
        try? cluster?.stop(immediate: true)
        cluster?.destroy()
        try? FileManager.default.removeItem(at: root)
    }

    static func run(_ options: Options, cluster: LocalPostgresCluster) async throws {
        print("CommerceBench: clients \(options.clients), \(options.orders) orders per point (3 lines each, from \(options.skus) SKUs), appends \(options.appendSeconds) s per point; loadavg(1m) \(formatFixed(loadAverage(), 2))")
        let setup = try PostgresConnection.connect(cluster.connectionString)
        try setup.executeScript("CREATE DATABASE commerce")
        try setup.executeScript("CREATE DATABASE appends")
        let pool = PostgresPool(configuration: .init(connectionString: cluster.connectionString(database: "commerce"), size: 32, applicationName: "commerce-bench"))
        let store = EventStore(pool: pool)
        try await store.migrate()
        let admin = try PostgresConnection.connect(cluster.connectionString(database: "commerce"))
        let runner = CommandRunner(store: store)
        var gatewayConfiguration = SimulatedGateway.Configuration()
        gatewayConfiguration.webhookDelivery = .none
        let services = CommerceServices(runner: runner, settings: .demo, gateways: ["simulated": SimulatedGateway(configuration: gatewayConfiguration)])
        var router = RPCRouter()
        services.register(into: &router)
        var logger = Logger(label: "bench")
        logger.logLevel = .critical
        let keyring = APIKeyring(["bench-storefront-key-01": .storefront, "bench-operator-key-0001": .operator])
        let server = RPCServer(configuration: .init(host: "127.0.0.1", port: 0, drainTimeout: .seconds(5)), router: router, keyring: keyring, logger: logger)
        let port = try await server.start().port!

        let skus = (0..<options.skus).map { String(format: "BENCH-%04d", $0) }
        try await seed(skus: skus, port: port)
        print("seeded \(skus.count) SKUs with 10,000,000 units each")

        var rows: [String] = []
        for clients in options.clients {
            let connections = try await (0..<min(clients, 16)).asyncMap { _ in
                try await ClientConnection.connect(host: "127.0.0.1", port: port, configuration: .init(apiKey: "bench-storefront-key-01"))
            }
            let warmup = max(clients, options.orders / 20)
            let (checkouts, addLine) = try await prepare(options.orders + warmup, skus: skus, clients: clients, connections: connections)
            _ = try await placeAll(Array(checkouts.prefix(warmup)), clients: clients, connections: connections)
            let eventsBefore = try admin.execute("SELECT count(*) FROM events").int64(0, 0)
            let started = monotonicNanoseconds()
            let latency = try await placeAll(Array(checkouts.dropFirst(warmup)), clients: clients, connections: connections)
            let seconds = Double(monotonicNanoseconds() - started) / 1e9
            let ordersPerSecond = Double(options.orders) / seconds
            // What one PlaceOrder writes (checkout, 3 reservations, order, cart): the fair
            // comparison with single-event appends is in events per second.
            let eventsPerOrder = Double(try admin.execute("SELECT count(*) FROM events").int64(0, 0) - eventsBefore) / Double(options.orders)
            for connection in connections { await connection.close() }

            let appends = try await appendBenchmark(cluster: cluster, writers: clients, seconds: options.appendSeconds)
            let eventsPerSecond = ordersPerSecond * eventsPerOrder
            let row = "| \(clients) | \(formatFixed(ordersPerSecond, 0)) | \(ms(latency, 50)) | \(ms(latency, 99)) | \(formatFixed(appends.perSecond, 0)) | \(ms(appends.latency, 99)) | \(formatFixed(ordersPerSecond / appends.perSecond, 2))× | \(formatFixed(eventsPerOrder, 1)) | \(formatFixed(eventsPerSecond / appends.perSecond, 2))× | \(ms(addLine, 50)) | \(ms(addLine, 99)) |"
            print("clients=\(clients): \(formatFixed(ordersPerSecond, 0)) orders/s, \(formatFixed(eventsPerOrder, 1)) events each (p50 \(ms(latency, 50)) ms, p99 \(ms(latency, 99)) ms); appends \(formatFixed(appends.perSecond, 0))/s (p99 \(ms(appends.latency, 99)) ms); add-to-cart p50 \(ms(addLine, 50)) ms, p99 \(ms(addLine, 99)) ms")
            rows.append(row)
        }
        print("""

            | clients | PlaceOrder orders/s | p50 ms | p99 ms | append (1 event) /s | append p99 ms | orders ÷ appends | events per order | events/s ÷ appends | AddLine p50 ms | AddLine p99 ms |
            |--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|
            \(rows.joined(separator: "\n"))

            loadavg(1m) at end: \(formatFixed(loadAverage(), 2))
            """)
        await server.shutdownGracefully()
        await store.shutdown()
        try await pool.shutdown()
    }

    /// Call options of one command: a fresh idempotency key.
    @Sendable static func key() -> CallOptions { CallOptions(timeout: .seconds(60), idempotencyKey: UUID().uuidString) }

    static func ms(_ histogram: LatencyHistogram, _ percentile: Double) -> String {
        formatFixed(Double(histogram.value(atPercentile: percentile)) / 1e6, 2)
    }

    /// One product per SKU, priced in EUR, published, with 10,000,000 units at `main`.
    static func seed(skus: [String], port: Int) async throws {
        let client = try await ClientConnection.connect(host: "127.0.0.1", port: port, configuration: .init(apiKey: "bench-operator-key-0001"))
        try await skus.concurrentForEach(width: 16) { sku in
            var create = Tote_V1_CreateProductRequest()
            create.details.name = "Bench \(sku)"
            create.details.slug = sku.lowercased()
            let product = try await client.unary(CatalogAPI.createProduct, create, options: key())
            var variant = Tote_V1_AddVariantRequest()
            variant.productID = product.productID
            variant.variant.sku = sku
            _ = try await client.unary(CatalogAPI.addVariant, variant, options: key())
            var prices = Tote_V1_SetPricesRequest()
            prices.productID = product.productID
            var price = Tote_V1_VariantPrice()
            price.sku = sku
            price.price = Money(1999, "EUR").proto
            prices.prices = [price]
            _ = try await client.unary(CatalogAPI.setPrices, prices, options: key())
            var publish = Tote_V1_PublishProductRequest()
            publish.productID = product.productID
            _ = try await client.unary(CatalogAPI.publishProduct, publish, options: key())
            var receive = Tote_V1_ReceiveStockRequest()
            receive.key.sku = sku
            receive.key.locationID = "main"
            receive.quantity = 10_000_000
            receive.reference = "PO"
            _ = try await client.unary(InventoryAPI.receiveStock, receive, options: key())
        }
        await client.close()
    }

    /// `count` READY checkouts of 3 distinct random SKUs, made by `clients` concurrent shoppers;
    /// returns them with the AddLine latencies seen while making them.
    static func prepare(_ count: Int, skus: [String], clients: Int, connections: [ClientConnection]) async throws -> ([String], LatencyHistogram) {
        let results = try await (0..<count).concurrentMap(width: clients) { index -> (String, LatencyHistogram) in
            let client = connections[index % connections.count]
            var histogram = LatencyHistogram()
            var create = Tote_V1_CreateCartRequest()
            create.currency = "EUR"
            let cart = try await client.unary(CartAPI.createCart, create, options: key())
            var picked = Set<String>()
            while picked.count < 3 { picked.insert(skus.randomElement()!) }
            for sku in picked.sorted() {
                var add = Tote_V1_AddLineRequest()
                add.cartID = cart.cart.cartID
                add.sku = sku
                add.quantity = 1
                let start = monotonicNanoseconds()
                _ = try await client.unary(CartAPI.addLine, add, options: key())
                histogram.record(monotonicNanoseconds() - start)
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
            return (id, histogram)
        }
        var histogram = LatencyHistogram()
        for (_, h) in results { histogram.merge(h) }
        return (results.map(\.0), histogram)
    }

    /// Places every checkout's order, `clients` at a time; returns their latencies.
    static func placeAll(_ checkouts: [String], clients: Int, connections: [ClientConnection]) async throws -> LatencyHistogram {
        let latencies = try await checkouts.enumerated().concurrentMap(width: clients) { index, checkoutID -> UInt64 in
            var place = Tote_V1_PlaceOrderRequest()
            place.checkoutID = checkoutID
            let start = monotonicNanoseconds()
            _ = try await connections[index % connections.count].unary(CheckoutAPI.placeOrder, place, options: CallOptions(timeout: .seconds(60), idempotencyKey: UUID().uuidString))
            return monotonicNanoseconds() - start
        }
        var histogram = LatencyHistogram()
        for latency in latencies { histogram.record(latency) }
        return histogram
    }

    /// EventStoreBench's `append` workload: `writers` tasks appending one event to a random
    /// stream among 1000 with `.any`, through a pool of min(writers, 64), for `seconds`.
    static func appendBenchmark(cluster: LocalPostgresCluster, writers: Int, seconds: Double) async throws -> (perSecond: Double, latency: LatencyHistogram) {
        let pool = PostgresPool(configuration: .init(connectionString: cluster.connectionString(database: "appends"), size: min(writers, 64), applicationName: "commerce-bench-appends"))
        let store = EventStore(pool: pool)
        try await store.migrate()
        let payload = [UInt8](repeating: 7, count: 100)
        let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
        let results = try await (0..<writers).concurrentMap(width: writers) { writer -> (Int, LatencyHistogram) in
            var histogram = LatencyHistogram()
            var count = 0
            while monotonicNanoseconds() < deadline {
                let start = monotonicNanoseconds()
                _ = try await store.append(to: "bench-\(Int.random(in: 0..<1000))", expectedVersion: .any, events: [
                    NewEvent(type: "BenchEvent", data: payload, metadata: EventMetadata(actorID: "bench", actorRole: "system", correlationID: "w\(writer)-\(count)")),
                ])
                histogram.record(monotonicNanoseconds() - start)
                count += 1
            }
            return (count, histogram)
        }
        await store.shutdown()
        try await pool.shutdown()
        var histogram = LatencyHistogram()
        for (_, h) in results { histogram.merge(h) }
        return (Double(results.map(\.0).reduce(0, +)) / seconds, histogram)
    }
}

