import BenchSupport
import Dispatch
import Foundation
import Logging
import ToteAPI
import ToteReadModels
import ToteRPC
import ToteServices

/// Order-view and autocomplete point reads over the wire at N callers, each against
/// `redis-benchmark -t get` with values of the same size in the same run.
///
/// Tote is measured three times: with `tools/loadgen`'s `tote-loadgen` (a single-threaded C epoll
/// client in its own process, N connections with one call outstanding each, like redis-benchmark's
/// N clients) against a query server configured for a read node (`--event-loop-scheduling batch`:
/// event loops of its own under `SCHED_BATCH`), which gives the ratio against redis since both
/// peers then face the same kind of load generator; with `tote-loadgen` against a server of the
/// default configuration (the shared event loops, default scheduling), kept as a reference row; and
/// with the Swift client inside this process (N callers over `--connections` connections), a
/// third row. redis-benchmark runs between the two `tote-loadgen` runs. The C client is found at `$TOTE_LOADGEN`, else at
/// `tools/loadgen/build/tote-loadgen` under the working directory (run-readside.sh builds it);
/// without it only the Swift row is measured and the ratio uses that.
enum PointReads {
    struct Result {
        var name: String
        /// Swift client, in this process.
        var tote: LoadResult
        /// tote-loadgen, in its own process, against the server of the default configuration.
        var toteC: PeerResult?
        /// tote-loadgen against the server with batch-scheduled event loops of its own.
        var toteBatch: PeerResult?
        var redis: PeerResult?
        var valueBytes: Int
        var callers: Int
        var connections: Int

        /// The summary table's rows for this figure (three lines when tote-loadgen ran).
        var row: String {
            let swiftText = "\(formatFixed(tote.perSecond, 0)) QPS, p50 \(ms(tote.latency, 50)) / p99 \(ms(tote.latency, 99)) ms"
            let redisText = redis.map { "redis GET \(formatFixed($0.perSecond, 0)) QPS, p50 \(formatFixed($0.p50, 3)) / p99 \(formatFixed($0.p99, 3)) ms" } ?? "(no redis)"
            func verdict(_ qps: Double) -> (String, String) {
                guard let redis else { return ("—", "≥ 1.0×") }
                let ratio = qps / redis.perSecond
                return ("\(formatFixed(ratio, 2))×", "≥ 1.0×: \(ratio >= 1 ? "met" : "missed")")
            }
            let text: String
            func peerText(_ result: PeerResult) -> String {
                "\(formatFixed(result.perSecond, 0)) QPS, p50 \(formatFixed(result.p50, 3)) / p99 \(formatFixed(result.p99, 3)) ms"
            }
            if let toteC, let toteBatch {
                let (ratio, target) = verdict(toteBatch.perSecond)
                let (defaultRatio, _) = verdict(toteC.perSecond)
                let (swiftRatio, _) = verdict(tote.perSecond)
                text = """
                    | \(name) (\(valueBytes) B), tote-loadgen (\(callers) connections), read-node server (batch-scheduled event loops) | \(peerText(toteBatch)) | \(redisText) | \(ratio) | \(target) |
                    | \(name) (\(valueBytes) B), tote-loadgen (\(callers) connections), default server (shared event loops) | \(peerText(toteC)) | same | \(defaultRatio) | (reference) |
                    | \(name) (\(valueBytes) B), Swift client in-process (\(callers) callers / \(connections) connections) | \(swiftText) | same | \(swiftRatio) | (reference) |
                    """
            } else {
                let (ratio, target) = verdict(tote.perSecond)
                text = "| \(name) (\(valueBytes) B), Swift client in-process (no tote-loadgen) | \(swiftText) | \(redisText) | \(ratio) | \(target) |"
            }
            return text
        }
    }

