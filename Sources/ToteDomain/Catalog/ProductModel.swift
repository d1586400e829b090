import ToteProto

// The Swift values a product's commands and state are made of, with their wire conversions.
extension ProductDecider {
    /// Where a product is in its life. ``protoName`` is the name used as `currentState` in refusals.
    public enum Status: Sendable, Equatable {
        /// Being prepared: invisible to storefronts, editable.
        case draft
        /// For sale.
        case published
        /// No longer sold; final.
        case archived

        /// `PRODUCT_STATUS_*`, as in `catalog.proto`.
        public var protoName: String {
            switch self {
            case .draft: "PRODUCT_STATUS_DRAFT"
            case .published: "PRODUCT_STATUS_PUBLISHED"
            case .archived: "PRODUCT_STATUS_ARCHIVED"
            }
        }

        /// The wire enum.
        public var proto: Tote_V1_ProductStatus {
            switch self {
            case .draft: .draft
            case .published: .published
            case .archived: .archived
            }
        }
    }

    /// One typed attribute value, for facets.
    public enum AttributeValue: Sendable, Hashable {
        /// Text, compared exactly.
        case text(String)
        /// An exact decimal: `unscaled × 10^-scale` (normalized on record: no trailing zeros).
        case number(unscaled: Int64, scale: UInt32)
        /// A yes/no property.
        case bool(Bool)

        /// The same number without trailing zeros in the fraction (15.60 → 15.6), so that equal
        /// numbers facet together. Text and booleans are unchanged.
        public var normalized: AttributeValue {
            guard case .number(var unscaled, var scale) = self else { return self }
            while scale > 0 && unscaled % 10 == 0 {
                unscaled /= 10
                scale -= 1
            }
            return .number(unscaled: unscaled, scale: scale)
        }

        /// The kind, for the one-kind-per-attribute rule.
        var kind: Int {
            switch self {
            case .text: 0
            case .number: 1
            case .bool: 2
            }
        }

        /// From the wire type; nil when no value is set.
        public init?(_ proto: Tote_V1_AttributeValue) {
            switch proto.value {
            case .stringValue(let s): self = .text(s)
            case .numberValue(let d): self = .number(unscaled: d.unscaled, scale: d.scale)
            case .boolValue(let b): self = .bool(b)
            case nil: return nil
            }
        }

        /// To the wire type.
        public var proto: Tote_V1_AttributeValue {
            var p = Tote_V1_AttributeValue()
            switch self {
            case .text(let s): p.stringValue = s
            case .number(let unscaled, let scale):
                var d = Tote_V1_Decimal()
                d.unscaled = unscaled
                d.scale = scale
                p.numberValue = d
            case .bool(let b): p.boolValue = b
            }
            return p
        }
    }

    /// An attribute of a product or variant: a lower-case key and one or more values of one kind.
    public struct Attribute: Sendable, Hashable {
        public var key: String
        public var values: [AttributeValue]

        public init(key: String, values: [AttributeValue]) {
            self.key = key
            self.values = values
        }

        /// From the wire type (values with nothing set are dropped; validation then sees them missing).
        public init(_ proto: Tote_V1_Attribute) {
            self.init(key: proto.key, values: proto.values.compactMap(AttributeValue.init))
        }

        /// To the wire type.
        public var proto: Tote_V1_Attribute {
            var p = Tote_V1_Attribute()
            p.key = key
            p.values = values.map(\.proto)
            return p
        }
    }

    /// An option the variants differ by (e.g. size), with its allowed values in display order.
    public struct Option: Sendable, Hashable {
        /// Lower-case code, e.g. `size`.
        public var code: String
        /// Display name, e.g. `Size`.
        public var name: String
        public var values: [String]

        public init(code: String, name: String, values: [String]) {
            self.code = code
            self.name = name
            self.values = values
        }

        /// From the wire type.
        public init(_ proto: Tote_V1_ProductOption) {
            self.init(code: proto.code, name: proto.name, values: proto.values)
        }

        /// To the wire type.
        public var proto: Tote_V1_ProductOption {
            var p = Tote_V1_ProductOption()
            p.code = code
            p.name = name
            p.values = values
            return p
        }
    }

    /// A picture or other medium.
    public struct Media: Sendable, Hashable {
        public var url: String
        public var altText: String

        public init(url: String, altText: String = "") {
            self.url = url
            self.altText = altText
        }

        /// From the wire type.
        public init(_ proto: Tote_V1_Media) {
            self.init(url: proto.url, altText: proto.altText)
        }

        /// To the wire type.
        public var proto: Tote_V1_Media {
            var p = Tote_V1_Media()
            p.url = url
            p.altText = altText
            return p
        }
    }

    /// The editable description of a product (`ProductDetails` on the wire; `categoryIds` is
    /// `category_slugs` there: a category's id is its slug).
    public struct Details: Sendable, Hashable {
        public var name: String
        public var slug: String
        public var brand: String
        public var summary: String
        /// The long description, in Markdown (`body` on the wire).
        public var description: String
        /// The categories it is listed in; the first is its primary category.
        public var categoryIds: [String]
        public var attributes: [Attribute]
        public var options: [Option]
        public var media: [Media]
        public var searchKeywords: [String]

