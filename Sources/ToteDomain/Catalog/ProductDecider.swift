import ToteProto

/// A product (stream ``StreamName/product(_:)``): its details, options, variants (SKUs) and prices,
/// and its life: draft → published → archived (final; a draft can be archived too).
///
/// SKU uniqueness across products is not decided here: the service claims each new SKU through
/// ``SkuClaimDecider`` and appends the claim and ``Tote_V1_VariantAdded`` atomically. The state
/// offers the cart's pure price lookup, ``State/unitPrice(sku:currency:customerGroup:)``, and
/// ``State/isSellable(sku:)``.
public enum ProductDecider: Decider {
    public typealias Event = Tote_V1_ProductEvent

    /// What the decider knows about one product.
    public struct State: Sendable, Equatable {
        /// Set by ``Tote_V1_ProductCreated``; nil while the product does not exist.
        public var productId: String?
        public var status: Status = .draft
        public var details = Details(name: "", slug: "")
        /// In the order they were added.
        public var variants: [Variant] = []
        /// Prices by (currency, customer group), then by SKU. The empty group holds base prices.
        public var prices: [PriceSlot: [String: Price]] = [:]
        /// The price list that last set prices in each slot ("" for base prices).
        public var priceListIds: [PriceSlot: String] = [:]
        public var createdAtMicros: Int64 = 0
        public var updatedAtMicros: Int64 = 0
        /// When it was first published; nil while it never was.
        public var publishedAtMicros: Int64?

        public init() {}

        /// Whether the product was created.
        public var exists: Bool { productId != nil }

        /// The variant with `sku`, if the product has it.
        public func variant(sku: String) -> Variant? {
            variants.first { $0.sku == sku }
        }

        /// Whether `sku` can be put in a cart: the product is published and has that variant.
        /// (A price is a separate question: see ``unitPrice(sku:currency:customerGroup:)``.)
        public func isSellable(sku: String) -> Bool {
            exists && status == .published && variant(sku: sku) != nil
        }

        /// The unit price of `sku` in `currency` for `customerGroup`: the price of the group's
        /// price list if it has one for the SKU, else the currency's base price; nil if unpriced
        /// (or no such variant). Does not look at the status: ask ``isSellable(sku:)`` too.
        public func unitPrice(sku: String, currency: String, customerGroup: String = "") -> Money? {
            priceEntry(sku: sku, currency: currency, customerGroup: customerGroup)?.price
        }

        /// The whole price entry (with the compare-at price) the lookup above uses.
        public func priceEntry(sku: String, currency: String, customerGroup: String = "") -> Price? {
            guard variant(sku: sku) != nil else { return nil }
            if !customerGroup.isEmpty, let price = prices[PriceSlot(currency: currency, customerGroup: customerGroup)]?[sku] {
                return price
            }
            return prices[PriceSlot(currency: currency, customerGroup: "")]?[sku]
        }

        /// Whether some variant has some price (publishing needs one).
        public var hasPricedVariant: Bool {
            variants.contains { v in prices.values.contains { $0[v.sku] != nil } }
        }

        /// The operator's view in the wire shape (`tote.v1.Product`); `version` is the stream's.
        public func proto(version: Int64) -> Tote_V1_Product {
            var p = Tote_V1_Product()
            p.productID = productId ?? ""
            p.status = exists ? status.proto : .unspecified
            p.details = details.proto
            p.variants = variants.map { $0.proto(options: details.options) }
            p.prices = prices.keys.sorted { ($0.currency, $0.customerGroup) < ($1.currency, $1.customerGroup) }.map { slot in
                var pp = Tote_V1_ProductPrices()
                pp.priceListID = priceListIds[slot] ?? ""
                pp.prices = (prices[slot] ?? [:]).values.sorted { $0.sku < $1.sku }.map(\.proto)
                return pp
            }
            p.version = version
            if exists {
                p.createdAt = CatalogRules.timestamp(createdAtMicros)
                p.updatedAt = CatalogRules.timestamp(updatedAtMicros)
            }
            if let publishedAtMicros { p.publishedAt = CatalogRules.timestamp(publishedAtMicros) }
            return p
        }
    }

