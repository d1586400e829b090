import ToteProto

/// The order aggregate (stream `order-<id>`): the order state machine
///
///     PLACED → PAID → PICKING → PACKED → SHIPPED → DELIVERED
///     PLACED, PAID, PICKING, PACKED → CANCELLED
///     PAID … DELIVERED, PARTIALLY_REFUNDED → PARTIALLY_REFUNDED | REFUNDED | DISPUTED
///
/// Every transition event records the actor (from the ``CommandContext``) and a reason. An invalid
/// transition is refused with ``DomainError/wrongState(_:currentState:)`` naming the current
/// `ORDER_STATE_*`; a transition the order has already made is a no-op (no events).
///
/// PARTIALLY_REFUNDED is a financial marker over the fulfilment: the order remembers its
/// fulfilment stage (``State/stage``) and fulfilment commands (picking, packing, shipping,
/// delivery, cancellation) continue from that stage.
public enum OrderDecider: Decider {
    public typealias Command = OrderCommand
    public typealias Event = Tote_V1_OrderEvent

    /// The most units one line may have.
    public static let maxLineQuantity: Int64 = 10_000
    /// The most lines one order may have.
    public static let maxLines = 500

    /// What the decider knows about one order.
    public struct State: Sendable, Equatable {
        /// The current state; `.unspecified` until placed.
        public var status: Tote_V1_OrderState = .unspecified
        /// The fulfilment stage (PLACED, PAID, PICKING, PACKED, SHIPPED or DELIVERED), kept while the
        /// status is PARTIALLY_REFUNDED, DISPUTED or CANCELLED.
        public var stage: Tote_V1_OrderState = .unspecified
        public var orderID = ""
        public var orderNumber = ""
        public var customerID = ""
        public var email = ""
        public var currency = ""
        public var checkoutID = ""
        /// The payment started at checkout (empty if none).
        public var paymentID = ""
        /// The payment that paid it (empty until PAID).
        public var paidPaymentID = ""
        /// The lines; `quantity_refunded` grows with refunds.
        public var lines: [Tote_V1_OrderLine] = []
        public var orderPromotions: [Tote_V1_AppliedPromotion] = []
        public var totals = Tote_V1_Totals()
        public var shippingAddress = Tote_V1_Address()
        public var billingAddress = Tote_V1_Address()
        public var shippingOptionLabel = ""
        /// One per line: committed on payment, released on cancellation of an unpaid order.
        public var reservations: [Tote_V1_OrderReservation] = []
        public var reservationsExpireAtMicros: Int64 = 0
        public var placedAtMicros: Int64 = 0
        /// When it entered ``status``.
        public var stateSinceMicros: Int64 = 0
        /// Minor units paid (the total, once PAID).
        public var paidMinor: Int64 = 0
        /// Minor units refunded so far (refunds and lost disputes).
        public var refundedMinor: Int64 = 0
        /// Refund ids already applied (idempotency).
        public var refundIDs: Set<String> = []
        /// The parcel, once shipped.
        public var shipment: Tote_V1_Shipment? = nil
        /// The open dispute's id (empty when none).
        public var openDisputeID = ""
        public var disputeAmountMinor: Int64 = 0
        /// The status before the open dispute (returned to when won).
        public var statusBeforeDispute: Tote_V1_OrderState = .unspecified
        /// Disputes already closed (idempotency).
        public var resolvedDisputeIDs: Set<String> = []
        /// True once cancelled because its reservations expired unpaid.
        public var expired = false

        public init() {}

        /// Paid and not yet refunded, in the order's currency.
        public var refundable: Money { Money(paidMinor - refundedMinor, currency) }
        /// The amount refunded so far.
        public var refunded: Money { Money(refundedMinor, currency) }
        /// The order total.
        public var total: Money { Money(totals.total) }
        /// The status fulfilment commands act on: the fulfilment stage while PARTIALLY_REFUNDED.
        public var fulfilmentStatus: Tote_V1_OrderState { status == .partiallyRefunded ? stage : status }
    }

    public static var initialState: State { State() }

