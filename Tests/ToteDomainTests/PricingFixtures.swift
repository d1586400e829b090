import Testing
import ToteProto
@testable import ToteDomain

/// Shared builders for the pricing, cart and checkout tests.
enum CommerceFixtures {
    static let t0: Int64 = 1_700_000_000_000_000

    static func context(_ now: Int64 = t0) -> CommandContext {
        CommandContext(actor: Principal(id: "cust-1", role: "storefront"), nowMicros: now)
    }

    static func eur(_ minor: Int64) -> Money { Money(minor, "EUR") }

    /// The refusal of `command`, or nil when it was accepted.
    static func refusal<D: Decider>(_ decider: D.Type, _ command: D.Command, _ state: D.State, now: Int64 = t0) -> DomainError? {
        do {
            _ = try D.decide(command, state: state, context: context(now))
            return nil
        } catch {
            return error
        }
    }

    /// Decides and folds: the events and the state after them.
    static func run<D: Decider>(_ decider: D.Type, _ command: D.Command, _ state: D.State, now: Int64 = t0) throws -> (events: [D.Event], state: D.State) {
        let events = try D.decide(command, state: state, context: context(now))
        return (events, D.fold(events, from: state))
    }

    static func line(_ sku: String, _ quantity: Int64, _ price: Int64, currency: String = "EUR") -> PromotionEvaluator.Line {
        .init(sku: sku, quantity: quantity, unitPrice: Money(price, currency))
    }

    static func evaluate(_ lines: [PromotionEvaluator.Line], _ rules: [PromotionRule], shipping: Int64 = 0, now: Int64 = t0) throws -> PromotionEvaluator.Result {
        try PromotionEvaluator.evaluate(lines: lines, rules: rules, shipping: eur(shipping), currency: "EUR", nowMicros: now)
    }

    static func percent(_ id: String, _ ppm: Int64, skus: Set<String> = [], priority: Int32 = 0, exclusive: Bool = false, coupon: String = "") -> PromotionRule {
        PromotionRule(id: id, label: "\(id) \(ppm / 10_000)% off", effect: .percentage(ppm: ppm), couponCode: coupon,
                      eligibleSkus: skus, stacking: exclusive ? .exclusive : .stackable, priority: priority)
    }

    static func fixed(_ id: String, _ minor: Int64, skus: Set<String> = [], priority: Int32 = 0, exclusive: Bool = false, coupon: String = "") -> PromotionRule {
        PromotionRule(id: id, label: "\(id) fixed", effect: .fixedAmount([eur(minor)]), couponCode: coupon,
                      eligibleSkus: skus, stacking: exclusive ? .exclusive : .stackable, priority: priority)
    }
}
