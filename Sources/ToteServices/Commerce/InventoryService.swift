import Foundation
import SwiftProtobuf
import ToteAPI
import ToteCommands
import ToteDomain

/// Serves tote.v1.Inventory: stock items (SKU × location) on the event log, decided by
/// ``StockItemDecider``. Every command on a stock item is serialized per stream inside this
/// process (a flash-sale SKU queues instead of storming the database with conflicts).
public struct InventoryService: RPCService, Sendable {
    let commands: CommandSupport

    public init(commands: CommandSupport) {
        self.commands = commands
    }

    /// Longest reservation a caller may ask for.
    public static let maxReservationTTLMicros: Int64 = 7 * 24 * 3600 * 1_000_000

    public func register(into router: inout RPCRouter) {
        router.register(InventoryAPI.receiveStock, unary: { request, context in
            let key = StockItemDecider.Key(request.key)
            return try await run(context, key) { unit in
                let (events, state) = try await unit.decide(StockItemDecider.self, key.streamName, .receive(key: key, quantity: request.quantity, reference: request.reference))
                var reply = Tote_V1_ReceiveStockResponse()
                reply.onHand = state.onHand
                reply.available = state.available(atMicros: unit.context.nowMicros)
                reply.streamVersion = unit.version(of: key.streamName) + Int64(events.count)
                return reply
            } token: { $0.consistencyToken = $1 }
        })
        router.register(InventoryAPI.adjustStock, unary: { request, context in
            let key = StockItemDecider.Key(request.key)
            let change: StockItemDecider.Adjustment
            switch request.change {
            case .delta(let delta): change = .delta(delta)
            case .countedQuantity(let counted): change = .countedQuantity(counted)
            case nil: throw RPCError.invalidArgument("an adjustment needs a delta or a counted quantity", fieldViolations: [("change", "set delta or counted_quantity")])
            }
            return try await run(context, key) { unit in
                let (events, state) = try await unit.decide(StockItemDecider.self, key.streamName, .adjust(key: key, change: change, reason: request.reason, note: request.note, force: request.force))
                var reply = Tote_V1_AdjustStockResponse()
                reply.onHand = state.onHand
                reply.available = state.available(atMicros: unit.context.nowMicros)
                reply.streamVersion = unit.version(of: key.streamName) + Int64(events.count)
                return reply
            } token: { $0.consistencyToken = $1 }
        })
        router.register(InventoryAPI.reserveStock, unary: { request, context in
            let key = StockItemDecider.Key(request.key)
            let ttl = try Self.ttl(request.ttl, field: "ttl")
            // Chosen once per call: the same id on every retry of this command; a repeat of the
            // idempotency key gets the first call's reply, with the first id.
            let reservationID = UUID().uuidString.lowercased()
            return try await run(context, key) { unit in
                let expires = unit.context.nowMicros + ttl
                let (events, state) = try await unit.decide(StockItemDecider.self, key.streamName, .reserve(key: key, reservationId: reservationID, quantity: request.quantity, expiresAtMicros: expires, reference: request.reference))
                var reply = Tote_V1_ReserveStockResponse()
                reply.reservationID = reservationID
                reply.expiresAt.unixMicros = expires
                reply.available = state.available(atMicros: unit.context.nowMicros)
                reply.streamVersion = unit.version(of: key.streamName) + Int64(events.count)
                return reply
            } token: { $0.consistencyToken = $1 }
        })
        router.register(InventoryAPI.extendReservation, unary: { request, context in
            let key = StockItemDecider.Key(request.key)
            let ttl = try Self.ttl(request.ttl, field: "ttl")
            return try await run(context, key) { unit in
                let expires = unit.context.nowMicros + ttl
                let (events, state) = try await unit.decide(StockItemDecider.self, key.streamName, .extendReservation(key: key, reservationId: request.reservationID, expiresAtMicros: expires))
                var reply = Tote_V1_ExtendReservationResponse()
                reply.expiresAt.unixMicros = state.reservations[request.reservationID]?.expiresAtMicros ?? expires
                reply.streamVersion = unit.version(of: key.streamName) + Int64(events.count)
                return reply
            } token: { $0.consistencyToken = $1 }
        })
        router.register(InventoryAPI.releaseReservation, unary: { request, context in
            let key = StockItemDecider.Key(request.key)
            return try await run(context, key) { unit in
                let (events, _) = try await unit.decide(StockItemDecider.self, key.streamName, .releaseReservation(key: key, reservationId: request.reservationID, reason: request.reason))
                var reply = Tote_V1_ReleaseReservationResponse()
                reply.streamVersion = unit.version(of: key.streamName) + Int64(events.count)
                return reply
            } token: { $0.consistencyToken = $1 }
        })
        router.register(InventoryAPI.commitReservation, unary: { request, context in
            let key = StockItemDecider.Key(request.key)
            return try await run(context, key) { unit in
                let (events, state) = try await unit.decide(StockItemDecider.self, key.streamName, .commitReservation(key: key, reservationId: request.reservationID))
                var reply = Tote_V1_CommitReservationResponse()
                reply.onHand = state.onHand
                reply.streamVersion = unit.version(of: key.streamName) + Int64(events.count)
                return reply
            } token: { $0.consistencyToken = $1 }
        })
        router.register(InventoryAPI.getStock, unary: { request, _ in
            try await stock(sku: request.sku, location: request.locationID)
        })
    }