    public static func decide(_ command: OrderCommand, state: State, context: CommandContext) throws(DomainError) -> [Tote_V1_OrderEvent] {
        if case .place(let place) = command { return try decidePlace(place, state: state, context: context) }
        guard state.status != .unspecified else { throw DomainError(.notFound, "the order does not exist") }
        switch command {
        case .place:
            return []  // handled above
        case let .markPaid(paymentID, amount, reason):
            return try decideMarkPaid(paymentID: paymentID, amount: amount, reason: reason, state: state, context: context)
        case .startPicking(let reason):
            return try fulfilmentStep(state, from: .paid, to: .picking, verb: "start picking", context: context) {
                var e = Tote_V1_OrderPickingStarted()
                e.at = timestamp(context.nowMicros); e.actorID = context.actor.id; e.actorRole = context.actor.role; e.reason = reason
                return .orderPickingStarted(e)
            }
        case .markPacked(let reason):
            return try fulfilmentStep(state, from: .picking, to: .packed, verb: "pack", context: context) {
                var e = Tote_V1_OrderPacked()
                e.at = timestamp(context.nowMicros); e.actorID = context.actor.id; e.actorRole = context.actor.role; e.reason = reason
                return .orderPacked(e)
            }
        case .markShipped(let ship):
            var v = Validator()
            v.require(!ship.carrier.isEmpty, "carrier", "is required")
            v.require(!ship.trackingNumber.isEmpty, "tracking_number", "is required")
            v.require(ship.shippedAtMicros >= 0, "shipped_at", "must not be negative")
            try v.check()
            if state.fulfilmentStatus == .shipped || state.fulfilmentStatus == .delivered, let s = state.shipment {
                if s.carrier == ship.carrier && s.trackingNumber == ship.trackingNumber { return [] }
                throw .wrongState("the order already shipped with \(s.carrier) \(s.trackingNumber)", currentState: stateName(state.status))
            }
            return try fulfilmentStep(state, from: .packed, to: .shipped, verb: "ship", context: context) {
                var e = Tote_V1_OrderShipped()
                e.carrier = ship.carrier; e.trackingNumber = ship.trackingNumber; e.trackingURL = ship.trackingURL
                e.shippedAt = timestamp(ship.shippedAtMicros == 0 ? context.nowMicros : ship.shippedAtMicros)
                e.at = timestamp(context.nowMicros); e.actorID = context.actor.id; e.actorRole = context.actor.role; e.reason = ship.reason
                return .orderShipped(e)
            }
        case let .markDelivered(deliveredAtMicros, reason):
            try require(deliveredAtMicros >= 0, "delivered_at", "must not be negative")
            return try fulfilmentStep(state, from: .shipped, to: .delivered, verb: "deliver", context: context) {
                var e = Tote_V1_OrderDelivered()
                e.deliveredAt = timestamp(deliveredAtMicros == 0 ? context.nowMicros : deliveredAtMicros)
                e.at = timestamp(context.nowMicros); e.actorID = context.actor.id; e.actorRole = context.actor.role; e.reason = reason
                return .orderDelivered(e)
            }
        case .cancel(let reason):
            try require(!trimmed(reason).isEmpty, "reason", "is required")
            return try decideCancel(state: state, reason: reason, expired: false, context: context)
        case .refund(let refund):
            return try decideRefund(refund, state: state, context: context)
        case let .openDispute(disputeID, amount, reason):
            return try decideOpenDispute(disputeID: disputeID, amount: amount, reason: reason, state: state, context: context)
        case let .resolveDispute(disputeID, won, reason):
            return try decideResolveDispute(disputeID: disputeID, won: won, reason: reason, state: state, context: context)
        case .expireUnpaid:
            switch state.status {
            case .cancelled:
                return []
            case .placed:
                guard context.nowMicros >= state.reservationsExpireAtMicros else {
                    throw .wrongState("the order's reservations expire at \(state.reservationsExpireAtMicros) µs, not yet", currentState: stateName(.placed))
                }
                return try decideCancel(state: state, reason: "reservations expired unpaid", expired: true, context: context)
            default:
                throw refusal("expire", state.status)
            }
        }
    }

    // MARK: Place