    /// What can be asked of a product. Every command names the product; the service routes it to
    /// ``StreamName/product(_:)``.
    public enum Command: Sendable, Equatable {
        /// Creates the product in draft with its options and no variants. A repeat with the same
        /// details is a no-op; other details → alreadyExists.
        case create(productId: String, details: Details)
        /// Replaces the fields the update sets. Options may change only so that every variant
        /// still has exactly one allowed value per option.
        case updateDetails(productId: String, update: DetailsUpdate)
        /// Adds a variant: a SKU (claimed first by the service through ``SkuClaimDecider``) with
        /// one allowed value per product option, a combination no other variant has.
        case addVariant(productId: String, variant: Variant)
        /// Sets and removes prices in one scope (the service looks up the price list's currency
        /// and customer group, or uses ``PriceScope/base(_:)``).
        case setPrices(productId: String, scope: PriceScope, prices: [Price], removeSkus: [String])
        /// Makes it sellable; needs at least one variant with a price.
        case publish(productId: String)
        /// Withdraws it from sale for good.
        case archive(productId: String, reason: String)
    }

    public static var initialState: State { State() }

    public static func decide(_ command: Command, state: State, context: CommandContext) throws(DomainError) -> [Event] {
        let now = context.nowMicros
        switch command {
        case let .create(productId, details):
            var v = Validator()
            CatalogRules.id(productId, "product_id", into: &v)
            validate(details, into: &v)
            try v.check()
            if state.exists {
                if state.productId == productId && state.details == details.normalized { return [] }
                throw DomainError(.alreadyExists, "product \(state.productId ?? productId) already exists")
            }
            var e = Tote_V1_ProductCreated()
            e.productID = productId
            e.details = details.normalized.proto
            e.createdAt = CatalogRules.timestamp(now)
            return [event(.productCreated(e))]

        case let .updateDetails(productId, update):
            try existing(productId, state)
            try notArchived(state, "updated")
            let (details, changed) = update.applied(to: state.details)
            var v = Validator()
            validate(details, into: &v)
            validateVariantsStillFit(state.variants, options: details.options, into: &v)
            try v.check()
            if changed.isEmpty { return [] }
            var e = Tote_V1_ProductDetailsUpdated()
            e.productID = productId
            e.details = details.proto
            e.changedFields = changed
            e.updatedAt = CatalogRules.timestamp(now)
            return [event(.productDetailsUpdated(e))]

        case let .addVariant(productId, requested):
            let variant = requested.normalized
            try existing(productId, state)
            try notArchived(state, "given variants")
            var v = Validator()
            validate(variant, options: state.details.options, into: &v)
            try v.check()
            if let same = state.variant(sku: variant.sku) {
                if same == variant { return [] }
                throw DomainError(.alreadyExists, "product \(productId) already has variant \(variant.sku)")
            }
            if let twin = state.variants.first(where: { $0.optionValues == variant.optionValues }) {
                throw DomainError(.alreadyExists, "variant \(twin.sku) already has these option values")
            }
            var e = Tote_V1_VariantAdded()
            e.productID = productId
            e.variant = variant.proto(options: state.details.options)
            e.addedAt = CatalogRules.timestamp(now)
            return [event(.variantAdded(e))]

        case let .setPrices(productId, scope, prices, removeSkus):
            try existing(productId, state)
            try notArchived(state, "priced")
            var v = Validator()
            validate(scope, prices: prices, removeSkus: removeSkus, state: state, into: &v)
            try v.check()
            let current = state.prices[scope.slot] ?? [:]
            let changed = prices.filter { current[$0.sku] != $0 }
            let removed = removeSkus.filter { current[$0] != nil }
            if changed.isEmpty && removed.isEmpty { return [] }
            var e = Tote_V1_ProductPricesSet()
            e.productID = productId
            e.priceListID = scope.priceListId
            e.currency = scope.currency
            e.customerGroup = scope.customerGroup
            e.prices = changed.map(\.proto)
            e.removedSkus = removed
            e.setAt = CatalogRules.timestamp(now)
            return [event(.productPricesSet(e))]

        case let .publish(productId):
            try existing(productId, state)
            switch state.status {
            case .published: return []
            case .archived: throw .wrongState("product \(productId) is archived", currentState: state.status.protoName)
            case .draft:
                guard state.hasPricedVariant else {
                    throw .wrongState("product \(productId) needs at least one variant with a price to be published", currentState: state.status.protoName)
                }
            }
            var e = Tote_V1_ProductPublished()
            e.productID = productId
            e.publishedAt = CatalogRules.timestamp(now)
            return [event(.productPublished(e))]

        case let .archive(productId, reason):
            try existing(productId, state)
            var v = Validator()
            CatalogRules.text(reason, "reason", max: CatalogRules.maxShortTextLength, required: false, into: &v)
            try v.check()
            if state.status == .archived { return [] }
            var e = Tote_V1_ProductArchived()
            e.productID = productId
            e.reason = reason
            e.archivedAt = CatalogRules.timestamp(now)
            return [event(.productArchived(e))]
        }
    }

