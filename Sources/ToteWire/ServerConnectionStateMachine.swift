import NIOCore
import SwiftProtobuf
import ToteProto

/// The server side of one connection as a pure state machine: bytes and events in, actions out.
///
/// It owns the frame decoder, the table of open streams, per-stream message credit in both
/// directions, the connection limits, and the drain on shutdown. It performs no I/O; the channel
/// handler in `ToteRPC` carries out the actions it returns, and the unit tests drive it directly.
public struct ServerConnectionStateMachine: Sendable {
    /// What the handler must do after feeding the state machine.
    public enum InboundAction: Sendable {
        /// The buffer holds no whole frame: read more.
        case needMoreData
        /// The frame was handled internally; keep reading.
        case none
        /// Write this frame (SETTINGS, a PING reply, a WINDOW_UPDATE).
        case write(Frame)
        /// A new call: resolve the method, check the caller's role, start the handler.
        /// `endStream` means the client will send no request message.
        case openCall(StreamID, Tote_V1_CallHeaders, endStream: Bool)
        /// Answer this stream with a STATUS and nothing else: it was never opened.
        case rejectCall(StreamID, RPCError)
        /// A request message for an open call; `endStream` means it is the client's last.
        case message(StreamID, ByteBuffer, endStream: Bool)
        /// The client half-closed without a message: it sends no more.
        case endOfInput(StreamID)
        /// The client abandoned the call: stop its handler, send nothing more on it.
        case cancelCall(StreamID)
        /// The client granted credit on this stream: writers waiting for it may continue.
        case creditAvailable(StreamID)
        /// A PING reply arrived (keepalive).
        case pingAcknowledged
        /// The client sent GOAWAY: it opens no more calls; close once the open ones finish.
        case peerGoingAway(GoAway)
        /// Fatal: write GOAWAY with this error, then close the connection.
        case closeWithError(ConnectionError)
    }

    enum State: Sendable, Equatable {
        case awaitingPreface
        case awaitingSettings
        case active
        /// GOAWAY sent or received: no new calls above `lastStreamID`.
        case draining(lastStreamID: StreamID)
        case closed
    }

    /// This side's settings, announced to the client.
    public let localSettings: ConnectionSettings
    /// The client's settings, once received.
    public private(set) var peerSettings = ConnectionSettings()
    private var decoder: FrameDecoder
    private(set) var state: State = .awaitingPreface
    private var streams: StreamTable
    /// The highest stream id the client has opened.
    public private(set) var highestStreamID: StreamID = 0
    /// The last few distinct HEADERS payloads and what they decoded to (see ``decodeHeaders(_:)``).
    private var recentHeaders: [(bytes: ByteBuffer, headers: Tote_V1_CallHeaders)] = []
    /// How many distinct HEADERS payloads ``recentHeaders`` keeps.
    static let recentHeadersLimit = 4
    /// Larger HEADERS payloads (big metadata) are decoded every time, never kept.
    static let recentHeadersMaxBytes = 1024

    public init(settings: ConnectionSettings) {
        self.localSettings = settings
        self.decoder = FrameDecoder(maxFrameSize: settings.maxFrameSize)
        self.streams = StreamTable(localWindow: settings.initialWindow)
    }

    /// Number of calls in progress.
    public var openStreamCount: Int { streams.count }
    /// Whether the connection is draining and has nothing left in flight: it may now be closed.
    public var isDrained: Bool {
        if case .draining = state { return streams.isEmpty }
        return state == .closed
    }
    /// Whether the connection has received its preface and SETTINGS.
    public var isEstablished: Bool {
        switch state {
        case .active, .draining: true
        case .awaitingPreface, .awaitingSettings, .closed: false
        }
    }

    // MARK: Inbound

    /// Consumes at most one frame (or the preface) from `buffer` and says what to do about it.
    /// Call repeatedly until it returns ``InboundAction/needMoreData``.
    public mutating func receive(_ buffer: inout ByteBuffer) -> InboundAction {
        switch state {
        case .closed:
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return .needMoreData
        case .awaitingPreface:
            return receivePreface(&buffer)
        case .awaitingSettings, .active, .draining:
            let frame: Frame
            do {
                guard let next = try decoder.next(from: &buffer) else { return .needMoreData }
                frame = next
            } catch {
                return fail(error)
            }
            return receive(frame)
        }
    }

