import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Postgres
import Testing
import ToteAPI
import ToteProto
import ToteRPC
import ToteTestSupport

/// A `tote serve` process with its metrics endpoint, started on free ports; its stdout is read
/// for the two addresses it prints.
private final class ServeProcess: Sendable {
    let process: Process
    let rpc: String
    let metrics: String

    init(database: String) async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Binaries.tote)
        process.arguments = ["serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--database", database, "--log-level", "warning"]
        process.environment = ProcessInfo.processInfo.environment.merging(["TOTE_API_KEYS": "operator:\(Keys.operator),storefront:\(Keys.storefront)"]) { $1 }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        // Both lines arrive within seconds of start.
        let lines = try await offCooperativeThreads { () -> [String] in
            var text = ""
            while !(text.contains("listening on ") && text.contains("metrics on ")) {
                let chunk = out.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                text += String(decoding: chunk, as: UTF8.self)
            }
            return text.split(separator: "\n").map(String.init)
        }
        guard let rpc = lines.first(where: { $0.hasPrefix("listening on ") })?.dropFirst("listening on ".count),
              let metrics = lines.first(where: { $0.hasPrefix("metrics on ") })?.dropFirst("metrics on ".count) else {
            process.terminate()
            throw CancellationError()
        }
        self.rpc = String(rpc)
        self.metrics = String(metrics).replacingOccurrences(of: "/metrics", with: "").replacingOccurrences(of: "http://", with: "")
    }

    /// SIGTERM, and the exit status once it has stopped.
    func stop() async -> Int32 {
        process.terminate()
        await process.exited()
        return process.terminationStatus
    }
}

/// `GET url`: the status and the body.
func httpGet(_ url: String) async throws -> (Int, String) {
    let (data, response) = try await URLSession.shared.data(from: URL(string: url)!)
    return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
}

/// The value of the sample `series` (name and labels exactly as printed) in a Prometheus page.
func sample(_ page: String, _ series: String) -> Double? {
    page.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
}

@Suite("tote serve's metrics endpoint: Prometheus text, liveness and readiness", .localCluster, .serialized)
struct MetricsEndpointTests {
    @Test("requests by method and code, latencies and appends show in /metrics; /health and /ready answer; SIGTERM stops it cleanly")
    func scrape() async throws {
        let cluster = try LocalCluster.cluster
        let database = try await cluster.createDatabase(prefix: "metrics")
        let serve = try await ServeProcess(database: cluster.connectionString(database: database))
        let parts = serve.rpc.split(separator: ":")
        let client = try await ClientConnection.connect(host: String(parts[0]), port: Int(parts[1])!, configuration: .init(apiKey: Keys.operator))

        // A command that appends, one refused as bad input, and a health check.
        var receive = Tote_V1_ReceiveStockRequest()
        receive.key = stockKey("MET-1")
        receive.quantity = 5
        receive.reference = "PO-1"
        _ = try await client.unary(InventoryAPI.receiveStock, receive, options: command())
        receive.quantity = -1
        _ = await rpcError { _ = try await client.unary(InventoryAPI.receiveStock, receive, options: command()) }
        _ = try await client.unary(Health.check, Tote_V1_HealthCheckRequest(), options: CallOptions(timeout: .seconds(5)))
        await client.close()

        let (status, page) = try await httpGet("http://\(serve.metrics)/metrics")
        #expect(status == 200)
        #expect((sample(page, #"tote_rpc_requests_total{method="tote.v1.Inventory/ReceiveStock",code="OK"}"#) ?? 0) >= 1, "\(page.prefix(2000))")
        #expect((sample(page, #"tote_rpc_requests_total{method="tote.v1.Inventory/ReceiveStock",code="INVALID_ARGUMENT"}"#) ?? 0) >= 1)
        #expect((sample(page, #"tote_rpc_requests_total{method="tote.v1.Health/Check",code="OK"}"#) ?? 0) >= 1)
        #expect((sample(page, #"tote_rpc_duration_seconds_count{method="tote.v1.Inventory/ReceiveStock"}"#) ?? 0) >= 2)
        #expect((sample(page, "tote_eventstore_appended_events_total") ?? 0) >= 1)
        #expect(page.contains("tote_eventstore_append_duration_seconds_bucket"))
        // The only bridge of every warehouse holds the lock; no station is connected.
        #expect(sample(page, #"tote_bridge_active{warehouse="all"}"#) == 1)

        #expect(try await httpGet("http://\(serve.metrics)/health").0 == 200)
        let (readyStatus, readyBody) = try await httpGet("http://\(serve.metrics)/ready")
        #expect(readyStatus == 200, "\(readyBody)")
        #expect(try await httpGet("http://\(serve.metrics)/nothing").0 == 404)

        #expect(await serve.stop() == 0)
    }
}