    public static func evolve(_ state: State, _ event: Event) -> State {
        var s = state
        switch event.event {
        case .productCreated(let e):
            s.productId = e.productID
            s.status = .draft
            s.details = Details(e.details)
            s.createdAtMicros = e.createdAt.unixMicros
            s.updatedAtMicros = e.createdAt.unixMicros
        case .productDetailsUpdated(let e):
            s.details = Details(e.details)
            s.updatedAtMicros = e.updatedAt.unixMicros
        case .variantAdded(let e):
            s.variants.append(Variant(e.variant))
            s.updatedAtMicros = e.addedAt.unixMicros
        case .productPricesSet(let e):
            let slot = PriceSlot(currency: e.currency, customerGroup: e.customerGroup)
            var slotPrices = s.prices[slot] ?? [:]
            for p in e.prices { slotPrices[p.sku] = Price(p) }
            for sku in e.removedSkus { slotPrices[sku] = nil }
            s.prices[slot] = slotPrices.isEmpty ? nil : slotPrices
            s.priceListIds[slot] = slotPrices.isEmpty ? nil : e.priceListID
            s.updatedAtMicros = e.setAt.unixMicros
        case .productPublished(let e):
            s.status = .published
            if s.publishedAtMicros == nil { s.publishedAtMicros = e.publishedAt.unixMicros }
            s.updatedAtMicros = e.publishedAt.unixMicros
        case .productArchived(let e):
            s.status = .archived
            s.updatedAtMicros = e.archivedAt.unixMicros
        case nil:
            break
        }
        return s
    }

    // MARK: - Checks

    /// Refuses a command for a product that does not exist, or a mismatched id.
    private static func existing(_ productId: String, _ state: State) throws(DomainError) {
        var v = Validator()
        CatalogRules.id(productId, "product_id", into: &v)
        try v.check()
        guard let id = state.productId else { throw DomainError(.notFound, "no product \(productId)") }
        guard id == productId else { throw .invalid("product_id", "this stream holds product \(id), not \(productId)") }
    }

    private static func notArchived(_ state: State, _ what: String) throws(DomainError) {
        if state.status == .archived {
            throw .wrongState("product \(state.productId ?? "") is archived and cannot be \(what)", currentState: state.status.protoName)
        }
    }

