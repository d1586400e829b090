import Testing
import ToteProto
@testable import ToteDomain

private typealias F = CommerceFixtures
private typealias K = CheckoutDecider

private let hour: Int64 = 3_600_000_000

private func address(_ country: String, postal: String, region: String = "", email: String = "a@example.com") -> Tote_V1_Address {
    var a = Tote_V1_Address()
    a.name = "Ada Lovelace"
    a.lines = ["1 Main Street"]
    a.city = "Town"
    a.country = country
    a.postalCode = postal
    a.region = region
    a.email = email
    return a
}

private let berlin = address("DE", postal: "10115")
private let standard = ShippingQuote(optionID: "dhl", carrier: "DHL", label: "Standard", price: F.eur(495), minDeliveryDays: 2, maxDeliveryDays: 4)
private let express = ShippingQuote(optionID: "express", carrier: "UPS", label: "Express", price: F.eur(1500))
private let card: Tote_V1_PaymentMethod = {
    var m = Tote_V1_PaymentMethod()
    m.kind = .card
    m.provider = "simulated"
    m.token = "tok_visa"
    m.display = "Visa **** 4242"
    return m
}()
private let vat = TaxTable(rates: [.init(jurisdiction: "DE", name: "VAT", ratePPM: 190_000), .init(jurisdiction: "US-NY", name: "Sales tax", ratePPM: 88_750)],
                           taxInclusiveCurrencies: ["EUR"])

private let lines = [
    CartDecider.Line(lineID: "l1", sku: "A", productID: "p1", displayName: "Shirt", quantity: 3, unitPrice: F.eur(1000)),
    CartDecider.Line(lineID: "l2", sku: "B", productID: "p2", displayName: "Socks", quantity: 1, unitPrice: F.eur(333)),
]
private let rules = [
    PromotionRule(id: "b2g1", label: "3 for 2 shirts", effect: .buyXGetY(buy: 2, get: 1, discountPPM: 1_000_000), eligibleSkus: ["A"]),
    PromotionRule(id: "ship", label: "Free shipping", effect: .freeShipping, couponCode: "SHIPFREE", minimumSubtotals: [F.eur(2000)]),
]

private func start(customer: String = "cust-1") -> K.Command {
    .start(checkoutID: "co-1", cartID: "cart-1", cartVersion: 7, customerID: customer, currency: "EUR",
           lines: lines, rules: rules, couponCodes: ["shipfree"], lifetimeMicros: hour)
}

/// A checkout at each step.
private func checkoutAt(_ step: K.Step) throws -> K.State {
    if step == .unspecified { return K.initialState }
    var s = try F.run(K.self, start(), K.initialState).state
    if step == .needsShippingAddress { return s }
    s = try F.run(K.self, .setShippingAddress(berlin, options: [standard, express]), s).state
    if step == .needsShippingOption { return s }
    s = try F.run(K.self, .chooseShippingOption(optionID: "dhl"), s).state
    if step == .needsPaymentMethod { return s }
    s = try F.run(K.self, .choosePaymentMethod(card), s).state
    switch step {
    case .ready: return s
    case .completed: return try F.run(K.self, .complete(orderID: "order-1", currentCartVersion: 7, taxTable: vat, expectedTotal: nil), s).state
    case .expired: return try F.run(K.self, .expire, s, now: F.t0 + hour).state
    case .superseded: return try F.run(K.self, .supersede(byCheckoutID: "co-2"), s).state
    default: return s
    }
}

