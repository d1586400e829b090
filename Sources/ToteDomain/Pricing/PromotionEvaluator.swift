import ToteProto

/// One promotion rule applied to a line, an order or its shipping, and what it took off
/// (the Swift form of `tote.v1.AppliedPromotion`).
public struct AppliedPromotion: Sendable, Equatable, Hashable {
    public var ruleID: String
    /// The rule's version when it was applied.
    public var ruleVersion: Int64
    public var label: String
    public var effect: Tote_V1_PromotionEffect
    /// Positive, never more than what it applied to.
    public var amount: Money
    /// The coupon code that activated it; empty for automatic rules.
    public var couponCode: String

    public init(ruleID: String, ruleVersion: Int64, label: String, effect: Tote_V1_PromotionEffect, amount: Money, couponCode: String) {
        self.ruleID = ruleID
        self.ruleVersion = ruleVersion
        self.label = label
        self.effect = effect
        self.amount = amount
        self.couponCode = couponCode
    }

    init(_ rule: PromotionRule, amount: Money) {
        self.init(ruleID: rule.id, ruleVersion: rule.version, label: rule.label, effect: rule.effect.kind, amount: amount, couponCode: rule.couponCode)
    }

    /// On the wire.
    public var proto: Tote_V1_AppliedPromotion {
        var p = Tote_V1_AppliedPromotion()
        p.ruleID = ruleID
        p.ruleVersion = ruleVersion
        p.label = label
        p.effect = effect
        p.amount = amount.proto
        p.couponCode = couponCode
        return p
    }
}

/// Applies promotion rules to priced lines and a shipping price. Pure and deterministic.
///
/// - Rules apply in order of priority (higher first, ties by id), each on what the earlier ones
///   left, so no line, no shipping price and no total can go below zero however rules stack.
/// - Stackable rules apply together; an exclusive rule applies alone, and only when its discount
///   is strictly larger than that of the stackable rules together (and of every other exclusive
///   rule; ties go to the higher priority).
/// - Order-level amounts (percentage or fixed amount without eligible SKUs) are spread over the
///   lines with ``Money/allocated(proportionally:)`` in proportion to what is left on each, so the
///   line amounts add up exactly; they are listed in ``Result/orderPromotions`` with their total too.
public enum PromotionEvaluator {
    /// A line to price: a SKU, units and the catalog price of one unit.
    public struct Line: Sendable, Equatable {
        public var sku: String
        public var quantity: Int64
        public var unitPrice: Money

        public init(sku: String, quantity: Int64, unitPrice: Money) {
            self.sku = sku
            self.quantity = quantity
            self.unitPrice = unitPrice
        }
    }

    /// One line after promotions.
    public struct LineResult: Sendable, Equatable {
        /// unit price × quantity.
        public var subtotal: Money
        /// The rules applied to this line (including its share of order-level rules), in order.
        public var promotions: [AppliedPromotion]
        /// Sum of ``promotions``' amounts.
        public var discount: Money
        /// subtotal − discount; never negative.
        public var total: Money
    }

    /// What happened to one rule in play.
    public enum Outcome: Sendable, Equatable {
        /// Its conditions hold and stacking chose it; it took off this much (possibly zero,
        /// e.g. free shipping before a shipping option is chosen).
        case applied(Money)
        /// It does not apply, and why (safe to show: "minimum spend EUR 50.00").
        case notApplied(reason: String)

        public var isApplied: Bool {
            if case .applied = self { true } else { false }
        }
    }

    /// Everything the evaluator worked out.
    public struct Result: Sendable, Equatable {
        public var currency: String
        /// One per input line, in the same order.
        public var lines: [LineResult]
        /// Order-level rules with their whole amounts (already spread over ``lines``).
        public var orderPromotions: [AppliedPromotion]
        /// Shipping rules with their amounts.
        public var shippingPromotions: [AppliedPromotion]
        /// The sum of ``shippingPromotions``; never more than the shipping price.
        public var shippingDiscount: Money
        /// Sum of the lines' subtotals.
        public var subtotal: Money
        /// Sum of the lines' discounts.
        public var discountTotal: Money
        /// The outcome of every rule passed in, by rule id.
        public var outcomes: [String: Outcome]
    }

