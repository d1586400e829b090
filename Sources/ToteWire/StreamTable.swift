import NIOCore

/// The open streams of one connection and their message credit in both directions.
///
/// Shared by the client and server state machines: both sides account credit the same way. A
/// receiver grants the sender `initialWindow` messages per stream up front and returns credit only
/// for messages its application has consumed, so at most one window is ever buffered per stream.
struct StreamTable: Sendable {
    struct Stream: Sendable {
        /// The peer may still send messages.
        var inboundOpen = true
        /// Messages the peer may still send before it needs a WINDOW_UPDATE from us.
        var inboundCredit: UInt32
        /// Messages we may still send before we need a WINDOW_UPDATE from the peer.
        var outboundCredit: UInt32
        /// Messages our application consumed whose credit has not been returned yet.
        var consumedNotGranted: UInt32 = 0
    }

    enum ReceiveResult: Equatable {
        case accepted(endStream: Bool)
        /// The stream is no longer open here (finished or cancelled locally): drop the frame.
        case unknownStream
        case violation(ConnectionError)
    }

    /// Messages the peer may send before we grant more.
    var localWindow: UInt32
    private(set) var streams: [StreamID: Stream] = [:]

    init(localWindow: UInt32) {
        self.localWindow = localWindow
    }

    var count: Int { streams.count }
    var isEmpty: Bool { streams.isEmpty }
    func contains(_ id: StreamID) -> Bool { streams[id] != nil }

    mutating func open(_ id: StreamID, peerWindow: UInt32, inboundOpen: Bool = true) {
        streams[id] = Stream(inboundOpen: inboundOpen, inboundCredit: localWindow, outboundCredit: peerWindow)
    }

    @discardableResult
    mutating func remove(_ id: StreamID) -> Bool { streams.removeValue(forKey: id) != nil }

    mutating func removeAll() { streams.removeAll() }

    /// Accounts one inbound MESSAGE frame.
    mutating func receiveMessage(on id: StreamID, endStream: Bool) -> ReceiveResult {
        guard var stream = streams[id] else { return .unknownStream }
        guard stream.inboundOpen else {
            return .violation(ConnectionError(.protocolError, "MESSAGE on stream \(id) after its sender ended it"))
        }
        guard stream.inboundCredit > 0 else {
            return .violation(ConnectionError(.flowControlError, "MESSAGE on stream \(id) without credit (window \(localWindow))"))
        }
        stream.inboundCredit -= 1
        if endStream { stream.inboundOpen = false }
        streams[id] = stream
        return .accepted(endStream: endStream)
    }

    /// Accounts an inbound HALF_CLOSE: the peer's side of the stream ends without a message.
    mutating func endInbound(on id: StreamID) -> ReceiveResult {
        guard var stream = streams[id] else { return .unknownStream }
        guard stream.inboundOpen else {
            return .violation(ConnectionError(.protocolError, "HALF_CLOSE on stream \(id) after its sender ended it"))
        }
        stream.inboundOpen = false
        streams[id] = stream
        return .accepted(endStream: true)
    }

    /// Accounts an inbound WINDOW_UPDATE.
    mutating func receiveWindowUpdate(on id: StreamID, payload: ByteBuffer) -> ReceiveResult {
        let increment: UInt32
        do { increment = try FrameEncoder.parseWindowUpdate(payload) } catch { return .violation(error) }
        guard var stream = streams[id] else { return .unknownStream }
        let (sum, overflow) = stream.outboundCredit.addingReportingOverflow(increment)
        guard !overflow else {
            return .violation(ConnectionError(.flowControlError, "WINDOW_UPDATE overflows the credit of stream \(id)"))
        }
        stream.outboundCredit = sum
        streams[id] = stream
        return .accepted(endStream: false)
    }

    /// Consumes one unit of outbound credit, if there is any.
    mutating func reserveOutbound(on id: StreamID) -> SendDecision {
        guard var stream = streams[id] else { return .streamClosed }
        guard stream.outboundCredit > 0 else { return .wait }
        stream.outboundCredit -= 1
        streams[id] = stream
        return .send
    }

    /// Records consumed messages; returns the WINDOW_UPDATE to write once half a window is owed.
    mutating func consumedInbound(_ count: UInt32, on id: StreamID) -> Frame? {
        guard var stream = streams[id], stream.inboundOpen else { return nil }
        stream.consumedNotGranted += count
        guard stream.consumedNotGranted >= max(1, localWindow / 2) else {
            streams[id] = stream
            return nil
        }
        let grant = stream.consumedNotGranted
        stream.inboundCredit += grant
        stream.consumedNotGranted = 0
        streams[id] = stream
        return Frame(type: .windowUpdate, streamID: id, payload: FrameEncoder.windowUpdatePayload(grant))
    }
}

/// Whether a message may be sent on a stream now.
public enum SendDecision: Sendable, Equatable {
    /// Send it; one credit was consumed.
    case send
    /// No credit: wait until the peer grants more.
    case wait
    /// The stream is gone (finished, cancelled, connection closing): drop the message.
    case streamClosed
}

extension Frame {
    /// A GOAWAY frame.
    static func goAway(lastStreamID: StreamID, _ code: ConnectionErrorCode, _ message: String) -> Frame {
        Frame(
            type: .goAway,
            streamID: 0,
            payload: FrameEncoder.goAwayPayload(GoAway(lastStreamID: lastStreamID, code: code, message: message))
        )
    }
}
