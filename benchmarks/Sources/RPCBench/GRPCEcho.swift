import GRPCCore
import GRPCNIOTransportHTTP2Posix
import GRPCProtobuf

/// The same Echo method for grpc-swift-2, registered by hand on grpc-swift-2's router.
///
/// Equivalent to what `protoc-gen-grpc-swift-2` generates for the `Echo` rpc of
/// `service Diagnostics` in the root's Protos/tote/v1/diagnostics.proto: a streaming handler that
/// collects the single request, calls the unary implementation and wraps its single response.
/// Messages are (de)serialized by grpc-swift-protobuf's `ProtobufSerializer` and
/// `ProtobufDeserializer`, i.e. by the same swift-protobuf code that Tote uses.
struct GRPCEchoService: RegistrableRPCService {
    /// tote.v1.Diagnostics/Echo: the same method path as Tote's.
    static let method = MethodDescriptor(fullyQualifiedService: "tote.v1.Diagnostics", method: "Echo")

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(
            forMethod: Self.method,
            deserializer: ProtobufDeserializer<EchoRequest>(),
            serializer: ProtobufSerializer<EchoResponse>()
        ) { streamingRequest, _ in
            let request = try await ServerRequest(stream: streamingRequest)
            return StreamingServerResponse(single: ServerResponse(message: echoResponse(to: request.message)))
        }
    }
}

/// grpc-swift-2's echo server: `GRPCServer` over the HTTP/2 NIOPosix transport, plaintext,
/// default transport configuration.
struct GRPCEchoServer: EchoServer {
    let server: GRPCServer<HTTP2ServerTransport.Posix>
    let serving: Task<Void, any Error>
    let port: Int

    static func start() async throws -> GRPCEchoServer {
        let server = GRPCServer(
            transport: .http2NIOPosix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext),
            services: [GRPCEchoService()]
        )
        let serving = Task { try await server.serve() }
        let address = try await server.transport.listeningAddress
        guard let port = address.ipv4?.port else {
            server.beginGracefulShutdown()
            throw BenchError("gRPC server bound to \(address), which is not IPv4")
        }
        return GRPCEchoServer(server: server, serving: serving, port: port)
    }

    func shutdown() async {
        server.beginGracefulShutdown()
        _ = try? await serving.value
    }
}

/// One `GRPCClient` over the HTTP/2 NIOPosix transport. With the default service config
/// (pick-first) a client keeps exactly one HTTP/2 connection, so N clients are N connections.
/// The connection opens lazily, on the first call (the driver makes one before warming up).
struct GRPCEchoConnection: EchoConnection {
    let client: GRPCClient<HTTP2ClientTransport.Posix>
    let running: Task<Void, any Error>

    static func connect(port: Int) async throws -> GRPCEchoConnection {
        let client = GRPCClient(
            transport: try .http2NIOPosix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)
        )
        let running = Task { try await client.runConnections() }
        return GRPCEchoConnection(client: client, running: running)
    }

    /// The call the generated client stub makes for a unary method.
    @inline(__always)
    func echo(_ request: EchoRequest) async throws -> EchoResponse {
        try await client.unary(
            request: ClientRequest(message: request),
            descriptor: GRPCEchoService.method,
            serializer: ProtobufSerializer<EchoRequest>(),
            deserializer: ProtobufDeserializer<EchoResponse>(),
            options: .defaults
        ) { response in
            try response.message
        }
    }

    func close() async {
        client.beginGracefulShutdown()
        _ = try? await running.value
    }
}