    /// Applies `rules` to `lines` (all priced in `currency`) and `shipping` at time `nowMicros`.
    /// Every rule passed in is "in play": the caller has already dropped coupon rules whose code
    /// is not attached. Throws on overflow or when an amount is not in `currency`.
    public static func evaluate(
        lines: [Line], rules: [PromotionRule], shipping: Money, currency: String, nowMicros: Int64
    ) throws(MoneyError) -> Result {
        for line in lines where line.unitPrice.currency != currency {
            throw .currencyMismatch(currency, line.unitPrice.currency)
        }
        if shipping.currency != currency { throw .currencyMismatch(currency, shipping.currency) }
        var subtotals: [Int64] = []
        var subtotal = Money.zero(currency)
        for line in lines {
            let lineSubtotal = try line.unitPrice.multiplied(by: line.quantity)
            subtotals.append(lineSubtotal.minorUnits)
            subtotal = try subtotal.adding(lineSubtotal)
        }

        var outcomes: [String: Outcome] = [:]
        var candidates: [PromotionRule] = []
        let ordered = rules.sorted { $0.priority != $1.priority ? $0.priority > $1.priority : $0.id < $1.id }
        for rule in ordered {
            if let reason = unmetCondition(rule, lines: lines, subtotal: subtotal, currency: currency, nowMicros: nowMicros) {
                outcomes[rule.id] = .notApplied(reason: reason)
            } else {
                candidates.append(rule)
            }
        }

        let stackable = candidates.filter { $0.stacking == .stackable }
        var best = try apply(stackable, lines: lines, subtotals: subtotals, shipping: shipping.minorUnits, currency: currency)
        var winner: PromotionRule?
        for rule in candidates where rule.stacking == .exclusive {
            let alone = try apply([rule], lines: lines, subtotals: subtotals, shipping: shipping.minorUnits, currency: currency)
            if alone.totalDiscount > best.totalDiscount {
                best = alone
                winner = rule
            }
        }
        for rule in candidates {
            if let winner {
                outcomes[rule.id] = rule.id == winner.id
                    ? .applied(Money(best.perRule[rule.id] ?? 0, currency))
                    : .notApplied(reason: rule.stacking == .exclusive
                        ? "a larger discount applies" : "does not combine with \"\(winner.label)\"")
            } else if rule.stacking == .exclusive {
                outcomes[rule.id] = .notApplied(reason: "does not combine with the other promotions, which give more")
            } else {
                outcomes[rule.id] = .applied(Money(best.perRule[rule.id] ?? 0, currency))
            }
        }

        var results: [LineResult] = []
        var discountTotal = Money.zero(currency)
        for (i, promotions) in best.linePromotions.enumerated() {
            let discount = Money(subtotals[i] - best.remaining[i], currency)
            results.append(LineResult(
                subtotal: Money(subtotals[i], currency), promotions: promotions, discount: discount,
                total: Money(best.remaining[i], currency)))
            discountTotal = try discountTotal.adding(discount)
        }
        return Result(
            currency: currency, lines: results, orderPromotions: best.orderPromotions,
            shippingPromotions: best.shippingPromotions,
            shippingDiscount: Money(shipping.minorUnits - best.shippingRemaining, currency),
            subtotal: subtotal, discountTotal: discountTotal, outcomes: outcomes)
    }

    /// Why `rule` cannot apply to these lines, or nil when its conditions hold.
    static func unmetCondition(_ rule: PromotionRule, lines: [Line], subtotal: Money, currency: String, nowMicros: Int64) -> String? {
        if !rule.isLive(atMicros: nowMicros) {
            return rule.startsAtMicros != 0 && nowMicros < rule.startsAtMicros ? "not started yet" : "expired"
        }
        switch rule.effect {
        case .percentage(let ppm) where ppm < 1 || ppm > 1_000_000:
            return "not a valid rule"
        case .buyXGetY(let buy, let get, let ppm) where buy < 1 || get < 1 || ppm < 1 || ppm > 1_000_000:
            return "not a valid rule"
        case .fixedAmount(let amounts):
            guard let amount = amounts.first(where: { $0.currency == currency }), amount.minorUnits > 0 else {
                return "not available in \(currency)"
            }
        default:
            break
        }
        if let minimum = rule.minimumSubtotal(in: currency), subtotal.minorUnits < minimum.minorUnits {
            return "minimum spend \(PricingSupport.format(minimum))"
        }
        let eligible = lines.filter { rule.eligibleSkus.isEmpty || rule.eligibleSkus.contains($0.sku) }
        if !rule.eligibleSkus.isEmpty && eligible.isEmpty { return "no eligible items in the cart" }
        if case .buyXGetY(let buy, let get, _) = rule.effect {
            let units = eligible.reduce(Int64(0)) { $0 + $1.quantity }
            if units < buy + get { return "needs \(buy + get) eligible items" }
        }
        return nil
    }

