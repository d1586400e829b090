import NIOCore
import SwiftProtobuf
import ToteProto

/// The client side of one connection as a pure state machine: frames in, actions out.
///
/// It allocates stream ids, enforces the server's concurrency limit (callers beyond it wait), keeps
/// per-stream credit, and tracks GOAWAY. The channel handler in `ToteRPC` performs its actions.
public struct ClientConnectionStateMachine: Sendable {
    /// What the handler must do after feeding the state machine.
    public enum InboundAction: Sendable {
        case needMoreData
        case none
        /// Write this frame (a PING reply, a WINDOW_UPDATE).
        case write(Frame)
        /// The server's SETTINGS arrived: the connection is ready for calls.
        case ready
        /// A response message on an open call; may be followed by more, then a STATUS.
        case message(StreamID, ByteBuffer)
        /// The call ended with this status (OK or an error).
        case status(StreamID, Tote_V1_CallStatus)
        /// A call ended because its STATUS could not be decoded.
        case malformedStatus(StreamID, RPCError)
        /// The server granted credit on this stream.
        case creditAvailable(StreamID)
        case pingAcknowledged
        /// The server is going away: calls above `lastStreamID` were not processed and fail with
        /// UNAVAILABLE; calls at or below it complete. Open no new calls on this connection.
        case goingAway(GoAway, unprocessed: [StreamID])
        /// Fatal: write GOAWAY with this error (if still possible) and close.
        case closeWithError(ConnectionError)
    }

    /// Whether a new call may start.
    public enum OpenDecision: Sendable, Equatable {
        case opened(StreamID)
        /// The server's MAX_CONCURRENT_STREAMS is reached: wait for a call to finish.
        case wait
        /// This connection takes no new calls (GOAWAY, closed, stream ids exhausted).
        case refused(String)
    }

    enum State: Sendable, Equatable {
        case awaitingSettings
        case active
        case goingAway(lastStreamID: StreamID)
        case closed
    }

    public let localSettings: ConnectionSettings
    public private(set) var peerSettings = ConnectionSettings()
    private var decoder: FrameDecoder
    private(set) var state: State = .awaitingSettings
    private var streams: StreamTable
    private var nextStreamID: StreamID = 1

    public init(settings: ConnectionSettings = ConnectionSettings()) {
        self.localSettings = settings
        self.decoder = FrameDecoder(maxFrameSize: settings.maxFrameSize)
        self.streams = StreamTable(localWindow: settings.initialWindow)
    }

    /// The bytes a client writes first: the preface and its SETTINGS frame.
    public func handshakeBytes() -> ByteBuffer {
        var buffer = ByteBuffer(bytes: ConnectionPreface.bytes)
        FrameEncoder.write(Frame(type: .settings, streamID: 0, payload: FrameEncoder.settingsPayload(localSettings)), into: &buffer)
        return buffer
    }

    public var openStreamCount: Int { streams.count }
    public var isReady: Bool { state == .active }
    public var acceptsNewCalls: Bool { state == .active || state == .awaitingSettings }

    // MARK: Inbound

