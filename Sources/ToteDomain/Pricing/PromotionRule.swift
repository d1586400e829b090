import ToteProto

/// One promotion rule at one version: what it takes off (``Effect``), when it applies (coupon
/// code, minimum subtotal, eligible SKUs, time window) and how it combines with others
/// (``Stacking`` and ``priority``). Evaluated by ``PromotionEvaluator``; stored by
/// ``PromotionDecider``.
public struct PromotionRule: Sendable, Equatable, Hashable {
    /// What a rule takes off.
    public enum Effect: Sendable, Equatable, Hashable {
        /// A share of what is left, in parts per million (1…1,000,000). On the eligible lines
        /// (each line rounded on its own) or, without eligible SKUs, on the whole order (rounded
        /// once, then spread over the lines exactly).
        case percentage(ppm: Int64)
        /// A fixed amount, one per currency (the rule applies only in those currencies), spread
        /// over the eligible lines (or all lines) in proportion to what is left on them; capped at
        /// what is left.
        case fixedAmount([Money])
        /// The shipping price (what is left of it) is taken off.
        case freeShipping
        /// For every `buy + get` eligible units, the `get` cheapest units are discounted by
        /// `discountPPM` (1,000,000 = free).
        case buyXGetY(buy: Int64, get: Int64, discountPPM: Int64)

        /// The wire enum of this effect.
        public var kind: Tote_V1_PromotionEffect {
            switch self {
            case .percentage: .percentage
            case .fixedAmount: .fixedAmount
            case .freeShipping: .freeShipping
            case .buyXGetY: .buyXGetY
            }
        }
    }

    /// How a rule combines with other rules.
    public enum Stacking: Sendable, Equatable, Hashable {
        /// Applies together with the other stackable rules, on what they leave.
        case stackable
        /// Applies alone, when it gives a larger discount than every alternative.
        case exclusive
    }

    /// The promotion's id.
    public var id: String
    /// 1 when defined, + 1 per update; recorded with every application.
    public var version: Int64
    /// Shown to customers, e.g. "10% off T-shirts".
    public var label: String
    public var effect: Effect
    /// The upper-case coupon code that activates it; empty = automatic.
    public var couponCode: String
    /// The cart subtotal (before discounts) needed, per currency; no entry = no minimum there.
    public var minimumSubtotals: [Money]
    /// The SKUs it applies to; empty = all (see ``Effect`` for the order-level meaning).
    public var eligibleSkus: Set<String>
    public var stacking: Stacking
    /// Higher first; ties by ``id``.
    public var priority: Int32
    /// Applies from this time (µs since the epoch); 0 = always.
    public var startsAtMicros: Int64
    /// Applies before this time; 0 = forever.
    public var endsAtMicros: Int64

    public init(
        id: String, version: Int64 = 1, label: String, effect: Effect, couponCode: String = "",
        minimumSubtotals: [Money] = [], eligibleSkus: Set<String> = [], stacking: Stacking = .stackable,
        priority: Int32 = 0, startsAtMicros: Int64 = 0, endsAtMicros: Int64 = 0
    ) {
        self.id = id
        self.version = version
        self.label = label
        self.effect = effect
        self.couponCode = couponCode
        self.minimumSubtotals = minimumSubtotals
        self.eligibleSkus = eligibleSkus
        self.stacking = stacking
        self.priority = priority
        self.startsAtMicros = startsAtMicros
        self.endsAtMicros = endsAtMicros
    }

    /// True for coupon rules, false for automatic ones.
    public var needsCoupon: Bool { !couponCode.isEmpty }

    /// True when `nowMicros` is inside the rule's time window.
    public func isLive(atMicros nowMicros: Int64) -> Bool {
        (startsAtMicros == 0 || nowMicros >= startsAtMicros) && (endsAtMicros == 0 || nowMicros < endsAtMicros)
    }

    /// The minimum subtotal in `currency`, if the rule has one.
    public func minimumSubtotal(in currency: String) -> Money? {
        minimumSubtotals.first { $0.currency == currency }
    }

