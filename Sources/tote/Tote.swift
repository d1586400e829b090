import ArgumentParser
import EventStore
import LocalPostgres
import Postgres
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import ToteAPI
import ToteCommands
import ToteDomain
import ToteReadModels
import ToteServices

/// The `tote` command: one executable, one subcommand per role.
@main
struct Tote: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "tote",
        abstract: "Tote: an event-sourced commerce backend.",
        version: version,
        subcommands: [Dev.self, Serve.self, Project.self, Query.self, Admin.self, Migrate.self, HealthCheck.self, Version.self]
    )
}

/// Options shared by the commands that log.
struct LoggingOptions: ParsableArguments {
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    @Option(help: "Log format on standard error: text (for people) or json (one object per line, for log shippers).")
    var logFormat: LogFormat = .text

    enum LogFormat: String, ExpressibleByArgument, Sendable {
        case text, json
    }

    func bootstrap() {
        let level = logLevel
        let format = logFormat
        LoggingSystem.bootstrap { label in
            switch format {
            case .text:
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            case .json:
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// `--event-loop-scheduling normal|batch`.
extension RPCServer.EventLoopScheduling: ExpressibleByArgument {}

/// A `HOST:PORT` pair from the command line.
struct HostAndPort: ExpressibleByArgument, CustomStringConvertible {
    var host: String
    var port: Int

    init?(argument: String) {
        guard let colon = argument.lastIndex(of: ":"), let port = Int(argument[argument.index(after: colon)...]),
              (0...65535).contains(port)
        else { return nil }
        var host = String(argument[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.host = host.isEmpty ? "0.0.0.0" : host
        self.port = port
    }

    var description: String { "\(host):\(port)" }
}

/// `tote serve`: runs the wire-protocol server until SIGINT or SIGTERM, then drains in-flight
/// calls and exits. Health and Diagnostics always; with a database (`--database` or
/// `TOTE_DATABASE_URL`) also the commerce command services over the event store, and the reaper
/// that records expired reservations.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the Tote server.")

    @Option(help: "Address to listen on, HOST:PORT.")
    var listen: HostAndPort = HostAndPort(argument: "127.0.0.1:7700")!

    @Option(help: "File of API keys, one 'role:key' per line (roles: storefront, operator, controller). Default: the TOTE_API_KEYS environment variable, same format, comma-separated.")
    var apiKeysFile: String?

    @Option(help: "Most client connections at once.")
    var maxConnections: Int = 4096

    @Option(help: "Most concurrent calls per connection.")
    var maxConcurrentStreams: UInt32 = 1024

    @Option(help: "Seconds graceful shutdown waits for in-flight calls.")
    var drainTimeout: Int = 30

    @Option(help: "libpq connection string of the event store's database; migrated at start. Default: the TOTE_DATABASE_URL environment variable; none: serve Health and Diagnostics only.")
    var database: String?

    @Option(help: "PostgreSQL connections in the pool (concurrent commits share WAL flushes).")
    var poolSize: Int = 16

    @Option(help: "Folder of the LMDB read models: with a database, the projector keeps them current and tote.v1.Query is served from them.")
    var readModels: String?

    @Option(help: "Warehouse of the automation bridge: it competes for this warehouse's lock, plans the orders whose home warehouse it is and dispatches only its tasks (location ids are '<warehouse>/<zone>/...'). Default: empty, one bridge for every warehouse.")
    var warehouse: String = ""

    @Option(help: "Serve Prometheus metrics (/metrics) and liveness and readiness probes (/health, /ready) over HTTP on HOST:PORT.")
    var metricsListen: HostAndPort?

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        logging.bootstrap()
        let keyring = try loadKeyring()
        try await ServerRun(
            listen: listen, keyring: keyring, maxConnections: maxConnections, maxConcurrentStreams: maxConcurrentStreams,
            drainTimeout: drainTimeout, database: database ?? ProcessInfo.processInfo.environment["TOTE_DATABASE_URL"], poolSize: poolSize,
            readModels: readModels, warehouseID: warehouse, metricsListen: metricsListen
        ).run { _ in }
    }

    private func loadKeyring() throws -> APIKeyring {
        let text: String
        let source: String
        if let apiKeysFile {
            do {
                text = try String(contentsOfFile: apiKeysFile, encoding: .utf8)
            } catch {
                throw ValidationError("cannot read API keys file \(apiKeysFile): \(error.localizedDescription)")
            }
            source = apiKeysFile
        } else if let env = ProcessInfo.processInfo.environment["TOTE_API_KEYS"] {
            text = env
            source = "TOTE_API_KEYS"
        } else {
            throw ValidationError("no API keys: pass --api-keys-file or set TOTE_API_KEYS (e.g. 'storefront:<key>,operator:<key>')")
        }
        let keyring: APIKeyring
        do {
            keyring = try APIKeyring(parsing: text)
        } catch {
            throw ValidationError("\(source): \(error)")
        }
        guard !keyring.isEmpty else { throw ValidationError("\(source) holds no API keys") }
        return keyring
    }
}

/// `tote dev`: the whole platform on this machine for development and demos — a private
/// PostgreSQL cluster in a local folder (created on first use, reused after; `--reset` wipes it),
/// every role of `tote serve` in this process, development API keys, and simulated pick and pack
/// stations (``DevControllers``). Ctrl-C stops the stations, the server and the cluster.
struct Dev: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the whole platform locally with its own PostgreSQL.")

    @Option(help: "Folder for the PostgreSQL cluster (postgres/) and the LMDB read models (readmodels/).")
    var folder: String = ".tote-dev"

    @Flag(help: "Delete the folder's data first.")
    var reset = false

    @Option(help: "Address to listen on, HOST:PORT.")
    var listen: HostAndPort = HostAndPort(argument: "127.0.0.1:7700")!

    @Option(help: "Port number of the private cluster's unix socket (it listens on no TCP port).")
    var postgresPort: Int = 54329

    @Option(help: "Simulated pick and pack stations to start, PICK,PACK (0,0: none).")
    var controllers = ControllerCounts(picks: 2, packs: 1)

    @Option(help: "The controller simulator (default: tools/controller/build/tote-controller-sim under the working directory, if built).")
    var controllerSim: String?

    @Option(help: "Products of the demo catalog loaded on the first start (0: none).")
    var demoProducts = 3000

    @Option(help: "Simulated shoppers placing this many orders per second (browse, cart, checkout, pay; some declined or abandoned).")
    var traffic: Double = 0

    @Option(help: "Serve Prometheus metrics and probes (/metrics, /health, /ready) over HTTP on HOST:PORT.")
    var metricsListen: HostAndPort = HostAndPort(argument: "127.0.0.1:7702")!

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard demoProducts >= 0 && demoProducts <= 200_000 else { throw ValidationError("--demo-products must be between 0 and 200000, got \(demoProducts)") }
        guard traffic >= 0 && traffic <= 1000 else { throw ValidationError("--traffic must be between 0 and 1000 orders per second, got \(traffic)") }
    }

    /// The banner's line for a purchase from C (`tools/c`), with a SKU of the demo catalog
    /// that is on sale and in stock; empty without a demo catalog.
    private func purchaseExample(address: String, storefrontKey: String) -> String {
        guard demoProducts > 0, let port = address.split(separator: ":").last,
              let sku = DevDemo.sellableSKU(products: demoProducts, locations: StoreSettings.demo.locations) else { return "" }
        return "\ndev:       make -C tools/c && tools/c/build/tote-purchase --port \(port) --key \(storefrontKey) --sku \(sku):1"
    }

    /// Writes a line to standard output at once (also when it is a file or a pipe).
    private func say(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    static let developmentKeys = "storefront:dev-storefront-key-0001,operator:dev-operator-key-00001,controller:dev-controller-key-0001"

    func run() async throws {
        logging.bootstrap()
        _ = ToteMetrics.registry  // before anything makes a metric (the demo loader appends)
        let directory = URL(fileURLWithPath: folder).standardizedFileURL.appendingPathComponent("postgres")
        if reset {
            // A cluster left running by an earlier run is stopped before its files go.
            if let stale = try? LocalPostgresCluster.start(in: directory, port: postgresPort) { try? stale.stop() }
            try? FileManager.default.removeItem(at: URL(fileURLWithPath: folder))
        }
        say("dev: starting PostgreSQL in \(directory.path) (first start runs initdb)")
        let cluster = try LocalPostgresCluster.start(in: directory, port: postgresPort, durable: true)
        defer { try? cluster.stop() }
        let admin = try PostgresConnection.connect(cluster.connectionString)
        let exists = try admin.execute("SELECT 1 FROM pg_database WHERE datname = 'tote'").rowCount == 1
        if !exists { try admin.executeScript("CREATE DATABASE tote") }

        let keys = ProcessInfo.processInfo.environment["TOTE_API_KEYS"] ?? Self.developmentKeys
        let keyring = try APIKeyring(parsing: keys)
        let readModels = URL(fileURLWithPath: folder).standardizedFileURL.appendingPathComponent("readmodels").path
        try await loadDemoCatalog(database: cluster.connectionString(database: "tote"))
        let stations = DevControllers()
        defer {
            let (terminated, killed) = stations.stop()
            if terminated + killed > 0 { say("dev: stopped the simulated stations: \(terminated) after SIGTERM, \(killed) killed") }
        }
        let shoppers = Mutex<Task<Void, Never>?>(nil)
        defer { shoppers.withLock { $0?.cancel() } }
        try await ServerRun(listen: listen, keyring: keyring, database: cluster.connectionString(database: "tote"), readModels: readModels, metricsListen: metricsListen).run { address in
            startControllers(stations, address: address, keys: keys)
            let storefrontKey = Self.key(of: "storefront", in: keys) ?? ""
            let operatorKey = Self.key(of: "operator", in: keys) ?? ""
            say("""
                dev: Tote is running on \(address) (PostgreSQL: \(cluster.connectionString(database: "tote")))
                dev: API keys\(ProcessInfo.processInfo.environment["TOTE_API_KEYS"] == nil ? " (development)" : ""): \(keys)
                dev: try   tote health --server \(address) --api-key \(storefrontKey)
                dev:       tote admin orders --state packed --server \(address) --api-key \(operatorKey)
                dev:       tote admin task stuck --server \(address) --api-key \(operatorKey)
                dev:       psql "\(cluster.connectionString(database: "tote"))" -c 'SELECT type, count(*) FROM events GROUP BY 1'\(purchaseExample(address: address, storefrontKey: storefrontKey))
                dev: metrics and probes: /metrics, /health and /ready on the metrics address printed above
                dev: Ctrl-C stops the server and PostgreSQL.
                """)
            if traffic > 0, let host = HostAndPort(argument: address) {
                say("dev: simulated shoppers: \(traffic) orders/s")
                let shopping = DevTraffic(host: host.host == "0.0.0.0" ? "127.0.0.1" : host.host, port: host.port, apiKey: storefrontKey, ordersPerSecond: traffic)
                shoppers.withLock {
                    $0 = Task {
                        do { try await shopping.run() } catch { say("dev: the simulated shoppers stopped: \(error)") }
                    }
                }
            }
        }
    }

    /// The key of `role` in a `role:key,…` list.
    static func key(of role: String, in keys: String) -> String? {
        keys.split(separator: ",").compactMap { entry -> String? in
            let parts = entry.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            return parts.count == 2 && parts[0] == role ? parts[1] : nil
        }.first
    }

    /// Loads the demo catalog into a fresh log (``DevDemo``), with stock at the demo store's locations.
    private func loadDemoCatalog(database: String) async throws {
        guard demoProducts > 0 else { return }
        try await withEventStore(database, poolSize: 2, applicationName: "tote-dev-demo") { store in
            try await store.migrate()
            let started = ContinuousClock.now
            let written = try await DevDemo.loadIfNeeded(into: store, products: demoProducts, locations: StoreSettings.demo.locations) { say($0) }
            if written > 0 { say("dev: loaded the demo catalog: \(demoProducts) products, \(written) events in \(started.duration(to: .now).formatted(.units(allowed: [.seconds], fractionalPart: .show(length: 1))))") }
        }
    }

    /// Starts the simulated stations (DevControllers) once the server listens; says why not if it cannot.
    private func startControllers(_ stations: DevControllers, address: String, keys: String) {
        guard controllers.picks + controllers.packs > 0 else { return }
        let (simulator, problem) = DevControllers.locateSimulator(controllerSim)
        guard let simulator else { return say("dev: \(problem ?? "no controller simulator"); running without simulated controllers") }
        let controllerKey = Self.key(of: "controller", in: keys)
        guard let controllerKey else { return say("dev: no controller key in the API keys; running without simulated controllers") }
        let host = HostAndPort(argument: address) ?? listen
        let connectHost = host.host == "0.0.0.0" ? "127.0.0.1" : host.host == "::" ? "::1" : host.host
        do {
            try stations.start(simulator: simulator, host: connectHost, port: host.port, key: controllerKey, counts: controllers, folder: URL(fileURLWithPath: folder).standardizedFileURL)
            say("dev: started \(controllers.picks) pick and \(controllers.packs) pack station(s) (\(stations.children.map { "\($0.id) pid \($0.pid)" }.joined(separator: ", "))); logs in \(folder)/controllers/")
        } catch {
            say("dev: \(error); running without (some) simulated controllers")
        }
    }
}

/// One server process: Health and Diagnostics, and with a database the commerce services with
/// their background processes, until SIGINT or SIGTERM. Shared by `tote serve` and `tote dev`.
struct ServerRun {
    var listen: HostAndPort
    var keyring: APIKeyring
    var maxConnections: Int = 4096
    var maxConcurrentStreams: UInt32 = 1024
    var drainTimeout: Int = 30
    var database: String?
    var poolSize: Int = 16
    /// Folder of the LMDB read models; with a database the projector keeps them current here and
    /// the query service answers from them.
    var readModels: String?
    /// The automation bridge's warehouse (`BridgeConfiguration.warehouseID`; "" = every warehouse).
    var warehouseID = ""
    /// Where to serve `/metrics`, `/health` and `/ready` over HTTP (nil: nowhere).
    var metricsListen: HostAndPort?

    /// Serves until SIGINT or SIGTERM; `started` runs once the server listens (with its address).
    func run(started: (String) async throws -> Void) async throws {
        let logger = Logger(label: "tote")
        // Before anything makes a metric: handles made earlier would report nowhere.
        let registry = metricsListen.map { _ in ToteMetrics.registry }
        var projectorRunner: ProjectorRunner?

        var served = ["tote.v1.Health", "tote.v1.Diagnostics"]
        var router = RPCRouter()
        DiagnosticsService().register(into: &router)
        var background: [ServiceGroupConfiguration.ServiceConfiguration] = []
        var store: EventStore?
        var pool: PostgresPool?
        if let connectionString = database {
            let eventPool = PostgresPool(configuration: .init(connectionString: connectionString, size: poolSize, applicationName: "tote-serve"))
            let eventStore = EventStore(pool: eventPool)
            do {
                try await eventStore.migrate()
            } catch {
                await eventStore.shutdown()
                try? await eventPool.shutdown()
                throw ValidationError("cannot open the event store: \(error)")
            }
            let runner = CommandRunner(store: eventStore)
            // The simulated payment provider (development): it answers in-process and sends its
            // signed webhooks back through the same verification a real provider's go through.
            let settings = StoreSettings.demo
            let webhooks = WebhookForwarder()
            var gatewayConfiguration = SimulatedGateway.Configuration()
            gatewayConfiguration.webhookSecret = settings.webhookSecrets["simulated"] ?? ""
            let gateway = SimulatedGateway(configuration: gatewayConfiguration, sink: { request in await webhooks.deliver(request) })
            let commerce = CommerceServices(runner: runner, settings: settings, gateways: ["simulated": gateway])
            webhooks.attach(commerce, logger: Logger(label: "tote.webhooks"))
            commerce.register(into: &router)
            served += CommerceServices.serviceNames
            background.append(.init(service: BackgroundProcess(name: "promotions") { try await commerce.promotions.run() }, successTerminationBehavior: .ignore, failureTerminationBehavior: .gracefullyShutdownGroup))
            background.append(.init(service: BackgroundProcess(name: "reaper") { try await Reaper(runner: runner, trackers: commerce.reaperTrackers).run() }, successTerminationBehavior: .ignore, failureTerminationBehavior: .gracefullyShutdownGroup))
            // The automation bridge: active while it holds this warehouse's advisory lock, a
            // standby (refusing controllers with UNAVAILABLE) otherwise.
            let bridge = BridgeServices(runner: runner, configuration: BridgeConfiguration(warehouseID: warehouseID, bridgeID: "tote-\(ProcessInfo.processInfo.processIdentifier)"))
            bridge.register(into: &router)
            served += [APIServices.automation.name, APIServices.operations.name]
            background.append(.init(service: BackgroundProcess(name: "bridge") { try await bridge.run() }, successTerminationBehavior: .ignore, failureTerminationBehavior: .gracefullyShutdownGroup))
            if let readModels {
                let readSide = try ReadSide(folder: readModels, eventStore: eventStore)
                readSide.queryService.register(into: &router)
                served.append(APIServices.query.name)
                if let projector = readSide.projector {
                    projectorRunner = projector
                    background.append(.init(service: BackgroundProcess(name: "projector") { try await projector.run() }, successTerminationBehavior: .ignore, failureTerminationBehavior: .gracefullyShutdownGroup))
                }
            }
            store = eventStore
            pool = eventPool
        }
        let health = HealthService(serverVersion: "tote \(Tote.version)", services: served)
        health.register(into: &router)

        let server = RPCServer(
            configuration: .init(
                host: listen.host,
                port: listen.port,
                settings: ConnectionSettings(maxConcurrentStreams: maxConcurrentStreams),
                maxConnections: maxConnections,
                drainTimeout: .seconds(Int64(drainTimeout))
            ),
            router: router,
            keyring: keyring,
            logger: Logger(label: "tote.rpc")
        )
        let address = try await server.start()
        logger.info("tote serving", metadata: [
            "address": "\(address)", "api_keys": "\(keyring.count)", "version": "\(Tote.version)",
        ])
        // Print the bound port on stdout for scripts that start tote on port 0.
        let bound = "\(address.ipAddress ?? listen.host):\(address.port ?? listen.port)"
        FileHandle.standardOutput.write(Data("listening on \(bound)\n".utf8))
        try await started(bound)

        let serving = Mutex(true)
        if let registry, let metricsListen {
            let probe = store
            let readiness: @Sendable () async -> (ready: Bool, reason: String) = {
                guard serving.withLock({ $0 }) else { return (false, "shutting down") }
                guard let probe else { return (true, "") }
                do {
                    _ = try await probe.oldestOpenTransactionSeconds()
                    return (true, "")
                } catch {
                    return (false, "the event store does not answer: \(error)")
                }
            }
            background.append(.init(service: MetricsEndpoint(listen: metricsListen, registry: registry, readiness: readiness) { address in
                FileHandle.standardOutput.write(Data("metrics on http://\(address)/metrics\n".utf8))
            }))
            if let store {
                background.append(.init(service: MetricsSampler(store: store, projector: projectorRunner), successTerminationBehavior: .ignore, failureTerminationBehavior: .ignore))
            }
        }

        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: server, successTerminationBehavior: .gracefullyShutdownGroup)] + background,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await withGracefulShutdownHandler {
            try await group.run()
        } onGracefulShutdown: {
            serving.withLock { $0 = false }
            health.markAllNotServing()
        }
        await store?.shutdown()
        try? await pool?.shutdown()
        logger.info("tote stopped")
    }
}

/// `tote health`: calls tote.v1.Health/Check with the Swift client and prints the status.
struct HealthCheck: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "health", abstract: "Check a server's health.")

    @Option(help: "Server address, HOST:PORT.")
    var server: HostAndPort = HostAndPort(argument: "127.0.0.1:7700")!

    @Option(help: "API key (default: the TOTE_API_KEY environment variable).")
    var apiKey: String?

    @Option(help: "Service to check; empty for the whole server.")
    var service: String = ""

    @Option(help: "Timeout in milliseconds.")
    var timeoutMs: Int = 2000

    func run() async throws {
        let key = apiKey ?? ProcessInfo.processInfo.environment["TOTE_API_KEY"] ?? ""
        do {
            let connection = try await ClientConnection.connect(
                host: server.host, port: server.port,
                configuration: .init(apiKey: key, connectTimeout: .milliseconds(Int64(timeoutMs)))
            )
            var request = Tote_V1_HealthCheckRequest()
            request.service = service
            let response = try await connection.unary(Health.check, request, options: CallOptions(timeout: .milliseconds(timeoutMs)))
            await connection.close()
            print("\(Self.name(of: response.status)) (server \(response.serverVersion))")
            if response.status != .serving { throw ExitCode(1) }
        } catch let error as RPCError {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(error.code == .unavailable ? 3 : 2)
        }
    }
}

