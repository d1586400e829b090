import NIOCore

/// The kind of a frame. Values are fixed by docs/PROTOCOL.md; an unknown value is a protocol error.
public enum FrameType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// Connection settings; stream 0; sent once by each side right after the preface.
    case settings = 0x0
    /// Opens a call; payload is a `tote.v1.CallHeaders` message. Client to server.
    case headers = 0x1
    /// One protobuf message of a call, in either direction.
    case message = 0x2
    /// Ends a call; payload is a `tote.v1.CallStatus` message. Server to client.
    case status = 0x3
    /// Abandons a call; empty payload. Client to server.
    case cancel = 0x4
    /// Grants the peer credit to send more messages on a stream; payload is a `UInt32` increment.
    case windowUpdate = 0x5
    /// Liveness check; stream 0; 8 opaque bytes echoed back with the ACK flag.
    case ping = 0x6
    /// The sender will accept no new calls; stream 0; last stream id, error code, debug text.
    case goAway = 0x7
    /// The client sends no more messages on this stream (when its last MESSAGE did not say so);
    /// empty payload. Client to server.
    case halfClose = 0x8

    public var description: String {
        switch self {
        case .settings: "SETTINGS"
        case .headers: "HEADERS"
        case .message: "MESSAGE"
        case .status: "STATUS"
        case .cancel: "CANCEL"
        case .windowUpdate: "WINDOW_UPDATE"
        case .ping: "PING"
        case .goAway: "GOAWAY"
        case .halfClose: "HALF_CLOSE"
        }
    }
}

/// Frame flag bits. Bits a frame type does not define must be zero.
public struct FrameFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// On HEADERS or MESSAGE: the sender sends nothing more on this stream (half-close).
    public static let endStream = FrameFlags(rawValue: 0x1)
    /// On PING: this is the reply.
    public static let ack = FrameFlags(rawValue: 0x1)
}

/// A stream identifier. 0 addresses the connection; calls use 1...``StreamID/maximum``, strictly increasing.
public typealias StreamID = UInt32

extension StreamID {
    /// The highest stream id a call may use (2^31 - 1); a client that reaches it opens a new connection.
    public static let maximum: StreamID = 0x7FFF_FFFF
}

/// One frame of the Tote wire protocol: a fixed 10-byte header and a payload.
///
/// ```
/// +----------------+--------+--------+----------------+----------------
/// | length: u32 BE | type   | flags  | stream: u32 BE | payload (length bytes)
/// +----------------+--------+--------+----------------+----------------
/// ```
public struct Frame: Sendable, Hashable, CustomStringConvertible {
    /// Bytes in the header: length (4), type (1), flags (1), stream id (4).
    public static let headerSize = 10

    public var type: FrameType
    public var flags: FrameFlags
    public var streamID: StreamID
    public var payload: ByteBuffer

    public init(type: FrameType, flags: FrameFlags = [], streamID: StreamID, payload: ByteBuffer = ByteBuffer()) {
        self.type = type
        self.flags = flags
        self.streamID = streamID
        self.payload = payload
    }

    public var description: String {
        "\(type)(stream: \(streamID), flags: 0x\(String(flags.rawValue, radix: 16)), \(payload.readableBytes) bytes)"
    }
}

/// The 8 bytes a client sends first on every connection: ASCII `TOTE/1\r\n`.
public enum ConnectionPreface {
    public static let bytes: [UInt8] = Array("TOTE/1\r\n".utf8)
}

extension Frame {
    /// Flags each frame type may carry; anything else is a protocol error.
    static func allowedFlags(for type: FrameType) -> FrameFlags {
        switch type {
        case .headers, .message: .endStream
        case .ping: .ack
        case .settings, .status, .cancel, .windowUpdate, .goAway, .halfClose: []
        }
    }

    /// Whether the frame type addresses the connection (stream 0) rather than a call.
    static func isConnectionLevel(_ type: FrameType) -> Bool {
        switch type {
        case .settings, .ping, .goAway: true
        case .headers, .message, .status, .cancel, .windowUpdate, .halfClose: false
        }
    }
}
