import Foundation
import SwiftProtobuf
import ToteAPI
import ToteCommands
import ToteDomain

/// Serves tote.v1.Checkout: a resumable checkout per cart (``CheckoutDecider``), and
/// `PlaceOrder`, which in ONE append completes the checkout, reserves stock for every line
/// (each at the first location with enough available), places the order and closes the cart —
/// so an order never exists without its stock, and stock is never held without an order.
public struct CheckoutService: RPCService, Sendable {
    let commands: CommandSupport
    let promotions: PromotionRegistry
    let settings: StoreSettings

    public init(commands: CommandSupport, promotions: PromotionRegistry, settings: StoreSettings) {
        self.commands = commands
        self.promotions = promotions
        self.settings = settings
    }

    public func register(into router: inout RPCRouter) {
        router.register(CheckoutAPI.startCheckout, unary: { request, context in
            guard !request.cartID.isEmpty else { throw RPCError.invalidArgument("cart_id is required", fieldViolations: [("cart_id", "required")]) }
            let checkoutID = UUID().uuidString.lowercased()
            return try await commands.run(context, setToken: { $0.consistencyToken = $1 }) { unit in
                let cartStream = StreamName.cart(request.cartID)
                var cart = try await unit.load(CartDecider.self, cartStream)
                guard cart.status != .unspecified else { throw DomainError(.notFound, "cart \(request.cartID) does not exist") }
                guard cart.status == .open else { throw DomainError.wrongState("cart \(request.cartID) is not open", currentState: cart.status.rawValue) }
                guard !cart.lines.isEmpty else { throw DomainError.wrongState("cart \(request.cartID) is empty", currentState: cart.status.rawValue) }
                // Prices are the catalog's now, not those of when the lines were added.
                var prices: [String: Money] = [:]
                for line in cart.lines {
                    prices[line.sku] = try await CartService.catalogItem(sku: line.sku, currency: cart.currency, customerGroup: cart.customerGroup, &unit, field: "cart_id").unitPrice
                }
                let repriced = try await unit.decide(CartDecider.self, cartStream, .repriceLines(prices: prices))
                cart = repriced.state
                let cartVersion = unit.version(of: cartStream) + Int64(repriced.events.count)
                let rules = CartPricing.rulesInPlay(cart, rules: promotions.activeRules)
                let stream = StreamName.checkout(checkoutID)
                let (events, state) = try await unit.decide(CheckoutDecider.self, stream, .start(
                    checkoutID: checkoutID, cartID: request.cartID, cartVersion: cartVersion, customerID: cart.customerID,
                    currency: cart.currency, lines: cart.lines, rules: rules, couponCodes: cart.coupons.map(\.code),
                    lifetimeMicros: settings.checkoutLifetimeMicros))
                var reply = Tote_V1_StartCheckoutResponse()
                reply.streamVersion = Int64(events.count)
                reply.checkout = try view(state, version: reply.streamVersion)
                return reply
            }
        })
        router.register(CheckoutAPI.setShippingAddress, unary: { request, context in
            try await checkout(request.checkoutID, context, reply: Tote_V1_SetShippingAddressResponse.self) { unit, stream, state in
                let options = settings.shippingRates.options(country: request.address.country, currency: state.currency)
                return try await unit.decide(CheckoutDecider.self, stream, .setShippingAddress(request.address, options: options)).events.count
            }
        })
        router.register(CheckoutAPI.setBillingAddress, unary: { request, context in
            try await checkout(request.checkoutID, context, reply: Tote_V1_SetBillingAddressResponse.self) { unit, stream, _ in
                let billing: CheckoutDecider.BillingAddress = request.sameAsShipping ? .sameAsShipping : .address(request.address)
                return try await unit.decide(CheckoutDecider.self, stream, .setBillingAddress(billing)).events.count
            }
        })
        router.register(CheckoutAPI.chooseShippingOption, unary: { request, context in
            try await checkout(request.checkoutID, context, reply: Tote_V1_ChooseShippingOptionResponse.self) { unit, stream, _ in
                try await unit.decide(CheckoutDecider.self, stream, .chooseShippingOption(optionID: request.optionID)).events.count
            }
        })
        router.register(CheckoutAPI.choosePaymentMethod, unary: { request, context in
            try await checkout(request.checkoutID, context, reply: Tote_V1_ChoosePaymentMethodResponse.self) { unit, stream, _ in
                try await unit.decide(CheckoutDecider.self, stream, .choosePaymentMethod(request.method)).events.count
            }
        })
        router.register(CheckoutAPI.placeOrder, unary: { request, context in
            guard !request.checkoutID.isEmpty else { throw RPCError.invalidArgument("checkout_id is required", fieldViolations: [("checkout_id", "required")]) }
            let orderID = UUID().uuidString.lowercased()
            return try await commands.run(context, setToken: { $0.consistencyToken = $1 }) { unit in
                try await placeOrder(orderID: orderID, request: request, &unit)
            }
        })
        router.register(CheckoutAPI.getCheckout, unary: { request, _ in
            guard !request.checkoutID.isEmpty else { throw RPCError.invalidArgument("checkout_id is required", fieldViolations: [("checkout_id", "required")]) }
            let (state, version) = try await commands.runner.read(CheckoutDecider.self, StreamName.checkout(request.checkoutID))
            guard version > 0 else { throw RPCError(.notFound, "checkout \(request.checkoutID) does not exist") }
            return try view(state, version: version)
        })
    }

