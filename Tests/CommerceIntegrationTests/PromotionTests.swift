import EventStore
import Foundation
import Postgres
import Testing
import ToteAPI
import ToteCommands
import ToteDomain
import ToteTestSupport

/// A promotion spec: `label`, one effect, optional coupon code and stacking.
private func spec(_ label: String, percentPPM: UInt32 = 0, fixed: Int64 = 0, code: String = "", exclusive: Bool = false) -> Tote_V1_PromotionRuleSpec {
    var s = Tote_V1_PromotionRuleSpec()
    s.label = label
    if fixed > 0 {
        s.effect = .fixedAmount
        s.fixedAmounts = [Money(fixed, "EUR").proto]
    } else {
        s.effect = .percentage
        s.percentagePpm = percentPPM
    }
    s.couponCode = code
    s.exclusive = exclusive
    return s
}

/// Defines a promotion as an operator.
@discardableResult
private func define(_ admin: ClientConnection, _ id: String, _ spec: Tote_V1_PromotionRuleSpec, key: String = UUID().uuidString) async throws -> Tote_V1_DefinePromotionResponse {
    var request = Tote_V1_DefinePromotionRequest()
    request.promotionID = id
    request.spec = spec
    return try await admin.unary(PromotionsAPI.definePromotion, request, options: command(key))
}

/// A EUR cart with `lines` (SKU → quantity); returns its id.
private func cart(_ shopper: ClientConnection, _ lines: [(String, UInt32)]) async throws -> String {
    var create = Tote_V1_CreateCartRequest()
    create.currency = "EUR"
    create.customerID = "customer-1"
    let cartID = try await shopper.unary(CartAPI.createCart, create, options: command()).cart.cartID
    for (sku, quantity) in lines {
        var add = Tote_V1_AddLineRequest()
        add.cartID = cartID
        add.sku = sku
        add.quantity = quantity
        _ = try await shopper.unary(CartAPI.addLine, add, options: command())
    }
    return cartID
}

private func applyCoupon(_ shopper: ClientConnection, _ cartID: String, _ code: String) async throws -> Tote_V1_CartView {
    var apply = Tote_V1_ApplyCouponRequest()
    apply.cartID = cartID
    apply.code = code
    return try await shopper.unary(CartAPI.applyCoupon, apply, options: command()).cart
}

/// A node selling one product (MUG, 12.00 EUR, 5 in stock), with an operator and a shopper
/// connected: where most promotion tests start.
private func mugShop() async throws -> (Node, ClientConnection, ClientConnection) {
    let node = try await Node.start()
    do {
        try await seedCatalog(node, skus: ["MUG": 1200], stock: 5)
        return (node, try await node.connect(apiKey: Keys.operator), try await node.connect(apiKey: Keys.storefront))
    } catch {
        await node.stop()
        throw error
    }
}

private func getCart(_ shopper: ClientConnection, _ cartID: String) async throws -> Tote_V1_CartView {
    var get = Tote_V1_GetCartRequest()
    get.cartID = cartID
    return try await shopper.unary(CartAPI.getCart, get)
}

/// Takes an existing cart through checkout to READY (German address, standard shipping, a card
/// approved at once); returns the checkout id.
private func checkout(_ shopper: ClientConnection, cartID: String) async throws -> String {
    var start = Tote_V1_StartCheckoutRequest()
    start.cartID = cartID
    let id = try await shopper.unary(CheckoutAPI.startCheckout, start, options: command()).checkout.checkoutID
    var address = Tote_V1_SetShippingAddressRequest()
    address.checkoutID = id
    address.address = germanAddress()
    _ = try await shopper.unary(CheckoutAPI.setShippingAddress, address, options: command())
    var billing = Tote_V1_SetBillingAddressRequest()
    billing.checkoutID = id
    billing.sameAsShipping = true
    _ = try await shopper.unary(CheckoutAPI.setBillingAddress, billing, options: command())
    var shipping = Tote_V1_ChooseShippingOptionRequest()
    shipping.checkoutID = id
    shipping.optionID = "standard"
    _ = try await shopper.unary(CheckoutAPI.chooseShippingOption, shipping, options: command())
    var payment = Tote_V1_ChoosePaymentMethodRequest()
    payment.checkoutID = id
    payment.method.kind = .card
    payment.method.provider = "simulated"
    payment.method.token = "tok_visa_4242"
    payment.method.display = "Visa **** 4242"
    let ready = try await shopper.unary(CheckoutAPI.choosePaymentMethod, payment, options: command())
    #expect(ready.checkout.state == .ready)
    return id
}

