import ToteProto

/// Key and value layouts of the order-view databases (docs/READMODELS.md, "Order views").
///
/// All integers are big-endian so that LMDB's byte order is their numeric order. An id inside a
/// composite key is length-prefixed (`u16` length + UTF-8 bytes), so one id can never be a prefix
/// of another's keys.
public enum OrderKeys {
    /// `orders.view`: order id (UTF-8) → encoded `tote.v1.OrderView` (the GetOrderView response).
    public static let viewDB = "orders.view"
    /// `orders.events`: lp(order id) + u64 stream version → the event as ``StoredOrderEvent`` bytes.
    public static let eventsDB = "orders.events"
    /// `orders.by_customer`: lp(customer id) + u64 inverted placed-at + order id → encoded `OrderSummary`.
    public static let byCustomerDB = "orders.by_customer"
    /// `orders.by_state`: u8 state + u64 state-since + order id → encoded `OrderSummary`.
    public static let byStateDB = "orders.by_state"
    /// `orders.payment_events`: lp(payment id) + u64 stream version → the `PaymentEvent` envelope bytes.
    public static let paymentEventsDB = "orders.payment_events"
    /// `orders.payments`: lp(order id) + payment id → encoded `PaymentSummary`.
    public static let paymentsDB = "orders.payments"

    /// Every database the order views own.
    public static let all = [viewDB, eventsDB, byCustomerDB, byStateDB, paymentEventsDB, paymentsDB]

    /// `u16` length + UTF-8 bytes of `id`.
    static func lengthPrefixed(_ id: String) throws(OrderProjectionError) -> [UInt8] {
        let bytes = Array(id.utf8)
        guard bytes.count <= Int(UInt16.max) else { throw .idTooLong(String(id.prefix(64))) }
        return [UInt8(bytes.count >> 8), UInt8(bytes.count & 0xFF)] + bytes
    }

    /// Big-endian bytes of `value`.
    static func bigEndian(_ value: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * UInt64($0))) }
    }

    /// Reads a big-endian `u64` at `offset`.
    static func readBigEndian(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> UInt64 {
        var value: UInt64 = 0
        for i in 0..<8 { value = value << 8 | UInt64(bytes[offset + i]) }
        return value
    }

    /// Microseconds since the epoch as an unsigned value that sorts like the signed one.
    static func sortableTime(_ micros: Int64) -> UInt64 {
        UInt64(bitPattern: micros) ^ (1 << 63)
    }

    /// The inverse of ``sortableTime(_:)``.
    static func time(fromSortable value: UInt64) -> Int64 {
        Int64(bitPattern: value ^ (1 << 63))
    }

    /// The one-byte state prefix of `orders.by_state`, or nil for a state that is not indexed
    /// (unspecified, or an unknown value above 255).
    static func stateByte(_ state: Tote_V1_OrderState) -> UInt8? {
        guard state != .unspecified, state.rawValue > 0, state.rawValue <= 255 else { return nil }
        return UInt8(state.rawValue)
    }

    /// The `orders.by_customer` prefix of one customer's orders.
    public static func customerPrefix(_ customerID: String) throws -> [UInt8] {
        try lengthPrefixed(customerID)
    }

    /// The `orders.by_customer` key of an order: newest placed first.
    public static func customerKey(customerID: String, placedAtMicros: Int64, orderID: String) throws -> [UInt8] {
        try lengthPrefixed(customerID) + bigEndian(~sortableTime(placedAtMicros)) + Array(orderID.utf8)
    }

    /// The `orders.by_state` key of an order: oldest in the state first.
    public static func stateKey(state: UInt8, sinceMicros: Int64, orderID: String) -> [UInt8] {
        [state] + bigEndian(sortableTime(sinceMicros)) + Array(orderID.utf8)
    }

    /// The `orders.events` prefix of one order's events.
    static func eventsPrefix(_ orderID: String) throws -> [UInt8] { try lengthPrefixed(orderID) }

    /// The `orders.payments` prefix of one order's payments.
    static func paymentsPrefix(_ orderID: String) throws -> [UInt8] { try lengthPrefixed(orderID) }
}

/// An order event as `orders.events` keeps it: what ``OrderDecider/timeline(_:)`` needs beyond the
/// envelope (when the log recorded it, and the actor from the log's metadata).
///
/// Layout: `u8` format (1) · `i64` recorded-at µs (big-endian) · lp(actor id) · lp(actor role) ·
/// the `tote.v1.OrderEvent` envelope bytes to the end.
struct StoredOrderEvent {
    var recordedAtMicros: Int64
    var actorID: String
    var actorRole: String
    var envelope: [UInt8]

    static let format: UInt8 = 1

    func encoded() throws -> [UInt8] {
        var bytes: [UInt8] = [Self.format]
        bytes += OrderKeys.bigEndian(UInt64(bitPattern: recordedAtMicros))
        bytes += try OrderKeys.lengthPrefixed(actorID)
        bytes += try OrderKeys.lengthPrefixed(actorRole)
        bytes += envelope
        return bytes
    }

    init(recordedAtMicros: Int64, actorID: String, actorRole: String, envelope: [UInt8]) {
        self.recordedAtMicros = recordedAtMicros
        self.actorID = actorID
        self.actorRole = actorRole
        self.envelope = envelope
    }

    /// Decodes a stored record; throws ``OrderProjectionError/corruptRecord(_:)`` on bad bytes.
    init(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        func take(_ n: Int) throws -> Int {
            guard n >= 0, offset + n <= bytes.count else { throw OrderProjectionError.corruptRecord(OrderKeys.eventsDB) }
            defer { offset += n }
            return offset
        }
        func string() throws -> String {
            let at = try take(2)
            let length = Int(bytes[at]) << 8 | Int(bytes[at + 1])
            let start = try take(length)
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<start + length]), as: UTF8.self)
        }
        let formatAt = try take(1)
        guard bytes[formatAt] == Self.format else { throw OrderProjectionError.corruptRecord(OrderKeys.eventsDB) }
        let timeAt = try take(8)
        recordedAtMicros = Int64(bitPattern: OrderKeys.readBigEndian(bytes, at: timeAt))
        actorID = try string()
        actorRole = try string()
        envelope = Array(bytes[offset...])
    }
}

/// Why the order-view projection could not apply an event. The projector stops on these (the
/// event stays unapplied) rather than silently skipping a fact.
public enum OrderProjectionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The event's data is not a valid envelope of its stream's aggregate.
    case undecodableEvent(stream: String, version: Int64)
    /// A stored record is not in the expected layout (database name).
    case corruptRecord(String)
    /// An id longer than 65,535 bytes (its first 64 characters).
    case idTooLong(String)

    public var description: String {
        switch self {
        case let .undecodableEvent(stream, version): "event \(stream)@\(version) is not a valid envelope"
        case .corruptRecord(let database): "a record in \(database) is corrupt"
        case .idTooLong(let id): "id \(id)… is longer than 65535 bytes"
        }
    }
}
