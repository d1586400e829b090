import Logging
import NIOCore
import Testing
import ToteAPI
import ToteProto
import ToteReadModels
import ToteServices
@testable import ToteRPC

@Suite("Query service: GetOrderView hands back the stored bytes untouched")
struct OrderQueryServiceRawTests {
    @Test("the response payload the router produces is byte for byte the stored view")
    func verbatimBytes() async throws {
        var script = OrderScript()
        try script.placeAndPay("o1", at: orderT0)
        let source = OrderTestSource()
        try source.apply(script.log)
        var router = RPCRouter()
        QueryService(source: source).register(into: &router)

        let route = try #require(router.route(for: QueryAPI.getOrderView.fullName))
        #expect(route.roles == [.storefront, .operator])
        guard case .unary(let handler) = route.handler else {
            Issue.record("GetOrderView is not unary")
            return
        }
        var request = Tote_V1_GetOrderViewRequest()
        request.orderID = "o1"
        let context = ServerContext(
            method: QueryAPI.getOrderView.fullName, role: .storefront, deadline: nil, idempotencyKey: "", correlationID: "c1",
            consistencyToken: nil, metadata: [:], remoteAddress: "test", logger: Logger(label: "test"))
        let payload = try await handler(try request.serializedBuffer(), context)
        let stored = try #require(try source.read { try $0.get(OrderKeys.viewDB, Array("o1".utf8)) })
        #expect(Array(payload.readableBytesView) == stored)
    }

    @Test("every Query method name is declared once; without catalog handlers the order views, product pages and category tree are registered")
    func registeredMethods() {
        var router = RPCRouter()
        QueryService(source: OrderTestSource()).register(into: &router)
        #expect(Set(QueryAPI.methodNames).count == 7)
        let registered = QueryAPI.methodNames.filter { router.route(for: $0) != nil }
        #expect(registered == [QueryAPI.getProduct.fullName, QueryAPI.getCategoryTree.fullName, QueryAPI.getOrderView.fullName,
                               QueryAPI.listCustomerOrders.fullName, QueryAPI.listOrdersByState.fullName])
        #expect(router.route(for: QueryAPI.listOrdersByState.fullName)?.roles == [.operator])
        #expect(router.serviceNames == ["tote.v1.Query"])
    }
}
