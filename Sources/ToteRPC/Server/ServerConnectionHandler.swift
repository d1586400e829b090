import Logging
import NIOCore
import ToteProto
import ToteWire

/// Tells a server connection to start draining: GOAWAY, finish open calls, then close.
struct DrainConnectionEvent: Sendable {}

/// Serves one client connection. It feeds bytes to ``ServerConnectionStateMachine`` and performs
/// the actions it returns; each call runs its handler in its own task, whose results hop back to
/// this handler's event loop, except point reads registered with an `immediately` answer, which
/// answer right here when they need not wait. Everything here runs on that one event loop.
final class ServerConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Configuration: Sendable {
        var settings: ConnectionSettings
        var partialFrameTimeout: TimeAmount
        var keepaliveInterval: TimeAmount
        var keepaliveTimeout: TimeAmount
        /// Request bytes received but not yet consumed by handlers, across all calls of the
        /// connection. A message that would take the connection over it fails its call with
        /// RESOURCE_EXHAUSTED. (Pausing socket reads instead would deadlock a bidirectional call
        /// whose handler waits for the client's WINDOW_UPDATE behind the pause.)
        var maxBufferedInboundBytes: Int
    }

    /// One call in progress. Touched only on the event loop.
    final class Call {
        let route: RPCRouter.Route
        let serverContext: ServerContext
        var receivedRequest = false
        var pendingRequest: ByteBuffer?
        var task: Task<Void, Never>?
        var inbound: AsyncThrowingStream<ByteBuffer, any Error>.Continuation?
        var deadlineTimer: Scheduled<Void>?
        var waitingWriters: [(ByteBuffer, CheckedContinuation<Void, any Error>)] = []
        /// Request bytes delivered to the handler's stream and not yet consumed.
        var bufferedBytes = 0
        /// When the call opened (``RPCMetrics/now()``).
        let startedAt = RPCMetrics.now()

        init(route: RPCRouter.Route, serverContext: ServerContext) {
            self.route = route
            self.serverContext = serverContext
        }
    }

    private var state: ServerConnectionStateMachine
    private let io = FrameIO()
    private let router: RPCRouter
    private let keyring: APIKeyring
    private let configuration: Configuration
    private var logger: Logger
    private var context: ChannelHandlerContext?
    private var calls: [StreamID: Call] = [:]
    private var partialFrameTimer: Scheduled<Void>?
    private var keepaliveTask: RepeatedTask?
    private var keepalive: KeepaliveStateMachine
    private var remoteAddress = "unknown"
    private var closing = false
    /// Unconsumed request bytes across this connection's calls.
    private var bufferedInboundBytes = 0
    /// Between `channelRead` and `channelReadComplete`: writes made now leave with the flush at
    /// `channelReadComplete`, so no separate flush task is needed (see ``scheduleFlush()``).
    private var reading = false

    /// The STATUS payload sent if a status cannot be encoded: fails closed, never as OK.
    private static let unencodableStatus: ByteBuffer = {
        var status = Tote_V1_CallStatus()
        status.code = .internal
        status.message = "the server could not encode the call's status"
        return try! status.serializedBuffer()
    }()

    init(router: RPCRouter, keyring: APIKeyring, configuration: Configuration, logger: Logger) {
        self.state = ServerConnectionStateMachine(settings: configuration.settings)
        self.router = router
        self.keyring = keyring
        self.configuration = configuration
        self.logger = logger
        self.keepalive = KeepaliveStateMachine(timeoutNanoseconds: configuration.keepaliveTimeout.nanoseconds)
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        io.attach(context)
        if context.channel.isActive { start(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    private func start(context: ChannelHandlerContext) {
        guard keepaliveTask == nil else { return }
        remoteAddress = context.channel.remoteAddress?.description ?? "unknown"
        logger[metadataKey: "peer"] = "\(remoteAddress)"
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        // The preface and SETTINGS must arrive within the partial-frame timeout.
        partialFrameTimer = context.eventLoop.scheduleTask(in: configuration.partialFrameTimeout) {
            loopBound.value.partialFrameTimedOut()
        }
        keepaliveTask = context.eventLoop.scheduleRepeatedTask(
            initialDelay: configuration.keepaliveInterval,
            delay: configuration.keepaliveInterval
        ) { _ in
            loopBound.value.keepaliveTick()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        partialFrameTimer?.cancel()
        keepaliveTask?.cancel()
        for (_, call) in calls { terminate(call, RPCError(.unavailable, "connection closed")) }
        calls.removeAll()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        io.append(&bytes)
        keepalive.receivedData()
        reading = true
        processInbound(context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        reading = false
        io.flushIfNeeded()
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is DrainConnectionEvent {
            beginDrain()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    // MARK: Inbound frames

    private func processInbound(context: ChannelHandlerContext) {
        var completedFrames = false
        loop: while !closing {
            let action = state.receive(&io.inbound)
            if case .needMoreData = action { break loop }
            completedFrames = true
            switch action {
            case .needMoreData:
                break loop
            case .none:
                continue
            case .write(let frame):
                write(frame)
            case .openCall(let id, let headers, let endStream):
                openCall(id, headers, endStream: endStream)
            case .rejectCall(let id, let error):
                writeStatus(id, error.callStatus)
            case .message(let id, let payload, let endStream):
                receiveMessage(id, payload, endStream: endStream)
            case .endOfInput(let id):
                receiveEndOfInput(id)
            case .cancelCall(let id):
                if let call = calls.removeValue(forKey: id) {
                    terminate(call, RPCError(.cancelled, "the client cancelled the call"))
                }
                closeIfDrained()
            case .creditAvailable(let id):
                resumeWriters(id)
            case .pingAcknowledged:
                keepalive.receivedPingAck()
            case .peerGoingAway:
                closeIfDrained()
            case .closeWithError(let error):
                closeWithGoAway(state.goAwayFrame(for: error), error)
                return
            }
        }
        io.compactInbound()
        // The timer bounds how long one frame may take to arrive: it runs from the first byte of
        // the frame still incomplete, so it restarts whenever a frame completes.
        if state.isEstablished, io.inbound.readableBytes == 0 || completedFrames {
            partialFrameTimer?.cancel()
            partialFrameTimer = nil
        }
        if io.inbound.readableBytes > 0 {
            if partialFrameTimer == nil {
                let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
                partialFrameTimer = context.eventLoop.scheduleTask(in: configuration.partialFrameTimeout) {
                    loopBound.value.partialFrameTimedOut()
                }
            }
        }
    }

    private func openCall(_ id: StreamID, _ headers: Tote_V1_CallHeaders, endStream: Bool) {
        guard let role = keyring.role(for: headers.authToken) else {
            return rejectOpenCall(id, method: headers.method, RPCError(
                .unauthenticated,
                headers.authToken.isEmpty ? "missing API key (call header auth_token)" : "invalid API key"
            ))
        }
        guard let route = router.route(for: headers.method) else {
            return rejectOpenCall(id, method: headers.method, RPCError(.unimplemented, "unknown method '\(headers.method)'"))
        }
        guard route.roles.contains(role) else {
            let allowed = route.roles.map(\.rawValue).sorted().joined(separator: ", ")
            return rejectOpenCall(id, method: headers.method, RPCError(
                .permissionDenied,
                "role '\(role)' may not call \(headers.method) (allowed: \(allowed))"
            ))
        }
        guard let context else { return }
        // The relative deadline, clamped so that it converts to nanoseconds without overflow.
        let timeoutMicros: Int64? = headers.timeoutMicros > 0 ? Int64(min(headers.timeoutMicros, UInt64(Int64.max / 1000))) : nil
        let deadline = timeoutMicros.map { ContinuousClock.now + .microseconds($0) }
        let serverContext = ServerContext(
            method: headers.method,
            role: role,
            deadline: deadline,
            idempotencyKey: headers.idempotencyKey,
            correlation: headers.correlationID.isEmpty ? .generated(connectionID: connectionID, streamID: id) : .given(headers.correlationID),
            consistencyToken: headers.hasConsistencyToken ? headers.consistencyToken : nil,
            metadata: headers.metadata,
            remoteAddress: remoteAddress,
            logger: logger
        )
        let call = Call(route: route, serverContext: serverContext)
        calls[id] = call
        if let micros = timeoutMicros {
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            call.deadlineTimer = context.eventLoop.scheduleTask(in: .microseconds(micros)) {
                loopBound.value.deadlineExpired(id, micros: micros)
            }
        }
        if route.kind.clientStreams {
            let (stream, continuation) = AsyncThrowingStream<ByteBuffer, any Error>.makeStream()
            call.inbound = continuation
            if endStream { continuation.finish() }
            startStreamingRequestCall(id, call, RawMessageSource(messages: stream, consumed: consumedCallback(id)))
        } else if endStream {
            fail(id, RPCError(.invalidArgument, "\(headers.method) expects one request message, got none"))
        }
    }

    /// Refuses a call the state machine already opened: STATUS, then the stream is closed.
    private func rejectOpenCall(_ id: StreamID, method: String, _ error: RPCError) {
        (router.route(for: method)?.metrics ?? RPCMetrics.unknown).record(code: error.code, startedAt: RPCMetrics.now())
        writeStatus(id, error.callStatus)
        if state.streamClosed(id) { closeNow() }
    }

    private func receiveMessage(_ id: StreamID, _ payload: ByteBuffer, endStream: Bool) {
        guard let call = calls[id] else { return }
        if call.route.kind.clientStreams {
            let limit = configuration.maxBufferedInboundBytes
            guard bufferedInboundBytes + payload.readableBytes <= limit else {
                return fail(id, .quotaExceeded(
                    "the connection holds \(bufferedInboundBytes) request bytes its handlers have not consumed; this message would exceed the limit of \(limit)",
                    subject: "max_buffered_inbound_bytes"
                ))
            }
            call.bufferedBytes += payload.readableBytes
            bufferedInboundBytes += payload.readableBytes
            call.inbound?.yield(payload)
            if endStream { call.inbound?.finish() }
            return
        }
        guard !call.receivedRequest else {
            return fail(id, RPCError(.invalidArgument, "\(call.serverContext.method) expects exactly one request message, got more"))
        }
        call.receivedRequest = true
        if endStream {
            startSingleRequestCall(id, call, payload)
        } else {
            call.pendingRequest = payload
        }
    }

    private func receiveEndOfInput(_ id: StreamID) {
        guard let call = calls[id] else { return }
        if call.route.kind.clientStreams {
            call.inbound?.finish()
        } else if let request = call.pendingRequest {
            call.pendingRequest = nil
            startSingleRequestCall(id, call, request)
        } else {
            fail(id, RPCError(.invalidArgument, "\(call.serverContext.method) expects one request message, got none"))
        }
    }

    // MARK: Running handlers

    private func startSingleRequestCall(_ id: StreamID, _ call: Call, _ request: ByteBuffer) {
        let serverContext = call.serverContext
        if let immediate = call.route.immediate {
            // A point read: answered here, in this tick, unless it has to wait.
            let response: ByteBuffer?
            do {
                response = try immediate(request, serverContext)
            } catch {
                return finishCall(id, .failure(mapHandlerError(error, serverContext)))
            }
            if let response { return finishCall(id, .success(response)) }
        }
        switch call.route.handler {
        case .unary(let handler):
            call.task = call.route.inline
                ? spawnInline(id, serverContext) { try await handler(request, serverContext) }
                : spawn(id, serverContext) { try await handler(request, serverContext) }
        case .serverStreaming(let handler):
            let sink = sinkFor(id)
            call.task = spawn(id, serverContext) {
                try await handler(request, sink, serverContext)
                return nil
            }
        case .clientStreaming, .bidirectional:
            preconditionFailure("streaming-request handler started as single-request")
        }
    }

    private func startStreamingRequestCall(_ id: StreamID, _ call: Call, _ source: RawMessageSource) {
        let serverContext = call.serverContext
        switch call.route.handler {
        case .clientStreaming(let handler):
            call.task = spawn(id, serverContext) { try await handler(source, serverContext) }
        case .bidirectional(let handler):
            let sink = sinkFor(id)
            call.task = spawn(id, serverContext) {
                try await handler(source, sink, serverContext)
                return nil
            }
        case .unary, .serverStreaming:
            preconditionFailure("single-request handler started as streaming")
        }
    }

    /// Runs a call's handler in its own task; its outcome (final response, if any, or error)
    /// hops back to the event loop to be written.
    private func spawn(
        _ id: StreamID,
        _ serverContext: ServerContext,
        _ body: @escaping @Sendable () async throws -> ByteBuffer?
    ) -> Task<Void, Never> {
        let loopBound = NIOLoopBound(self, eventLoop: context!.eventLoop)
        let eventLoop = context!.eventLoop
        return Task {
            let outcome: Result<ByteBuffer?, RPCError>
            do {
                outcome = .success(try await body())
            } catch {
                outcome = .failure(mapHandlerError(error, serverContext))
            }
            eventLoop.execute { loopBound.value.finishCall(id, outcome) }
        }
    }

    /// Runs a unary handler in a task that starts right here on the event loop
    /// (`Task.immediate`) instead of being enqueued on the global executor. A handler that does
    /// not suspend (a read-model point read) therefore completes within this call and its
    /// response is written at once, in the same event-loop tick as the request was read: no
    /// thread wake-up to start the task and none to hop back. A handler that suspends (awaits
    /// I/O, a consistency wait, `offCooperativeThreads`) continues on the global executor from its
    /// first suspension and hops back as ``spawn(_:_:_:)`` does.
    ///
    /// Handlers must not block: until their first suspension they hold the event loop, and with
    /// it every connection on the loop. That rule already held for the cooperative pool.
    private func spawnInline(
        _ id: StreamID,
        _ serverContext: ServerContext,
        _ body: @escaping @Sendable () async throws -> ByteBuffer?
    ) -> Task<Void, Never> {
        let loopBound = NIOLoopBound(self, eventLoop: context!.eventLoop)
        let eventLoop = context!.eventLoop
        return Task.immediate {
            let outcome: Result<ByteBuffer?, RPCError>
            do {
                outcome = .success(try await body())
            } catch {
                outcome = .failure(mapHandlerError(error, serverContext))
            }
            if eventLoop.inEventLoop {
                loopBound.value.finishCall(id, outcome)
            } else {
                eventLoop.execute { loopBound.value.finishCall(id, outcome) }
            }
        }
    }

    private func sinkFor(_ id: StreamID) -> RawMessageSink {
        let loopBound = NIOLoopBound(self, eventLoop: context!.eventLoop)
        let eventLoop = context!.eventLoop
        return RawMessageSink { buffer in
            try await withCheckedThrowingContinuation { continuation in
                eventLoop.execute { loopBound.value.sendMessage(id, buffer, continuation) }
            }
        }
    }

    /// A handler took one request message of `bytes` bytes off its stream.
    private func consumed(_ bytes: Int, on id: StreamID) {
        guard let call = calls[id] else { return }  // ended: its bytes were released then
        call.bufferedBytes -= bytes
        release(bytes)
        if let frame = state.consumedInbound(1, on: id) { writeAndScheduleFlush(frame) }
    }

    /// Returns buffered request bytes to the connection's budget.
    private func release(_ bytes: Int) {
        bufferedInboundBytes -= bytes
    }

    private func consumedCallback(_ id: StreamID) -> @Sendable (Int) -> Void {
        let loopBound = NIOLoopBound(self, eventLoop: context!.eventLoop)
        let eventLoop = context!.eventLoop
        return { bytes in
            eventLoop.execute { loopBound.value.consumed(bytes, on: id) }
        }
    }

    /// A response message from a streaming handler: send it if there is credit, else park it.
    private func sendMessage(_ id: StreamID, _ payload: ByteBuffer, _ continuation: CheckedContinuation<Void, any Error>) {
        guard let call = calls[id] else {
            return continuation.resume(throwing: RPCError(.cancelled, "the call has ended"))
        }
        if let limit = state.frameLimitExceeded(by: payload.readableBytes) {
            return continuation.resume(throwing: RPCError(.resourceExhausted, "response of \(payload.readableBytes) bytes exceeds the client's MAX_FRAME_SIZE \(limit)"))
        }
        guard call.waitingWriters.isEmpty else {
            call.waitingWriters.append((payload, continuation))
            return
        }
        switch state.reserveOutboundMessage(on: id) {
        case .send:
            writeAndScheduleFlush(Frame(type: .message, streamID: id, payload: payload))
            continuation.resume()
        case .wait:
            call.waitingWriters.append((payload, continuation))
        case .streamClosed:
            continuation.resume(throwing: RPCError(.cancelled, "the call has ended"))
        }
    }

    private func resumeWriters(_ id: StreamID) {
        guard let call = calls[id] else { return }
        while !call.waitingWriters.isEmpty, state.reserveOutboundMessage(on: id) == .send {
            let (payload, continuation) = call.waitingWriters.removeFirst()
            write(Frame(type: .message, streamID: id, payload: payload))
            continuation.resume()
        }
    }

    /// A handler finished: send its response (if any) and status, then close the stream.
    private func finishCall(_ id: StreamID, _ outcome: Result<ByteBuffer?, RPCError>) {
        guard let call = calls.removeValue(forKey: id) else { return }  // already cancelled or expired
        defer {
            let code: RPCError.Code = if case .failure(let error) = outcome { error.code } else { .ok }
            ended(call, code)
        }
        call.deadlineTimer?.cancel()
        call.inbound?.finish()
        release(call.bufferedBytes)
        failWriters(call, RPCError(.cancelled, "the call has ended"))
        var outcome = outcome
        if case .success(let response?) = outcome, let limit = state.frameLimitExceeded(by: response.readableBytes) {
            outcome = .failure(RPCError(.resourceExhausted, "response of \(response.readableBytes) bytes exceeds the client's MAX_FRAME_SIZE \(limit)"))
        }
        switch outcome {
        case .success(var response?) where response.readerIndex >= Frame.headerSize && response.writableBytes >= Frame.headerSize:
            // Encoded with framing room (ProtobufByteBuffer): MESSAGE header before the message,
            // STATUS after it, in the same buffer; nothing copied.
            _ = state.reserveOutboundMessage(on: id)  // the first message always has credit
            let start = response.readerIndex - Frame.headerSize
            FrameEncoder.setHeader(type: .message, flags: [], streamID: id, length: response.readableBytes, at: start, in: &response)
            response.moveReaderIndex(to: start)
            FrameEncoder.writeHeader(type: .status, flags: [], streamID: id, length: 0, into: &response)
            io.write(response)
            scheduleFlush()
        case .success(let response):
            var buffer = io.allocator.buffer(capacity: 2 * Frame.headerSize + (response?.readableBytes ?? 0))
            if var response {
                _ = state.reserveOutboundMessage(on: id)  // the first message always has credit
                FrameEncoder.writeHeader(type: .message, flags: [], streamID: id, length: response.readableBytes, into: &buffer)
                buffer.writeBuffer(&response)
            }
            FrameEncoder.writeHeader(type: .status, flags: [], streamID: id, length: 0, into: &buffer)
            io.write(buffer)
            scheduleFlush()
        case .failure(let error):
            writeStatus(id, error.callStatus)
            scheduleFlush()
        }
        if state.streamClosed(id) { closeNow() }
    }

    /// A call ended with `code`: counted in the metrics and, at debug level, logged as one line
    /// of the call (its method and correlation id, the code and the duration): the access log of
    /// `--log-level debug`. The check comes first, so at info level a call builds no logger.
    private func ended(_ call: Call, _ code: RPCError.Code) {
        call.route.metrics.record(code: code, startedAt: call.startedAt)
        if logger.logLevel <= .debug {
            let micros = (RPCMetrics.now() &- call.startedAt) / 1_000
            call.serverContext.logger.debug("call ended", metadata: ["code": "\(code)", "duration_us": "\(micros)"])
        }
    }

    /// Ends a call with an error status before its handler finished.
    private func fail(_ id: StreamID, _ error: RPCError) {
        if let call = calls.removeValue(forKey: id) { terminate(call, error) }
        writeStatus(id, error.callStatus)
        scheduleFlush()
        if state.streamClosed(id) { closeNow() }
    }

    private func deadlineExpired(_ id: StreamID, micros: Int64) {
        guard calls[id] != nil else { return }
        fail(id, RPCError(.deadlineExceeded, "deadline of \(Self.formatMicros(micros)) exceeded"))
    }

    /// Stops a call's handler and wakes everything waiting on it.
    private func terminate(_ call: Call, _ error: RPCError) {
        ended(call, error.code)
        release(call.bufferedBytes)
        call.bufferedBytes = 0
        call.deadlineTimer?.cancel()
        call.task?.cancel()
        call.inbound?.finish(throwing: error)
        failWriters(call, error)
    }

    private func failWriters(_ call: Call, _ error: RPCError) {
        let writers = call.waitingWriters
        call.waitingWriters.removeAll()
        for (_, continuation) in writers { continuation.resume(throwing: error) }
    }

    // MARK: Connection lifecycle

    private func beginDrain() {
        guard let frame = state.beginDrain() else { return }
        logger.debug("draining connection", metadata: ["open_calls": "\(calls.count)"])
        writeAndScheduleFlush(frame)
        closeIfDrained()
    }

    private func closeIfDrained() {
        if state.isDrained { closeNow() }
    }

    private func closeNow() {
        guard !closing, let context else { return }
        closing = true
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(ByteBuffer())).whenComplete { _ in channel.close(promise: nil) }
    }

    private func closeWithGoAway(_ frame: Frame, _ error: ConnectionError) {
        guard !closing, let context else { return }
        closing = true
        logger.info("closing connection", metadata: ["reason": "\(error)"])
        for (_, call) in calls { terminate(call, RPCError(.unavailable, "connection closed: \(error)")) }
        calls.removeAll()
        var buffer = context.channel.allocator.buffer(capacity: Frame.headerSize + frame.payload.readableBytes)
        FrameEncoder.write(frame, into: &buffer)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in channel.close(promise: nil) }
    }

    private func partialFrameTimedOut() {
        partialFrameTimer = nil
        guard !closing else { return }
        let seconds = Self.formatMicros(configuration.partialFrameTimeout.nanoseconds / 1000)
        let error: ConnectionError
        if !state.isEstablished {
            error = ConnectionError(.timeout, "no connection preface and SETTINGS within \(seconds)")
        } else if io.inbound.readableBytes > 0 {
            error = ConnectionError(.timeout, "incomplete frame: \(state.missingBytes(in: io.inbound)) more bytes did not arrive within \(seconds)")
        } else {
            return
        }
        closeWithGoAway(state.abort(error), error)
    }

    private func keepaliveTick() {
        // No PING before the handshake: the client must see the server's SETTINGS first (a slow
        // client's preface is the partial-frame timeout's business).
        guard !closing, state.isEstablished else { return }
        switch keepalive.tick(now: Int64(NIODeadline.now().uptimeNanoseconds)) {
        case .none:
            break
        case .sendPing(let counter):
            writeAndScheduleFlush(FrameIO.ping(counter))
            if let context {
                let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
                context.eventLoop.scheduleTask(in: configuration.keepaliveTimeout) { loopBound.value.keepaliveTimeoutCheck() }
            }
        case .timedOut:
            let error = ConnectionError(.timeout, "no PING reply within \(Self.formatMicros(configuration.keepaliveTimeout.nanoseconds / 1000))")
            closeWithGoAway(state.abort(error), error)
        }
    }

    private func keepaliveTimeoutCheck() {
        guard !closing, keepalive.pingTimedOut(now: Int64(NIODeadline.now().uptimeNanoseconds)) else { return }
        let error = ConnectionError(.timeout, "no PING reply within \(Self.formatMicros(configuration.keepaliveTimeout.nanoseconds / 1000))")
        closeWithGoAway(state.abort(error), error)
    }

    // MARK: Writing

    private func write(_ frame: Frame) {
        io.write(frame)
    }

    private func writeStatus(_ id: StreamID, _ status: Tote_V1_CallStatus) {
        var payload = (try? status.serializedBuffer()) ?? Self.unencodableStatus
        if state.frameLimitExceeded(by: payload.readableBytes) != nil {
            // Details too large for the client's frames: keep the code and the start of the message.
            var trimmed = Tote_V1_CallStatus()
            trimmed.code = status.code
            trimmed.message = String(status.message.prefix(1024))
            payload = (try? trimmed.serializedBuffer()) ?? Self.unencodableStatus
        }
        write(Frame(type: .status, streamID: id, payload: payload))
    }

    private func writeAndScheduleFlush(_ frame: Frame) {
        write(frame)
        scheduleFlush()
    }

    /// Makes sure what was written leaves soon: at the `channelReadComplete` that ends the
    /// current read (the common case for unary calls answered inline), else at the end of this
    /// event-loop tick.
    private func scheduleFlush() {
        if reading { return }
        io.scheduleFlush()
    }

    // MARK: Helpers

    /// A random id for this connection: generated correlation ids are "<connection id>-<stream id>",
    /// unique without a random draw per call.
    private let connectionID: String = {
        var generator = SystemRandomNumberGenerator()
        return String(generator.next() as UInt64, radix: 16).leftPadded(16)
    }()

    static func formatMicros(_ micros: Int64) -> String {
        if micros >= 1_000_000, micros % 1_000_000 == 0 { return "\(micros / 1_000_000) s" }
        if micros >= 1000, micros % 1000 == 0 { return "\(micros / 1000) ms" }
        return "\(micros) µs"
    }
}

/// Maps a handler's error to its status, logging unexpected errors (never sent to clients).
private func mapHandlerError(_ error: any Error, _ context: ServerContext) -> RPCError {
    let mapped = RPCError.from(error)
    if mapped.code == .internal, !(error is RPCError) {
        context.logger.error("handler failed", metadata: ["error": "\(String(reflecting: error))"])
    }
    return mapped
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

/// Refuses a connection the server will not serve (over its limit, or shutting down): one GOAWAY
/// saying why, then close.
final class RefuseConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let code: ConnectionErrorCode
    let message: String

    init(code: ConnectionErrorCode, message: String) {
        self.code = code
        self.message = message
    }

    func channelActive(context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 64)
        FrameEncoder.write(
            Frame(type: .goAway, streamID: 0, payload: FrameEncoder.goAwayPayload(GoAway(lastStreamID: 0, code: code, message: message))),
            into: &buffer
        )
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in channel.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}