    static func run(options: ReadSideBench.Options, readSide: ReadSide, connections: [ClientConnection], orderIDs: [String]) async throws -> [Result] {
        // Order views: the stored bytes are the response.
        let viewSizes = try readSide.directory.read { reader in
            try orderIDs.prefix(2_000).map { id in try reader.get("orders.view", Array(id.utf8))?.count ?? 0 }
        }
        guard !viewSizes.contains(0) else { throw BenchError("an order has no view after catch-up") }
        let viewBytes = viewSizes.reduce(0, +) / viewSizes.count
        let loadgen = try await LoadgenServer.start(readSide: readSide, scheduling: .normal)
        let batch: LoadgenServer
        do {
            batch = try await LoadgenServer.start(readSide: readSide, scheduling: .batch)
        } catch {
            await loadgen.stop()
            throw error
        }
        do {
            let results = try await measure(options: options, readSide: readSide, connections: connections, ids: orderIDs,
                                            viewBytes: viewBytes, loadgen: loadgen, batch: batch)
            await loadgen.stop()
            await batch.stop()
            return results
        } catch {
            await loadgen.stop()
            await batch.stop()
            throw error
        }
    }

    /// Both figures: each with the Swift client, tote-loadgen against the default server,
    /// redis-benchmark, then tote-loadgen against the batch-scheduled server.
    static func measure(options: ReadSideBench.Options, readSide: ReadSide, connections: [ClientConnection], ids: [String],
                        viewBytes: Int, loadgen: LoadgenServer, batch: LoadgenServer) async throws -> [Result] {
        let folder = FileManager.default.temporaryDirectory
        let idsFile = folder.appendingPathComponent("readside-order-ids-\(getpid()).txt")
        try (ids.joined(separator: "\n") + "\n").write(to: idsFile, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: idsFile) }
        // Autocomplete's keys: typed prefixes of brands, product nouns and categories.
        let prefixes = Self.prefixes(seed: options.seed)
        let prefixesFile = folder.appendingPathComponent("readside-prefixes-\(getpid()).txt")
        try (prefixes.joined(separator: "\n") + "\n").write(to: prefixesFile, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: prefixesFile) }

        let views = try await Load.run(connections: connections, callers: options.callers, seconds: options.seconds) { connection, rng in
            var request = Tote_V1_GetOrderViewRequest()
            request.orderID = ids[Int(rng.next() % UInt64(ids.count))]
            let view = try await connection.unary(QueryAPI.getOrderView, request)
            guard view.orderID == request.orderID else { throw BenchError("GetOrderView answered \(view.orderID) for \(request.orderID)") }
        }
        print("order views: Tote (Swift client) \(formatFixed(views.perSecond, 0)) QPS, p50 \(ms(views.latency, 50)) ms, p99 \(ms(views.latency, 99)) ms (\(viewBytes) B views)")
        let viewsC = try await loadgen.run(method: "order-view", keysFile: idsFile.path, clients: options.callers, seconds: options.seconds)
        if let r = viewsC { print("order views: Tote (tote-loadgen, default server) \(formatFixed(r.perSecond, 0)) QPS, p50 \(formatFixed(r.p50, 3)) ms, p99 \(formatFixed(r.p99, 3)) ms") }
        await LoadgenServer.holdForProfiling([loadgen, batch], keysFile: idsFile.path, prefixesFile: prefixesFile.path)
        var viewsRedis: PeerResult?
        if let port = options.redisPort {
            viewsRedis = try await Redis.get(port: port, valueBytes: viewBytes, keys: ids.count, clients: options.callers, seconds: options.seconds, tool: options.redisBenchmark)
        }
        if let r = viewsRedis { print("order views: redis GET \(formatFixed(r.perSecond, 0)) QPS, p50 \(formatFixed(r.p50, 3)) ms, p99 \(formatFixed(r.p99, 3)) ms (-d \(viewBytes))") }
        let viewsBatch = try await batch.run(method: "order-view", keysFile: idsFile.path, clients: options.callers, seconds: options.seconds)
        if let r = viewsBatch { print("order views: Tote (tote-loadgen, batch-scheduled server) \(formatFixed(r.perSecond, 0)) QPS, p50 \(formatFixed(r.p50, 3)) ms, p99 \(formatFixed(r.p99, 3)) ms") }

        let suggestionSizes = try readSide.directory.read { reader in
            try prefixes.map { prefix in
                var request = Tote_V1_AutocompleteRequest()
                request.prefix = prefix
                let bytes: [UInt8] = try Autocomplete.suggest(reader, request: request).serializedBytes()
                return bytes.count
            }
        }
        let suggestionBytes = suggestionSizes.reduce(0, +) / suggestionSizes.count
        let suggestions = try await Load.run(connections: connections, callers: options.callers, seconds: options.seconds) { connection, rng in
            var request = Tote_V1_AutocompleteRequest()
            request.prefix = prefixes[Int(rng.next() % UInt64(prefixes.count))]
            let response = try await connection.unary(QueryAPI.autocomplete, request)
            guard !response.suggestions.isEmpty else { throw BenchError("no suggestion for \(request.prefix)") }
        }
        print("autocomplete: Tote (Swift client) \(formatFixed(suggestions.perSecond, 0)) QPS, p50 \(ms(suggestions.latency, 50)) ms, p99 \(ms(suggestions.latency, 99)) ms (\(prefixes.count) prefixes, responses \(suggestionBytes) B on average)")
        let suggestionsC = try await loadgen.run(method: "autocomplete", keysFile: prefixesFile.path, clients: options.callers, seconds: options.seconds)
        if let r = suggestionsC { print("autocomplete: Tote (tote-loadgen, default server) \(formatFixed(r.perSecond, 0)) QPS, p50 \(formatFixed(r.p50, 3)) ms, p99 \(formatFixed(r.p99, 3)) ms") }
        var suggestionsRedis: PeerResult?
        if let port = options.redisPort {
            suggestionsRedis = try await Redis.get(port: port, valueBytes: suggestionBytes, keys: prefixes.count, clients: options.callers, seconds: options.seconds, tool: options.redisBenchmark)
        }
        if let r = suggestionsRedis { print("autocomplete: redis GET \(formatFixed(r.perSecond, 0)) QPS, p50 \(formatFixed(r.p50, 3)) ms, p99 \(formatFixed(r.p99, 3)) ms (-d \(suggestionBytes))") }
        let suggestionsBatch = try await batch.run(method: "autocomplete", keysFile: prefixesFile.path, clients: options.callers, seconds: options.seconds)
        if let r = suggestionsBatch { print("autocomplete: Tote (tote-loadgen, batch-scheduled server) \(formatFixed(r.perSecond, 0)) QPS, p50 \(formatFixed(r.p50, 3)) ms, p99 \(formatFixed(r.p99, 3)) ms") }

        return [
            Result(name: "GetOrderView, \(options.callers) callers", tote: views, toteC: viewsC, toteBatch: viewsBatch, redis: viewsRedis, valueBytes: viewBytes,
                   callers: options.callers, connections: connections.count),
            Result(name: "Autocomplete, \(options.callers) callers", tote: suggestions, toteC: suggestionsC, toteBatch: suggestionsBatch, redis: suggestionsRedis,
                   valueBytes: suggestionBytes, callers: options.callers, connections: connections.count),
        ]
    }

    /// Times each benchmark prefix's `Autocomplete.suggestEncoded` in process (thread CPU, 200
    /// rounds over all prefixes in turn) and prints the overall p50/p99 and the costliest
    /// prefixes: which answers are a stored slice and which fill from typo neighbours.
    static func timeAutocompleteInProcess(_ store: LMDBReadModelStore, seed: UInt64, label: String) throws {
        let requests = prefixes(seed: seed).map { prefix in
            var request = Tote_V1_AutocompleteRequest()
            request.prefix = prefix
            return request
        }
        var all = LatencyHistogram()
        var perPrefix = [UInt64](repeating: 0, count: requests.count)
        let rounds = 200
        for _ in 0..<rounds {
            for (i, request) in requests.enumerated() {
                let start = Facets.threadCPUNanoseconds()
                _ = try store.read { try Autocomplete.suggestEncoded($0, request: request) }
                let spent = Facets.threadCPUNanoseconds() - start
                all.record(spent)
                perPrefix[i] += spent
            }
        }
        let mean = Double(perPrefix.reduce(0, +)) / Double(rounds * requests.count) / 1e3
        print("apply-only, \(label): autocomplete in process, thread CPU mean \(formatFixed(mean, 2)) µs, p50 \(formatFixed(Double(all.value(atPercentile: 50)) / 1e3, 2)) / p99 \(formatFixed(Double(all.value(atPercentile: 99)) / 1e3, 2)) µs over \(all.count) calls")
        let costliest = perPrefix.indices.sorted { perPrefix[$0] > perPrefix[$1] }.prefix(12)
        print("apply-only, \(label): costliest prefixes (mean µs): " + costliest.map { "\(requests[$0].prefix) \(formatFixed(Double(perPrefix[$0]) / Double(rounds) / 1e3, 1))" }.joined(separator: ", "))
    }

    /// What shoppers type: 2–5 letters of brand names, product nouns and category names.
    static func prefixes(seed: UInt64) -> [String] {
        let generator = CatalogGenerator(seed: seed)
        var words = generator.brands().prefix(60).map { $0.lowercased() }
        words += ["sneaker", "jacket", "laptop", "hoodie", "t-shirt", "monitor", "lamp", "sofa", "boot", "dress", "camera", "puzzle",
                  "shampoo", "grill", "racket", "helmet", "table", "chair", "headphones", "cotton", "leather", "classic", "urban", "nordic"]
        words += generator.categories().filter { $0.parentID.isEmpty }.map { $0.name.lowercased() }
        var out: [String] = []
        for word in words {
            for length in [2, 3, 5] where word.count >= length { out.append(String(word.prefix(length))) }
        }
        return Array(Set(out)).sorted()
    }
}

