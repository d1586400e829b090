import ToteProto

/// An order event as read back from the event log, with what the log recorded around it.
public struct RecordedOrderEvent: Sendable, Equatable {
    public var event: Tote_V1_OrderEvent
    /// The event's version on the order stream.
    public var streamVersion: Int64
    /// When the log recorded it (microseconds since the epoch).
    public var recordedAtMicros: Int64
    /// The actor from the log's metadata columns (used when the event names none).
    public var actor: Principal

    public init(event: Tote_V1_OrderEvent, streamVersion: Int64, recordedAtMicros: Int64, actor: Principal) {
        self.event = event
        self.streamVersion = streamVersion
        self.recordedAtMicros = recordedAtMicros
        self.actor = actor
    }
}

extension OrderDecider {
    /// The order's history for operators and customers (`OrderView.timeline`): one entry per
    /// event, oldest first, with its actor, reason, the state after it and a one-line summary.
    /// Pure: folds the events to know each entry's state.
    public static func timeline(_ events: [RecordedOrderEvent]) -> [Tote_V1_TimelineEntry] {
        var state = initialState
        var entries: [Tote_V1_TimelineEntry] = []
        entries.reserveCapacity(events.count)
        for recorded in events {
            let before = state
            state = evolve(state, recorded.event)
            var entry = Tote_V1_TimelineEntry()
            entry.eventType = recorded.event.typeName
            let (actorID, actorRole, reason) = actorAndReason(recorded.event)
            entry.actor = protoActor(id: actorID.isEmpty ? recorded.actor.id : actorID,
                                     role: actorID.isEmpty ? recorded.actor.role : actorRole)
            entry.reason = reason
            entry.at = timestamp(recorded.recordedAtMicros)
            entry.state = state.status
            entry.streamVersion = recorded.streamVersion
            entry.summary = summary(recorded.event, before: before, after: state)
            entries.append(entry)
        }
        return entries
    }

    /// The wire `Actor` for a ``Principal``'s id and role (`system` has no wire role: unspecified).
    public static func protoActor(id: String, role: String) -> Tote_V1_Actor {
        var actor = Tote_V1_Actor()
        actor.id = id
        switch role {
        case "storefront": actor.role = .storefront
        case "operator": actor.role = .operator
        case "controller": actor.role = .controller
        default: actor.role = .unspecified
        }
        return actor
    }

    private static func actorAndReason(_ event: Tote_V1_OrderEvent) -> (String, String, String) {
        switch event.event {
        case .orderPlaced(let e)?: (e.actorID, e.actorRole, "")
        case .orderPaid(let e)?: (e.actorID, e.actorRole, e.reason)
        case .orderPickingStarted(let e)?: (e.actorID, e.actorRole, e.reason)
        case .orderPacked(let e)?: (e.actorID, e.actorRole, e.reason)
        case .orderShipped(let e)?: (e.actorID, e.actorRole, e.reason)
        case .orderDelivered(let e)?: (e.actorID, e.actorRole, e.reason)
        case .orderCancelled(let e)?: (e.actorID, e.actorRole, e.reason)
        case .orderRefunded(let e)?: (e.actorID, e.actorRole, e.reason)
        case .orderDisputeOpened(let e)?: (e.actorID, e.actorRole, e.reason)
        case .orderDisputeResolved(let e)?: (e.actorID, e.actorRole, e.reason)
        case nil: ("", "", "")
        }
    }

