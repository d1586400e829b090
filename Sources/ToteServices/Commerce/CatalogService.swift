import Foundation
import SwiftProtobuf
import ToteAPI
import ToteCommands
import ToteDomain

/// Serves tote.v1.Catalog (operators): products with options, variants and prices, categories
/// and price lists, each a stream decided by its decider. A variant's SKU is claimed in the same
/// append as the variant, so two products can never sell the same SKU.
public struct CatalogService: RPCService, Sendable {
    let commands: CommandSupport

    public init(commands: CommandSupport) {
        self.commands = commands
    }

    public func register(into router: inout RPCRouter) {
        router.register(CatalogAPI.createProduct, unary: { request, context in
            // Chosen once per call, so retries and repeats of the key name the same product.
            let productID = UUID().uuidString.lowercased()
            return try await commands.run(context, setToken: { $0.consistencyToken = $1 }) { unit in
                let stream = StreamName.product(productID)
                let details = ProductDecider.Details(request.details)
                let (events, _) = try await unit.decide(ProductDecider.self, stream, .create(productId: productID, details: details))
                try await Self.checkCategories(details.categoryIds, &unit)
                var reply = Tote_V1_CreateProductResponse()
                reply.productID = productID
                reply.streamVersion = unit.version(of: stream) + Int64(events.count)
                return reply
            }
        })
        router.register(CatalogAPI.updateProduct, unary: { request, context in
            try await product(request.productID, expected: request.expectedVersion, context, reply: Tote_V1_UpdateProductResponse.self) { unit, stream in
                let details = ProductDecider.Details(request.details)
                let (update, unknown) = ProductDecider.DetailsUpdate.from(mask: request.updateMask, details: details)
                guard unknown.isEmpty else {
                    throw DomainError.invalid("update_mask", "unknown fields: \(unknown.joined(separator: ", "))")
                }
                if let categories = update.categoryIds { try await Self.checkCategories(categories, &unit) }
                return try await unit.decide(ProductDecider.self, stream, .updateDetails(productId: request.productID, update: update)).events.count
            }
        })
        router.register(CatalogAPI.addVariant, unary: { request, context in
            try await product(request.productID, expected: request.expectedVersion, context, reply: Tote_V1_AddVariantResponse.self) { unit, stream in
                let variant = ProductDecider.Variant(request.variant)
                let added = try await unit.decide(ProductDecider.self, stream, .addVariant(productId: request.productID, variant: variant)).events.count
                if added > 0 {
                    // The claim and the variant commit together, or neither does.
                    try await unit.decide(SkuClaimDecider.self, StreamName.skuClaim(variant.sku), .claim(sku: variant.sku, productId: request.productID))
                }
                return added
            }
        })
        router.register(CatalogAPI.setPrices, unary: { request, context in
            try await product(request.productID, expected: request.expectedVersion, context, reply: Tote_V1_SetPricesResponse.self) { unit, stream in
                let prices = request.prices.map(ProductDecider.Price.init)
                var scopes: [(ProductDecider.PriceScope, [ProductDecider.Price])] = []
                if request.priceListID.isEmpty {
                    // Base prices, one scope per currency named in the request.
                    let currencies = Array(Set(prices.map(\.price.currency))).sorted()
                    if currencies.isEmpty, !request.removeSkus.isEmpty {
                        throw DomainError.invalid("price_list_id", "removing base prices needs the currency: send the prices to keep, or use a price list")
                    }
                    scopes = currencies.map { currency in (.base(currency), prices.filter { $0.price.currency == currency }) }
                } else {
                    let list = try await unit.load(PriceListDecider.self, StreamName.priceList(request.priceListID))
                    guard let scope = list.scope else { throw DomainError(.notFound, "price list \(request.priceListID) does not exist") }
                    scopes = [(scope, prices)]
                }
                var written = 0
                for (scope, scoped) in scopes {
                    written += try await unit.decide(ProductDecider.self, stream, .setPrices(productId: request.productID, scope: scope, prices: scoped, removeSkus: request.removeSkus)).events.count
                }
                return written
            }
        })
        router.register(CatalogAPI.publishProduct, unary: { request, context in
            try await product(request.productID, expected: request.expectedVersion, context, reply: Tote_V1_PublishProductResponse.self) { unit, stream in
                try await unit.decide(ProductDecider.self, stream, .publish(productId: request.productID)).events.count
            }
        })
        router.register(CatalogAPI.archiveProduct, unary: { request, context in
            try await product(request.productID, expected: request.expectedVersion, context, reply: Tote_V1_ArchiveProductResponse.self) { unit, stream in
                try await unit.decide(ProductDecider.self, stream, .archive(productId: request.productID, reason: request.reason)).events.count
            }
        })
        router.register(CatalogAPI.createCategory, unary: { request, context in
            try await commands.run(context, setToken: { $0.consistencyToken = $1 }) { unit in
                let placement = try await Self.placement(parentSlug: request.parentSlug, position: request.position, &unit)
                let stream = StreamName.category(request.slug)
                let (events, _) = try await unit.decide(CategoryDecider.self, stream, .create(categoryId: request.slug, slug: request.slug, name: request.name, placement: placement))
                var reply = Tote_V1_CreateCategoryResponse()
                reply.streamVersion = unit.version(of: stream) + Int64(events.count)
                return reply
            }
        })
        router.register(CatalogAPI.moveCategory, unary: { request, context in
            try await commands.run(context, setToken: { $0.consistencyToken = $1 }) { unit in
                let placement = try await Self.placement(parentSlug: request.newParentSlug, position: request.position, &unit)
                let stream = StreamName.category(request.slug)
                let (events, _) = try await unit.decide(CategoryDecider.self, stream, .move(categoryId: request.slug, placement: placement))
                var reply = Tote_V1_MoveCategoryResponse()
                reply.streamVersion = unit.version(of: stream) + Int64(events.count)
                return reply
            }
        })
        router.register(CatalogAPI.createPriceList, unary: { request, context in
            try await commands.run(context, setToken: { $0.consistencyToken = $1 }) { unit in
                let list = request.priceList
                let stream = StreamName.priceList(list.priceListID)
                let (events, _) = try await unit.decide(PriceListDecider.self, stream, .create(priceListId: list.priceListID, name: list.name, currency: list.currency, customerGroup: list.customerGroup, taxInclusive: list.taxInclusive))
                var reply = Tote_V1_CreatePriceListResponse()
                reply.streamVersion = unit.version(of: stream) + Int64(events.count)
                return reply
            }
        })
    }

