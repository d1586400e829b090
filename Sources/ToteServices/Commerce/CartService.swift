import Foundation
import SwiftProtobuf
import ToteAPI
import ToteCommands
import ToteDomain

/// Serves tote.v1.Cart: server-side carts decided by ``CartDecider``. Unit prices always come
/// from the catalog (the SKU's product, in the cart's currency and customer group), and every
/// reply carries the cart priced afresh by ``CartPricing`` with the active promotions.
public struct CartService: RPCService, Sendable {
    let commands: CommandSupport
    let promotions: PromotionRegistry

    public init(commands: CommandSupport, promotions: PromotionRegistry) {
        self.commands = commands
        self.promotions = promotions
    }

    public func register(into router: inout RPCRouter) {
        router.register(CartAPI.createCart, unary: { request, context in
            let cartID = UUID().uuidString.lowercased()
            return try await cart(cartID, context, reply: Tote_V1_CreateCartResponse.self, mustExist: false) { unit, stream in
                try await unit.decide(CartDecider.self, stream, .create(cartID: cartID, customerID: request.customerID, currency: request.currency, customerGroup: request.customerGroup)).events.count
            }
        })
        router.register(CartAPI.addLine, unary: { request, context in
            let lineID = UUID().uuidString.lowercased()
            var reply = try await cart(request.cartID, context, reply: Tote_V1_AddLineResponse.self) { unit, stream in
                let cart = try await unit.load(CartDecider.self, stream)
                let item = try await Self.catalogItem(sku: request.sku, currency: cart.currency, customerGroup: cart.customerGroup, &unit, field: "sku")
                let line = CartDecider.Line(lineID: lineID, sku: request.sku, productID: item.productID, displayName: item.displayName, quantity: Int64(request.quantity), unitPrice: item.unitPrice, imageURL: item.imageURL)
                return try await unit.decide(CartDecider.self, stream, .addLine(line)).events.count
            }
            reply.lineID = reply.cart.lines.first { $0.sku == request.sku }?.lineID ?? lineID
            return reply
        })
        router.register(CartAPI.changeLineQuantity, unary: { request, context in
            try await cart(request.cartID, context, reply: Tote_V1_ChangeLineQuantityResponse.self) { unit, stream in
                try await unit.decide(CartDecider.self, stream, .changeLineQuantity(lineID: request.lineID, quantity: Int64(request.quantity))).events.count
            }
        })
        router.register(CartAPI.removeLine, unary: { request, context in
            try await cart(request.cartID, context, reply: Tote_V1_RemoveLineResponse.self) { unit, stream in
                try await unit.decide(CartDecider.self, stream, .removeLine(lineID: request.lineID)).events.count
            }
        })
        router.register(CartAPI.applyCoupon, unary: { request, context in
            try await cart(request.cartID, context, reply: Tote_V1_ApplyCouponResponse.self) { unit, stream in
                let resolution = try await Self.resolveCoupon(request.code, &unit)
                return try await unit.decide(CartDecider.self, stream, .applyCoupon(code: request.code, resolution: resolution)).events.count
            }
        })
        router.register(CartAPI.removeCoupon, unary: { request, context in
            try await cart(request.cartID, context, reply: Tote_V1_RemoveCouponResponse.self) { unit, stream in
                try await unit.decide(CartDecider.self, stream, .removeCoupon(code: request.code)).events.count
            }
        })
        router.register(CartAPI.mergeCarts, unary: { request, context in
            guard !request.guestCartID.isEmpty else { throw RPCError.invalidArgument("guest_cart_id is required", fieldViolations: [("guest_cart_id", "required")]) }
            let target = request.customerCartID.isEmpty ? request.guestCartID : request.customerCartID
            return try await cart(target, context, reply: Tote_V1_MergeCartsResponse.self) { unit, stream in
                let guestStream = StreamName.cart(request.guestCartID)
                let guest = try await unit.load(CartDecider.self, guestStream)
                guard guest.status != .unspecified else { throw DomainError(.notFound, "cart \(request.guestCartID) does not exist") }
                if request.customerCartID.isEmpty || request.customerCartID == request.guestCartID {
                    // The customer has no cart: the guest cart becomes theirs.
                    return try await unit.decide(CartDecider.self, stream, .assignToCustomer(customerID: request.customerID, customerGroup: request.customerGroup)).events.count
                }
                let customer = try await unit.load(CartDecider.self, stream)
                guard customer.customerID == request.customerID else {
                    throw DomainError.invalid("customer_cart_id", "cart \(request.customerCartID) is not customer \(request.customerID)'s")
                }
                let merged = try await unit.decide(CartDecider.self, stream, .mergeGuestCart(guest: guest)).events.count
                if merged > 0 {
                    try await unit.decide(CartDecider.self, guestStream, .markMergedInto(cartID: request.customerCartID, customerID: request.customerID))
                }
                return merged
            }
        })
        router.register(CartAPI.getCart, unary: { request, _ in
            guard !request.cartID.isEmpty else { throw RPCError.invalidArgument("cart_id is required", fieldViolations: [("cart_id", "required")]) }
            let (state, version) = try await commands.runner.read(CartDecider.self, StreamName.cart(request.cartID))
            guard version > 0 else { throw RPCError(.notFound, "cart \(request.cartID) does not exist") }
            return try view(state, version: version)
        })
    }

