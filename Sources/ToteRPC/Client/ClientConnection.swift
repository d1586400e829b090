import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Synchronization
import ToteProto
import SwiftProtobuf
import ToteWire

/// One connection to a Tote server, multiplexing any number of concurrent calls.
///
/// Typed calls take the shared ``MethodDescriptor``s. Calls beyond the server's
/// MAX_CONCURRENT_STREAMS wait for a free stream. Failures are ``RPCError``s: the server's status,
/// or UNAVAILABLE when the connection is lost, DEADLINE_EXCEEDED when the timeout passes, and
/// CANCELLED when the calling task is cancelled. For automatic reconnection use ``ToteClient``.
public final class ClientConnection: Sendable {
    /// How to connect: the default API key, the settings announced to the server, timeouts.
    public struct Configuration: Sendable {
        /// Default API key for calls that do not set ``CallOptions/apiKey``.
        public var apiKey: String
        public var settings: ConnectionSettings
        public var connectTimeout: TimeAmount
        public var keepaliveInterval: TimeAmount
        public var keepaliveTimeout: TimeAmount

        public init(
            apiKey: String,
            settings: ConnectionSettings = ConnectionSettings(),
            connectTimeout: TimeAmount = .seconds(5),
            keepaliveInterval: TimeAmount = .seconds(30),
            keepaliveTimeout: TimeAmount = .seconds(10)
        ) {
            self.apiKey = apiKey
            self.settings = settings
            self.connectTimeout = connectTimeout
            self.keepaliveInterval = keepaliveInterval
            self.keepaliveTimeout = keepaliveTimeout
        }
    }

    private let channel: any Channel
    private let handler: NIOLoopBound<ClientConnectionHandler>
    private let health: ConnectionHealth
    private let apiKey: String
    private let nextCallID = Atomic<UInt64>(1)

    private init(channel: any Channel, handler: NIOLoopBound<ClientConnectionHandler>, health: ConnectionHealth, apiKey: String) {
        self.channel = channel
        self.handler = handler
        self.health = health
        self.apiKey = apiKey
    }

