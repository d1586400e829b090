import EventStore
import Foundation
import SwiftProtobuf
import ToteAPI
import ToteReadModels

/// The catalog queries another read model answers, injected so the query service does not depend
/// on their implementation. Each is a pure function of one read snapshot and the request; a nil
/// handler leaves its method unregistered (UNIMPLEMENTED). Handlers may throw `RPCError`
/// (e.g. NOT_FOUND, INVALID_ARGUMENT) or an ``OrderQueryError``.
public struct CatalogQueryHandlers: Sendable {
    /// One query over one snapshot.
    public typealias Handler<Request, Response> = @Sendable (any ReadModelReader, Request) throws -> Response

    public var searchCatalog: Handler<Tote_V1_SearchCatalogRequest, Tote_V1_SearchCatalogResponse>?
    /// SearchCatalog answering the encoded `tote.v1.SearchCatalogResponse`, sent as is (e.g.
    /// `CatalogQuery.searchEncoded`, which copies the stored product summaries instead of
    /// decoding and re-encoding them); when set it serves the method instead of ``searchCatalog``.
    public var searchCatalogEncoded: Handler<Tote_V1_SearchCatalogRequest, [UInt8]>? = nil
    public var autocomplete: Handler<Tote_V1_AutocompleteRequest, Tote_V1_AutocompleteResponse>?
    /// Autocomplete answering the encoded `tote.v1.AutocompleteResponse`, sent as is (e.g.
    /// `Autocomplete.suggestEncoded`, whose common answer is a slice of one stored value); when
    /// set it serves the method instead of ``autocomplete``.
    public var autocompleteEncoded: Handler<Tote_V1_AutocompleteRequest, [UInt8]>? = nil

    public init(
        searchCatalog: Handler<Tote_V1_SearchCatalogRequest, Tote_V1_SearchCatalogResponse>? = nil,
        autocomplete: Handler<Tote_V1_AutocompleteRequest, Tote_V1_AutocompleteResponse>? = nil
    ) {
        self.searchCatalog = searchCatalog
        self.autocomplete = autocomplete
    }
}

/// Serves tote.v1.Query (`tote query`, and inside `tote serve`) from read models, never from
/// PostgreSQL: the order views (``OrderQueries``), product pages and the category tree
/// (``StorefrontQueries``) itself, and the catalog queries it is given.
///
/// Every call honours the caller's consistency token: it waits, bounded by the call's deadline
/// (or ``Configuration/defaultWait``), until the source has applied the log up to the token, else
/// fails UNAVAILABLE naming both positions (``ConsistencyWait/behindError(applied:token:retryDelay:)``).
/// Each query then runs in one short read snapshot, opened and closed on the calling thread with
/// no `await` inside. GetOrderView answers with the stored response bytes as they are.
public struct QueryService: RPCService, Sendable {
    /// Tunables of the consistency wait.
    public struct Configuration: Sendable {
        /// How long a call without a deadline waits for its token.
        public var defaultWait: Duration
        /// The wait ends this long (or a tenth of the time left, if more) before the call's
        /// deadline, so that the caller gets UNAVAILABLE (with positions) rather than
        /// DEADLINE_EXCEEDED, also from a busy server.
        public var deadlineMargin: Duration
        /// The first pause before looking at the source's position again (pauses then double).
        public var firstPollInterval: Duration
        /// The longest pause between two looks at the source's position.
        public var maxPollInterval: Duration
        /// The retry delay suggested with UNAVAILABLE.
        public var retryDelay: Duration

        public init(defaultWait: Duration = .seconds(2), deadlineMargin: Duration = .milliseconds(20),
                    firstPollInterval: Duration = .microseconds(500), maxPollInterval: Duration = .milliseconds(10),
                    retryDelay: Duration = .milliseconds(100)) {
            self.defaultWait = defaultWait
            self.deadlineMargin = deadlineMargin
            self.firstPollInterval = firstPollInterval
            self.maxPollInterval = maxPollInterval
            self.retryDelay = retryDelay
        }
    }

    let source: any ReadModelSource
    let catalog: CatalogQueryHandlers
    let configuration: Configuration
    let nowMicros: @Sendable () -> Int64
    let waitForAdvance: (@Sendable (_ token: LogPosition, _ timeout: Duration) async -> Void)?