    /// The body of PlaceOrder, inside one unit of work.
    func placeOrder(orderID: String, request: Tote_V1_PlaceOrderRequest, _ unit: inout UnitOfWork) async throws -> Tote_V1_PlaceOrderResponse {
        let checkoutStream = StreamName.checkout(request.checkoutID)
        let checkout = try await unit.load(CheckoutDecider.self, checkoutStream)
        guard checkout.phase != .notStarted else { throw DomainError(.notFound, "checkout \(request.checkoutID) does not exist") }
        if checkout.phase == .completed {
            // Placed already (by an earlier call with another key): answer with that order.
            let order = try await unit.load(OrderDecider.self, StreamName.order(checkout.orderID))
            var reply = Tote_V1_PlaceOrderResponse()
            reply.orderID = order.orderID
            reply.orderNumber = order.orderNumber
            reply.total = order.totals.total
            reply.reservationsExpireAt.unixMicros = order.reservationsExpireAtMicros
            reply.streamVersion = unit.version(of: StreamName.order(order.orderID))
            return reply
        }
        let cartStream = StreamName.cart(checkout.cartID)
        _ = try await unit.load(CartDecider.self, cartStream)
        let expected = request.hasExpectedTotal ? Money(request.expectedTotal) : nil
        let completed = try await unit.decide(CheckoutDecider.self, checkoutStream, .complete(
            orderID: orderID, currentCartVersion: unit.version(of: cartStream), taxTable: settings.taxTable, expectedTotal: expected))
        guard let completion = completed.state.completion else { throw DomainError.wrongState("checkout \(request.checkoutID) did not complete", currentState: completed.state.step.rawValue) }

        // Every stock item any line could come from, serialized in this process (a flash-sale
        // SKU queues here instead of retrying against the database).
        let candidates = completion.lines.flatMap { line in settings.locations.map { StreamName.stockItem(sku: line.sku, location: $0) } }
        try await unit.serialize(candidates)
        let now = unit.context.nowMicros
        let expires = now + settings.reservationTTLMicros
        var lines: [OrderCommand.PlaceOrderLine] = []
        for line in completion.lines {
            let reservationID = "\(orderID)/\(line.lineID)"
            var chosen: StockItemDecider.Key?
            var availableAnywhere: Int64 = 0
            for location in settings.locations {
                let key = StockItemDecider.Key(sku: line.sku, locationId: location)
                let stock = try await unit.load(StockItemDecider.self, key.streamName)
                let available = stock.available(atMicros: now)
                availableAnywhere += available
                if available >= Int64(line.quantity) {
                    chosen = key
                    break
                }
            }
            guard let key = chosen else {
                throw DomainError.outOfStock(line.sku, requested: Int64(line.quantity), available: availableAnywhere)
            }
            try await unit.decide(StockItemDecider.self, key.streamName, .reserve(
                key: key, reservationId: reservationID, quantity: Int64(line.quantity), expiresAtMicros: expires, reference: "order:\(orderID)"))
            lines.append(OrderCommand.PlaceOrderLine(
                lineID: line.lineID, sku: line.sku, productID: line.productID, displayName: line.displayName,
                quantity: Int64(line.quantity), unitPrice: Money(line.unitPrice), promotions: line.promotions,
                tax: Money(line.lineTax), locationID: key.locationId, reservationID: reservationID))
        }
        let orderNumber = "T-" + orderID.replacingOccurrences(of: "-", with: "").prefix(10).uppercased()
        let placed = OrderCommand.PlaceOrder(
            orderID: orderID, orderNumber: orderNumber, customerID: checkout.customerID,
            email: completion.shippingAddress.email, currency: checkout.currency, lines: lines,
            orderPromotions: completion.orderPromotions + completion.shippingPromotions, totals: completion.totals,
            shippingAddress: completion.shippingAddress, billingAddress: completion.billingAddress,
            shippingOptionLabel: completion.shippingOption.label, checkoutID: request.checkoutID,
            reservationsExpireAtMicros: expires)
        let orderStream = StreamName.order(orderID)
        let (orderEvents, _) = try await unit.decide(OrderDecider.self, orderStream, .place(placed))
        try await unit.decide(CartDecider.self, cartStream, .markCheckedOut(orderID: orderID, checkoutID: request.checkoutID))

        var reply = Tote_V1_PlaceOrderResponse()
        reply.orderID = orderID
        reply.orderNumber = orderNumber
        reply.total = completion.totals.total
        reply.reservationsExpireAt.unixMicros = expires
        reply.streamVersion = Int64(orderEvents.count)
        return reply
    }

