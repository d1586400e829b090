import Testing
import ToteProto
@testable import ToteDomain

private typealias F = CommerceFixtures

@Suite("Promotion evaluator")
struct PricingPromotionTests {
    @Test func percentageOnTheOrderIsRoundedOnceAndAllocatedExactly() throws {
        // 301 × 33.3333 % = 100.33 → 100, spread 100 : 200 : 1 → 33.22, 66.44, 0.33 → 33, 67, 0.
        let r = try F.evaluate([F.line("A", 1, 100), F.line("B", 1, 200), F.line("C", 1, 1)], [F.percent("p", 333_333)])
        #expect(r.lines.map(\.discount.minorUnits) == [33, 67, 0])
        #expect(r.discountTotal == F.eur(100))
        #expect(r.orderPromotions.map(\.amount) == [F.eur(100)])
        #expect(r.lines[2].promotions.isEmpty)  // a zero share is not recorded
        #expect(r.lines.map(\.total.minorUnits) == [67, 133, 1])
    }

    @Test func percentageOnEligibleLinesRoundsEachLineHalfAwayFromZero() throws {
        // 15 % of 333 = 49.95 → 50; 15 % of 1 = 0.15 → 0; C is not eligible.
        let r = try F.evaluate([F.line("A", 1, 333), F.line("B", 1, 1), F.line("C", 1, 500)], [F.percent("p", 150_000, skus: ["A", "B"])])
        #expect(r.lines.map(\.discount.minorUnits) == [50, 0, 0])
        #expect(r.orderPromotions.isEmpty)
        // 12.5 % of 4 = 0.5 → 1 (half away from zero)
        let half = try F.evaluate([F.line("A", 1, 4)], [F.percent("p", 125_000, skus: ["A"])])
        #expect(half.discountTotal == F.eur(1))
    }

    @Test func hundredPercentOffLeavesNothingButShipping() throws {
        let r = try F.evaluate([F.line("A", 3, 999), F.line("B", 1, 1)], [F.percent("all", 1_000_000)], shipping: 495)
        #expect(r.discountTotal == r.subtotal)
        #expect(r.lines.allSatisfy { $0.total.isZero })
        let totals = try Totals.compute(r, shipping: F.eur(495), taxTable: nil, destination: nil)
        #expect(totals.total == F.eur(495))
    }

    @Test func fixedAmountLargerThanTheLineIsCapped() throws {
        let r = try F.evaluate([F.line("A", 1, 1000)], [F.fixed("f", 5000, skus: ["A"])])
        #expect(r.lines[0].discount == F.eur(1000))
        #expect(r.lines[0].total.isZero)
        #expect(r.outcomes["f"] == .applied(F.eur(1000)))
    }

    @Test func fixedAmountOnTheOrderIsSpreadExactly() throws {
        // 1000 over 1 : 1 : 1 → 334, 333, 333
        let r = try F.evaluate([F.line("A", 1, 500), F.line("B", 1, 500), F.line("C", 1, 500)], [F.fixed("f", 1000)])
        #expect(r.lines.map(\.discount.minorUnits) == [334, 333, 333])
        #expect(r.orderPromotions.first?.amount == F.eur(1000))
    }

    @Test func twoPromotionsNeverMakeATotalNegative() throws {
        let cases: [[PromotionRule]] = [
            [F.percent("a", 1_000_000), F.fixed("b", 500)],
            [F.fixed("a", 900, priority: 2), F.fixed("b", 900, priority: 1)],
            [F.fixed("a", 10_000), F.percent("b", 1_000_000)],
            [F.fixed("a", 700, skus: ["A"]), F.fixed("b", 700)],
            [F.percent("a", 600_000), F.percent("b", 600_000)],
        ]
        for rules in cases {
            let r = try F.evaluate([F.line("A", 1, 1000), F.line("B", 2, 3)], rules, shipping: 100)
            #expect(r.lines.allSatisfy { !$0.total.isNegative })
            #expect(r.discountTotal <= r.subtotal)
            let totals = try Totals.compute(r, shipping: F.eur(100), taxTable: nil, destination: nil)
            #expect(!totals.total.isNegative)
            #expect(totals.total == F.eur(r.subtotal.minorUnits - r.discountTotal.minorUnits + 100))
        }
        // Two fixed amounts: the second only gets what the first left.
        let r = try F.evaluate([F.line("A", 1, 1000)], [F.fixed("a", 900, priority: 2), F.fixed("b", 900, priority: 1)])
        #expect(r.lines[0].promotions.map(\.amount.minorUnits) == [900, 100])
        #expect(r.lines[0].total.isZero)
    }