private func eur(_ minor: Int64) -> Tote_V1_Money { Money(minor, "EUR").proto }

@Suite("Promotions and coupon codes over the wire, on a real PostgreSQL", .localCluster, .serialized)
struct PromotionTests {
    @Test("an operator's 10 % coupon: the cart's lines and total show it, and the order placed from the cart carries it")
    func couponFromDefinitionToOrder() async throws {
        let node = try await Node.start()
        defer { Task { await node.stop() } }
        try await seedCatalog(node, skus: ["TEE-M": 2500, "TEE-L": 2700], stock: 10)
        let admin = try await node.connect(apiKey: Keys.operator)
        let shopper = try await node.connect(apiKey: Keys.storefront)

        let defined = try await define(admin, "summer-10", spec("10% off everything", percentPPM: 100_000, code: "summer10"))
        #expect(defined.streamVersion == 1 && defined.consistencyToken.globalPosition > 0)
        #expect(defined.promotion.status == .active)
        #expect(defined.promotion.rule.ruleID == "summer-10" && defined.promotion.rule.version == 1)
        #expect(defined.promotion.rule.spec.couponCode == "SUMMER10")

        let cartID = try await cart(shopper, [("TEE-M", 2), ("TEE-L", 1)])
        #expect(try await getCart(shopper, cartID).totals.total == eur(7700))
        let view = try await applyCoupon(shopper, cartID, "summer10")
        // 10 % of 77.00 = 7.70, spread over the lines by their subtotals: 5.00 and 2.70.
        #expect(view.coupons.map(\.code) == ["SUMMER10"] && view.coupons.first?.applied == true)
        #expect(view.totals.subtotal == eur(7700))
        #expect(view.totals.discountTotal == eur(770))
        #expect(view.totals.total == eur(6930))
        let m = try #require(view.lines.first { $0.sku == "TEE-M" })
        let l = try #require(view.lines.first { $0.sku == "TEE-L" })
        for (line, amount) in [(m, Int64(500)), (l, 270)] {
            #expect(line.promotions.count == 1)
            #expect(line.promotions.first?.ruleID == "summer-10")
            #expect(line.promotions.first?.ruleVersion == 1)
            #expect(line.promotions.first?.couponCode == "SUMMER10")
            #expect(line.promotions.first?.effect == .percentage)
            #expect(line.promotions.first?.amount == eur(amount))
            #expect(line.lineDiscount == eur(amount))
        }
        #expect(view.cartPromotions.map(\.ruleID) == ["summer-10"])

        let checkoutID = try await checkout(shopper, cartID: cartID)
        let placed = try await placeOrder(shopper, checkoutID: checkoutID)
        // 69.30 + 4.95 shipping (EUR prices include VAT).
        #expect(placed.total == eur(7425))
        let order = try await getOrder(shopper, placed.orderID)
        #expect(order.totals.discountTotal == eur(770))
        #expect(order.totals.total == eur(7425))
        #expect(order.orderPromotions.map(\.ruleID) == ["summer-10"])
        #expect(order.orderPromotions.first?.amount == eur(770))
        let orderM = try #require(order.lines.first { $0.sku == "TEE-M" })
        #expect(orderM.promotions.map(\.ruleID) == ["summer-10"] && orderM.lineDiscount == eur(500))
        #expect(orderM.promotions.first?.couponCode == "SUMMER10" && orderM.promotions.first?.ruleVersion == 1)
        #expect(orderM.lineTotal == eur(4500))

        // The operator's view of the promotion.
        var get = Tote_V1_GetPromotionRequest()
        get.promotionID = "summer-10"
        let fetched = try await admin.unary(PromotionsAPI.getPromotion, get)
        #expect(fetched.rule == defined.promotion.rule && fetched.status == .active && fetched.streamVersion == 1)
        await admin.close()
        await shopper.close()
    }

