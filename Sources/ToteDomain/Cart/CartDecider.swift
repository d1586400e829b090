import ToteProto

extension Tote_V1_CartEvent: DomainEvent {
    public var typeName: String {
        switch event {
        case .cartCreated: "CartCreated"
        case .cartLineAdded: "CartLineAdded"
        case .cartLineQuantityChanged: "CartLineQuantityChanged"
        case .cartLineRemoved: "CartLineRemoved"
        case .cartLinePriceChanged: "CartLinePriceChanged"
        case .cartCouponApplied: "CartCouponApplied"
        case .cartCouponRemoved: "CartCouponRemoved"
        case .cartAssignedToCustomer: "CartAssignedToCustomer"
        case .cartGuestCartMerged: "CartGuestCartMerged"
        case .cartMergedInto: "CartMergedInto"
        case .cartCheckedOut: "CartCheckedOut"
        case .cartAbandoned: "CartAbandoned"
        case nil: "CartEvent"
        }
    }
}

/// A server-side cart (stream `cart-<id>`): lines priced from the catalog by the service, coupon
/// codes, and a status. Totals are never stored: ``CartPricing/view(_:rules:shipping:taxTable:destination:nowMicros:)``
/// recomputes them from the state every time.
public enum CartDecider: Decider {
    /// At most this many units per line.
    public static let maxQuantity: Int64 = 999
    /// At most this many lines per cart.
    public static let maxLines = 100
    /// At most this many coupon codes per cart.
    public static let maxCoupons = 5

    /// Where a cart is in its life (wire: `CartStatus`).
    public enum Status: String, Sendable, Equatable {
        case unspecified = "CART_STATUS_UNSPECIFIED"
        case open = "CART_STATUS_OPEN"
        case merged = "CART_STATUS_MERGED"
        case checkedOut = "CART_STATUS_CHECKED_OUT"
        case abandoned = "CART_STATUS_ABANDONED"
    }

    /// One line: a SKU, units and the catalog price of one unit.
    public struct Line: Sendable, Equatable {
        public var lineID: String
        public var sku: String
        public var productID: String
        public var displayName: String
        public var quantity: Int64
        /// From the catalog, as looked up by the service (never from a client).
        public var unitPrice: Money
        public var imageURL: String

        public init(lineID: String, sku: String, productID: String, displayName: String, quantity: Int64, unitPrice: Money, imageURL: String = "") {
            self.lineID = lineID
            self.sku = sku
            self.productID = productID
            self.displayName = displayName
            self.quantity = quantity
            self.unitPrice = unitPrice
            self.imageURL = imageURL
        }
    }

    /// A coupon code attached to the cart and the promotion it belongs to.
    public struct Coupon: Sendable, Equatable {
        /// Upper case.
        public var code: String
        public var promotionID: String

        public init(code: String, promotionID: String) {
            self.code = code
            self.promotionID = promotionID
        }
    }

    public struct State: Sendable, Equatable {
        public var cartID = ""
        public var status: Status = .unspecified
        /// Empty for a guest cart.
        public var customerID = ""
        /// Fixed at creation.
        public var currency = ""
        public var customerGroup = ""
        /// In the order they were added.
        public var lines: [Line] = []
        public var coupons: [Coupon] = []
        /// When merged: the cart it went into.
        public var mergedIntoCartID = ""
        /// Guest carts merged into this one.
        public var mergedGuestCartIDs: [String] = []
        /// When checked out.
        public var orderID = ""
        public var checkoutID = ""
        public var createdAtMicros: Int64 = 0
        public var updatedAtMicros: Int64 = 0

        public init() {}

        /// The line holding `sku`, if any.
        public func line(sku: String) -> Line? { lines.first { $0.sku == sku } }
        /// The line `lineID`, if any.
        public func line(id: String) -> Line? { lines.first { $0.lineID == id } }
    }

    /// What the service found for a coupon code.
    public enum CouponResolution: Sendable, Equatable {
        /// The active promotion rule the code belongs to.
        case promotion(PromotionRule)
        /// No active promotion has this code (refused: invalidArgument on `code`).
        case unknown
    }