    private mutating func receivePreface(_ buffer: inout ByteBuffer) -> InboundAction {
        let preface = ConnectionPreface.bytes
        let available = min(buffer.readableBytes, preface.count)
        guard let head = buffer.getBytes(at: buffer.readerIndex, length: available) else { return .needMoreData }
        guard head.elementsEqual(preface.prefix(available)) else {
            return fail(ConnectionError(.protocolError, "invalid connection preface: expected \"TOTE/1\\r\\n\""))
        }
        guard available == preface.count else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: preface.count)
        state = .awaitingSettings
        return .write(Frame(type: .settings, streamID: 0, payload: FrameEncoder.settingsPayload(localSettings)))
    }

    private mutating func receive(_ frame: Frame) -> InboundAction {
        if state == .awaitingSettings {
            guard frame.type == .settings else {
                return fail(ConnectionError(.protocolError, "expected SETTINGS after the preface, got \(frame.type)"))
            }
            do {
                peerSettings = try FrameEncoder.parseSettings(frame.payload)
            } catch {
                return fail(error)
            }
            state = .active
            return .none
        }
        switch frame.type {
        case .settings:
            return fail(ConnectionError(.protocolError, "SETTINGS may only be sent once"))
        case .headers:
            return receiveHeaders(frame)
        case .message:
            return receiveMessage(frame)
        case .cancel:
            guard streams.remove(frame.streamID) else {
                return ignoreOrFail(frame)
            }
            return .cancelCall(frame.streamID)
        case .windowUpdate:
            switch streams.receiveWindowUpdate(on: frame.streamID, payload: frame.payload) {
            case .accepted: return .creditAvailable(frame.streamID)
            case .unknownStream: return ignoreOrFail(frame)
            case .violation(let error): return fail(error)
            }
        case .ping:
            if frame.flags.contains(.ack) { return .pingAcknowledged }
            return .write(Frame(type: .ping, flags: .ack, streamID: 0, payload: frame.payload))
        case .goAway:
            let goAway = FrameEncoder.parseGoAway(frame.payload)
            if case .active = state { state = .draining(lastStreamID: highestStreamID) }
            return .peerGoingAway(goAway)
        case .halfClose:
            switch streams.endInbound(on: frame.streamID) {
            case .accepted: return .endOfInput(frame.streamID)
            case .unknownStream: return ignoreOrFail(frame)
            case .violation(let error): return fail(error)
            }
        case .status:
            return fail(ConnectionError(.protocolError, "STATUS frames are sent only by the server"))
        }
    }

    private mutating func receiveHeaders(_ frame: Frame) -> InboundAction {
        let id = frame.streamID
        guard id > highestStreamID else {
            return fail(ConnectionError(.protocolError, "HEADERS on stream \(id): stream ids must increase (last was \(highestStreamID))"))
        }
        guard id <= StreamID.maximum else {
            return fail(ConnectionError(.protocolError, "stream id \(id) exceeds the maximum \(StreamID.maximum)"))
        }
        highestStreamID = id
        if case .draining = state {
            return .rejectCall(id, RPCError(.unavailable, "server is shutting down; retry the call on a new connection"))
        }
        let headers: Tote_V1_CallHeaders
        do {
            headers = try decodeHeaders(frame.payload)
        } catch {
            return .rejectCall(id, RPCError(.invalidArgument, "malformed call headers: \(error)"))
        }
        guard streams.count < Int(localSettings.maxConcurrentStreams) else {
            return .rejectCall(
                id,
                .quotaExceeded(
                    "too many concurrent calls on this connection (limit \(localSettings.maxConcurrentStreams))",
                    subject: "max_concurrent_streams"
                )
            )
        }
        let endStream = frame.flags.contains(.endStream)
        streams.open(id, peerWindow: peerSettings.initialWindow, inboundOpen: !endStream)
        return .openCall(id, headers, endStream: endStream)
    }

    /// Decodes a HEADERS payload. A client usually sends the same bytes for every call of a
    /// method (same name, API key, options), so the last few distinct payloads that decoded are
    /// kept with their result: a payload equal byte for byte to one of them reuses its decoded
    /// value (strings shared, nothing allocated) instead of decoding again. Only successful
    /// decodes are kept, so a malformed payload is always rejected.
    mutating func decodeHeaders(_ payload: ByteBuffer) throws -> Tote_V1_CallHeaders {
        for index in recentHeaders.indices where recentHeaders[index].bytes == payload {
            return recentHeaders[index].headers
        }
        let headers = try Tote_V1_CallHeaders(buffer: payload)
        guard payload.readableBytes <= Self.recentHeadersMaxBytes else { return headers }
        // An own copy: the payload is a slice of the connection's inbound buffer.
        let entry = (bytes: ByteBuffer(buffer: payload), headers: headers)
        if recentHeaders.count < Self.recentHeadersLimit {
            recentHeaders.append(entry)
        } else {
            recentHeaders.removeFirst()
            recentHeaders.append(entry)
        }
        return headers
    }

    private mutating func receiveMessage(_ frame: Frame) -> InboundAction {
        let endStream = frame.flags.contains(.endStream)
        switch streams.receiveMessage(on: frame.streamID, endStream: endStream) {
        case .accepted: return .message(frame.streamID, frame.payload, endStream: endStream)
        case .unknownStream: return ignoreOrFail(frame)
        case .violation(let error): return fail(error)
        }
    }

    /// A frame for a stream we no longer track: fine if the stream existed (a call we already
    /// finished may still receive the client's frames), a protocol error if it never did.
    private mutating func ignoreOrFail(_ frame: Frame) -> InboundAction {
        frame.streamID <= highestStreamID
            ? .none
            : fail(ConnectionError(.protocolError, "\(frame.type) on stream \(frame.streamID), which was never opened"))
    }

    private mutating func fail(_ error: ConnectionError) -> InboundAction {
        state = .closed
        streams.removeAll()
        return .closeWithError(error)
    }

    // MARK: Outbound

    /// Consumes one unit of outbound credit for a response message, if there is any.
    public mutating func reserveOutboundMessage(on id: StreamID) -> SendDecision {
        streams.reserveOutbound(on: id)
    }

    /// The limit a message of `size` bytes breaks on the way to the client (its MAX_FRAME_SIZE),
    /// or nil if it may be sent.
    public func frameLimitExceeded(by size: Int) -> UInt32? {
        size > Int(peerSettings.maxFrameSize) ? peerSettings.maxFrameSize : nil
    }

    /// The handler consumed `count` request messages: returns the WINDOW_UPDATE to write, if any.
    public mutating func consumedInbound(_ count: UInt32, on id: StreamID) -> Frame? {
        streams.consumedInbound(count, on: id)
    }

    /// The call on `id` ended (STATUS written, or cancelled). Returns true if the connection is
    /// draining and that was its last call, so the handler should now close it.
    public mutating func streamClosed(_ id: StreamID) -> Bool {
        streams.remove(id)
        return isDrained
    }

    /// Starts a graceful shutdown: returns the GOAWAY to send (nil if already draining or closed).
    /// Calls already open run to completion; later ones are refused with UNAVAILABLE.
    public mutating func beginDrain(message: String = "server shutting down") -> Frame? {
        switch state {
        case .awaitingSettings, .awaitingPreface:
            // Nothing to drain yet: say goodbye and close.
            state = .closed
            return .goAway(lastStreamID: 0, .noError, message)
        case .active:
            state = .draining(lastStreamID: highestStreamID)
            return .goAway(lastStreamID: highestStreamID, .noError, message)
        case .draining, .closed:
            return nil
        }
    }

    /// Ends the connection because of an error detected outside the frame stream (a timeout):
    /// returns the GOAWAY to send before closing.
    public mutating func abort(_ error: ConnectionError) -> Frame {
        state = .closed
        streams.removeAll()
        return goAwayFrame(for: error)
    }

    /// The GOAWAY frame announcing a fatal error from ``InboundAction/closeWithError(_:)``.
    public func goAwayFrame(for error: ConnectionError) -> Frame {
        .goAway(lastStreamID: highestStreamID, error.code, error.message)
    }

    /// How many bytes the partial frame in `buffer` still lacks (for timeout messages).
    public func missingBytes(in buffer: ByteBuffer) -> Int {
        state == .awaitingPreface ? max(0, ConnectionPreface.bytes.count - buffer.readableBytes) : decoder.missingBytes(in: buffer)
    }
}
