import ToteProto

extension Tote_V1_CheckoutEvent: DomainEvent {
    public var typeName: String {
        switch event {
        case .checkoutStarted: "CheckoutStarted"
        case .checkoutShippingAddressSet: "CheckoutShippingAddressSet"
        case .checkoutBillingAddressSet: "CheckoutBillingAddressSet"
        case .checkoutShippingOptionChosen: "CheckoutShippingOptionChosen"
        case .checkoutPaymentMethodChosen: "CheckoutPaymentMethodChosen"
        case .checkoutCompleted: "CheckoutCompleted"
        case .checkoutExpired: "CheckoutExpired"
        case .checkoutSuperseded: "CheckoutSuperseded"
        case nil: "CheckoutEvent"
        }
    }
}

/// A resumable checkout of one cart version (stream `checkout-<id>`): shipping address →
/// shipping option → payment method → completed (the order is placed), any step redoable until
/// then; or expired / superseded. It snapshots the cart's lines and promotion rules when it
/// starts; ``totals(_:taxTable:)`` prices the snapshot at every step, and `Complete` records the
/// final prices, promotions and tax by destination for the order.
public enum CheckoutDecider: Decider {
    /// Where a checkout is (wire: `CheckoutState`); the open states name what is needed next.
    public enum Step: String, Sendable, Equatable {
        case unspecified = "CHECKOUT_STATE_UNSPECIFIED"
        case needsShippingAddress = "CHECKOUT_STATE_NEEDS_SHIPPING_ADDRESS"
        case needsShippingOption = "CHECKOUT_STATE_NEEDS_SHIPPING_OPTION"
        case needsPaymentMethod = "CHECKOUT_STATE_NEEDS_PAYMENT_METHOD"
        case ready = "CHECKOUT_STATE_READY"
        case completed = "CHECKOUT_STATE_COMPLETED"
        case expired = "CHECKOUT_STATE_EXPIRED"
        case superseded = "CHECKOUT_STATE_SUPERSEDED"

        /// The wire enum.
        public var proto: Tote_V1_CheckoutState {
            switch self {
            case .unspecified: .unspecified
            case .needsShippingAddress: .needsShippingAddress
            case .needsShippingOption: .needsShippingOption
            case .needsPaymentMethod: .needsPaymentMethod
            case .ready: .ready
            case .completed: .completed
            case .expired: .expired
            case .superseded: .superseded
            }
        }
    }

    /// Whether the checkout is still going and, if not, how it ended.
    public enum Phase: Sendable, Equatable {
        case notStarted, open, completed, expired, superseded
    }

    public struct State: Sendable, Equatable {
        public var checkoutID = ""
        public var cartID = ""
        public var cartVersion: Int64 = 0
        /// Empty for a guest.
        public var customerID = ""
        public var currency = ""
        /// The cart's lines when the checkout started.
        public var lines: [CartDecider.Line] = []
        /// The promotion rules in play when it started, at their versions.
        public var rules: [PromotionRule] = []
        public var couponCodes: [String] = []
        public var phase: Phase = .notStarted
        public var shippingAddress: Tote_V1_Address?
        /// nil = same as shipping.
        public var billingAddress: Tote_V1_Address?
        /// The options offered for ``shippingAddress``.
        public var shippingOptions: [ShippingQuote] = []
        public var shippingOption: ShippingQuote?
        public var paymentMethod: Tote_V1_PaymentMethod?
        public var orderID = ""
        public var supersededBy = ""
        /// The final record, once completed.
        public var completion: Tote_V1_CheckoutCompleted?
        public var startedAtMicros: Int64 = 0
        public var expiresAtMicros: Int64 = 0
        public var updatedAtMicros: Int64 = 0

        public init() {}

        /// The wire state: final phases, else what is needed next.
        public var step: Step {
            switch phase {
            case .notStarted: .unspecified
            case .completed: .completed
            case .expired: .expired
            case .superseded: .superseded
            case .open:
                if shippingAddress == nil { .needsShippingAddress }
                else if shippingOption == nil { .needsShippingOption }
                else if paymentMethod == nil { .needsPaymentMethod }
                else { .ready }
            }
        }
    }

    /// The billing address to use.
    public enum BillingAddress: Sendable, Equatable {
        case sameAsShipping
        case address(Tote_V1_Address)
    }

