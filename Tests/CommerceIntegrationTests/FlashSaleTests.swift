import EventStore
import Foundation
import SwiftProtobuf
import Testing
import ToteAPI
import ToteCommands
import ToteDomain
import ToteServices
import ToteTestSupport

@Suite("Flash sale through checkout, on a real PostgreSQL", .localCluster, .serialized)
struct FlashSaleTests {
    @Test("100 units, 2,000 concurrent PlaceOrder attempts from 40 connections: exactly 100 orders, the rest FAILED_PRECONDITION, and the log replays consistently")
    func flashSale() async throws {
        let node = try await Node.start(poolSize: 24)
        defer { Task { await node.stop() } }
        try await seedCatalog(node, skus: ["DROP": 4900], stock: 100)
        // The stock sits at one location only; `overflow` is empty.
        let clients = try await withThrowingTaskGroup(of: ClientConnection.self) { group in
            for _ in 0..<40 { group.addTask { try await node.connect(apiKey: Keys.storefront) } }
            return try await group.reduce(into: [ClientConnection]()) { $0.append($1) }
        }
        // 2,000 shoppers each get a ready checkout for one unit (20 at a time, to keep setup quick).
        var checkouts: [String] = []
        for chunk in stride(from: 0, to: 2000, by: 100) {
            checkouts += try await withThrowingTaskGroup(of: String.self) { group in
                for shopper in chunk..<(chunk + 100) {
                    group.addTask { try await readyCheckout(clients[shopper % clients.count], lines: ["DROP": 1]) }
                }
                return try await group.reduce(into: [String]()) { $0.append($1) }
            }
        }
        #expect(checkouts.count == 2000)

        // The sale: every checkout tries to place its order at once.
        enum Attempt: Sendable { case placed(String), refused(available: String?), failed(String) }
        let attempts = try await withThrowingTaskGroup(of: Attempt.self) { group in
            for (index, checkoutID) in checkouts.enumerated() {
                group.addTask {
                    do {
                        var place = Tote_V1_PlaceOrderRequest()
                        place.checkoutID = checkoutID
                        let placed = try await clients[index % clients.count].unary(CheckoutAPI.placeOrder, place, options: command(timeout: .seconds(120)))
                        return .placed(placed.orderID)
                    } catch let error as RPCError where error.code == .failedPrecondition {
                        return .refused(available: error.errorInfo?.metadata["available"])
                    } catch {
                        return .failed("\(error)")
                    }
                }
            }
            return try await group.reduce(into: [Attempt]()) { $0.append($1) }
        }
        var placed: [String] = []
        var refused = 0
        var failures: [String] = []
        for attempt in attempts {
            switch attempt {
            case .placed(let id): placed.append(id)
            case .refused(let available):
                refused += 1
                #expect(available == "0")
            case .failed(let message): failures.append(message)
            }
        }
        #expect(failures.isEmpty, "\(failures.prefix(3))")
        #expect(placed.count == 100 && Set(placed).count == 100)
        #expect(refused == 1900)

        let audit = try await LogAudit.run(node.store, now: node.clock.now)
        #expect(audit.problems.isEmpty, "\(audit.problems.prefix(5))")
        #expect(audit.orders == 100)
        #expect(audit.stock["DROP@main"]?.onHand == 100 && audit.stock["DROP@main"]?.liveReserved == 100)
        // The hot stream's commands were appended in batches: fewer transactions than reservations.
        let reservations = try await node.store.readStream(StockItemDecider.Key(sku: "DROP", locationId: "main").streamName).filter { $0.type.hasSuffix("StockReserved") }
        let transactions = Set(reservations.map(\.position.transactionID)).count
        #expect(reservations.count == 100 && transactions < reservations.count, "\(reservations.count) reservations in \(transactions) transactions")
        for client in clients { await client.close() }
    }

