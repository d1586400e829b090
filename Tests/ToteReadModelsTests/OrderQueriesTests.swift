import EventStore
import Testing
import ToteDomain
import ToteProto
import ToteReadModels

@Suite("Order queries over the order views")
struct OrderQueriesTests {
    /// Five orders of cust-1 placed a minute apart (o0 oldest), one of cust-2, one guest.
    func customerStore() throws -> MemoryStore {
        var script = OrderScript()
        for i in 0..<5 {
            try script.order("o\(i)", .place(orderPlaceCommand(orderID: "o\(i)")), at: orderT0 + Int64(i) * orderMinute, actor: orderShopper)
        }
        try script.order("other", .place(orderPlaceCommand(orderID: "other", customerID: "cust-2")), at: orderT0, actor: orderShopper)
        try script.order("guest", .place(orderPlaceCommand(orderID: "guest", customerID: "")), at: orderT0, actor: orderShopper)
        var store = MemoryStore()
        try orderApply(script.log, to: &store)
        return store
    }

    func customerRequest(_ customerID: String = "cust-1", size: UInt32 = 0, token: String = "") -> Tote_V1_ListCustomerOrdersRequest {
        var request = Tote_V1_ListCustomerOrdersRequest()
        request.customerID = customerID
        request.page.pageSize = size
        request.page.pageToken = token
        return request
    }

    func stateRequest(_ state: Tote_V1_OrderState, olderThanMinutes: Int64? = nil, size: UInt32 = 0, token: String = "") -> Tote_V1_ListOrdersByStateRequest {
        var request = Tote_V1_ListOrdersByStateRequest()
        request.state = state
        if let olderThanMinutes { request.olderThan.micros = olderThanMinutes * orderMinute }
        request.page.pageSize = size
        request.page.pageToken = token
        return request
    }

    @Test("GetOrderView returns the stored bytes; nil for an unknown order; empty id is invalid")
    func orderView() throws {
        let store = try customerStore()
        let bytes = try #require(try OrderQueries.orderView(store, orderID: "o3"))
        #expect(try Tote_V1_OrderView(serializedBytes: bytes).orderID == "o3")
        #expect(try OrderQueries.orderView(store, orderID: "nope") == nil)
        #expect(throws: OrderQueryError(field: "order_id", reason: "is required")) { try OrderQueries.orderView(store, orderID: "") }
    }

    @Test("a customer's orders come newest first, page by page, with the total")
    func customerPaging() throws {
        let store = try customerStore()
        var ids: [String] = []
        var token = ""
        var pages = 0
        repeat {
            let response = try OrderQueries.customerOrders(store, customerRequest(size: 2, token: token))
            #expect(response.orders.count <= 2)
            #expect(response.pageInfo.totalCount == 5)
            ids += response.orders.map(\.orderID)
            token = response.pageInfo.nextPageToken
            pages += 1
        } while !token.isEmpty && pages < 10
        #expect(ids == ["o4", "o3", "o2", "o1", "o0"])
        #expect(pages == 3)
        let all = try OrderQueries.customerOrders(store, customerRequest())
        #expect(all.orders.count == 5)
        #expect(all.pageInfo.nextPageToken.isEmpty)
        #expect(try OrderQueries.customerOrders(store, customerRequest("cust-2")).orders.map(\.orderID) == ["other"])
        let none = try OrderQueries.customerOrders(store, customerRequest("nobody"))
        #expect(none.orders.isEmpty && none.pageInfo.totalCount == 0 && none.pageInfo.nextPageToken.isEmpty)
    }

    @Test("page sizes are capped; exactly a page of items leaves no next token")
    func pageSizes() throws {
        let store = try customerStore()
        #expect(try OrderQueries.customerOrders(store, customerRequest(size: 5)).pageInfo.nextPageToken.isEmpty)
        #expect(try OrderQueries.customerOrders(store, customerRequest(size: 10_000)).orders.count == 5)
    }

