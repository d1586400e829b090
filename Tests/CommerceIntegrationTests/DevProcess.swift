import EventStore
import Foundation
import Postgres
import Testing
import ToteAPI
import ToteDomain
import ToteTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// One `tote dev` process as a new user runs it: this build's binary in its own process, in a
/// fresh folder under the temporary directory, with its own PostgreSQL cluster (a unix socket in
/// the folder) and whatever simulated stations its arguments ask for. Shared by ``DevRunTests``
/// and ``DevAdminTests``.
final class DevProcess {
    /// The test's folder (the dev folder, the output file and anything else the test writes).
    let base: URL
    /// `tote dev --folder`.
    let folder: URL
    /// Where tote dev's stdout and stderr go.
    let output: String
    let pid: pid_t
    /// The port it listens on (127.0.0.1).
    private(set) var port = 0
    /// Its metrics endpoint, `http://HOST:PORT/metrics`.
    private(set) var metrics = ""
    /// The libpq connection string of its database, as it prints it.
    private(set) var database = ""
    /// Whether the process has exited (and was reaped).
    private(set) var exited = false
    /// Its exit status (waitpid's), once it has exited.
    private(set) var status: Int32 = 0

    /// The development keys (`Dev.developmentKeys`).
    static let storefrontKey = "dev-storefront-key-0001"
    static let operatorKey = "dev-operator-key-00001"

    /// Starts `tote dev` with `arguments` after `--folder`, `--listen 127.0.0.1:0`, a random
    /// `--postgres-port` and `--metrics-listen 127.0.0.1:0`, and waits until it listens, has
    /// printed its metrics address and, when `stations` is given, has printed that line
    /// ("dev: started 1 pick and 1 pack station(s)"). Throws (after cleaning up) if it exits first.
    /// `prepare` may write files into the test's folder first; it returns more arguments.
    static func start(_ arguments: [String], stations: String? = nil, timeout: Duration = .seconds(120), prepare: (URL) throws -> [String] = { _ in [] }) async throws -> DevProcess {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("tote-devrun-\(UUID().uuidString.prefix(8).lowercased())")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        let all: [String]
        do {
            all = try arguments + prepare(base)
        } catch {
            try? FileManager.default.removeItem(at: base)
            throw error
        }
        let folder = base.appendingPathComponent("dev")
        let output = base.appendingPathComponent("stdout.log").path
        let postgresPort = Int.random(in: 20_000...29_999)  // names the unix socket inside the folder only
        let pid = try spawnClean(Binaries.tote, ["dev", "--folder", folder.path, "--listen", "127.0.0.1:0", "--postgres-port", "\(postgresPort)",
                                                  "--metrics-listen", "127.0.0.1:0"] + all, output: output)
        let dev = DevProcess(base: base, folder: folder, output: output, pid: pid)
        do {
            try await eventually(timeout: timeout, "tote dev to listen\(stations.map { " and print '\($0)'" } ?? "")") {
                let text = dev.said
                if dev.reap() { throw BridgeTestFailure("tote dev exited early:\n\(text)") }
                let lines = text.split(separator: "\n")
                if let line = lines.first(where: { $0.hasPrefix("listening on ") }), let port = line.split(separator: ":").last.flatMap({ Int($0) }) { dev.port = port }
                if let line = lines.first(where: { $0.hasPrefix("metrics on http://") }) { dev.metrics = String(line.dropFirst("metrics on ".count)) }
                if let line = lines.first(where: { $0.contains("dev: Tote is running on ") }), let open = line.range(of: "(PostgreSQL: "), line.hasSuffix(")") {
                    dev.database = String(line[open.upperBound..<line.index(before: line.endIndex)])
                }
                return dev.port > 0 && !dev.metrics.isEmpty && !dev.database.isEmpty && (stations.map { text.contains($0) } ?? true)
            }
        } catch {
            dev.cleanup()
            throw error
        }
        return dev
    }

    private init(base: URL, folder: URL, output: String, pid: pid_t) {
        self.base = base
        self.folder = folder
        self.output = output
        self.pid = pid
    }