    /// A command on an existing product: checks the client's expected version (0: don't), runs
    /// `body` (which returns how many events it decided for the product) and answers with the
    /// product stream's new version.
    private func product<Reply: SwiftProtobuf.Message & VersionedReply>(
        _ productID: String,
        expected: Int64,
        _ context: ServerContext,
        reply: Reply.Type,
        _ body: @escaping (inout UnitOfWork, String) async throws -> Int
    ) async throws -> Reply {
        guard !productID.isEmpty else { throw RPCError.invalidArgument("product_id is required", fieldViolations: [("product_id", "required")]) }
        return try await commands.run(context, setToken: { $0.consistencyToken = $1 }) { unit in
            let stream = StreamName.product(productID)
            let state = try await unit.load(ProductDecider.self, stream)
            guard state.exists else { throw DomainError(.notFound, "product \(productID) does not exist") }
            try unit.expect(stream, version: expected)
            let written = try await body(&unit, stream)
            var reply = Reply()
            reply.streamVersion = unit.version(of: stream) + Int64(written)
            return reply
        }
    }

    /// Where a category goes: the root, or under `parentSlug` with its ancestors (so the decider
    /// can refuse a cycle).
    static func placement(parentSlug: String, position: UInt32, _ unit: inout UnitOfWork) async throws -> CategoryDecider.Placement {
        guard !parentSlug.isEmpty else { return .root(position: position) }
        let parent = try await unit.load(CategoryDecider.self, StreamName.category(parentSlug))
        guard parent.exists else { throw DomainError.invalid("parent_slug", "category \(parentSlug) does not exist") }
        return CategoryDecider.Placement(parentId: parentSlug, parentAncestorIds: parent.ancestorIds, position: position)
    }

    /// Refuses category ids that name no category.
    static func checkCategories(_ ids: [String], _ unit: inout UnitOfWork) async throws {
        var missing: [String] = []
        for id in ids where !(try await unit.load(CategoryDecider.self, StreamName.category(id))).exists { missing.append(id) }
        guard missing.isEmpty else {
            throw DomainError.invalid("details.category_slugs", "unknown categories: \(missing.joined(separator: ", "))")
        }
    }
}

/// Command replies that carry the new stream version and the consistency token (fields 1 and 2
/// of every command response in Protos/tote/v1).
protocol VersionedReply {
    var streamVersion: Int64 { get set }
    var consistencyToken: Tote_V1_ConsistencyToken { get set }
}

extension Tote_V1_UpdateProductResponse: VersionedReply {}
extension Tote_V1_AddVariantResponse: VersionedReply {}
extension Tote_V1_SetPricesResponse: VersionedReply {}
extension Tote_V1_PublishProductResponse: VersionedReply {}
extension Tote_V1_ArchiveProductResponse: VersionedReply {}
