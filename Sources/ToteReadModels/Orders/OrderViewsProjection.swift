import EventStore
import ToteDomain
import ToteProto

/// The order views read model, fed by `order-` and `payment-` streams:
///
/// - `orders.view`: per order the whole `OrderView` (lines, totals, state, payments, timeline with
///   actor and time) stored as the encoded GetOrderView response, so a point read is a byte copy;
/// - `orders.by_customer`: a customer's orders, newest first;
/// - `orders.by_state`: orders by state and the time they entered it, oldest first, so
///   "PAID for more than 30 minutes" is one range scan.
///
/// The order is folded with ``OrderDecider/evolve(_:_:)`` and its timeline built with
/// ``OrderDecider/timeline(_:)`` from the order's events, which the model keeps (`orders.events`);
/// payments are folded with ``PaymentDecider`` from theirs (`orders.payment_events`). Secondary keys
/// move when an order changes state (the old key is deleted, the new one put). An event at or
/// below a stream version already applied changes nothing, so a replayed batch is harmless.
public struct OrderViewsProjection: Projection {
    public init() {}

    public var name: String { "orders" }

    public var databases: [String] { OrderKeys.all }

    public func apply(_ event: RecordedEvent, to store: inout some ReadModelWriter) throws {
        if event.stream.hasPrefix("order-") {
            try applyOrderEvent(event, orderID: String(event.stream.dropFirst("order-".count)), to: &store)
        } else if event.stream.hasPrefix("payment-") {
            try applyPaymentEvent(event, paymentID: String(event.stream.dropFirst("payment-".count)), to: &store)
        }
    }

    // MARK: Orders

    private func applyOrderEvent(_ recorded: RecordedEvent, orderID: String, to store: inout some ReadModelWriter) throws {
        guard let event = try? Tote_V1_OrderEvent(serializedBytes: recorded.data) else {
            throw OrderProjectionError.undecodableEvent(stream: recorded.stream, version: recorded.streamVersion)
        }
        let history = try Self.orderEvents(orderID, in: store)
        if let last = history.last, last.streamVersion >= recorded.streamVersion { return }  // already applied
        let before = OrderDecider.fold(history.map(\.event))

        let stored = StoredOrderEvent(recordedAtMicros: recorded.recordedAtMicros, actorID: recorded.metadata.actorID,
                                      actorRole: recorded.metadata.actorRole, envelope: recorded.data)
        try store.put(OrderKeys.eventsDB, try OrderKeys.eventsPrefix(orderID) + OrderKeys.bigEndian(UInt64(bitPattern: recorded.streamVersion)), try stored.encoded())
        let events = history + [RecordedOrderEvent(event: event, streamVersion: recorded.streamVersion, recordedAtMicros: recorded.recordedAtMicros,
                                                   actor: Principal(id: recorded.metadata.actorID, role: recorded.metadata.actorRole))]
        let after = OrderDecider.evolve(before, event)
        try Self.writeView(orderID, events: events, state: after, to: &store)

        // Secondary keys: remove the order's old entries, put the new ones.
        try Self.removeIndexEntries(before, orderID: orderID, from: &store)
        try Self.putIndexEntries(after, orderID: orderID, to: &store)
    }

    /// The order's stored events, oldest first.
    static func orderEvents(_ orderID: String, in reader: some ReadModelReader) throws -> [RecordedOrderEvent] {
        var events: [RecordedOrderEvent] = []
        var failure: (any Error)?
        try reader.scan(OrderKeys.eventsDB, prefix: try OrderKeys.eventsPrefix(orderID), from: nil, reverse: false) { key, value in
            guard key.count >= 8 else { failure = OrderProjectionError.corruptRecord(OrderKeys.eventsDB); return false }
            let version = Int64(bitPattern: OrderKeys.readBigEndian(key, at: key.count - 8))
            let stored = try StoredOrderEvent(value)
            guard let event = try? Tote_V1_OrderEvent(serializedBytes: stored.envelope) else {
                failure = OrderProjectionError.corruptRecord(OrderKeys.eventsDB)
                return false
            }
            events.append(RecordedOrderEvent(event: event, streamVersion: version, recordedAtMicros: stored.recordedAtMicros,
                                             actor: Principal(id: stored.actorID, role: stored.actorRole)))
            return true
        }
        if let failure { throw failure }
        return events
    }

