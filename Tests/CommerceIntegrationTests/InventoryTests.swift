import EventStore
import Foundation
import Testing
import ToteAPI
import ToteCommands
import ToteDomain
import ToteTestSupport

@Suite("Inventory over the wire, on a real PostgreSQL", .localCluster, .serialized)
struct InventoryTests {
    @Test("receive, reserve, extend, commit and release stock; a repeated idempotency key gets the first reply")
    func lifecycle() async throws {
        let node = try await Node.start()
        defer { Task { await node.stop() } }
        let client = try await node.connect(apiKey: Keys.operator)

        var receive = Tote_V1_ReceiveStockRequest()
        receive.key = stockKey("SKU-1")
        receive.quantity = 10
        receive.reference = "PO-1"
        let received = try await client.unary(InventoryAPI.receiveStock, receive, options: command("receive-1"))
        #expect(received.onHand == 10 && received.available == 10 && received.streamVersion == 1)
        #expect(received.consistencyToken.globalPosition > 0)

        var reserve = Tote_V1_ReserveStockRequest()
        reserve.key = stockKey("SKU-1")
        reserve.quantity = 4
        reserve.ttl = seconds(600)
        reserve.reference = "order:1"
        let reserved = try await client.unary(InventoryAPI.reserveStock, reserve, options: command("reserve-1"))
        #expect(reserved.available == 6 && reserved.streamVersion == 2 && !reserved.reservationID.isEmpty)
        // Same key: the same reservation, nothing new written.
        let again = try await client.unary(InventoryAPI.reserveStock, reserve, options: command("reserve-1"))
        #expect(again.reservationID == reserved.reservationID && again.streamVersion == 2)
        #expect(again.consistencyToken == reserved.consistencyToken)
        #expect(try await node.store.streamVersion("stock-SKU-1@main") == 2)

        var commit = Tote_V1_CommitReservationRequest()
        commit.key = stockKey("SKU-1")
        commit.reservationID = reserved.reservationID
        let committed = try await client.unary(InventoryAPI.commitReservation, commit, options: command())
        #expect(committed.onHand == 6)

        var get = Tote_V1_GetStockRequest()
        get.sku = "SKU-1"
        let stock = try await client.unary(InventoryAPI.getStock, get)
        #expect(stock.levels.count == 1 && stock.levels[0].onHand == 6 && stock.levels[0].available == 6)
        await client.close()
    }

    @Test("bad input gets typed errors naming the problem")
    func badInput() async throws {
        let node = try await Node.start()
        defer { Task { await node.stop() } }
        let client = try await node.connect(apiKey: Keys.operator)

        var receive = Tote_V1_ReceiveStockRequest()
        receive.key = stockKey("SKU-1")
        receive.quantity = 5
        let noKey = await rpcError { _ = try await client.unary(InventoryAPI.receiveStock, receive, options: CallOptions(timeout: .seconds(5))) }
        #expect(noKey?.code == .invalidArgument && noKey?.message.contains("idempotency") == true)

        receive.key = stockKey("", "a@b")
        let badKey = await rpcError { _ = try await client.unary(InventoryAPI.receiveStock, receive, options: command()) }
        #expect(badKey?.code == .invalidArgument)
        #expect(Set(badKey?.badRequest?.fieldViolations.map(\.field) ?? []) == ["key.sku", "key.location_id"])

        var reserve = Tote_V1_ReserveStockRequest()
        reserve.key = stockKey("SKU-9")
        reserve.quantity = 1
        reserve.ttl = seconds(60)
        reserve.reference = "order:9"
        let nothing = await rpcError { _ = try await client.unary(InventoryAPI.reserveStock, reserve, options: command()) }
        #expect(nothing?.code == .failedPrecondition && nothing?.errorInfo?.metadata["available"] == "0")

        let storefront = try await node.connect(apiKey: Keys.storefront)
        let denied = await rpcError { _ = try await storefront.unary(InventoryAPI.receiveStock, receive, options: command()) }
        #expect(denied?.code == .permissionDenied)
        await client.close()
        await storefront.close()
    }

