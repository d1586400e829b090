/// Reads which case of an event envelope's `oneof event` is set, straight from the encoded bytes,
/// so a projection can skip events it ignores without decoding them (a `VariantAdded` carries a
/// whole variant: decoding it only to drop it cost the autocomplete a tenth of its catch-up).
///
/// The envelopes (`tote.v1.ProductEvent`, `OrderEvent`, …) hold nothing but that oneof, so the
/// case is the number of the envelope's last top-level field (a oneof decodes to the last of its
/// fields present). Malformed bytes give nil: the caller decodes, and the decoder reports them.
enum EventPeek {
    /// `tote.v1.ProductEvent` oneof field numbers (catalog_events.proto).
    enum ProductCase {
        static let variantAdded = 3
        static let pricesSet = 4
    }

    /// `tote.v1.OrderEvent` oneof field numbers (order_events.proto).
    enum OrderCase {
        static let placed = 1
    }

    /// The field number of the last top-level field of the encoded message, nil when it has
    /// none or is malformed.
    static func lastField(_ bytes: [UInt8]) -> Int? {
        bytes.withUnsafeBufferPointer { b -> Int? in
            var i = 0
            var last: Int?
            func varint() -> UInt64? {
                var value: UInt64 = 0, shift: UInt64 = 0
                while i < b.count, shift < 64 {
                    let byte = b[i]
                    i += 1
                    value |= UInt64(byte & 0x7f) << shift
                    if byte & 0x80 == 0 { return value }
                    shift += 7
                }
                return nil
            }
            while i < b.count {
                guard let tag = varint(), tag >> 3 > 0, tag >> 3 <= UInt64(Int32.max) else { return nil }
                switch tag & 7 {
                case 0: guard varint() != nil else { return nil }
                case 1: i += 8
                case 2:
                    guard let length = varint(), length <= UInt64(b.count - i) else { return nil }
                    i += Int(length)
                case 5: i += 4
                default: return nil  // groups are not used by Tote's messages
                }
                guard i <= b.count else { return nil }
                last = Int(tag >> 3)
            }
            return last
        }
    }
}