    @Test("bad requests: missing customer, foreign, malformed or cross-list page tokens")
    func badCustomerRequests() throws {
        let store = try customerStore()
        #expect(throws: OrderQueryError(field: "customer_id", reason: "is required")) { try OrderQueries.customerOrders(store, customerRequest("")) }
        let token = try OrderQueries.customerOrders(store, customerRequest(size: 1)).pageInfo.nextPageToken
        #expect(!token.isEmpty)
        let invalid = OrderQueryError(field: "page.page_token", reason: "is not a page token of this list")
        #expect(throws: invalid) { try OrderQueries.customerOrders(store, customerRequest("cust-2", token: token)) }
        for garbage in ["zz", "0", "01", "ABCD", "01" + String(repeating: "00", count: 3), "not a token"] {
            #expect(throws: invalid) { try OrderQueries.customerOrders(store, customerRequest(token: garbage)) }
        }
        #expect(throws: invalid) { try OrderQueries.ordersByState(store, stateRequest(.placed, token: token), nowMicros: orderT0) }
    }

    /// Orders paid 90, 45, 31, 29 and 5 minutes before `now`; one of them then picked.
    func paidStore(now: Int64) throws -> MemoryStore {
        var script = OrderScript()
        for (id, minutesAgo) in [("p90", 90), ("p45", 45), ("p31", 31), ("p29", 29), ("p5", 5), ("picked", 60)] as [(String, Int64)] {
            try script.placeAndPay(id, at: now - minutesAgo * orderMinute - 3)
        }
        try script.order("picked", .startPicking(reason: ""), at: now - 50 * orderMinute)
        var store = MemoryStore()
        try orderApply(script.log, to: &store)
        return store
    }

    @Test("PAID for more than 30 minutes is a range scan, oldest first")
    func paidForThirtyMinutes() throws {
        let now = orderT0 + 1000 * orderMinute
        let store = try paidStore(now: now)
        let old = try OrderQueries.ordersByState(store, stateRequest(.paid, olderThanMinutes: 30), nowMicros: now)
        #expect(old.orders.map(\.orderID) == ["p90", "p45", "p31"])
        #expect(old.orders.allSatisfy { $0.state == .paid })
        #expect(old.pageInfo.nextPageToken.isEmpty)
        let any = try OrderQueries.ordersByState(store, stateRequest(.paid), nowMicros: now)
        #expect(any.orders.map(\.orderID) == ["p90", "p45", "p31", "p29", "p5"])
        #expect(try OrderQueries.ordersByState(store, stateRequest(.picking), nowMicros: now).orders.map(\.orderID) == ["picked"])
        #expect(try OrderQueries.ordersByState(store, stateRequest(.shipped), nowMicros: now).orders.isEmpty)
        #expect(try OrderQueries.ordersByState(store, stateRequest(.paid, olderThanMinutes: 1000), nowMicros: now).orders.isEmpty)
    }

    @Test("orders by state page through with tokens; the age filter still applies on later pages")
    func statePaging() throws {
        let now = orderT0 + 1000 * orderMinute
        let store = try paidStore(now: now)
        let first = try OrderQueries.ordersByState(store, stateRequest(.paid, olderThanMinutes: 30, size: 2), nowMicros: now)
        #expect(first.orders.map(\.orderID) == ["p90", "p45"])
        let second = try OrderQueries.ordersByState(store, stateRequest(.paid, olderThanMinutes: 30, size: 2, token: first.pageInfo.nextPageToken), nowMicros: now)
        #expect(second.orders.map(\.orderID) == ["p31"])
        #expect(second.pageInfo.nextPageToken.isEmpty)
        #expect(throws: OrderQueryError(field: "page.page_token", reason: "is not a page token of this list")) {
            try OrderQueries.ordersByState(store, stateRequest(.picking, token: first.pageInfo.nextPageToken), nowMicros: now)
        }
    }

    @Test("bad state requests: no state, unknown state, negative age")
    func badStateRequests() throws {
        let store = MemoryStore()
        #expect(throws: OrderQueryError(field: "state", reason: "is required")) { try OrderQueries.ordersByState(store, stateRequest(.unspecified), nowMicros: orderT0) }
        #expect(throws: OrderQueryError(field: "state", reason: "must be a known order state")) {
            try OrderQueries.ordersByState(store, stateRequest(.UNRECOGNIZED(42)), nowMicros: orderT0)
        }
        #expect(throws: OrderQueryError(field: "older_than", reason: "must not be negative")) {
            try OrderQueries.ordersByState(store, stateRequest(.paid, olderThanMinutes: -1), nowMicros: orderT0)
        }
        // An age beyond the epoch does not overflow: nothing is that old.
        var huge = stateRequest(.paid)
        huge.olderThan.micros = .max
        #expect(try OrderQueries.ordersByState(store, huge, nowMicros: orderT0).orders.isEmpty)
    }
}