    public enum Command: Sendable {
        /// Creates the cart; `customerID` empty = a guest cart.
        case create(cartID: String, customerID: String, currency: String, customerGroup: String)
        /// Adds units of a SKU. The service looks up `line.unitPrice` (and names) from the catalog
        /// for the cart's currency and customer group, and picks a fresh `line.lineID`. If the SKU
        /// already has a line, that line's quantity rises instead (and its price is refreshed).
        case addLine(Line)
        /// Sets a line's quantity; 0 removes it.
        case changeLineQuantity(lineID: String, quantity: Int64)
        case removeLine(lineID: String)
        /// Attaches a coupon code, as resolved by the service (see ``CouponResolution``).
        case applyCoupon(code: String, resolution: CouponResolution)
        /// Detaches a coupon code (a no-op when it is not attached).
        case removeCoupon(code: String)
        /// Current catalog unit prices by SKU (the service's lookup); lines whose price changed
        /// get a `CartLinePriceChanged`. SKUs missing from the map keep their price.
        case repriceLines(prices: [String: Money])
        /// On the customer's cart: takes the guest cart's lines (summing quantities of a SKU
        /// already here, capped at ``maxQuantity``) and coupons. `guest` is the guest cart's
        /// state as the service loaded it; the service appends ``markMergedInto(cartID:customerID:)``
        /// to the guest stream in the same append.
        case mergeGuestCart(guest: State)
        /// On the guest cart: it was merged into `cartID`; read-only from now on.
        case markMergedInto(cartID: String, customerID: String)
        /// On a guest cart when the customer has no cart: it becomes theirs (or: the group changes).
        case assignToCustomer(customerID: String, customerGroup: String)
        /// The cart became order `orderID` through checkout `checkoutID`; read-only from now on.
        case markCheckedOut(orderID: String, checkoutID: String)
        /// The cart was left untouched too long (decided by the service's retention policy).
        case abandon
    }

    public typealias Event = Tote_V1_CartEvent

    public static var initialState: State { State() }