    private static func decidePlace(_ p: OrderCommand.PlaceOrder, state: State, context: CommandContext) throws(DomainError) -> [Tote_V1_OrderEvent] {
        if state.status != .unspecified {
            if state.orderID == p.orderID && state.checkoutID == p.checkoutID { return [] }
            throw DomainError(.alreadyExists, "order \(state.orderID) exists already")
        }
        var v = Validator()
        v.require(!p.orderID.isEmpty, "order_id", "is required")
        v.require(!p.orderNumber.isEmpty, "order_number", "is required")
        v.require(!p.email.isEmpty, "email", "is required")
        v.require(isCurrencyCode(p.currency), "currency", "must be an ISO 4217 code")
        v.require(!p.checkoutID.isEmpty, "checkout_id", "is required")
        v.require(!p.lines.isEmpty, "lines", "must not be empty")
        v.require(p.lines.count <= maxLines, "lines", "at most \(maxLines) lines")
        v.require(p.reservationsExpireAtMicros > 0, "reservations_expire_at", "is required")
        v.require(!p.shippingAddress.country.isEmpty, "shipping_address.country", "is required")
        let currency = p.currency
        func money(_ m: Money, _ field: String, _ v: inout Validator) {
            v.require(m.currency == currency, "\(field).currency", "must be \(currency)")
            v.require(!m.isNegative, "\(field).minor_units", "must not be negative")
        }
        var seenLines = Set<String>()
        var lines: [Tote_V1_OrderLine] = []
        var subtotal = Money.zero(currency)
        var lineDiscounts = Money.zero(currency)
        for (i, line) in p.lines.enumerated() {
            let f = "lines[\(i)]"
            v.require(!line.lineID.isEmpty, "\(f).line_id", "is required")
            v.require(line.lineID.isEmpty || seenLines.insert(line.lineID).inserted, "\(f).line_id", "is a duplicate")
            v.require(!line.sku.isEmpty, "\(f).sku", "is required")
            v.require(!line.productID.isEmpty, "\(f).product_id", "is required")
            v.require(line.quantity > 0 && line.quantity <= maxLineQuantity, "\(f).quantity", "must be 1...\(maxLineQuantity)")
            v.require(!line.locationID.isEmpty, "\(f).location_id", "is required")
            v.require(!line.reservationID.isEmpty, "\(f).reservation_id", "is required")
            money(line.unitPrice, "\(f).unit_price", &v)
            money(line.tax, "\(f).line_tax", &v)
            var discount = Money.zero(currency)
            for (j, promo) in line.promotions.enumerated() {
                let pf = "\(f).promotions[\(j)]"
                v.require(!promo.ruleID.isEmpty, "\(pf).rule_id", "is required")
                money(Money(promo.amount), "\(pf).amount", &v)
                discount = (try? discount.adding(Money(promo.amount))) ?? discount
            }
            guard line.quantity > 0 && line.quantity <= maxLineQuantity, line.unitPrice.currency == currency,
                  let lineSubtotal = try? line.unitPrice.multiplied(by: line.quantity) else { continue }
            v.require(discount <= lineSubtotal, "\(f).promotions", "discounts exceed the line subtotal")
            var ol = Tote_V1_OrderLine()
            ol.lineID = line.lineID
            ol.sku = line.sku
            ol.productID = line.productID
            ol.displayName = line.displayName
            ol.quantity = UInt32(line.quantity)
            ol.unitPrice = line.unitPrice.proto
            ol.lineSubtotal = lineSubtotal.proto
            ol.promotions = line.promotions
            ol.lineDiscount = discount.proto
            ol.lineTotal = Money(lineSubtotal.minorUnits - min(discount.minorUnits, lineSubtotal.minorUnits), currency).proto
            ol.lineTax = line.tax.proto
            ol.locationID = line.locationID
            lines.append(ol)
            subtotal = (try? subtotal.adding(lineSubtotal)) ?? Money(Int64.max, currency)
            lineDiscounts = (try? lineDiscounts.adding(discount)) ?? lineDiscounts
        }
        for (j, promo) in p.orderPromotions.enumerated() {
            v.require(!promo.ruleID.isEmpty, "order_promotions[\(j)].rule_id", "is required")
            money(Money(promo.amount), "order_promotions[\(j)].amount", &v)
        }
        let t = p.totals
        for (name, m) in [("subtotal", t.subtotal), ("discount_total", t.discountTotal), ("shipping_total", t.shippingTotal), ("tax_total", t.taxTotal), ("total", t.total)] {
            money(Money(m), "totals.\(name)", &v)
        }
        try v.check()
        // The totals must add up (the checkout computed them; the order records them as placed).
        let expected: Money
        do {
            var sum = try Money(t.subtotal).subtracting(Money(t.discountTotal)).adding(Money(t.shippingTotal))
            if !t.taxInclusive { sum = try sum.adding(Money(t.taxTotal)) }
            expected = sum
        } catch {
            throw .invalid("totals", "amounts overflow")
        }
        v.require(t.subtotal.minorUnits == subtotal.minorUnits, "totals.subtotal", "must equal the sum of the lines' subtotals (\(subtotal.minorUnits))")
        v.require(lineDiscounts.minorUnits <= t.discountTotal.minorUnits, "totals.discount_total", "must include the lines' discounts (\(lineDiscounts.minorUnits))")
        v.require(t.total.minorUnits == expected.minorUnits, "totals.total", "must equal subtotal − discount_total + shipping_total\(t.taxInclusive ? "" : " + tax_total") (\(expected.minorUnits))")
        try v.check()

        var e = Tote_V1_OrderPlaced()
        e.orderID = p.orderID
        e.orderNumber = p.orderNumber
        e.customerID = p.customerID
        e.email = p.email
        e.currency = p.currency
        e.lines = lines
        e.orderPromotions = p.orderPromotions
        e.totals = p.totals
        e.shippingAddress = p.shippingAddress
        e.billingAddress = p.billingAddress
        e.shippingOptionLabel = p.shippingOptionLabel
        e.checkoutID = p.checkoutID
        e.paymentID = p.paymentID
        e.reservations = p.lines.map { line in
            var r = Tote_V1_OrderReservation()
            r.lineID = line.lineID
            r.sku = line.sku
            r.locationID = line.locationID
            r.reservationID = line.reservationID
            r.quantity = UInt32(line.quantity)
            return r
        }
        e.reservationsExpireAt = timestamp(p.reservationsExpireAtMicros)
        e.placedAt = timestamp(context.nowMicros)
        e.actorID = context.actor.id
        e.actorRole = context.actor.role
        return [event(.orderPlaced(e))]
    }