/// The outcome of a closed-loop load: calls per second and each call's latency.
struct LoadResult: Sendable {
    var perSecond: Double
    var latency: LatencyHistogram
}

enum Load {
    /// `callers` callers spread over `connections`, each calling `call` back to back: one second
    /// of warm-up, then `seconds` measured.
    static func run(connections: [ClientConnection], callers: Int, seconds: Double, _ call: @escaping @Sendable (ClientConnection, inout SplitMix64) async throws -> Void) async throws -> LoadResult {
        let phase = PhaseFlag()
        let outcome = await withTaskGroup(of: (LatencyHistogram, String?).self) { group in
            for index in 0..<callers {
                let connection = connections[index % connections.count]
                group.addTask {
                    var rng = SplitMix64(seed: UInt64(index) &* 0x9E37_79B9 &+ 1)
                    var latency = LatencyHistogram()
                    while phase.current != PhaseFlag.stopping {
                        let start = monotonicNanoseconds()
                        do {
                            try await call(connection, &rng)
                        } catch {
                            return (latency, "\(error)")
                        }
                        if phase.current == PhaseFlag.measuring { latency.record(monotonicNanoseconds() &- start) }
                    }
                    return (latency, nil)
                }
            }
            try? await Task.sleep(for: .seconds(1))
            phase.set(PhaseFlag.measuring)
            let start = monotonicNanoseconds()
            try? await Task.sleep(for: .seconds(seconds))
            phase.set(PhaseFlag.stopping)
            let elapsed = monotonicNanoseconds() - start
            var latency = LatencyHistogram()
            var failures: [String] = []
            for await (histogram, failure) in group {
                latency.merge(histogram)
                if let failure { failures.append(failure) }
            }
            return (latency, failures, elapsed)
        }
        guard outcome.1.isEmpty else { throw BenchError("\(outcome.1.count) caller(s) failed; first: \(outcome.1[0])") }
        return LoadResult(perSecond: Double(outcome.0.count) / (Double(outcome.2) / 1e9), latency: outcome.0)
    }
}