@Suite("Checkout decider")
struct CheckoutDeciderTests {
    @Test func theHappyPathWalksEveryStep() throws {
        var s = try checkoutAt(.needsShippingAddress)
        #expect(s.step == .needsShippingAddress && s.expiresAtMicros == F.t0 + hour && s.couponCodes == ["SHIPFREE"])
        s = try F.run(K.self, .setShippingAddress(berlin, options: [standard, express]), s).state
        #expect(s.step == .needsShippingOption && s.shippingOptions == [standard, express])
        s = try F.run(K.self, .chooseShippingOption(optionID: "dhl"), s).state
        #expect(s.step == .needsPaymentMethod && s.shippingOption == standard)
        s = try F.run(K.self, .choosePaymentMethod(card), s).state
        #expect(s.step == .ready)
        let (events, done) = try F.run(K.self, .complete(orderID: "order-1", currentCartVersion: 7, taxTable: vat, expectedTotal: F.eur(2333)), s)
        #expect(events.map(\.typeName) == ["CheckoutCompleted"])
        #expect(done.step == .completed && done.orderID == "order-1")
        let c = try #require(done.completion)
        // 3 shirts, one free (1000) ; socks 333 ; subtotal 3333 ≥ 2000 → free shipping (495).
        #expect(c.totals.subtotal.minorUnits == 3333)
        #expect(c.totals.discountTotal.minorUnits == 1000)
        #expect(c.totals.shippingTotal.minorUnits == 0 && c.totals.shippingDiscount.minorUnits == 495)
        #expect(c.totals.total.minorUnits == 2333)
        // Tax-inclusive EUR, DE 19 %: 2333 × 0.19 / 1.19 = 372.49 → 372, spread over the lines.
        #expect(c.totals.taxInclusive && c.totals.taxTotal.minorUnits == 372)
        #expect(c.totals.taxLines.map(\.jurisdiction) == ["DE"])
        #expect(c.lines.map(\.lineTax.minorUnits).reduce(0, +) == 372)
        #expect(c.lines[0].promotions.map(\.ruleID) == ["b2g1"] && c.lines[0].promotions[0].ruleVersion == 1)
        #expect(c.shippingPromotions.map(\.couponCode) == ["SHIPFREE"])
        #expect(c.shippingOption.discountedPrice.minorUnits == 0 && c.shippingOption.price.minorUnits == 495)
        #expect(c.billingAddress == berlin && c.paymentMethod == card)
        // A repeat of Complete for the same order is a no-op.
        #expect(try K.decide(.complete(orderID: "order-1", currentCartVersion: 7, taxTable: vat, expectedTotal: nil), state: done, context: F.context()).isEmpty)
    }

    @Test func totalsFollowTheSteps() throws {
        let started = try checkoutAt(.needsShippingAddress)
        let t0 = try K.totals(started, taxTable: vat)
        #expect(t0.totals.taxLines.isEmpty && t0.totals.total == F.eur(2333))
        let ready = try checkoutAt(.ready)
        let t1 = try K.totals(ready, taxTable: vat)
        #expect(t1.shippingOptions.map(\.discountedPrice) == [F.eur(0), F.eur(0)])
        #expect(t1.totals.taxTotal == F.eur(372))
        // Tax-exclusive in the US: tax added on top.
        var us = ready
        us.shippingAddress = address("US", postal: "10001", region: "NY")
        let t2 = try K.totals(us, taxTable: TaxTable(rates: vat.rates))
        #expect(!t2.totals.taxInclusive && t2.totals.taxTotal == F.eur(207))  // 2333 × 8.875 % = 207.05
        #expect(t2.totals.total == F.eur(2333 + 207))
    }

    @Test func theWireViewShowsOptionsStateAndTotals() throws {
        let ready = try checkoutAt(.ready)
        let priced = try K.totals(ready, taxTable: vat)
        let view = K.proto(ready, priced, version: 5)
        #expect(view.state == .ready && view.version == 5 && view.shippingOptionID == "dhl")
        #expect(view.shippingOptions.map(\.discountedPrice.minorUnits) == [0, 0])
        #expect(view.shippingOptions.map(\.price.minorUnits) == [495, 1500])
        #expect(view.lines.map(\.lineDiscount.minorUnits) == [1000, 0])
        #expect(view.orderPromotions.map(\.ruleID) == ["ship"])
        #expect(view.totals.total.minorUnits == 2333 && view.hasShippingAddress && !view.hasBillingAddress)
        #expect(view.expiresAt.unixMicros == F.t0 + hour)
    }

    @Test func stepsCanBeRedoneBeforeCompletion() throws {
        let ready = try checkoutAt(.ready)
        // Same address and options: nothing to do.
        #expect(try K.decide(.setShippingAddress(berlin, options: [standard, express]), state: ready, context: F.context()).isEmpty)
        // New address where the chosen option is still offered: it stays.
        let hamburg = address("DE", postal: "20095")
        let kept = try F.run(K.self, .setShippingAddress(hamburg, options: [standard]), ready).state
        #expect(kept.step == .ready && kept.shippingOption == standard)
        // Where it is not offered (or costs something else), it is cleared and the state moves back.
        let (events, moved) = try F.run(K.self, .setShippingAddress(address("NL", postal: "1012 AB"), options: [express]), ready)
        #expect(events.first?.checkoutShippingAddressSet.shippingOptionCleared == true)
        #expect(moved.step == .needsShippingOption && moved.shippingOption == nil && moved.paymentMethod == card)
        var pricier = standard
        pricier.price = F.eur(600)
        #expect(try F.run(K.self, .setShippingAddress(hamburg, options: [pricier]), ready).state.step == .needsShippingOption)
        // Option and payment method can change; same choice is a no-op.
        #expect(try F.run(K.self, .chooseShippingOption(optionID: "express"), ready).state.shippingOption == express)
        #expect(try K.decide(.chooseShippingOption(optionID: "dhl"), state: ready, context: F.context()).isEmpty)
        #expect(try K.decide(.choosePaymentMethod(card), state: ready, context: F.context()).isEmpty)
        var invoice = Tote_V1_PaymentMethod()
        invoice.kind = .invoice
        invoice.provider = "simulated"
        #expect(try F.run(K.self, .choosePaymentMethod(invoice), ready).state.paymentMethod == invoice)
        // Billing address: set, repeat, back to same-as-shipping.
        let billing = address("FR", postal: "75001")
        let (set, billed) = try F.run(K.self, .setBillingAddress(.address(billing)), ready)
        #expect(set.map(\.typeName) == ["CheckoutBillingAddressSet"] && billed.billingAddress == billing)
        #expect(try K.decide(.setBillingAddress(.address(billing)), state: billed, context: F.context()).isEmpty)
        #expect(try F.run(K.self, .setBillingAddress(.sameAsShipping), billed).state.billingAddress == nil)
        #expect(try K.decide(.setBillingAddress(.sameAsShipping), state: ready, context: F.context()).isEmpty)
    }

