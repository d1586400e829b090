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

/// API keys of the test server.
enum Keys {
    static let storefront = "test-storefront-key-0001"
    static let `operator` = "test-operator-key-000001"
    static let keyring = APIKeyring([storefront: .storefront, `operator`: .operator])
}

/// A real command node for one test: its own database in the suite's cluster, the event store,
/// the command runner, and an RPC server with the commerce services on an ephemeral port.
final class Node: Sendable {
    let store: EventStore
    let pool: PostgresPool
    let runner: CommandRunner
    let server: RPCServer
    let port: Int
    let clock: TestClock

    /// - Parameter gateway: the payment provider "simulated"; by default one that approves every
    ///   card and holds its webhooks until the test delivers them (``pendingWebhooks``).
    /// - Parameter readModels: a folder for the LMDB read models: the node then also runs the
    ///   projector and serves tote.v1.Query from them.
    static func start(clock: TestClock = TestClock(), poolSize: Int = 16, gateway: SimulatedGateway? = nil, readModels: String? = nil) async throws -> Node {
        let cluster = try LocalCluster.cluster
        let database = try await cluster.createDatabase()
        let pool = PostgresPool(configuration: .init(connectionString: cluster.connectionString(database: database), size: poolSize))
        let store = EventStore(pool: pool, pollInterval: .milliseconds(50))
        try await store.migrate()
        let runner = CommandRunner(store: store, clock: { clock.now })
        var router = RPCRouter()
        let gateway = gateway ?? Node.gateway(clock: clock)
        let services = CommerceServices(runner: runner, settings: .demo, gateways: ["simulated": gateway])
        services.register(into: &router)
        try await services.promotions.catchUp()
        var projector: Task<Void, any Error>?
        if let readModels {
            let readSide = try ReadSide(folder: readModels, eventStore: store)
            readSide.queryService.register(into: &router)
            if let runner = readSide.projector { projector = Task { try await runner.run() } }
        }
        var logger = Logger(label: "test.commerce")
        logger.logLevel = .critical
        let server = RPCServer(configuration: .init(host: "127.0.0.1", port: 0, drainTimeout: .seconds(5)), router: router, keyring: Keys.keyring, logger: logger)
        let address = try await server.start()
        return Node(store: store, pool: pool, runner: runner, server: server, port: address.port!, clock: clock, gateway: gateway, services: services, projector: projector)
    }

    /// A simulated provider signing with the demo store's secret, on the test clock, whose
    /// webhooks wait for the test.
    static func gateway(clock: TestClock, _ configure: (inout SimulatedGateway.Configuration) -> Void = { _ in }) -> SimulatedGateway {
        var configuration = SimulatedGateway.Configuration()
        configuration.webhookSecret = StoreSettings.demo.webhookSecrets["simulated"]!
        configuration.webhookDelivery = .manual
        configure(&configuration)
        return SimulatedGateway(configuration: configuration, nowMicros: { clock.now })
    }

    let gateway: SimulatedGateway
    let services: CommerceServices

    let projector: Task<Void, any Error>?

    private init(store: EventStore, pool: PostgresPool, runner: CommandRunner, server: RPCServer, port: Int, clock: TestClock, gateway: SimulatedGateway, services: CommerceServices, projector: Task<Void, any Error>?) {
        self.projector = projector
        self.gateway = gateway
        self.services = services
        self.store = store
        self.pool = pool
        self.runner = runner
        self.server = server
        self.port = port
        self.clock = clock
    }

    func connect(apiKey: String = Keys.storefront) async throws -> ClientConnection {
        try await ClientConnection.connect(host: "127.0.0.1", port: port, configuration: .init(apiKey: apiKey))
    }

    func stop() async {
        projector?.cancel()
        _ = await projector?.result
        await server.shutdownGracefully()
        await store.shutdown()
        try? await pool.shutdown()
    }
}

/// A clock the test moves by hand (microseconds since the epoch), starting at a fixed instant.
final class TestClock: Sendable {
    private let micros: Locked<Int64>
    /// Starts at `micros` (by default a fixed instant in January 2027).
    init(micros: Int64 = 1_800_000_000_000_000) { self.micros = Locked(micros) }
    var now: Int64 { micros.withLock { $0 } }
    func advance(seconds: Int64) { micros.withLock { $0 += seconds * 1_000_000 } }
}

/// Call options for a command: a fresh idempotency key unless one is given.
func command(_ key: String = UUID().uuidString, timeout: Duration = .seconds(30)) -> CallOptions {
    CallOptions(timeout: timeout, idempotencyKey: key)
}

func stockKey(_ sku: String, _ location: String = "main") -> Tote_V1_StockItemKey {
    var key = Tote_V1_StockItemKey()
    key.sku = sku
    key.locationID = location
    return key
}

func seconds(_ value: Int64) -> Tote_V1_Duration {
    var duration = Tote_V1_Duration()
    duration.micros = value * 1_000_000
    return duration
}

/// Runs `body` and returns the RPC error it threw (fails the test if it threw none, or another error).
func rpcError(_ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async -> RPCError? {
    do {
        try await body()
        Issue.record("expected an RPC error", sourceLocation: sourceLocation)
        return nil
    } catch let error as RPCError {
        return error
    } catch {
        Issue.record("expected an RPC error, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
