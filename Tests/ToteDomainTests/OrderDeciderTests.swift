import SwiftProtobuf
import Testing
import ToteDomain
import ToteProto

// MARK: - Fixture (file-private: the test module is shared with other deciders' tests)

private typealias D = OrderDecider
private typealias PlaceOrder = OrderCommand.PlaceOrder
private typealias PlaceOrderLine = OrderCommand.PlaceOrderLine
private typealias MarkShipped = OrderCommand.MarkShipped
private typealias RefundOrder = OrderCommand.RefundOrder
private typealias RefundOrderLine = OrderCommand.RefundOrderLine
private let t0: Int64 = 1_700_000_000_000_000
private let minute: Int64 = 60_000_000
private let expiry = t0 + 15 * minute
private let operatorActor = Principal(id: "op-1", role: "operator")

private func ctx(_ now: Int64 = t0 + minute, actor: Principal = operatorActor) -> CommandContext {
    CommandContext(actor: actor, nowMicros: now)
}

private func eur(_ minor: Int64) -> Money { Money(minor, "EUR") }

private func promotion(_ rule: String, _ minor: Int64, _ effect: Tote_V1_PromotionEffect = .percentage) -> Tote_V1_AppliedPromotion {
    var p = Tote_V1_AppliedPromotion()
    p.ruleID = rule
    p.ruleVersion = 1
    p.label = rule
    p.effect = effect
    p.amount = eur(minor).proto
    return p
}

/// Two lines, tax-exclusive, with a line promotion and an order promotion:
/// A: 2 × 19.99 − 4.00 (10 %) = 35.98 + 7.20 tax; B: 3 × 10.00 = 30.00 + 6.00 tax;
/// subtotal 69.98 − discounts 7.00 + shipping 4.99 + tax 13.20 = total 81.17.
private func placeCommand(orderID: String = "o1", checkoutID: String = "c1") -> PlaceOrder {
    var totals = Tote_V1_Totals()
    totals.subtotal = eur(6998).proto
    totals.discountTotal = eur(700).proto
    totals.shippingTotal = eur(499).proto
    totals.taxTotal = eur(1320).proto
    totals.total = eur(8117).proto
    totals.taxInclusive = false
    var address = Tote_V1_Address()
    address.name = "Ada"
    address.lines = ["1 Main St"]
    address.city = "Berlin"
    address.postalCode = "10115"
    address.country = "DE"
    return PlaceOrder(
        orderID: orderID, orderNumber: "T-100001", customerID: "cust-1", email: "ada@example.com", currency: "EUR",
        lines: [
            PlaceOrderLine(lineID: "l1", sku: "TSHIRT-RED-M", productID: "p1", displayName: "T-shirt red M", quantity: 2, unitPrice: eur(1999), promotions: [promotion("r10", 400)], tax: eur(720), locationID: "wh1", reservationID: "res-1"),
            PlaceOrderLine(lineID: "l2", sku: "MUG-1", productID: "p2", displayName: "Mug", quantity: 3, unitPrice: eur(1000), tax: eur(600), locationID: "wh2", reservationID: "res-2"),
        ],
        orderPromotions: [promotion("fixed3", 300, .fixedAmount)],
        totals: totals, shippingAddress: address, billingAddress: address, shippingOptionLabel: "DHL Standard",
        checkoutID: checkoutID, paymentID: "p1", reservationsExpireAtMicros: expiry)
}

/// Decides `command` and folds its events into `state`; fails the test on a refusal.
private func run(_ state: D.State, _ command: OrderCommand, at now: Int64 = t0 + minute, actor: Principal = operatorActor) throws -> D.State {
    D.fold(try D.decide(command, state: state, context: ctx(now, actor: actor)), from: state)
}

private func given(_ commands: [OrderCommand]) throws -> D.State {
    var s = D.initialState
    for c in commands { s = try run(s, c) }
    return s
}

/// The refusal `body` throws, or nil.
private func refusal<T>(_ body: () throws(DomainError) -> T) -> DomainError? {
    do { _ = try body(); return nil } catch { return error }
}

private let place = OrderCommand.place(placeCommand())
private let pay = OrderCommand.markPaid(paymentID: "p1", amount: eur(8117), reason: "captured")
private let pick = OrderCommand.startPicking(reason: "wave 7")
private let pack = OrderCommand.markPacked(reason: "station 2")
private let ship = OrderCommand.markShipped(MarkShipped(carrier: "DHL", trackingNumber: "JD0001", reason: "pickup"))
private let deliver = OrderCommand.markDelivered(deliveredAtMicros: 0, reason: "carrier scan")
private let cancel = OrderCommand.cancel(reason: "customer asked")
private let refundSome = OrderCommand.refund(RefundOrder(refundID: "rf-new", amount: eur(100), reason: "goodwill"))
private let refundAll = OrderCommand.refund(RefundOrder(refundID: "rf-all", full: true, reason: "returned"))
private let dispute = OrderCommand.openDispute(disputeID: "dp-new", amount: eur(8117), reason: "chargeback")
private let resolveWon = OrderCommand.resolveDispute(disputeID: "dp-1", won: true, reason: "evidence accepted")
private let expire = OrderCommand.expireUnpaid