        public init(
            name: String, slug: String, brand: String = "", summary: String = "", description: String = "",
            categoryIds: [String] = [], attributes: [Attribute] = [], options: [Option] = [],
            media: [Media] = [], searchKeywords: [String] = []
        ) {
            self.name = name
            self.slug = slug
            self.brand = brand
            self.summary = summary
            self.description = description
            self.categoryIds = categoryIds
            self.attributes = attributes
            self.options = options
            self.media = media
            self.searchKeywords = searchKeywords
        }

        /// From the wire type.
        public init(_ proto: Tote_V1_ProductDetails) {
            self.init(
                name: proto.name, slug: proto.slug, brand: proto.brand, summary: proto.summary,
                description: proto.body, categoryIds: proto.categorySlugs,
                attributes: proto.attributes.map(Attribute.init), options: proto.options.map(Option.init),
                media: proto.media.map(Media.init), searchKeywords: proto.searchKeywords)
        }

        /// To the wire type.
        public var proto: Tote_V1_ProductDetails {
            var p = Tote_V1_ProductDetails()
            p.name = name
            p.slug = slug
            p.brand = brand
            p.summary = summary
            p.body = description
            p.categorySlugs = categoryIds
            p.attributes = attributes.map(\.proto)
            p.options = options.map(\.proto)
            p.media = media.map(\.proto)
            p.searchKeywords = searchKeywords
            return p
        }

        /// The same details with number attribute values normalized.
        var normalized: Details {
            var d = self
            d.attributes = attributes.map { Attribute(key: $0.key, values: $0.values.map(\.normalized)) }
            return d
        }
    }

    /// A partial change of ``Details``: each non-nil field replaces the current one whole (the
    /// service builds it from `UpdateProductRequest.update_mask`; an empty mask sets every field).
    public struct DetailsUpdate: Sendable, Hashable {
        public var name: String?
        public var slug: String?
        public var brand: String?
        public var summary: String?
        public var description: String?
        public var categoryIds: [String]?
        public var attributes: [Attribute]?
        public var options: [Option]?
        public var media: [Media]?
        public var searchKeywords: [String]?

        public init(
            name: String? = nil, slug: String? = nil, brand: String? = nil, summary: String? = nil,
            description: String? = nil, categoryIds: [String]? = nil, attributes: [Attribute]? = nil,
            options: [Option]? = nil, media: [Media]? = nil, searchKeywords: [String]? = nil
        ) {
            self.name = name
            self.slug = slug
            self.brand = brand
            self.summary = summary
            self.description = description
            self.categoryIds = categoryIds
            self.attributes = attributes
            self.options = options
            self.media = media
            self.searchKeywords = searchKeywords
        }

        /// Replaces every field (an empty update mask).
        public init(replacingAllWith d: Details) {
            self.init(
                name: d.name, slug: d.slug, brand: d.brand, summary: d.summary, description: d.description,
                categoryIds: d.categoryIds, attributes: d.attributes, options: d.options, media: d.media,
                searchKeywords: d.searchKeywords)
        }

        /// The update for `mask` (ProductDetails field names, e.g. `name`, `category_slugs`) taking
        /// values from `details`; an empty mask replaces every field. Unknown names are returned
        /// in `unknown` so the service can refuse them (field `update_mask`).
        public static func from(mask: [String], details: Details) -> (update: DetailsUpdate, unknown: [String]) {
            if mask.isEmpty { return (DetailsUpdate(replacingAllWith: details), []) }
            var u = DetailsUpdate()
            var unknown: [String] = []
            for field in mask {
                switch field {
                case "name": u.name = details.name
                case "slug": u.slug = details.slug
                case "brand": u.brand = details.brand
                case "summary": u.summary = details.summary
                case "body": u.description = details.description
                case "category_slugs": u.categoryIds = details.categoryIds
                case "attributes": u.attributes = details.attributes
                case "options": u.options = details.options
                case "media": u.media = details.media
                case "search_keywords": u.searchKeywords = details.searchKeywords
                default: unknown.append(field)
                }
            }
            return (u, unknown)
        }

        /// `details` with this update applied, and the wire names of the fields that changed.
        func applied(to details: Details) -> (Details, [String]) {
            var d = details
            var changed: [String] = []
            func set<T: Equatable>(_ keyPath: WritableKeyPath<Details, T>, _ value: T?, _ name: String) {
                guard let value, d[keyPath: keyPath] != value else { return }
                d[keyPath: keyPath] = value
                changed.append(name)
            }
            let n = normalizedAttributes
            set(\.name, name, "name")
            set(\.slug, slug, "slug")
            set(\.brand, brand, "brand")
            set(\.summary, summary, "summary")
            set(\.description, description, "body")
            set(\.categoryIds, categoryIds, "category_slugs")
            set(\.attributes, n, "attributes")
            set(\.options, options, "options")
            set(\.media, media, "media")
            set(\.searchKeywords, searchKeywords, "search_keywords")
            return (d, changed)
        }

