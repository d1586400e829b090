import Testing
import ToteDomain
import ToteProto

@Suite("OrderDecider.history: the order's events interleaved with its tasks', payments' and reservations'")
struct OrderHistoryTests {
    private func own(_ type: String, _ state: Tote_V1_OrderState, version: Int64, position: Int64) -> (entry: Tote_V1_TimelineEntry, position: Int64) {
        var entry = Tote_V1_TimelineEntry()
        entry.eventType = type
        entry.state = state
        entry.streamVersion = version
        return (entry, position)
    }

    private func related(_ stream: String, _ position: Int64, actor: Principal = Principal(id: "bridge", role: "system"), _ body: () throws -> [UInt8]) rethrows -> RelatedOrderEvent {
        RelatedOrderEvent(stream: stream, streamVersion: position, data: try body(), recordedAtMicros: position * 1000, actor: actor, position: position)
    }

    private func stock(_ body: (inout Tote_V1_StockItemEvent) -> Void) throws -> [UInt8] {
        var e = Tote_V1_StockItemEvent()
        body(&e)
        return try e.serializedBytes()
    }

    @Test("entries interleave in log order; a related one carries its stream and the order state at that point; the event's own actor wins over the log's")
    func interleaving() throws {
        let reserved = try related("stock-TEE@main", 2) {
            try stock { e in
                var r = Tote_V1_StockReserved()
                r.key.sku = "TEE"
                r.key.locationID = "main"
                r.reservation.reservationID = "o-1/l-1"
                r.reservation.quantity = 2
                e.stockReserved = r
            }
        }
        let otherOrder = try related("stock-TEE@main", 3) {
            try stock { e in
                var r = Tote_V1_ReservationReleased()
                r.reservationID = "o-10/l-1"
                e.reservationReleased = r
            }
        }
        let released = try related("stock-TEE@main", 6, actor: Principal(id: "ops-1", role: "operator")) {
            try stock { e in
                var r = Tote_V1_ReservationReleased()
                r.key.sku = "TEE"
                r.key.locationID = "main"
                r.reservationID = "o-1/l-1"
                r.quantity = 2
                r.reason = "phone order abandoned"
                e.reservationReleased = r
            }
        }
        let reassigned = try related("task-o-1-pick-1", 5) {
            var t = Tote_V1_TaskReassigned()
            t.taskID = "o-1-pick-1"
            t.previousControllerID = "pick-1"
            t.actorID = "ops-2"
            t.actorRole = "operator"
            t.reason = "pick-1 is down"
            var e = Tote_V1_TaskEvent()
            e.taskReassigned = t
            return try e.serializedBytes()
        }
        let unknown = related("cart-x", 7) { [] }
        let history = try OrderDecider.history(orderID: "o-1",
                                               own: [own("OrderPlaced", .placed, version: 1, position: 1), own("OrderPaid", .paid, version: 2, position: 4)],
                                               related: [released, reassigned, otherOrder, reserved, unknown])
        #expect(history.map(\.eventType) == ["OrderPlaced", "StockReserved", "OrderPaid", "TaskReassigned", "ReservationReleased"])
        #expect(history.map(\.stream) == ["", "stock-TEE@main", "", "task-o-1-pick-1", "stock-TEE@main"])
        #expect(history.map(\.state) == [.placed, .placed, .paid, .paid, .paid])
        #expect(history[1].summary == "reserved 2 x TEE at main" && history[1].actor.id == "bridge")
        #expect(history[3].actor.id == "ops-2" && history[3].actor.role == .operator && history[3].reason == "pick-1 is down")
        #expect(history[3].summary == "task o-1-pick-1 reassigned from pick-1 to any station")
        #expect(history[4].actor.id == "ops-1" && history[4].reason == "phone order abandoned" && history[4].streamVersion == 6)
    }
}
