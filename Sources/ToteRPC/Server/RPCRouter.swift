import NIOCore
import SwiftProtobuf
import ToteWire

/// The methods a server serves, keyed by full name, each with its service's allowed roles.
///
/// Handlers are registered with the shared ``MethodDescriptor``s, so the server never switches
/// over method-name strings. Handlers are async and may throw; whatever they throw becomes a
/// status through ``RPCError/from(_:)``.
public struct RPCRouter: Sendable {
    /// A type-erased handler: raw bytes in and out, typed (de)coding wrapped inside.
    enum Handler: Sendable {
        case unary(@Sendable (ByteBuffer, ServerContext) async throws -> ByteBuffer)
        case serverStreaming(@Sendable (ByteBuffer, RawMessageSink, ServerContext) async throws -> Void)
        case clientStreaming(@Sendable (RawMessageSource, ServerContext) async throws -> ByteBuffer)
        case bidirectional(@Sendable (RawMessageSource, RawMessageSink, ServerContext) async throws -> Void)
    }

    /// A unary point read's synchronous attempt (see `register(_:encodedUnary:immediately:)`):
    /// the response with framing room, or nil when it must wait and the route's `.unary`
    /// handler answers instead.
    typealias ImmediateHandler = @Sendable (ByteBuffer, ServerContext) throws -> ByteBuffer?

    /// One method's handling. A class: a call holds its route for its whole life, and copying
    /// one reference per call is cheaper than copying these fields (a measurable share of a
    /// point read's time on the event loop).
    final class Route: Sendable {
        let service: ServiceDescriptor
        let kind: CallKind
        let roles: Set<Role>
        let handler: Handler
        /// A unary handler that starts on the event loop (see `register(_:inline:unary:)`).
        let inline: Bool
        /// Tried first, on the event loop with no task; `handler` runs only when it returns nil.
        let immediate: ImmediateHandler?
        /// This method's request metrics.
        let metrics: RPCMetrics.Method

        init(method: String, service: ServiceDescriptor, kind: CallKind, roles: Set<Role>, handler: Handler, inline: Bool, immediate: ImmediateHandler?) {
            self.service = service
            self.kind = kind
            self.roles = roles
            self.handler = handler
            self.inline = inline
            self.immediate = immediate
            self.metrics = RPCMetrics.Method(method)
        }
    }

    private(set) var routes: [String: Route] = [:]

    public init() {}

    /// Fully qualified names of the services with at least one method.
    public var serviceNames: Set<String> { Set(routes.values.map(\.service.name)) }

    func route(for method: String) -> Route? { routes[method] }

    private mutating func add<Req, Resp>(_ method: MethodDescriptor<Req, Resp>, _ handler: Handler, inline: Bool = false,
                                         immediate: ImmediateHandler? = nil) {
        precondition(routes[method.fullName] == nil, "method \(method.fullName) registered twice")
        routes[method.fullName] = Route(method: method.fullName, service: method.service, kind: method.kind, roles: method.roles, handler: handler,
                                        inline: inline, immediate: immediate)
    }

    /// Registers a unary method: one request, one response.
    ///
    /// - Parameter inline: start the handler on the connection's event loop (`Task.immediate`)
    ///   instead of the cooperative pool, so that one that never suspends (a read-model point
    ///   read) answers in the tick that read its request. Only for short, non-blocking handlers:
    ///   until its first suspension the handler holds the event loop and every connection on it.
    ///   Commands stay on the pool: under a flash sale's thousands of concurrent calls their
    ///   work held the shared event loops long enough for calls to miss their deadlines.
    public mutating func register<Req, Resp>(
        _ method: MethodDescriptor<Req, Resp>,
        inline: Bool = false,
        unary handler: @escaping @Sendable (Req, ServerContext) async throws -> Resp
    ) {
        precondition(method.kind == .unary, "\(method.fullName) is not unary")
        add(method, .unary { bytes, context in
            try await handler(decode(Req.self, bytes), context).serializedBuffer()
        }, inline: inline)
    }