    /// Connects and completes the handshake (preface, SETTINGS exchange).
    ///
    /// - Throws: ``RPCError`` UNAVAILABLE if the server cannot be reached or refuses the
    ///   connection (e.g. GOAWAY CONNECTION_LIMIT), naming the reason.
    public static func connect(
        host: String,
        port: Int,
        configuration: Configuration,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> ClientConnection {
        let health = ConnectionHealth()
        // The handler is installed before the socket connects, so that nothing the server sends
        // first (SETTINGS, or GOAWAY when it is full) can arrive before the handler is there.
        let installed = NIOLockedValueBox<(NIOLoopBound<ClientConnectionHandler>, EventLoopPromise<Void>)?>(nil)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(configuration.connectTimeout)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let ready = channel.eventLoop.makePromise(of: Void.self)
                        let handler = ClientConnectionHandler(
                            settings: configuration.settings,
                            keepaliveInterval: configuration.keepaliveInterval,
                            keepaliveTimeout: configuration.keepaliveTimeout,
                            readyPromise: ready,
                            health: health
                        )
                        try channel.pipeline.syncOperations.addHandler(handler)
                        installed.withLockedValue { $0 = (NIOLoopBound(handler, eventLoop: channel.eventLoop), ready) }
                    }
                }
                .connect(host: host, port: port)
                .get()
        } catch {
            throw RPCError(.unavailable, "cannot connect to \(host):\(port): \(error)")
        }
        guard let (loopBound, ready) = installed.withLockedValue({ $0 }) else {
            channel.close(promise: nil)
            throw RPCError(.internal, "connection handler was not installed")
        }
        let timeout = channel.eventLoop.scheduleTask(in: configuration.connectTimeout) {
            ready.fail(RPCError(.unavailable, "no SETTINGS from \(host):\(port) within the connect timeout"))
        }
        do {
            try await ready.futureResult.get()
            timeout.cancel()
        } catch {
            timeout.cancel()
            channel.close(promise: nil)
            throw error as? RPCError ?? RPCError(.unavailable, "handshake with \(host):\(port) failed: \(error)")
        }
        return ClientConnection(channel: channel, handler: loopBound, health: health, apiKey: configuration.apiKey)
    }

    /// Whether the connection still takes new calls (not closed, no GOAWAY received).
    public var isUsable: Bool { health.isUsable && channel.isActive }

    /// Completes when the connection has closed.
    public var closeFuture: EventLoopFuture<Void> { channel.closeFuture }

    /// Stops taking new calls, lets open ones finish, then closes.
    public func close() async {
        let handler = self.handler
        channel.eventLoop.execute { handler.value.closeGracefully() }
        try? await channel.closeFuture.get()
    }

    private func makeHandle() -> ClientCallHandle {
        ClientCallHandle(id: nextCallID.wrappingAdd(1, ordering: .relaxed).oldValue)
    }

    private func encodeHeaders(_ method: String, _ options: CallOptions) throws -> ByteBuffer {
        try options.headers(method: method, defaultAPIKey: apiKey).serializedBuffer()
    }

    // MARK: Unary

    /// Calls a unary method.
    public func unary<Req, Resp>(_ method: MethodDescriptor<Req, Resp>, _ request: Req, options: CallOptions = CallOptions()) async throws -> Resp {
        precondition(method.kind == .unary, "\(method.fullName) is not unary")
        let headers = try encodeHeaders(method.fullName, options)
        let payload = try request.serializedBuffer()
        let handle = makeHandle()
        let handler = self.handler
        let eventLoop = channel.eventLoop
        let bytes = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<ByteBuffer, any Error>) in
                eventLoop.execute {
                    handler.value.startUnary(handle, headers: headers, request: payload, timeoutMicros: options.timeoutMicros, continuation: continuation)
                }
            }
        } onCancel: {
            handle.markCancelled()
            eventLoop.execute { handler.value.cancel(handle, RPCError(.cancelled, "the call was cancelled")) }
        }
        return try decodeResponse(Resp.self, bytes)
    }

    // MARK: Streaming

    /// Calls a server-streaming method; `body` reads the responses. Returning from `body` before
    /// the stream ends cancels the call.
    public func serverStreaming<Req, Resp, Result: Sendable>(
        _ method: MethodDescriptor<Req, Resp>,
        _ request: Req,
        options: CallOptions = CallOptions(),
        _ body: (ResponseStream<Resp>) async throws -> Result
    ) async throws -> Result {
        precondition(method.kind == .serverStreaming, "\(method.fullName) is not server-streaming")
        let payload = try request.serializedBuffer()
        return try await streamingCall(method.fullName, options) { writer, responses in
            try await writer.sink.send(payload)
            writer.finish()
            return try await body(ResponseStream(source: responses))
        }
    }

    /// Calls a client-streaming method; `body` writes the requests.
    public func clientStreaming<Req, Resp>(
        _ method: MethodDescriptor<Req, Resp>,
        options: CallOptions = CallOptions(),
        _ body: (RequestWriter<Req>) async throws -> Void
    ) async throws -> Resp {
        precondition(method.kind == .clientStreaming, "\(method.fullName) is not client-streaming")
        return try await streamingCall(method.fullName, options) { writer, responses in
            try await body(RequestWriter(sink: writer.sink))
            writer.finish()
            var iterator = ResponseStream<Resp>(source: responses).makeAsyncIterator()
            guard let response = try await iterator.next() else {
                throw RPCError(.internal, "server ended a client-streaming call with OK but sent no response")
            }
            return response
        }
    }

    /// Calls a bidirectional-streaming method; `body` writes requests and reads responses
    /// concurrently as it likes. The sending side is half-closed when `body` returns.
    public func bidirectional<Req, Resp, Result: Sendable>(
        _ method: MethodDescriptor<Req, Resp>,
        options: CallOptions = CallOptions(),
        _ body: (RequestWriter<Req>, ResponseStream<Resp>) async throws -> Result
    ) async throws -> Result {
        precondition(method.kind == .bidirectionalStreaming, "\(method.fullName) is not bidirectional")
        return try await streamingCall(method.fullName, options) { writer, responses in
            try await body(RequestWriter(sink: writer.sink), ResponseStream(source: responses))
        }
    }

    /// The sending half of a streaming call, plus its half-close.
    struct StreamingWriter: Sendable {
        let sink: RawMessageSink
        let finish: @Sendable () -> Void
    }

    private func streamingCall<Result: Sendable>(
        _ method: String,
        _ options: CallOptions,
        _ body: (StreamingWriter, RawMessageSource) async throws -> Result
    ) async throws -> Result {
        let headers = try encodeHeaders(method, options)
        let handle = makeHandle()
        let handler = self.handler
        let eventLoop = channel.eventLoop
        let (stream, continuation) = AsyncThrowingStream<ByteBuffer, any Error>.makeStream()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (opened: CheckedContinuation<Void, any Error>) in
                eventLoop.execute {
                    handler.value.startStreaming(handle, headers: headers, timeoutMicros: options.timeoutMicros, responses: continuation, opened: opened)
                }
            }
            let writer = StreamingWriter(
                sink: RawMessageSink { buffer in
                    try await withCheckedThrowingContinuation { (sent: CheckedContinuation<Void, any Error>) in
                        eventLoop.execute { handler.value.send(handle, buffer, continuation: sent) }
                    }
                },
                finish: { eventLoop.execute { handler.value.halfClose(handle) } }
            )
            let source = RawMessageSource(messages: stream, consumed: { _ in eventLoop.execute { handler.value.consumed(handle) } })
            do {
                let result: Result
                do {
                    result = try await body(writer, source)
                } catch let error as RPCError where handle.failure != nil {
                    // A write failed because the server already ended the call: report its status.
                    throw handle.failure ?? error
                }
                // Anything the caller did not wait for is abandoned (no-op if the call already ended).
                eventLoop.execute { handler.value.cancel(handle, RPCError(.cancelled, "the caller stopped reading")) }
                return result
            } catch {
                eventLoop.execute { handler.value.cancel(handle, RPCError(.cancelled, "the caller failed: \(error)")) }
                throw error
            }
        } onCancel: {
            handle.markCancelled()
            eventLoop.execute { handler.value.cancel(handle, RPCError(.cancelled, "the call was cancelled")) }
        }
    }

    private func decodeResponse<M: SwiftProtobuf.Message>(_ type: M.Type, _ bytes: ByteBuffer) throws -> M {
        do {
            return try M(buffer: bytes)
        } catch {
            throw RPCError(.internal, "response is not a valid \(M.protoMessageName): \(error)")
        }
    }
}
