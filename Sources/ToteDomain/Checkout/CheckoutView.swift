import ToteProto

extension CheckoutDecider {
    /// The wire view of a checkout (`CheckoutView`) at stream version `version`, priced with
    /// ``totals(_:taxTable:)`` (pass the same `priced` the service computed for the response).
    public static func proto(_ state: State, _ priced: Priced, version: Int64) -> Tote_V1_CheckoutView {
        var p = Tote_V1_CheckoutView()
        p.checkoutID = state.checkoutID
        p.cartID = state.cartID
        p.cartVersion = state.cartVersion
        p.customerID = state.customerID
        p.currency = state.currency
        p.state = state.step.proto
        p.lines = zip(state.lines, priced.promotions.lines).map(CartPricing.lineProto)
        p.orderPromotions = (priced.promotions.orderPromotions + priced.promotions.shippingPromotions).map(\.proto)
        if let address = state.shippingAddress { p.shippingAddress = address }
        if let address = state.billingAddress { p.billingAddress = address }
        p.shippingOptions = priced.shippingOptions.map { $0.option.proto(discountedPrice: $0.discountedPrice) }
        p.shippingOptionID = state.shippingOption?.optionID ?? ""
        if let method = state.paymentMethod { p.paymentMethod = method }
        p.totals = priced.totals.proto
        p.orderID = state.orderID
        p.expiresAt = PricingSupport.timestamp(state.expiresAtMicros)
        p.version = version
        p.createdAt = PricingSupport.timestamp(state.startedAtMicros)
        p.updatedAt = PricingSupport.timestamp(state.updatedAtMicros)
        return p
    }
}