    /// Registers a unary method whose handler answers with the response message already
    /// encoded (for example a read model's stored bytes), sent verbatim: nothing is decoded or
    /// re-encoded on the way. The bytes must be a valid `Resp`; clients decode them as such.
    /// By default such a handler is a point read and starts on the event loop (`inline`, see
    /// ``register(_:inline:unary:)``); pass `inline: false` for one that computes its answer
    /// (e.g. a facet query), which then runs on the cooperative pool.
    public mutating func register<Req, Resp>(
        _ method: MethodDescriptor<Req, Resp>,
        inline: Bool = true,
        encodedUnary handler: @escaping @Sendable (Req, ServerContext) async throws -> [UInt8]
    ) {
        precondition(method.kind == .unary, "\(method.fullName) is not unary")
        add(method, .unary { bytes, context in
            ProtobufByteBuffer.framable(copying: try await handler(decode(Req.self, bytes), context))
        }, inline: inline)
    }

    /// Registers a point read answered with stored response bytes (as
    /// ``register(_:encodedUnary:)``) that usually needs no waiting: `immediately` runs on the
    /// connection's event loop as soon as the request is in, with no task, no closure and no
    /// thread hop, and its bytes are written in the same tick. When it returns nil (it would
    /// have to wait, e.g. for a consistency token the read model has not reached), `handler`
    /// answers instead (decoding the request again), in a task started on the event loop as
    /// with `encodedUnary`.
    ///
    /// `immediately` must not block or take long: it holds the event loop and every connection
    /// on it. What either throws becomes the call's status as usual.
    public mutating func register<Req, Resp>(
        _ method: MethodDescriptor<Req, Resp>,
        encodedUnary handler: @escaping @Sendable (Req, ServerContext) async throws -> [UInt8],
        immediately: @escaping @Sendable (Req, ServerContext) throws -> [UInt8]?
    ) {
        precondition(method.kind == .unary, "\(method.fullName) is not unary")
        add(method, .unary { bytes, context in
            ProtobufByteBuffer.framable(copying: try await handler(decode(Req.self, bytes), context))
        }, inline: true, immediate: { bytes, context in
            try immediately(decode(Req.self, bytes), context).map(ProtobufByteBuffer.framable(copying:))
        })
    }

    /// Registers a server-streaming method: one request, a stream of responses.
    public mutating func register<Req, Resp>(
        _ method: MethodDescriptor<Req, Resp>,
        serverStreaming handler: @escaping @Sendable (Req, ResponseWriter<Resp>, ServerContext) async throws -> Void
    ) {
        precondition(method.kind == .serverStreaming, "\(method.fullName) is not server-streaming")
        add(method, .serverStreaming { bytes, sink, context in
            try await handler(decode(Req.self, bytes), ResponseWriter(sink: sink), context)
        })
    }

    /// Registers a client-streaming method: a stream of requests, one response.
    public mutating func register<Req, Resp>(
        _ method: MethodDescriptor<Req, Resp>,
        clientStreaming handler: @escaping @Sendable (RequestStream<Req>, ServerContext) async throws -> Resp
    ) {
        precondition(method.kind == .clientStreaming, "\(method.fullName) is not client-streaming")
        add(method, .clientStreaming { source, context in
            try await handler(RequestStream(source: source), context).serializedBuffer()
        })
    }

    /// Registers a bidirectional-streaming method.
    public mutating func register<Req, Resp>(
        _ method: MethodDescriptor<Req, Resp>,
        bidirectional handler: @escaping @Sendable (RequestStream<Req>, ResponseWriter<Resp>, ServerContext) async throws -> Void
    ) {
        precondition(method.kind == .bidirectionalStreaming, "\(method.fullName) is not bidirectional")
        add(method, .bidirectional { source, sink, context in
            try await handler(RequestStream(source: source), ResponseWriter(sink: sink), context)
        })
    }
}

/// Decodes a request, turning a bad payload into INVALID_ARGUMENT that names the message type.
@inline(__always)
private func decode<M: SwiftProtobuf.Message>(_ type: M.Type, _ bytes: ByteBuffer) throws -> M {
    do {
        return try M(buffer: bytes)
    } catch {
        throw RPCError(.invalidArgument, "request is not a valid \(M.protoMessageName): \(error)")
    }
}

/// Something that registers a service's methods on a router.
public protocol RPCService: Sendable {
    func register(into router: inout RPCRouter)
}