    private static func summary(_ event: Tote_V1_OrderEvent, before: State, after: State) -> String {
        switch event.event {
        case .orderPlaced(let e)?:
            let units = e.lines.reduce(0) { $0 + Int($1.quantity) }
            return "Placed \(e.orderNumber) for \(formatMoney(Money(e.totals.total))) (\(units) \(units == 1 ? "item" : "items"))"
        case .orderPaid(let e)?:
            return "Paid \(formatMoney(Money(e.amount))) (payment \(e.paymentID))"
        case .orderPickingStarted?:
            return "Picking started"
        case .orderPacked?:
            return "Packed"
        case .orderShipped(let e)?:
            return "Shipped with \(e.carrier), tracking \(e.trackingNumber)"
        case .orderDelivered?:
            return "Delivered"
        case .orderCancelled(let e)?:
            var text = e.expired ? "Cancelled: reservations expired unpaid" : "Cancelled"
            if e.refundDue { text += "; refund of \(formatMoney(Money(e.refundAmount))) due" }
            if !e.reservationsToRelease.isEmpty { text += "; \(e.reservationsToRelease.count) reservation(s) released" }
            return text
        case .orderRefunded(let e)?:
            let lines = e.lines.map { "\($0.quantity) x \($0.sku)" }.joined(separator: ", ")
            return "Refunded \(formatMoney(Money(e.amount)))" + (lines.isEmpty ? "" : " (\(lines))") + (e.restock ? ", restocked" : "")
        case .orderDisputeOpened(let e)?:
            return "Dispute \(e.disputeID) opened for \(formatMoney(Money(e.amount)))"
        case .orderDisputeResolved(let e)?:
            return e.won ? "Dispute \(e.disputeID) won" : "Dispute \(e.disputeID) lost: \(formatMoney(Money(e.amountLost)))"
        case nil:
            return ""
        }
    }

    /// `EUR 12.34`, `JPY 500`, `KWD 1.250`: an amount with its currency's usual number of decimals
    /// (integer arithmetic only).
    public static func formatMoney(_ money: Money) -> String {
        let decimals: Int
        switch money.currency {
        case "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF": decimals = 0
        case "BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND": decimals = 3
        default: decimals = 2
        }
        let negative = money.minorUnits < 0
        let magnitude = money.minorUnits.magnitude
        var text: String
        if decimals == 0 {
            text = String(magnitude)
        } else {
            var scale: UInt64 = 1
            for _ in 0..<decimals { scale *= 10 }
            let fraction = String(magnitude % scale)
            text = "\(magnitude / scale)." + String(repeating: "0", count: decimals - fraction.count) + fraction
        }
        return "\(money.currency) \(negative ? "-" : "")\(text)"
    }
}

extension OrderDecider.State {
    /// The order as customers and operators see it (`GetOrder`), at stream `version`, with its
    /// timeline (``OrderDecider/timeline(_:)``) and its payments' summaries, which the service
    /// reads from the payment streams.
    public func view(version: Int64, timeline: [Tote_V1_TimelineEntry] = [], payments: [Tote_V1_PaymentSummary] = []) -> Tote_V1_OrderView {
        var v = Tote_V1_OrderView()
        v.orderID = orderID
        v.orderNumber = orderNumber
        v.customerID = customerID
        v.email = email
        v.state = status
        v.currency = currency
        v.lines = lines
        v.orderPromotions = orderPromotions
        v.totals = totals
        v.refundedTotal = refunded.proto
        v.shippingAddress = shippingAddress
        v.billingAddress = billingAddress
        v.shippingOptionLabel = shippingOptionLabel
        v.payments = payments
        v.shipments = shipment.map { [$0] } ?? []
        v.timeline = timeline
        v.placedAt = OrderDecider.timestamp(placedAtMicros)
        v.stateSince = OrderDecider.timestamp(stateSinceMicros)
        v.version = version
        v.checkoutID = checkoutID
        return v
    }

    /// The order in a list (`ListCustomerOrders`).
    public var summary: Tote_V1_OrderSummary {
        var s = Tote_V1_OrderSummary()
        s.orderID = orderID
        s.orderNumber = orderNumber
        s.customerID = customerID
        s.state = status
        s.total = totals.total
        s.itemCount = lines.reduce(0) { $0 &+ $1.quantity }
        s.placedAt = OrderDecider.timestamp(placedAtMicros)
        s.stateSince = OrderDecider.timestamp(stateSinceMicros)
        return s
    }
}