    static func validate(_ d: Details, into v: inout Validator) {
        CatalogRules.text(d.name, "details.name", max: CatalogRules.maxNameLength, required: true, into: &v)
        CatalogRules.slug(d.slug, "details.slug", into: &v)
        CatalogRules.text(d.brand, "details.brand", max: CatalogRules.maxNameLength, required: false, into: &v)
        CatalogRules.text(d.summary, "details.summary", max: CatalogRules.maxShortTextLength, required: false, into: &v)
        CatalogRules.text(d.description, "details.body", max: CatalogRules.maxDescriptionLength, required: false, into: &v)
        CatalogRules.count(d.categoryIds, "details.category_slugs", into: &v)
        for (i, id) in d.categoryIds.enumerated() {
            CatalogRules.id(id, "details.category_slugs[\(i)]", into: &v)
            v.require(!d.categoryIds[..<i].contains(id), "details.category_slugs[\(i)]", "is listed twice")
        }
        validate(d.attributes, "details.attributes", into: &v)
        CatalogRules.count(d.options, "details.options", into: &v)
        for (i, option) in d.options.enumerated() {
            let f = "details.options[\(i)]"
            CatalogRules.code(option.code, "\(f).code", into: &v)
            v.require(!d.options[..<i].contains { $0.code == option.code }, "\(f).code", "is used by another option")
            CatalogRules.text(option.name, "\(f).name", max: CatalogRules.maxNameLength, required: true, into: &v)
            v.require(!option.values.isEmpty, "\(f).values", "needs at least one value")
            CatalogRules.count(option.values, "\(f).values", into: &v)
            for (j, value) in option.values.enumerated() {
                CatalogRules.text(value, "\(f).values[\(j)]", max: CatalogRules.maxNameLength, required: true, into: &v)
                v.require(!option.values[..<j].contains(value), "\(f).values[\(j)]", "is listed twice")
            }
        }
        validate(d.media, "details.media", into: &v)
        CatalogRules.count(d.searchKeywords, "details.search_keywords", into: &v)
        for (i, keyword) in d.searchKeywords.enumerated() {
            CatalogRules.text(keyword, "details.search_keywords[\(i)]", max: CatalogRules.maxNameLength, required: true, into: &v)
        }
    }

    static func validate(_ attributes: [Attribute], _ field: String, into v: inout Validator) {
        CatalogRules.count(attributes, field, into: &v)
        for (i, attribute) in attributes.enumerated() {
            let f = "\(field)[\(i)]"
            CatalogRules.code(attribute.key, "\(f).key", into: &v)
            v.require(!attributes[..<i].contains { $0.key == attribute.key }, "\(f).key", "is used by another attribute")
            v.require(!attribute.values.isEmpty, "\(f).values", "needs at least one value")
            CatalogRules.count(attribute.values, "\(f).values", into: &v)
            if let first = attribute.values.first {
                v.require(attribute.values.allSatisfy { $0.kind == first.kind }, "\(f).values", "must all be of one type")
            }
            for (j, value) in attribute.values.enumerated() {
                switch value {
                case .text(let s):
                    CatalogRules.text(s, "\(f).values[\(j)]", max: CatalogRules.maxShortTextLength, required: true, into: &v)
                case .number(_, let scale):
                    v.require(scale <= CatalogRules.maxDecimalScale, "\(f).values[\(j)]", "scale must be at most \(CatalogRules.maxDecimalScale)")
                case .bool:
                    break
                }
                v.require(!attribute.values[..<j].map(\.normalized).contains(value.normalized), "\(f).values[\(j)]", "is listed twice")
            }
        }
    }

    static func validate(_ media: [Media], _ field: String, into v: inout Validator) {
        CatalogRules.count(media, field, into: &v)
        for (i, m) in media.enumerated() {
            CatalogRules.text(m.url, "\(field)[\(i)].url", max: CatalogRules.maxShortTextLength, required: true, into: &v)
            CatalogRules.text(m.altText, "\(field)[\(i)].alt_text", max: CatalogRules.maxShortTextLength, required: false, into: &v)
        }
    }

