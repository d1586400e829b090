import Logging
import ToteAPI

/// Tote's echo server: an `RPCServer` with a router serving tote.v1.Diagnostics/Echo.
///
/// The handler is the same as `DiagnosticsService`'s Echo minus its test hooks (delay, fail_with),
/// which the benchmark never sets. Default server configuration; one API key of the storefront role.
struct ToteEchoServer: EchoServer {
    /// The API key the benchmark's Tote clients present.
    static let apiKey = "rpcbench-storefront-key"

    let server: RPCServer
    let port: Int

    static func start() async throws -> ToteEchoServer {
        var router = RPCRouter()
        router.register(Diagnostics.echo, unary: { request, _ in echoResponse(to: request) })
        var logger = Logger(label: "rpcbench.tote.server")
        logger.logLevel = .warning  // no per-call logging exists; this mutes the start/stop lines
        let server = RPCServer(
            configuration: RPCServer.Configuration(host: "127.0.0.1", port: 0),
            router: router,
            keyring: APIKeyring([apiKey: .storefront]),
            logger: logger
        )
        let address = try await server.start()
        guard let port = address.port else { throw BenchError("Tote server bound to \(address), which has no port") }
        return ToteEchoServer(server: server, port: port)
    }

    func shutdown() async {
        await server.shutdownGracefully()
    }
}

/// One Tote `ClientConnection`, calling Echo through the shared `Diagnostics.echo` descriptor.
struct ToteEchoConnection: EchoConnection {
    let connection: ClientConnection

    static func connect(port: Int) async throws -> ToteEchoConnection {
        let connection = try await ClientConnection.connect(
            host: "127.0.0.1",
            port: port,
            configuration: ClientConnection.Configuration(apiKey: ToteEchoServer.apiKey)
        )
        return ToteEchoConnection(connection: connection)
    }

    @inline(__always)
    func echo(_ request: EchoRequest) async throws -> EchoResponse {
        try await connection.unary(Diagnostics.echo, request)
    }

    func close() async {
        await connection.close()
    }
}