        private var normalizedAttributes: [Attribute]? {
            attributes.map { $0.map { Attribute(key: $0.key, values: $0.values.map(\.normalized)) } }
        }
    }

    /// A variant: the unit that is priced, stocked and ordered.
    public struct Variant: Sendable, Hashable {
        /// Unique across the catalog (claimed through ``SkuClaimDecider``).
        public var sku: String
        /// One value for each of the product's options, by option code.
        public var optionValues: [String: String]
        public var attributes: [Attribute]
        /// GTIN/EAN/UPC; empty if none.
        public var barcode: String
        /// Shipping weight; 0 = unknown.
        public var weightGrams: UInt32
        public var media: [Media]

        public init(
            sku: String, optionValues: [String: String] = [:], attributes: [Attribute] = [], barcode: String = "",
            weightGrams: UInt32 = 0, media: [Media] = []
        ) {
            self.sku = sku
            self.optionValues = optionValues
            self.attributes = attributes
            self.barcode = barcode
            self.weightGrams = weightGrams
            self.media = media
        }

        /// From the wire type. A repeated option keeps its last value; validation against the
        /// product's options happens in the decider.
        public init(_ proto: Tote_V1_Variant) {
            var values: [String: String] = [:]
            for ov in proto.optionValues { values[ov.option] = ov.value }
            self.init(
                sku: proto.sku, optionValues: values, attributes: proto.attributes.map(Attribute.init),
                barcode: proto.barcode, weightGrams: proto.weightGrams, media: proto.media.map(Media.init))
        }

        /// The same variant with number attribute values normalized.
        var normalized: Variant {
            var v = self
            v.attributes = attributes.map { Attribute(key: $0.key, values: $0.values.map(\.normalized)) }
            return v
        }

        /// To the wire type, option values in the order of `options` (then any others by code).
        public func proto(options: [Option]) -> Tote_V1_Variant {
            var p = Tote_V1_Variant()
            p.sku = sku
            let ordered = options.map(\.code).filter { optionValues[$0] != nil }
            let rest = optionValues.keys.filter { code in !options.contains { $0.code == code } }.sorted()
            p.optionValues = (ordered + rest).map { code in
                var ov = Tote_V1_OptionValue()
                ov.option = code
                ov.value = optionValues[code] ?? ""
                return ov
            }
            p.attributes = attributes.map(\.proto)
            p.barcode = barcode
            p.weightGrams = weightGrams
            p.media = media.map(\.proto)
            return p
        }
    }

    /// Which prices a ``Command/setPrices(productId:scope:prices:removeSkus:)`` edits: a
    /// currency's base prices (empty `priceListId` and `customerGroup`), or one price list's.
    public struct PriceScope: Sendable, Hashable {
        /// The price list; empty for the product's own base prices.
        public var priceListId: String
        /// ISO 4217 code of every price.
        public var currency: String
        /// The price list's customer group; empty for base prices and a currency's default list.
        public var customerGroup: String

        public init(priceListId: String, currency: String, customerGroup: String) {
            self.priceListId = priceListId
            self.currency = currency
            self.customerGroup = customerGroup
        }

        /// The base prices of `currency`.
        public static func base(_ currency: String) -> PriceScope {
            PriceScope(priceListId: "", currency: currency, customerGroup: "")
        }

        /// Where prices of this scope are kept in state: by currency and customer group (base
        /// prices and a currency's default list share the empty group).
        public var slot: PriceSlot { PriceSlot(currency: currency, customerGroup: customerGroup) }
    }

    /// A (currency, customer group) pair prices are kept under; the empty group is the base price.
    public struct PriceSlot: Sendable, Hashable {
        public var currency: String
        public var customerGroup: String

        public init(currency: String, customerGroup: String) {
            self.currency = currency
            self.customerGroup = customerGroup
        }
    }

    /// The price of one SKU in one scope.
    public struct Price: Sendable, Hashable {
        public var sku: String
        /// The selling price (minor units, the scope's currency).
        public var price: Money
        /// A struck-through "was" price; display only, never used in totals.
        public var compareAtPrice: Money?

        public init(sku: String, price: Money, compareAtPrice: Money? = nil) {
            self.sku = sku
            self.price = price
            self.compareAtPrice = compareAtPrice
        }

        /// From the wire type (an unset compare-at price becomes nil).
        public init(_ proto: Tote_V1_VariantPrice) {
            self.init(
                sku: proto.sku, price: Money(proto.price),
                compareAtPrice: proto.hasCompareAtPrice ? Money(proto.compareAtPrice) : nil)
        }

        /// To the wire type.
        public var proto: Tote_V1_VariantPrice {
            var p = Tote_V1_VariantPrice()
            p.sku = sku
            p.price = price.proto
            if let compareAtPrice { p.compareAtPrice = compareAtPrice.proto }
            return p
        }
    }
}