    /// A command on one cart; the reply carries the cart's new version and its priced view.
    private func cart<Reply: SwiftProtobuf.Message & CartReply>(
        _ cartID: String,
        _ context: ServerContext,
        reply: Reply.Type,
        mustExist: Bool = true,
        _ body: @escaping (inout UnitOfWork, String) async throws -> Int
    ) async throws -> Reply {
        guard !cartID.isEmpty else { throw RPCError.invalidArgument("cart_id is required", fieldViolations: [("cart_id", "required")]) }
        return try await commands.run(context, setToken: { $0.consistencyToken = $1 }) { unit in
            let stream = StreamName.cart(cartID)
            if mustExist {
                let state = try await unit.load(CartDecider.self, stream)
                guard state.status != .unspecified else { throw DomainError(.notFound, "cart \(cartID) does not exist") }
            }
            let written = try await body(&unit, stream)
            let version = unit.version(of: stream) + Int64(written)
            var reply = Reply()
            reply.streamVersion = version
            reply.cart = try view(try await unit.load(CartDecider.self, stream), version: version)
            return reply
        }
    }

    /// The cart priced now with the active promotions.
    func view(_ state: CartDecider.State, version: Int64) throws -> Tote_V1_CartView {
        let priced = try CartPricing.view(state, rules: promotions.activeRules, nowMicros: commands.runner.nowMicros)
        return CartPricing.proto(state, priced, version: version)
    }

    /// What the catalog says about a SKU for a cart: its product, display name, image and the
    /// unit price in `currency` for `customerGroup`. Refuses unknown, unsellable or unpriced SKUs.
    static func catalogItem(sku: String, currency: String, customerGroup: String, _ unit: inout UnitOfWork, field: String) async throws -> (productID: String, displayName: String, unitPrice: Money, imageURL: String) {
        guard !sku.isEmpty else { throw DomainError.invalid(field, "required") }
        let claim = try await unit.load(SkuClaimDecider.self, StreamName.skuClaim(sku))
        guard let productID = claim.productId else { throw DomainError(.notFound, "SKU \(sku) is not in the catalog") }
        let product = try await unit.load(ProductDecider.self, StreamName.product(productID))
        guard product.isSellable(sku: sku) else {
            throw DomainError.wrongState("SKU \(sku) is not for sale", currentState: product.status.protoName)
        }
        guard let price = product.unitPrice(sku: sku, currency: currency, customerGroup: customerGroup) else {
            throw DomainError(.failedPrecondition, "SKU \(sku) has no price in \(currency)", subject: sku)
        }
        let variant = product.variant(sku: sku)
        let options = variant.map { $0.optionValues.sorted { $0.key < $1.key }.map(\.value).joined(separator: " / ") } ?? ""
        let name = options.isEmpty ? product.details.name : "\(product.details.name) (\(options))"
        let image = variant?.media.first?.url ?? product.details.media.first?.url ?? ""
        return (productID, name, price, image)
    }

    /// The promotion a coupon code belongs to, if it is active; the code of an ended promotion
    /// is refused (failedPrecondition, `PROMOTION_STATUS_INACTIVE`).
    static func resolveCoupon(_ code: String, _ unit: inout UnitOfWork) async throws -> CartDecider.CouponResolution {
        guard !code.isEmpty else { throw DomainError.invalid("code", "required") }
        let claim = try await unit.load(CouponCodeClaimDecider.self, StreamName.couponClaim(code))
        guard !claim.promotionID.isEmpty else { return .unknown }
        let promotion = try await unit.load(PromotionDecider.self, StreamName.promotion(claim.promotionID))
        if promotion.status == .inactive {
            throw DomainError.wrongState("coupon code \(claim.code): its promotion has ended", currentState: promotion.status.rawValue)
        }
        guard promotion.status == .active, let rule = promotion.rule else { return .unknown }
        return .promotion(rule)
    }
}

/// Cart command replies: new version, token and the priced cart (fields 1–3).
protocol CartReply: VersionedReply {
    var cart: Tote_V1_CartView { get set }
}

extension Tote_V1_CreateCartResponse: CartReply {}
extension Tote_V1_AddLineResponse: CartReply {}
extension Tote_V1_ChangeLineQuantityResponse: CartReply {}
extension Tote_V1_RemoveLineResponse: CartReply {}
extension Tote_V1_ApplyCouponResponse: CartReply {}
extension Tote_V1_RemoveCouponResponse: CartReply {}
extension Tote_V1_MergeCartsResponse: CartReply {}
