import EventStore
import Foundation
import Testing
import ToteAPI
import ToteCommands
import ToteDomain
import ToteServices
import ToteTestSupport

@Suite("Read side over the wire: commands on PostgreSQL, queries from LMDB", .localCluster, .serialized)
struct ReadSideTests {
    @Test("a purchase appears in the query service: the order view (read-your-writes with the token), the customer's orders, the catalog search")
    func purchaseIsQueryable() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tote-readside-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let node = try await Node.start(readModels: folder)
        defer { Task { await node.stop() } }
        try await seedCatalog(node, skus: ["TEE-S": 1900, "TEE-XL": 2100], stock: 4)
        let shopper = try await node.connect(apiKey: Keys.storefront)
        let placed = try await placeOrder(shopper, checkoutID: try await readyCheckout(shopper, lines: ["TEE-S": 1]))

        // Read-your-writes: the PlaceOrder reply's token makes the query wait for the projector.
        var get = Tote_V1_GetOrderViewRequest()
        get.orderID = placed.orderID
        let view = try await shopper.unary(QueryAPI.getOrderView, get, options: CallOptions(timeout: .seconds(10), consistencyToken: placed.consistencyToken))
        #expect(view.orderID == placed.orderID && view.state == .placed && view.totals.total == placed.total)
        #expect(view.timeline.map(\.eventType) == ["OrderPlaced"])

        var mine = Tote_V1_ListCustomerOrdersRequest()
        mine.customerID = "customer-1"
        let orders = try await shopper.unary(QueryAPI.listCustomerOrders, mine, options: CallOptions(timeout: .seconds(10), consistencyToken: placed.consistencyToken))
        #expect(orders.orders.map(\.orderID) == [placed.orderID])

        var search = Tote_V1_SearchCatalogRequest()
        search.categorySlug = "shirts"
        search.currency = "EUR"
        let found = try await shopper.unary(QueryAPI.searchCatalog, search, options: CallOptions(timeout: .seconds(10), consistencyToken: placed.consistencyToken))
        #expect(found.totalCount == 1 && found.products.first?.name == "Tote Tee")

        // A token from the future: UNAVAILABLE naming how far behind the read side is. The server
        // answers a tenth of the deadline early (here 1 s), which must cover scheduling delays on
        // a loaded 2-core CI machine; 300 ms (a 3 s deadline) once did not.
        var future = placed.consistencyToken
        future.transactionID += 1_000_000
        let behind = await rpcError { _ = try await shopper.unary(QueryAPI.getOrderView, get, options: CallOptions(timeout: .seconds(10), consistencyToken: future)) }
        #expect(behind?.code == .unavailable)
        await shopper.close()
    }
}