    public static func decide(_ command: Command, state: State, context: CommandContext) throws(DomainError) -> [Event] {
        let now = PricingSupport.timestamp(context.nowMicros)
        if case .create(let cartID, let customerID, let currency, let customerGroup) = command {
            var v = Validator()
            v.require(!cartID.isEmpty, "cart_id", "must not be empty")
            v.require(isCurrencyCode(currency), "currency", "not an ISO 4217 code")
            v.require(customerID.utf8.count <= 128, "customer_id", "at most 128 characters")
            v.require(customerGroup.utf8.count <= 128, "customer_group", "at most 128 characters")
            try v.check()
            if state.status != .unspecified {
                if state.cartID == cartID && state.customerID == customerID && state.currency == currency
                    && state.customerGroup == customerGroup { return [] }
                throw DomainError(.alreadyExists, "cart \(cartID) already exists")
            }
            var e = Tote_V1_CartCreated()
            e.cartID = cartID
            e.customerID = customerID
            e.currency = currency
            e.customerGroup = customerGroup
            e.createdAt = now
            return [Event.with { $0.cartCreated = e }]
        }
        guard state.status != .unspecified else { throw DomainError(.notFound, "no such cart") }

        switch command {
        case .create:
            return []  // handled above

        case .addLine(let line):
            try requireOpen(state)
            var v = Validator()
            v.require(!line.sku.isEmpty, "sku", "must not be empty")
            v.require(!line.lineID.isEmpty, "line_id", "must not be empty")
            v.require(!line.productID.isEmpty, "product_id", "must not be empty")
            v.require(line.quantity >= 1 && line.quantity <= maxQuantity, "quantity", "must be 1…\(maxQuantity)")
            v.require(line.unitPrice.currency == state.currency, "unit_price.currency", "must be the cart's currency \(state.currency)")
            v.require(line.unitPrice.minorUnits >= 0, "unit_price.minor_units", "must not be negative")
            try v.check()
            if let existing = state.line(sku: line.sku) {
                let quantity = existing.quantity + line.quantity
                guard quantity <= maxQuantity else {
                    throw .invalid("quantity", "at most \(maxQuantity) per line (the line has \(existing.quantity))")
                }
                var events = [quantityChanged(existing, to: quantity, at: now)]
                if existing.unitPrice != line.unitPrice { events.append(priceChanged(existing, to: line.unitPrice, at: now)) }
                return events
            }
            guard state.line(id: line.lineID) == nil else { throw .invalid("line_id", "already used by another line") }
            guard state.lines.count < maxLines else { throw .invalid("lines", "a cart holds at most \(maxLines) lines") }
            return [lineAdded(line, at: now)]

        case .changeLineQuantity(let lineID, let quantity):
            try requireOpen(state)
            var v = Validator()
            v.require(!lineID.isEmpty, "line_id", "must not be empty")
            v.require(quantity >= 0 && quantity <= maxQuantity, "quantity", "must be 0…\(maxQuantity)")
            try v.check()
            guard let line = state.line(id: lineID) else { throw DomainError(.notFound, "no line \(lineID) in the cart") }
            if quantity == 0 { return [lineRemoved(line, at: now)] }
            if quantity == line.quantity { return [] }
            return [quantityChanged(line, to: quantity, at: now)]

        case .removeLine(let lineID):
            try requireOpen(state)
            try requireNonEmpty(lineID, "line_id")
            guard let line = state.line(id: lineID) else { throw DomainError(.notFound, "no line \(lineID) in the cart") }
            return [lineRemoved(line, at: now)]

        case .applyCoupon(let rawCode, let resolution):
            try requireOpen(state)
            let code = normalizedCouponCode(rawCode)
            guard isCouponCode(code) else { throw .invalid("code", "not a coupon code") }
            if state.coupons.contains(where: { $0.code == code }) { return [] }
            guard case .promotion(let rule) = resolution, rule.couponCode == code else {
                throw .invalid("code", "unknown coupon code")
            }
            guard rule.isLive(atMicros: context.nowMicros) else {
                throw .invalid("code", rule.startsAtMicros > context.nowMicros ? "coupon not valid yet" : "coupon expired")
            }
            guard state.coupons.count < maxCoupons else { throw .invalid("code", "at most \(maxCoupons) coupon codes per cart") }
            return [couponApplied(Coupon(code: code, promotionID: rule.id), at: now)]

        case .removeCoupon(let rawCode):
            try requireOpen(state)
            let code = normalizedCouponCode(rawCode)
            try requireNonEmpty(code, "code")
            guard state.coupons.contains(where: { $0.code == code }) else { return [] }
            var e = Tote_V1_CartCouponRemoved()
            e.code = code
            e.removedAt = now
            return [Event.with { $0.cartCouponRemoved = e }]

        case .repriceLines(let prices):
            try requireOpen(state)
            var v = Validator()
            for sku in prices.keys.sorted() {
                let price = prices[sku]!
                v.require(price.currency == state.currency, "prices[\(sku)].currency", "must be the cart's currency \(state.currency)")
                v.require(price.minorUnits >= 0, "prices[\(sku)].minor_units", "must not be negative")
            }
            try v.check()
            return state.lines.compactMap { line in
                guard let price = prices[line.sku], price != line.unitPrice else { return nil }
                return priceChanged(line, to: price, at: now)
            }

        case .mergeGuestCart(let guest):
            try requireOpen(state)
            guard guest.status != .unspecified else { throw DomainError(.notFound, "no such guest cart") }
            guard guest.cartID != state.cartID else { throw .invalid("guest_cart_id", "cannot merge a cart into itself") }
            if state.mergedGuestCartIDs.contains(guest.cartID) { return [] }
            guard guest.status == .open else {
                throw .wrongState("guest cart \(guest.cartID) is not open", currentState: guest.status.rawValue)
            }
            guard guest.currency == state.currency else {
                throw DomainError(.failedPrecondition, "guest cart is in \(guest.currency), this cart in \(state.currency)", subject: "currency")
            }
            var events: [Event] = []
            var e = Tote_V1_CartGuestCartMerged()
            e.guestCartID = guest.cartID
            e.mergedAt = now
            events.append(Event.with { $0.cartGuestCartMerged = e })
            var lineCount = state.lines.count
            var usedIDs = Set(state.lines.map(\.lineID))
            for guestLine in guest.lines {
                if let existing = state.line(sku: guestLine.sku) {
                    let quantity = min(maxQuantity, existing.quantity + guestLine.quantity)
                    if quantity != existing.quantity { events.append(quantityChanged(existing, to: quantity, at: now)) }
                } else {
                    lineCount += 1
                    guard lineCount <= maxLines else { throw .invalid("lines", "the merged cart would hold more than \(maxLines) lines") }
                    var line = guestLine
                    if usedIDs.contains(line.lineID) { line.lineID = guest.cartID + ":" + line.lineID }
                    usedIDs.insert(line.lineID)
                    events.append(lineAdded(line, at: now))
                }
            }
            var couponCount = state.coupons.count
            for coupon in guest.coupons where !state.coupons.contains(where: { $0.code == coupon.code }) && couponCount < maxCoupons {
                couponCount += 1
                events.append(couponApplied(coupon, at: now))
            }
            return events

        case .markMergedInto(let cartID, let customerID):
            var v = Validator()
            v.require(!cartID.isEmpty, "customer_cart_id", "must not be empty")
            v.require(!customerID.isEmpty, "customer_id", "must not be empty")
            try v.check()
            if state.status == .merged && state.mergedIntoCartID == cartID { return [] }
            try requireOpen(state)
            guard cartID != state.cartID else { throw .invalid("customer_cart_id", "cannot merge a cart into itself") }
            var e = Tote_V1_CartMergedInto()
            e.intoCartID = cartID
            e.customerID = customerID
            e.mergedAt = now
            return [Event.with { $0.cartMergedInto = e }]

        case .assignToCustomer(let customerID, let customerGroup):
            try requireOpen(state)
            var v = Validator()
            v.require(!customerID.isEmpty, "customer_id", "must not be empty")
            v.require(customerGroup.utf8.count <= 128, "customer_group", "at most 128 characters")
            try v.check()
            if state.customerID == customerID && state.customerGroup == customerGroup { return [] }
            guard state.customerID.isEmpty || state.customerID == customerID else {
                throw DomainError(.permissionDenied, "the cart belongs to another customer")
            }
            var e = Tote_V1_CartAssignedToCustomer()
            e.customerID = customerID
            e.customerGroup = customerGroup
            e.assignedAt = now
            return [Event.with { $0.cartAssignedToCustomer = e }]

        case .markCheckedOut(let orderID, let checkoutID):
            var v = Validator()
            v.require(!orderID.isEmpty, "order_id", "must not be empty")
            v.require(!checkoutID.isEmpty, "checkout_id", "must not be empty")
            try v.check()
            if state.status == .checkedOut && state.orderID == orderID { return [] }
            try requireOpen(state)
            guard !state.lines.isEmpty else {
                throw .wrongState("the cart is empty", currentState: state.status.rawValue)
            }
            var e = Tote_V1_CartCheckedOut()
            e.orderID = orderID
            e.checkoutID = checkoutID
            e.checkedOutAt = now
            return [Event.with { $0.cartCheckedOut = e }]

        case .abandon:
            if state.status == .abandoned { return [] }
            try requireOpen(state)
            var e = Tote_V1_CartAbandoned()
            e.abandonedAt = now
            return [Event.with { $0.cartAbandoned = e }]
        }
    }