    /// Runs a command on one stock item, serialized with the other commands on it in this process.
    private func run<Reply: SwiftProtobuf.Message>(
        _ context: ServerContext,
        _ key: StockItemDecider.Key,
        _ body: @escaping (inout UnitOfWork) async throws -> Reply,
        token: (inout Reply, Tote_V1_ConsistencyToken) -> Void
    ) async throws -> Reply {
        try Self.validateKey(key)
        return try await commands.run(context, setToken: token) { unit in
            try await unit.serialize([key.streamName])
            return try await body(&unit)
        }
    }

    /// The stock of a SKU at one location, or at every location it has a stock item at.
    func stock(sku: String, location: String) async throws -> Tote_V1_GetStockResponse {
        guard !sku.isEmpty else { throw RPCError.invalidArgument("sku is required", fieldViolations: [("sku", "required")]) }
        let streams: [String]
        if location.isEmpty {
            streams = try await commands.runner.store.streamNames(withPrefix: StreamName.stockItem(sku: sku, location: ""))
                .filter { !$0.dropFirst(StreamName.stockItem(sku: sku, location: "").count).contains("@") }
        } else {
            try Self.validateKey(StockItemDecider.Key(sku: sku, locationId: location))
            streams = [StreamName.stockItem(sku: sku, location: location)]
        }
        var response = Tote_V1_GetStockResponse()
        let now = commands.runner.nowMicros
        for stream in streams {
            let (state, version) = try await commands.runner.read(StockItemDecider.self, stream)
            guard version > 0 else { continue }
            response.levels.append(state.stockLevel(atMicros: now, version: version))
        }
        if response.levels.isEmpty {
            throw RPCError(.notFound, location.isEmpty ? "no stock item for SKU \(sku)" : "no stock item for SKU \(sku) at \(location)")
        }
        return response
    }

    /// A request's time to live, in microseconds: positive and at most a week.
    static func ttl(_ duration: Tote_V1_Duration, field: String) throws -> Int64 {
        guard duration.micros > 0, duration.micros <= maxReservationTTLMicros else {
            throw RPCError.invalidArgument("\(field) must be between 1 µs and 7 days", fieldViolations: [(field, "must be positive and at most 7 days")])
        }
        return duration.micros
    }

    /// Refuses keys that cannot name a stream before anything is read.
    static func validateKey(_ key: StockItemDecider.Key) throws {
        var violations: [(field: String, description: String)] = []
        if key.sku.isEmpty { violations.append(("key.sku", "required")) }
        if key.locationId.isEmpty { violations.append(("key.location_id", "required")) }
        if key.locationId.contains("@") { violations.append(("key.location_id", "must not contain '@'")) }
        if key.sku.utf8.count > 200 || key.locationId.utf8.count > 200 { violations.append(("key", "sku and location_id are at most 200 bytes")) }
        if !violations.isEmpty { throw RPCError.invalidArgument("invalid stock item key", fieldViolations: violations) }
    }
}
