import NIOCore
import Synchronization
import ToteProto
import ToteWire

/// Shared between a call's task and the event loop: whether the caller gave up on it.
final class ClientCallHandle: Sendable {
    let id: UInt64
    private let cancelled = Mutex(false)
    private let outcome = Mutex<RPCError?>(nil)

    init(id: UInt64) { self.id = id }

    var isCancelled: Bool { cancelled.withLock { $0 } }
    func markCancelled() { cancelled.withLock { $0 = true } }

    /// How the call ended, when it ended with an error: what a later write reports.
    var failure: RPCError? { outcome.withLock { $0 } }
    func recordFailure(_ error: RPCError) { outcome.withLock { if $0 == nil { $0 = error } } }
}

/// Whether a connection still takes new calls; read by any thread, written by the event loop.
final class ConnectionHealth: Sendable {
    private let usable = Mutex(true)
    var isUsable: Bool { usable.withLock { $0 } }
    func markUnusable() { usable.withLock { $0 = false } }
}

/// Drives one client connection: feeds ``ClientConnectionStateMachine`` and performs its actions,
/// matches responses to waiting calls, enforces client-side deadlines, and queues calls beyond
/// the server's concurrency limit. Everything here runs on the connection's event loop.
final class ClientConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// One call in progress or waiting for a stream. Touched only on the event loop.
    final class Call {
        let handle: ClientCallHandle
        let headers: ByteBuffer
        let timeoutMicros: UInt64
        var streamID: StreamID?
        var finished = false
        var deadlineTimer: Scheduled<Void>?
        // Unary calls:
        var request: ByteBuffer?
        var unary: CheckedContinuation<ByteBuffer, any Error>?
        var response: ByteBuffer?
        // Streaming calls:
        var opened: CheckedContinuation<Void, any Error>?
        var responses: AsyncThrowingStream<ByteBuffer, any Error>.Continuation?
        var waitingWriters: [(ByteBuffer, CheckedContinuation<Void, any Error>)] = []
        /// HALF_CLOSE requested while messages were still waiting for credit: sent after them.
        var halfClosePending = false

        init(handle: ClientCallHandle, headers: ByteBuffer, timeoutMicros: UInt64) {
            self.handle = handle
            self.headers = headers
            self.timeoutMicros = timeoutMicros
        }
    }

    private var state: ClientConnectionStateMachine
    private let io = FrameIO()
    private var context: ChannelHandlerContext?
    private var readyPromise: EventLoopPromise<Void>?
    private var calls: [UInt64: Call] = [:]
    private var callsByStream: [StreamID: Call] = [:]
    private var waiting = CircularBuffer<Call>()
    private var keepalive: KeepaliveStateMachine
    private var keepaliveTask: RepeatedTask?
    private let keepaliveInterval: TimeAmount
    private let keepaliveTimeout: TimeAmount
    let health: ConnectionHealth
    private var closed = false

    init(settings: ConnectionSettings, keepaliveInterval: TimeAmount, keepaliveTimeout: TimeAmount, readyPromise: EventLoopPromise<Void>, health: ConnectionHealth) {
        self.state = ClientConnectionStateMachine(settings: settings)
        self.readyPromise = readyPromise
        self.keepaliveInterval = keepaliveInterval
        self.keepaliveTimeout = keepaliveTimeout
        self.keepalive = KeepaliveStateMachine(timeoutNanoseconds: keepaliveTimeout.nanoseconds)
        self.health = health
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        io.attach(context)
        if context.channel.isActive { activate(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        activate(context: context)
        context.fireChannelActive()
    }

    /// Sends the preface and SETTINGS and starts keepalive, once.
    private func activate(context: ChannelHandlerContext) {
        guard keepaliveTask == nil else { return }
        context.writeAndFlush(wrapOutboundOut(state.handshakeBytes()), promise: nil)
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        keepaliveTask = context.eventLoop.scheduleRepeatedTask(initialDelay: keepaliveInterval, delay: keepaliveInterval) { _ in
            loopBound.value.keepaliveTick()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        keepaliveTask?.cancel()
        connectionLost(RPCError(.unavailable, "connection closed by the server"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        connectionLost(RPCError(.unavailable, "connection failed: \(error)"))
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        io.append(&bytes)
        keepalive.receivedData()
        loop: while !closed {
            switch state.receive(&io.inbound) {
            case .needMoreData:
                break loop
            case .none:
                continue
            case .write(let frame):
                write(frame)
            case .ready:
                readyPromise?.succeed()
                readyPromise = nil
            case .message(let id, let payload):
                receiveMessage(id, payload)
            case .status(let id, let status):
                finish(stream: id, error: RPCError(status: status))
            case .malformedStatus(let id, let error):
                finish(stream: id, error: error)
            case .creditAvailable(let id):
                resumeWriters(id)
            case .pingAcknowledged:
                keepalive.receivedPingAck()
            case .goingAway(let goAway, let unprocessed):
                receiveGoAway(goAway, unprocessed: unprocessed)
            case .closeWithError(let error):
                abort(error)
                return
            }
        }
        io.compactInbound()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        io.flushIfNeeded()
        context.fireChannelReadComplete()
    }

    // MARK: Starting calls

    /// Starts a unary call; `continuation` receives the response bytes or the call's error.
    func startUnary(_ handle: ClientCallHandle, headers: ByteBuffer, request: ByteBuffer, timeoutMicros: UInt64, continuation: CheckedContinuation<ByteBuffer, any Error>) {
        let call = Call(handle: handle, headers: headers, timeoutMicros: timeoutMicros)
        call.request = request
        call.unary = continuation
        start(call)
    }

    /// Starts a streaming call; `opened` resumes once its HEADERS are sent (or with its error).
    func startStreaming(_ handle: ClientCallHandle, headers: ByteBuffer, timeoutMicros: UInt64, responses: AsyncThrowingStream<ByteBuffer, any Error>.Continuation, opened: CheckedContinuation<Void, any Error>) {
        let call = Call(handle: handle, headers: headers, timeoutMicros: timeoutMicros)
        call.responses = responses
        call.opened = opened
        start(call)
    }

    private func start(_ call: Call) {
        if call.handle.isCancelled {
            return complete(call, error: RPCError(.cancelled, "the call was cancelled"))
        }
        if closed {
            return complete(call, error: RPCError(.unavailable, "the connection is closed"))
        }
        calls[call.handle.id] = call
        if call.timeoutMicros > 0, let context {
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            let id = call.handle.id
            let micros = Int64(min(call.timeoutMicros, UInt64(Int64.max / 1000)))
            call.deadlineTimer = context.eventLoop.scheduleTask(in: .microseconds(micros)) {
                loopBound.value.deadlineExpired(id, micros: micros)
            }
        }
        if waiting.isEmpty { open(call) } else { waiting.append(call) }
    }

    private func open(_ call: Call) {
        for (what, size) in [("call headers", call.headers.readableBytes), ("request", call.request?.readableBytes ?? 0)] {
            if let limit = state.frameLimitExceeded(by: size) {
                return complete(call, error: RPCError(.resourceExhausted, "\(what) of \(size) bytes exceed the server's MAX_FRAME_SIZE \(limit)"))
            }
        }
        switch state.openStream() {
        case .opened(let id):
            call.streamID = id
            callsByStream[id] = call
            var headers = call.headers
            if var request = call.request {
                call.request = nil
                _ = state.reserveOutboundMessage(on: id)  // a new stream always has credit for one
                var buffer = io.allocator.buffer(capacity: 2 * Frame.headerSize + headers.readableBytes + request.readableBytes)
                FrameEncoder.writeHeader(type: .headers, flags: [], streamID: id, length: headers.readableBytes, into: &buffer)
                buffer.writeBuffer(&headers)
                FrameEncoder.writeHeader(type: .message, flags: .endStream, streamID: id, length: request.readableBytes, into: &buffer)
                buffer.writeBuffer(&request)
                io.write(buffer)
            } else {
                write(Frame(type: .headers, streamID: id, payload: headers))
                call.opened?.resume()
                call.opened = nil
            }
            scheduleFlush()
        case .wait:
            waiting.append(call)
        case .refused(let reason):
            health.markUnusable()
            complete(call, error: RPCError(.unavailable, reason))
        }
    }

    /// Opens waiting calls while the server's concurrency limit allows.
    private func openWaiting() {
        while let call = waiting.first {
            if call.finished { waiting.removeFirst(); continue }
            if state.acceptsNewCalls, state.openStreamCount >= Int(state.peerSettings.maxConcurrentStreams) { return }
            waiting.removeFirst()
            open(call)
        }
    }

    // MARK: Streaming I/O from call tasks

    /// Sends a request message on a streaming call, waiting for credit if needed.
    func send(_ handle: ClientCallHandle, _ payload: ByteBuffer, continuation: CheckedContinuation<Void, any Error>) {
        guard let call = calls[handle.id], let id = call.streamID else {
            return continuation.resume(throwing: handle.failure ?? RPCError(.cancelled, "the call has ended"))
        }
        if let limit = state.frameLimitExceeded(by: payload.readableBytes) {
            return continuation.resume(throwing: RPCError(.resourceExhausted, "request of \(payload.readableBytes) bytes exceeds the server's MAX_FRAME_SIZE \(limit)"))
        }
        guard call.waitingWriters.isEmpty else { return call.waitingWriters.append((payload, continuation)) }
        switch state.reserveOutboundMessage(on: id) {
        case .send:
            write(Frame(type: .message, streamID: id, payload: payload))
            scheduleFlush()
            continuation.resume()
        case .wait:
            call.waitingWriters.append((payload, continuation))
        case .streamClosed:
            continuation.resume(throwing: RPCError(.cancelled, "the call has ended"))
        }
    }

    /// Ends the sending side of a streaming call (HALF_CLOSE), after any queued messages.
    func halfClose(_ handle: ClientCallHandle) {
        guard let call = calls[handle.id], let id = call.streamID else { return }
        guard call.waitingWriters.isEmpty else {
            call.halfClosePending = true
            return
        }
        write(Frame(type: .halfClose, streamID: id))
        scheduleFlush()
    }

    /// The application consumed one response message: return credit when due.
    func consumed(_ handle: ClientCallHandle) {
        guard let id = calls[handle.id]?.streamID, let frame = state.consumedInbound(1, on: id) else { return }
        write(frame)
        scheduleFlush()
    }

    /// The caller abandoned the call (task cancelled, or it stopped reading a stream).
    func cancel(_ handle: ClientCallHandle, _ error: RPCError) {
        guard let call = calls[handle.id] else { return }
        if let id = call.streamID, let frame = state.cancelStream(id) {
            write(frame)
            scheduleFlush()
        }
        complete(call, error: error)
        openWaiting()
        closeIfDrained()
    }

    private func deadlineExpired(_ id: UInt64, micros: Int64) {
        guard let call = calls[id] else { return }
        call.deadlineTimer = nil
        cancel(call.handle, RPCError(.deadlineExceeded, "deadline of \(ServerConnectionHandler.formatMicros(micros)) exceeded"))
    }

    // MARK: Inbound

    private func receiveMessage(_ id: StreamID, _ payload: ByteBuffer) {
        guard let call = callsByStream[id] else { return }
        if call.unary != nil {
            if call.response != nil {
                if let frame = state.cancelStream(id) { write(frame) }
                complete(call, error: RPCError(.internal, "server sent more than one response to a unary call"))
                return
            }
            call.response = payload
        } else {
            call.responses?.yield(payload)
        }
    }

    private func finish(stream id: StreamID, error: RPCError?) {
        guard let call = callsByStream[id] else { return }
        if let error {
            complete(call, error: error)
        } else if call.unary != nil, call.response == nil {
            complete(call, error: RPCError(.internal, "server ended a unary call with OK but sent no response"))
        } else {
            complete(call, error: nil)
        }
        openWaiting()
        closeIfDrained()
    }

    /// Resolves a call exactly once and forgets it.
    private func complete(_ call: Call, error: RPCError?) {
        guard !call.finished else { return }
        call.finished = true
        if let error { call.handle.recordFailure(error) }
        call.deadlineTimer?.cancel()
        calls.removeValue(forKey: call.handle.id)
        if let id = call.streamID { callsByStream.removeValue(forKey: id) }
        if let unary = call.unary {
            call.unary = nil
            if let error { unary.resume(throwing: error) } else { unary.resume(returning: call.response ?? ByteBuffer()) }
        }
        if let opened = call.opened {
            call.opened = nil
            opened.resume(throwing: error ?? RPCError(.internal, "call ended before it opened"))
        }
        if let responses = call.responses {
            call.responses = nil
            if let error { responses.finish(throwing: error) } else { responses.finish() }
        }
        let writers = call.waitingWriters
        call.waitingWriters.removeAll()
        for (_, continuation) in writers { continuation.resume(throwing: error ?? RPCError(.cancelled, "the call has ended")) }
    }

    private func resumeWriters(_ id: StreamID) {
        guard let call = callsByStream[id] else { return }
        while !call.waitingWriters.isEmpty, state.reserveOutboundMessage(on: id) == .send {
            let (payload, continuation) = call.waitingWriters.removeFirst()
            write(Frame(type: .message, streamID: id, payload: payload))
            continuation.resume()
        }
        if call.halfClosePending, call.waitingWriters.isEmpty {
            call.halfClosePending = false
            write(Frame(type: .halfClose, streamID: id))
        }
        scheduleFlush()
    }

    private func receiveGoAway(_ goAway: GoAway, unprocessed: [StreamID]) {
        health.markUnusable()
        let reason = "server sent GOAWAY (\(goAway.code): \(goAway.message))"
        if let readyPromise {
            self.readyPromise = nil
            readyPromise.fail(RPCError(.unavailable, "connection refused: \(reason)"))
        }
        for id in unprocessed {
            if let call = callsByStream[id] { complete(call, error: RPCError(.unavailable, "\(reason); the call was not processed")) }
        }
        while let call = waiting.popFirst() {
            complete(call, error: RPCError(.unavailable, "\(reason); the call was not sent"))
        }
        if goAway.code != .noError {
            connectionLost(RPCError(.unavailable, reason))
            context?.close(promise: nil)
        } else {
            closeIfDrained()
        }
    }

    /// Graceful close requested by the application: no new calls, close after the open ones.
    func closeGracefully() {
        health.markUnusable()
        for call in waiting { complete(call, error: RPCError(.unavailable, "the connection is closing")) }
        waiting.removeAll()
        if calls.isEmpty { context?.close(promise: nil) } else { drainRequested = true }
    }

    private var drainRequested = false

    private func closeIfDrained() {
        if (drainRequested && calls.isEmpty) || (state.isDrained && !closed) {
            context?.close(promise: nil)
        }
    }

    private func abort(_ error: ConnectionError) {
        var buffer = ByteBuffer()
        FrameEncoder.write(Frame(type: .goAway, streamID: 0, payload: FrameEncoder.goAwayPayload(GoAway(lastStreamID: 0, code: error.code, message: error.message))), into: &buffer)
        context?.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        connectionLost(RPCError(.unavailable, "protocol error from the server: \(error)"))
        context?.close(promise: nil)
    }

    private func connectionLost(_ error: RPCError) {
        guard !closed else { return }
        closed = true
        health.markUnusable()
        if let readyPromise {
            self.readyPromise = nil
            readyPromise.fail(error)
        }
        _ = state.closeAll()
        for call in Array(calls.values) { complete(call, error: error) }
        while let call = waiting.popFirst() { complete(call, error: error) }
    }

    private func keepaliveTick() {
        switch keepalive.tick(now: Int64(NIODeadline.now().uptimeNanoseconds)) {
        case .none:
            break
        case .sendPing(let counter):
            write(FrameIO.ping(counter))
            scheduleFlush()
            if let context {
                let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
                context.eventLoop.scheduleTask(in: keepaliveTimeout) { loopBound.value.keepaliveTimeoutCheck() }
            }
        case .timedOut:
            abort(ConnectionError(.timeout, "no PING reply from the server"))
        }
    }

    private func keepaliveTimeoutCheck() {
        guard !closed, keepalive.pingTimedOut(now: Int64(NIODeadline.now().uptimeNanoseconds)) else { return }
        abort(ConnectionError(.timeout, "no PING reply from the server"))
    }

    // MARK: Writing

    private func write(_ frame: Frame) {
        io.write(frame)
    }

    private func scheduleFlush() {
        io.scheduleFlush()
    }
}
