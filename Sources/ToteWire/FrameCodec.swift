import NIOCore

/// Splits a byte stream into frames. Pure: it holds no I/O and no clock.
///
/// Feed it everything read from the socket (appended to one buffer); call ``next(from:)`` until it
/// returns `nil`, which means more bytes are needed. A frame header announcing a payload over the
/// limit fails at once, before its payload arrives, so a peer cannot make the receiver buffer it.
public struct FrameDecoder: Sendable {
    /// Largest payload accepted, from this side's own settings.
    public var maxFrameSize: UInt32

    public init(maxFrameSize: UInt32) {
        self.maxFrameSize = maxFrameSize
    }

    /// Decodes the next whole frame, consuming its bytes; `nil` if the buffer holds only part of one.
    ///
    /// - Throws: ``ConnectionError`` for an oversized frame (FRAME_SIZE_ERROR) or a frame that is
    ///   malformed in itself (PROTOCOL_ERROR): unknown type, undefined flags, wrong stream for its
    ///   type, or a payload of the wrong size for its type.
    public mutating func next(from buffer: inout ByteBuffer) throws(ConnectionError) -> Frame? {
        guard buffer.readableBytes >= Frame.headerSize else { return nil }
        let start = buffer.readerIndex
        let length = buffer.getInteger(at: start, as: UInt32.self)!
        let rawType = buffer.getInteger(at: start + 4, as: UInt8.self)!
        let rawFlags = buffer.getInteger(at: start + 5, as: UInt8.self)!
        let streamID = buffer.getInteger(at: start + 6, as: UInt32.self)!

        guard length <= maxFrameSize else {
            throw ConnectionError(.frameSizeError, "frame of \(length) bytes exceeds MAX_FRAME_SIZE \(maxFrameSize)")
        }
        guard let type = FrameType(rawValue: rawType) else {
            throw ConnectionError(.protocolError, "unknown frame type 0x\(String(rawType, radix: 16))")
        }
        let flags = FrameFlags(rawValue: rawFlags)
        guard flags.isSubset(of: Frame.allowedFlags(for: type)) else {
            throw ConnectionError(.protocolError, "\(type) frame with undefined flags 0x\(String(rawFlags, radix: 16))")
        }
        if Frame.isConnectionLevel(type) {
            guard streamID == 0 else {
                throw ConnectionError(.protocolError, "\(type) frame must be on stream 0, not \(streamID)")
            }
        } else if streamID == 0 {
            throw ConnectionError(.protocolError, "\(type) frame must not be on stream 0")
        }
        switch type {
        case .settings where length % 6 != 0:
            throw ConnectionError(.protocolError, "SETTINGS payload of \(length) bytes is not a multiple of 6")
        case .ping where length != 8:
            throw ConnectionError(.protocolError, "PING payload must be 8 bytes, not \(length)")
        case .windowUpdate where length != 4:
            throw ConnectionError(.protocolError, "WINDOW_UPDATE payload must be 4 bytes, not \(length)")
        case .goAway where length < 8:
            throw ConnectionError(.protocolError, "GOAWAY payload must be at least 8 bytes, not \(length)")
        case .cancel where length != 0, .halfClose where length != 0:
            throw ConnectionError(.protocolError, "\(type) payload must be empty, not \(length) bytes")
        default:
            break
        }

        guard buffer.readableBytes >= Frame.headerSize + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: Frame.headerSize)
        let payload = buffer.readSlice(length: Int(length))!
        return Frame(type: type, flags: flags, streamID: streamID, payload: payload)
    }

    /// How many bytes the frame being received still lacks, for timeout messages; 0 at a boundary.
    public func missingBytes(in buffer: ByteBuffer) -> Int {
        guard buffer.readableBytes > 0 else { return 0 }
        guard buffer.readableBytes >= Frame.headerSize,
              let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self)
        else { return Frame.headerSize - buffer.readableBytes }
        return max(0, Frame.headerSize + Int(length) - buffer.readableBytes)
    }
}

