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
        try apply(batch: [event][...], to: &store)
    }

    /// What a batch changed of one order, kept in memory until the batch ends.
    struct TouchedOrder {
        /// The order's events, stored ones first, then the batch's.
        var events: [RecordedOrderEvent]
        /// The order as stored before the batch (its index entries are removed at the end).
        var before: OrderDecider.State
        /// The order after the batch's events so far.
        var state: OrderDecider.State
    }

    /// A batch: each event is recorded (`orders.events`, `orders.payment_events`, payment
    /// summaries) as it comes; each touched order's events are read once, folded as the batch
    /// goes, and its view and index entries are written once at the end. The bytes equal those of
    /// applying the events one by one (the view and the index entries are functions of the order's
    /// final events and payments), so any cut of the log into batches gives the same model.
    public func apply(batch events: ArraySlice<RecordedEvent>, to store: inout some ReadModelWriter) throws {
        var orders: [String: TouchedOrder] = [:]
        // Orders whose view must be written again: changed, or a payment of theirs changed.
        var stale: Set<String> = []
        for event in events {
            if event.stream.hasPrefix("order-") {
                let orderID = String(event.stream.dropFirst("order-".count))
                guard let decoded = try? Tote_V1_OrderEvent(serializedBytes: event.data) else {
                    throw OrderProjectionError.undecodableEvent(stream: event.stream, version: event.streamVersion)
                }
                var order: TouchedOrder
                if let touched = orders[orderID] {
                    order = touched
                } else {
                    let history = try Self.orderEvents(orderID, in: store)
                    let state = OrderDecider.fold(history.map(\.event))
                    order = TouchedOrder(events: history, before: state, state: state)
                }
                if let last = order.events.last, last.streamVersion >= event.streamVersion { continue }  // already applied
                let stored = StoredOrderEvent(recordedAtMicros: event.recordedAtMicros, actorID: event.metadata.actorID,
                                              actorRole: event.metadata.actorRole, envelope: event.data)
                try store.put(OrderKeys.eventsDB, try OrderKeys.eventsPrefix(orderID) + OrderKeys.bigEndian(UInt64(bitPattern: event.streamVersion)), try stored.encoded())
                order.events.append(RecordedOrderEvent(event: decoded, streamVersion: event.streamVersion, recordedAtMicros: event.recordedAtMicros,
                                                       actor: Principal(id: event.metadata.actorID, role: event.metadata.actorRole)))
                order.state = OrderDecider.evolve(order.state, decoded)
                orders[orderID] = order
                stale.insert(orderID)
            } else if event.stream.hasPrefix("payment-") {
                if let orderID = try applyPaymentEvent(event, paymentID: String(event.stream.dropFirst("payment-".count)), to: &store) {
                    stale.insert(orderID)
                }
            }
        }
        for orderID in stale.sorted() {
            if let order = orders[orderID] {
                try Self.writeView(orderID, events: order.events, state: order.state, to: &store)
                // Secondary keys: remove the order's entries from before the batch, put the new ones.
                try Self.removeIndexEntries(order.before, orderID: orderID, from: &store)
                try Self.putIndexEntries(order.state, orderID: orderID, to: &store)
            } else {
                // Only its payments changed: re-encode the view if the order exists already.
                let events = try Self.orderEvents(orderID, in: store)
                guard !events.isEmpty else { continue }
                try Self.writeView(orderID, events: events, state: OrderDecider.fold(events.map(\.event)), to: &store)
            }
        }
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

    /// Records a payment event and the payment's new summary; returns the id of the order whose
    /// view shows it (nil when the event was applied already or names no order).
    private func applyPaymentEvent(_ recorded: RecordedEvent, paymentID: String, to store: inout some ReadModelWriter) throws -> String? {
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
        if lastVersion >= recorded.streamVersion { return nil }  // already applied
        try store.put(OrderKeys.paymentEventsDB, prefix + OrderKeys.bigEndian(UInt64(bitPattern: recorded.streamVersion)), recorded.data)
        let payment = PaymentDecider.evolve(PaymentDecider.fold(history), event)
        guard !payment.orderID.isEmpty else { return nil }
        try store.put(OrderKeys.paymentsDB, try OrderKeys.paymentsPrefix(payment.orderID) + Array(paymentID.utf8), try payment.summary.serializedBytes())
        return payment.orderID
    }
}