/// The eleven states (no order yet, and the ten of `OrderState`), each reached through commands.
private let states: [(String, [OrderCommand])] = [
    ("NONE", []),
    ("PLACED", [place]),
    ("PAID", [place, pay]),
    ("PICKING", [place, pay, pick]),
    ("PACKED", [place, pay, pick, pack]),
    ("SHIPPED", [place, pay, pick, pack, ship]),
    ("DELIVERED", [place, pay, pick, pack, ship, deliver]),
    ("CANCELLED", [place, cancel]),
    ("REFUNDED", [place, pay, .refund(RefundOrder(refundID: "rf-0", full: true, reason: "r"))]),
    ("PARTIALLY_REFUNDED", [place, pay, .refund(RefundOrder(refundID: "rf-0", amount: eur(50), reason: "r"))]),
    ("DISPUTED", [place, pay, .openDispute(disputeID: "dp-1", amount: eur(8117), reason: "chargeback")]),
]

private let commands: [(String, OrderCommand)] = [
    ("place", place), ("pay", pay), ("pick", pick), ("pack", pack), ("ship", ship), ("deliver", deliver),
    ("cancel", cancel), ("refundSome", refundSome), ("refundAll", refundAll), ("dispute", dispute),
    ("resolveWon", resolveWon), ("expire", expire),
]

/// What each command does in each state: `→STATE` one event to that state, `=` no events
/// (already done), `!` refused naming the current state, `404` not found.
private let expected: [String: [String: String]] = [
    //            place  pay          pick          pack        ship          deliver         cancel          refundSome                refundAll      dispute        resolveWon  expire
    "NONE": row("=", "404", "404", "404", "404", "404", "404", "404", "404", "404", "404", "404", place: "→PLACED"),
    "PLACED": row("=", "→PAID", "!", "!", "!", "!", "→CANCELLED", "!", "!", "!", "!", "→CANCELLED"),
    "PAID": row("=", "=", "→PICKING", "!", "!", "!", "→CANCELLED", "→PARTIALLY_REFUNDED", "→REFUNDED", "→DISPUTED", "!", "!"),
    "PICKING": row("=", "=", "=", "→PACKED", "!", "!", "→CANCELLED", "→PARTIALLY_REFUNDED", "→REFUNDED", "→DISPUTED", "!", "!"),
    "PACKED": row("=", "=", "!", "=", "→SHIPPED", "!", "→CANCELLED", "→PARTIALLY_REFUNDED", "→REFUNDED", "→DISPUTED", "!", "!"),
    "SHIPPED": row("=", "=", "!", "!", "=", "→DELIVERED", "!", "→PARTIALLY_REFUNDED", "→REFUNDED", "→DISPUTED", "!", "!"),
    "DELIVERED": row("=", "=", "!", "!", "=", "=", "!", "→PARTIALLY_REFUNDED", "→REFUNDED", "→DISPUTED", "!", "!"),
    "CANCELLED": row("=", "!", "!", "!", "!", "!", "=", "!", "!", "!", "!", "="),
    "REFUNDED": row("=", "=", "!", "!", "!", "!", "!", "!", "!", "!", "!", "!"),
    "PARTIALLY_REFUNDED": row("=", "=", "→PICKING", "!", "!", "!", "→CANCELLED", "→PARTIALLY_REFUNDED", "→REFUNDED", "→DISPUTED", "!", "!"),
    "DISPUTED": row("=", "=", "!", "!", "!", "!", "!", "!", "!", "!", "→PAID", "!"),
]

private func row(_ place: String, _ pay: String, _ pick: String, _ pack: String, _ ship: String, _ deliver: String, _ cancel: String, _ refundSome: String, _ refundAll: String, _ dispute: String, _ resolveWon: String, _ expire: String, place placeOverride: String? = nil) -> [String: String] {
    ["place": placeOverride ?? place, "pay": pay, "pick": pick, "pack": pack, "ship": ship, "deliver": deliver, "cancel": cancel,
     "refundSome": refundSome, "refundAll": refundAll, "dispute": dispute, "resolveWon": resolveWon, "expire": expire]
}

private struct Case: CustomTestStringConvertible, Sendable {
    var state: String
    var command: String
    var testDescription: String { "\(command) in \(state)" }
}