/// A peer load generator's figures for one run (redis-benchmark or tote-loadgen): calls per
/// second and latency percentiles in milliseconds.
struct PeerResult: Sendable {
    var perSecond: Double
    var p50: Double
    var p99: Double
}

/// The query service on a port of its own for tote-loadgen, with its own API key, plus the way to
/// run the tool. Same `QueryService` over the same LMDB environment as the Swift-client server;
/// one of the default configuration and one configured for a read node (batch scheduling).
final class LoadgenServer: Sendable {
    let server: RPCServer
    let port: Int
    let key: String
    let tool: String?

    private init(server: RPCServer, port: Int, key: String, tool: String?) {
        self.server = server
        self.port = port
        self.key = key
        self.tool = tool
    }

    static func start(readSide: ReadSide, scheduling: RPCServer.EventLoopScheduling) async throws -> LoadgenServer {
        var router = RPCRouter()
        readSide.queryService.register(into: &router)
        var logger = Logger(label: "readside-bench-loadgen")
        logger.logLevel = .critical
        let key = "bench-loadgen-storefront-key-01"
        // The event-loop threads of this server: `TOTE_POINTREADS_EVENT_LOOPS`, else the shared
        // group, as `tote query` by default (batch scheduling: a group of its own, one thread
        // per core, as `tote query --event-loop-scheduling batch`).
        var configuration = RPCServer.Configuration(host: "127.0.0.1", port: 0, drainTimeout: .seconds(5), eventLoopScheduling: scheduling)
        if let text = ProcessInfo.processInfo.environment["TOTE_POINTREADS_EVENT_LOOPS"], let threads = Int(text), threads > 0 {
            configuration.eventLoopThreads = threads
        }
        let server = RPCServer(configuration: configuration, router: router, keyring: APIKeyring([key: .storefront]), logger: logger)
        let port = try await server.start().port!
        let threads = configuration.eventLoopThreads.map(String.init) ?? (scheduling == .batch ? "its own (one per core)" : "shared")
        print("point reads: tote-loadgen's \(scheduling) server on port \(port) with \(threads) event-loop thread(s)")
        let candidate = ProcessInfo.processInfo.environment["TOTE_LOADGEN"] ?? "tools/loadgen/build/tote-loadgen"
        let tool = FileManager.default.isExecutableFile(atPath: candidate) ? candidate : nil
        if tool == nil { print("tote-loadgen not found at \(candidate) (make -C tools/loadgen): measuring with the Swift client only") }
        return LoadgenServer(server: server, port: port, key: key, tool: tool)
    }