    @Test func randomStacksKeepEveryInvariant() throws {
        var seed: UInt64 = 42
        func next(_ n: Int64) -> Int64 {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Int64((seed >> 33) % UInt64(n))
        }
        for _ in 0..<300 {
            let lines = (0..<(1 + Int(next(4)))).map { F.line("S\($0)", 1 + next(7), next(5000)) }
            let rules: [PromotionRule] = (0..<(1 + Int(next(4)))).map { i in
                let effect: PromotionRule.Effect = switch next(4) {
                case 0: .percentage(ppm: 1 + next(1_000_000))
                case 1: .fixedAmount([F.eur(1 + next(20_000))])
                case 2: .freeShipping
                default: .buyXGetY(buy: 1 + next(3), get: 1 + next(2), discountPPM: 1 + next(1_000_000))
                }
                return PromotionRule(id: "r\(i)", label: "r\(i)", effect: effect,
                                     eligibleSkus: next(2) == 0 ? [] : ["S0"], stacking: next(3) == 0 ? .exclusive : .stackable,
                                     priority: Int32(next(3)))
            }
            let shipping = next(1000)
            let r = try F.evaluate(lines, rules, shipping: shipping)
            for l in r.lines {
                #expect(!l.total.isNegative)
                #expect(l.discount.minorUnits == l.promotions.reduce(0) { $0 + $1.amount.minorUnits })
                #expect(l.promotions.allSatisfy { $0.amount.minorUnits > 0 })
            }
            #expect(r.shippingDiscount.minorUnits <= shipping && !r.shippingDiscount.isNegative)
            // Order-level amounts equal the sum of their line shares.
            for p in r.orderPromotions {
                let shares = r.lines.flatMap(\.promotions).filter { $0.ruleID == p.ruleID }.reduce(0) { $0 + $1.amount.minorUnits }
                #expect(shares == p.amount.minorUnits)
            }
            // At most one exclusive rule applies, and then alone.
            let applied = rules.filter { r.outcomes[$0.id]?.isApplied == true }
            if applied.contains(where: { $0.stacking == .exclusive }) { #expect(applied.count == 1) }
            #expect(r.outcomes.count == rules.count)
        }
    }

    @Test(arguments: [(Int64(3), Int64(1)), (5, 1), (6, 2), (7, 2), (1, 0), (2, 0)])
    func buyTwoGetOneWithOddQuantities(quantity: Int64, free: Int64) throws {
        let rule = PromotionRule(id: "b2g1", label: "3 for 2", effect: .buyXGetY(buy: 2, get: 1, discountPPM: 1_000_000), eligibleSkus: ["A"])
        let r = try F.evaluate([F.line("A", quantity, 250), F.line("Z", 4, 100)], [rule])
        #expect(r.lines[0].discount == F.eur(free * 250))
        #expect(r.lines[1].discount.isZero)
        if free == 0 { #expect(r.outcomes["b2g1"] == .notApplied(reason: "needs 3 eligible items")) }
    }

    @Test func buyXGetYDiscountsTheCheapestUnitsAcrossLines() throws {
        let rule = PromotionRule(id: "b2g1", label: "3 for 2", effect: .buyXGetY(buy: 2, get: 1, discountPPM: 1_000_000))
        let r = try F.evaluate([F.line("A", 2, 900), F.line("B", 2, 300), F.line("C", 2, 500)], [rule])
        // 6 units → 2 free: the two cheapest (B).
        #expect(r.lines.map(\.discount.minorUnits) == [0, 600, 0])
        // Half off the "get" unit on an odd price: 50 % of 333 = 166.5 → 167.
        let half = PromotionRule(id: "h", label: "second half price", effect: .buyXGetY(buy: 1, get: 1, discountPPM: 500_000))
        let h = try F.evaluate([F.line("A", 2, 333)], [half])
        #expect(h.discountTotal == F.eur(167))
    }

    @Test func exclusiveWinsAloneOnlyWhenLarger() throws {
        let lines = [F.line("A", 1, 1000)]
        // 10 % + 10 % stacked = 190; exclusive 30 % = 300 → exclusive wins alone.
        let big = try F.evaluate(lines, [F.percent("s1", 100_000), F.percent("s2", 100_000), F.percent("x", 300_000, exclusive: true)])
        #expect(big.discountTotal == F.eur(300))
        #expect(big.outcomes["x"] == .applied(F.eur(300)))
        #expect(big.outcomes["s1"]?.isApplied == false)
        #expect(big.lines[0].promotions.map(\.ruleID) == ["x"])
        // Exclusive 15 % = 150 < 190 → the stackable ones apply.
        let small = try F.evaluate(lines, [F.percent("s1", 100_000), F.percent("s2", 100_000), F.percent("x", 150_000, exclusive: true)])
        #expect(small.discountTotal == F.eur(190))
        #expect(small.outcomes["x"]?.isApplied == false)
        // A tie goes to the stackable rules.
        let tie = try F.evaluate(lines, [F.fixed("s", 200), F.fixed("x", 200, exclusive: true)])
        #expect(tie.outcomes["s"] == .applied(F.eur(200)))
        #expect(tie.outcomes["x"]?.isApplied == false)
        // Two exclusive rules: the larger one.
        let two = try F.evaluate(lines, [F.fixed("x1", 200, exclusive: true), F.fixed("x2", 250, exclusive: true)])
        #expect(two.outcomes["x2"] == .applied(F.eur(250)))
    }

    @Test func priorityOrdersTheStack() throws {
        let lines = [F.line("A", 1, 1000)]
        // fixed 100 first, then 50 % of 900 = 450
        let a = try F.evaluate(lines, [F.fixed("f", 100, priority: 2), F.percent("p", 500_000, priority: 1)])
        #expect(a.discountTotal == F.eur(550))
        // 50 % first (500), then fixed 100
        let b = try F.evaluate(lines, [F.fixed("f", 100, priority: 1), F.percent("p", 500_000, priority: 2)])
        #expect(b.discountTotal == F.eur(600))
        #expect(b.lines[0].promotions.map(\.ruleID) == ["p", "f"])
    }

    @Test func freeShippingTakesTheShippingOnce() throws {
        let free = PromotionRule(id: "fs", label: "Free shipping", effect: .freeShipping, couponCode: "SHIP")
        let again = PromotionRule(id: "fs2", label: "Free shipping 2", effect: .freeShipping)
        let r = try F.evaluate([F.line("A", 1, 1000)], [free, again], shipping: 495)
        #expect(r.shippingDiscount == F.eur(495))
        #expect(r.shippingPromotions.map(\.ruleID) == ["fs"])
        #expect(r.shippingPromotions.first?.couponCode == "SHIP")
        #expect(r.outcomes["fs2"] == .applied(F.eur(0)))
        #expect(r.discountTotal.isZero)
        // Without shipping it still "applies", with nothing to take.
        let none = try F.evaluate([F.line("A", 1, 1000)], [free])
        #expect(none.outcomes["fs"] == .applied(F.eur(0)))
        #expect(none.shippingPromotions.isEmpty)
    }

    @Test func conditionsThatAreNotMetExplainWhy() throws {
        var minimum = F.percent("m", 100_000)
        minimum.minimumSubtotals = [F.eur(5000), Money(5000, "JPY")]
        var later = F.percent("later", 100_000)
        later.startsAtMicros = F.t0 + 1
        var over = F.percent("over", 100_000)
        over.endsAtMicros = F.t0
        let usd = PromotionRule(id: "usd", label: "5 USD", effect: .fixedAmount([Money(500, "USD")]))
        let sku = F.percent("sku", 100_000, skus: ["Q"])
        let r = try F.evaluate([F.line("A", 1, 4999)], [minimum, later, over, usd, sku])
        #expect(r.outcomes["m"] == .notApplied(reason: "minimum spend EUR 50.00"))
        #expect(r.outcomes["later"] == .notApplied(reason: "not started yet"))
        #expect(r.outcomes["over"] == .notApplied(reason: "expired"))
        #expect(r.outcomes["usd"] == .notApplied(reason: "not available in EUR"))
        #expect(r.outcomes["sku"] == .notApplied(reason: "no eligible items in the cart"))
        #expect(r.discountTotal.isZero)
        // At exactly the minimum it applies.
        let ok = try F.evaluate([F.line("A", 1, 5000)], [minimum])
        #expect(ok.discountTotal == F.eur(500))
    }

    @Test func overflowAndCurrencyMismatchThrow() {
        #expect(throws: MoneyError.overflow) {
            try F.evaluate([F.line("A", 999, Int64.max / 10)], [])
        }
        #expect(throws: MoneyError.currencyMismatch("EUR", "USD")) {
            try F.evaluate([F.line("A", 1, 1, currency: "USD")], [])
        }
    }