    /// A variant against the product's options: exactly one allowed value per option.
    static func validate(_ variant: Variant, options: [Option], into v: inout Validator) {
        CatalogRules.id(variant.sku, "variant.sku", into: &v)
        for option in options {
            if let value = variant.optionValues[option.code] {
                v.require(option.values.contains(value), "variant.option_values", "'\(value)' is not a value of option \(option.code)")
            } else {
                v.require(false, "variant.option_values", "needs a value for option \(option.code)")
            }
        }
        for code in variant.optionValues.keys.sorted() where !options.contains(where: { $0.code == code }) {
            v.require(false, "variant.option_values", "the product has no option \(code)")
        }
        validate(variant.attributes, "variant.attributes", into: &v)
        CatalogRules.text(variant.barcode, "variant.barcode", max: 64, required: false, into: &v)
        validate(variant.media, "variant.media", into: &v)
    }

    /// New options must keep every existing variant valid (a value in use cannot be removed).
    private static func validateVariantsStillFit(_ variants: [Variant], options: [Option], into v: inout Validator) {
        for variant in variants {
            for option in options {
                guard let value = variant.optionValues[option.code] else {
                    v.require(false, "details.options", "variant \(variant.sku) has no value for new option \(option.code)")
                    continue
                }
                v.require(option.values.contains(value), "details.options", "value '\(value)' of option \(option.code) is used by variant \(variant.sku)")
            }
            for code in variant.optionValues.keys.sorted() where !options.contains(where: { $0.code == code }) {
                v.require(false, "details.options", "option \(code) is used by variant \(variant.sku)")
            }
        }
    }

    private static func validate(_ scope: PriceScope, prices: [Price], removeSkus: [String], state: State, into v: inout Validator) {
        v.require(isCurrencyCode(scope.currency), "currency", "must be an ISO 4217 code such as EUR")
        if scope.priceListId.isEmpty {
            v.require(scope.customerGroup.isEmpty, "price_list_id", "is required for a customer group's prices")
        } else {
            CatalogRules.id(scope.priceListId, "price_list_id", into: &v)
        }
        if !scope.customerGroup.isEmpty { CatalogRules.id(scope.customerGroup, "customer_group", into: &v) }
        v.require(!prices.isEmpty || !removeSkus.isEmpty, "prices", "nothing to set or remove")
        v.require(prices.count <= 10_000, "prices", "must have at most 10000 entries")
        v.require(removeSkus.count <= 10_000, "remove_skus", "must have at most 10000 entries")
        for (i, price) in prices.enumerated() {
            let f = "prices[\(i)]"
            CatalogRules.id(price.sku, "\(f).sku", into: &v)
            v.require(price.sku.isEmpty || state.variant(sku: price.sku) != nil, "\(f).sku", "is not a variant of this product")
            v.require(!prices[..<i].contains { $0.sku == price.sku }, "\(f).sku", "is priced twice")
            v.require(!removeSkus.contains(price.sku), "\(f).sku", "is also in remove_skus")
            validateAmount(price.price, currency: scope.currency, "\(f).price", into: &v)
            if let compareAt = price.compareAtPrice {
                validateAmount(compareAt, currency: scope.currency, "\(f).compare_at_price", into: &v)
            }
        }
        for (i, sku) in removeSkus.enumerated() {
            CatalogRules.id(sku, "remove_skus[\(i)]", into: &v)
        }
    }

    private static func validateAmount(_ money: Money, currency: String, _ field: String, into v: inout Validator) {
        v.require(money.currency == currency, field, "must be in \(currency), not \(money.currency)")
        v.require(money.minorUnits >= 0 && money.minorUnits <= CatalogRules.maxPriceMinorUnits, field,
                  "must be between 0 and \(CatalogRules.maxPriceMinorUnits) minor units")
    }

    private static func event(_ payload: Event.OneOf_Event) -> Event {
        var e = Event()
        e.event = payload
        return e
    }
}

extension Tote_V1_ProductEvent: DomainEvent {
    /// The case message's name, e.g. `VariantAdded`.
    public var typeName: String {
        switch event {
        case .productCreated: "ProductCreated"
        case .productDetailsUpdated: "ProductDetailsUpdated"
        case .variantAdded: "VariantAdded"
        case .productPricesSet: "ProductPricesSet"
        case .productPublished: "ProductPublished"
        case .productArchived: "ProductArchived"
        case nil: "ProductEvent"
        }
    }
}