    public static func evolve(_ state: State, _ event: Event) -> State {
        var state = state
        switch event.event {
        case .cartCreated(let e):
            state.cartID = e.cartID
            state.status = .open
            state.customerID = e.customerID
            state.currency = e.currency
            state.customerGroup = e.customerGroup
            state.createdAtMicros = e.createdAt.unixMicros
            state.updatedAtMicros = e.createdAt.unixMicros
        case .cartLineAdded(let e):
            state.lines.append(Line(
                lineID: e.lineID, sku: e.sku, productID: e.productID, displayName: e.displayName,
                quantity: Int64(e.quantity), unitPrice: Money(e.unitPrice), imageURL: e.imageURL))
            state.updatedAtMicros = e.addedAt.unixMicros
        case .cartLineQuantityChanged(let e):
            if let i = state.lines.firstIndex(where: { $0.lineID == e.lineID }) { state.lines[i].quantity = Int64(e.quantity) }
            state.updatedAtMicros = e.changedAt.unixMicros
        case .cartLineRemoved(let e):
            state.lines.removeAll { $0.lineID == e.lineID }
            state.updatedAtMicros = e.removedAt.unixMicros
        case .cartLinePriceChanged(let e):
            if let i = state.lines.firstIndex(where: { $0.lineID == e.lineID }) { state.lines[i].unitPrice = Money(e.unitPrice) }
            state.updatedAtMicros = e.changedAt.unixMicros
        case .cartCouponApplied(let e):
            state.coupons.append(Coupon(code: e.code, promotionID: e.promotionID))
            state.updatedAtMicros = e.appliedAt.unixMicros
        case .cartCouponRemoved(let e):
            state.coupons.removeAll { $0.code == e.code }
            state.updatedAtMicros = e.removedAt.unixMicros
        case .cartAssignedToCustomer(let e):
            state.customerID = e.customerID
            state.customerGroup = e.customerGroup
            state.updatedAtMicros = e.assignedAt.unixMicros
        case .cartGuestCartMerged(let e):
            state.mergedGuestCartIDs.append(e.guestCartID)
            state.updatedAtMicros = e.mergedAt.unixMicros
        case .cartMergedInto(let e):
            state.status = .merged
            state.mergedIntoCartID = e.intoCartID
            state.updatedAtMicros = e.mergedAt.unixMicros
        case .cartCheckedOut(let e):
            state.status = .checkedOut
            state.orderID = e.orderID
            state.checkoutID = e.checkoutID
            state.updatedAtMicros = e.checkedOutAt.unixMicros
        case .cartAbandoned(let e):
            state.status = .abandoned
            state.updatedAtMicros = e.abandonedAt.unixMicros
        case nil:
            break
        }
        return state
    }

