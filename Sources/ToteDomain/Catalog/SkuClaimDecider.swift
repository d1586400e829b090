import ToteProto

/// Makes a SKU unique across products: one stream per SKU (``StreamName/skuClaim(_:)``) whose
/// ``Tote_V1_SkuClaimed`` names the product that owns it. The service appends the claim and the
/// product's ``Tote_V1_VariantAdded`` in one transaction, so a SKU never ends up on two products.
public enum SkuClaimDecider: Decider {
    public typealias Event = Tote_V1_SkuClaimEvent

    /// Who owns the SKU, if anyone.
    public struct State: Sendable, Equatable {
        /// Set by the claim.
        public var sku: String?
        /// The owning product; nil while unclaimed.
        public var productId: String?

        public init() {}
    }

    /// What can be asked of a SKU claim.
    public enum Command: Sendable, Equatable {
        /// Claims `sku` for `productId`: alreadyExists (naming the owner) if another product holds
        /// it; a no-op if this product already does.
        case claim(sku: String, productId: String)
    }

    public static var initialState: State { State() }

    public static func decide(_ command: Command, state: State, context: CommandContext) throws(DomainError) -> [Event] {
        switch command {
        case let .claim(sku, productId):
            var v = Validator()
            CatalogRules.id(sku, "variant.sku", into: &v)
            CatalogRules.id(productId, "product_id", into: &v)
            try v.check()
            if let owner = state.productId {
                if owner == productId { return [] }
                throw DomainError(.alreadyExists, "SKU \(sku) already belongs to product \(owner)", subject: owner)
            }
            var e = Tote_V1_SkuClaimed()
            e.sku = sku
            e.productID = productId
            e.claimedAt = CatalogRules.timestamp(context.nowMicros)
            var envelope = Event()
            envelope.event = .skuClaimed(e)
            return [envelope]
        }
    }

    public static func evolve(_ state: State, _ event: Event) -> State {
        var s = state
        switch event.event {
        case .skuClaimed(let e):
            s.sku = e.sku
            s.productId = e.productID
        case nil:
            break
        }
        return s
    }
}

extension Tote_V1_SkuClaimEvent: DomainEvent {
    /// The case message's name: `SkuClaimed`.
    public var typeName: String {
        switch event {
        case .skuClaimed: "SkuClaimed"
        case nil: "SkuClaimEvent"
        }
    }
}