    /// Runs `tote-loadgen -t method` with `clients` connections (one call outstanding each, like
    /// redis-benchmark's clients), 1 s of warm-up then `seconds`; nil without the tool. Throws if
    /// any call failed or answered wrongly (the tool exits non-zero).
    func run(method: String, keysFile: String, clients: Int, seconds: Double) async throws -> PeerResult? {
        guard let tool else { return nil }
        let output = try await runOffPool(tool, ["-h", "127.0.0.1", "-p", "\(port)", "-k", key, "-t", method, "-f", keysFile,
                                                 "-c", "\(clients)", "-w", "1", "-d", "\(seconds)", "--csv", "-q"])
        let label = ["order-view": "GetOrderView", "autocomplete": "Autocomplete", "search": "SearchCatalog"][method] ?? method
        return try Redis.parse(output, test: label)
    }

    func stop() async {
        await server.shutdownGracefully()
    }

    /// With `TOTE_POINTREADS_HOLD_SECONDS=N`, keeps these servers up N more seconds after the
    /// order-view figures, printing how to reach them, so that `perf record -p`, `strace -c -p`
    /// and repeated `tote-loadgen` runs can look at the same server and data. Off by default.
    static func holdForProfiling(_ servers: [LoadgenServer], keysFile: String, prefixesFile: String) async {
        guard let text = ProcessInfo.processInfo.environment["TOTE_POINTREADS_HOLD_SECONDS"], let seconds = Double(text), seconds > 0 else { return }
        let copy = "/tmp/readside-order-ids-held.txt"
        let prefixesCopy = "/tmp/readside-prefixes-held.txt"
        for (from, to) in [(keysFile, copy), (prefixesFile, prefixesCopy)] {
            try? FileManager.default.removeItem(atPath: to)
            try? FileManager.default.copyItem(atPath: from, toPath: to)
        }
        for server in servers {
            print("holding for \(seconds) s: pid \(getpid()), \(server.server.configuration.eventLoopScheduling) server: tote-loadgen -p \(server.port) -k \(server.key) -t order-view -f \(copy) (or -t autocomplete -f \(prefixesCopy))")
        }
        try? await Task.sleep(for: .seconds(seconds))
    }
}