    @Test func ruleRoundTripsThroughItsWireForm() {
        let rules = [
            PromotionRule(id: "a", version: 3, label: "A", effect: .percentage(ppm: 125_000), couponCode: "SAVE",
                          minimumSubtotals: [F.eur(100)], eligibleSkus: ["X", "Y"], stacking: .exclusive, priority: -2,
                          startsAtMicros: 10, endsAtMicros: 20),
            PromotionRule(id: "b", label: "B", effect: .fixedAmount([F.eur(5), Money(7, "USD")])),
            PromotionRule(id: "c", label: "C", effect: .freeShipping),
            PromotionRule(id: "d", label: "D", effect: .buyXGetY(buy: 3, get: 2, discountPPM: 500_000)),
        ]
        for rule in rules { #expect(PromotionRule(rule.proto) == rule) }
        #expect(normalizedCouponCode("  save10 ") == "SAVE10")
        #expect(isCouponCode("SAVE-10_X") && !isCouponCode("SAVE 10") && !isCouponCode(""))
    }
}

@Suite("Tax and totals")
struct PricingTaxTests {
    static let table = TaxTable(
        rates: [
            .init(jurisdiction: "DE", name: "VAT", ratePPM: 190_000),
            .init(jurisdiction: "CA", name: "GST", ratePPM: 50_000),
            .init(jurisdiction: "CA-BC", name: "PST", ratePPM: 70_000),
            .init(jurisdiction: "US-NY", name: "Sales tax", ratePPM: 88_750),
            .init(jurisdiction: "XX", name: "Half", ratePPM: 50_000),
        ],
        taxInclusiveCurrencies: ["EUR"])

