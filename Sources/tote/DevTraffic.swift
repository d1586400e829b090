import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import ToteAPI
import ToteProto
import ToteRPC

/// `tote dev --traffic N`: simulated shoppers at N orders per second, over the wire like a
/// storefront BFF. Each one browses (autocomplete, a category's facets, a product), fills a cart,
/// checks out and pays with the simulated card gateway: most cards succeed, some need 3-D Secure
/// (settled by the gateway's signed webhook), some are declined, some carts are abandoned, and a
/// sold-out SKU is refused as out of stock — so paid orders flow on to the warehouse stations and
/// every outcome shows in the metrics. Prints a summary every 10 seconds.
struct DevTraffic: Service {
    var host: String
    var port: Int
    var apiKey: String
    var ordersPerSecond: Double
    var logger = Logger(label: "tote.traffic")

    /// Outcomes so far.
    struct Tally: Sendable {
        var paid = 0, awaitingAction = 0, declined = 0, outOfStock = 0, abandoned = 0, failed = 0
        var line: String {
            "traffic: \(paid) paid, \(awaitingAction) via 3-D Secure, \(declined) declined, \(outOfStock) out of stock, \(abandoned) carts abandoned, \(failed) failed"
        }
    }

    func run() async throws {
        let connection = try await ClientConnection.connect(host: host, port: port, configuration: .init(apiKey: apiKey))
        defer { Task { await connection.close() } }
        let state = State()
        let interval = Duration.seconds(1) / max(ordersPerSecond, 0.01)
        var next = ContinuousClock.now
        var lastReport = ContinuousClock.now
        await withDiscardingTaskGroup { group in
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                next += interval
                // A shopper per tick, up to 64 at once (when the node falls behind, fewer start).
                if state.startShopper() {
                    group.addTask {
                        let outcome = await Self.shop(connection)
                        state.finished(outcome)
                    }
                }
                if ContinuousClock.now - lastReport > .seconds(10) {
                    lastReport = .now
                    FileHandle.standardOutput.write(Data((state.summary + "\n").utf8))
                }
                try? await Task.sleep(until: next)
            }
        }
    }

    /// Shoppers in flight and the outcomes so far, shared by the shoppers.
    final class State: Sendable {
        private let tally = Mutex(Tally())
        private let inFlight = Mutex(0)

        /// Whether another shopper may start (at most 64 at once).
        func startShopper() -> Bool {
            inFlight.withLock { count in
                guard count < 64 else { return false }
                count += 1
                return true
            }
        }

        func finished(_ outcome: Outcome) {
            tally.withLock { DevTraffic.count(outcome, into: &$0) }
            inFlight.withLock { $0 -= 1 }
        }

        var summary: String { tally.withLock { $0.line } }
    }

    enum Outcome { case paid, awaitingAction, declined, outOfStock, abandoned, failed(String) }

    static func count(_ outcome: Outcome, into tally: inout Tally) {
        switch outcome {
        case .paid: tally.paid += 1
        case .awaitingAction: tally.awaitingAction += 1
        case .declined: tally.declined += 1
        case .outOfStock: tally.outOfStock += 1
        case .abandoned: tally.abandoned += 1
        case .failed: tally.failed += 1
        }
    }

    static let query = CallOptions(timeout: .seconds(5))
    static func command() -> CallOptions { CallOptions(timeout: .seconds(10), idempotencyKey: UUID().uuidString) }

    /// One shopper's visit, start to payment: the navigation tree, a category's facets, autocomplete,
    /// a product page, then a cart of some of its variants.
    static func shop(_ client: ClientConnection) async -> Outcome {
        do {
            let tree = try await client.unary(QueryAPI.getCategoryTree, Tote_V1_GetCategoryTreeRequest(), options: query)
            guard let category = tree.categories.randomElement() else { return .abandoned }
            var search = Tote_V1_SearchCatalogRequest()
            search.categorySlug = category.slug
            search.currency = "EUR"
            search.inStockOnly = true
            let found = try await client.unary(QueryAPI.searchCatalog, search, options: query)
            guard let summary = found.products.randomElement() else { return .abandoned }
            var complete = Tote_V1_AutocompleteRequest()
            complete.prefix = String(summary.name.prefix(Int.random(in: 3...6))).lowercased()
            _ = try await client.unary(QueryAPI.autocomplete, complete, options: query)
            var page = Tote_V1_GetProductRequest()
            page.productID = summary.productID
            let product = try await client.unary(QueryAPI.getProduct, page, options: query)
            let variants = product.variants.map(\.sku)
            guard !variants.isEmpty else { return .abandoned }

            var create = Tote_V1_CreateCartRequest()
            create.currency = "EUR"
            create.customerID = "shopper-\(Int.random(in: 1...5000))"
            let cart = try await client.unary(CartAPI.createCart, create, options: command())
            for sku in variants.shuffled().prefix(Int.random(in: 1...3)) {
                var add = Tote_V1_AddLineRequest()
                add.cartID = cart.cart.cartID
                add.sku = sku
                add.quantity = UInt32.random(in: 1...2)
                _ = try await client.unary(CartAPI.addLine, add, options: command())
            }
            if Int.random(in: 0..<10) == 0 { return .abandoned }

            var start = Tote_V1_StartCheckoutRequest()
            start.cartID = cart.cart.cartID
            let checkoutID = try await client.unary(CheckoutAPI.startCheckout, start, options: command()).checkout.checkoutID
            var address = Tote_V1_SetShippingAddressRequest()
            address.checkoutID = checkoutID
            address.address.name = "Erika Mustermann"
            address.address.lines = ["Heidestraße 17"]
            address.address.city = "Köln"
            address.address.postalCode = "51147"
            address.address.country = "DE"
            address.address.email = "erika@example.com"
            _ = try await client.unary(CheckoutAPI.setShippingAddress, address, options: command())
            var billing = Tote_V1_SetBillingAddressRequest()
            billing.checkoutID = checkoutID
            billing.sameAsShipping = true
            _ = try await client.unary(CheckoutAPI.setBillingAddress, billing, options: command())
            var shipping = Tote_V1_ChooseShippingOptionRequest()
            shipping.checkoutID = checkoutID
            shipping.optionID = "standard"
            _ = try await client.unary(CheckoutAPI.chooseShippingOption, shipping, options: command())
            // Mostly good cards; some ask for 3-D Secure (3220), some are declined (0002).
            let token = ["tok_visa_4242", "tok_visa_4242", "tok_visa_4242", "tok_visa_4242", "tok_visa_4242", "tok_visa_4242", "tok_visa_3220", "tok_visa_0002"].randomElement()!
            var payment = Tote_V1_ChoosePaymentMethodRequest()
            payment.checkoutID = checkoutID
            payment.method.kind = .card
            payment.method.provider = "simulated"
            payment.method.token = token
            payment.method.display = "Visa **** \(token.suffix(4))"
            _ = try await client.unary(CheckoutAPI.choosePaymentMethod, payment, options: command())

            var place = Tote_V1_PlaceOrderRequest()
            place.checkoutID = checkoutID
            let placed: Tote_V1_PlaceOrderResponse
            do {
                placed = try await client.unary(CheckoutAPI.placeOrder, place, options: command())
            } catch let error as RPCError where error.code == .failedPrecondition {
                return .outOfStock
            }
            var authorize = Tote_V1_AuthorizePaymentRequest()
            authorize.orderID = placed.orderID
            do {
                let payment = try await client.unary(PaymentsAPI.authorizePayment, authorize, options: command())
                switch payment.state {
                case .requiresAction: return .awaitingAction
                case .authorized, .captured: return .paid
                default: return .declined
                }
            } catch let error as RPCError where error.code == .failedPrecondition {
                return .declined
            }
        } catch {
            return .failed("\(error)")
        }
    }
}