private let allCases: [Case] = states.flatMap { s in commands.map { Case(state: s.0, command: $0.0) } }

// MARK: - Every command in every state

@Suite("OrderDecider: every command in every state")
struct OrderTransitionTableTests {
    @Test(arguments: allCases)
    fileprivate func transition(_ c: Case) throws {
        let state = try given(states.first { $0.0 == c.state }!.1)
        let command = commands.first { $0.0 == c.command }!.1
        let want = try #require(expected[c.state]?[c.command])
        let now = expiry + minute  // past the reservations' expiry, so expireUnpaid applies
        let result: Result<[Tote_V1_OrderEvent], DomainError>
        do { result = .success(try D.decide(command, state: state, context: ctx(now))) } catch { result = .failure(error) }
        switch (want, result) {
        case ("=", .success(let events)):
            #expect(events.isEmpty)
        case ("404", .failure(let error)):
            #expect(error.code == .notFound)
        case ("!", .failure(let error)):
            #expect(error.code == .failedPrecondition)
            #expect(error.currentState == D.stateName(state.status))
            #expect(error.message.hasPrefix("cannot ") || error.message.contains("already"), "\(error.message)")
        case (let arrow, .success(let events)) where arrow.hasPrefix("→"):
            #expect(events.count == 1)
            let after = D.fold(events, from: state)
            #expect(D.stateName(after.status) == "ORDER_STATE_" + arrow.dropFirst())
        default:
            Issue.record("\(c.testDescription): expected \(want), got \(result)")
        }
    }

    @Test func refusalMessageNamesTheCurrentState() throws {
        let state = try given([place])
        let error = refusal { () throws(DomainError) in try D.decide(ship, state: state, context: ctx()) }
        #expect(error == .wrongState("cannot ship an order that is placed", currentState: "ORDER_STATE_PLACED"))
    }
}

// MARK: - Placing

@Suite("OrderDecider: PlaceOrder")
struct OrderPlaceTests {
    @Test func placeRecordsLinesTotalsAndReservations() throws {
        let events = try D.decide(place, state: D.initialState, context: ctx(t0))
        guard case .orderPlaced(let e)? = events.first?.event else { Issue.record("no OrderPlaced"); return }
        #expect(events.first?.typeName == "OrderPlaced")
        #expect(e.lines.count == 2)
        #expect(e.lines[0].lineSubtotal.minorUnits == 3998)
        #expect(e.lines[0].lineDiscount.minorUnits == 400)
        #expect(e.lines[0].lineTotal.minorUnits == 3598)
        #expect(e.lines[1].lineTotal.minorUnits == 3000)
        #expect(e.reservations.map(\.reservationID) == ["res-1", "res-2"])
        #expect(e.reservations.map(\.locationID) == ["wh1", "wh2"])
        #expect(e.reservationsExpireAt.unixMicros == expiry)
        #expect(e.placedAt.unixMicros == t0)
        #expect(e.actorID == "op-1" && e.actorRole == "operator")
        let state = D.fold(events)
        #expect(state.status == .placed)
        #expect(state.total == eur(8117))
        #expect(state.stateSinceMicros == t0)
    }

    @Test func placingAnotherOrderOnTheSameStreamIsRefused() throws {
        let state = try given([place])
        let error = refusal { () throws(DomainError) in try D.decide(.place(placeCommand(checkoutID: "c2")), state: state, context: ctx()) }
        #expect(error?.code == .alreadyExists)
    }

    @Test func invalidFieldsAreAllReported() {
        var p = placeCommand()
        p.orderID = ""
        p.currency = "eur"
        p.email = ""
        p.lines[0].quantity = 0
        p.lines[1].sku = ""
        p.lines[1].reservationID = ""
        p.lines[1].lineID = "l1"
        let error = refusal { () throws(DomainError) in try D.decide(.place(p), state: D.initialState, context: ctx()) }
        #expect(error?.code == .invalidArgument)
        let fields = Set(error?.violations.map(\.field) ?? [])
        #expect(fields.isSuperset(of: ["order_id", "currency", "email", "lines[0].quantity", "lines[1].sku", "lines[1].reservation_id", "lines[1].line_id"]))
    }

    @Test func emptyOrOversizedLinesAreRefused() {
        var p = placeCommand()
        p.lines = []
        #expect(refusal { () throws(DomainError) in try D.decide(.place(p), state: D.initialState, context: ctx()) }?.violations.map(\.field) == ["lines"])
        p = placeCommand()
        p.lines[1].quantity = D.maxLineQuantity + 1
        #expect(refusal { () throws(DomainError) in try D.decide(.place(p), state: D.initialState, context: ctx()) }?.violations.map(\.field) == ["lines[1].quantity"])
    }