    // MARK: Payment

    private static func decideMarkPaid(paymentID: String, amount: Money, reason: String, state: State, context: CommandContext) throws(DomainError) -> [Tote_V1_OrderEvent] {
        var v = Validator()
        v.require(!paymentID.isEmpty, "payment_id", "is required")
        v.require(isCurrencyCode(amount.currency), "amount.currency", "must be an ISO 4217 code")
        try v.check()
        if !state.paidPaymentID.isEmpty {
            if state.paidPaymentID == paymentID { return [] }
            throw .wrongState("the order is already paid by payment \(state.paidPaymentID)", currentState: stateName(state.status))
        }
        guard state.status == .placed else { throw refusal("pay", state.status) }
        v.require(amount.currency == state.currency, "amount.currency", "must be the order's currency \(state.currency)")
        v.require(amount.minorUnits == state.totals.total.minorUnits, "amount.minor_units", "must equal the order total \(state.totals.total.minorUnits)")
        try v.check()
        var e = Tote_V1_OrderPaid()
        e.paymentID = paymentID
        e.amount = amount.proto
        e.reservations = state.reservations
        e.at = timestamp(context.nowMicros); e.actorID = context.actor.id; e.actorRole = context.actor.role; e.reason = reason
        return [event(.orderPaid(e))]
    }

    // MARK: Fulfilment

    /// A forward fulfilment step `from → to`; a no-op when the order is already at `to`.
    private static func fulfilmentStep(_ state: State, from: Tote_V1_OrderState, to: Tote_V1_OrderState, verb: String, context: CommandContext, make: () -> Tote_V1_OrderEvent.OneOf_Event) throws(DomainError) -> [Tote_V1_OrderEvent] {
        let current = state.fulfilmentStatus
        if current == to { return [] }
        guard current == from else { throw refusal(verb, state.status) }
        return [event(make())]
    }