    @Test("a node refusing from its cached state checks the log first: stock received through another node is sold, not refused")
    func refusalsCheckTheLog() async throws {
        let node = try await Node.start()
        defer { Task { await node.stop() } }
        let other = CommandRunner(store: node.store, clock: { node.clock.now })
        let key = StockItemDecider.Key(sku: "RESTOCK", locationId: "main")
        @Sendable func run(_ runner: CommandRunner, _ id: String, _ command: StockItemDecider.Command) async throws {
            _ = try await runner.execute(commandID: id, actor: .system, correlationID: "t") { unit -> Google_Protobuf_Empty in
                try await unit.serialize([key.streamName])
                try await unit.decide(StockItemDecider.self, key.streamName, command)
                return Google_Protobuf_Empty()
            }
        }
        func reserve(_ id: String) -> StockItemDecider.Command {
            .reserve(key: key, reservationId: id, quantity: 1, expiresAtMicros: node.clock.now + 60_000_000, reference: "t")
        }
        try await run(node.runner, "receive-1", .receive(key: key, quantity: 1, reference: "PO-1"))
        try await run(node.runner, "reserve-1", reserve("r-1"))
        let soldOut = await #expect(throws: DomainError.self) { try await run(node.runner, "reserve-2", reserve("r-2")) }
        #expect(soldOut?.code == .failedPrecondition)
        // Another node receives stock; this node's cache still says sold out.
        try await run(other, "receive-2", .receive(key: key, quantity: 5, reference: "PO-2"))
        try await run(node.runner, "reserve-3", reserve("r-3"))
        let (state, version) = try await other.read(StockItemDecider.self, key.streamName)
        #expect(state.reservations["r-3"] != nil && version == 4)
    }

    @Test("conflicts between two command nodes are retried with jitter; with no retries left the caller gets ABORTED")
    func conflictsAcrossNodes() async throws {
        let node = try await Node.start()
        defer { Task { await node.stop() } }
        // A second runner on the same database: another node, with its own in-process locks.
        let other = CommandRunner(store: node.store, configuration: .init(maxAttempts: 50), clock: { node.clock.now })
        let impatient = CommandRunner(store: node.store, configuration: .init(maxAttempts: 1), clock: { node.clock.now })
        let key = StockItemDecider.Key(sku: "RACE", locationId: "main")
        _ = try await node.runner.execute(commandID: "seed", actor: .system, correlationID: "t") { unit -> Google_Protobuf_Empty in
            try await unit.decide(StockItemDecider.self, key.streamName, .receive(key: key, quantity: 1000, reference: "PO"))
            return Google_Protobuf_Empty()
        }
        @Sendable func reserve(_ runner: CommandRunner, _ id: String) async throws {
            _ = try await runner.execute(commandID: id, actor: .system, correlationID: "t") { unit -> Google_Protobuf_Empty in
                // As the services do: one command at a time per stream inside a node; the nodes
                // still race each other.
                try await unit.serialize([key.streamName])
                try await unit.decide(StockItemDecider.self, key.streamName, .reserve(key: key, reservationId: id, quantity: 1, expiresAtMicros: unit.context.nowMicros + 60_000_000, reference: "race"))
                return Google_Protobuf_Empty()
            }
        }
        // Patient runners on both "nodes": every reservation lands despite the races.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<100 {
                group.addTask { try await reserve(i % 2 == 0 ? node.runner : other, "r-\(i)") }
            }
            try await group.waitForAll()
        }
        let (state, version) = try await node.runner.read(StockItemDecider.self, key.streamName)
        #expect(state.reservations.count == 100 && version == 101)

        // Another node appends between a command's read and its append (on its first attempt
        // only): a runner with one attempt gives up with a conflict (ABORTED on the wire); a
        // patient one decides again on the fresh state and succeeds.
        @Sendable func reserveAfterInterloper(_ runner: CommandRunner, _ id: String) async throws -> Int {
            let attempts = Locked(0)
            _ = try await runner.execute(commandID: id, actor: .system, correlationID: "t") { unit -> Google_Protobuf_Empty in
                try await unit.serialize([key.streamName])
                _ = try await unit.load(StockItemDecider.self, key.streamName)
                if attempts.withLock({ $0 += 1; return $0 }) == 1 { try await reserve(other, "interloper-\(id)") }
                try await unit.decide(StockItemDecider.self, key.streamName, .reserve(key: key, reservationId: id, quantity: 1, expiresAtMicros: unit.context.nowMicros + 60_000_000, reference: "race"))
                return Google_Protobuf_Empty()
            }
            return attempts.withLock { $0 }
        }
        let refused = await #expect(throws: CommandError.self) { _ = try await reserveAfterInterloper(impatient, "s-1") }
        #expect(refused?.code == .conflict)
        #expect(try await reserveAfterInterloper(node.runner, "s-2") == 2)
        let (after, afterVersion) = try await node.runner.read(StockItemDecider.self, key.streamName)
        #expect(after.reservations["s-1"] == nil && after.reservations["s-2"] != nil && afterVersion == 104)
        #expect(CommandError(.conflict, "x").rpcError.code == .aborted)
    }
}