    @Test func refusalsOfTheSteps() throws {
        let started = try checkoutAt(.needsShippingAddress)
        let noAddress = F.refusal(K.self, .chooseShippingOption(optionID: "dhl"), started)
        #expect(noAddress?.currentState == "CHECKOUT_STATE_NEEDS_SHIPPING_ADDRESS")
        let withAddress = try checkoutAt(.needsShippingOption)
        #expect(F.refusal(K.self, .chooseShippingOption(optionID: "pigeon"), withAddress)?.violations.map(\.field) == ["option_id"])
        #expect(F.refusal(K.self, .chooseShippingOption(optionID: ""), withAddress)?.violations.map(\.field) == ["option_id"])
        let nowhere = F.refusal(K.self, .setShippingAddress(address("KP", postal: "1"), options: []), started)
        #expect(nowhere?.code == .failedPrecondition && nowhere?.subject == "shipping_address.country")
        var usd = standard
        usd.price = Money(1, "USD")
        #expect(F.refusal(K.self, .setShippingAddress(berlin, options: [usd]), started)?.violations.map(\.field) == ["shipping_options[0].price.currency"])
        #expect(F.refusal(K.self, .setShippingAddress(berlin, options: [standard, standard]), started)?.violations.map(\.field) == ["shipping_options"])
        var bad = Tote_V1_PaymentMethod()
        bad.kind = .card
        #expect(F.refusal(K.self, .choosePaymentMethod(bad), started)?.violations.map(\.field) == ["method.provider", "method.token"])
        #expect(F.refusal(K.self, .choosePaymentMethod(Tote_V1_PaymentMethod()), started)?.violations.map(\.field) == ["method.kind", "method.provider"])
        // Complete before READY names the step.
        for step in [K.Step.needsShippingAddress, .needsShippingOption, .needsPaymentMethod] {
            let error = F.refusal(K.self, .complete(orderID: "o", currentCartVersion: 7, taxTable: vat, expectedTotal: nil), try checkoutAt(step))
            #expect(error?.currentState == step.rawValue)
        }
        let ready = try checkoutAt(.ready)
        let changed = F.refusal(K.self, .complete(orderID: "o", currentCartVersion: 8, taxTable: vat, expectedTotal: nil), ready)
        #expect(changed?.code == .failedPrecondition && changed?.subject == "cart_version")
        let total = F.refusal(K.self, .complete(orderID: "o", currentCartVersion: 7, taxTable: vat, expectedTotal: F.eur(2300)), ready)
        #expect(total?.subject == "expected_total" && total?.message == "the total is EUR 23.33, not EUR 23.00")
        #expect(F.refusal(K.self, .complete(orderID: "", currentCartVersion: 7, taxTable: vat, expectedTotal: nil), ready)?.violations.map(\.field) == ["order_id"])
        // Guests need an email.
        let guest = try F.run(K.self, start(customer: ""), K.initialState).state
        let noEmail = F.refusal(K.self, .setShippingAddress(address("DE", postal: "10115", email: ""), options: [standard]), guest)
        #expect(noEmail?.violations.map(\.field) == ["shipping_address.email"])
        #expect(F.refusal(K.self, .setShippingAddress(address("DE", postal: "10115", email: ""), options: [standard]), started) == nil)
    }

