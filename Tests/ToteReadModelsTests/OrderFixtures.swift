import Foundation
import Synchronization
import ToteDomain
import ToteProto
import ToteReadModels
@testable import EventStore

// Fixtures of the order-view tests: a scripted purchase decided with the real deciders and
// wrapped as RecordedEvents with increasing log positions. Names start with `Order` because the
// test module is shared with other read models' tests.

let orderT0: Int64 = 1_700_000_000_000_000
let orderMinute: Int64 = 60_000_000
let orderOperator = Principal(id: "op-1", role: "operator")
let orderShopper = Principal(id: "cust-1", role: "storefront")

func orderEUR(_ minor: Int64) -> Money { Money(minor, "EUR") }

/// Two lines, tax-exclusive: A 2 × 19.99, B 3 × 10.00; subtotal 69.98 + shipping 4.99 + tax 13.20
/// = total 88.17.
func orderPlaceCommand(orderID: String, customerID: String = "cust-1", paymentID: String = "") -> OrderCommand.PlaceOrder {
    var totals = Tote_V1_Totals()
    totals.subtotal = orderEUR(6998).proto
    totals.discountTotal = orderEUR(0).proto
    totals.shippingTotal = orderEUR(499).proto
    totals.taxTotal = orderEUR(1320).proto
    totals.total = orderEUR(8817).proto
    var address = Tote_V1_Address()
    address.name = "Ada"
    address.lines = ["1 Main St"]
    address.city = "Berlin"
    address.postalCode = "10115"
    address.country = "DE"
    return OrderCommand.PlaceOrder(
        orderID: orderID, orderNumber: "T-\(orderID)", customerID: customerID, email: "ada@example.com", currency: "EUR",
        lines: [
            .init(lineID: "l1", sku: "TSHIRT-RED-M", productID: "p1", displayName: "T-shirt red M", quantity: 2, unitPrice: orderEUR(1999), tax: orderEUR(720), locationID: "wh1", reservationID: "res-\(orderID)-1"),
            .init(lineID: "l2", sku: "MUG-1", productID: "p2", displayName: "Mug", quantity: 3, unitPrice: orderEUR(1000), tax: orderEUR(600), locationID: "wh1", reservationID: "res-\(orderID)-2"),
        ],
        totals: totals, shippingAddress: address, billingAddress: address, shippingOptionLabel: "DHL Standard",
        checkoutID: "chk-\(orderID)", paymentID: paymentID, reservationsExpireAtMicros: orderT0 + 10_000 * orderMinute)
}

let orderTotal = orderEUR(8817)

let orderCard: Tote_V1_PaymentMethod = {
    var m = Tote_V1_PaymentMethod()
    m.kind = .card
    m.provider = "simulated"
    m.display = "Visa **** 4242"
    return m
}()

/// Decides commands against the order and payment deciders and records their events as the log
/// would: one log position per event, the actor in the metadata.
struct OrderScript {
    private(set) var log: [RecordedEvent] = []
    private var orders: [String: OrderDecider.State] = [:]
    private var payments: [String: PaymentDecider.State] = [:]
    private var versions: [String: Int64] = [:]

    /// The position of the last recorded event.
    var position: LogPosition { log.last?.position ?? .start }

    /// Decides `command` on order `id` at `now` and records its events; returns them.
    @discardableResult
    mutating func order(_ id: String, _ command: OrderCommand, at now: Int64, actor: Principal = orderOperator) throws -> [RecordedEvent] {
        let state = orders[id] ?? OrderDecider.initialState
        let events = try OrderDecider.decide(command, state: state, context: CommandContext(actor: actor, nowMicros: now))
        orders[id] = OrderDecider.fold(events, from: state)
        return try events.map { try record(StreamName.order(id), type: $0.typeName, data: $0.serializedBytes(), at: now, actor: actor) }
    }

    /// Decides `command` on payment `id` at `now` and records its events; returns them.
    @discardableResult
    mutating func payment(_ id: String, _ command: PaymentCommand, at now: Int64) throws -> [RecordedEvent] {
        let state = payments[id] ?? PaymentDecider.initialState
        let events = try PaymentDecider.decide(command, state: state, context: CommandContext(actor: .system, nowMicros: now))
        payments[id] = PaymentDecider.fold(events, from: state)
        return try events.map { try record(StreamName.payment(id), type: $0.typeName, data: $0.serializedBytes(), at: now, actor: .system) }
    }

