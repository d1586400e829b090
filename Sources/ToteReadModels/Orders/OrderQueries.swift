import ToteProto

/// A query the caller asked wrongly (INVALID_ARGUMENT on the wire), naming the field.
public struct OrderQueryError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The request field, e.g. `page.page_token`.
    public var field: String
    public var reason: String

    public init(field: String, reason: String) {
        self.field = field
        self.reason = reason
    }

    public var description: String { "\(field) \(reason)" }
}

/// The order-view queries (tote.v1.Query GetOrderView, ListCustomerOrders, ListOrdersByState),
/// each a pure function of one read snapshot (``OrderViewsProjection`` wrote it).
public enum OrderQueries {
    /// Page size when the request gives none.
    public static let defaultPageSize = 20
    /// The largest page served; bigger requests are capped.
    public static let maxPageSize = 100

    /// The encoded `OrderView` of `orderID` exactly as stored (the GetOrderView response bytes),
    /// or nil when there is no such order.
    public static func orderView(_ reader: any ReadModelReader, orderID: String) throws -> [UInt8]? {
        guard !orderID.isEmpty else { throw OrderQueryError(field: "order_id", reason: "is required") }
        return try reader.get(OrderKeys.viewDB, Array(orderID.utf8))
    }

    /// A customer's orders, newest first, one page at a time. `page_info.total_count` is the
    /// customer's number of orders.
    public static func customerOrders(_ reader: any ReadModelReader, _ request: Tote_V1_ListCustomerOrdersRequest) throws -> Tote_V1_ListCustomerOrdersResponse {
        guard !request.customerID.isEmpty else { throw OrderQueryError(field: "customer_id", reason: "is required") }
        let prefix: [UInt8]
        do { prefix = try OrderKeys.customerPrefix(request.customerID) } catch { throw OrderQueryError(field: "customer_id", reason: "is too long") }
        let start = try PageToken.decode(request.page.pageToken, kind: .customerOrders, prefix: prefix)
        let page = try collect(reader, OrderKeys.byCustomerDB, prefix: prefix, from: start, size: pageSize(request.page)) { _ in true }
        var response = Tote_V1_ListCustomerOrdersResponse()
        response.orders = page.summaries
        response.pageInfo.nextPageToken = page.next.map { PageToken.encode(kind: .customerOrders, key: $0) } ?? ""
        var total: UInt64 = 0
        try reader.scan(OrderKeys.byCustomerDB, prefix: prefix, from: nil, reverse: false) { _, _ in total += 1; return true }
        response.pageInfo.totalCount = total
        return response
    }

    /// Orders that entered `request.state` at least `older_than` before `nowMicros`, longest in
    /// the state first: one range scan of `orders.by_state` that stops at the first younger order.
    public static func ordersByState(_ reader: any ReadModelReader, _ request: Tote_V1_ListOrdersByStateRequest, nowMicros: Int64) throws -> Tote_V1_ListOrdersByStateResponse {
        if case .UNRECOGNIZED = request.state { throw OrderQueryError(field: "state", reason: "must be a known order state") }
        guard let stateByte = OrderKeys.stateByte(request.state) else {
            throw OrderQueryError(field: "state", reason: "is required")
        }
        guard request.olderThan.micros >= 0 else { throw OrderQueryError(field: "older_than", reason: "must not be negative") }
        let cutoff = nowMicros.subtractingReportingOverflow(request.olderThan.micros)
        let latest = cutoff.overflow ? Int64.min : cutoff.partialValue
        let prefix = [stateByte]
        let start = try PageToken.decode(request.page.pageToken, kind: .ordersByState, prefix: prefix)
        let page = try collect(reader, OrderKeys.byStateDB, prefix: prefix, from: start, size: pageSize(request.page)) { key in
            OrderKeys.time(fromSortable: OrderKeys.readBigEndian(key, at: 1)) <= latest
        }
        var response = Tote_V1_ListOrdersByStateResponse()
        response.orders = page.summaries
        response.pageInfo.nextPageToken = page.next.map { PageToken.encode(kind: .ordersByState, key: $0) } ?? ""
        return response
    }

    private static func pageSize(_ page: Tote_V1_PageRequest) -> Int {
        page.pageSize == 0 ? defaultPageSize : min(Int(page.pageSize), maxPageSize)
    }

    /// Up to `size` summaries from `start` while `accept(key)` holds, and the key the next page
    /// starts at (nil when this is the last page).
    private static func collect(
        _ reader: any ReadModelReader, _ database: String, prefix: [UInt8], from start: [UInt8]?, size: Int,
        accept: (UnsafeRawBufferPointer) -> Bool
    ) throws -> (summaries: [Tote_V1_OrderSummary], next: [UInt8]?) {
        var summaries: [Tote_V1_OrderSummary] = []
        var next: [UInt8]?
        try reader.scan(database, prefix: prefix, from: start, reverse: false) { key, value in
            guard key.count >= prefix.count + 8, accept(key) else { return false }
            if summaries.count == size {
                next = Array(key)
                return false
            }
            summaries.append(try Tote_V1_OrderSummary(serializedBytes: Array(value)))
            return true
        }
        return (summaries, next)
    }
}

/// Opaque page tokens: lower-case hex of a kind byte followed by the key the next page starts
/// at. A token is only accepted by the list (and the customer or state) that issued it.
enum PageToken {
    enum Kind: UInt8 {
        case customerOrders = 1
        case ordersByState = 2
    }

    static func encode(kind: Kind, key: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(2 * (key.count + 1))
        for byte in [kind.rawValue] + key {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// The start key in `token`, nil for an empty token; INVALID_ARGUMENT for a token that is
    /// not hex, of another list, or outside `prefix`.
    static func decode(_ token: String, kind: Kind, prefix: [UInt8]) throws(OrderQueryError) -> [UInt8]? {
        guard !token.isEmpty else { return nil }
        let invalid = OrderQueryError(field: "page.page_token", reason: "is not a page token of this list")
        let text = Array(token.utf8)
        guard text.count % 2 == 0, text.count <= 2 * 4096 else { throw invalid }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            default: nil
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.count / 2)
        var i = 0
        while i < text.count {
            guard let high = nibble(text[i]), let low = nibble(text[i + 1]) else { throw invalid }
            bytes.append(high << 4 | low)
            i += 2
        }
        guard bytes.first == kind.rawValue else { throw invalid }
        let key = Array(bytes.dropFirst())
        guard key.count > prefix.count, key.starts(with: prefix) else { throw invalid }
        return key
    }
}
