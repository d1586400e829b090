import Testing
import ToteProto
@testable import ToteDomain

private typealias F = CommerceFixtures
private typealias C = CartDecider

private func newLine(_ id: String, _ sku: String, _ quantity: Int64, _ price: Int64) -> C.Line {
    C.Line(lineID: id, sku: sku, productID: "prod-\(sku)", displayName: "Item \(sku)", quantity: quantity, unitPrice: F.eur(price))
}

private func openCart(_ id: String = "cart-1", customer: String = "", lines: [C.Line] = []) throws -> C.State {
    var state = try F.run(C.self, .create(cartID: id, customerID: customer, currency: "EUR", customerGroup: ""), C.initialState).state
    for line in lines { state = try F.run(C.self, .addLine(line), state).state }
    return state
}

private let coupon = PromotionRule(id: "promo-10", label: "10% off", effect: .percentage(ppm: 100_000), couponCode: "SAVE10")

/// A state in each status, for the "every command in every state" tables.
private func cartIn(_ status: C.Status) throws -> C.State {
    let open = try openCart(lines: [newLine("l1", "A", 1, 1000)])
    switch status {
    case .unspecified: return C.initialState
    case .open: return open
    case .merged: return try F.run(C.self, .markMergedInto(cartID: "cart-9", customerID: "cust-1"), open).state
    case .checkedOut: return try F.run(C.self, .markCheckedOut(orderID: "order-1", checkoutID: "co-1"), open).state
    case .abandoned: return try F.run(C.self, .abandon, open).state
    }
}

@Suite("Cart decider")
struct CartDeciderTests {
    @Test func createFixesTheCurrencyAndIsIdempotent() throws {
        let (events, state) = try F.run(C.self, .create(cartID: "cart-1", customerID: "", currency: "EUR", customerGroup: "vip"), C.initialState)
        #expect(events.map(\.typeName) == ["CartCreated"])
        #expect(state.status == .open && state.currency == "EUR" && state.customerGroup == "vip" && state.createdAtMicros == F.t0)
        #expect(try C.decide(.create(cartID: "cart-1", customerID: "", currency: "EUR", customerGroup: "vip"), state: state, context: F.context()).isEmpty)
        #expect(F.refusal(C.self, .create(cartID: "cart-1", customerID: "", currency: "USD", customerGroup: "vip"), state)?.code == .alreadyExists)
        let bad = F.refusal(C.self, .create(cartID: "", customerID: "", currency: "eur", customerGroup: ""), C.initialState)
        #expect(bad?.violations.map(\.field) == ["cart_id", "currency"])
    }

    @Test func addLineAddsOrRaisesTheSkuLine() throws {
        var state = try openCart()
        let (added, s1) = try F.run(C.self, .addLine(newLine("l1", "A", 2, 1000)), state)
        #expect(added.map(\.typeName) == ["CartLineAdded"])
        // Same SKU: the existing line rises (the new line id is ignored) and its price refreshes.
        let (raised, s2) = try F.run(C.self, .addLine(newLine("l2", "A", 3, 1100)), s1)
        #expect(raised.map(\.typeName) == ["CartLineQuantityChanged", "CartLinePriceChanged"])
        #expect(s2.lines.count == 1 && s2.lines[0].quantity == 5 && s2.lines[0].unitPrice == F.eur(1100) && s2.lines[0].lineID == "l1")
        // Bounds.
        #expect(F.refusal(C.self, .addLine(newLine("l3", "A", 995, 1100)), s2)?.violations.map(\.field) == ["quantity"])
        #expect(F.refusal(C.self, .addLine(newLine("l3", "B", 1000, 1)), s2)?.violations.map(\.field) == ["quantity"])
        #expect(F.refusal(C.self, .addLine(newLine("l1", "B", 1, 1)), s2)?.violations.map(\.field) == ["line_id"])
        var usd = newLine("l3", "B", 1, 1)
        usd.unitPrice = Money(1, "USD")
        #expect(F.refusal(C.self, .addLine(usd), s2)?.violations.map(\.field) == ["unit_price.currency"])
        let empty = C.Line(lineID: "", sku: "", productID: "", displayName: "", quantity: 0, unitPrice: F.eur(-1))
        #expect(F.refusal(C.self, .addLine(empty), s2)?.violations.map(\.field) == ["sku", "line_id", "product_id", "quantity", "unit_price.minor_units"])
        // At most 100 lines.
        state = s2
        for i in 1..<100 { state = try F.run(C.self, .addLine(newLine("x\(i)", "S\(i)", 1, 1)), state).state }
        #expect(state.lines.count == 100)
        #expect(F.refusal(C.self, .addLine(newLine("y", "NEW", 1, 1)), state)?.violations.map(\.field) == ["lines"])
        // ... but a SKU already in the cart can still rise.
        #expect(F.refusal(C.self, .addLine(newLine("y", "S1", 1, 1)), state) == nil)
    }