    private func totals(_ lines: [PromotionEvaluator.Line], currency: String, shipping: Int64 = 0, rules: [PromotionRule] = [],
                        to destination: TaxDestination?, table: TaxTable = table) throws -> Totals {
        let r = try PromotionEvaluator.evaluate(lines: lines, rules: rules, shipping: Money(shipping, currency), currency: currency, nowMicros: F.t0)
        return try Totals.compute(r, shipping: Money(shipping, currency), taxTable: table, destination: destination)
    }

    @Test func taxExclusiveAddsTaxRoundedHalfAwayFromZero() throws {
        // 1005 × 19 % = 190.95 → 191
        let t = try totals([F.line("A", 1, 1005, currency: "USD")], currency: "USD", to: .init(country: "DE"))
        #expect(!t.taxInclusive)
        #expect(t.taxTotal == Money(191, "USD"))
        #expect(t.total == Money(1196, "USD"))
        #expect(t.taxLines.first?.taxableAmount == Money(1005, "USD"))
        // 50 × 5 % = 2.5 → 3
        let half = try totals([F.line("A", 1, 50, currency: "USD")], currency: "USD", to: .init(country: "XX"))
        #expect(half.taxTotal == Money(3, "USD"))
    }

    @Test func taxInclusiveExtractsTheContainedTax() throws {
        // 1190 × 0.19 / 1.19 = 190 exactly; 1000 → 159.66 → 160
        let exact = try totals([F.line("A", 1, 1190)], currency: "EUR", to: .init(country: "DE"))
        #expect(exact.taxInclusive)
        #expect(exact.taxTotal == F.eur(190))
        #expect(exact.total == F.eur(1190))
        #expect(exact.taxLines.first?.taxableAmount == F.eur(1000))
        let rounded = try totals([F.line("A", 1, 1000)], currency: "EUR", to: .init(country: "DE"))
        #expect(rounded.taxTotal == F.eur(160))
        #expect(rounded.total == F.eur(1000))
        // 105 × 0.05 / 1.05 = 5 exactly; 21 × 0.05/1.05 = 1; 31.5 → half case: 63 × 0.05 / 1.05 = 3
        let half = try totals([F.line("A", 1, 21)], currency: "EUR", to: .init(country: "XX"))
        #expect(half.taxTotal == F.eur(1))
    }