    // MARK: Cancel

    private static func decideCancel(state: State, reason: String, expired: Bool, context: CommandContext) throws(DomainError) -> [Tote_V1_OrderEvent] {
        if state.status == .cancelled { return [] }
        switch state.fulfilmentStatus {
        case .placed, .paid, .picking, .packed: break
        default: throw refusal("cancel", state.status)
        }
        var e = Tote_V1_OrderCancelled()
        e.previousState = state.status
        if state.paidPaymentID.isEmpty {
            e.reservationsToRelease = state.reservations
            e.paymentID = state.paymentID
            e.refundAmount = Money.zero(state.currency).proto
        } else {
            e.refundDue = state.refundable.minorUnits > 0
            e.refundAmount = state.refundable.proto
            e.paymentID = state.paidPaymentID
        }
        e.expired = expired
        e.at = timestamp(context.nowMicros); e.actorID = context.actor.id; e.actorRole = context.actor.role; e.reason = reason
        return [event(.orderCancelled(e))]
    }

    // MARK: Refund

    /// Each line's share of what was paid for goods, in minor units: `total − shipping_total`
    /// split exactly over the lines in proportion to their paid price (`line_total`, plus
    /// `line_tax` when prices exclude tax). The shares sum to `total − shipping_total`, so
    /// order-level discounts are spread over the lines and refunding every unit refunds exactly
    /// what the goods cost. Refunding `q` more units of a line with `r` already refunded refunds
    /// `round(share × (r + q) / quantity) − round(share × r / quantity)`.
    public static func paidShares(_ state: State) -> [Int64] {
        let goods = max(0, state.totals.total.minorUnits - state.totals.shippingTotal.minorUnits)
        let weights = state.lines.map { line in
            max(0, line.lineTotal.minorUnits &+ (state.totals.taxInclusive ? 0 : line.lineTax.minorUnits))
        }
        guard let parts = try? Money(goods, state.currency).allocated(proportionally: weights) else {
            return weights.map { _ in 0 }
        }
        return parts.map(\.minorUnits)
    }