    /// - Parameters:
    ///   - source: the read models (LMDB opened read-only in production).
    ///   - catalog: the catalog queries to serve, if any.
    ///   - nowMicros: wall-clock time in microseconds since the epoch, for order ages.
    ///   - waitForAdvance: in a process whose projector runs in-process (`tote serve`), returns
    ///     as soon as the projector has committed past `token` or after `timeout`, e.g.
    ///     `{ _ = await watch.wait(until: $0, timeout: $1) }` with the projector's `PositionWatch`:
    ///     a waiting query then wakes at the commit instead of at its next poll. Without it the
    ///     service polls ``ReadModelSource/position``.
    public init(
        source: any ReadModelSource,
        catalog: CatalogQueryHandlers = CatalogQueryHandlers(),
        configuration: Configuration = Configuration(),
        nowMicros: @escaping @Sendable () -> Int64 = { Int64((Date().timeIntervalSince1970 * 1_000_000).rounded()) },
        waitForAdvance: (@Sendable (_ token: LogPosition, _ timeout: Duration) async -> Void)? = nil
    ) {
        self.source = source
        self.catalog = catalog
        self.configuration = configuration
        self.nowMicros = nowMicros
        self.waitForAdvance = waitForAdvance
    }

    /// Registers the methods. GetOrderView, GetProduct, GetCategoryTree and (with an encoded
    /// handler) Autocomplete answer with a read model's stored response bytes, sent verbatim
    /// (`RPCRouter.register(_:encodedUnary:immediately:)`): the stored message is never decoded
    /// or re-encoded, and a call without a consistency token is answered on the event loop that
    /// read it, with no task (``immediateQuery(_:_:)``).
    public func register(into router: inout RPCRouter) {
        let orderView: @Sendable (Tote_V1_GetOrderViewRequest, any ReadModelReader) throws -> [UInt8] = { request, reader in
            guard let bytes = try OrderQueries.orderView(reader, orderID: request.orderID) else {
                throw RPCError(.notFound, "order \(request.orderID) does not exist", details: [Self.resourceInfo("order", request.orderID)])
            }
            return bytes
        }
        registerPointRead(QueryAPI.getOrderView, into: &router, orderView)
        let product: @Sendable (Tote_V1_GetProductRequest, any ReadModelReader) throws -> [UInt8] = { request, reader in
            guard let bytes = try StorefrontQueries.product(reader, request) else {
                let name = request.productID.isEmpty ? "slug \(request.slug)" : request.productID
                throw RPCError(.notFound, "no published product \(name)", details: [Self.resourceInfo("product", name)])
            }
            return bytes
        }
        registerPointRead(QueryAPI.getProduct, into: &router, product)
        let categoryTree: @Sendable (Tote_V1_GetCategoryTreeRequest, any ReadModelReader) throws -> [UInt8] = { request, reader in
            guard let bytes = try StorefrontQueries.categoryTree(reader, request) else {
                throw RPCError(.notFound, "no category with slug \(request.rootSlug)", details: [Self.resourceInfo("category", request.rootSlug)])
            }
            return bytes
        }
        registerPointRead(QueryAPI.getCategoryTree, into: &router, categoryTree)
        router.register(QueryAPI.listCustomerOrders, unary: { request, context in
            try await query(context) { reader in try OrderQueries.customerOrders(reader, request) }
        })
        router.register(QueryAPI.listOrdersByState, unary: { request, context in
            let now = nowMicros()
            return try await query(context) { reader in try OrderQueries.ordersByState(reader, request, nowMicros: now) }
        })
        if let handler = catalog.searchCatalogEncoded {
            // A facet query computes for up to a millisecond: on the cooperative pool, not the
            // event loop.
            router.register(QueryAPI.searchCatalog, inline: false, encodedUnary: { request, context in
                try await query(context) { try handler($0, request) }
            })
        } else if let handler = catalog.searchCatalog {
            router.register(QueryAPI.searchCatalog, unary: { request, context in try await query(context) { try handler($0, request) } })
        }
        if let handler = catalog.autocompleteEncoded {
            registerPointRead(QueryAPI.autocomplete, into: &router) { request, reader in try handler(reader, request) }
        } else if let handler = catalog.autocomplete {
            router.register(QueryAPI.autocomplete, unary: { request, context in try await query(context) { try handler($0, request) } })
        }
    }