    @Test func regionsAddTheirOwnTaxLines() throws {
        let t = try totals([F.line("A", 1, 1000, currency: "CAD")], currency: "CAD", to: .init(country: "CA", region: "BC"))
        #expect(t.taxLines.map(\.jurisdiction) == ["CA", "CA-BC"])
        #expect(t.taxLines.map(\.amount.minorUnits) == [50, 70])
        #expect(t.total == Money(1120, "CAD"))
        let ny = try totals([F.line("A", 1, 1000, currency: "USD")], currency: "USD", to: .init(country: "US", region: "US-NY"))
        #expect(ny.taxTotal == Money(89, "USD"))  // 88.75 → 89
        let noTax = try totals([F.line("A", 1, 1000, currency: "USD")], currency: "USD", to: .init(country: "US", region: "OR"))
        #expect(noTax.taxLines.isEmpty && noTax.taxTotal.isZero)
        // Inclusive with two rates: each extracted with the combined rate.
        let table = TaxTable(rates: PricingTaxTests.table.rates, taxInclusiveCurrencies: ["CAD"])
        let inc = try totals([F.line("A", 1, 1120, currency: "CAD")], currency: "CAD", to: .init(country: "CA", region: "BC"), table: table)
        #expect(inc.taxLines.map(\.amount.minorUnits) == [50, 70])
    }

    @Test func discountsShippingAndLineTaxesAddUp() throws {
        let rules = [F.percent("p", 100_000)]
        let t = try totals([F.line("A", 3, 333, currency: "USD"), F.line("B", 1, 1, currency: "USD")], currency: "USD", shipping: 499,
                           rules: rules, to: .init(country: "DE"))
        // subtotal 1000, 10 % → 100, shipping 499 taxed too: (900 + 499) × 19 % = 265.81 → 266
        #expect(t.subtotal == Money(1000, "USD"))
        #expect(t.discountTotal == Money(100, "USD"))
        #expect(t.taxTotal == Money(266, "USD"))
        #expect(t.total == Money(900 + 499 + 266, "USD"))
        #expect(t.lineTaxes.reduce(0) { $0 + $1.minorUnits } + t.shippingTax.minorUnits == 266)
        // Untaxed shipping.
        let table = TaxTable(rates: PricingTaxTests.table.rates, taxesShipping: false)
        let u = try totals([F.line("A", 1, 1000, currency: "USD")], currency: "USD", shipping: 499, to: .init(country: "DE"), table: table)
        #expect(u.taxTotal == Money(190, "USD"))
        #expect(u.shippingTax.isZero)
        #expect(u.proto.total.minorUnits == 1000 + 499 + 190)
    }