    private static func decideRefund(_ r: OrderCommand.RefundOrder, state: State, context: CommandContext) throws(DomainError) -> [Tote_V1_OrderEvent] {
        var v = Validator()
        v.require(!r.refundID.isEmpty, "refund_id", "is required")
        v.require(!trimmed(r.reason).isEmpty, "reason", "is required")
        if r.full {
            v.require(r.lines.isEmpty, "lines", "must be empty for a full refund")
            v.require(r.amount == nil || r.amount!.isZero, "amount", "must be empty for a full refund")
        } else {
            v.require(!r.lines.isEmpty || (r.amount.map { !$0.isZero } ?? false), "lines", "give lines, an amount, or full")
        }
        var seen = Set<String>()
        for (i, line) in r.lines.enumerated() {
            v.require(!line.lineID.isEmpty, "lines[\(i)].line_id", "is required")
            v.require(line.lineID.isEmpty || seen.insert(line.lineID).inserted, "lines[\(i)].line_id", "is a duplicate")
            v.require(line.quantity > 0 && line.quantity <= maxLineQuantity, "lines[\(i)].quantity", "must be 1...\(maxLineQuantity)")
        }
        if let amount = r.amount {
            v.require(isCurrencyCode(amount.currency), "amount.currency", "must be an ISO 4217 code")
            v.require(!amount.isNegative, "amount.minor_units", "must not be negative")
        }
        try v.check()
        if state.refundIDs.contains(r.refundID) { return [] }
        switch state.status {
        case .paid, .picking, .packed, .shipped, .delivered, .partiallyRefunded: break
        default: throw refusal("refund", state.status)
        }
        if let amount = r.amount {
            try require(amount.currency == state.currency, "amount.currency", "must be the order's currency \(state.currency)")
        }
        let currency = state.currency
        let shares = paidShares(state)
        let remaining = state.refundable.minorUnits
        var refundedLines: [Tote_V1_RefundedLine] = []
        func portion(_ index: Int, upTo units: Int64) -> Int64 {
            let line = state.lines[index]
            return (try? Money.divideRounded(shares[index], times: units, by: Int64(line.quantity))) ?? 0
        }
        func refundedLine(_ index: Int, quantity: Int64) -> Tote_V1_RefundedLine {
            let line = state.lines[index]
            let before = Int64(line.quantityRefunded)
            var rl = Tote_V1_RefundedLine()
            rl.lineID = line.lineID
            rl.sku = line.sku
            rl.locationID = line.locationID
            rl.quantity = UInt32(quantity)
            rl.amount = Money(portion(index, upTo: before + quantity) - portion(index, upTo: before), currency).proto
            return rl
        }
        var extra: Int64 = 0
        if r.full {
            guard remaining > 0 else { throw .wrongState("nothing is left to refund", currentState: stateName(state.status)) }
            for (i, line) in state.lines.enumerated() where line.quantityRefunded < line.quantity {
                refundedLines.append(refundedLine(i, quantity: Int64(line.quantity - line.quantityRefunded)))
            }
            let linesSum = refundedLines.reduce(0) { $0 + $1.amount.minorUnits }
            if linesSum > remaining {
                // Earlier amount refunds already returned part of the goods' price: spread what is
                // left over the lines.
                let parts = (try? Money(remaining, currency).allocated(proportionally: refundedLines.map(\.amount.minorUnits))) ?? []
                for i in refundedLines.indices { refundedLines[i].amount = (i < parts.count ? parts[i] : .zero(currency)).proto }
            } else {
                extra = remaining - linesSum
            }
        } else {
            for (i, request) in r.lines.enumerated() {
                guard let index = state.lines.firstIndex(where: { $0.lineID == request.lineID }) else {
                    v.require(false, "lines[\(i)].line_id", "is not a line of this order")
                    continue
                }
                let open = Int64(state.lines[index].quantity - state.lines[index].quantityRefunded)
                guard request.quantity <= open else {
                    v.require(false, "lines[\(i)].quantity", "at most \(open) units of line \(request.lineID) are not yet refunded")
                    continue
                }
                refundedLines.append(refundedLine(index, quantity: request.quantity))
            }
            try v.check()
            extra = r.amount?.minorUnits ?? 0
        }
        let linesSum = refundedLines.reduce(Int64(0)) { $0 + $1.amount.minorUnits }
        let (amount, overflow) = linesSum.addingReportingOverflow(extra)
        guard !overflow else { throw .invalid("amount", "overflows") }
        guard amount <= remaining else {
            throw DomainError(.failedPrecondition, "a refund of \(amount) exceeds the refundable \(remaining) (\(currency) minor units)", currentState: stateName(state.status))
        }
        var e = Tote_V1_OrderRefunded()
        e.refundID = r.refundID
        e.full = r.full
        e.lines = refundedLines
        e.extraAmount = Money(extra, currency).proto
        e.amount = Money(amount, currency).proto
        e.refundedTotal = Money(state.refundedMinor + amount, currency).proto
        e.restock = r.restock
        e.paymentID = state.paidPaymentID
        e.at = timestamp(context.nowMicros); e.actorID = context.actor.id; e.actorRole = context.actor.role; e.reason = r.reason
        return [event(.orderRefunded(e))]
    }

    // MARK: Disputes

    private static func decideOpenDispute(disputeID: String, amount: Money, reason: String, state: State, context: CommandContext) throws(DomainError) -> [Tote_V1_OrderEvent] {
        var v = Validator()
        v.require(!disputeID.isEmpty, "dispute_id", "is required")
        v.require(isCurrencyCode(amount.currency), "amount.currency", "must be an ISO 4217 code")
        v.require(amount.minorUnits > 0, "amount.minor_units", "must be positive")
        try v.check()
        if state.openDisputeID == disputeID || state.resolvedDisputeIDs.contains(disputeID) { return [] }
        switch state.status {
        case .paid, .picking, .packed, .shipped, .delivered, .partiallyRefunded: break
        default: throw refusal("dispute", state.status)
        }
        try require(amount.currency == state.currency, "amount.currency", "must be the order's currency \(state.currency)")
        var e = Tote_V1_OrderDisputeOpened()
        e.disputeID = disputeID
        e.amount = amount.proto
        e.previousState = state.status
        e.at = timestamp(context.nowMicros); e.actorID = context.actor.id; e.actorRole = context.actor.role; e.reason = reason
        return [event(.orderDisputeOpened(e))]
    }

