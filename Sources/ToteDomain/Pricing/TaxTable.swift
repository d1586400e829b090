import ToteProto

/// Tax rates by destination, and whether prices in a currency include tax. Store configuration
/// the service passes in; pure data.
///
/// A destination pays the rates of its country (`DE`) plus those of its region (`US-NY`,
/// `CA-BC`), each a separate tax line (e.g. Canada's GST and a province's PST).
public struct TaxTable: Sendable, Equatable {
    /// One tax at one rate in one jurisdiction.
    public struct Rate: Sendable, Equatable, Hashable {
        /// `DE`, or `US-NY` for a region (ISO 3166-1 / 3166-2, upper case).
        public var jurisdiction: String
        /// Display name, e.g. `VAT`.
        public var name: String
        /// Parts per million: 19 % = 190000.
        public var ratePPM: Int64

        public init(jurisdiction: String, name: String, ratePPM: Int64) {
            self.jurisdiction = jurisdiction
            self.name = name
            self.ratePPM = ratePPM
        }
    }

    public var rates: [Rate]
    /// Currencies whose prices include tax (tax-inclusive); all others are tax-exclusive.
    public var taxInclusiveCurrencies: Set<String>
    /// Whether shipping is taxed like the goods (at the destination's rates).
    public var taxesShipping: Bool

    public init(rates: [Rate], taxInclusiveCurrencies: Set<String> = [], taxesShipping: Bool = true) {
        self.rates = rates
        self.taxInclusiveCurrencies = taxInclusiveCurrencies
        self.taxesShipping = taxesShipping
    }

    /// True when prices in `currency` include tax.
    public func isTaxInclusive(_ currency: String) -> Bool { taxInclusiveCurrencies.contains(currency) }

    /// The rates that apply at a destination: the country's, then the region's. `region` may be
    /// `NY` or `US-NY`; empty = country only.
    public func rates(country: String, region: String) -> [Rate] {
        let country = country.uppercased()
        var region = region.uppercased()
        if !region.isEmpty && !region.hasPrefix(country + "-") { region = country + "-" + region }
        return rates.filter { $0.jurisdiction == country } + (region.isEmpty ? [] : rates.filter { $0.jurisdiction == region })
    }
}

/// Where goods go, for tax: a country and optionally a region.
public struct TaxDestination: Sendable, Equatable, Hashable {
    /// ISO 3166-1 alpha-2.
    public var country: String
    /// A region code (`NY` or `US-NY`); empty = none.
    public var region: String

    public init(country: String, region: String = "") {
        self.country = country
        self.region = region
    }
}

/// One tax charged at one rate in one jurisdiction (Swift form of `tote.v1.TaxLine`).
public struct TaxLine: Sendable, Equatable {
    public var jurisdiction: String
    public var name: String
    public var ratePPM: Int64
    /// The net amount taxed (without tax, in both modes).
    public var taxableAmount: Money
    /// The tax, rounded half away from zero.
    public var amount: Money

    public var proto: Tote_V1_TaxLine {
        var p = Tote_V1_TaxLine()
        p.jurisdiction = jurisdiction
        p.name = name
        p.ratePpm = UInt32(clamping: ratePPM)
        p.taxableAmount = taxableAmount.proto
        p.amount = amount.proto
        return p
    }
}

/// The totals of a cart, checkout or order (Swift form of `tote.v1.Totals`), computed from the
/// promotion evaluator's result, the shipping price and the tax table.
///
/// Tax-exclusive: total = subtotal − discount + shipping + tax, tax = net × rate.
/// Tax-inclusive: total = subtotal − discount + shipping, and the tax contained is
/// gross × rate / (1 + Σ rates). Each tax is rounded once, half away from zero, on the whole
/// taxable amount; ``lineTaxes`` spreads it over the lines exactly.
public struct Totals: Sendable, Equatable {
    public var subtotal: Money
    /// Every promotion amount on lines (order-level shares included), not shipping.
    public var discountTotal: Money
    /// Shipping after shipping discounts.
    public var shippingTotal: Money
    public var shippingDiscount: Money
    /// Added (exclusive) or contained (inclusive).
    public var taxTotal: Money
    public var total: Money
    public var taxInclusive: Bool
    public var taxLines: [TaxLine]
    /// The tax of each line (same order as the lines); with ``shippingTax`` they add up to ``taxTotal``.
    public var lineTaxes: [Money]
    /// The tax on shipping.
    public var shippingTax: Money

    /// Computes the totals for `promotions` (an evaluation with shipping price `shipping`).
    /// Without a table or a destination there is no tax (an estimate before the address is known).
    public static func compute(
        _ promotions: PromotionEvaluator.Result, shipping: Money, taxTable: TaxTable?, destination: TaxDestination?
    ) throws(MoneyError) -> Totals {
        let currency = promotions.currency
        let shippingTotal = try shipping.subtracting(promotions.shippingDiscount)
        let taxInclusive = taxTable?.isTaxInclusive(currency) ?? false
        let rates = destination.flatMap { d in taxTable?.rates(country: d.country, region: d.region) } ?? []
        let taxesShipping = taxTable?.taxesShipping ?? true

        var weights = promotions.lines.map(\.total.minorUnits)
        if taxesShipping { weights.append(shippingTotal.minorUnits) }
        var base = Money.zero(currency)
        for weight in weights { base = try base.adding(Money(weight, currency)) }

        let rateSum = rates.reduce(Int64(0)) { $0 + $1.ratePPM }
        var taxTotal = Money.zero(currency)
        var amounts: [Money] = []
        for rate in rates {
            let amount = taxInclusive
                ? Money(try Money.divideRounded(base.minorUnits, times: rate.ratePPM, by: 1_000_000 + rateSum), currency)
                : try base.scaled(ppm: rate.ratePPM)
            amounts.append(amount)
            taxTotal = try taxTotal.adding(amount)
        }
        let net = taxInclusive ? try base.subtracting(taxTotal) : base
        let taxLines = zip(rates, amounts).map { rate, amount in
            TaxLine(jurisdiction: rate.jurisdiction, name: rate.name, ratePPM: rate.ratePPM, taxableAmount: net, amount: amount)
        }

        let shares = try taxTotal.allocated(proportionally: weights.map { max(0, $0) })
        let lineTaxes = Array(shares.prefix(promotions.lines.count))
        let shippingTax = taxesShipping ? shares[promotions.lines.count] : .zero(currency)

        var total = try promotions.subtotal.subtracting(promotions.discountTotal).adding(shippingTotal)
        if !taxInclusive { total = try total.adding(taxTotal) }
        return Totals(
            subtotal: promotions.subtotal, discountTotal: promotions.discountTotal, shippingTotal: shippingTotal,
            shippingDiscount: promotions.shippingDiscount, taxTotal: taxTotal, total: total, taxInclusive: taxInclusive,
            taxLines: taxLines, lineTaxes: lineTaxes, shippingTax: shippingTax)
    }

    /// On the wire.
    public var proto: Tote_V1_Totals {
        var p = Tote_V1_Totals()
        p.subtotal = subtotal.proto
        p.discountTotal = discountTotal.proto
        p.shippingTotal = shippingTotal.proto
        p.taxTotal = taxTotal.proto
        p.total = total.proto
        p.taxInclusive = taxInclusive
        p.taxLines = taxLines.map(\.proto)
        p.shippingDiscount = shippingDiscount.proto
        return p
    }
}