    @Test func changeAndRemoveLines() throws {
        let state = try openCart(lines: [newLine("l1", "A", 2, 1000), newLine("l2", "B", 1, 500)])
        let (changed, s1) = try F.run(C.self, .changeLineQuantity(lineID: "l1", quantity: 7), state)
        #expect(changed.map(\.typeName) == ["CartLineQuantityChanged"])
        #expect(s1.line(id: "l1")?.quantity == 7)
        #expect(try C.decide(.changeLineQuantity(lineID: "l1", quantity: 7), state: s1, context: F.context()).isEmpty)
        let (zero, s2) = try F.run(C.self, .changeLineQuantity(lineID: "l1", quantity: 0), s1)
        #expect(zero.map(\.typeName) == ["CartLineRemoved"])
        #expect(s2.lines.map(\.lineID) == ["l2"])
        #expect(F.refusal(C.self, .changeLineQuantity(lineID: "l1", quantity: 1), s2)?.code == .notFound)
        #expect(F.refusal(C.self, .changeLineQuantity(lineID: "l2", quantity: 1000), s2)?.violations.map(\.field) == ["quantity"])
        #expect(F.refusal(C.self, .changeLineQuantity(lineID: "", quantity: -1), s2)?.violations.map(\.field) == ["line_id", "quantity"])
        let (removed, s3) = try F.run(C.self, .removeLine(lineID: "l2"), s2)
        #expect(removed.map(\.typeName) == ["CartLineRemoved"] && s3.lines.isEmpty)
        #expect(F.refusal(C.self, .removeLine(lineID: "l2"), s3)?.code == .notFound)
        #expect(F.refusal(C.self, .removeLine(lineID: ""), s3)?.violations.map(\.field) == ["line_id"])
    }

    @Test func couponsAreResolvedByTheServiceAndValidated() throws {
        let state = try openCart(lines: [newLine("l1", "A", 1, 1000)])
        let unknown = F.refusal(C.self, .applyCoupon(code: "nope", resolution: .unknown), state)
        #expect(unknown?.code == .invalidArgument && unknown?.violations.map(\.field) == ["code"])
        #expect(F.refusal(C.self, .applyCoupon(code: "bad code!", resolution: .promotion(coupon)), state)?.violations.map(\.field) == ["code"])
        // A rule whose code differs from the one typed is not this code's rule.
        #expect(F.refusal(C.self, .applyCoupon(code: "OTHER", resolution: .promotion(coupon)), state)?.violations.map(\.field) == ["code"])
        var expired = coupon
        expired.endsAtMicros = F.t0
        #expect(F.refusal(C.self, .applyCoupon(code: "SAVE10", resolution: .promotion(expired)), state)?.violations.first?.description == "coupon expired")

        let (applied, s1) = try F.run(C.self, .applyCoupon(code: " save10 ", resolution: .promotion(coupon)), state)
        #expect(applied.map(\.typeName) == ["CartCouponApplied"])
        #expect(s1.coupons == [C.Coupon(code: "SAVE10", promotionID: "promo-10")])
        #expect(try C.decide(.applyCoupon(code: "SAVE10", resolution: .unknown), state: s1, context: F.context()).isEmpty)

        var full = s1
        for i in 2...5 {
            let rule = PromotionRule(id: "p\(i)", label: "p", effect: .freeShipping, couponCode: "C\(i)")
            full = try F.run(C.self, .applyCoupon(code: "C\(i)", resolution: .promotion(rule)), full).state
        }
        let sixth = PromotionRule(id: "p6", label: "p", effect: .freeShipping, couponCode: "C6")
        #expect(F.refusal(C.self, .applyCoupon(code: "C6", resolution: .promotion(sixth)), full)?.violations.map(\.field) == ["code"])

        let (removed, s2) = try F.run(C.self, .removeCoupon(code: "save10"), s1)
        #expect(removed.map(\.typeName) == ["CartCouponRemoved"] && s2.coupons.isEmpty)
        #expect(try C.decide(.removeCoupon(code: "SAVE10"), state: s2, context: F.context()).isEmpty)
        #expect(F.refusal(C.self, .removeCoupon(code: ""), s2)?.violations.map(\.field) == ["code"])
    }