    @Test func startValidatesAndIsIdempotent() throws {
        let (events, s) = try F.run(K.self, start(), K.initialState)
        #expect(events.map(\.typeName) == ["CheckoutStarted"])
        #expect(s.lines == lines && s.rules == rules && s.cartVersion == 7)
        #expect(try K.decide(start(), state: s, context: F.context()).isEmpty)
        let other = K.Command.start(checkoutID: "co-1", cartID: "cart-1", cartVersion: 8, customerID: "", currency: "EUR",
                                    lines: lines, rules: [], couponCodes: [], lifetimeMicros: hour)
        #expect(F.refusal(K.self, other, s)?.code == .alreadyExists)
        let badLine = CartDecider.Line(lineID: "", sku: "", productID: "", displayName: "", quantity: 0, unitPrice: Money(-1, "USD"))
        let bad = K.Command.start(checkoutID: "", cartID: "", cartVersion: 0, customerID: "", currency: "EUR",
                                  lines: [badLine], rules: [PromotionRule(id: "", label: "", effect: .freeShipping)], couponCodes: ["!"], lifetimeMicros: 0)
        #expect(F.refusal(K.self, bad, K.initialState)?.violations.map(\.field) == [
            "checkout_id", "cart_id", "cart_version", "lifetime", "lines[0].line_id", "lines[0].sku", "lines[0].quantity",
            "lines[0].unit_price.currency", "lines[0].unit_price.minor_units", "promotion_rules[0].rule_id",
            "promotion_rules[0].spec.label", "coupon_codes[0]",
        ])
        let empty = K.Command.start(checkoutID: "c", cartID: "c", cartVersion: 1, customerID: "", currency: "EUR", lines: [], rules: [], couponCodes: [], lifetimeMicros: 1)
        #expect(F.refusal(K.self, empty, K.initialState)?.violations.map(\.field) == ["lines"])
    }

    @Test func expiryAndSupersession() throws {
        let open = try checkoutAt(.needsPaymentMethod)
        // Before its time the reaper's Expire is refused; after it, every step is refused as EXPIRED.
        #expect(F.refusal(K.self, .expire, open)?.currentState == "CHECKOUT_STATE_NEEDS_PAYMENT_METHOD")
        let late = F.refusal(K.self, .choosePaymentMethod(card), open, now: F.t0 + hour)
        #expect(late?.currentState == "CHECKOUT_STATE_EXPIRED")
        let (events, expired) = try F.run(K.self, .expire, open, now: F.t0 + hour)
        #expect(events.map(\.typeName) == ["CheckoutExpired"] && expired.step == .expired)
        #expect(try K.decide(.expire, state: expired, context: F.context(F.t0 + 2 * hour)).isEmpty)
        let (sup, superseded) = try F.run(K.self, .supersede(byCheckoutID: "co-2"), open)
        #expect(sup.map(\.typeName) == ["CheckoutSuperseded"] && superseded.step == .superseded && superseded.supersededBy == "co-2")
        #expect(try K.decide(.supersede(byCheckoutID: "co-2"), state: superseded, context: F.context()).isEmpty)
        #expect(F.refusal(K.self, .supersede(byCheckoutID: "co-1"), open)?.violations.map(\.field) == ["by_checkout_id"])
        #expect(F.refusal(K.self, .supersede(byCheckoutID: ""), open)?.violations.map(\.field) == ["by_checkout_id"])
    }

    /// Every command in every final state (and before start): refused naming the state.
    @Test(arguments: [CheckoutDecider.Step.unspecified, .completed, .expired, .superseded])
    func everyCommandIsRefusedWhenOver(step: CheckoutDecider.Step) throws {
        let state = try checkoutAt(step)
        let commands: [K.Command] = [
            .setShippingAddress(berlin, options: [standard]), .setBillingAddress(.address(berlin)), .setBillingAddress(.sameAsShipping),
            .chooseShippingOption(optionID: "dhl"), .choosePaymentMethod(card),
            .complete(orderID: "order-9", currentCartVersion: 7, taxTable: vat, expectedTotal: nil),
        ] + (step == .expired ? [] : [K.Command.expire]) + (step == .superseded ? [] : [K.Command.supersede(byCheckoutID: "co-3")])
        for command in commands {
            let error = F.refusal(K.self, command, state, now: F.t0 + 2 * hour)
            if step == .unspecified {
                #expect(error?.code == .notFound, "\(command)")
            } else {
                #expect(error?.code == .failedPrecondition, "\(command)")
                #expect(error?.currentState == step.rawValue, "\(command)")
            }
        }
        if step != .unspecified { #expect(F.refusal(K.self, start(), state)?.code == nil) }  // same start: idempotent
    }

    @Test func foldRebuildsTheSameStateThroughTheWire() throws {
        var state = K.initialState
        var all: [K.Event] = []
        for command: K.Command in [start(), .setShippingAddress(berlin, options: [standard, express]), .chooseShippingOption(optionID: "express"),
                                   .setBillingAddress(.address(address("FR", postal: "75001"))), .choosePaymentMethod(card),
                                   .setShippingAddress(address("DE", postal: "20095"), options: [standard]), .chooseShippingOption(optionID: "dhl"),
                                   .complete(orderID: "order-1", currentCartVersion: 7, taxTable: vat, expectedTotal: nil)] {
            let events = try K.decide(command, state: state, context: F.context())
            all += events
            state = K.fold(events, from: state)
        }
        #expect(state.step == .completed)
        let decoded = try all.map { try K.Event(serializedBytes: try $0.serializedBytes() as [UInt8]) }
        #expect(K.fold(decoded) == state)
        #expect(K.Step.ready.proto == .ready)
    }
}