    /// Everything it printed so far.
    var said: String { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" }

    /// `--server` and `--api-key` for `tote admin` against it.
    var adminServer: [String] { ["--server", "127.0.0.1:\(port)", "--api-key", Self.operatorKey] }

    /// A client connection to it.
    func connect(apiKey: String = DevProcess.storefrontKey) async throws -> ClientConnection {
        try await ClientConnection.connect(host: "127.0.0.1", port: port, configuration: .init(apiKey: apiKey))
    }

    /// The pid of its PostgreSQL postmaster (from the data folder's postmaster.pid).
    func postmaster() throws -> pid_t {
        let text = try String(contentsOfFile: folder.appendingPathComponent("postgres/data/postmaster.pid").path, encoding: .utf8)
        return try #require(pid_t(text.split(separator: "\n").first ?? ""))
    }

    /// Runs `body` with an event store on its database (closed afterwards): to read what the log
    /// recorded, as an operator would with psql.
    func withLog<R>(_ body: (EventStore) async throws -> R) async throws -> R {
        let pool = PostgresPool(configuration: .init(connectionString: database, size: 1, applicationName: "tote-dev-test"))
        let store = EventStore(pool: pool)
        do {
            let result = try await body(store)
            await store.shutdown()
            try? await pool.shutdown()
            return result
        } catch {
            await store.shutdown()
            try? await pool.shutdown()
            throw error
        }
    }

    /// True once it has exited (reaping it, and keeping its status).
    @discardableResult
    func reap() -> Bool {
        guard !exited else { return true }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid {
            exited = true
            self.status = status
        }
        return exited
    }

    /// SIGTERM, then waits up to `timeout` for it to exit.
    func stop(timeout: Duration = .seconds(60)) async throws {
        kill(pid, SIGTERM)
        try await eventually(timeout: timeout, "tote dev to exit after SIGTERM") { self.reap() }
    }

    /// After the test, or a failure: SIGKILL it if it still runs, SIGKILL whatever else still runs
    /// from its folder (PostgreSQL, simulators), and delete the folder.
    func cleanup() {
        if !reap() {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            exited = true
        }
        killLeftovers(containing: base.path)
        try? FileManager.default.removeItem(at: base)
    }
}

/// What one run of a program printed, and how it ended.
func runProgram(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) async throws -> CommandLineRun {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment { process.environment = environment }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Read both pipes before waiting, so a large output cannot fill a pipe and stall the child.
    return try await offCooperativeThreads {
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return CommandLineRun(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
    }
}

/// A product with one variant `sku`, priced EUR 25.00, published, with `stock` units at `main`.
func seedDevCatalog(_ admin: ClientConnection, sku: String, stock: Int64) async throws {
    var create = Tote_V1_CreateProductRequest()
    create.details.name = "Dev Tee"
    create.details.slug = "dev-tee-\(UUID().uuidString.prefix(6).lowercased())"
    let product = try await admin.unary(CatalogAPI.createProduct, create, options: command())
    var variant = Tote_V1_AddVariantRequest()
    variant.productID = product.productID
    variant.variant.sku = sku
    _ = try await admin.unary(CatalogAPI.addVariant, variant, options: command())
    var prices = Tote_V1_SetPricesRequest()
    prices.productID = product.productID
    var price = Tote_V1_VariantPrice()
    price.sku = sku
    price.price = Money(2500, "EUR").proto
    prices.prices = [price]
    _ = try await admin.unary(CatalogAPI.setPrices, prices, options: command())
    var publish = Tote_V1_PublishProductRequest()
    publish.productID = product.productID
    _ = try await admin.unary(CatalogAPI.publishProduct, publish, options: command())
    var receive = Tote_V1_ReceiveStockRequest()
    receive.key = stockKey(sku)
    receive.quantity = stock
    receive.reference = "PO-\(sku)"
    _ = try await admin.unary(InventoryAPI.receiveStock, receive, options: command())
}

/// posix_spawn of `executable` with stdout and stderr to `output`, an empty signal mask and
/// default signal handlers (a child of the test process would otherwise inherit blocked signals).
func spawnClean(_ executable: String, _ arguments: [String], output: String) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attributes, &empty)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for signal in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    var pid: pid_t = 0
    let result = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
    guard result == 0 else { throw BridgeTestFailure("cannot start \(executable): \(String(cString: strerror(result)))") }
    return pid
}

/// True once the child `pid` has exited (and is reaped now).
func reaped(_ pid: pid_t) -> Bool {
    var status: Int32 = 0
    return waitpid(pid, &status, WNOHANG) == pid
}

/// A live process: it exists and is not a zombie (a zombie has exited; only its parent's
/// bookkeeping is left).
func isAlive(_ pid: pid_t) -> Bool {
    guard kill(pid, 0) == 0 || errno == EPERM else { return false }
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return false }
    let state = stat[stat.index(after: close)...].split(separator: " ").first
    return state != "Z" && state != "X"
}

/// Live processes whose command line contains `text`.
func processes(containing text: String) -> [(pid: pid_t, commandLine: String)] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { entry -> (pid: pid_t, commandLine: String)? in
        guard let pid = pid_t(entry), pid != getpid(),
              let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"), !data.isEmpty else { return nil }
        let commandLine = String(decoding: data.map { $0 == 0 ? UInt8(ascii: " ") : $0 }, as: UTF8.self)
        guard commandLine.contains(text), isAlive(pid) else { return nil }
        return (pid, commandLine)
    }
}

/// After a failure: SIGKILL whatever still runs from this test's folder.
func killLeftovers(containing text: String) {
    for process in processes(containing: text) { kill(process.pid, SIGKILL) }
}
