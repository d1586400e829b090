import Foundation

/// A query parameter in PostgreSQL's binary format, with its type OID.
///
/// Tote sends every parameter in binary: no text parsing on the server, no quoting bugs. Arrays
/// exist for multi-row statements (`INSERT … SELECT * FROM unnest($1::uuid[], …)`).
public enum PostgresValue: Sendable, Hashable {
    case null(oid: UInt32)
    case bool(Bool)
    case int32(Int32)
    case int64(Int64)
    case text(String)
    case bytea([UInt8])
    case uuid(UUID)
    /// `xid8`: a 64-bit transaction id.
    case xid8(UInt64)
    /// `timestamptz`, as microseconds since the Unix epoch.
    case timestamp(microsSinceEpoch: Int64)
    /// `jsonb`, as its JSON text.
    case jsonb(String)
    case int32Array([Int32])
    case int64Array([Int64])
    case textArray([String])
    case byteaArray([[UInt8]])
    case uuidArray([UUID])
    case jsonbArray([String])

    /// PostgreSQL type OIDs (pg_type.oid), fixed across versions.
    public enum OID {
        public static let bool: UInt32 = 16
        public static let bytea: UInt32 = 17
        public static let int8: UInt32 = 20
        public static let int2: UInt32 = 21
        public static let int4: UInt32 = 23
        public static let text: UInt32 = 25
        public static let varchar: UInt32 = 1043
        public static let timestamptz: UInt32 = 1184
        public static let uuid: UInt32 = 2950
        public static let jsonb: UInt32 = 3802
        public static let xid8: UInt32 = 5069
        public static let int4Array: UInt32 = 1007
        public static let int8Array: UInt32 = 1016
        public static let textArray: UInt32 = 1009
        public static let byteaArray: UInt32 = 1001
        public static let uuidArray: UInt32 = 2951
        public static let jsonbArray: UInt32 = 3807
    }

    /// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01 UTC).
    static let postgresEpochOffsetMicros: Int64 = 946_684_800_000_000

    public var oid: UInt32 {
        switch self {
        case .null(let oid): oid
        case .bool: OID.bool
        case .int32: OID.int4
        case .int64: OID.int8
        case .text: OID.text
        case .bytea: OID.bytea
        case .uuid: OID.uuid
        case .xid8: OID.xid8
        case .timestamp: OID.timestamptz
        case .jsonb: OID.jsonb
        case .int32Array: OID.int4Array
        case .int64Array: OID.int8Array
        case .textArray: OID.textArray
        case .byteaArray: OID.byteaArray
        case .uuidArray: OID.uuidArray
        case .jsonbArray: OID.jsonbArray
        }
    }

    /// The binary representation, or nil for SQL NULL.
    public func encoded() -> [UInt8]? {
        var out: [UInt8] = []
        switch self {
        case .null: return nil
        case .bool(let value): out = [value ? 1 : 0]
        case .int32(let value): out.appendBigEndian(value)
        case .int64(let value): out.appendBigEndian(value)
        case .text(let value): out = Array(value.utf8)
        case .bytea(let value): out = value
        case .uuid(let value): out = value.bytes
        case .xid8(let value): out.appendBigEndian(value)
        case .timestamp(let micros): out.appendBigEndian(micros - Self.postgresEpochOffsetMicros)
        case .jsonb(let json): out = [1] + Array(json.utf8)
        case .int32Array(let values): out = Self.array(OID.int4, values.map { v in var b: [UInt8] = []; b.appendBigEndian(v); return b })
        case .int64Array(let values): out = Self.array(OID.int8, values.map { v in var b: [UInt8] = []; b.appendBigEndian(v); return b })
        case .textArray(let values): out = Self.array(OID.text, values.map { Array($0.utf8) })
        case .byteaArray(let values): out = Self.array(OID.bytea, values)
        case .uuidArray(let values): out = Self.array(OID.uuid, values.map(\.bytes))
        case .jsonbArray(let values): out = Self.array(OID.jsonb, values.map { [1] + Array($0.utf8) })
        }
        return out
    }

    /// A one-dimensional binary array: ndim, has-null flag, element OID, length, lower bound 1,
    /// then each element as length + bytes.
    private static func array(_ elementOID: UInt32, _ elements: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(20 + elements.reduce(0) { $0 + 4 + $1.count })
        out.appendBigEndian(Int32(1))
        out.appendBigEndian(Int32(0))
        out.appendBigEndian(elementOID)
        out.appendBigEndian(Int32(elements.count))
        out.appendBigEndian(Int32(1))
        for element in elements {
            out.appendBigEndian(Int32(element.count))
            out.append(contentsOf: element)
        }
        return out
    }
}

extension [UInt8] {
    mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.bigEndian) { append(contentsOf: $0) }
    }
}

extension UUID {
    /// The 16 bytes in network order, as PostgreSQL's `uuid` binary format has them.
    var bytes: [UInt8] {
        withUnsafeBytes(of: uuid) { Array($0) }
    }

    init(bytes: UnsafeRawBufferPointer) {
        var value: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &value) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes.prefix(16))) }
        self.init(uuid: value)
    }
}
