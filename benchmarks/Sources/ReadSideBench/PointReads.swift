import BenchSupport
import Foundation
import ToteAPI
import ToteReadModels
import ToteRPC
import ToteServices

/// Order-view and autocomplete point reads over the wire at N callers, each against
/// `redis-benchmark -t get` with values of the same size in the same run.
enum PointReads {
    struct Result {
        var name: String
        var tote: LoadResult
        var redis: RedisResult?
        var valueBytes: Int

        var row: String {
            let toteText = "\(formatFixed(tote.perSecond, 0)) QPS, p50 \(ms(tote.latency, 50)) / p99 \(ms(tote.latency, 99)) ms"
            guard let redis else { return "| \(name) (\(valueBytes) B) | \(toteText) | (no redis) | — | ≥ 1.0× |" }
            let ratio = tote.perSecond / redis.perSecond
            return "| \(name) (\(valueBytes) B) | \(toteText) | redis GET \(formatFixed(redis.perSecond, 0)) QPS, p50 \(formatFixed(redis.p50, 3)) / p99 \(formatFixed(redis.p99, 3)) ms | \(formatFixed(ratio, 2))× | ≥ 1.0×: \(ratio >= 1 ? "met" : "missed") |"
        }
    }

    static func run(options: ReadSideBench.Options, readSide: ReadSide, connections: [ClientConnection], orderIDs: [String]) async throws -> [Result] {
        // Order views: the stored bytes are the response.
        let viewSizes = try readSide.directory.read { reader in
            try orderIDs.prefix(2_000).map { id in try reader.get("orders.view", Array(id.utf8))?.count ?? 0 }
        }
        guard !viewSizes.contains(0) else { throw BenchError("an order has no view after catch-up") }
        let viewBytes = viewSizes.reduce(0, +) / viewSizes.count
        let ids = orderIDs
        let views = try await Load.run(connections: connections, callers: options.callers, seconds: options.seconds) { connection, rng in
            var request = Tote_V1_GetOrderViewRequest()
            request.orderID = ids[Int(rng.next() % UInt64(ids.count))]
            let view = try await connection.unary(QueryAPI.getOrderView, request)
            guard view.orderID == request.orderID else { throw BenchError("GetOrderView answered \(view.orderID) for \(request.orderID)") }
        }
        print("order views: Tote \(formatFixed(views.perSecond, 0)) QPS, p50 \(ms(views.latency, 50)) ms, p99 \(ms(views.latency, 99)) ms (\(viewBytes) B views)")
        let viewsRedis = try options.redisPort.map { try Redis.get(port: $0, valueBytes: viewBytes, keys: ids.count, clients: options.callers, seconds: options.seconds, tool: options.redisBenchmark) }
        if let r = viewsRedis { print("order views: redis GET \(formatFixed(r.perSecond, 0)) QPS, p50 \(formatFixed(r.p50, 3)) ms, p99 \(formatFixed(r.p99, 3)) ms (-d \(viewBytes))") }

        // Autocomplete: typed prefixes of brands, product nouns and categories.
        let prefixes = Self.prefixes(seed: options.seed)
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
        print("autocomplete: Tote \(formatFixed(suggestions.perSecond, 0)) QPS, p50 \(ms(suggestions.latency, 50)) ms, p99 \(ms(suggestions.latency, 99)) ms (\(prefixes.count) prefixes, responses \(suggestionBytes) B on average)")
        let suggestionsRedis = try options.redisPort.map { try Redis.get(port: $0, valueBytes: suggestionBytes, keys: prefixes.count, clients: options.callers, seconds: options.seconds, tool: options.redisBenchmark) }
        if let r = suggestionsRedis { print("autocomplete: redis GET \(formatFixed(r.perSecond, 0)) QPS, p50 \(formatFixed(r.p50, 3)) ms, p99 \(formatFixed(r.p99, 3)) ms (-d \(suggestionBytes))") }

        return [
            Result(name: "GetOrderView, \(options.callers) callers", tote: views, redis: viewsRedis, valueBytes: viewBytes),
            Result(name: "Autocomplete, \(options.callers) callers", tote: suggestions, redis: suggestionsRedis, valueBytes: suggestionBytes),
        ]
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

/// redis-benchmark's figures for one run.
struct RedisResult {
    var perSecond: Double
    var p50: Double
    var p99: Double
}

enum Redis {
    /// Fills `keys` keys with `valueBytes`-byte values, then runs `redis-benchmark -t get` with
    /// `clients` connections over the same key space for about `seconds`.
    static func get(port: Int, valueBytes: Int, keys: Int, clients: Int, seconds: Double, tool: String) throws -> RedisResult {
        let common = ["-h", "127.0.0.1", "-p", "\(port)", "-c", "\(clients)", "-r", "\(keys)", "-d", "\(valueBytes)"]
        // About 10 writes per key: every key written (1 - e^-10 of them at least).
        _ = try runTool(tool, common + ["-t", "set", "-n", "\(max(10 * keys, 100_000))", "-q"])
        // First a short run to size the measured one.
        let probe = try parse(try runTool(tool, common + ["-t", "get", "-n", "100000", "--csv"]))
        let requests = max(100_000, Int(probe.perSecond * seconds))
        return try parse(try runTool(tool, common + ["-t", "get", "-n", "\(requests)", "--csv"]))
    }

    static func parse(_ csv: String) throws -> RedisResult {
        // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
        for line in csv.split(separator: "\n") where line.hasPrefix("\"GET\"") {
            let fields = line.split(separator: ",").map { Double($0.trimmingCharacters(in: CharacterSet(charactersIn: "\""))) }
            guard fields.count >= 7, let rps = fields[1], let p50 = fields[4], let p99 = fields[6] else { break }
            return RedisResult(perSecond: rps, p50: p50, p99: p99)
        }
        throw BenchError("unexpected redis-benchmark output: \(csv.prefix(500))")
    }

    static func runTool(_ tool: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [tool] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.standardError
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw BenchError("\(tool) \(arguments.joined(separator: " ")) exited with \(process.terminationStatus)") }
        return String(decoding: data, as: UTF8.self)
    }
}
