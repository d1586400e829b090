import EventStore
import Foundation
import Testing
import ToteAPI
import ToteCommands
import ToteDomain
import ToteTestSupport

/// A catalog of one published product with `skus` (one variant per SKU, priced in EUR) and
/// `stock` units of each at location `main`.
func seedCatalog(_ node: Node, skus: [String: Int64], stock: Int64) async throws {
    let admin = try await node.connect(apiKey: Keys.operator)
    var category = Tote_V1_CreateCategoryRequest()
    category.slug = "shirts"
    category.name = "Shirts"
    _ = try await admin.unary(CatalogAPI.createCategory, category, options: command())

    var create = Tote_V1_CreateProductRequest()
    create.details.name = "Tote Tee"
    create.details.slug = "tote-tee"
    create.details.brand = "Tote"
    create.details.categorySlugs = ["shirts"]
    var size = Tote_V1_ProductOption()
    size.code = "size"
    size.name = "Size"
    size.values = skus.keys.sorted()
    create.details.options = [size]
    let product = try await admin.unary(CatalogAPI.createProduct, create, options: command())

    var prices = Tote_V1_SetPricesRequest()
    prices.productID = product.productID
    for (sku, price) in skus.sorted(by: { $0.key < $1.key }) {
        var variant = Tote_V1_AddVariantRequest()
        variant.productID = product.productID
        variant.variant.sku = sku
        var value = Tote_V1_OptionValue()
        value.option = "size"
        value.value = sku
        variant.variant.optionValues = [value]
        _ = try await admin.unary(CatalogAPI.addVariant, variant, options: command())
        var entry = Tote_V1_VariantPrice()
        entry.sku = sku
        entry.price = Money(price, "EUR").proto
        prices.prices.append(entry)

        var receive = Tote_V1_ReceiveStockRequest()
        receive.key = stockKey(sku)
        receive.quantity = stock
        receive.reference = "PO-\(sku)"
        _ = try await admin.unary(InventoryAPI.receiveStock, receive, options: command())
    }
    _ = try await admin.unary(CatalogAPI.setPrices, prices, options: command())
    var publish = Tote_V1_PublishProductRequest()
    publish.productID = product.productID
    _ = try await admin.unary(CatalogAPI.publishProduct, publish, options: command())
    await admin.close()
}

func germanAddress() -> Tote_V1_Address {
    var address = Tote_V1_Address()
    address.name = "Erika Mustermann"
    address.lines = ["Heidestraße 17"]
    address.city = "Köln"
    address.postalCode = "51147"
    address.country = "DE"
    address.email = "erika@example.com"
    return address
}

/// A storefront shopper: cart with `lines`, checkout to READY with the simulated card `token`.
/// Returns the checkout id.
func readyCheckout(_ client: ClientConnection, lines: [String: UInt32], token: String = "tok_visa_4242") async throws -> String {
    var create = Tote_V1_CreateCartRequest()
    create.currency = "EUR"
    create.customerID = "customer-1"
    let cart = try await client.unary(CartAPI.createCart, create, options: command())
    for (sku, quantity) in lines.sorted(by: { $0.key < $1.key }) {
        var add = Tote_V1_AddLineRequest()
        add.cartID = cart.cart.cartID
        add.sku = sku
        add.quantity = quantity
        _ = try await client.unary(CartAPI.addLine, add, options: command())
    }
    return try await readyCheckout(client, cartID: cart.cart.cartID, token: token)
}

/// Checks out an existing cart: addresses, standard shipping and a card; returns the ready
/// checkout's id.
func readyCheckout(_ client: ClientConnection, cartID: String, token: String = "tok_visa_4242") async throws -> String {
    var start = Tote_V1_StartCheckoutRequest()
    start.cartID = cartID
    let checkout = try await client.unary(CheckoutAPI.startCheckout, start, options: command())
    let id = checkout.checkout.checkoutID
    var address = Tote_V1_SetShippingAddressRequest()
    address.checkoutID = id
    address.address = germanAddress()
    _ = try await client.unary(CheckoutAPI.setShippingAddress, address, options: command())
    var billing = Tote_V1_SetBillingAddressRequest()
    billing.checkoutID = id
    billing.sameAsShipping = true
    _ = try await client.unary(CheckoutAPI.setBillingAddress, billing, options: command())
    var shipping = Tote_V1_ChooseShippingOptionRequest()
    shipping.checkoutID = id
    shipping.optionID = "standard"
    _ = try await client.unary(CheckoutAPI.chooseShippingOption, shipping, options: command())
    var payment = Tote_V1_ChoosePaymentMethodRequest()
    payment.checkoutID = id
    payment.method.kind = .card
    payment.method.provider = "simulated"
    payment.method.token = token
    payment.method.display = "Visa **** \(token.suffix(4))"
    let ready = try await client.unary(CheckoutAPI.choosePaymentMethod, payment, options: command())
    #expect(ready.checkout.state == .ready)
    return id
}