    public enum Command: Sendable {
        /// Starts a checkout of `cartVersion` of cart `cartID`. The service passes the cart's lines
        /// (unit prices from its state), the promotion rules in play for it (active automatic
        /// rules and its coupons' rules, at their versions), its coupon codes and the checkout
        /// lifetime; the checkout expires `lifetimeMicros` after the context's time.
        case start(checkoutID: String, cartID: String, cartVersion: Int64, customerID: String, currency: String,
                   lines: [CartDecider.Line], rules: [PromotionRule], couponCodes: [String], lifetimeMicros: Int64)
        /// Sets the shipping address, with the options the service computed for it from
        /// ``ShippingRates/options(country:currency:)`` (none: the country is not served).
        case setShippingAddress(Tote_V1_Address, options: [ShippingQuote])
        case setBillingAddress(BillingAddress)
        /// Chooses one of the options offered for the shipping address.
        case chooseShippingOption(optionID: String)
        case choosePaymentMethod(Tote_V1_PaymentMethod)
        /// Places the order `orderID`: only when READY and the cart is still at the checkout's
        /// version (`currentCartVersion`, the service's lookup). `expectedTotal`: the total the
        /// customer saw, refused if it differs. Records final totals with tax from `taxTable`.
        case complete(orderID: String, currentCartVersion: Int64, taxTable: TaxTable, expectedTotal: Money?)
        /// Records the expiry (a reaper's command); only once the expiry time has passed.
        case expire
        /// A newer checkout of the changed cart replaces this one.
        case supersede(byCheckoutID: String)
    }

    public typealias Event = Tote_V1_CheckoutEvent

    public static var initialState: State { State() }

    /// A checkout priced: the evaluator's result for the snapshot and the chosen shipping, and totals.
    public struct Priced: Sendable, Equatable {
        public var promotions: PromotionEvaluator.Result
        public var totals: Totals
        /// The offered shipping options with their prices after shipping promotions.
        public var shippingOptions: [(option: ShippingQuote, discountedPrice: Money)]

        public static func == (a: Priced, b: Priced) -> Bool {
            a.promotions == b.promotions && a.totals == b.totals
                && a.shippingOptions.map(\.option) == b.shippingOptions.map(\.option)
                && a.shippingOptions.map(\.discountedPrice) == b.shippingOptions.map(\.discountedPrice)
        }
    }

    /// Prices the checkout: its snapshot lines and rules, the chosen shipping option (zero
    /// before one is chosen) and tax for the shipping address's country and region (none before
    /// the address is set). Rule time windows are judged at the checkout's start, so prices do
    /// not change while the customer checks out.
    public static func totals(_ state: State, taxTable: TaxTable?) throws(DomainError) -> Priced {
        let currency = state.currency
        let lines = state.lines.map { PromotionEvaluator.Line(sku: $0.sku, quantity: $0.quantity, unitPrice: $0.unitPrice) }
        let destination = state.shippingAddress.map { TaxDestination(country: $0.country, region: $0.region) }
        do {
            let shipping = state.shippingOption?.price ?? .zero(currency)
            let result = try PromotionEvaluator.evaluate(
                lines: lines, rules: state.rules, shipping: shipping, currency: currency, nowMicros: state.startedAtMicros)
            let totals = try Totals.compute(result, shipping: shipping, taxTable: taxTable, destination: destination)
            var options: [(option: ShippingQuote, discountedPrice: Money)] = []
            for option in state.shippingOptions {
                let r = try PromotionEvaluator.evaluate(
                    lines: lines, rules: state.rules, shipping: option.price, currency: currency, nowMicros: state.startedAtMicros)
                options.append((option, try option.price.subtracting(r.shippingDiscount)))
            }
            return Priced(promotions: result, totals: totals, shippingOptions: options)
        } catch {
            throw PricingSupport.moneyError(error, field: "lines")
        }
    }

