import ToteAPI

// The benchmark's one message pair, shared by both peers: tote.v1.EchoRequest / EchoResponse from
// the root package's generated code. The aliases let the gRPC file use them without importing
// ToteAPI, whose RPC runtime has types named like GRPCCore's (RPCRouter, MethodDescriptor, ...).
typealias EchoRequest = Tote_V1_EchoRequest
typealias EchoResponse = Tote_V1_EchoResponse

/// The RPC stacks under comparison.
enum Peer: String, CaseIterable, Sendable, CustomStringConvertible {
    /// Tote's own protocol: ToteRPC's `RPCServer` and `ClientConnection`.
    case tote
    /// grpc-swift-2 over HTTP/2 (grpc-swift-nio-transport, NIOPosix, plaintext).
    case grpc

    var description: String { rawValue }

    /// Starts this peer's echo server on 127.0.0.1, on a free port.
    func startServer() async throws -> any EchoServer {
        switch self {
        case .tote: try await ToteEchoServer.start()
        case .grpc: try await GRPCEchoServer.start()
        }
    }
}

/// A running echo server of one peer.
protocol EchoServer: Sendable {
    /// The port it listens on, on 127.0.0.1.
    var port: Int { get }
    /// Stops accepting, lets open calls finish and returns when the server has stopped.
    func shutdown() async
}

/// One client connection of one peer. Calls on it may run concurrently (multiplexed).
protocol EchoConnection: Sendable {
    /// Opens one connection to the peer's server on 127.0.0.1:`port`.
    static func connect(port: Int) async throws -> Self
    /// The unary echo call: sends `request`, returns the server's response.
    func echo(_ request: EchoRequest) async throws -> EchoResponse
    /// Closes the connection once open calls have finished.
    func close() async
}

/// The echo handler's work, identical for both servers: the runtime has decoded the request;
/// build the response with the same payload, which the runtime then encodes.
@inline(__always)
func echoResponse(to request: EchoRequest) -> EchoResponse {
    var response = EchoResponse()
    response.payload = request.payload
    return response
}