    // MARK: - Helpers

    private static func requireOpen(_ state: State) throws(DomainError) {
        guard state.status == .open else {
            throw .wrongState("cart \(state.cartID) is \(state.status.rawValue) and accepts no changes", currentState: state.status.rawValue)
        }
    }

    private static func requireNonEmpty(_ value: String, _ field: String) throws(DomainError) {
        if value.isEmpty { throw .invalid(field, "must not be empty") }
    }

    private static func lineAdded(_ line: Line, at now: Tote_V1_Timestamp) -> Event {
        var e = Tote_V1_CartLineAdded()
        e.lineID = line.lineID
        e.sku = line.sku
        e.productID = line.productID
        e.displayName = line.displayName
        e.quantity = UInt32(line.quantity)
        e.unitPrice = line.unitPrice.proto
        e.imageURL = line.imageURL
        e.addedAt = now
        return Event.with { $0.cartLineAdded = e }
    }

    private static func quantityChanged(_ line: Line, to quantity: Int64, at now: Tote_V1_Timestamp) -> Event {
        var e = Tote_V1_CartLineQuantityChanged()
        e.lineID = line.lineID
        e.sku = line.sku
        e.previousQuantity = UInt32(line.quantity)
        e.quantity = UInt32(quantity)
        e.changedAt = now
        return Event.with { $0.cartLineQuantityChanged = e }
    }

    private static func lineRemoved(_ line: Line, at now: Tote_V1_Timestamp) -> Event {
        var e = Tote_V1_CartLineRemoved()
        e.lineID = line.lineID
        e.sku = line.sku
        e.removedAt = now
        return Event.with { $0.cartLineRemoved = e }
    }

    private static func priceChanged(_ line: Line, to price: Money, at now: Tote_V1_Timestamp) -> Event {
        var e = Tote_V1_CartLinePriceChanged()
        e.lineID = line.lineID
        e.sku = line.sku
        e.previousUnitPrice = line.unitPrice.proto
        e.unitPrice = price.proto
        e.changedAt = now
        return Event.with { $0.cartLinePriceChanged = e }
    }

    private static func couponApplied(_ coupon: Coupon, at now: Tote_V1_Timestamp) -> Event {
        var e = Tote_V1_CartCouponApplied()
        e.code = coupon.code
        e.promotionID = coupon.promotionID
        e.appliedAt = now
        return Event.with { $0.cartCouponApplied = e }
    }
}
