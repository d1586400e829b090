import ToteProto

/// Prices a cart from its state, every time: catalog unit prices (in the state), promotion rules
/// (automatic ones and those of the attached coupons), an optional shipping estimate and tax.
/// Nothing here is stored; a client never supplies an amount.
public enum CartPricing {
    /// A coupon code and whether its rule applies now.
    public struct CouponStatus: Sendable, Equatable {
        public var code: String
        public var applied: Bool
        /// Why not, when `applied` is false.
        public var notAppliedReason: String
    }

    /// A priced cart.
    public struct View: Sendable, Equatable {
        /// The lines with their promotions (same order as the state's lines).
        public var lines: [(line: CartDecider.Line, result: PromotionEvaluator.LineResult)]
        public var coupons: [CouponStatus]
        /// Order-level and shipping promotions (line shares are on the lines).
        public var cartPromotions: [AppliedPromotion]
        public var totals: Totals

        public static func == (a: View, b: View) -> Bool {
            a.lines.map(\.line) == b.lines.map(\.line) && a.lines.map(\.result) == b.lines.map(\.result)
                && a.coupons == b.coupons && a.cartPromotions == b.cartPromotions && a.totals == b.totals
        }
    }

    /// The rules in play for `state`: every automatic rule in `rules`, and the coupon rules whose
    /// code is attached to the cart (and belongs to that promotion).
    public static func rulesInPlay(_ state: CartDecider.State, rules: [PromotionRule]) -> [PromotionRule] {
        rules.filter { rule in
            !rule.needsCoupon || state.coupons.contains { $0.code == rule.couponCode && $0.promotionID == rule.id }
        }
    }

    /// Prices `state`. `rules`: the active automatic rules and the rules of the cart's coupons (the
    /// service's lookup; others are ignored). `shipping`: an estimate, zero by default. Tax is an
    /// estimate for `destination` (none without one). Overflow → invalidArgument.
    public static func view(
        _ state: CartDecider.State, rules: [PromotionRule], shipping: Money? = nil, taxTable: TaxTable? = nil,
        destination: TaxDestination? = nil, nowMicros: Int64
    ) throws(DomainError) -> View {
        let currency = state.currency
        let inPlay = rulesInPlay(state, rules: rules)
        let shipping = shipping ?? .zero(currency)
        do {
            let result = try PromotionEvaluator.evaluate(
                lines: state.lines.map { .init(sku: $0.sku, quantity: $0.quantity, unitPrice: $0.unitPrice) },
                rules: inPlay, shipping: shipping, currency: currency, nowMicros: nowMicros)
            let totals = try Totals.compute(result, shipping: shipping, taxTable: taxTable, destination: destination)
            let coupons = state.coupons.map { coupon -> CouponStatus in
                switch result.outcomes[coupon.promotionID] {
                case .applied?: CouponStatus(code: coupon.code, applied: true, notAppliedReason: "")
                case .notApplied(let reason)?: CouponStatus(code: coupon.code, applied: false, notAppliedReason: reason)
                case nil: CouponStatus(code: coupon.code, applied: false, notAppliedReason: "no longer valid")
                }
            }
            return View(
                lines: Array(zip(state.lines, result.lines)), coupons: coupons,
                cartPromotions: result.orderPromotions + result.shippingPromotions, totals: totals)
        } catch {
            throw PricingSupport.moneyError(error, field: "lines")
        }
    }

    /// A cart line with its promotions and amounts as priced (the wire `CartLine`, shared by the
    /// cart and checkout views).
    public static func lineProto(_ line: CartDecider.Line, _ result: PromotionEvaluator.LineResult) -> Tote_V1_CartLine {
        var l = Tote_V1_CartLine()
        l.lineID = line.lineID
        l.sku = line.sku
        l.productID = line.productID
        l.displayName = line.displayName
        l.quantity = UInt32(line.quantity)
        l.unitPrice = line.unitPrice.proto
        l.lineSubtotal = result.subtotal.proto
        l.promotions = result.promotions.map(\.proto)
        l.lineDiscount = result.discount.proto
        l.lineTotal = result.total.proto
        l.imageURL = line.imageURL
        return l
    }

    /// The wire view of a cart (`CartView`) at stream version `version`.
    public static func proto(_ state: CartDecider.State, _ view: View, version: Int64) -> Tote_V1_CartView {
        var p = Tote_V1_CartView()
        p.cartID = state.cartID
        p.customerID = state.customerID
        p.currency = state.currency
        p.customerGroup = state.customerGroup
        p.status = Tote_V1_CartStatus(rawValue: statusNumber(state.status)) ?? .unspecified
        p.lines = view.lines.map(lineProto)
        p.coupons = view.coupons.map { c in
            var w = Tote_V1_CartCoupon()
            w.code = c.code
            w.applied = c.applied
            w.notAppliedReason = c.notAppliedReason
            return w
        }
        p.cartPromotions = view.cartPromotions.map(\.proto)
        p.totals = view.totals.proto
        p.version = version
        p.createdAt = PricingSupport.timestamp(state.createdAtMicros)
        p.updatedAt = PricingSupport.timestamp(state.updatedAtMicros)
        p.mergedIntoCartID = state.mergedIntoCartID
        return p
    }

    private static func statusNumber(_ status: CartDecider.Status) -> Int {
        switch status {
        case .unspecified: 0
        case .open: 1
        case .merged: 2
        case .checkedOut: 3
        case .abandoned: 4
        }
    }
}