    @Test func amountsInAnotherCurrencyAreRefused() {
        var p = placeCommand()
        p.lines[1].unitPrice = Money(1000, "USD")
        let error = refusal { () throws(DomainError) in try D.decide(.place(p), state: D.initialState, context: ctx()) }
        #expect(error?.violations.map(\.field).contains("lines[1].unit_price.currency") == true)
    }

    @Test func totalsMustAddUp() {
        var p = placeCommand()
        p.totals.total = eur(8116).proto
        var error = refusal { () throws(DomainError) in try D.decide(.place(p), state: D.initialState, context: ctx()) }
        #expect(error?.violations.map(\.field) == ["totals.total"])
        p = placeCommand()
        p.totals.subtotal = eur(7000).proto
        p.totals.total = eur(8119).proto
        error = refusal { () throws(DomainError) in try D.decide(.place(p), state: D.initialState, context: ctx()) }
        #expect(error?.violations.map(\.field) == ["totals.subtotal"])
        p = placeCommand()
        p.totals.discountTotal = eur(300).proto  // less than the line discount of 400
        p.totals.total = eur(8517).proto
        error = refusal { () throws(DomainError) in try D.decide(.place(p), state: D.initialState, context: ctx()) }
        #expect(error?.violations.map(\.field) == ["totals.discount_total"])
    }

    @Test func taxInclusiveTotalsDoNotAddTax() throws {
        var p = placeCommand()
        p.totals.taxInclusive = true
        p.totals.total = eur(6998 - 700 + 499).proto
        let state = D.fold(try D.decide(.place(p), state: D.initialState, context: ctx()))
        #expect(state.total == eur(6797))
    }

    @Test func lineDiscountsMayNotExceedTheLine() {
        var p = placeCommand()
        p.lines[1].promotions = [promotion("big", 3001)]
        let error = refusal { () throws(DomainError) in try D.decide(.place(p), state: D.initialState, context: ctx()) }
        #expect(error?.violations.map(\.field).contains("lines[1].promotions") == true)
    }

    @Test func overflowingPricesAreInvalidNotACrash() {
        var p = placeCommand()
        p.lines[0].unitPrice = eur(Int64.max / 2)
        let error = refusal { () throws(DomainError) in try D.decide(.place(p), state: D.initialState, context: ctx()) }
        #expect(error?.code == .invalidArgument)
    }
}

// MARK: - Payment, fulfilment, cancellation, expiry

@Suite("OrderDecider: transitions")
struct OrderTransitionTests {
    @Test func markPaidChecksAmountAndCurrency() throws {
        let state = try given([place])
        var error = refusal { () throws(DomainError) in try D.decide(.markPaid(paymentID: "p1", amount: eur(8116), reason: ""), state: state, context: ctx()) }
        #expect(error?.violations.map(\.field) == ["amount.minor_units"])
        error = refusal { () throws(DomainError) in try D.decide(.markPaid(paymentID: "p1", amount: Money(8117, "USD"), reason: ""), state: state, context: ctx()) }
        #expect(error?.violations.map(\.field) == ["amount.currency"])
        error = refusal { () throws(DomainError) in try D.decide(.markPaid(paymentID: "", amount: eur(8117), reason: ""), state: state, context: ctx()) }
        #expect(error?.violations.map(\.field) == ["payment_id"])
    }

    @Test func markPaidRecordsReservationsToCommit() throws {
        let state = try given([place])
        let events = try D.decide(pay, state: state, context: ctx())
        guard case .orderPaid(let e)? = events.first?.event else { Issue.record("no OrderPaid"); return }
        #expect(e.reservations.map(\.reservationID) == ["res-1", "res-2"])
        #expect(e.amount.minorUnits == 8117)
        #expect(e.actorID == "op-1" && e.reason == "captured")
    }

    @Test func paidByAnotherPaymentIsRefused() throws {
        let state = try given([place, pay])
        let error = refusal { () throws(DomainError) in try D.decide(.markPaid(paymentID: "p2", amount: eur(8117), reason: ""), state: state, context: ctx()) }
        #expect(error?.code == .failedPrecondition)
        #expect(error?.currentState == "ORDER_STATE_PAID")
    }

    @Test func shippingTwiceWithAnotherParcelIsRefused() throws {
        let state = try given([place, pay, pick, pack, ship])
        let other = OrderCommand.markShipped(MarkShipped(carrier: "UPS", trackingNumber: "1Z"))
        let error = refusal { () throws(DomainError) in try D.decide(other, state: state, context: ctx()) }
        #expect(error?.currentState == "ORDER_STATE_SHIPPED")
        #expect(state.shipment?.carrier == "DHL")
        #expect(state.shipment?.shippedAt.unixMicros == t0 + minute)
    }

