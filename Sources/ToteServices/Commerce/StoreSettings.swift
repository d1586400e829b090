import ToteDomain

/// The merchant's configuration the command services need besides the event log: taxes,
/// shipping rates, stock locations, lifetimes and payment webhook secrets. ``demo`` is the
/// configuration of `tote serve` / `tote dev` and of the tests.
public struct StoreSettings: Sendable {
    public var taxTable: TaxTable
    public var shippingRates: ShippingRates
    /// Stock locations an order line may be reserved at, in order of preference.
    public var locations: [String]
    /// How long a checkout stays open.
    public var checkoutLifetimeMicros: Int64
    /// How long an order's stock stays reserved while it waits for payment.
    public var reservationTTLMicros: Int64
    /// Secret of each payment provider's webhook signatures, by provider name.
    public var webhookSecrets: [String: String]
    /// How far a webhook's signed timestamp may be from now, in seconds.
    public var webhookToleranceSeconds: Int64

    public init(taxTable: TaxTable, shippingRates: ShippingRates, locations: [String], checkoutLifetimeMicros: Int64, reservationTTLMicros: Int64, webhookSecrets: [String: String], webhookToleranceSeconds: Int64 = 300) {
        self.taxTable = taxTable
        self.shippingRates = shippingRates
        self.locations = locations
        self.checkoutLifetimeMicros = checkoutLifetimeMicros
        self.reservationTTLMicros = reservationTTLMicros
        self.webhookSecrets = webhookSecrets
        self.webhookToleranceSeconds = webhookToleranceSeconds
    }

    /// A small European and US store: prices include VAT in EUR and GBP and exclude sales tax in
    /// USD; two carriers; stock at `main` then `overflow`; 30-minute checkouts, 15-minute
    /// reservations; the simulated gateway's development secret.
    public static let demo = StoreSettings(
        taxTable: TaxTable(
            rates: [
                .init(jurisdiction: "DE", name: "USt", ratePPM: 190_000),
                .init(jurisdiction: "FR", name: "TVA", ratePPM: 200_000),
                .init(jurisdiction: "NL", name: "BTW", ratePPM: 210_000),
                .init(jurisdiction: "GB", name: "VAT", ratePPM: 200_000),
                .init(jurisdiction: "US-NY", name: "NY sales tax", ratePPM: 88_750),
                .init(jurisdiction: "US-CA", name: "CA sales tax", ratePPM: 72_500),
            ],
            taxInclusiveCurrencies: ["EUR", "GBP"]
        ),
        shippingRates: ShippingRates([
            .init(optionID: "standard", carrier: "Post", label: "Standard (3–5 days)", countries: [], prices: [Money(495, "EUR"), Money(595, "USD"), Money(450, "GBP")], minDeliveryDays: 3, maxDeliveryDays: 5),
            .init(optionID: "express", carrier: "DHL", label: "Express (next day)", countries: ["DE", "FR", "NL", "GB", "US"], prices: [Money(1490, "EUR"), Money(1990, "USD"), Money(1290, "GBP")], minDeliveryDays: 1, maxDeliveryDays: 1),
        ]),
        locations: ["main", "overflow"],
        checkoutLifetimeMicros: 30 * 60 * 1_000_000,
        reservationTTLMicros: 15 * 60 * 1_000_000,
        webhookSecrets: ["simulated": "whsec_tote_development_only"]
    )
}
