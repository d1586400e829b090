import NIOCore
import SwiftProtobuf

/// Lets swift-protobuf read from and write into a `ByteBuffer` directly, without copying through
/// `[UInt8]`: decoding borrows the frame payload in place; encoding writes into a fresh buffer.
///
/// An encoded message's buffer has room for a frame header before its readable bytes and for
/// one more header after them (``Frame/headerSize`` each), so that the server can frame a unary
/// response and its STATUS in place (``framingRoom``) instead of copying the message.
public struct ProtobufByteBuffer: SwiftProtobufContiguousBytes, Sendable {
    public var buffer: ByteBuffer

    /// Spare bytes an encoded message's buffer has before and after it.
    public static let framingRoom = Frame.headerSize

    public init(_ buffer: ByteBuffer) { self.buffer = buffer }

    public init(repeating: UInt8, count: Int) {
        var buffer = ByteBufferAllocator().buffer(capacity: count + 2 * Self.framingRoom)
        buffer.moveWriterIndex(forwardBy: Self.framingRoom)
        buffer.moveReaderIndex(forwardBy: Self.framingRoom)
        buffer.writeRepeatingByte(repeating, count: count)
        self.buffer = buffer
    }

    public init<S: Sequence>(_ sequence: S) where S.Element == UInt8 {
        buffer = ByteBuffer(bytes: sequence)
    }

    /// A buffer holding `bytes` (an encoded message) with the same framing room as an encoded
    /// message's buffer, so that the server frames it in place.
    public static func framable(copying bytes: [UInt8]) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: bytes.count + 2 * framingRoom)
        buffer.moveWriterIndex(forwardBy: framingRoom)
        buffer.moveReaderIndex(forwardBy: framingRoom)
        buffer.writeBytes(bytes)
        return buffer
    }

    public var count: Int { buffer.readableBytes }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withUnsafeReadableBytes(body)
    }

    public mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withUnsafeMutableReadableBytes(body)
    }
}

extension SwiftProtobuf.Message {
    /// Decodes a message from a frame payload without copying it.
    @inlinable
    public init(buffer: ByteBuffer) throws {
        try self.init(serializedBytes: ProtobufByteBuffer(buffer))
    }

    /// Encodes the message into a new `ByteBuffer`.
    @inlinable
    public func serializedBuffer() throws -> ByteBuffer {
        let bytes: ProtobufByteBuffer = try serializedBytes()
        return bytes.buffer
    }
}
