import EventStore
import Testing
import ToteAPI
import ToteDomain
import ToteProto
import ToteReadModels
import ToteServices

private enum QueryKeys {
    static let storefront = "query-test-storefront-01"
    static let `operator` = "query-test-operator-0001"
    static let keyring = APIKeyring([storefront: .storefront, `operator`: .operator])
}

/// A query server on an ephemeral loopback port over an ``OrderTestSource``.
private struct QueryTestServer {
    let server: RPCServer
    let port: Int
    let source: OrderTestSource

    static func start(
        source: OrderTestSource,
        catalog: CatalogQueryHandlers = CatalogQueryHandlers(),
        configuration: QueryService.Configuration = .init(),
        now: Int64 = orderT0
    ) async throws -> QueryTestServer {
        var router = RPCRouter()
        QueryService(source: source, catalog: catalog, configuration: configuration, nowMicros: { now }).register(into: &router)
        let server = RPCServer(configuration: .init(host: "127.0.0.1", port: 0, drainTimeout: .seconds(5)), router: router, keyring: QueryKeys.keyring)
        let address = try await server.start()
        return QueryTestServer(server: server, port: try #require(address.port), source: source)
    }

    func connect(_ apiKey: String = QueryKeys.storefront) async throws -> ClientConnection {
        try await ClientConnection.connect(host: "127.0.0.1", port: port, configuration: .init(apiKey: apiKey))
    }

    func stop() async { await server.shutdownGracefully() }
}

/// Runs `body`, expecting it to throw an RPCError, and returns it.
private func queryError(_ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async -> RPCError? {
    do {
        try await body()
        Issue.record("expected an RPCError, the call succeeded", sourceLocation: sourceLocation)
    } catch let error as RPCError {
        return error
    } catch {
        Issue.record("expected an RPCError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

func token(_ position: LogPosition) -> Tote_V1_ConsistencyToken {
    var token = Tote_V1_ConsistencyToken()
    token.transactionID = position.transactionID
    token.globalPosition = position.globalPosition
    return token
}

private func orderRequest(_ id: String) -> Tote_V1_GetOrderViewRequest {
    var request = Tote_V1_GetOrderViewRequest()
    request.orderID = id
    return request
}

@Suite("Query service over the wire: order views and the consistency token")
struct OrderQueryServiceTests {
    /// A source holding paid order o1 (and its payment), at the log's position.
    func paidSource() throws -> (OrderTestSource, OrderScript) {
        var script = OrderScript()
        try script.placeAndPay("o1", at: orderT0 - 45 * orderMinute)
        let source = OrderTestSource()
        try source.apply(script.log)
        return (source, script)
    }

    @Test("GetOrderView answers the stored bytes verbatim; unknown ids are NOT_FOUND, empty ids INVALID_ARGUMENT")
    func getOrderView() async throws {
        let (source, script) = try paidSource()
        let server = try await QueryTestServer.start(source: source)
        defer { Task { await server.stop() } }
        let client = try await server.connect()
        defer { Task { await client.close() } }

        let view = try await client.unary(QueryAPI.getOrderView, orderRequest("o1"))
        let stored = try source.read { try $0.get(OrderKeys.viewDB, Array("o1".utf8)) }
        #expect(try view.serializedBytes() == stored)
        #expect(view == (try script.expectedView("o1", paymentIDs: ["pay-o1"])))
        #expect(view.state == .paid)

        let missing = await queryError { _ = try await client.unary(QueryAPI.getOrderView, orderRequest("nope")) }
        #expect(missing?.code == .notFound)
        #expect(missing?.message.contains("nope") == true)
        let empty = await queryError { _ = try await client.unary(QueryAPI.getOrderView, orderRequest("")) }
        #expect(empty?.code == .invalidArgument)
        #expect(empty?.badRequest?.fieldViolations.first?.field == "order_id")
    }

    @Test("ListCustomerOrders and ListOrdersByState over the wire; ListOrdersByState is operator only")
    func lists() async throws {
        let (source, _) = try paidSource()
        let server = try await QueryTestServer.start(source: source)
        defer { Task { await server.stop() } }
        let storefront = try await server.connect()
        let operatorClient = try await server.connect(QueryKeys.operator)
        defer { Task { await storefront.close(); await operatorClient.close() } }

        var customer = Tote_V1_ListCustomerOrdersRequest()
        customer.customerID = "cust-1"
        let orders = try await storefront.unary(QueryAPI.listCustomerOrders, customer)
        #expect(orders.orders.map(\.orderID) == ["o1"])
        #expect(orders.pageInfo.totalCount == 1)

        var byState = Tote_V1_ListOrdersByStateRequest()
        byState.state = .paid
        byState.olderThan.micros = 30 * orderMinute
        let denied = await queryError { _ = try await storefront.unary(QueryAPI.listOrdersByState, byState) }
        #expect(denied?.code == .permissionDenied)
        let paid = try await operatorClient.unary(QueryAPI.listOrdersByState, byState)
        #expect(paid.orders.map(\.orderID) == ["o1"])
        byState.olderThan.micros = 60 * orderMinute
        #expect(try await operatorClient.unary(QueryAPI.listOrdersByState, byState).orders.isEmpty)

        byState.state = .unspecified
        let invalid = await queryError { _ = try await operatorClient.unary(QueryAPI.listOrdersByState, byState) }
        #expect(invalid?.code == .invalidArgument)
        #expect(invalid?.badRequest?.fieldViolations.first?.field == "state")
        customer.page.pageToken = "garbage"
        let badToken = await queryError { _ = try await storefront.unary(QueryAPI.listCustomerOrders, customer) }
        #expect(badToken?.code == .invalidArgument)
        #expect(badToken?.badRequest?.fieldViolations.first?.field == "page.page_token")
    }

    @Test("read-your-writes: a query with a token waits until the projection passes it, then sees the write")
    func tokenWaitSucceeds() async throws {
        var script = OrderScript()
        try script.placeAndPay("o1", at: orderT0)
        let source = OrderTestSource()
        try source.apply(script.log)
        let server = try await QueryTestServer.start(source: source)
        defer { Task { await server.stop() } }
        let client = try await server.connect()
        defer { Task { await client.close() } }

        // A command writes; its token is ahead of the read model until the projector catches up.
        let written = try script.order("o1", .startPicking(reason: "wave 1"), at: orderT0 + orderMinute)
        let writeToken = token(script.position)
        let projector = Task {
            try await Task.sleep(for: .milliseconds(150))
            try source.apply(written)
        }
        let started = ContinuousClock.now
        let view = try await client.unary(QueryAPI.getOrderView, orderRequest("o1"), options: CallOptions(timeout: .seconds(5), consistencyToken: writeToken))
        #expect(view.state == .picking, "the answer includes the write the token names")
        #expect(ContinuousClock.now - started >= .milliseconds(100))
        try await projector.value

        // A token the model has already passed answers at once.
        let quick = try await client.unary(QueryAPI.getOrderView, orderRequest("o1"), options: CallOptions(timeout: .seconds(5), consistencyToken: token(LogPosition(transactionID: 1, globalPosition: 1))))
        #expect(quick.state == .picking)
    }

    @Test("a token the projection does not reach within the deadline is UNAVAILABLE naming both positions")
    func tokenWaitTimesOut() async throws {
        let (source, script) = try paidSource()
        // A generous margin before the deadline: this suite shares the machine with PostgreSQL
        // suites, and the answer must still beat the client's own deadline under that load
        // (250 ms of a 650 ms deadline was once not enough on 2 busy cores).
        var configuration = QueryService.Configuration()
        configuration.deadlineMargin = .milliseconds(700)
        let server = try await QueryTestServer.start(source: source, configuration: configuration)
        defer { Task { await server.stop() } }
        let client = try await server.connect()
        defer { Task { await client.close() } }

        let applied = script.position
        let ahead = LogPosition(transactionID: applied.transactionID + 5, globalPosition: applied.globalPosition + 5)
        let started = ContinuousClock.now
        let error = await queryError {
            _ = try await client.unary(QueryAPI.getOrderView, orderRequest("o1"), options: CallOptions(timeout: .milliseconds(1500), consistencyToken: token(ahead)))
        }
        let elapsed = ContinuousClock.now - started
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains(applied.description) == true)
        #expect(error?.message.contains(ahead.description) == true)
        #expect(error?.message.contains("5 positions behind") == true)
        #expect(error?.errorInfo?.reason == "READ_MODEL_BEHIND")
        #expect(error?.errorInfo?.metadata["applied_position"] == applied.description)
        #expect(error?.errorInfo?.metadata["token_position"] == ahead.description)
        let retry = error?.details.compactMap { detail -> Tote_V1_RetryInfo? in
            if case .retryInfo(let info)? = detail.kind { return info }
            return nil
        }.first
        #expect(retry?.retryDelay.micros == 100_000)
        #expect(elapsed >= .milliseconds(700), "it waited until the margin before the deadline")
        #expect(elapsed < .milliseconds(1500) + .seconds(1))
    }

    @Test("without a deadline the wait is bounded by the configured default; lists honour tokens too")
    func defaultWait() async throws {
        let (source, script) = try paidSource()
        let server = try await QueryTestServer.start(source: source, configuration: .init(defaultWait: .milliseconds(150)))
        defer { Task { await server.stop() } }
        let client = try await server.connect()
        defer { Task { await client.close() } }

        var customer = Tote_V1_ListCustomerOrdersRequest()
        customer.customerID = "cust-1"
        let ahead = LogPosition(transactionID: script.position.transactionID + 1, globalPosition: script.position.globalPosition + 1)
        let started = ContinuousClock.now
        let error = await queryError { _ = try await client.unary(QueryAPI.listCustomerOrders, customer, options: CallOptions(consistencyToken: token(ahead))) }
        #expect(error?.code == .unavailable)
        #expect(ContinuousClock.now - started >= .milliseconds(140))
    }

    @Test("a broken position is UNAVAILABLE; a query without a token does not look at it")
    func brokenPosition() async throws {
        let (source, script) = try paidSource()
        source.failPosition.withLock { $0 = true }
        let server = try await QueryTestServer.start(source: source)
        defer { Task { await server.stop() } }
        let client = try await server.connect()
        defer { Task { await client.close() } }
        let error = await queryError {
            _ = try await client.unary(QueryAPI.getOrderView, orderRequest("o1"), options: CallOptions(timeout: .seconds(2), consistencyToken: token(script.position)))
        }
        #expect(error?.code == .unavailable)
        #expect(try await client.unary(QueryAPI.getOrderView, orderRequest("o1")).orderID == "o1")
    }

    @Test("injected catalog handlers are served (with the token wait); missing ones are UNIMPLEMENTED")
    func catalogHandlers() async throws {
        let (source, _) = try paidSource()
        let catalog = CatalogQueryHandlers(autocomplete: { reader, request in
            var response = Tote_V1_AutocompleteResponse()
            var suggestion = Tote_V1_Suggestion()
            suggestion.text = request.prefix + "-suggested"
            // The handler reads the same snapshot: prove it sees the order views.
            suggestion.id = try reader.get(OrderKeys.viewDB, Array("o1".utf8)) == nil ? "no" : "yes"
            response.suggestions = [suggestion]
            return response
        })
        let server = try await QueryTestServer.start(source: source, catalog: catalog)
        defer { Task { await server.stop() } }
        let client = try await server.connect()
        defer { Task { await client.close() } }
        var request = Tote_V1_AutocompleteRequest()
        request.prefix = "tsh"
        let response = try await client.unary(QueryAPI.autocomplete, request)
        #expect(response.suggestions.map(\.text) == ["tsh-suggested"])
        #expect(response.suggestions.first?.id == "yes")
        let missing = await queryError { _ = try await client.unary(QueryAPI.searchCatalog, Tote_V1_SearchCatalogRequest()) }
        #expect(missing?.code == .unimplemented)
    }
}

@Suite("ConsistencyWait: the token-wait decision, without I/O")
struct OrderConsistencyWaitTests {
    let applied = LogPosition(transactionID: 10, globalPosition: 100)

    @Test("no token, or a token at or below the applied position, proceeds at once")
    func proceeds() {
        var none = ConsistencyWait(token: nil)
        #expect(none.next(applied: .start, remaining: .zero) == .proceed)
        var equal = ConsistencyWait(token: applied)
        #expect(equal.next(applied: applied, remaining: .zero) == .proceed)
        var below = ConsistencyWait(token: LogPosition(transactionID: 9, globalPosition: 200))
        #expect(below.next(applied: applied, remaining: .seconds(1)) == .proceed, "positions order by transaction id first")
    }

    @Test("polls back off exponentially up to the cap, never past the time left, then give up")
    func backoff() {
        let token = LogPosition(transactionID: 11, globalPosition: 101)
        var wait = ConsistencyWait(token: token, firstPollInterval: .milliseconds(1), maxPollInterval: .milliseconds(5))
        var pauses: [Duration] = []
        for _ in 0..<5 {
            if case .poll(let pause) = wait.next(applied: applied, remaining: .seconds(1)) { pauses.append(pause) }
        }
        #expect(pauses == [.milliseconds(1), .milliseconds(2), .milliseconds(4), .milliseconds(5), .milliseconds(5)])
        #expect(wait.next(applied: applied, remaining: .milliseconds(3)) == .poll(after: .milliseconds(3)))
        #expect(wait.next(applied: applied, remaining: .zero) == .giveUp(applied: applied, token: token))
        #expect(wait.next(applied: applied, remaining: .milliseconds(-5)) == .giveUp(applied: applied, token: token))
        #expect(wait.next(applied: token, remaining: .zero) == .proceed, "caught up just in time")
    }

    @Test("the UNAVAILABLE error names both positions, the gap and a retry delay")
    func behindError() {
        let error = ConsistencyWait.behindError(applied: applied, token: LogPosition(transactionID: 12, globalPosition: 130), retryDelay: .milliseconds(250))
        #expect(error.code == .unavailable)
        #expect(error.message.contains("10/100") && error.message.contains("12/130") && error.message.contains("30 positions behind"))
        #expect(error.errorInfo?.metadata["positions_behind"] == "30")
        #expect(error.details.contains { if case .retryInfo(let r)? = $0.kind { r.retryDelay.micros == 250_000 } else { false } })
    }
}

@Suite("Query service: woken by the projector instead of polling")
struct OrderQueryServiceWakeTests {
    @Test("with waitForAdvance a waiting query answers at the commit, long before its next poll")
    func wokenAtCommit() async throws {
        var script = OrderScript()
        try script.placeAndPay("o1", at: orderT0)
        let source = OrderTestSource()
        try source.apply(script.log)
        let watch = PositionWatch(script.position)
        var router = RPCRouter()
        // Polls only every 20 s: only the wake-up can answer within 5 s, even on a loaded machine.
        QueryService(source: source, configuration: .init(defaultWait: .seconds(30), firstPollInterval: .seconds(20), maxPollInterval: .seconds(20)),
                     waitForAdvance: { token, timeout in _ = await watch.wait(until: token, timeout: timeout) }).register(into: &router)
        let server = RPCServer(configuration: .init(host: "127.0.0.1", port: 0, drainTimeout: .seconds(5)), router: router, keyring: APIKeyring(["query-wake-key-000001": .storefront]))
        let address = try await server.start()
        defer { Task { await server.shutdownGracefully() } }
        let client = try await ClientConnection.connect(host: "127.0.0.1", port: try #require(address.port), configuration: .init(apiKey: "query-wake-key-000001"))
        defer { Task { await client.close() } }

        let written = try script.order("o1", .startPicking(reason: ""), at: orderT0 + orderMinute)
        let target = script.position
        let projector = Task {
            try await Task.sleep(for: .milliseconds(100))
            try source.apply(written)
            watch.advance(to: target)
        }
        var request = Tote_V1_GetOrderViewRequest()
        request.orderID = "o1"
        let started = ContinuousClock.now
        let view = try await client.unary(QueryAPI.getOrderView, request, options: CallOptions(timeout: .seconds(30), consistencyToken: token(target)))
        #expect(view.state == .picking)
        #expect(ContinuousClock.now - started < .seconds(5))
        try await projector.value
    }
}