    @Test func noDestinationMeansNoTaxYet() throws {
        let t = try totals([F.line("A", 1, 1000)], currency: "EUR", to: nil)
        #expect(t.taxLines.isEmpty && t.taxTotal.isZero && t.total == F.eur(1000))
    }

    @Test func shippingRatesFilterByCountryAndCurrency() {
        let rates = ShippingRates([
            .init(optionID: "dhl", carrier: "DHL", label: "Standard", countries: ["DE", "NL"], prices: [F.eur(495)], minDeliveryDays: 2, maxDeliveryDays: 4),
            .init(optionID: "world", carrier: "UPS", label: "World", countries: [], prices: [F.eur(1995), Money(2500, "USD")]),
        ])
        #expect(rates.options(country: "de", currency: "EUR").map(\.optionID) == ["dhl", "world"])
        #expect(rates.options(country: "US", currency: "USD").map(\.price) == [Money(2500, "USD")])
        #expect(rates.options(country: "US", currency: "GBP").isEmpty)
        let quote = rates.options(country: "DE", currency: "EUR")[0]
        #expect(ShippingQuote(quote.proto()) == quote)
    }
}

@Suite("Promotion decider")
struct PricingPromotionDeciderTests {
    private let rule = PromotionRule(id: "promo-1", label: "10% off", effect: .percentage(ppm: 100_000), couponCode: "save10")

    private func defined() throws -> PromotionDecider.State {
        try F.run(PromotionDecider.self, .define(rule), PromotionDecider.initialState).state
    }

    @Test func defineRecordsVersionOneAndANormalizedCode() throws {
        let (events, state) = try F.run(PromotionDecider.self, .define(rule), PromotionDecider.initialState)
        #expect(events.map(\.typeName) == ["PromotionDefined"])
        #expect(state.status == .active)
        #expect(state.rule?.version == 1)
        #expect(state.rule?.couponCode == "SAVE10")
        // A repeat is a no-op; another definition under the same id is refused.
        #expect(try PromotionDecider.decide(.define(rule), state: state, context: F.context()).isEmpty)
        var other = rule
        other.label = "other"
        #expect(F.refusal(PromotionDecider.self, .define(other), state)?.code == .alreadyExists)
    }