    /// A command on one open checkout; the reply carries its new version and priced view.
    private func checkout<Reply: SwiftProtobuf.Message & CheckoutReply>(
        _ checkoutID: String,
        _ context: ServerContext,
        reply: Reply.Type,
        _ body: @escaping (inout UnitOfWork, String, CheckoutDecider.State) async throws -> Int
    ) async throws -> Reply {
        guard !checkoutID.isEmpty else { throw RPCError.invalidArgument("checkout_id is required", fieldViolations: [("checkout_id", "required")]) }
        return try await commands.run(context, setToken: { $0.consistencyToken = $1 }) { unit in
            let stream = StreamName.checkout(checkoutID)
            let state = try await unit.load(CheckoutDecider.self, stream)
            guard state.phase != .notStarted else { throw DomainError(.notFound, "checkout \(checkoutID) does not exist") }
            let written = try await body(&unit, stream, state)
            let version = unit.version(of: stream) + Int64(written)
            var reply = Reply()
            reply.streamVersion = version
            reply.checkout = try view(try await unit.load(CheckoutDecider.self, stream), version: version)
            return reply
        }
    }

    func view(_ state: CheckoutDecider.State, version: Int64) throws -> Tote_V1_CheckoutView {
        CheckoutDecider.proto(state, try CheckoutDecider.totals(state, taxTable: settings.taxTable), version: version)
    }
}

/// Checkout command replies: new version, token and the checkout (fields 1–3).
protocol CheckoutReply: VersionedReply {
    var checkout: Tote_V1_CheckoutView { get set }
}

extension Tote_V1_SetShippingAddressResponse: CheckoutReply {}
extension Tote_V1_SetBillingAddressResponse: CheckoutReply {}
extension Tote_V1_ChooseShippingOptionResponse: CheckoutReply {}
extension Tote_V1_ChoosePaymentMethodResponse: CheckoutReply {}