    /// Registers a read answered with stored response bytes: at once on the event loop when the
    /// call carries no consistency token (``immediateQuery(_:_:)``), else after waiting for it.
    private func registerPointRead<Req, Resp>(_ method: MethodDescriptor<Req, Resp>, into router: inout RPCRouter, _ read: @escaping @Sendable (Req, any ReadModelReader) throws -> [UInt8]) {
        router.register(method, encodedUnary: { request, context in
            try await query(context) { try read(request, $0) }
        }, immediately: { request, context in
            try immediateQuery(context) { try read(request, $0) }
        })
    }

    /// Waits for the call's consistency token, then runs `body` over one snapshot.
    func query<R>(_ context: ServerContext, _ body: (any ReadModelReader) throws -> R) async throws -> R {
        try await awaitToken(context)
        return try snapshot(body)
    }

    /// Runs `body` over one snapshot right away when the call carries no consistency token
    /// (nothing to wait for), on the calling thread; nil when it does, for ``query(_:_:)`` to
    /// wait for it first.
    func immediateQuery(_ context: ServerContext, _ body: (any ReadModelReader) throws -> [UInt8]) throws -> [UInt8]? {
        guard context.consistencyToken == nil else { return nil }
        return try snapshot(body)
    }

    /// Runs `body` over one read snapshot; an ``OrderQueryError`` becomes its wire status.
    private func snapshot<R>(_ body: (any ReadModelReader) throws -> R) throws -> R {
        do {
            return try source.read(body)
        } catch let error as OrderQueryError {
            throw error.rpcError
        }
    }

    /// Returns once the source has applied the log up to the call's token (at once without one);
    /// throws UNAVAILABLE when the wait runs out first.
    func awaitToken(_ context: ServerContext) async throws {
        guard let token = context.consistencyToken else { return }
        let clock = ContinuousClock()
        let end: ContinuousClock.Instant
        if let deadline = context.deadline {
            let margin = max(configuration.deadlineMargin, (deadline - clock.now) / 10)
            end = deadline.advanced(by: .zero - margin)
        } else {
            end = clock.now.advanced(by: configuration.defaultWait)
        }
        var wait = ConsistencyWait(token: ConsistencyWait.position(token), firstPollInterval: configuration.firstPollInterval, maxPollInterval: configuration.maxPollInterval)
        while true {
            let applied: LogPosition
            do {
                applied = try source.position
            } catch {
                context.logger.warning("read model position unavailable: \(error)")
                throw RPCError(.unavailable, "the read model is not available")
            }
            switch wait.next(applied: applied, remaining: clock.now.duration(to: end)) {
            case .proceed:
                return
            case .poll(let pause):
                if let waitForAdvance, let token = wait.token {
                    let started = clock.now
                    await waitForAdvance(token, pause)
                    try Task.checkCancellation()
                    // Woken early but the source is still behind (the watch and the source
                    // disagree): sleep out the pause rather than spin.
                    let slept = started.duration(to: clock.now)
                    if slept < pause, (try? source.position).map({ $0 < token }) ?? true {
                        try await Task.sleep(for: pause - slept)
                    }
                } else {
                    try await Task.sleep(for: pause)
                }
            case let .giveUp(applied, token):
                throw ConsistencyWait.behindError(applied: applied, token: token, retryDelay: configuration.retryDelay)
            }
        }
    }

    static func resourceInfo(_ type: String, _ name: String) -> Tote_V1_ErrorDetail {
        var info = Tote_V1_ResourceInfo()
        info.resourceType = type
        info.resourceName = name
        var detail = Tote_V1_ErrorDetail()
        detail.resourceInfo = info
        return detail
    }
}

extension OrderQueryError: RPCErrorConvertible {
    /// INVALID_ARGUMENT with the field violation.
    public var rpcError: RPCError {
        .invalidArgument("invalid request: \(field) \(reason)", fieldViolations: [(field, reason)])
    }
}