    /// Consumes at most one frame from `buffer`; call until ``InboundAction/needMoreData``.
    public mutating func receive(_ buffer: inout ByteBuffer) -> InboundAction {
        guard state != .closed else {
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return .needMoreData
        }
        let frame: Frame
        do {
            guard let next = try decoder.next(from: &buffer) else { return .needMoreData }
            frame = next
        } catch {
            return fail(error)
        }
        if state == .awaitingSettings, frame.type != .settings, frame.type != .goAway {
            return fail(ConnectionError(.protocolError, "expected SETTINGS from the server first, got \(frame.type)"))
        }
        switch frame.type {
        case .settings:
            guard state == .awaitingSettings else {
                return fail(ConnectionError(.protocolError, "SETTINGS may only be sent once"))
            }
            do { peerSettings = try FrameEncoder.parseSettings(frame.payload) } catch { return fail(error) }
            state = .active
            return .ready
        case .message:
            switch streams.receiveMessage(on: frame.streamID, endStream: false) {
            case .accepted: return .message(frame.streamID, frame.payload)
            case .unknownStream: return ignoreOrFail(frame)
            case .violation(let error): return fail(error)
            }
        case .status:
            guard streams.remove(frame.streamID) else { return ignoreOrFail(frame) }
            do {
                let status = try Tote_V1_CallStatus(buffer: frame.payload)
                return .status(frame.streamID, status)
            } catch {
                return .malformedStatus(frame.streamID, RPCError(.internal, "server sent an undecodable STATUS: \(error)"))
            }
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
            let unprocessed = streams.streams.keys.filter { $0 > goAway.lastStreamID }.sorted()
            for id in unprocessed { streams.remove(id) }
            state = goAway.code == .noError ? .goingAway(lastStreamID: goAway.lastStreamID) : .closed
            if state == .closed { streams.removeAll() }
            return .goingAway(goAway, unprocessed: unprocessed)
        case .headers, .cancel, .halfClose:
            return fail(ConnectionError(.protocolError, "\(frame.type) frames are sent only by the client"))
        }
    }

    private mutating func ignoreOrFail(_ frame: Frame) -> InboundAction {
        frame.streamID < nextStreamID
            ? .none
            : fail(ConnectionError(.protocolError, "\(frame.type) on stream \(frame.streamID), which was never opened"))
    }

    private mutating func fail(_ error: ConnectionError) -> InboundAction {
        state = .closed
        streams.removeAll()
        return .closeWithError(error)
    }

    // MARK: Outbound

    /// Allocates a stream for a new call, if the connection and the server's limit allow it.
    /// `halfClosed` is true when the request is sent with END_STREAM on its HEADERS or sole MESSAGE.
    public mutating func openStream() -> OpenDecision {
        switch state {
        case .goingAway:
            return .refused("the server is going away; the call was not sent")
        case .closed:
            return .refused("the connection is closed")
        case .awaitingSettings, .active:
            break
        }
        guard streams.count < Int(peerSettings.maxConcurrentStreams) else { return .wait }
        guard nextStreamID <= StreamID.maximum else {
            state = .goingAway(lastStreamID: nextStreamID - 1)
            return .refused("stream ids on this connection are exhausted")
        }
        let id = nextStreamID
        nextStreamID += 1
        streams.open(id, peerWindow: peerSettings.initialWindow)
        return .opened(id)
    }

    /// The limit a message of `size` bytes breaks on the way to the server (its MAX_FRAME_SIZE),
    /// or nil if it may be sent.
    public func frameLimitExceeded(by size: Int) -> UInt32? {
        size > Int(peerSettings.maxFrameSize) ? peerSettings.maxFrameSize : nil
    }

    /// Consumes one unit of outbound credit for a request message, if there is any.
    public mutating func reserveOutboundMessage(on id: StreamID) -> SendDecision {
        streams.reserveOutbound(on: id)
    }

    /// The application consumed `count` response messages: the WINDOW_UPDATE to write, if any.
    public mutating func consumedInbound(_ count: UInt32, on id: StreamID) -> Frame? {
        streams.consumedInbound(count, on: id)
    }

    /// The call on `id` was abandoned locally (cancelled, deadline): returns the CANCEL frame to
    /// send, or nil if the stream had already ended.
    public mutating func cancelStream(_ id: StreamID) -> Frame? {
        guard streams.remove(id) else { return nil }
        return Frame(type: .cancel, streamID: id)
    }

    /// Whether the connection is going away and its last call has ended: it may now be closed.
    public var isDrained: Bool {
        switch state {
        case .goingAway: streams.isEmpty
        case .closed: true
        case .active, .awaitingSettings: false
        }
    }

    /// Every stream still open, for failing them when the connection drops.
    public mutating func closeAll() -> [StreamID] {
        let ids = streams.streams.keys.sorted()
        streams.removeAll()
        state = .closed
        return ids
    }
}