    /// The state of one application pass.
    struct Pass {
        var remaining: [Int64]
        var shippingRemaining: Int64
        var linePromotions: [[AppliedPromotion]]
        var orderPromotions: [AppliedPromotion] = []
        var shippingPromotions: [AppliedPromotion] = []
        var perRule: [String: Int64] = [:]
        var totalDiscount: Int64 = 0
    }

    /// Applies `rules` in order, each on what the earlier ones left.
    static func apply(_ rules: [PromotionRule], lines: [Line], subtotals: [Int64], shipping: Int64, currency: String) throws(MoneyError) -> Pass {
        var pass = Pass(remaining: subtotals, shippingRemaining: shipping, linePromotions: lines.map { _ in [] })
        for rule in rules {
            let eligible = lines.indices.filter { rule.eligibleSkus.isEmpty || rule.eligibleSkus.contains(lines[$0].sku) }
            var taken = Array(repeating: Int64(0), count: lines.count)
            var orderLevel = false
            switch rule.effect {
            case .percentage(let ppm):
                if rule.eligibleSkus.isEmpty {
                    orderLevel = true
                    let base = eligible.reduce(Int64(0)) { $0 + pass.remaining[$1] }
                    let amount = min(base, try Money(base, currency).scaled(ppm: ppm).minorUnits)
                    try spread(amount, over: eligible, pass: pass, into: &taken, currency: currency)
                } else {
                    for i in eligible {
                        taken[i] = min(pass.remaining[i], try Money(pass.remaining[i], currency).scaled(ppm: ppm).minorUnits)
                    }
                }
            case .fixedAmount(let amounts):
                orderLevel = rule.eligibleSkus.isEmpty
                let fixed = amounts.first { $0.currency == currency }?.minorUnits ?? 0
                let base = eligible.reduce(Int64(0)) { $0 + pass.remaining[$1] }
                try spread(min(fixed, base), over: eligible, pass: pass, into: &taken, currency: currency)
            case .freeShipping:
                let amount = pass.shippingRemaining
                pass.shippingRemaining = 0
                pass.perRule[rule.id] = amount
                pass.totalDiscount += amount
                if amount > 0 { pass.shippingPromotions.append(AppliedPromotion(rule, amount: Money(amount, currency))) }
                continue
            case .buyXGetY(let buy, let get, let ppm):
                let units = eligible.reduce(Int64(0)) { $0 + lines[$1].quantity }
                var discounted = units / (buy + get) * get
                // The cheapest units are the discounted ones (ties: the earlier line).
                let cheapestFirst = eligible.sorted {
                    lines[$0].unitPrice.minorUnits != lines[$1].unitPrice.minorUnits
                        ? lines[$0].unitPrice.minorUnits < lines[$1].unitPrice.minorUnits : $0 < $1
                }
                for i in cheapestFirst where discounted > 0 && lines[i].quantity > 0 {
                    let k = min(lines[i].quantity, discounted)
                    discounted -= k
                    // k of the line's units, valued at what is left per unit.
                    let value = try Money.divideRounded(pass.remaining[i], times: k * ppm, by: lines[i].quantity * 1_000_000)
                    taken[i] = min(pass.remaining[i], value)
                }
            }
            var total: Int64 = 0
            for i in lines.indices where taken[i] > 0 {
                pass.remaining[i] -= taken[i]
                total += taken[i]
                pass.linePromotions[i].append(AppliedPromotion(rule, amount: Money(taken[i], currency)))
            }
            pass.perRule[rule.id] = total
            pass.totalDiscount += total
            if orderLevel && total > 0 { pass.orderPromotions.append(AppliedPromotion(rule, amount: Money(total, currency))) }
        }
        return pass
    }

    /// Spreads `amount` (at most what is left on `indices`) over those lines in proportion to what
    /// is left on each, exactly.
    private static func spread(_ amount: Int64, over indices: [Int], pass: Pass, into taken: inout [Int64], currency: String) throws(MoneyError) {
        guard amount > 0 else { return }
        let parts = try Money(amount, currency).allocated(proportionally: indices.map { max(0, pass.remaining[$0]) })
        for (n, i) in indices.enumerated() { taken[i] = min(pass.remaining[i], parts[n].minorUnits) }
    }
}
