import EventStore
import Foundation
import Logging
import Postgres
import Testing
import ToteAPI
import ToteCommands
import ToteDomain
import ToteServices
import ToteTestSupport

/// The bridge's dispatch path does not wait for its tick: a paid order (a live event of the log)
/// is planned and its tasks dispatched as soon as the bridge reads it, and a recorded report that
/// completes the picks creates the pack task at once. Shown with a tick of one hour: nothing here
/// could happen if planning waited for it. (BridgeBench measures how fast it is.)
@Suite("Bridge dispatch without waiting for the tick, on a real PostgreSQL", .localCluster, .serialized)
struct BridgeDispatchTests {
    @Test("with a one-hour tick, a paid order's pick command reaches the station, and its finished pick makes the pack task at once")
    func dispatchesWithoutTick() async throws {
        let cluster = try LocalCluster.cluster
        let database = try await cluster.createDatabase()
        let pool = PostgresPool(configuration: .init(connectionString: cluster.connectionString(database: database), size: 8))
        let store = EventStore(pool: pool, pollInterval: .milliseconds(50))
        try await store.migrate()
        let runner = CommandRunner(store: store)
        var router = RPCRouter()
        let services = CommerceServices(runner: runner, settings: .demo, gateways: ["simulated": Node.gateway(clock: TestClock())])
        services.register(into: &router)
        try await services.promotions.catchUp()
        let bridge = BridgeServices(runner: runner, configuration: BridgeConfiguration(bridgeID: "bridge-slow-tick", tickInterval: .seconds(3600), leadershipPollInterval: .milliseconds(200)))
        bridge.register(into: &router)
        var logger = Logger(label: "test.bridge")
        logger.logLevel = .critical
        let server = RPCServer(configuration: .init(host: "127.0.0.1", port: 0, drainTimeout: .seconds(2)), router: router, keyring: BridgeKeys.keyring, logger: logger)
        let port = try await server.start().port!
        let bridgeTask = Task { try await bridge.run() }
        defer {
            Task {
                bridgeTask.cancel()
                _ = await bridgeTask.result
                await server.shutdownGracefully()
                await store.shutdown()
                try? await pool.shutdown()
            }
        }
        try await eventually(timeout: .seconds(10), "bridge active") { bridge.isActive }

        let operatorClient = try await ClientConnection.connect(host: "127.0.0.1", port: port, configuration: .init(apiKey: Keys.operator))
        let shopper = try await ClientConnection.connect(host: "127.0.0.1", port: port, configuration: .init(apiKey: Keys.storefront))
        let controllers = try await ClientConnection.connect(host: "127.0.0.1", port: port, configuration: .init(apiKey: BridgeKeys.controller))
        var create = Tote_V1_CreateProductRequest()
        create.details.name = "Slow Tick Tee"
        create.details.slug = "slow-tick-tee"
        let product = try await operatorClient.unary(CatalogAPI.createProduct, create, options: command())
        var variant = Tote_V1_AddVariantRequest()
        variant.productID = product.productID
        variant.variant.sku = "TICK-M"
        _ = try await operatorClient.unary(CatalogAPI.addVariant, variant, options: command())
        var prices = Tote_V1_SetPricesRequest()
        prices.productID = product.productID
        var price = Tote_V1_VariantPrice()
        price.sku = "TICK-M"
        price.price = Money(2500, "EUR").proto
        prices.prices = [price]
        _ = try await operatorClient.unary(CatalogAPI.setPrices, prices, options: command())
        var publish = Tote_V1_PublishProductRequest()
        publish.productID = product.productID
        _ = try await operatorClient.unary(CatalogAPI.publishProduct, publish, options: command())
        var receive = Tote_V1_ReceiveStockRequest()
        receive.key = stockKey("TICK-M")
        receive.quantity = 5
        receive.reference = "PO-TICK"
        _ = try await operatorClient.unary(InventoryAPI.receiveStock, receive, options: command())

        // Both stations are online before the order is paid: only the paid event can start the work.
        try await controllerSession(controllers, id: "pack-tick", kind: .pack) { pack, _ in
            try await controllerSession(controllers, id: "pick-tick", kind: .pick) { pick, _ in
                let orderID = try await placePaidOrder(shopper, lines: ["TICK-M": 1])
                let command = try await pick.nextCommand(timeout: .seconds(20))
                #expect(ScriptedController.taskID(command) == TaskPlanner.pickTaskID(orderID: orderID, number: 1))
                try await pick.ack(command.sequence)
                try await pick.report(1, command, .finished, picked: ScriptedController.fullPick(command))
                #expect(try await pick.nextAck(timeout: .seconds(20)) == 1)
                let packCommand = try await pack.nextCommand(timeout: .seconds(20))
                #expect(ScriptedController.taskID(packCommand) == TaskPlanner.packTaskID(orderID: orderID))
            }
        }
        await operatorClient.close()
        await shopper.close()
        await controllers.close()
    }
}