    @Test func repriceEmitsOnlyForChangedPrices() throws {
        let state = try openCart(lines: [newLine("l1", "A", 1, 1000), newLine("l2", "B", 1, 500)])
        let (events, s1) = try F.run(C.self, .repriceLines(prices: ["A": F.eur(1000), "B": F.eur(450), "Z": F.eur(1)]), state)
        #expect(events.map(\.typeName) == ["CartLinePriceChanged"])
        #expect(s1.line(sku: "B")?.unitPrice == F.eur(450) && s1.line(sku: "A")?.unitPrice == F.eur(1000))
        #expect(try C.decide(.repriceLines(prices: ["B": F.eur(450)]), state: s1, context: F.context()).isEmpty)
        #expect(F.refusal(C.self, .repriceLines(prices: ["A": Money(1, "USD")]), s1)?.violations.map(\.field) == ["prices[A].currency"])
    }

    @Test func mergeTakesTheGuestLinesAndCoupons() throws {
        var guest = try openCart("guest", lines: [newLine("g1", "A", 2, 1000), newLine("g2", "B", 1, 500), newLine("g3", "C", 998, 1)])
        guest = try F.run(C.self, .applyCoupon(code: "SAVE10", resolution: .promotion(coupon)), guest).state
        let customer = try openCart("mine", customer: "cust-1", lines: [newLine("m1", "A", 1, 1000), newLine("g2", "C", 5, 1)])
        let (events, merged) = try F.run(C.self, .mergeGuestCart(guest: guest), customer)
        #expect(events.map(\.typeName) == ["CartGuestCartMerged", "CartLineQuantityChanged", "CartLineAdded", "CartLineQuantityChanged", "CartCouponApplied"])
        #expect(merged.line(sku: "A")?.quantity == 3)
        #expect(merged.line(sku: "C")?.quantity == 999)  // capped
        #expect(merged.line(sku: "B")?.lineID == "guest:g2")  // its id was taken here
        #expect(merged.coupons.map(\.code) == ["SAVE10"])
        #expect(merged.mergedGuestCartIDs == ["guest"])
        // A repeat is a no-op.
        #expect(try C.decide(.mergeGuestCart(guest: guest), state: merged, context: F.context()).isEmpty)
        // The guest side.
        let (marked, closed) = try F.run(C.self, .markMergedInto(cartID: "mine", customerID: "cust-1"), guest)
        #expect(marked.map(\.typeName) == ["CartMergedInto"])
        #expect(closed.status == .merged && closed.mergedIntoCartID == "mine")
        #expect(try C.decide(.markMergedInto(cartID: "mine", customerID: "cust-1"), state: closed, context: F.context()).isEmpty)
        #expect(F.refusal(C.self, .markMergedInto(cartID: "other", customerID: "cust-1"), closed)?.currentState == "CART_STATUS_MERGED")
        // Refusals.
        let closedGuest = F.refusal(C.self, .mergeGuestCart(guest: closed), try openCart("mine2"))
        #expect(closedGuest?.code == .failedPrecondition && closedGuest?.currentState == "CART_STATUS_MERGED")
        var usdGuest = try openCart("usd")
        usdGuest.currency = "USD"
        #expect(F.refusal(C.self, .mergeGuestCart(guest: usdGuest), customer)?.code == .failedPrecondition)
        #expect(F.refusal(C.self, .mergeGuestCart(guest: customer), customer)?.violations.map(\.field) == ["guest_cart_id"])
        #expect(F.refusal(C.self, .mergeGuestCart(guest: C.initialState), customer)?.code == .notFound)
        var big = try openCart("big")
        for i in 0..<100 { big = try F.run(C.self, .addLine(newLine("b\(i)", "Q\(i)", 1, 1)), big).state }
        #expect(F.refusal(C.self, .mergeGuestCart(guest: guest), big)?.violations.map(\.field) == ["lines"])
    }

