/// Error codes carried by GOAWAY: why a connection is being closed.
public struct ConnectionErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Graceful shutdown: in-flight calls complete, no new ones are accepted.
    public static let noError = ConnectionErrorCode(rawValue: 0)
    /// The peer broke the protocol: bad preface, unknown frame type, wrong stream, bad flags, …
    public static let protocolError = ConnectionErrorCode(rawValue: 1)
    /// A frame's length exceeded the receiver's MAX_FRAME_SIZE.
    public static let frameSizeError = ConnectionErrorCode(rawValue: 2)
    /// The peer sent a MESSAGE without credit on that stream.
    public static let flowControlError = ConnectionErrorCode(rawValue: 3)
    /// A frame, the preface or a PING reply did not arrive in time.
    public static let timeout = ConnectionErrorCode(rawValue: 4)
    /// The server is at its connection limit.
    public static let connectionLimit = ConnectionErrorCode(rawValue: 5)
    /// The sender failed internally.
    public static let internalError = ConnectionErrorCode(rawValue: 6)

    public var description: String {
        switch self {
        case .noError: "NO_ERROR"
        case .protocolError: "PROTOCOL_ERROR"
        case .frameSizeError: "FRAME_SIZE_ERROR"
        case .flowControlError: "FLOW_CONTROL_ERROR"
        case .timeout: "TIMEOUT"
        case .connectionLimit: "CONNECTION_LIMIT"
        case .internalError: "INTERNAL_ERROR"
        default: "UNKNOWN(\(rawValue))"
        }
    }
}

/// A fatal connection-level failure: the connection is closed after a GOAWAY carrying it.
public struct ConnectionError: Error, Hashable, Sendable, CustomStringConvertible {
    public var code: ConnectionErrorCode
    /// Names the problem precisely, e.g. "frame of 5000000 bytes exceeds MAX_FRAME_SIZE 4194304".
    public var message: String

    public init(_ code: ConnectionErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}

/// The decoded payload of a GOAWAY frame.
public struct GoAway: Hashable, Sendable {
    /// The highest stream id the sender has processed or will process; calls above it were not
    /// seen and may be retried on a new connection.
    public var lastStreamID: StreamID
    public var code: ConnectionErrorCode
    public var message: String

    public init(lastStreamID: StreamID, code: ConnectionErrorCode, message: String) {
        self.lastStreamID = lastStreamID
        self.code = code
        self.message = message
    }
}
