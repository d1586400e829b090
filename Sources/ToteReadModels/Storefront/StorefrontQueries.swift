import ToteProto

/// GetProduct and GetCategoryTree over ``StorefrontProjection``'s model, each a pure function of
/// one read snapshot. Both return the response's encoded bytes (nil = NOT_FOUND): a product page
/// and the whole tree are sent exactly as stored.
public enum StorefrontQueries {
    /// The GetProduct response of a published product, by id or slug; nil when there is no such
    /// published product (drafts and archived products are not found).
    public static func product(_ reader: any ReadModelReader, _ request: Tote_V1_GetProductRequest) throws -> [UInt8]? {
        let productID: [UInt8]
        switch request.ref {
        case .productID(let id)?:
            guard !id.isEmpty else { throw OrderQueryError(field: "product_id", reason: "is empty") }
            productID = Array(id.utf8)
        case .slug(let slug)?:
            guard !slug.isEmpty else { throw OrderQueryError(field: "slug", reason: "is empty") }
            guard let id = try reader.get(StorefrontLayout.productSlugs, Array(slug.utf8)) else { return nil }
            productID = id
        case nil:
            throw OrderQueryError(field: "ref", reason: "is required: set product_id or slug")
        }
        return try reader.withValue(StorefrontLayout.products, productID) { value -> [UInt8]? in
            guard value.first == StorefrontLayout.servedFlag else { return nil }
            return Array(value.dropFirst())
        } ?? nil
    }

    /// The GetCategoryTree response: the stored whole tree as it is, or the subtree under
    /// `root_slug` down to `depth` levels below it (0 = all); nil when `root_slug` names no
    /// category.
    public static func categoryTree(_ reader: any ReadModelReader, _ request: Tote_V1_GetCategoryTreeRequest) throws -> [UInt8]? {
        let stored = try reader.get(StorefrontLayout.tree, StorefrontLayout.wholeTree) ?? []
        if request.rootSlug.isEmpty && request.depth == 0 { return stored }
        let whole = try Tote_V1_GetCategoryTreeResponse(serializedBytes: stored)
        var subtree = Tote_V1_GetCategoryTreeResponse()
        let maxDepth = request.depth == 0 ? Int.max : Int(request.depth)
        if request.rootSlug.isEmpty {
            // Levels below the (virtual) top: depth 1 is the root categories alone.
            subtree.categories = whole.categories.filter { $0.ancestorSlugs.count < maxDepth }
            return try subtree.serializedBytes()
        }
        guard let root = whole.categories.first(where: { $0.slug == request.rootSlug }) else { return nil }
        let rootLevel = root.ancestorSlugs.count
        subtree.categories = whole.categories.filter { c in
            c.slug == root.slug || (c.ancestorSlugs.count > rootLevel && c.ancestorSlugs[rootLevel] == root.slug
                                    && c.ancestorSlugs.count - rootLevel <= maxDepth)
        }
        return try subtree.serializedBytes()
    }
}