    public static func decide(_ command: Command, state: State, context: CommandContext) throws(DomainError) -> [Event] {
        let now = PricingSupport.timestamp(context.nowMicros)
        if case .start(let checkoutID, let cartID, let cartVersion, let customerID, let currency, let lines, let rules, let couponCodes, let lifetime) = command {
            try validateStart(checkoutID: checkoutID, cartID: cartID, cartVersion: cartVersion, currency: currency, lines: lines, rules: rules, couponCodes: couponCodes, lifetime: lifetime)
            if state.phase != .notStarted {
                if state.checkoutID == checkoutID && state.cartID == cartID && state.cartVersion == cartVersion { return [] }
                throw DomainError(.alreadyExists, "checkout \(checkoutID) already exists")
            }
            guard lifetime <= Int64.max - context.nowMicros else { throw .invalid("lifetime", "too long") }
            var e = Tote_V1_CheckoutStarted()
            e.checkoutID = checkoutID
            e.cartID = cartID
            e.cartVersion = cartVersion
            e.customerID = customerID
            e.currency = currency
            e.lines = lines.map(checkoutLine)
            e.promotionRules = rules.map(\.proto)
            e.couponCodes = couponCodes.map(normalizedCouponCode)
            e.startedAt = now
            e.expiresAt = PricingSupport.timestamp(context.nowMicros + lifetime)
            return [Event.with { $0.checkoutStarted = e }]
        }
        guard state.phase != .notStarted else { throw DomainError(.notFound, "no such checkout") }

        switch command {
        case .start:
            return []  // handled above

        case .setShippingAddress(var address, let options):
            try requireOpen(state, now: context.nowMicros)
            address.country = PricingSupport.trimmed(address.country).uppercased()
            address.postalCode = PricingSupport.trimmed(address.postalCode).uppercased()
            var v = Validator()
            AddressValidation.validate(address, prefix: "shipping_address", requireEmail: state.customerID.isEmpty, into: &v)
            for (i, option) in options.enumerated() {
                v.require(!option.optionID.isEmpty, "shipping_options[\(i)].option_id", "must not be empty")
                v.require(option.price.currency == state.currency, "shipping_options[\(i)].price.currency", "must be \(state.currency)")
                v.require(option.price.minorUnits >= 0, "shipping_options[\(i)].price.minor_units", "must not be negative")
            }
            v.require(Set(options.map(\.optionID)).count == options.count, "shipping_options", "option ids must be unique")
            try v.check()
            guard !options.isEmpty else {
                throw DomainError(.failedPrecondition, "no shipping to \(address.country)", subject: "shipping_address.country")
            }
            if state.shippingAddress == address && state.shippingOptions == options { return [] }
            var e = Tote_V1_CheckoutShippingAddressSet()
            e.address = address
            e.shippingOptions = options.map { $0.proto() }
            if let chosen = state.shippingOption { e.shippingOptionCleared = !options.contains(chosen) }
            e.setAt = now
            return [Event.with { $0.checkoutShippingAddressSet = e }]

        case .setBillingAddress(let billing):
            try requireOpen(state, now: context.nowMicros)
            var e = Tote_V1_CheckoutBillingAddressSet()
            switch billing {
            case .sameAsShipping:
                if state.billingAddress == nil { return [] }
                e.sameAsShipping = true
            case .address(var address):
                address.country = PricingSupport.trimmed(address.country).uppercased()
                address.postalCode = PricingSupport.trimmed(address.postalCode).uppercased()
                var v = Validator()
                AddressValidation.validate(address, prefix: "billing_address", requireEmail: false, into: &v)
                try v.check()
                if state.billingAddress == address { return [] }
                e.address = address
            }
            e.setAt = now
            return [Event.with { $0.checkoutBillingAddressSet = e }]

        case .chooseShippingOption(let optionID):
            try requireOpen(state, now: context.nowMicros)
            guard !optionID.isEmpty else { throw .invalid("option_id", "must not be empty") }
            guard state.shippingAddress != nil else {
                throw .wrongState("set the shipping address first", currentState: state.step.rawValue)
            }
            guard let option = state.shippingOptions.first(where: { $0.optionID == optionID }) else {
                throw .invalid("option_id", "not offered for this address")
            }
            if state.shippingOption == option { return [] }
            var e = Tote_V1_CheckoutShippingOptionChosen()
            e.option = option.proto()
            e.chosenAt = now
            return [Event.with { $0.checkoutShippingOptionChosen = e }]

        case .choosePaymentMethod(let method):
            try requireOpen(state, now: context.nowMicros)
            var v = Validator()
            v.require(method.kind != .unspecified && method.kind.rawValue <= 4, "method.kind", "must be set")
            v.require(!method.provider.isEmpty, "method.provider", "must not be empty")
            if method.kind == .card || method.kind == .wallet {
                v.require(!method.token.isEmpty, "method.token", "is required for cards and wallets")
            }
            v.require(method.token.utf8.count <= 512, "method.token", "at most 512 bytes")
            try v.check()
            if state.paymentMethod == method { return [] }
            var e = Tote_V1_CheckoutPaymentMethodChosen()
            e.method = method
            e.chosenAt = now
            return [Event.with { $0.checkoutPaymentMethodChosen = e }]

        case .complete(let orderID, let currentCartVersion, let taxTable, let expectedTotal):
            guard !orderID.isEmpty else { throw .invalid("order_id", "must not be empty") }
            if state.phase == .completed && state.orderID == orderID { return [] }
            try requireOpen(state, now: context.nowMicros)
            guard state.step == .ready else {
                throw .wrongState("the checkout is not complete: \(state.step.rawValue)", currentState: state.step.rawValue)
            }
            guard currentCartVersion == state.cartVersion else {
                throw DomainError(.failedPrecondition, "the cart changed since the checkout started; start a new checkout", subject: "cart_version")
            }
            let priced = try totals(state, taxTable: taxTable)
            if let expectedTotal, expectedTotal != priced.totals.total {
                throw DomainError(.failedPrecondition, "the total is \(PricingSupport.format(priced.totals.total)), not \(PricingSupport.format(expectedTotal))", subject: "expected_total")
            }
            var e = Tote_V1_CheckoutCompleted()
            e.orderID = orderID
            e.lines = zip(state.lines, zip(priced.promotions.lines, priced.totals.lineTaxes)).map { line, pair in
                var l = Tote_V1_OrderLine()
                l.lineID = line.lineID
                l.sku = line.sku
                l.productID = line.productID
                l.displayName = line.displayName
                l.quantity = UInt32(line.quantity)
                l.unitPrice = line.unitPrice.proto
                l.lineSubtotal = pair.0.subtotal.proto
                l.promotions = pair.0.promotions.map(\.proto)
                l.lineDiscount = pair.0.discount.proto
                l.lineTotal = pair.0.total.proto
                l.lineTax = pair.1.proto
                return l
            }
            e.orderPromotions = priced.promotions.orderPromotions.map(\.proto)
            e.shippingPromotions = priced.promotions.shippingPromotions.map(\.proto)
            e.totals = priced.totals.proto
            e.shippingAddress = state.shippingAddress!
            e.billingAddress = state.billingAddress ?? state.shippingAddress!
            e.shippingOption = state.shippingOption!.proto(discountedPrice: priced.totals.shippingTotal)
            e.paymentMethod = state.paymentMethod!
            e.completedAt = now
            return [Event.with { $0.checkoutCompleted = e }]

        case .expire:
            switch state.phase {
            case .expired: return []
            case .open where context.nowMicros >= state.expiresAtMicros:
                var e = Tote_V1_CheckoutExpired()
                e.expiredAt = now
                return [Event.with { $0.checkoutExpired = e }]
            default:
                throw .wrongState("the checkout cannot expire now", currentState: state.step.rawValue)
            }

        case .supersede(let byCheckoutID):
            guard !byCheckoutID.isEmpty else { throw .invalid("by_checkout_id", "must not be empty") }
            guard byCheckoutID != state.checkoutID else { throw .invalid("by_checkout_id", "cannot supersede itself") }
            if state.phase == .superseded && state.supersededBy == byCheckoutID { return [] }
            guard state.phase == .open else {
                throw .wrongState("the checkout is over", currentState: state.step.rawValue)
            }
            var e = Tote_V1_CheckoutSuperseded()
            e.byCheckoutID = byCheckoutID
            e.supersededAt = now
            return [Event.with { $0.checkoutSuperseded = e }]
        }
    }