    @Test func assignCheckoutAndAbandon() throws {
        let guest = try openCart(lines: [newLine("l1", "A", 1, 1000)])
        let (assigned, mine) = try F.run(C.self, .assignToCustomer(customerID: "cust-1", customerGroup: "vip"), guest)
        #expect(assigned.map(\.typeName) == ["CartAssignedToCustomer"])
        #expect(mine.customerID == "cust-1" && mine.customerGroup == "vip")
        #expect(try C.decide(.assignToCustomer(customerID: "cust-1", customerGroup: "vip"), state: mine, context: F.context()).isEmpty)
        #expect(F.refusal(C.self, .assignToCustomer(customerID: "cust-2", customerGroup: ""), mine)?.code == .permissionDenied)

        let (out, done) = try F.run(C.self, .markCheckedOut(orderID: "order-1", checkoutID: "co-1"), mine)
        #expect(out.map(\.typeName) == ["CartCheckedOut"])
        #expect(done.status == .checkedOut && done.orderID == "order-1")
        #expect(try C.decide(.markCheckedOut(orderID: "order-1", checkoutID: "co-1"), state: done, context: F.context()).isEmpty)
        #expect(F.refusal(C.self, .markCheckedOut(orderID: "order-2", checkoutID: "co-1"), done)?.currentState == "CART_STATUS_CHECKED_OUT")
        let emptyCart = try openCart()
        #expect(F.refusal(C.self, .markCheckedOut(orderID: "o", checkoutID: "c"), emptyCart)?.code == .failedPrecondition)

        let (gone, abandoned) = try F.run(C.self, .abandon, emptyCart)
        #expect(gone.map(\.typeName) == ["CartAbandoned"] && abandoned.status == .abandoned)
        #expect(try C.decide(.abandon, state: abandoned, context: F.context()).isEmpty)
    }

    /// Every command in every non-open status: refused naming the status (notFound before creation).
    @Test(arguments: [CartDecider.Status.unspecified, .merged, .checkedOut, .abandoned])
    func everyCommandIsRefusedOutsideOpen(status: CartDecider.Status) throws {
        let state = try cartIn(status)
        let guest = try openCart("guest-x", lines: [newLine("z", "Z", 1, 1)])
        let commands: [C.Command] = [
            .addLine(newLine("n", "N", 1, 1)), .changeLineQuantity(lineID: "l1", quantity: 2), .removeLine(lineID: "l1"),
            .applyCoupon(code: "SAVE10", resolution: .promotion(coupon)), .removeCoupon(code: "SAVE10"),
            .repriceLines(prices: ["A": F.eur(1)]), .mergeGuestCart(guest: guest),
            .markMergedInto(cartID: "cart-8", customerID: "c"), .assignToCustomer(customerID: "c", customerGroup: ""),
            .markCheckedOut(orderID: "order-2", checkoutID: "co-2"),
        ] + (status == .abandoned ? [] : [C.Command.abandon])
        for command in commands {
            let error = F.refusal(C.self, command, state)
            if status == .unspecified {
                #expect(error?.code == .notFound, "\(command)")
            } else {
                #expect(error?.code == .failedPrecondition, "\(command)")
                #expect(error?.currentState == status.rawValue, "\(command)")
            }
        }
    }