func placeOrder(_ client: ClientConnection, checkoutID: String, key: String = UUID().uuidString) async throws -> Tote_V1_PlaceOrderResponse {
    var place = Tote_V1_PlaceOrderRequest()
    place.checkoutID = checkoutID
    return try await client.unary(CheckoutAPI.placeOrder, place, options: command(key))
}

func getOrder(_ client: ClientConnection, _ orderID: String) async throws -> Tote_V1_OrderView {
    var get = Tote_V1_GetOrderRequest()
    get.orderID = orderID
    return try await client.unary(OrdersAPI.getOrder, get)
}

func stockLevel(_ client: ClientConnection, _ sku: String) async throws -> Tote_V1_StockLevel {
    var get = Tote_V1_GetStockRequest()
    get.sku = sku
    get.locationID = "main"
    return try await client.unary(InventoryAPI.getStock, get).levels[0]
}

@Suite("A purchase over the wire, on a real PostgreSQL", .localCluster, .serialized)
struct PurchaseTests {
    @Test("create product, receive stock, add to cart, check out, pay via a signed webhook: the order is paid and its stock committed")
    func fullPurchase() async throws {
        let node = try await Node.start()
        defer { Task { await node.stop() } }
        try await seedCatalog(node, skus: ["TEE-M": 2500, "TEE-L": 2700], stock: 10)
        let shopper = try await node.connect(apiKey: Keys.storefront)
        let operatorClient = try await node.connect(apiKey: Keys.operator)

        // 3220: the simulated provider asks for 3-D Secure; the authorization arrives as a webhook.
        let checkoutID = try await readyCheckout(shopper, lines: ["TEE-M": 2, "TEE-L": 1], token: "tok_visa_3220")
        let placed = try await placeOrder(shopper, checkoutID: checkoutID)
        // 2×25.00 + 27.00 + 4.95 shipping, VAT included (EUR prices are tax-inclusive).
        #expect(placed.total == Money(8195, "EUR").proto)
        #expect(try await stockLevel(operatorClient, "TEE-M").available == 8)
        #expect(try await stockLevel(operatorClient, "TEE-M").onHand == 10)

        var authorize = Tote_V1_AuthorizePaymentRequest()
        authorize.orderID = placed.orderID
        let started = try await shopper.unary(PaymentsAPI.authorizePayment, authorize, options: command())
        #expect(started.state == .requiresAction && started.nextAction.redirectURL.contains("3ds"))
        #expect(try await getOrder(shopper, placed.orderID).state == .placed)

        // The provider's webhooks, delivered as a payment BFF would: signed, over the wire.
        let webhooks = await node.gateway.pendingWebhooks
        #expect(webhooks.count == 2)
        for webhook in webhooks {
            _ = try await shopper.unary(PaymentsAPI.providerWebhook, webhook, options: CallOptions(timeout: .seconds(30)))
        }
        let order = try await getOrder(shopper, placed.orderID)
        #expect(order.state == .paid)
        #expect(order.timeline.filter { $0.stream.isEmpty }.map(\.eventType) == ["OrderPlaced", "OrderPaid"])
        // The complete history interleaves its payment's and reservations' events in log order.
        #expect(order.timeline.map(\.eventType) == ["OrderPlaced", "StockReserved", "StockReserved", "PaymentInitiated", "PaymentActionRequired",
                                                     "ProviderEventRecorded", "ProviderEventRecorded", "PaymentAuthorized", "OrderPaid",
                                                     "ReservationCommitted", "ReservationCommitted"])
        #expect(order.timeline.filter { $0.eventType == "ReservationCommitted" }.allSatisfy { $0.stream.hasPrefix("stock-") && $0.state == .paid })
        #expect(order.payments.first?.state == .authorized)
        let m = try await stockLevel(operatorClient, "TEE-M")
        #expect(m.onHand == 8 && m.available == 8 && m.reservations.isEmpty)

        // Every webhook again (a provider retrying): duplicates, nothing new written.
        let before = try await node.store.readAll(after: .start, limit: 10_000).count
        for webhook in webhooks {
            let again = try await shopper.unary(PaymentsAPI.providerWebhook, webhook, options: CallOptions(timeout: .seconds(30)))
            #expect(again.outcome == .duplicate)
        }
        #expect(try await node.store.readAll(after: .start, limit: 10_000).count == before)

        // A tampered payload is refused and changes nothing.
        var forged = webhooks[1]
        forged.payload = Data(String(decoding: forged.payload, as: UTF8.self).replacingOccurrences(of: "authorized", with: "failed").utf8)
        let refused = await rpcError { _ = try await shopper.unary(PaymentsAPI.providerWebhook, forged, options: CallOptions(timeout: .seconds(30))) }
        #expect(refused?.code == .permissionDenied)

        // Operators: ship, deliver; the timeline names who did what.
        var ship = Tote_V1_MarkShippedRequest()
        ship.orderID = placed.orderID
        ship.carrier = "DHL"
        ship.trackingNumber = "JD0001"
        ship.actor.id = "ops-anna"
        ship.reason = "handed to carrier"
        let shippedRefusal = await rpcError { _ = try await operatorClient.unary(OrdersAPI.markShipped, ship, options: command()) }
        #expect(shippedRefusal?.code == .failedPrecondition && shippedRefusal?.currentState?.state == "ORDER_STATE_PAID")
        await shopper.close()
        await operatorClient.close()
    }

    @Test("a replayed PlaceOrder idempotency key returns the same order; out of stock is refused with the available quantity")
    func replayAndOutOfStock() async throws {
        let node = try await Node.start()
        defer { Task { await node.stop() } }
        try await seedCatalog(node, skus: ["MUG": 1200], stock: 3)
        let shopper = try await node.connect(apiKey: Keys.storefront)

        let checkoutID = try await readyCheckout(shopper, lines: ["MUG": 2])
        let first = try await placeOrder(shopper, checkoutID: checkoutID, key: "place-1")
        let again = try await placeOrder(shopper, checkoutID: checkoutID, key: "place-1")
        #expect(again.orderID == first.orderID && again.consistencyToken == first.consistencyToken)
        // Another key for the same checkout: the same order, not a second one.
        let other = try await placeOrder(shopper, checkoutID: checkoutID, key: "place-2")
        #expect(other.orderID == first.orderID)
        #expect(try await node.store.streamNames(withPrefix: "order-").count == 1)

        let second = try await readyCheckout(shopper, lines: ["MUG": 2])
        let refused = await rpcError { _ = try await placeOrder(shopper, checkoutID: second) }
        #expect(refused?.code == .failedPrecondition)
        #expect(refused?.errorInfo?.metadata["available"] == "1")
        await shopper.close()
    }

    @Test("a command replayed with its key after its state moved on answers as the first time, not with the refusal of the new state")
    func replayAfterTheStateMovedOn() async throws {
        let node = try await Node.start()
        defer { Task { await node.stop() } }
        try await seedCatalog(node, skus: ["CAP": 900], stock: 5)
        let shopper = try await node.connect(apiKey: Keys.storefront)
        var create = Tote_V1_CreateCartRequest()
        create.currency = "EUR"
        create.customerID = "customer-replay"
        let cart = try await shopper.unary(CartAPI.createCart, create, options: command())
        var add = Tote_V1_AddLineRequest()
        add.cartID = cart.cart.cartID
        add.sku = "CAP"
        add.quantity = 1
        let first = try await shopper.unary(CartAPI.addLine, add, options: command("add-cap-1"))
        _ = try await placeOrder(shopper, checkoutID: try await readyCheckout(shopper, cartID: cart.cart.cartID))

        // The client lost the first answer and retries after the cart was checked out.
        let again = try await shopper.unary(CartAPI.addLine, add, options: command("add-cap-1"))
        #expect(again == first)
        // A new key is a new command, and the checked-out cart refuses it.
        let refused = await rpcError { _ = try await shopper.unary(CartAPI.addLine, add, options: command("add-cap-2")) }
        #expect(refused?.code == .failedPrecondition, "\(String(describing: refused))")
        await shopper.close()
    }

    @Test("an unpaid order expires: the reaper cancels it and its stock is available again")
    func unpaidOrderExpires() async throws {
        let node = try await Node.start()
        defer { Task { await node.stop() } }
        try await seedCatalog(node, skus: ["CAP": 1500], stock: 1)
        let shopper = try await node.connect(apiKey: Keys.storefront)
        let placed = try await placeOrder(shopper, checkoutID: try await readyCheckout(shopper, lines: ["CAP": 1]))
        #expect(try await stockLevel(shopper, "CAP").available == 0)

        let reaper = Reaper(runner: node.runner, trackers: node.services.reaperTrackers, interval: .milliseconds(20))
        let running = Task { try await reaper.run() }
        defer { running.cancel() }
        node.clock.advance(seconds: 16 * 60)
        let deadline = ContinuousClock.now + .seconds(15)
        while try await getOrder(shopper, placed.orderID).state != .cancelled, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        let order = try await getOrder(shopper, placed.orderID)
        #expect(order.state == .cancelled)
        #expect(order.timeline.last { $0.stream.isEmpty }?.actor.id == "tote")
        #expect(try await stockLevel(shopper, "CAP").available == 1)

        // A payment arriving now is refused: the order no longer waits for one.
        var authorize = Tote_V1_AuthorizePaymentRequest()
        authorize.orderID = placed.orderID
        let late = await rpcError { _ = try await shopper.unary(PaymentsAPI.authorizePayment, authorize, options: command()) }
        #expect(late?.code == .failedPrecondition && late?.currentState?.state == "ORDER_STATE_CANCELLED")
        await shopper.close()
    }

    @Test("webhooks out of order and declined cards: a late 'requires action' after 'authorized' is stale; a decline leaves the order placed for another try")
    func webhooksOutOfOrderAndDeclines() async throws {
        let node = try await Node.start()
        defer { Task { await node.stop() } }
        try await seedCatalog(node, skus: ["SOCK": 900], stock: 5)
        let shopper = try await node.connect(apiKey: Keys.storefront)

        // 0002: the simulated provider declines; the order stays PLACED, its stock held.
        let declinedOrder = try await placeOrder(shopper, checkoutID: try await readyCheckout(shopper, lines: ["SOCK": 1], token: "tok_visa_0002"))
        var authorize = Tote_V1_AuthorizePaymentRequest()
        authorize.orderID = declinedOrder.orderID
        let declined = try await shopper.unary(PaymentsAPI.authorizePayment, authorize, options: command())
        #expect(declined.state == .failed && declined.failureCode == "card_declined")
        #expect(try await getOrder(shopper, declinedOrder.orderID).state == .placed)
        // Another card for the same order: approved at once, the order is paid.
        authorize.method.kind = .card
        authorize.method.provider = "simulated"
        authorize.method.token = "tok_visa_4242"
        let approved = try await shopper.unary(PaymentsAPI.authorizePayment, authorize, options: command())
        #expect(approved.state == .authorized)
        #expect(try await getOrder(shopper, declinedOrder.orderID).state == .paid)

        // 3-D Secure: the provider's two webhooks arrive newest first.
        let order = try await placeOrder(shopper, checkoutID: try await readyCheckout(shopper, lines: ["SOCK": 2], token: "tok_visa_3220"))
        var second = Tote_V1_AuthorizePaymentRequest()
        second.orderID = order.orderID
        _ = try await shopper.unary(PaymentsAPI.authorizePayment, second, options: command())
        // The last two held webhooks are this payment's "requires action" and "authorized".
        let webhooks = Array(await node.gateway.pendingWebhooks.suffix(2))
        let authorized = try await shopper.unary(PaymentsAPI.providerWebhook, webhooks[1], options: CallOptions(timeout: .seconds(30)))
        #expect(authorized.outcome == .applied && authorized.state == .authorized)
        let late = try await shopper.unary(PaymentsAPI.providerWebhook, webhooks[0], options: CallOptions(timeout: .seconds(30)))
        #expect(late.outcome == .stale && late.state == .authorized)
        #expect(try await getOrder(shopper, order.orderID).state == .paid)
        let stock = try await stockLevel(shopper, "SOCK")
        #expect(stock.onHand == 2 && stock.available == 2)  // 5 − 1 − 2 committed
        await shopper.close()
    }
}
