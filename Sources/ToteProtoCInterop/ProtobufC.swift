import CProtobufC
import ToteProtoC

/// The Swift side of protobuf-c, the C library Tote's controller SDK and C client are built on.
///
/// Tote's servers speak swift-protobuf; this wrapper exists so that Swift tests can encode and
/// decode with exactly the C code that controllers run (`Sources/ToteProtoC`), proving the two
/// agree byte for byte. It is the only target that imports `CProtobufC`.
public enum ProtobufC {
    /// Why protobuf-c refused bytes.
    public struct UnpackError: Error, Hashable, Sendable, CustomStringConvertible {
        public let messageName: String
        public let byteCount: Int
        public var description: String { "protobuf-c could not unpack \(byteCount) bytes as \(messageName)" }
    }

    /// The linked protobuf-c version, e.g. "1.4.1".
    public static var version: String { String(cString: protobuf_c_version()) }

    /// Serializes a C message with protobuf-c.
    public static func pack(_ message: UnsafePointer<ProtobufCMessage>) -> [UInt8] {
        let size = protobuf_c_message_get_packed_size(message)
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            count = protobuf_c_message_pack(message, buffer.baseAddress)
        }
    }

    /// Parses bytes with protobuf-c into an owned C message of the given type.
    public static func unpack(_ descriptor: UnsafePointer<ProtobufCMessageDescriptor>, _ bytes: [UInt8]) throws(UnpackError) -> UnpackedMessage {
        let message = bytes.withUnsafeBufferPointer { buffer in
            protobuf_c_message_unpack(descriptor, nil, buffer.count, buffer.baseAddress)
        }
        guard let message else {
            throw UnpackError(messageName: String(cString: descriptor.pointee.name), byteCount: bytes.count)
        }
        return UnpackedMessage(message)
    }
}

/// A message unpacked by protobuf-c, freed with it when this value goes away.
public final class UnpackedMessage {
    /// The message; valid only while this object is alive.
    public let pointer: UnsafeMutablePointer<ProtobufCMessage>

    init(_ pointer: UnsafeMutablePointer<ProtobufCMessage>) {
        self.pointer = pointer
    }

    /// Borrows the message as its concrete generated C type.
    public func withMemoryRebound<T, R>(to type: T.Type, _ body: (UnsafeMutablePointer<T>) throws -> R) rethrows -> R {
        try UnsafeMutableRawPointer(pointer).withMemoryRebound(to: T.self, capacity: 1, body)
    }

    deinit {
        protobuf_c_message_free_unpacked(pointer, nil)
    }
}