    private static func decideResolveDispute(disputeID: String, won: Bool, reason: String, state: State, context: CommandContext) throws(DomainError) -> [Tote_V1_OrderEvent] {
        try require(!disputeID.isEmpty, "dispute_id", "is required")
        if state.resolvedDisputeIDs.contains(disputeID) { return [] }
        guard state.status == .disputed else { throw refusal("resolve a dispute of", state.status) }
        guard state.openDisputeID == disputeID else {
            throw DomainError(.notFound, "dispute \(disputeID) is not open on this order (open: \(state.openDisputeID))")
        }
        var e = Tote_V1_OrderDisputeResolved()
        e.disputeID = disputeID
        e.won = won
        if won {
            e.amountLost = Money.zero(state.currency).proto
            e.resultingState = state.statusBeforeDispute
        } else {
            let lost = min(state.disputeAmountMinor, state.refundable.minorUnits)
            e.amountLost = Money(lost, state.currency).proto
            e.resultingState = state.refundedMinor + lost >= state.paidMinor ? .refunded : .partiallyRefunded
        }
        e.at = timestamp(context.nowMicros); e.actorID = context.actor.id; e.actorRole = context.actor.role; e.reason = reason
        return [event(.orderDisputeResolved(e))]
    }

    // MARK: Evolve

    public static func evolve(_ state: State, _ event: Tote_V1_OrderEvent) -> State {
        var s = state
        switch event.event {
        case nil:
            return s
        case .orderPlaced(let e)?:
            s.status = .placed
            s.stage = .placed
            s.orderID = e.orderID
            s.orderNumber = e.orderNumber
            s.customerID = e.customerID
            s.email = e.email
            s.currency = e.currency
            s.checkoutID = e.checkoutID
            s.paymentID = e.paymentID
            s.lines = e.lines
            s.orderPromotions = e.orderPromotions
            s.totals = e.totals
            s.shippingAddress = e.shippingAddress
            s.billingAddress = e.billingAddress
            s.shippingOptionLabel = e.shippingOptionLabel
            s.reservations = e.reservations
            s.reservationsExpireAtMicros = e.reservationsExpireAt.unixMicros
            s.placedAtMicros = e.placedAt.unixMicros
            s.stateSinceMicros = e.placedAt.unixMicros
        case .orderPaid(let e)?:
            s.status = .paid
            s.stage = .paid
            s.paidPaymentID = e.paymentID
            s.paidMinor = e.amount.minorUnits
            s.stateSinceMicros = e.at.unixMicros
        case .orderPickingStarted(let e)?:
            s.status = .picking
            s.stage = .picking
            s.stateSinceMicros = e.at.unixMicros
        case .orderPacked(let e)?:
            s.status = .packed
            s.stage = .packed
            s.stateSinceMicros = e.at.unixMicros
        case .orderShipped(let e)?:
            s.status = .shipped
            s.stage = .shipped
            var shipment = Tote_V1_Shipment()
            shipment.carrier = e.carrier
            shipment.trackingNumber = e.trackingNumber
            shipment.trackingURL = e.trackingURL
            shipment.shippedAt = e.shippedAt
            s.shipment = shipment
            s.stateSinceMicros = e.at.unixMicros
        case .orderDelivered(let e)?:
            s.status = .delivered
            s.stage = .delivered
            s.shipment?.deliveredAt = e.deliveredAt
            s.stateSinceMicros = e.at.unixMicros
        case .orderCancelled(let e)?:
            s.status = .cancelled
            s.expired = e.expired
            s.stateSinceMicros = e.at.unixMicros
        case .orderRefunded(let e)?:
            s.refundIDs.insert(e.refundID)
            s.refundedMinor = e.refundedTotal.minorUnits
            for line in e.lines {
                if let i = s.lines.firstIndex(where: { $0.lineID == line.lineID }) {
                    s.lines[i].quantityRefunded += line.quantity
                }
            }
            s.status = s.refundedMinor >= s.paidMinor ? .refunded : .partiallyRefunded
            s.stateSinceMicros = e.at.unixMicros
        case .orderDisputeOpened(let e)?:
            s.openDisputeID = e.disputeID
            s.disputeAmountMinor = e.amount.minorUnits
            s.statusBeforeDispute = e.previousState
            s.status = .disputed
            s.stateSinceMicros = e.at.unixMicros
        case .orderDisputeResolved(let e)?:
            s.resolvedDisputeIDs.insert(e.disputeID)
            s.openDisputeID = ""
            s.disputeAmountMinor = 0
            s.refundedMinor += e.amountLost.minorUnits
            s.status = e.resultingState
            s.statusBeforeDispute = .unspecified
            s.stateSinceMicros = e.at.unixMicros
        }
        return s
    }