    @Test("flash sale on one SKU: 100 units, 2,000 concurrent reservations from 20 connections → exactly 100 win")
    func flashSaleReservations() async throws {
        let node = try await Node.start()
        defer { Task { await node.stop() } }
        let admin = try await node.connect(apiKey: Keys.operator)
        var receive = Tote_V1_ReceiveStockRequest()
        receive.key = stockKey("HOT")
        receive.quantity = 100
        receive.reference = "PO-HOT"
        _ = try await admin.unary(InventoryAPI.receiveStock, receive, options: command())

        let clients = try await withThrowingTaskGroup(of: ClientConnection.self) { group in
            for _ in 0..<20 { group.addTask { try await node.connect(apiKey: Keys.operator) } }
            return try await group.reduce(into: [ClientConnection]()) { $0.append($1) }
        }
        let outcomes = try await withThrowingTaskGroup(of: (won: Bool, available: String?).self) { group in
            for attempt in 0..<2000 {
                let client = clients[attempt % clients.count]
                group.addTask {
                    var reserve = Tote_V1_ReserveStockRequest()
                    reserve.key = stockKey("HOT")
                    reserve.quantity = 1
                    reserve.ttl = seconds(900)
                    reserve.reference = "attempt:\(attempt)"
                    do {
                        _ = try await client.unary(InventoryAPI.reserveStock, reserve, options: command("hot-\(attempt)", timeout: .seconds(60)))
                        return (true, nil)
                    } catch let error as RPCError where error.code == .failedPrecondition {
                        return (false, error.details.compactMap { $0.errorInfo.metadata["available"] }.first)
                    }
                }
            }
            return try await group.reduce(into: [(won: Bool, available: String?)]()) { $0.append($1) }
        }
        #expect(outcomes.filter(\.won).count == 100)
        #expect(outcomes.filter { !$0.won }.allSatisfy { $0.available == "0" })

        // The log agrees: replaying the stream gives 100 live reservations and nothing available.
        let events = try await node.store.readStream("stock-HOT@main")
        #expect(events.count == 101)
        let state = StockItemDecider.fold(try events.map { try EventCodec.decode($0, as: StockItemDecider.Event.self) })
        #expect(state.available(atMicros: node.clock.now) == 0 && state.reservations.count == 100)
        for client in clients { await client.close() }
        await admin.close()
    }

    @Test("the reaper records the expiry of overdue reservations; availability returns")
    func reaper() async throws {
        let node = try await Node.start()
        defer { Task { await node.stop() } }
        let client = try await node.connect(apiKey: Keys.operator)
        var receive = Tote_V1_ReceiveStockRequest()
        receive.key = stockKey("SKU-R")
        receive.quantity = 5
        receive.reference = "PO-R"
        _ = try await client.unary(InventoryAPI.receiveStock, receive, options: command())
        var reserve = Tote_V1_ReserveStockRequest()
        reserve.key = stockKey("SKU-R")
        reserve.quantity = 3
        reserve.ttl = seconds(60)
        reserve.reference = "cart:1"
        let reserved = try await client.unary(InventoryAPI.reserveStock, reserve, options: command())
        #expect(reserved.available == 2)

        let reaper = Reaper(runner: node.runner, interval: .milliseconds(20))
        let running = Task { try await reaper.run() }
        defer { running.cancel() }
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await node.store.readStream("stock-SKU-R@main").count == 2)  // not due yet: nothing written

        node.clock.advance(seconds: 61)
        let deadline = ContinuousClock.now + .seconds(10)
        while try await node.store.readStream("stock-SKU-R@main").last?.type != "ReservationExpired", ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        let events = try await node.store.readStream("stock-SKU-R@main")
        #expect(events.map(\.type) == ["StockReceived", "StockReserved", "ReservationExpired"])
        #expect(events.last?.metadata.actorRole == "system")
        var get = Tote_V1_GetStockRequest()
        get.sku = "SKU-R"
        get.locationID = "main"
        let stock = try await client.unary(InventoryAPI.getStock, get)
        #expect(stock.levels.first?.available == 5 && stock.levels.first?.reservations.isEmpty == true)
        await client.close()
    }
}