    @Test func foldRebuildsTheSameState() throws {
        var state = try openCart(lines: [newLine("l1", "A", 2, 1000)])
        var all: [C.Event] = try C.decide(.create(cartID: "cart-1", customerID: "", currency: "EUR", customerGroup: ""), state: C.initialState, context: F.context())
        all += try C.decide(.addLine(newLine("l1", "A", 2, 1000)), state: C.fold(all), context: F.context())
        for command: C.Command in [.addLine(newLine("l2", "B", 1, 5)), .applyCoupon(code: "SAVE10", resolution: .promotion(coupon)),
                                   .changeLineQuantity(lineID: "l1", quantity: 4), .repriceLines(prices: ["B": F.eur(6)])] {
            let events = try C.decide(command, state: state, context: F.context())
            all += events
            state = C.fold(events, from: state)
        }
        #expect(C.fold(all) == state)
        // And through the wire encoding.
        let decoded = try all.map { try C.Event(serializedBytes: try $0.serializedBytes() as [UInt8]) }
        #expect(C.fold(decoded) == state)
    }
}

@Suite("Cart pricing")
struct CartPricingTests {
    @Test func viewRecomputesFromStateWithCouponsAndAutomaticRules() throws {
        var state = try openCart(lines: [newLine("l1", "A", 2, 1000), newLine("l2", "B", 1, 999)])
        state = try F.run(C.self, .applyCoupon(code: "SAVE10", resolution: .promotion(coupon)), state).state
        let automatic = F.fixed("auto", 100, skus: ["B"])
        let unattached = PromotionRule(id: "x", label: "x", effect: .percentage(ppm: 900_000), couponCode: "SECRET")
        let view = try CartPricing.view(state, rules: [coupon, automatic, unattached], shipping: F.eur(495),
                                        taxTable: PricingTaxTests.table, destination: .init(country: "DE"), nowMicros: F.t0)
        // B: 999 − 100 (auto, priority tie → id "auto" < "promo-10") ; then 10 % of (2000 + 899) = 289.9 → 290
        #expect(view.totals.subtotal == F.eur(2999))
        #expect(view.totals.discountTotal == F.eur(390))
        #expect(view.coupons == [.init(code: "SAVE10", applied: true, notAppliedReason: "")])
        #expect(view.cartPromotions.map(\.ruleID) == ["promo-10"])
        #expect(view.lines[1].result.promotions.map(\.ruleID) == ["auto", "promo-10"])
        #expect(view.totals.taxInclusive)
        #expect(view.totals.total == F.eur(2999 - 390 + 495))
        let wire = CartPricing.proto(state, view, version: 4)
        #expect(wire.status == .open && wire.version == 4 && wire.lines.count == 2)
        #expect(wire.lines[1].lineTotal.minorUnits + wire.lines[1].lineDiscount.minorUnits == 999)
        #expect(wire.totals.total.minorUnits == 2999 - 390 + 495)
    }

    @Test func couponsThatDoNotApplySayWhy() throws {
        var minimum = coupon
        minimum.minimumSubtotals = [F.eur(5000)]
        var state = try openCart(lines: [newLine("l1", "A", 1, 1000)])
        state = try F.run(C.self, .applyCoupon(code: "SAVE10", resolution: .promotion(minimum)), state).state
        let view = try CartPricing.view(state, rules: [minimum], nowMicros: F.t0)
        #expect(view.coupons == [.init(code: "SAVE10", applied: false, notAppliedReason: "minimum spend EUR 50.00")])
        #expect(view.totals.total == F.eur(1000))
        // A rule the service no longer passes (deactivated) leaves the coupon attached but unapplied.
        let gone = try CartPricing.view(state, rules: [], nowMicros: F.t0)
        #expect(gone.coupons.first?.notAppliedReason == "no longer valid")
        // Overflow is a refusal, not a crash.
        var huge = state
        huge.lines[0].unitPrice = F.eur(Int64.max / 2)
        huge.lines[0].quantity = 999
        #expect(throws: DomainError.self) { try CartPricing.view(huge, rules: [], nowMicros: F.t0) }
    }
}