    @Test func defineValidatesEveryField() {
        let bad = PromotionRule(id: "", label: " ", effect: .percentage(ppm: 1_000_001), couponCode: "no spaces",
                                minimumSubtotals: [Money(-1, "eur")], startsAtMicros: 20, endsAtMicros: 10)
        let error = F.refusal(PromotionDecider.self, .define(bad), PromotionDecider.initialState)
        #expect(error?.code == .invalidArgument)
        #expect(Set(error?.violations.map(\.field) ?? []) == [
            "promotion_id", "spec.label", "spec.percentage_ppm", "spec.coupon_code",
            "spec.minimum_subtotals[0].currency", "spec.minimum_subtotals[0].minor_units", "spec.ends_at",
        ])
        let fixed = PromotionRule(id: "f", label: "f", effect: .fixedAmount([]))
        #expect(F.refusal(PromotionDecider.self, .define(fixed), PromotionDecider.initialState)?.violations.map(\.field) == ["spec.fixed_amounts"])
        let bxgy = PromotionRule(id: "b", label: "b", effect: .buyXGetY(buy: 0, get: 0, discountPPM: 0))
        #expect(F.refusal(PromotionDecider.self, .define(bxgy), PromotionDecider.initialState)?.violations.count == 3)
    }

    @Test func updateBumpsTheVersion() throws {
        var changed = rule
        changed.effect = .percentage(ppm: 200_000)
        let (events, state) = try F.run(PromotionDecider.self, .update(changed), try defined())
        #expect(events.map(\.typeName) == ["PromotionUpdated"])
        #expect(state.rule?.version == 2)
        #expect(state.rule?.effect == .percentage(ppm: 200_000))
        #expect(try PromotionDecider.decide(.update(changed), state: state, context: F.context()).isEmpty)
        var code = changed
        code.couponCode = "OTHER"
        #expect(F.refusal(PromotionDecider.self, .update(code), state)?.violations.map(\.field) == ["spec.coupon_code"])
        var id = changed
        id.id = "promo-2"
        #expect(F.refusal(PromotionDecider.self, .update(id), state)?.violations.map(\.field) == ["promotion_id"])
    }

    @Test func eachCommandInEachState() throws {
        let active = try defined()
        let inactive = try F.run(PromotionDecider.self, .deactivate(reason: "over"), active).state
        #expect(inactive.status == .inactive && inactive.deactivationReason == "over")
        let none = PromotionDecider.initialState
        #expect(F.refusal(PromotionDecider.self, .update(rule), none)?.code == .notFound)
        #expect(F.refusal(PromotionDecider.self, .deactivate(reason: "x"), none)?.code == .notFound)
        #expect(F.refusal(PromotionDecider.self, .define(rule), inactive)?.code == .alreadyExists)
        let update = F.refusal(PromotionDecider.self, .update(rule), inactive)
        #expect(update?.code == .failedPrecondition && update?.currentState == "PROMOTION_STATUS_INACTIVE")
        #expect(try PromotionDecider.decide(.deactivate(reason: "again"), state: inactive, context: F.context()).isEmpty)
        #expect(F.refusal(PromotionDecider.self, .deactivate(reason: " "), active)?.violations.map(\.field) == ["reason"])
    }

    @Test func assignCouponCodeGivesAnAutomaticRuleItsOnlyCode() throws {
        var automatic = rule
        automatic.couponCode = ""
        let active = try F.run(PromotionDecider.self, .define(automatic), PromotionDecider.initialState).state
        let (events, state) = try F.run(PromotionDecider.self, .assignCouponCode(" welcome5 "), active)
        #expect(events.map(\.typeName) == ["PromotionUpdated"])
        #expect(state.rule?.couponCode == "WELCOME5" && state.rule?.version == 2)
        // The same code again is a no-op; another code, a malformed code or no rule is refused.
        #expect(try PromotionDecider.decide(.assignCouponCode("WELCOME5"), state: state, context: F.context()).isEmpty)
        let other = F.refusal(PromotionDecider.self, .assignCouponCode("OTHER"), state)
        #expect(other?.code == .failedPrecondition && other?.message.contains("WELCOME5") == true)
        #expect(F.refusal(PromotionDecider.self, .assignCouponCode(""), active)?.violations.map(\.field) == ["code"])
        #expect(F.refusal(PromotionDecider.self, .assignCouponCode("A B"), active)?.violations.map(\.field) == ["code"])
        #expect(F.refusal(PromotionDecider.self, .assignCouponCode("X"), PromotionDecider.initialState)?.code == .notFound)
        let ended = try F.run(PromotionDecider.self, .deactivate(reason: "over"), active).state
        #expect(F.refusal(PromotionDecider.self, .assignCouponCode("LATE"), ended)?.currentState == "PROMOTION_STATUS_INACTIVE")
    }

    @Test func couponCodesAreClaimedOnce() throws {
        let (events, state) = try F.run(CouponCodeClaimDecider.self, .claim(code: "save10", promotionID: "p1"), CouponCodeClaimDecider.initialState)
        #expect(events.map(\.typeName) == ["CouponCodeClaimed"])
        #expect(state.code == "SAVE10" && state.promotionID == "p1")
        #expect(try CouponCodeClaimDecider.decide(.claim(code: "SAVE10", promotionID: "p1"), state: state, context: F.context()).isEmpty)
        #expect(F.refusal(CouponCodeClaimDecider.self, .claim(code: "SAVE10", promotionID: "p2"), state)?.code == .alreadyExists)
        #expect(F.refusal(CouponCodeClaimDecider.self, .claim(code: "", promotionID: ""), state)?.violations.count == 2)
        #expect(StreamName.couponClaim(" save10") == "coupon-SAVE10")
        #expect(StreamName.promotion("p1") == "promotion-p1")
    }
}