    @Test func shippingNeedsCarrierAndTracking() throws {
        let state = try given([place, pay, pick, pack])
        let error = refusal { () throws(DomainError) in try D.decide(.markShipped(MarkShipped(carrier: "", trackingNumber: "")), state: state, context: ctx()) }
        #expect(error?.violations.map(\.field) == ["carrier", "tracking_number"])
    }

    @Test func deliveryTimeDefaultsToNow() throws {
        var state = try given([place, pay, pick, pack, ship])
        state = try run(state, .markDelivered(deliveredAtMicros: 0, reason: ""), at: t0 + 99)
        #expect(state.shipment?.deliveredAt.unixMicros == t0 + 99)
        #expect(state.stateSinceMicros == t0 + 99)
    }

    @Test func cancellingAnUnpaidOrderReleasesItsReservations() throws {
        let state = try given([place])
        let events = try D.decide(cancel, state: state, context: ctx())
        guard case .orderCancelled(let e)? = events.first?.event else { Issue.record("no OrderCancelled"); return }
        #expect(e.reservationsToRelease.map(\.reservationID) == ["res-1", "res-2"])
        #expect(!e.refundDue)
        #expect(e.paymentID == "p1")
        #expect(e.previousState == .placed)
        #expect(e.reason == "customer asked")
    }

    @Test func cancellingAPaidOrderSaysARefundIsDue() throws {
        let state = try given([place, pay, pick, .refund(RefundOrder(refundID: "r1", amount: eur(117), reason: "late"))])
        let events = try D.decide(cancel, state: state, context: ctx())
        guard case .orderCancelled(let e)? = events.first?.event else { Issue.record("no OrderCancelled"); return }
        #expect(e.reservationsToRelease.isEmpty)
        #expect(e.refundDue)
        #expect(e.refundAmount.minorUnits == 8000)
        #expect(e.paymentID == "p1")
        #expect(e.previousState == .partiallyRefunded)
    }

    @Test func cancelNeedsAReason() throws {
        let state = try given([place])
        let error = refusal { () throws(DomainError) in try D.decide(.cancel(reason: "  "), state: state, context: ctx()) }
        #expect(error?.violations.map(\.field) == ["reason"])
    }

    @Test func expiryIsRefusedBeforeTheReservationsLapse() throws {
        let state = try given([place])
        let error = refusal { () throws(DomainError) in try D.decide(expire, state: state, context: ctx(expiry - 1)) }
        #expect(error?.code == .failedPrecondition)
        #expect(error?.currentState == "ORDER_STATE_PLACED")
    }

    @Test func expiryCancelsAsTheSystem() throws {
        let state = try given([place])
        let events = try D.decide(expire, state: state, context: ctx(expiry, actor: .system))
        guard case .orderCancelled(let e)? = events.first?.event else { Issue.record("no OrderCancelled"); return }
        #expect(e.expired)
        #expect(e.actorRole == "system")
        #expect(e.reservationsToRelease.count == 2)
        let after = D.fold(events, from: state)
        #expect(after.status == .cancelled && after.expired)
    }

    @Test func fulfilmentContinuesAfterAPartialRefund() throws {
        var state = try given([place, pay, .refund(RefundOrder(refundID: "r1", lines: [RefundOrderLine(lineID: "l2", quantity: 1)], reason: "out of stock"))])
        #expect(state.status == .partiallyRefunded)
        state = try run(state, pick)
        state = try run(state, pack)
        state = try run(state, ship)
        #expect(state.status == .shipped)
        #expect(state.refunded == eur(1155))
    }

    @Test func disputeWonReturnsToThePreviousStateAndLostCountsAsRefunded() throws {
        let base = try given([place, pay, pick, pack, ship, .openDispute(disputeID: "dp-1", amount: eur(8117), reason: "chargeback")])
        #expect(base.status == .disputed)
        let won = try run(base, .resolveDispute(disputeID: "dp-1", won: true, reason: "evidence"))
        #expect(won.status == .shipped)
        let lost = try run(base, .resolveDispute(disputeID: "dp-1", won: false, reason: "lost"))
        #expect(lost.status == .refunded)
        #expect(lost.refunded == eur(8117))
        // Idempotent repeats.
        #expect(try D.decide(.resolveDispute(disputeID: "dp-1", won: true, reason: ""), state: won, context: ctx()).isEmpty)
        #expect(try D.decide(.openDispute(disputeID: "dp-1", amount: eur(1), reason: ""), state: won, context: ctx()).isEmpty)
        #expect(try D.decide(.openDispute(disputeID: "dp-1", amount: eur(1), reason: ""), state: base, context: ctx()).isEmpty)
    }