extension HealthCheck {
    static func name(of status: Tote_V1_HealthCheckResponse.ServingStatus) -> String {
        switch status {
        case .serving: "SERVING"
        case .notServing: "NOT_SERVING"
        case .serviceUnknown: "SERVICE_UNKNOWN"
        case .unspecified, .UNRECOGNIZED: "UNKNOWN"
        }
    }
}

/// `tote migrate`: applies the event store's schema migrations (idempotent; safe to run while
/// other processes do the same, as every role also migrates at start-up).
struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create or upgrade the event store schema in PostgreSQL.")

    @Option(help: "libpq connection string (default: the TOTE_DATABASE_URL environment variable).")
    var database: String?

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        logging.bootstrap()
        guard let connectionString = database ?? ProcessInfo.processInfo.environment["TOTE_DATABASE_URL"] ?? ProcessInfo.processInfo.environment["TOTE_DATABASE"] else {
            throw ValidationError("no database: pass --database 'host=… dbname=… user=…' or set TOTE_DATABASE_URL")
        }
        if let complaint = PostgresLibrary.validate(connectionString: connectionString) {
            throw ValidationError("invalid connection string: \(complaint)")
        }
        let pool = PostgresPool(configuration: .init(connectionString: connectionString, size: 1))
        do {
            let applied = try await Migrations.apply(using: pool)
            print(applied.isEmpty ? "schema is up to date (version \(Migrations.all.last?.version ?? 0))" : "applied migrations \(applied.map(String.init).joined(separator: ", "))")
        } catch {
            try? await pool.shutdown()
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(error is PostgresError && (error as! PostgresError).isConnectionError ? 3 : 1)
        }
        try await pool.shutdown()
    }
}