/// Writes frames and decodes the fixed-layout payloads (SETTINGS, PING, WINDOW_UPDATE, GOAWAY).
public enum FrameEncoder {
    /// Appends one frame (header and payload) to `buffer`.
    @inlinable
    public static func write(_ frame: Frame, into buffer: inout ByteBuffer) {
        writeHeader(type: frame.type, flags: frame.flags, streamID: frame.streamID, length: frame.payload.readableBytes, into: &buffer)
        var payload = frame.payload
        buffer.writeBuffer(&payload)
    }

    /// Appends a frame header; the caller appends exactly `length` payload bytes next.
    @inlinable
    public static func writeHeader(type: FrameType, flags: FrameFlags, streamID: StreamID, length: Int, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt32(length))
        buffer.writeInteger(type.rawValue)
        buffer.writeInteger(flags.rawValue)
        buffer.writeInteger(streamID)
    }

    /// Writes a frame header at `index` (in spare room before a payload), leaving the indices alone.
    @inlinable
    public static func setHeader(type: FrameType, flags: FrameFlags, streamID: StreamID, length: Int, at index: Int, in buffer: inout ByteBuffer) {
        buffer.setInteger(UInt32(length), at: index)
        buffer.setInteger(type.rawValue, at: index + 4)
        buffer.setInteger(flags.rawValue, at: index + 5)
        buffer.setInteger(streamID, at: index + 6)
    }

    /// Appends a frame whose payload is a serialized protobuf message, writing the payload in place.
    public static func write(type: FrameType, flags: FrameFlags, streamID: StreamID, payload bytes: some Collection<UInt8>, into buffer: inout ByteBuffer) {
        writeHeader(type: type, flags: flags, streamID: streamID, length: bytes.count, into: &buffer)
        buffer.writeBytes(bytes)
    }

    public static func settingsPayload(_ settings: ConnectionSettings) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(18)
        for (id, value) in [
            (ConnectionSettings.Identifier.maxFrameSize, settings.maxFrameSize),
            (.maxConcurrentStreams, settings.maxConcurrentStreams),
            (.initialWindow, settings.initialWindow),
        ] {
            buffer.writeInteger(id.rawValue)
            buffer.writeInteger(value)
        }
        return buffer
    }

    /// Parses a SETTINGS payload on top of the defaults; unknown identifiers are skipped.
    public static func parseSettings(_ payload: ByteBuffer) throws(ConnectionError) -> ConnectionSettings {
        var payload = payload
        var settings = ConnectionSettings()
        while let id = payload.readInteger(as: UInt16.self), let value = payload.readInteger(as: UInt32.self) {
            switch ConnectionSettings.Identifier(rawValue: id) {
            case .maxFrameSize:
                guard value >= ConnectionSettings.minimumMaxFrameSize else {
                    throw ConnectionError(.protocolError, "SETTINGS MAX_FRAME_SIZE \(value) is below the minimum \(ConnectionSettings.minimumMaxFrameSize)")
                }
                settings.maxFrameSize = value
            case .maxConcurrentStreams:
                settings.maxConcurrentStreams = value
            case .initialWindow:
                guard value >= 1 else {
                    throw ConnectionError(.protocolError, "SETTINGS INITIAL_WINDOW must be at least 1")
                }
                settings.initialWindow = value
            case nil:
                continue
            }
        }
        return settings
    }

    public static func windowUpdatePayload(_ increment: UInt32) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(increment)
        return buffer
    }

    public static func parseWindowUpdate(_ payload: ByteBuffer) throws(ConnectionError) -> UInt32 {
        guard let increment = payload.getInteger(at: payload.readerIndex, as: UInt32.self), increment > 0 else {
            throw ConnectionError(.protocolError, "WINDOW_UPDATE increment must be positive")
        }
        return increment
    }

    public static func goAwayPayload(_ goAway: GoAway) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(goAway.lastStreamID)
        buffer.writeInteger(goAway.code.rawValue)
        buffer.writeString(goAway.message)
        return buffer
    }

    public static func parseGoAway(_ payload: ByteBuffer) -> GoAway {
        var payload = payload
        let last = payload.readInteger(as: UInt32.self) ?? 0
        let code = payload.readInteger(as: UInt32.self) ?? 0
        let message = payload.readString(length: payload.readableBytes) ?? ""
        return GoAway(lastStreamID: last, code: ConnectionErrorCode(rawValue: code), message: message)
    }
}