@Suite("Address validation")
struct CheckoutAddressTests {
    @Test(arguments: [
        ("US", "94103", true), ("US", "94103-1234", true), ("US", "9410", false), ("US", "ABCDE", false),
        ("CA", "K1A 0B1", true), ("CA", "k1a0b1", true), ("CA", "K1A 0B", false),
        ("GB", "SW1A 1AA", true), ("GB", "M1 1AE", true), ("GB", "B33 8TH", true), ("GB", "CR2 6XH", true), ("GB", "DN55 1PT", true),
        ("GB", "W1A 0AX", true), ("GB", "EC1A1BB", true), ("GB", "12345", false), ("GB", "SW1A 1A", false),
        ("DE", "10115", true), ("DE", "1011", false), ("FR", "75001", true), ("FR", "7500A", false),
        ("NL", "1012 AB", true), ("NL", "1012AB", true), ("NL", "1012 A", false),
        ("SE", "114 55", true), ("SE", "11455", true), ("SE", "1145", false),
        ("ES", "28013", true), ("ES", "2801", false), ("IT", "00184", true), ("IT", "001845", false),
        ("AU", "2000", true), ("AU", "200", false), ("JP", "100-0001", true), ("JP", "1000001", true), ("JP", "100-001", false),
        ("BR", "01310-100", true), ("ZZ", "anything", true), ("BR", " ", false),
    ])
    func postalCodes(country: String, code: String, valid: Bool) {
        #expect(AddressValidation.isValidPostalCode(code, country: country) == valid)
    }

    private func violations(_ a: Tote_V1_Address, email: Bool = false) -> [String] {
        var v = Validator()
        AddressValidation.validate(a, prefix: "shipping_address", requireEmail: email, into: &v)
        return v.violations.map(\.field)
    }

    @Test func requiredFieldsAreNamed() {
        #expect(violations(Tote_V1_Address(), email: true) == [
            "shipping_address.country", "shipping_address.name", "shipping_address.lines", "shipping_address.city", "shipping_address.email",
        ])
        #expect(violations(address("DE", postal: "")) == ["shipping_address.postal_code"])
        #expect(violations(address("DE", postal: "1234")) == ["shipping_address.postal_code"])
        #expect(violations(address("de", postal: "12345")) == ["shipping_address.country"])
        #expect(violations(address("DE", postal: "12345", email: "not-an-email")) == ["shipping_address.email"])
    }

    @Test func regionsWhereACountryNeedsOne() {
        #expect(violations(address("US", postal: "10001")) == ["shipping_address.region"])
        #expect(violations(address("US", postal: "10001", region: "XX")) == ["shipping_address.region"])
        #expect(violations(address("US", postal: "10001", region: "ny")).isEmpty)
        #expect(violations(address("US", postal: "10001", region: "US-NY")).isEmpty)
        #expect(violations(address("CA", postal: "V6B 1A1", region: "BC")).isEmpty)
        #expect(violations(address("AU", postal: "2000", region: "NSW")).isEmpty)
        #expect(violations(address("AU", postal: "2000")) == ["shipping_address.region"])
        #expect(violations(address("GB", postal: "SW1A 1AA")).isEmpty)
    }

    @Test func theCheckoutNamesBillingFieldsToo() throws {
        let s = try checkoutAt(.needsShippingAddress)
        let error = F.refusal(K.self, .setBillingAddress(.address(address("FR", postal: "7500"))), s)
        #expect(error?.violations.map(\.field) == ["billing_address.postal_code"])
        let ship = F.refusal(K.self, .setShippingAddress(address("SE", postal: "1234"), options: [standard]), s)
        #expect(ship?.violations.map(\.field) == ["shipping_address.postal_code"])
    }
}