    /// The checks of a rule's definition, with fields named as in `PromotionRuleSpec` under `prefix`.
    func validate(into v: inout Validator, prefix: String = "spec.") {
        v.require(!PricingSupport.trimmed(label).isEmpty, prefix + "label", "must not be empty")
        v.require(label.count <= 200, prefix + "label", "at most 200 characters")
        switch effect {
        case .percentage(let ppm):
            v.require(ppm >= 1 && ppm <= 1_000_000, prefix + "percentage_ppm", "must be 1…1000000")
        case .fixedAmount(let amounts):
            v.require(!amounts.isEmpty, prefix + "fixed_amounts", "needs at least one amount")
            var seen = Set<String>()
            for (i, amount) in amounts.enumerated() {
                v.require(isCurrencyCode(amount.currency), prefix + "fixed_amounts[\(i)].currency", "not an ISO 4217 code")
                v.require(amount.minorUnits > 0, prefix + "fixed_amounts[\(i)].minor_units", "must be positive")
                v.require(seen.insert(amount.currency).inserted, prefix + "fixed_amounts[\(i)].currency", "duplicate currency")
            }
        case .freeShipping:
            break
        case .buyXGetY(let buy, let get, let ppm):
            v.require(buy >= 1 && buy <= 999, prefix + "buy_quantity", "must be 1…999")
            v.require(get >= 1 && get <= 999, prefix + "get_quantity", "must be 1…999")
            v.require(ppm >= 1 && ppm <= 1_000_000, prefix + "get_discount_ppm", "must be 1…1000000")
        }
        if !couponCode.isEmpty {
            v.require(isCouponCode(couponCode), prefix + "coupon_code", "1…64 of A-Z, 0-9, '-' and '_'")
        }
        var seen = Set<String>()
        for (i, minimum) in minimumSubtotals.enumerated() {
            v.require(isCurrencyCode(minimum.currency), prefix + "minimum_subtotals[\(i)].currency", "not an ISO 4217 code")
            v.require(minimum.minorUnits > 0, prefix + "minimum_subtotals[\(i)].minor_units", "must be positive")
            v.require(seen.insert(minimum.currency).inserted, prefix + "minimum_subtotals[\(i)].currency", "duplicate currency")
        }
        for (i, sku) in eligibleSkus.sorted().enumerated() {
            v.require(!sku.isEmpty, prefix + "eligible_skus[\(i)]", "must not be empty")
        }
        v.require(startsAtMicros >= 0, prefix + "starts_at", "must not be negative")
        v.require(endsAtMicros >= 0, prefix + "ends_at", "must not be negative")
        if startsAtMicros > 0 && endsAtMicros > 0 {
            v.require(endsAtMicros > startsAtMicros, prefix + "ends_at", "must be after starts_at")
        }
    }
}

/// Normalizes a coupon code as customers type it: trimmed, upper case.
public func normalizedCouponCode(_ code: String) -> String {
    PricingSupport.trimmed(code).uppercased()
}

/// Coupon codes Tote accepts (after ``normalizedCouponCode(_:)``): 1…64 of A-Z, 0-9, `-`, `_`.
public func isCouponCode(_ code: String) -> Bool {
    !code.isEmpty && code.utf8.count <= 64
        && code.utf8.allSatisfy { ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 95 }
}

// MARK: - Wire conversion

extension PromotionRule {
    /// From its wire form (`PromotionRule`). Unknown effects read as a 0 % percentage (which
    /// validation refuses and the evaluator never applies).
    public init(_ proto: Tote_V1_PromotionRule) {
        self.init(id: proto.ruleID, version: proto.version, spec: proto.spec)
    }

    /// From a rule's id, version and wire spec.
    public init(id: String, version: Int64, spec: Tote_V1_PromotionRuleSpec) {
        let effect: Effect
        switch spec.effect {
        case .percentage: effect = .percentage(ppm: Int64(spec.percentagePpm))
        case .fixedAmount: effect = .fixedAmount(spec.fixedAmounts.map(Money.init))
        case .freeShipping: effect = .freeShipping
        case .buyXGetY:
            effect = .buyXGetY(buy: Int64(spec.buyQuantity), get: Int64(spec.getQuantity), discountPPM: Int64(spec.getDiscountPpm))
        case .unspecified, .UNRECOGNIZED: effect = .percentage(ppm: 0)
        }
        self.init(
            id: id, version: version, label: spec.label, effect: effect, couponCode: spec.couponCode,
            minimumSubtotals: spec.minimumSubtotals.map(Money.init), eligibleSkus: Set(spec.eligibleSkus),
            stacking: spec.exclusive ? .exclusive : .stackable, priority: spec.priority,
            startsAtMicros: spec.hasStartsAt ? spec.startsAt.unixMicros : 0,
            endsAtMicros: spec.hasEndsAt ? spec.endsAt.unixMicros : 0)
    }

    /// The rule's definition on the wire (without id and version).
    public var spec: Tote_V1_PromotionRuleSpec {
        var s = Tote_V1_PromotionRuleSpec()
        s.label = label
        s.effect = effect.kind
        switch effect {
        case .percentage(let ppm): s.percentagePpm = UInt32(clamping: ppm)
        case .fixedAmount(let amounts): s.fixedAmounts = amounts.map(\.proto)
        case .freeShipping: break
        case .buyXGetY(let buy, let get, let ppm):
            s.buyQuantity = UInt32(clamping: buy)
            s.getQuantity = UInt32(clamping: get)
            s.getDiscountPpm = UInt32(clamping: ppm)
        }
        s.couponCode = couponCode
        s.minimumSubtotals = minimumSubtotals.map(\.proto)
        s.eligibleSkus = eligibleSkus.sorted()
        s.exclusive = stacking == .exclusive
        s.priority = priority
        if startsAtMicros != 0 { s.startsAt = PricingSupport.timestamp(startsAtMicros) }
        if endsAtMicros != 0 { s.endsAt = PricingSupport.timestamp(endsAtMicros) }
        return s
    }

    /// The rule on the wire.
    public var proto: Tote_V1_PromotionRule {
        var p = Tote_V1_PromotionRule()
        p.ruleID = id
        p.version = version
        p.spec = spec
        return p
    }
}