    @Test func partialDisputeLostLeavesItPartiallyRefunded() throws {
        let state = try given([place, pay, .openDispute(disputeID: "dp-1", amount: eur(1000), reason: "one item"), .resolveDispute(disputeID: "dp-1", won: false, reason: "lost")])
        #expect(state.status == .partiallyRefunded)
        #expect(state.refunded == eur(1000))
    }

    @Test func resolvingAnotherDisputeIsNotFound() throws {
        let state = try given([place, pay, .openDispute(disputeID: "dp-1", amount: eur(1000), reason: "")])
        let error = refusal { () throws(DomainError) in try D.decide(.resolveDispute(disputeID: "dp-2", won: true, reason: ""), state: state, context: ctx()) }
        #expect(error?.code == .notFound)
    }

    @Test func disputeValidation() throws {
        let state = try given([place, pay])
        var error = refusal { () throws(DomainError) in try D.decide(.openDispute(disputeID: "", amount: eur(0), reason: ""), state: state, context: ctx()) }
        #expect(error?.violations.map(\.field) == ["dispute_id", "amount.minor_units"])
        error = refusal { () throws(DomainError) in try D.decide(.openDispute(disputeID: "d", amount: Money(5, "USD"), reason: ""), state: state, context: ctx()) }
        #expect(error?.violations.map(\.field) == ["amount.currency"])
    }
}

// MARK: - Refund arithmetic

@Suite("OrderDecider: refunds")
struct OrderRefundTests {
    private func refund(_ state: D.State, _ r: RefundOrder) throws -> Tote_V1_OrderRefunded {
        let events = try D.decide(.refund(r), state: state, context: ctx())
        guard case .orderRefunded(let e)? = events.first?.event else { throw DomainError(.notFound, "no OrderRefunded") }
        return e
    }

    @Test func paidSharesSpreadOrderDiscountsExactly() throws {
        let state = try given([place, pay])
        // Goods paid = 8117 − 499 shipping = 7618, split 4318 : 3600 (line total + tax).
        #expect(D.paidShares(state) == [4154, 3464])
        #expect(D.paidShares(state).reduce(0, +) == 7618)
    }

    @Test func unitRefundsRoundSoThatAllUnitsSumToTheShare() throws {
        var state = try given([place, pay])
        var amounts: [Int64] = []
        for i in 0..<3 {
            let e = try refund(state, RefundOrder(refundID: "u\(i)", lines: [RefundOrderLine(lineID: "l2", quantity: 1)], reason: "returned"))
            amounts.append(e.amount.minorUnits)
            state = D.evolve(state, { var env = Tote_V1_OrderEvent(); env.event = .orderRefunded(e); return env }())
        }
        #expect(amounts == [1155, 1154, 1155])
        #expect(amounts.reduce(0, +) == 3464)
        #expect(state.lines[1].quantityRefunded == 3)
        #expect(state.status == .partiallyRefunded)
    }

    @Test func fullRefundAfterAPartialOneRefundsTheRestIncludingShipping() throws {
        let state = try given([place, pay, .refund(RefundOrder(refundID: "r1", lines: [RefundOrderLine(lineID: "l2", quantity: 1)], restock: true, reason: "broken"))])
        #expect(state.refunded == eur(1155))
        let e = try refund(state, RefundOrder(refundID: "r2", full: true, reason: "all back"))
        #expect(e.lines.map(\.lineID) == ["l1", "l2"])
        #expect(e.lines.map(\.quantity) == [2, 2])
        #expect(e.lines.map(\.amount.minorUnits) == [4154, 2309])
        #expect(e.extraAmount.minorUnits == 499)
        #expect(e.amount.minorUnits == 8117 - 1155)
        #expect(e.refundedTotal.minorUnits == 8117)
        let after = D.fold([{ var env = Tote_V1_OrderEvent(); env.event = .orderRefunded(e); return env }()], from: state)
        #expect(after.status == .refunded)
        #expect(after.refundable.isZero)
    }

    @Test func fullRefundAfterGoodwillSpreadsWhatIsLeftOverTheLines() throws {
        let state = try given([place, pay, .refund(RefundOrder(refundID: "g", amount: eur(7000), reason: "goodwill"))])
        let e = try refund(state, RefundOrder(refundID: "r2", full: true, reason: "returned"))
        #expect(e.lines.map(\.amount.minorUnits) == [609, 508])
        #expect(e.extraAmount.minorUnits == 0)
        #expect(e.amount.minorUnits == 1117)
    }

