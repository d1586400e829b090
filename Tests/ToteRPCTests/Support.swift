import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing
import ToteTestSupport
import ToteAPI
import ToteProto
import ToteServices
@testable import ToteRPC
@testable import ToteWire

enum Keys {
    static let storefront = "test-storefront-key-0001"
    static let `operator` = "test-operator-key-00001"
    static let controller = "test-controller-key-0001"
    static let keyring = APIKeyring([storefront: .storefront, `operator`: .operator, controller: .controller])
}

/// Records what test handlers observed, for assertions about server-side behaviour.
final class Probe: Sendable {
    private let state = Mutex<(started: Int, cancelled: Int, finished: Int)>((0, 0, 0))
    func started() { state.withLock { $0.started += 1 } }
    func cancelled() { state.withLock { $0.cancelled += 1 } }
    func finished() { state.withLock { $0.finished += 1 } }
    var counts: (started: Int, cancelled: Int, finished: Int) { state.withLock { $0 } }
}

/// An operator-only service used to test role checks, and a handler that observes cancellation.
struct TestOnlyService: RPCService {
    static let descriptor = ServiceDescriptor(name: "tote.test.OperatorOnly", roles: [.operator])
    static let ping = MethodDescriptor<Tote_V1_EchoRequest, Tote_V1_EchoResponse>(service: descriptor, name: "Ping", kind: .unary)
    static let slow = MethodDescriptor<Tote_V1_EchoRequest, Tote_V1_EchoResponse>(
        service: ServiceDescriptor(name: "tote.test.Slow", roles: Set(Role.allCases)), name: "Wait", kind: .unary)
    static let hold = MethodDescriptor<Tote_V1_EchoRequest, Tote_V1_EchoResponse>(
        service: ServiceDescriptor(name: "tote.test.Slow", roles: Set(Role.allCases)), name: "Hold", kind: .unary)
    /// On a service every role may call, a method only operators may call.
    static let audit = MethodDescriptor<Tote_V1_EchoRequest, Tote_V1_EchoResponse>(
        service: ServiceDescriptor(name: "tote.test.Slow", roles: Set(Role.allCases)), name: "Audit", kind: .unary, roles: [.operator])
    /// Client streaming: reads one message, then stops consuming.
    static let stall = MethodDescriptor<Tote_V1_EchoRequest, Tote_V1_CollectResponse>(
        service: ServiceDescriptor(name: "tote.test.Slow", roles: Set(Role.allCases)), name: "Stall", kind: .clientStreaming)
    static let crash = MethodDescriptor<Tote_V1_EchoRequest, Tote_V1_EchoResponse>(
        service: ServiceDescriptor(name: "tote.test.Crash", roles: Set(Role.allCases)), name: "Throw", kind: .unary)
    let probe: Probe

    struct SecretError: Error { let password = "hunter2" }

    func register(into router: inout RPCRouter) {
        router.register(Self.ping, unary: { request, context in
            var response = Tote_V1_EchoResponse()
            response.payload = Data("\(context.role)".utf8)
            return response
        })
        router.register(Self.slow, unary: { [probe] request, _ in
            probe.started()
            do {
                try await Task.sleep(for: .seconds(30))
            } catch {
                probe.cancelled()
                throw error
            }
            probe.finished()
            return Tote_V1_EchoResponse()
        })
        router.register(Self.hold, unary: { [probe] request, _ in
            probe.started()
            try await Task.sleep(for: .microseconds(Int64(request.delayMicros)))
            probe.finished()
            var response = Tote_V1_EchoResponse()
            response.payload = request.payload
            return response
        })
        router.register(Self.crash, unary: { _, _ in throw SecretError() })
        router.register(Self.stall, clientStreaming: { requests, _ in
            var iterator = requests.makeAsyncIterator()
            _ = try await iterator.next()
            try await Task.sleep(for: .seconds(30))
            return Tote_V1_CollectResponse()
        })
        router.register(Self.audit, unary: { _, context in
            var response = Tote_V1_EchoResponse()
            response.payload = Data(context.correlationID.utf8)
            return response
        })
    }
}

/// A real server on an ephemeral loopback port with Health, Diagnostics and the test services.
struct TestServer {
    let server: RPCServer
    let port: Int
    let probe: Probe