/// `tote project`: the projector as its own process — follows the event log and keeps the LMDB
/// read models in a folder current (effectively once: each batch and its cursor commit together).
/// `--rebuild` builds a fresh generation from position zero beside the live one, switches the
/// readers to it when it has caught up, and exits.
struct Project: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the projector that keeps the LMDB read models current.")

    @Option(help: "libpq connection string of the event store (default: TOTE_DATABASE_URL).")
    var database: String?

    @Option(help: "Folder of the LMDB read models.")
    var readModels: String

    @Flag(help: "Rebuild every read model from the start of the log beside the live ones, switch, and exit.")
    var rebuild = false

    @Option(help: "Events applied per LMDB write transaction once caught up with the log (1...100000).")
    var batchSize = 1000

    @Option(help: "Most events per LMDB write transaction while far behind the log: batches grow from --batch-size up to this (default 16384, at least --batch-size).")
    var maxBatchSize: Int?

    @Option(help: "Serve Prometheus metrics (projector lag) and probes (/metrics, /health, /ready) over HTTP on HOST:PORT.")
    var metricsListen: HostAndPort?

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (1...100_000).contains(batchSize) else { throw ValidationError("--batch-size must be between 1 and 100000, got \(batchSize)") }
        if let maxBatchSize, !(batchSize...100_000).contains(maxBatchSize) {
            throw ValidationError("--max-batch-size must be between --batch-size (\(batchSize)) and 100000, got \(maxBatchSize)")
        }
    }

    func run() async throws {
        logging.bootstrap()
        guard let connectionString = database ?? ProcessInfo.processInfo.environment["TOTE_DATABASE_URL"] else {
            throw ValidationError("no database: pass --database or set TOTE_DATABASE_URL")
        }
        let registry = metricsListen.map { _ in ToteMetrics.registry }
        let logger = Logger(label: "tote.projector")
        try await withEventStore(connectionString, poolSize: 2, applicationName: "tote-project") { store in
            let readSide = try ReadSide(folder: readModels, eventStore: store, batchSize: batchSize, maxBatchSize: maxBatchSize, logger: logger)
            if rebuild {
                let generation = try await readSide.rebuild(eventStore: store, batchSize: batchSize, maxBatchSize: maxBatchSize)
                FileHandle.standardOutput.write(Data("rebuilt read models: generation \(generation) is live\n".utf8))
            } else if let projector = readSide.projector {
                FileHandle.standardOutput.write(Data("projecting into \(readModels)\n".utf8))
                var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
                    .init(service: BackgroundProcess(name: "projector") { try await projector.run() }, successTerminationBehavior: .gracefullyShutdownGroup),
                ]
                if let registry, let metricsListen {
                    services.append(.init(service: MetricsEndpoint(listen: metricsListen, registry: registry, readiness: { (true, "") }) { address in
                        FileHandle.standardOutput.write(Data("metrics on http://\(address)/metrics\n".utf8))
                    }))
                    services.append(.init(service: MetricsSampler(store: store, projector: projector), successTerminationBehavior: .ignore, failureTerminationBehavior: .ignore))
                }
                let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
                try await group.run()
            }
        }
    }
}

