import ToteProto

/// A price list (stream ``StreamName/priceList(_:)``): the prices of one currency for one customer
/// group (the empty group is the currency's default list). Products hold the prices themselves
/// (``ProductDecider/Command/setPrices(productId:scope:prices:removeSkus:)``); the service reads a
/// list's currency and group from this state to build the ``ProductDecider/PriceScope``.
///
/// "At most one list per (currency, customer group)" spans streams and is the service's to
/// enforce (e.g. with a claim stream like ``SkuClaimDecider``'s).
public enum PriceListDecider: Decider {
    public typealias Event = Tote_V1_PriceListEvent

    /// What the decider knows about one price list.
    public struct State: Sendable, Equatable {
        /// Set by ``Tote_V1_PriceListCreated``; nil while it does not exist.
        public var priceListId: String?
        public var name = ""
        /// ISO 4217 code of every price in the list.
        public var currency = ""
        /// Empty = the currency's default list.
        public var customerGroup = ""
        /// Whether its prices include tax.
        public var taxInclusive = false
        public var createdAtMicros: Int64 = 0

        public init() {}

        /// Whether the list was created.
        public var exists: Bool { priceListId != nil }

        /// The scope a product's prices in this list are set in.
        public var scope: ProductDecider.PriceScope? {
            priceListId.map { ProductDecider.PriceScope(priceListId: $0, currency: currency, customerGroup: customerGroup) }
        }
    }

    /// What can be asked of a price list.
    public enum Command: Sendable, Equatable {
        /// Creates it. A repeat with the same values is a no-op; other values → alreadyExists.
        case create(priceListId: String, name: String, currency: String, customerGroup: String, taxInclusive: Bool)
    }

    public static var initialState: State { State() }

    public static func decide(_ command: Command, state: State, context: CommandContext) throws(DomainError) -> [Event] {
        switch command {
        case let .create(priceListId, name, currency, customerGroup, taxInclusive):
            var v = Validator()
            CatalogRules.id(priceListId, "price_list.price_list_id", into: &v)
            CatalogRules.text(name, "price_list.name", max: CatalogRules.maxNameLength, required: true, into: &v)
            v.require(isCurrencyCode(currency), "price_list.currency", "must be an ISO 4217 code such as EUR")
            if !customerGroup.isEmpty { CatalogRules.id(customerGroup, "price_list.customer_group", into: &v) }
            try v.check()
            if state.exists {
                if state.priceListId == priceListId && state.name == name && state.currency == currency
                    && state.customerGroup == customerGroup && state.taxInclusive == taxInclusive {
                    return []
                }
                throw DomainError(.alreadyExists, "price list \(state.priceListId ?? priceListId) already exists")
            }
            var list = Tote_V1_PriceList()
            list.priceListID = priceListId
            list.name = name
            list.currency = currency
            list.customerGroup = customerGroup
            list.taxInclusive = taxInclusive
            var e = Tote_V1_PriceListCreated()
            e.priceList = list
            e.createdAt = CatalogRules.timestamp(context.nowMicros)
            var envelope = Event()
            envelope.event = .priceListCreated(e)
            return [envelope]
        }
    }

    public static func evolve(_ state: State, _ event: Event) -> State {
        var s = state
        switch event.event {
        case .priceListCreated(let e):
            s.priceListId = e.priceList.priceListID
            s.name = e.priceList.name
            s.currency = e.priceList.currency
            s.customerGroup = e.priceList.customerGroup
            s.taxInclusive = e.priceList.taxInclusive
            s.createdAtMicros = e.createdAt.unixMicros
        case nil:
            break
        }
        return s
    }
}

extension Tote_V1_PriceListEvent: DomainEvent {
    /// The case message's name, e.g. `PriceListCreated`.
    public var typeName: String {
        switch event {
        case .priceListCreated: "PriceListCreated"
        case nil: "PriceListEvent"
        }
    }
}