    public static func evolve(_ state: State, _ event: Event) -> State {
        var state = state
        switch event.event {
        case .checkoutStarted(let e):
            state.checkoutID = e.checkoutID
            state.cartID = e.cartID
            state.cartVersion = e.cartVersion
            state.customerID = e.customerID
            state.currency = e.currency
            state.lines = e.lines.map {
                CartDecider.Line(lineID: $0.lineID, sku: $0.sku, productID: $0.productID, displayName: $0.displayName,
                                 quantity: Int64($0.quantity), unitPrice: Money($0.unitPrice), imageURL: $0.imageURL)
            }
            state.rules = e.promotionRules.map(PromotionRule.init)
            state.couponCodes = e.couponCodes
            state.phase = .open
            state.startedAtMicros = e.startedAt.unixMicros
            state.expiresAtMicros = e.expiresAt.unixMicros
            state.updatedAtMicros = e.startedAt.unixMicros
        case .checkoutShippingAddressSet(let e):
            state.shippingAddress = e.address
            state.shippingOptions = e.shippingOptions.map(ShippingQuote.init)
            if e.shippingOptionCleared { state.shippingOption = nil }
            state.updatedAtMicros = e.setAt.unixMicros
        case .checkoutBillingAddressSet(let e):
            state.billingAddress = e.sameAsShipping ? nil : e.address
            state.updatedAtMicros = e.setAt.unixMicros
        case .checkoutShippingOptionChosen(let e):
            state.shippingOption = ShippingQuote(e.option)
            state.updatedAtMicros = e.chosenAt.unixMicros
        case .checkoutPaymentMethodChosen(let e):
            state.paymentMethod = e.method
            state.updatedAtMicros = e.chosenAt.unixMicros
        case .checkoutCompleted(let e):
            state.phase = .completed
            state.orderID = e.orderID
            state.completion = e
            state.updatedAtMicros = e.completedAt.unixMicros
        case .checkoutExpired(let e):
            state.phase = .expired
            state.updatedAtMicros = e.expiredAt.unixMicros
        case .checkoutSuperseded(let e):
            state.phase = .superseded
            state.supersededBy = e.byCheckoutID
            state.updatedAtMicros = e.supersededAt.unixMicros
        case nil:
            break
        }
        return state
    }