    @Test("stackable promotions stack by priority; an exclusive one applies alone, and only when it gives more")
    func stackingRules() async throws {
        let node = try await Node.start()
        defer { Task { await node.stop() } }
        try await seedCatalog(node, skus: ["TEE-M": 2500, "TEE-L": 2700], stock: 10)
        let admin = try await node.connect(apiKey: Keys.operator)
        let shopper = try await node.connect(apiKey: Keys.storefront)
        // Automatic 10 % (applies to every cart) and a stackable EUR 5.00 coupon; same priority,
        // so they apply in id order: "a-…" first, then "b-…" on what it left.
        try await define(admin, "a-auto-10", spec("10% off", percentPPM: 100_000))
        try await define(admin, "b-five", spec("EUR 5 off", fixed: 500, code: "FIVE"))
        try await define(admin, "c-small-exclusive", spec("5% alone", percentPPM: 50_000, code: "SMALL5", exclusive: true))
        try await define(admin, "d-big-exclusive", spec("30% alone", percentPPM: 300_000, code: "BIG30", exclusive: true))

        let cartID = try await cart(shopper, [("TEE-M", 2), ("TEE-L", 1)])
        let automatic = try await getCart(shopper, cartID)
        #expect(automatic.totals.discountTotal == eur(770))
        let stacked = try await applyCoupon(shopper, cartID, "FIVE")
        // 7.70 + 5.00 on the 69.30 left.
        #expect(stacked.totals.discountTotal == eur(1270))
        #expect(stacked.totals.total == eur(6430))
        #expect(stacked.cartPromotions.map(\.ruleID) == ["a-auto-10", "b-five"])

        // 5 % alone (3.85) is less than the stack (12.70): the stack stays.
        let small = try await applyCoupon(shopper, cartID, "SMALL5")
        #expect(small.totals.discountTotal == eur(1270))
        let smallCoupon = try #require(small.coupons.first { $0.code == "SMALL5" })
        #expect(!smallCoupon.applied && smallCoupon.notAppliedReason.contains("give more"))

        // 30 % alone (23.10) beats the stack: it applies alone; the others do not combine with it.
        let big = try await applyCoupon(shopper, cartID, "BIG30")
        #expect(big.totals.discountTotal == eur(2310))
        #expect(big.totals.total == eur(5390))
        #expect(big.cartPromotions.map(\.ruleID) == ["d-big-exclusive"])
        for line in big.lines { #expect(line.promotions.map(\.ruleID) == ["d-big-exclusive"]) }
        let five = try #require(big.coupons.first { $0.code == "FIVE" })
        #expect(!five.applied && five.notAppliedReason.contains("30% alone"))
        #expect(big.coupons.first { $0.code == "BIG30" }?.applied == true)
        await admin.close()
        await shopper.close()
    }

    @Test("two fixed amounts larger than the cart take it to zero, never below")
    func fixedAmountsNeverGoNegative() async throws {
        let (node, admin, shopper) = try await mugShop()
        defer { Task { await node.stop() } }
        try await define(admin, "ten-off", spec("EUR 10 off", fixed: 1000, code: "TEN"))
        try await define(admin, "eight-off", spec("EUR 8 off", fixed: 800, code: "EIGHT"))

        let cartID = try await cart(shopper, [("MUG", 1)])
        _ = try await applyCoupon(shopper, cartID, "TEN")
        let view = try await applyCoupon(shopper, cartID, "EIGHT")
        #expect(view.totals.subtotal == eur(1200))
        #expect(view.totals.discountTotal == eur(1200))
        #expect(view.totals.total == eur(0))
        let line = try #require(view.lines.first)
        #expect(line.lineTotal == eur(0))
        // Priority ties go by id: "eight-off" takes 8.00, "ten-off" the 4.00 left.
        #expect(line.promotions.map(\.ruleID) == ["eight-off", "ten-off"])
        #expect(line.promotions.map(\.amount) == [eur(800), eur(400)])
        for amount in [view.totals.total, line.lineTotal, line.lineDiscount] { #expect(amount.minorUnits >= 0) }

        // The order: only shipping left to pay.
        let placed = try await placeOrder(shopper, checkoutID: try await checkout(shopper, cartID: cartID))
        #expect(placed.total == eur(495))
        await admin.close()
        await shopper.close()
    }

    @Test("an ended promotion stops applying and its code is refused with a typed error")
    func endedPromotion() async throws {
        let (node, admin, shopper) = try await mugShop()
        defer { Task { await node.stop() } }
        try await define(admin, "flash", spec("20% flash sale", percentPPM: 200_000, code: "FLASH20"))
        let early = try await cart(shopper, [("MUG", 1)])
        #expect(try await applyCoupon(shopper, early, "FLASH20").totals.discountTotal == eur(240))

        var end = Tote_V1_EndPromotionRequest()
        end.promotionID = "flash"
        end.reason = "sold out"
        let ended = try await admin.unary(PromotionsAPI.endPromotion, end, options: command())
        #expect(ended.streamVersion == 2 && ended.promotion.status == .inactive && ended.promotion.endReason == "sold out")

        // A cart that holds the code no longer gets the discount; a new cart cannot apply it.
        let held = try await getCart(shopper, early)
        #expect(held.totals.discountTotal == eur(0) && held.coupons.first?.applied == false)
        let late = try await cart(shopper, [("MUG", 1)])
        let refused = await rpcError { _ = try await applyCoupon(shopper, late, "flash20") }
        #expect(refused?.code == .failedPrecondition)
        #expect(refused?.message.contains("FLASH20") == true && refused?.message.contains("ended") == true)
        #expect(refused?.currentState?.state == "PROMOTION_STATUS_INACTIVE")
        // An unknown code stays INVALID_ARGUMENT on `code`.
        let unknown = await rpcError { _ = try await applyCoupon(shopper, late, "NOSUCHCODE") }
        #expect(unknown?.code == .invalidArgument && unknown?.badRequest?.fieldViolations.map(\.field) == ["code"])
        // Ended is final: no update, no new code; listing hides it unless asked.
        var update = Tote_V1_UpdatePromotionRequest()
        update.promotionID = "flash"
        update.spec = spec("25% flash sale", percentPPM: 250_000)
        let noUpdate = await rpcError { _ = try await admin.unary(PromotionsAPI.updatePromotion, update, options: command()) }
        #expect(noUpdate?.code == .failedPrecondition && noUpdate?.currentState?.state == "PROMOTION_STATUS_INACTIVE")
        var list = Tote_V1_ListPromotionsRequest()
        #expect(try await admin.unary(PromotionsAPI.listPromotions, list).promotions.isEmpty)
        list.includeEnded = true
        #expect(try await admin.unary(PromotionsAPI.listPromotions, list).promotions.map(\.rule.ruleID) == ["flash"])
        await admin.close()
        await shopper.close()
    }

    @Test("bad input gets INVALID_ARGUMENT, NOT_FOUND or ALREADY_EXISTS naming the problem")
    func badInput() async throws {
        let node = try await Node.start()
        defer { Task { await node.stop() } }
        let admin = try await node.connect(apiKey: Keys.operator)
        try await define(admin, "p1", spec("10% off", percentPPM: 100_000, code: "SAVE10"))
        try await define(admin, "auto", spec("5% off", percentPPM: 50_000))

        func fields(_ error: RPCError?) -> Set<String> { Set(error?.badRequest?.fieldViolations.map(\.field) ?? []) }

        // Percentage over 100 %.
        let tooMuch = await rpcError { try await define(admin, "p2", spec("too much", percentPPM: 1_000_001)) }
        #expect(tooMuch?.code == .invalidArgument && fields(tooMuch) == ["spec.percentage_ppm"])
        #expect(tooMuch?.message.contains("percentage_ppm") == true)
        // Ends before it starts.
        var window = spec("window", percentPPM: 100_000)
        window.startsAt.unixMicros = node.clock.now + 1_000_000
        window.endsAt.unixMicros = node.clock.now
        let backwards = await rpcError { try await define(admin, "p3", window) }
        #expect(backwards?.code == .invalidArgument && fields(backwards) == ["spec.ends_at"])
        // Malformed code, empty label, no spec, no key.
        let malformed = await rpcError { try await define(admin, "p4", spec(" ", percentPPM: 100_000, code: "no spaces!")) }
        #expect(fields(malformed) == ["spec.label", "spec.coupon_code"])
        let noSpec = await rpcError { _ = try await admin.unary(PromotionsAPI.definePromotion, Tote_V1_DefinePromotionRequest(), options: command()) }
        #expect(noSpec?.code == .invalidArgument && fields(noSpec) == ["spec"])
        var noEffect = spec("no effect")
        noEffect.effect = .unspecified
        #expect(fields(await rpcError { try await define(admin, "p6", noEffect) }) == ["spec.effect"])
        var defineRequest = Tote_V1_DefinePromotionRequest()
        defineRequest.spec = spec("x", percentPPM: 1)
        let noKey = await rpcError { _ = try await admin.unary(PromotionsAPI.definePromotion, defineRequest, options: CallOptions(timeout: .seconds(30))) }
        #expect(noKey?.code == .invalidArgument && noKey?.message.contains("idempotency") == true)

        // A code another promotion holds: at definition and as a new code.
        let taken = await rpcError { try await define(admin, "p5", spec("copy", percentPPM: 100_000, code: "save10")) }
        #expect(taken?.code == .alreadyExists && taken?.message.contains("SAVE10") == true)
        var coupon = Tote_V1_CreateCouponCodeRequest()
        coupon.promotionID = "auto"
        coupon.code = "SAVE10"
        let takenCode = await rpcError { _ = try await admin.unary(PromotionsAPI.createCouponCode, coupon, options: command()) }
        #expect(takenCode?.code == .alreadyExists && takenCode?.message.contains("SAVE10") == true)
        // Nothing of the refused definition was written (claim and definition commit together).
        var getP5 = Tote_V1_GetPromotionRequest()
        getP5.promotionID = "p5"
        #expect(await rpcError { _ = try await admin.unary(PromotionsAPI.getPromotion, getP5) }?.code == .notFound)
        // An empty code; a second code for a promotion that has one.
        coupon.code = ""
        let empty = await rpcError { _ = try await admin.unary(PromotionsAPI.createCouponCode, coupon, options: command()) }
        #expect(empty?.code == .invalidArgument && fields(empty) == ["code"])
        coupon.promotionID = "p1"
        coupon.code = "ANOTHER"
        let second = await rpcError { _ = try await admin.unary(PromotionsAPI.createCouponCode, coupon, options: command()) }
        #expect(second?.code == .failedPrecondition && second?.message.contains("SAVE10") == true)

        // Unknown promotion ids.
        var get = Tote_V1_GetPromotionRequest()
        get.promotionID = "nope"
        let missing = await rpcError { _ = try await admin.unary(PromotionsAPI.getPromotion, get) }
        #expect(missing?.code == .notFound && missing?.message.contains("nope") == true)
        var end = Tote_V1_EndPromotionRequest()
        end.promotionID = "nope"
        end.reason = "x"
        let endMissing = await rpcError { _ = try await admin.unary(PromotionsAPI.endPromotion, end, options: command()) }
        #expect(endMissing?.code == .notFound && endMissing?.message.contains("nope") == true)
        coupon.promotionID = "nope"
        let codeMissing = await rpcError { _ = try await admin.unary(PromotionsAPI.createCouponCode, coupon, options: command()) }
        #expect(codeMissing?.code == .notFound && codeMissing?.message.contains("nope") == true)
        end.promotionID = ""
        #expect(fields(await rpcError { _ = try await admin.unary(PromotionsAPI.endPromotion, end, options: command()) }) == ["promotion_id"])
        // An end without a reason; a page too large.
        end.promotionID = "p1"
        end.reason = " "
        #expect(fields(await rpcError { _ = try await admin.unary(PromotionsAPI.endPromotion, end, options: command()) }) == ["reason"])
        var list = Tote_V1_ListPromotionsRequest()
        list.page.pageSize = 1000
        #expect(fields(await rpcError { _ = try await admin.unary(PromotionsAPI.listPromotions, list) }) == ["page.page_size"])
        await admin.close()
    }

    @Test("a promotion change prices this node's carts at once, even while another transaction in the cluster holds the log's readers back")
    func ownChangeWhileTheLogIsHeldBack() async throws {
        let (node, admin, shopper) = try await mugShop()
        defer { Task { await node.stop() } }
        try await define(admin, "welcome", spec("EUR 2 off", fixed: 200))
        let cartID = try await cart(shopper, [("MUG", 1)])
        #expect(try await getCart(shopper, cartID).totals.discountTotal == eur(200))

        // A transaction with an id, open in another database of the same cluster (as another
        // test's, or another service's): the log's readers stop before it until it ends. It
        // commits 300 ms from now; the update below must wait for its own append, not answer
        // with the registry as readable at that moment (CI once saw the old discount).
        let blocker = try PostgresConnection.connect(try LocalCluster.cluster.connectionString)
        _ = try blocker.execute("BEGIN")
        _ = try blocker.execute("SELECT txid_current()")
        let release = Task.detached {
            try await Task.sleep(for: .milliseconds(300))
            _ = try blocker.execute("COMMIT")
        }
        var update = Tote_V1_UpdatePromotionRequest()
        update.promotionID = "welcome"
        update.spec = spec("EUR 3 off", fixed: 300)
        _ = try await admin.unary(PromotionsAPI.updatePromotion, update, options: command())
        #expect(try await getCart(shopper, cartID).totals.discountTotal == eur(300))
        try await release.value
        await admin.close()
        await shopper.close()
    }

    @Test("a replayed idempotency key returns the first reply; a new code on an automatic promotion; list pages")
    func idempotencyAndCouponCodes() async throws {
        let (node, admin, shopper) = try await mugShop()
        defer { Task { await node.stop() } }

        let first = try await define(admin, "welcome", spec("EUR 2 off", fixed: 200), key: "define-welcome")
        // The same key, even with another body, answers the first reply and writes nothing.
        let replay = try await define(admin, "other", spec("changed", percentPPM: 500_000), key: "define-welcome")
        #expect(replay == first)
        #expect(try await node.store.streamVersion(StreamName.promotion("other")) == nil)

        // Automatic: every cart gets it.
        let cartID = try await cart(shopper, [("MUG", 1)])
        #expect(try await getCart(shopper, cartID).totals.discountTotal == eur(200))

        var coupon = Tote_V1_CreateCouponCodeRequest()
        coupon.promotionID = "welcome"
        coupon.code = " welcome2 "
        let created = try await admin.unary(PromotionsAPI.createCouponCode, coupon, options: command("code-1"))
        #expect(created.code == "WELCOME2" && created.streamVersion == 2)
        #expect(created.promotion.rule.version == 2 && created.promotion.rule.spec.couponCode == "WELCOME2")
        #expect(try await admin.unary(PromotionsAPI.createCouponCode, coupon, options: command("code-1")) == created)
        // The same code under a new key: nothing to do, same version.
        let again = try await admin.unary(PromotionsAPI.createCouponCode, coupon, options: command())
        #expect(again.streamVersion == 2 && again.code == "WELCOME2")
        #expect(try await node.store.streamVersion(StreamName.couponClaim("WELCOME2")) == 1)

        // Now it needs the code.
        #expect(try await getCart(shopper, cartID).totals.discountTotal == eur(0))
        #expect(try await applyCoupon(shopper, cartID, "welcome2").totals.discountTotal == eur(200))

        // Update keeps the code when the spec leaves it empty; a stale expected version is ABORTED.
        var update = Tote_V1_UpdatePromotionRequest()
        update.promotionID = "welcome"
        update.spec = spec("EUR 3 off", fixed: 300)
        update.expectedVersion = 2
        let updated = try await admin.unary(PromotionsAPI.updatePromotion, update, options: command())
        #expect(updated.streamVersion == 3 && updated.promotion.rule.spec.couponCode == "WELCOME2")
        #expect(try await getCart(shopper, cartID).totals.discountTotal == eur(300))
        let stale = await rpcError { _ = try await admin.unary(PromotionsAPI.updatePromotion, update, options: command()) }
        #expect(stale?.code == .aborted)

        // Pages in id order.
        try await define(admin, "a-first", spec("1%", percentPPM: 10_000, code: "ONE"))
        try await define(admin, "z-last", spec("2%", percentPPM: 20_000, code: "TWO"))
        var list = Tote_V1_ListPromotionsRequest()
        list.page.pageSize = 2
        let page1 = try await admin.unary(PromotionsAPI.listPromotions, list)
        #expect(page1.promotions.map(\.rule.ruleID) == ["a-first", "welcome"] && !page1.page.nextPageToken.isEmpty)
        list.page.pageToken = page1.page.nextPageToken
        let page2 = try await admin.unary(PromotionsAPI.listPromotions, list)
        #expect(page2.promotions.map(\.rule.ruleID) == ["z-last"] && page2.page.nextPageToken.isEmpty)
        await admin.close()
        await shopper.close()
    }

    @Test("a storefront key cannot define, change or read promotions")
    func storefrontIsDenied() async throws {
        let node = try await Node.start()
        defer { Task { await node.stop() } }
        let shopper = try await node.connect(apiKey: Keys.storefront)
        var request = Tote_V1_DefinePromotionRequest()
        request.promotionID = "sneaky"
        request.spec = spec("100% off", percentPPM: 1_000_000)
        let denied = await rpcError { _ = try await shopper.unary(PromotionsAPI.definePromotion, request, options: command()) }
        #expect(denied?.code == .permissionDenied)
        var coupon = Tote_V1_CreateCouponCodeRequest()
        coupon.promotionID = "sneaky"
        coupon.code = "FREE"
        #expect(await rpcError { _ = try await shopper.unary(PromotionsAPI.createCouponCode, coupon, options: command()) }?.code == .permissionDenied)
        #expect(await rpcError { _ = try await shopper.unary(PromotionsAPI.listPromotions, Tote_V1_ListPromotionsRequest()) }?.code == .permissionDenied)
        #expect(try await node.store.streamVersion(StreamName.promotion("sneaky")) == nil)
        await shopper.close()
    }
}
