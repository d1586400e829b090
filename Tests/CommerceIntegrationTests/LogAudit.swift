import EventStore
import Foundation
import ToteCommands
import ToteDomain

/// Replays the whole event log and checks it against itself: every stream's versions are
/// 1…n without gaps, every event decodes as its aggregate's event, stock never goes negative
/// or over-reserved, every order's reservations exist on their stock items with the same
/// quantity, every order's checkout completed into it, and every order-held reservation
/// belongs to an order that exists.
struct LogAudit {
    struct Stock: Equatable {
        var onHand: Int64
        var liveReserved: Int64
    }

    var problems: [String] = []
    var orders = 0
    /// By "sku@location".
    var stock: [String: Stock] = [:]

    static func run(_ store: EventStore, now: Int64) async throws -> LogAudit {
        var audit = LogAudit()
        var all: [RecordedEvent] = []
        var position = LogPosition.start
        while true {
            let batch = try await store.readAll(after: position, limit: 5000)
            all += batch
            guard let last = batch.last, batch.count == 5000 else { break }
            position = last.position
        }
        if Set(all.map(\.eventID)).count != all.count { audit.problems.append("duplicate event ids") }
        if zip(all, all.dropFirst()).contains(where: { !($0.position < $1.position) }) { audit.problems.append("log not in strictly increasing position order") }

        var streams: [String: [RecordedEvent]] = [:]
        for event in all { streams[event.stream, default: []].append(event) }
        var orderStates: [String: OrderDecider.State] = [:]
        var stockStates: [String: StockItemDecider.State] = [:]
        var checkoutStates: [String: CheckoutDecider.State] = [:]
        for (stream, events) in streams {
            let versions = events.map(\.streamVersion).sorted()
            if versions != Array(1...Int64(events.count)) { audit.problems.append("\(stream): versions \(versions.prefix(5))… are not 1…\(events.count)") }
            let ordered = events.sorted { $0.streamVersion < $1.streamVersion }
            do {
                switch stream.prefix(while: { $0 != "-" }) {
                case "order": orderStates[stream] = OrderDecider.fold(try ordered.map { try EventCodec.decode($0, as: OrderDecider.Event.self) })
                case "stock": stockStates[stream] = StockItemDecider.fold(try ordered.map { try EventCodec.decode($0, as: StockItemDecider.Event.self) })
                case "checkout": checkoutStates[stream] = CheckoutDecider.fold(try ordered.map { try EventCodec.decode($0, as: CheckoutDecider.Event.self) })
                case "cart": _ = CartDecider.fold(try ordered.map { try EventCodec.decode($0, as: CartDecider.Event.self) })
                case "product": _ = ProductDecider.fold(try ordered.map { try EventCodec.decode($0, as: ProductDecider.Event.self) })
                case "payment": _ = PaymentDecider.fold(try ordered.map { try EventCodec.decode($0, as: PaymentDecider.Event.self) })
                default: break
                }
            } catch {
                audit.problems.append("\(stream): \(error)")
            }
        }

        for (stream, state) in stockStates {
            guard let key = state.key else { continue }
            let reserved = state.reserved(atMicros: now)
            audit.stock["\(key.sku)@\(key.locationId)"] = Stock(onHand: state.onHand, liveReserved: reserved)
            if state.onHand < 0 { audit.problems.append("\(stream): on hand \(state.onHand)") }
            if reserved > state.onHand { audit.problems.append("\(stream): \(reserved) reserved of \(state.onHand) on hand") }
            for reservation in state.reservations.values where reservation.reference.hasPrefix("order:") {
                let orderID = String(reservation.reference.dropFirst("order:".count))
                if orderStates[StreamName.order(orderID)] == nil { audit.problems.append("\(stream): reservation \(reservation.id) for missing order \(orderID)") }
            }
        }
        for (stream, order) in orderStates where order.status != .unspecified {
            audit.orders += 1
            for reservation in order.reservations {
                let stockStream = StreamName.stockItem(sku: reservation.sku, location: reservation.locationID)
                guard let stock = stockStates[stockStream] else {
                    audit.problems.append("\(stream): stock item \(stockStream) missing")
                    continue
                }
                let quantity = stock.reservations[reservation.reservationID]?.quantity ?? stock.ended[reservation.reservationID]?.quantity
                if quantity != Int64(reservation.quantity) {
                    audit.problems.append("\(stream): reservation \(reservation.reservationID) is \(quantity.map(String.init) ?? "missing") on \(stockStream), order says \(reservation.quantity)")
                }
            }
            let checkout = checkoutStates[StreamName.checkout(order.checkoutID)]
            if checkout?.orderID != order.orderID { audit.problems.append("\(stream): checkout \(order.checkoutID) did not complete into it") }
        }
        let completed = checkoutStates.values.filter { !$0.orderID.isEmpty }
        if completed.count != audit.orders { audit.problems.append("\(completed.count) completed checkouts for \(audit.orders) orders") }
        return audit
    }
}