    // MARK: - Helpers

    /// Open and not past its expiry time (then it refuses as EXPIRED even before the reaper records it).
    private static func requireOpen(_ state: State, now: Int64) throws(DomainError) {
        guard state.phase == .open else {
            throw .wrongState("the checkout is over (\(state.step.rawValue))", currentState: state.step.rawValue)
        }
        guard now < state.expiresAtMicros else {
            throw .wrongState("the checkout has expired; start a new one", currentState: Step.expired.rawValue)
        }
    }

    private static func validateStart(
        checkoutID: String, cartID: String, cartVersion: Int64, currency: String, lines: [CartDecider.Line],
        rules: [PromotionRule], couponCodes: [String], lifetime: Int64
    ) throws(DomainError) {
        var v = Validator()
        v.require(!checkoutID.isEmpty, "checkout_id", "must not be empty")
        v.require(!cartID.isEmpty, "cart_id", "must not be empty")
        v.require(cartVersion >= 1, "cart_version", "must be at least 1")
        v.require(isCurrencyCode(currency), "currency", "not an ISO 4217 code")
        v.require(!lines.isEmpty, "lines", "the cart is empty")
        v.require(lines.count <= CartDecider.maxLines, "lines", "at most \(CartDecider.maxLines) lines")
        v.require(lifetime > 0, "lifetime", "must be positive")
        for (i, line) in lines.enumerated() {
            v.require(!line.lineID.isEmpty, "lines[\(i)].line_id", "must not be empty")
            v.require(!line.sku.isEmpty, "lines[\(i)].sku", "must not be empty")
            v.require(line.quantity >= 1 && line.quantity <= CartDecider.maxQuantity, "lines[\(i)].quantity", "must be 1…\(CartDecider.maxQuantity)")
            v.require(line.unitPrice.currency == currency, "lines[\(i)].unit_price.currency", "must be \(currency)")
            v.require(line.unitPrice.minorUnits >= 0, "lines[\(i)].unit_price.minor_units", "must not be negative")
        }
        for (i, rule) in rules.enumerated() {
            v.require(!rule.id.isEmpty, "promotion_rules[\(i)].rule_id", "must not be empty")
            rule.validate(into: &v, prefix: "promotion_rules[\(i)].spec.")
        }
        for (i, code) in couponCodes.enumerated() {
            v.require(isCouponCode(normalizedCouponCode(code)), "coupon_codes[\(i)]", "not a coupon code")
        }
        try v.check()
    }

    private static func checkoutLine(_ line: CartDecider.Line) -> Tote_V1_CheckoutLine {
        var l = Tote_V1_CheckoutLine()
        l.lineID = line.lineID
        l.sku = line.sku
        l.productID = line.productID
        l.displayName = line.displayName
        l.quantity = UInt32(line.quantity)
        l.unitPrice = line.unitPrice.proto
        l.imageURL = line.imageURL
        return l
    }
}