    @Test func neverMoreThanPaidMinusRefunded() throws {
        let state = try given([place, pay, .refund(RefundOrder(refundID: "g", amount: eur(8000), reason: "goodwill"))])
        let error = refusal { () throws(DomainError) in try D.decide(.refund(RefundOrder(refundID: "x", amount: eur(118), reason: "more")), state: state, context: ctx()) }
        #expect(error?.code == .failedPrecondition)
        #expect(error?.currentState == "ORDER_STATE_PARTIALLY_REFUNDED")
        // Exactly the rest is fine and makes it REFUNDED.
        let after = try run(state, .refund(RefundOrder(refundID: "y", amount: eur(117), reason: "rest")))
        #expect(after.status == .refunded)
        // Lines whose price exceeds what is left are refused as well.
        let lineError = refusal { () throws(DomainError) in try D.decide(.refund(RefundOrder(refundID: "z", lines: [RefundOrderLine(lineID: "l1", quantity: 1)], reason: "")), state: state, context: ctx()) }
        #expect(lineError?.code == .invalidArgument)  // reason missing first
        let lineError2 = refusal { () throws(DomainError) in try D.decide(.refund(RefundOrder(refundID: "z", lines: [RefundOrderLine(lineID: "l1", quantity: 1)], reason: "r")), state: state, context: ctx()) }
        #expect(lineError2?.code == .failedPrecondition)
    }

    @Test func quantitiesAndLinesAreChecked() throws {
        let state = try given([place, pay, .refund(RefundOrder(refundID: "r1", lines: [RefundOrderLine(lineID: "l1", quantity: 1)], reason: "r"))])
        var error = refusal { () throws(DomainError) in try D.decide(.refund(RefundOrder(refundID: "r2", lines: [RefundOrderLine(lineID: "l1", quantity: 2)], reason: "r")), state: state, context: ctx()) }
        #expect(error?.violations.map(\.field) == ["lines[0].quantity"])
        error = refusal { () throws(DomainError) in try D.decide(.refund(RefundOrder(refundID: "r2", lines: [RefundOrderLine(lineID: "nope", quantity: 1)], reason: "r")), state: state, context: ctx()) }
        #expect(error?.violations.map(\.field) == ["lines[0].line_id"])
        error = refusal { () throws(DomainError) in try D.decide(.refund(RefundOrder(refundID: "r2", lines: [RefundOrderLine(lineID: "l2", quantity: 1), RefundOrderLine(lineID: "l2", quantity: 0)], reason: "r")), state: state, context: ctx()) }
        #expect(error?.violations.map(\.field) == ["lines[1].line_id", "lines[1].quantity"])
    }

    @Test func refundRequestShapeIsValidated() throws {
        let state = try given([place, pay])
        var error = refusal { () throws(DomainError) in try D.decide(.refund(RefundOrder(refundID: "", full: true, lines: [RefundOrderLine(lineID: "l1", quantity: 1)], amount: eur(5), reason: "")), state: state, context: ctx()) }
        #expect(error?.violations.map(\.field) == ["refund_id", "reason", "lines", "amount"])
        error = refusal { () throws(DomainError) in try D.decide(.refund(RefundOrder(refundID: "r", reason: "nothing")), state: state, context: ctx()) }
        #expect(error?.violations.map(\.field) == ["lines"])
        error = refusal { () throws(DomainError) in try D.decide(.refund(RefundOrder(refundID: "r", amount: Money(5, "USD"), reason: "x")), state: state, context: ctx()) }
        #expect(error?.violations.map(\.field) == ["amount.currency"])
        error = refusal { () throws(DomainError) in try D.decide(.refund(RefundOrder(refundID: "r", amount: eur(-5), reason: "x")), state: state, context: ctx()) }
        #expect(error?.violations.map(\.field) == ["amount.minor_units"])
    }

    @Test func aRepeatedRefundIDIsANoOp() throws {
        let r = RefundOrder(refundID: "r1", lines: [RefundOrderLine(lineID: "l1", quantity: 1)], amount: eur(10), restock: true, reason: "r")
        let state = try given([place, pay, .refund(r)])
        #expect(try D.decide(.refund(r), state: state, context: ctx()).isEmpty)
        let e = try refund(try given([place, pay]), r)
        #expect(e.amount.minorUnits == 2077 + 10)
        #expect(e.restock)
        #expect(e.lines.first?.locationID == "wh1")
        #expect(e.paymentID == "p1")
    }

    @Test func refundingAFullyRefundedOrderIsRefused() throws {
        let state = try given([place, pay, refundAll])
        let error = refusal { () throws(DomainError) in try D.decide(.refund(RefundOrder(refundID: "again", full: true, reason: "r")), state: state, context: ctx()) }
        #expect(error?.currentState == "ORDER_STATE_REFUNDED")
    }
}

// MARK: - Timeline and replay