    // MARK: Helpers

    /// `ORDER_STATE_PLACED` etc.: the proto enum value's name, as errors report it.
    public static func stateName(_ state: Tote_V1_OrderState) -> String {
        switch state {
        case .unspecified: "ORDER_STATE_UNSPECIFIED"
        case .placed: "ORDER_STATE_PLACED"
        case .paid: "ORDER_STATE_PAID"
        case .picking: "ORDER_STATE_PICKING"
        case .packed: "ORDER_STATE_PACKED"
        case .shipped: "ORDER_STATE_SHIPPED"
        case .delivered: "ORDER_STATE_DELIVERED"
        case .cancelled: "ORDER_STATE_CANCELLED"
        case .refunded: "ORDER_STATE_REFUNDED"
        case .partiallyRefunded: "ORDER_STATE_PARTIALLY_REFUNDED"
        case .disputed: "ORDER_STATE_DISPUTED"
        case .UNRECOGNIZED(let n): "ORDER_STATE_\(n)"
        }
    }

    /// `placed`, `partially refunded` …: the state in a sentence.
    static func stateWords(_ state: Tote_V1_OrderState) -> String {
        stateName(state).dropFirst("ORDER_STATE_".count).lowercased().map { $0 == "_" ? " " : String($0) }.joined()
    }

    /// "cannot ship an order that is placed".
    private static func refusal(_ verb: String, _ state: Tote_V1_OrderState) -> DomainError {
        .wrongState("cannot \(verb) an order that is \(stateWords(state))", currentState: stateName(state))
    }

    private static func require(_ condition: Bool, _ field: String, _ description: String) throws(DomainError) {
        if !condition { throw .invalid(field, description) }
    }

    /// A `Timestamp` at `micros` since the epoch.
    static func timestamp(_ micros: Int64) -> Tote_V1_Timestamp {
        var t = Tote_V1_Timestamp()
        t.unixMicros = micros
        return t
    }

    /// `text` without leading and trailing white space (no Foundation).
    static func trimmed(_ text: String) -> Substring {
        var s = Substring(text)
        while s.first?.isWhitespace == true { s.removeFirst() }
        while s.last?.isWhitespace == true { s.removeLast() }
        return s
    }

    private static func event(_ e: Tote_V1_OrderEvent.OneOf_Event) -> Tote_V1_OrderEvent {
        var envelope = Tote_V1_OrderEvent()
        envelope.event = e
        return envelope
    }
}

extension Tote_V1_OrderEvent: DomainEvent {
    /// The case message's name, e.g. `OrderPlaced`.
    public var typeName: String {
        switch event {
        case .orderPlaced?: "OrderPlaced"
        case .orderPaid?: "OrderPaid"
        case .orderPickingStarted?: "OrderPickingStarted"
        case .orderPacked?: "OrderPacked"
        case .orderShipped?: "OrderShipped"
        case .orderDelivered?: "OrderDelivered"
        case .orderCancelled?: "OrderCancelled"
        case .orderRefunded?: "OrderRefunded"
        case .orderDisputeOpened?: "OrderDisputeOpened"
        case .orderDisputeResolved?: "OrderDisputeResolved"
        case nil: "OrderEvent"
        }
    }
}