    /// Records an arbitrary event (e.g. another aggregate's, or bad bytes).
    mutating func record(_ stream: String, type: String, data: [UInt8], at now: Int64, actor: Principal) throws -> RecordedEvent {
        let version = (versions[stream] ?? 0) + 1
        versions[stream] = version
        let global = Int64(log.count + 1)
        let event = RecordedEvent(
            position: LogPosition(transactionID: UInt64(1000 + global), globalPosition: global), stream: stream, streamVersion: version,
            eventID: UUID(), type: type, schemaVersion: 1, data: data,
            metadata: EventMetadata(actorID: actor.id, actorRole: actor.role), recordedAtMicros: now + 7)
        log.append(event)
        return event
    }

    /// Every event of order `id` as the timeline sees them (reference for the projection).
    func orderEvents(_ id: String) throws -> [RecordedOrderEvent] {
        try log.filter { $0.stream == StreamName.order(id) }.map {
            RecordedOrderEvent(event: try Tote_V1_OrderEvent(serializedBytes: $0.data), streamVersion: $0.streamVersion,
                               recordedAtMicros: $0.recordedAtMicros, actor: Principal(id: $0.metadata.actorID, role: $0.metadata.actorRole))
        }
    }

    func orderState(_ id: String) -> OrderDecider.State { orders[id] ?? OrderDecider.initialState }
    func paymentState(_ id: String) -> PaymentDecider.State { payments[id] ?? PaymentDecider.initialState }

    /// The view the projection must store for order `id`, computed straight from the deciders
    /// (what OrdersService.GetOrder answers from the log), with `paymentIDs` in order.
    func expectedView(_ id: String, paymentIDs: [String]) throws -> Tote_V1_OrderView {
        let events = try orderEvents(id)
        return orderState(id).view(version: events.last!.streamVersion, timeline: OrderDecider.timeline(events),
                                   payments: paymentIDs.map { paymentState($0).summary })
    }

    /// A paid order: payment initiated, authorized and captured, then the order marked paid.
    mutating func placeAndPay(_ id: String, customerID: String = "cust-1", at now: Int64) throws {
        let paymentID = "pay-\(id)"
        try payment(paymentID, .initiate(paymentID: paymentID, orderID: id, amount: orderTotal, method: orderCard), at: now)
        try order(id, .place(orderPlaceCommand(orderID: id, customerID: customerID, paymentID: paymentID)), at: now, actor: orderShopper)
        try payment(paymentID, .recordAuthorization(providerReference: "pi_\(id)", amount: orderTotal), at: now + 1)
        try payment(paymentID, .recordCapture(captureID: "cap-\(id)", amount: orderTotal), at: now + 2)
        try order(id, .markPaid(paymentID: paymentID, amount: orderTotal, reason: "captured"), at: now + 3, actor: .system)
    }
}

/// Applies `events` with `projection` to `store` (one "batch").
func orderApply(_ events: [RecordedEvent], _ projection: OrderViewsProjection = OrderViewsProjection(), to store: inout MemoryStore) throws {
    for event in events { try projection.apply(event, to: &store) }
}

/// The keys of `database` in order.
func orderKeys(_ store: MemoryStore, _ database: String) -> [[UInt8]] {
    (store.databases[database] ?? [:]).keys.sorted { $0.lexicographicallyPrecedes($1) }
}

/// A ``ReadModelSource`` over a ``MemoryStore`` whose position tests move by hand (standing in
/// for the LMDB environment and its projector).
final class OrderTestSource: ReadModelSource {
    private let state: Mutex<(store: MemoryStore, position: LogPosition)>
    /// When set, reading the position fails (a broken environment).
    let failPosition = Mutex(false)

    init(store: MemoryStore = MemoryStore(), position: LogPosition = .start) {
        state = Mutex((store, position))
    }

    func read<R>(_ body: (any ReadModelReader) throws -> R) throws -> R {
        let snapshot = state.withLock { $0.store }
        return try body(snapshot)
    }

    var position: LogPosition {
        get throws {
            if failPosition.withLock({ $0 }) { throw OrderProjectionError.corruptRecord("cursor") }
            return state.withLock { $0.position }
        }
    }

    /// Applies `events` and moves the position to the last one, atomically (one batch).
    func apply(_ events: [RecordedEvent]) throws {
        try state.withLock { state in
            var store = state.store
            try orderApply(events, to: &store)
            state.store = store
            if let last = events.last { state.position = last.position }
        }
    }
}