    /// Re-encodes the order's view from its events, state and current payment summaries.
    private static func writeView(_ orderID: String, events: [RecordedOrderEvent], state: OrderDecider.State, to store: inout some ReadModelWriter) throws {
        guard state.status != .unspecified, let last = events.last else { return }
        let view = state.view(version: last.streamVersion, timeline: OrderDecider.timeline(events), payments: try payments(of: orderID, in: store))
        try store.put(OrderKeys.viewDB, Array(orderID.utf8), try view.serializedBytes())
    }

    /// The order's payments, oldest first (by creation time, then id).
    private static func payments(of orderID: String, in reader: some ReadModelReader) throws -> [Tote_V1_PaymentSummary] {
        var payments: [Tote_V1_PaymentSummary] = []
        try reader.scan(OrderKeys.paymentsDB, prefix: try OrderKeys.paymentsPrefix(orderID), from: nil, reverse: false) { _, value in
            payments.append(try Tote_V1_PaymentSummary(serializedBytes: Array(value)))
            return true
        }
        return payments.sorted { ($0.createdAt.unixMicros, $0.paymentID) < ($1.createdAt.unixMicros, $1.paymentID) }
    }

    private static func removeIndexEntries(_ state: OrderDecider.State, orderID: String, from store: inout some ReadModelWriter) throws {
        guard state.status != .unspecified else { return }
        if !state.customerID.isEmpty {
            try store.delete(OrderKeys.byCustomerDB, try OrderKeys.customerKey(customerID: state.customerID, placedAtMicros: state.placedAtMicros, orderID: orderID))
        }
        if let byte = OrderKeys.stateByte(state.status) {
            try store.delete(OrderKeys.byStateDB, OrderKeys.stateKey(state: byte, sinceMicros: state.stateSinceMicros, orderID: orderID))
        }
    }

    private static func putIndexEntries(_ state: OrderDecider.State, orderID: String, to store: inout some ReadModelWriter) throws {
        guard state.status != .unspecified else { return }
        let summary = try state.summary.serializedBytes() as [UInt8]
        if !state.customerID.isEmpty {
            try store.put(OrderKeys.byCustomerDB, try OrderKeys.customerKey(customerID: state.customerID, placedAtMicros: state.placedAtMicros, orderID: orderID), summary)
        }
        if let byte = OrderKeys.stateByte(state.status) {
            try store.put(OrderKeys.byStateDB, OrderKeys.stateKey(state: byte, sinceMicros: state.stateSinceMicros, orderID: orderID), summary)
        }
    }

    // MARK: Payments

    private func applyPaymentEvent(_ recorded: RecordedEvent, paymentID: String, to store: inout some ReadModelWriter) throws {
        guard let event = try? Tote_V1_PaymentEvent(serializedBytes: recorded.data) else {
            throw OrderProjectionError.undecodableEvent(stream: recorded.stream, version: recorded.streamVersion)
        }
        let prefix = try OrderKeys.lengthPrefixed(paymentID)
        var history: [Tote_V1_PaymentEvent] = []
        var lastVersion: Int64 = 0
        try store.scan(OrderKeys.paymentEventsDB, prefix: prefix, from: nil, reverse: false) { key, value in
            lastVersion = Int64(bitPattern: OrderKeys.readBigEndian(key, at: key.count - 8))
            history.append(try Tote_V1_PaymentEvent(serializedBytes: Array(value)))
            return true
        }
        if lastVersion >= recorded.streamVersion { return }  // already applied
        try store.put(OrderKeys.paymentEventsDB, prefix + OrderKeys.bigEndian(UInt64(bitPattern: recorded.streamVersion)), recorded.data)
        let payment = PaymentDecider.evolve(PaymentDecider.fold(history), event)
        guard !payment.orderID.isEmpty else { return }
        let orderID = payment.orderID
        try store.put(OrderKeys.paymentsDB, try OrderKeys.paymentsPrefix(orderID) + Array(paymentID.utf8), try payment.summary.serializedBytes())

        // The order's view shows its payments: re-encode it if the order exists already.
        let events = try Self.orderEvents(orderID, in: store)
        guard !events.isEmpty else { return }
        try Self.writeView(orderID, events: events, state: OrderDecider.fold(events.map(\.event)), to: &store)
    }
}
