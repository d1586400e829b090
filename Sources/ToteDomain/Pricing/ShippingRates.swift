import ToteProto

/// The shipping options a store offers: per destination country, a price per currency and the
/// delivery time. Store configuration the service passes in; pure data.
public struct ShippingRates: Sendable, Equatable {
    /// One way to ship.
    public struct Rate: Sendable, Equatable {
        /// e.g. `dhl-standard`.
        public var optionID: String
        public var carrier: String
        public var label: String
        /// ISO 3166-1 countries it ships to; empty = everywhere.
        public var countries: Set<String>
        /// Its price in each currency it is offered in.
        public var prices: [Money]
        public var minDeliveryDays: Int
        public var maxDeliveryDays: Int

        public init(optionID: String, carrier: String, label: String, countries: Set<String>, prices: [Money], minDeliveryDays: Int = 0, maxDeliveryDays: Int = 0) {
            self.optionID = optionID
            self.carrier = carrier
            self.label = label
            self.countries = countries
            self.prices = prices
            self.minDeliveryDays = minDeliveryDays
            self.maxDeliveryDays = maxDeliveryDays
        }
    }

    public var rates: [Rate]

    public init(_ rates: [Rate]) { self.rates = rates }

    /// The options for a destination country in a currency, in configuration order.
    public func options(country: String, currency: String) -> [ShippingQuote] {
        let country = country.uppercased()
        return rates.compactMap { rate in
            guard rate.countries.isEmpty || rate.countries.contains(country),
                  let price = rate.prices.first(where: { $0.currency == currency }) else { return nil }
            return ShippingQuote(
                optionID: rate.optionID, carrier: rate.carrier, label: rate.label, price: price,
                minDeliveryDays: rate.minDeliveryDays, maxDeliveryDays: rate.maxDeliveryDays)
        }
    }
}

/// One shipping option offered for one destination, with its price (before shipping promotions).
public struct ShippingQuote: Sendable, Equatable, Hashable {
    public var optionID: String
    public var carrier: String
    public var label: String
    public var price: Money
    public var minDeliveryDays: Int
    public var maxDeliveryDays: Int

    public init(optionID: String, carrier: String, label: String, price: Money, minDeliveryDays: Int = 0, maxDeliveryDays: Int = 0) {
        self.optionID = optionID
        self.carrier = carrier
        self.label = label
        self.price = price
        self.minDeliveryDays = minDeliveryDays
        self.maxDeliveryDays = maxDeliveryDays
    }

    public init(_ proto: Tote_V1_ShippingOption) {
        self.init(
            optionID: proto.optionID, carrier: proto.carrier, label: proto.label, price: Money(proto.price),
            minDeliveryDays: Int(proto.minDeliveryDays), maxDeliveryDays: Int(proto.maxDeliveryDays))
    }

    /// On the wire, with the price after shipping promotions (`discountedPrice`, default: the price).
    public func proto(discountedPrice: Money? = nil) -> Tote_V1_ShippingOption {
        var p = Tote_V1_ShippingOption()
        p.optionID = optionID
        p.carrier = carrier
        p.label = label
        p.price = price.proto
        p.discountedPrice = (discountedPrice ?? price).proto
        p.minDeliveryDays = UInt32(clamping: minDeliveryDays)
        p.maxDeliveryDays = UInt32(clamping: maxDeliveryDays)
        return p
    }
}