    static func start(_ configure: (inout RPCServer.Configuration) -> Void = { _ in }) async throws -> TestServer {
        var configuration = RPCServer.Configuration(host: "127.0.0.1", port: 0, drainTimeout: .seconds(5))
        configure(&configuration)
        let probe = Probe()
        var router = RPCRouter()
        HealthService(serverVersion: "tote test", services: ["tote.v1.Health", "tote.v1.Diagnostics"]).register(into: &router)
        DiagnosticsService().register(into: &router)
        TestOnlyService(probe: probe).register(into: &router)
        var logger = Logger(label: "test.server")
        logger.logLevel = .critical
        let server = RPCServer(configuration: configuration, router: router, keyring: Keys.keyring, logger: logger)
        let address = try await server.start()
        return TestServer(server: server, port: address.port!, probe: probe)
    }

    func connect(apiKey: String = Keys.storefront, settings: ConnectionSettings = ConnectionSettings()) async throws -> ClientConnection {
        try await ClientConnection.connect(host: "127.0.0.1", port: port, configuration: .init(apiKey: apiKey, settings: settings))
    }

    func stop() async { await server.shutdownGracefully() }
}

func echoRequest(_ text: String, delayMicros: UInt32 = 0, failWith: Int32? = nil) -> Tote_V1_EchoRequest {
    var request = Tote_V1_EchoRequest()
    request.payload = Data(text.utf8)
    request.delayMicros = delayMicros
    if let failWith { request.failWith.code = failWith }
    return request
}

/// Runs `body` expecting it to throw an RPCError, and returns it.
func expectRPCError(_ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async -> RPCError? {
    do {
        try await body()
        Issue.record("expected an RPCError, the call succeeded", sourceLocation: sourceLocation)
        return nil
    } catch let error as RPCError {
        return error
    } catch {
        Issue.record("expected an RPCError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// A raw TCP client that sends arbitrary bytes and collects the frames the server answers with,
/// for testing how the server handles malformed input.
final class RawConnection: Sendable {
    final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let received = Mutex(ByteBuffer())
        let closed = Mutex(false)
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            received.withLock { _ = $0.writeBuffer(&bytes) }
        }
        func channelInactive(context: ChannelHandlerContext) { closed.withLock { $0 = true } }
    }

    let channel: any Channel
    let collector: Collector

    init(port: Int) async throws {
        let collector = Collector()
        self.collector = collector
        channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            }
            .connect(host: "127.0.0.1", port: port).get()
    }

    func send(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes)).get()
    }

    func send(_ frames: [Frame]) async throws {
        var buffer = ByteBuffer()
        for frame in frames { FrameEncoder.write(frame, into: &buffer) }
        try await channel.writeAndFlush(buffer).get()
    }

    /// Preface plus client SETTINGS.
    func handshake() async throws {
        try await channel.writeAndFlush(ClientConnectionStateMachine().handshakeBytes()).get()
    }

    /// The frames received so far (decoded from the raw bytes).
    func frames() -> [Frame] {
        var buffer = collector.received.withLock { $0 }
        var decoder = FrameDecoder(maxFrameSize: 1 << 24)
        var frames: [Frame] = []
        while let frame = try? decoder.next(from: &buffer) { frames.append(frame) }
        return frames
    }

    var isClosed: Bool { collector.closed.withLock { $0 } }

    /// Waits until `condition` holds on the received frames (or the connection state), up to `timeout`.
    func wait(for timeout: Duration = .seconds(5), _ condition: ([Frame], Bool) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition(frames(), isClosed) { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return condition(frames(), isClosed)
    }

    /// The GOAWAY the server sent, once the connection is closed.
    func goAwayAndClose(timeout: Duration = .seconds(5)) async -> GoAway? {
        _ = await wait(for: timeout) { frames, closed in closed && frames.contains { $0.type == .goAway } }
        guard isClosed, let frame = frames().last(where: { $0.type == .goAway }) else { return nil }
        return FrameEncoder.parseGoAway(frame.payload)
    }

    func close() { channel.close(promise: nil) }

    static func headersFrame(_ stream: StreamID, method: String, key: String = Keys.storefront, endStream: Bool = false) -> Frame {
        var headers = Tote_V1_CallHeaders()
        headers.method = method
        headers.authToken = key
        return Frame(type: .headers, flags: endStream ? .endStream : [], streamID: stream, payload: try! headers.serializedBuffer())
    }
}

/// Polls `condition` every 5 ms until it holds or `timeout` passes; returns whether it held.
func eventually(_ timeout: Duration = .seconds(10), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return condition()
}