enum Redis {
    /// Fills `keys` keys with `valueBytes`-byte values, then runs `redis-benchmark -t get` with
    /// `clients` connections over the same key space for about `seconds`.
    static func get(port: Int, valueBytes: Int, keys: Int, clients: Int, seconds: Double, tool: String) async throws -> PeerResult {
        let common = ["-h", "127.0.0.1", "-p", "\(port)", "-c", "\(clients)", "-r", "\(keys)", "-d", "\(valueBytes)"]
        // About 10 writes per key: every key written (1 - e^-10 of them at least).
        _ = try await runOffPool(tool, common + ["-t", "set", "-n", "\(max(10 * keys, 100_000))", "-q"])
        // First a short run to size the measured one.
        let probe = try parse(try await runOffPool(tool, common + ["-t", "get", "-n", "100000", "--csv"]), test: "GET")
        let requests = max(100_000, Int(probe.perSecond * seconds))
        return try parse(try await runOffPool(tool, common + ["-t", "get", "-n", "\(requests)", "--csv"]), test: "GET")
    }

    /// Reads redis-benchmark's CSV (which tote-loadgen's `--csv` imitates) for the line of `test`.
    static func parse(_ csv: String, test: String) throws -> PeerResult {
        // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
        for line in csv.split(separator: "\n") where line.hasPrefix("\"\(test)\"") {
            let fields = line.split(separator: ",").map { Double($0.trimmingCharacters(in: CharacterSet(charactersIn: "\""))) }
            guard fields.count >= 7, let rps = fields[1], let p50 = fields[4], let p99 = fields[6] else { break }
            return PeerResult(perSecond: rps, p50: p50, p99: p99)
        }
        throw BenchError("unexpected \(test) CSV output: \(csv.prefix(500))")
    }
}

/// Runs a tool to completion and returns its standard output; throws if it exits non-zero. The
/// blocking wait happens on a Dispatch thread, never on the cooperative pool, which the query
/// service's handlers need while a load generator runs.
func runOffPool(_ tool: String, _ arguments: [String]) async throws -> String {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<String, any Error>) in
        DispatchQueue.global().async {
            do {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                process.arguments = [tool] + arguments
                let pipe = Pipe()
                process.standardOutput = pipe
                process.standardError = FileHandle.standardError
                try process.run()
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                guard process.terminationStatus == 0 else {
                    throw BenchError("\(tool) \(arguments.joined(separator: " ")) exited with \(process.terminationStatus)")
                }
                continuation.resume(returning: String(decoding: data, as: UTF8.self))
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }
}
