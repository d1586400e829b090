import EventStore
import SwiftProtobuf
import ToteProto

/// The storefront's point-read model: the product page of every published product and the whole
/// category tree, each stored as the encoded response that `tote.v1.Query` GetProduct and
/// GetCategoryTree send (docs/READMODELS.md, "Product pages and the category tree"). Fed by
/// `product-` and `category-` events; everything else is ignored.
///
/// A batch loads each touched product's record once, applies its events in memory and writes the
/// record and its page once; the tree is rebuilt once per batch that touched a category. Slug
/// changes are applied event by event, so any split of the same events gives the same bytes.
public struct StorefrontProjection: Projection {
    public let name = "storefront"
    public var databases: [String] { StorefrontLayout.all }

    public init() {}

    public func apply(_ event: RecordedEvent, to store: inout some ReadModelWriter) throws {
        try apply(batch: [event][...], to: &store)
    }

    public func apply(batch events: ArraySlice<RecordedEvent>, to store: inout some ReadModelWriter) throws {
        var products: [String: Tote_V1_Product] = [:]
        var categories: [String: Tote_V1_Category] = [:]
        for event in events {
            if event.stream.hasPrefix("product-") {
                let e = try Tote_V1_ProductEvent(serializedBytes: event.data)
                guard let id = Self.productID(e) else { continue }
                var record: Tote_V1_Product
                if let cached = products[id] {
                    record = cached
                } else {
                    record = try store.get(StorefrontLayout.products, Array(id.utf8)).map { try Tote_V1_Product(serializedBytes: Array($0.dropFirst())) } ?? Tote_V1_Product()
                }
                let oldSlug = record.details.slug
                Self.evolve(&record, e, version: event.streamVersion)
                if record.details.slug != oldSlug { try Self.moveSlug(id, from: oldSlug, to: record.details.slug, &store) }
                products[id] = record
            } else if event.stream.hasPrefix("category-") {
                let e = try Tote_V1_CategoryEvent(serializedBytes: event.data)
                guard let id = Self.categoryID(e) else { continue }
                let stored: Tote_V1_Category? = if let cached = categories[id] { cached } else {
                    try store.get(StorefrontLayout.categories, Array(id.utf8)).map { try Tote_V1_Category(serializedBytes: $0) }
                }
                if let next = Self.evolve(stored, e) { categories[id] = next }
            }
        }
        for (id, record) in products {
            let flag: UInt8 = record.status == .published ? StorefrontLayout.servedFlag : 0
            try store.put(StorefrontLayout.products, Array(id.utf8), [flag] + (try record.serializedBytes()))
        }
        guard !categories.isEmpty else { return }
        for (id, category) in categories {
            try store.put(StorefrontLayout.categories, Array(id.utf8), try category.serializedBytes())
        }
        try store.put(StorefrontLayout.tree, StorefrontLayout.wholeTree, try Self.tree(store).serializedBytes())
    }

    // MARK: Products

    static func productID(_ e: Tote_V1_ProductEvent) -> String? {
        switch e.event {
        case .productCreated(let x)?: x.productID
        case .productDetailsUpdated(let x)?: x.productID
        case .variantAdded(let x)?: x.productID
        case .productPricesSet(let x)?: x.productID
        case .productPublished(let x)?: x.productID
        case .productArchived(let x)?: x.productID
        case nil: nil
        }
    }

    /// The record after `e`, as `ProductDecider.evolve` changes its state, keeping only base
    /// prices (empty customer group): one `ProductPrices` per currency, in currency order, entries
    /// by SKU. Customer-group lists are applied in carts, not shown on the public page.
    static func evolve(_ p: inout Tote_V1_Product, _ e: Tote_V1_ProductEvent, version: Int64) {
        p.version = version
        switch e.event {
        case .productCreated(let x)?:
            p.productID = x.productID
            p.status = .draft
            p.details = x.details
            p.createdAt = x.createdAt
            p.updatedAt = x.createdAt
        case .productDetailsUpdated(let x)?:
            p.details = x.details
            p.updatedAt = x.updatedAt
        case .variantAdded(let x)?:
            p.variants.append(x.variant)
            p.updatedAt = x.addedAt
        case .productPricesSet(let x)?:
            p.updatedAt = x.setAt
            guard x.customerGroup.isEmpty else { return }
            let slot = p.prices.firstIndex { $0.prices.first?.price.currency == x.currency }
            var entries = slot.map { p.prices[$0].prices } ?? []
            entries.removeAll { old in x.removedSkus.contains(old.sku) || x.prices.contains { $0.sku == old.sku } }
            for var price in x.prices {
                price.price.currency = x.currency
                entries.append(price)
            }
            entries.sort { $0.sku < $1.sku }
            if let slot { p.prices.remove(at: slot) }
            if !entries.isEmpty {
                var prices = Tote_V1_ProductPrices()
                prices.priceListID = x.priceListID
                prices.prices = entries
                p.prices.append(prices)
                p.prices.sort { ($0.prices.first?.price.currency ?? "") < ($1.prices.first?.price.currency ?? "") }
            }
        case .productPublished(let x)?:
            p.status = .published
            if !p.hasPublishedAt { p.publishedAt = x.publishedAt }
            p.updatedAt = x.publishedAt
        case .productArchived(let x)?:
            p.status = .archived
            p.updatedAt = x.archivedAt
        case nil:
            break
        }
    }