@Suite("OrderDecider: timeline and replay")
struct OrderTimelineTests {
    private func history() throws -> [RecordedOrderEvent] {
        var state = D.initialState
        var recorded: [RecordedOrderEvent] = []
        let steps: [(OrderCommand, Principal)] = [
            (place, Principal(id: "cust-1", role: "storefront")),
            (pay, .system),
            (pick, Principal(id: "ctl-1", role: "controller")),
            (pack, Principal(id: "ctl-1", role: "controller")),
            (ship, operatorActor),
            (.refund(RefundOrder(refundID: "r1", lines: [RefundOrderLine(lineID: "l1", quantity: 2)], restock: true, reason: "returned")), operatorActor),
        ]
        for (i, (command, actor)) in steps.enumerated() {
            let now = t0 + Int64(i) * minute
            for event in try D.decide(command, state: state, context: ctx(now, actor: actor)) {
                state = D.evolve(state, event)
                recorded.append(RecordedOrderEvent(event: event, streamVersion: Int64(recorded.count + 1), recordedAtMicros: now, actor: actor))
            }
        }
        return recorded
    }

    @Test func timelineHasOneEntryPerEventWithActorReasonAndState() throws {
        let entries = D.timeline(try history())
        #expect(entries.map(\.eventType) == ["OrderPlaced", "OrderPaid", "OrderPickingStarted", "OrderPacked", "OrderShipped", "OrderRefunded"])
        #expect(entries.map(\.state) == [.placed, .paid, .picking, .packed, .shipped, .partiallyRefunded])
        #expect(entries.map(\.streamVersion) == [1, 2, 3, 4, 5, 6])
        #expect(entries[0].actor.role == .storefront)
        #expect(entries[1].actor.id == "tote" && entries[1].actor.role == .unspecified)
        #expect(entries[2].actor.role == .controller && entries[2].reason == "wave 7")
        #expect(entries[4].actor.role == .operator)
        #expect(entries[5].at.unixMicros == t0 + 5 * minute)
        #expect(entries[0].summary == "Placed T-100001 for EUR 81.17 (5 items)")
        #expect(entries[4].summary == "Shipped with DHL, tracking JD0001")
        #expect(entries[5].summary == "Refunded EUR 41.54 (2 x TSHIRT-RED-M), restocked")
    }

    @Test func eventsSurviveSerializationAndFoldToTheSameState() throws {
        let events = try history().map(\.event)
        let decoded = try events.map { try Tote_V1_OrderEvent(serializedBytes: try $0.serializedBytes() as [UInt8]) }
        #expect(decoded == events)
        #expect(D.fold(decoded) == D.fold(events))
        let state = D.fold(decoded)
        #expect(state.status == .partiallyRefunded)
        #expect(state.stage == .shipped)
        #expect(state.lines[0].quantityRefunded == 2)
        #expect(state.refunded == eur(4154))
    }

    @Test func viewAndSummaryShowTheState() throws {
        let recorded = try history()
        let state = D.fold(recorded.map(\.event))
        let view = state.view(version: 6, timeline: D.timeline(recorded))
        #expect(view.orderID == "o1" && view.orderNumber == "T-100001")
        #expect(view.state == .partiallyRefunded)
        #expect(view.refundedTotal.minorUnits == 4154)
        #expect(view.shipments.first?.trackingNumber == "JD0001")
        #expect(view.timeline.count == 6)
        #expect(view.version == 6 && view.checkoutID == "c1")
        #expect(view.placedAt.unixMicros == t0)
        #expect(view.stateSince.unixMicros == t0 + 5 * minute)
        let summary = state.summary
        #expect(summary.itemCount == 5)
        #expect(summary.total.minorUnits == 8117)
    }

    @Test func typeNamesAreTheCaseMessageNames() {
        var e = Tote_V1_OrderEvent()
        #expect(e.typeName == "OrderEvent")
        e.event = .orderDisputeResolved(Tote_V1_OrderDisputeResolved())
        #expect(e.typeName == "OrderDisputeResolved")
        #expect(Tote_V1_OrderEvent.schemaVersion == 1)
    }

    @Test func moneyIsFormattedWithTheCurrencysDecimals() {
        #expect(D.formatMoney(eur(1234)) == "EUR 12.34")
        #expect(D.formatMoney(eur(5)) == "EUR 0.05")
        #expect(D.formatMoney(eur(-250)) == "EUR -2.50")
        #expect(D.formatMoney(Money(500, "JPY")) == "JPY 500")
        #expect(D.formatMoney(Money(1250, "KWD")) == "KWD 1.250")
    }

    @Test func commandsOnAMissingOrderAreNotFound() {
        let error = refusal { () throws(DomainError) in try D.decide(pay, state: D.initialState, context: ctx()) }
        #expect(error?.code == .notFound)
    }
}