/// Runs `body` with an event store on a pool of its own, and shuts both down however it ends.
func withEventStore<R>(_ connectionString: String, poolSize: Int, applicationName: String, _ body: (EventStore) async throws -> R) async throws -> R {
    let pool = PostgresPool(configuration: .init(connectionString: connectionString, size: poolSize, applicationName: applicationName))
    let store = EventStore(pool: pool)
    let result: R
    do {
        result = try await body(store)
    } catch {
        await store.shutdown()
        try? await pool.shutdown()
        throw error
    }
    await store.shutdown()
    try await pool.shutdown()
    return result
}

/// `tote query`: the query service alone, answering tote.v1.Query from LMDB read models that a
/// `tote project` process (on this host) keeps current. Never touches PostgreSQL.
struct Query: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve tote.v1.Query from the LMDB read models.")

    @Option(help: "Address to listen on, HOST:PORT.")
    var listen: HostAndPort = HostAndPort(argument: "127.0.0.1:7701")!

    @Option(help: "Folder of the LMDB read models (written by tote project).")
    var readModels: String

    @Option(help: "File of API keys (see tote serve). Default: TOTE_API_KEYS.")
    var apiKeysFile: String?

    @Option(help: "Serve Prometheus metrics (requests by method and status, latencies) and probes (/metrics, /health, /ready) over HTTP on HOST:PORT.")
    var metricsListen: HostAndPort?

    @Option(help: "Event-loop threads of the query server (default: one per core, shared with the process). Point reads are answered on them.")
    var eventLoopThreads: Int?

    @Option(help: "Kernel scheduling of the query server's event-loop threads: normal, or batch (SCHED_BATCH, on threads of the server's own: a woken loop does not preempt the running thread, and answers all that arrived meanwhile; more calls per second on saturated cores, see docs/OPERATIONS.md).")
    var eventLoopScheduling: RPCServer.EventLoopScheduling = .normal

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        logging.bootstrap()
        if let eventLoopThreads, eventLoopThreads < 1 { throw ValidationError("--event-loop-threads must be at least 1") }
        let text = try apiKeysFile.map { try String(contentsOfFile: $0, encoding: .utf8) } ?? ProcessInfo.processInfo.environment["TOTE_API_KEYS"]
        guard let text else { throw ValidationError("no API keys: pass --api-keys-file or set TOTE_API_KEYS") }
        let keyring = try APIKeyring(parsing: text)
        let registry = metricsListen.map { _ in ToteMetrics.registry }
        let readSide = try ReadSide(folder: readModels, eventStore: nil)
        var router = RPCRouter()
        readSide.queryService.register(into: &router)
        let health = HealthService(serverVersion: "tote \(Tote.version)", services: [APIServices.query.name])
        health.register(into: &router)
        let logger = Logger(label: "tote.query")
        let server = RPCServer(
            configuration: .init(host: listen.host, port: listen.port, eventLoopThreads: eventLoopThreads, eventLoopScheduling: eventLoopScheduling),
            router: router, keyring: keyring, logger: logger
        )
        let address = try await server.start()
        FileHandle.standardOutput.write(Data("listening on \(address.ipAddress ?? listen.host):\(address.port ?? listen.port)\n".utf8))
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: server, successTerminationBehavior: .gracefullyShutdownGroup)]
        let serving = Mutex(true)
        if let registry, let metricsListen {
            services.append(.init(service: MetricsEndpoint(listen: metricsListen, registry: registry, readiness: { serving.withLock { $0 } ? (true, "") : (false, "shutting down") }) { address in
                FileHandle.standardOutput.write(Data("metrics on http://\(address)/metrics\n".utf8))
            }))
        }
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await withGracefulShutdownHandler {
            try await group.run()
        } onGracefulShutdown: {
            serving.withLock { $0 = false }
            health.markAllNotServing()
        }
    }
}

/// `tote version`.
struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version.")
    func run() { print("tote \(Tote.version)") }
}

/// A long-running task of the server (the reaper, projectors) as a lifecycle service: it runs
/// until the group shuts down gracefully, which cancels it.
struct BackgroundProcess: Service {
    let name: String
    let body: @Sendable () async throws -> Void

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { try await body() }
        } catch is CancellationError {
            return
        }
    }
}

/// Hands the simulated gateway's webhooks to the payments service of this process (set once,
/// after the services exist; webhooks sent before are dropped, as a provider's would bounce).
final class WebhookForwarder: Sendable {
    private let target = Mutex<(CommerceServices, Logger)?>(nil)

    func attach(_ services: CommerceServices, logger: Logger) {
        target.withLock { $0 = (services, logger) }
    }

    func deliver(_ request: Tote_V1_ProviderWebhookRequest) async {
        guard let (services, logger) = target.withLock({ $0 }) else { return }
        do {
            _ = try await services.deliverWebhook(request, logger: logger)
        } catch {
            logger.warning("webhook rejected", metadata: ["provider_event_id": "\(request.providerEventID)", "error": "\(error)"])
        }
    }
}