    /// Points `new` at `id` and drops `old` if it still points at `id` (another product may have
    /// taken the slug since).
    private static func moveSlug(_ id: String, from old: String, to new: String, _ store: inout some ReadModelWriter) throws {
        let idBytes = Array(id.utf8)
        if !old.isEmpty, try store.get(StorefrontLayout.productSlugs, Array(old.utf8)) == idBytes {
            try store.delete(StorefrontLayout.productSlugs, Array(old.utf8))
        }
        if !new.isEmpty { try store.put(StorefrontLayout.productSlugs, Array(new.utf8), idBytes) }
    }

    // MARK: Categories

    static func categoryID(_ e: Tote_V1_CategoryEvent) -> String? {
        switch e.event {
        case .categoryCreated(let x)?: x.categoryID
        case .categoryRenamed(let x)?: x.categoryID
        case .categoryMoved(let x)?: x.categoryID
        case nil: nil
        }
    }

    /// A category record after `e` (ids, not slugs, in `parent_slug` and `ancestor_slugs`; the
    /// tree resolves them); nil when `e` names a category never created.
    static func evolve(_ c: Tote_V1_Category?, _ e: Tote_V1_CategoryEvent) -> Tote_V1_Category? {
        switch e.event {
        case .categoryCreated(let x)?:
            return Tote_V1_Category(record: x)
        case .categoryRenamed(let x)?:
            guard var c else { return nil }
            c.name = x.name
            return c
        case .categoryMoved(let x)?:
            guard var c else { return nil }
            c.parentSlug = x.parentID
            c.position = x.position
            // Only the moved category's record changes; descendants' paths are resolved from
            // their parents when the tree is built.
            c.ancestorSlugs = x.ancestorIds
            return c
        case nil:
            return c
        }
    }

    /// The whole tree from the stored category records: depth first, siblings by position then
    /// slug, with parent and ancestor slugs resolved by following parents (so a moved subtree
    /// is right without rewriting its descendants). A category whose parent is unknown is
    /// listed as a root.
    static func tree(_ store: some ReadModelReader) throws -> Tote_V1_GetCategoryTreeResponse {
        var records: [String: Tote_V1_Category] = [:]
        try store.scan(StorefrontLayout.categories, prefix: [], from: nil, reverse: false) { key, value in
            records[String(decoding: key, as: UTF8.self)] = try Tote_V1_Category(serializedBytes: Array(value))
            return true
        }
        var children: [String: [String]] = [:]
        for (id, c) in records {
            let parent = records[c.parentSlug] == nil ? "" : c.parentSlug
            children[parent, default: []].append(id)
        }
        for key in children.keys {
            children[key]!.sort { a, b in
                let (x, y) = (records[a]!, records[b]!)
                return (x.position, x.slug) < (y.position, y.slug)
            }
        }
        var response = Tote_V1_GetCategoryTreeResponse()
        var visited: Set<String> = []
        func visit(_ id: String, ancestors: [String]) {
            guard visited.insert(id).inserted else { return }  // a cycle in bad data: list once
            var c = records[id]!
            c.parentSlug = ancestors.last ?? ""
            c.ancestorSlugs = ancestors
            response.categories.append(c)
            for child in children[id] ?? [] { visit(child, ancestors: ancestors + [c.slug]) }
        }
        for root in children[""] ?? [] { visit(root, ancestors: []) }
        return response
    }
}

/// The storefront model's databases and keys (docs/READMODELS.md, "Product pages and the
/// category tree").
public enum StorefrontLayout {
    /// product_id → one flag byte (``servedFlag`` when published, else 0) + the encoded
    /// `tote.v1.Product`: for a published product the bytes after the flag are the GetProduct
    /// response, sent as they are.
    public static let products = "storefront.products"
    /// The flag byte of a product GetProduct serves.
    public static let servedFlag: UInt8 = 1
    /// product slug → product_id.
    public static let productSlugs = "storefront.product_slugs"
    /// category_id → `tote.v1.Category` record (parent and ancestors as ids).
    public static let categories = "storefront.categories"
    /// ``wholeTree`` → the GetCategoryTree response for the whole tree.
    public static let tree = "storefront.tree"
    /// The one key of ``tree``.
    public static let wholeTree: [UInt8] = Array("all".utf8)

    /// Every database of the storefront model.
    public static let all = [products, productSlugs, categories, tree]
}

extension Tote_V1_Category {
    /// The read models' record of a created category: its slug (the id when it has none), name,
    /// position, and its parent and ancestors as ids in `parent_slug` and `ancestor_slugs`.
    init(record e: Tote_V1_CategoryCreated) {
        self.init()
        slug = e.slug.isEmpty ? e.categoryID : e.slug
        name = e.name
        parentSlug = e.parentID
        position = e.position
        ancestorSlugs = e.ancestorIds
    }
}
