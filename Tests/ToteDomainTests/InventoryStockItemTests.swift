import SwiftProtobuf
import Testing
import ToteDomain
import ToteProto

// MARK: - Helpers (file-private: the test module is shared with other deciders' tests)

private typealias D = StockItemDecider
private let key = D.Key(sku: "TSHIRT-RED-M", locationId: "wh1")
private let t0: Int64 = 1_700_000_000_000_000
private let minute: Int64 = 60_000_000

private func ctx(_ now: Int64) -> CommandContext {
    CommandContext(actor: Principal(id: "op-1", role: "operator"), nowMicros: now)
}

/// Decides `command` at `now` and returns the events (throws the refusal).
private func decide(_ command: D.Command, _ state: D.State, at now: Int64 = t0) throws(DomainError) -> [D.Event] {
    try D.decide(command, state: state, context: ctx(now))
}

/// Decides and folds every step in order; fails the test on a refusal.
private func given(_ steps: [(D.Command, Int64)], from state: D.State = D.initialState) throws -> D.State {
    var s = state
    for (command, now) in steps {
        s = D.fold(try decide(command, s, at: now), from: s)
    }
    return s
}

/// The refusal `body` throws, or nil if it succeeds.
private func refusal(_ body: () throws(DomainError) -> Void) -> DomainError? {
    do {
        try body()
        return nil
    } catch {
        return error
    }
}

private func refusal(_ command: D.Command, _ state: D.State, at now: Int64 = t0) -> DomainError? {
    refusal { () throws(DomainError) in _ = try decide(command, state, at: now) }
}

private func receive(_ qty: Int64, ref: String = "PO-1") -> D.Command { .receive(key: key, quantity: qty, reference: ref) }
private func reserve(_ id: String, _ qty: Int64, until: Int64 = t0 + 15 * minute, ref: String = "order:1") -> D.Command {
    .reserve(key: key, reservationId: id, quantity: qty, expiresAtMicros: until, reference: ref)
}
private func adjust(_ change: D.Adjustment, reason: Tote_V1_StockAdjustmentReason = .cycleCount, force: Bool = false) -> D.Command {
    .adjust(key: key, change: change, reason: reason, note: "count", force: force)
}

/// A stock item with 10 on hand.
private func stocked() throws -> D.State { try given([(receive(10), t0)]) }

/// A stock item with 10 on hand and reservation "r1" of 4 until t0 + 15 min.
private func reservedState() throws -> D.State { try given([(reserve("r1", 4), t0)], from: try stocked()) }

// MARK: - Receive

@Suite("StockItemDecider: receive")
struct InventoryReceiveTests {
    @Test func firstReceiptCreatesTheItem() throws {
        let events = try decide(receive(10), D.initialState)
        #expect(events.count == 1)
        guard case .stockReceived(let e)? = events.first?.event else { Issue.record("not StockReceived"); return }
        #expect(e.key.sku == "TSHIRT-RED-M" && e.key.locationID == "wh1")
        #expect(e.quantity == 10 && e.onHandAfter == 10 && e.reference == "PO-1")
        #expect(e.receivedAt.unixMicros == t0)
        #expect(events[0].typeName == "StockReceived")
        let s = D.fold(events)
        #expect(s.key == key && s.onHand == 10 && s.available(atMicros: t0) == 10)
    }

    @Test func receiptsAddUp() throws {
        let s = try given([(receive(10), t0), (receive(5, ref: "PO-2"), t0 + 1)])
        #expect(s.onHand == 15)
    }

    @Test func receiptWhileReservedRaisesAvailability() throws {
        let s = try given([(receive(3), t0)], from: try reservedState())
        #expect(s.onHand == 13 && s.reserved(atMicros: t0) == 4 && s.available(atMicros: t0) == 9)
    }

    @Test(arguments: [
        (D.Command.receive(key: key, quantity: 0, reference: "PO"), "quantity"),
        (.receive(key: key, quantity: -1, reference: "PO"), "quantity"),
        (.receive(key: key, quantity: D.maxQuantity + 1, reference: "PO"), "quantity"),
        (.receive(key: key, quantity: Int64.min, reference: "PO"), "quantity"),
        (.receive(key: key, quantity: 1, reference: ""), "reference"),
        (.receive(key: key, quantity: 1, reference: String(repeating: "x", count: D.maxTextLength + 1)), "reference"),
        (.receive(key: D.Key(sku: "", locationId: "wh1"), quantity: 1, reference: "PO"), "key.sku"),
        (.receive(key: D.Key(sku: String(repeating: "S", count: D.maxIdLength + 1), locationId: "wh1"), quantity: 1, reference: "PO"), "key.sku"),
        (.receive(key: D.Key(sku: "S", locationId: ""), quantity: 1, reference: "PO"), "key.location_id"),
        (.receive(key: D.Key(sku: "S", locationId: "a@b"), quantity: 1, reference: "PO"), "key.location_id"),
    ])
    func receiveValidation(command: StockItemDecider.Command, field: String) {
        let error = refusal(command, D.initialState)
        #expect(error?.code == .invalidArgument)
        #expect(error?.violations.map(\.field).contains(field) == true)
    }

    @Test func maxQuantityIsAccepted() throws {
        let s = try given([(receive(D.maxQuantity), t0)])
        #expect(s.onHand == D.maxQuantity)
    }

    @Test func aCommandForAnotherStockItemIsRefused() throws {
        let other = D.Command.receive(key: D.Key(sku: "OTHER", locationId: "wh1"), quantity: 1, reference: "PO")
        let error = refusal(other, try stocked())
        #expect(error?.code == .invalidArgument)
        #expect(error?.violations.first?.field == "key")
    }

    @Test func onHandNearInt64MaxOverflowsAsInvalidArgument() {
        var e = Tote_V1_StockReceived()
        e.key = key.proto
        e.quantity = Int64.max - 5
        e.onHandAfter = Int64.max - 5
        var envelope = D.Event()
        envelope.event = .stockReceived(e)
        let huge = D.fold([envelope])
        #expect(huge.available(atMicros: t0) == Int64.max - 5)
        #expect(refusal(receive(5), huge) == nil)
        let error = refusal(receive(6), huge)
        #expect(error?.code == .invalidArgument)
        #expect(error?.violations.first?.field == "quantity")
    }
}

// MARK: - Adjust

@Suite("StockItemDecider: adjust")
struct InventoryAdjustTests {
    @Test func adjustByDelta() throws {
        let events = try decide(adjust(.delta(-3), reason: .damaged), try stocked())
        guard case .stockAdjusted(let e)? = events.first?.event else { Issue.record("not StockAdjusted"); return }
        #expect(e.delta == -3 && e.onHandAfter == 7 && e.reason == .damaged && e.note == "count")
        #expect(!e.counted && !e.forced && e.adjustedAt.unixMicros == t0)
        #expect(D.fold(events, from: try stocked()).onHand == 7)
        #expect(events[0].typeName == "StockAdjusted")
    }

    @Test func adjustUpFindsUnits() throws {
        let s = try given([(adjust(.delta(4), reason: .found), t0)], from: try stocked())
        #expect(s.onHand == 14)
    }

    @Test func countedQuantityRecordsTheDifference() throws {
        let events = try decide(adjust(.countedQuantity(6)), try stocked())
        guard case .stockAdjusted(let e)? = events.first?.event else { Issue.record("not StockAdjusted"); return }
        #expect(e.delta == -4 && e.onHandAfter == 6 && e.counted)
    }

    @Test func countOnANewItem() throws {
        let s = try given([(adjust(.countedQuantity(8), reason: .found), t0)])
        #expect(s.onHand == 8 && s.key == key)
    }

    @Test func countMatchingOnHandIsANoOp() throws {
        #expect(try decide(adjust(.countedQuantity(10)), try stocked()).isEmpty)
        #expect(try decide(adjust(.countedQuantity(0)), D.initialState).isEmpty)
    }

    @Test func onHandNeverBelowZero() throws {
        let byDelta = refusal(adjust(.delta(-11)), try stocked())
        #expect(byDelta?.code == .invalidArgument)
        #expect(byDelta?.violations.first?.field == "delta")
        // Even forced.
        #expect(refusal(adjust(.delta(-11), force: true), try stocked())?.code == .invalidArgument)
        #expect(refusal(adjust(.delta(-10)), try stocked()) == nil)
    }

    @Test func adjustBelowReservedIsRefusedUnlessForced() throws {
        let s = try reservedState()  // 10 on hand, 4 reserved, 6 available
        #expect(refusal(adjust(.delta(-6)), s) == nil)
        let error = refusal(adjust(.delta(-7)), s)
        #expect(error?.code == .failedPrecondition)
        #expect(error?.available == 6 && error?.subject == "TSHIRT-RED-M@wh1")
        let counted = refusal(adjust(.countedQuantity(3)), s)
        #expect(counted?.code == .failedPrecondition && counted?.available == 6)

        let forced = try decide(adjust(.delta(-7), reason: .damaged, force: true), s)
        guard case .stockAdjusted(let e)? = forced.first?.event else { Issue.record("not StockAdjusted"); return }
        #expect(e.forced && e.onHandAfter == 3)
        let after = D.fold(forced, from: s)
        #expect(after.onHand == 3 && after.reserved(atMicros: t0) == 4 && after.available(atMicros: t0) == 0)
        // Over-reserved stock can still be adjusted up, and "force" is only recorded when it mattered.
        let up = try decide(adjust(.delta(1)), after)
        guard case .stockAdjusted(let u)? = up.first?.event else { Issue.record("not StockAdjusted"); return }
        #expect(u.onHandAfter == 4 && !u.forced)
        let harmless = try decide(adjust(.delta(-1), force: true), try stocked())
        guard case .stockAdjusted(let h)? = harmless.first?.event else { Issue.record("not StockAdjusted"); return }
        #expect(!h.forced)
    }

    @Test func expiredReservationsDoNotBlockAnAdjustment() throws {
        let s = try reservedState()
        #expect(refusal(adjust(.delta(-10)), s, at: t0 + 15 * minute) == nil)
    }

    @Test(arguments: [
        (D.Adjustment.delta(0), Tote_V1_StockAdjustmentReason.cycleCount, "delta"),
        (.delta(D.maxQuantity + 1), .cycleCount, "delta"),
        (.delta(-D.maxQuantity - 1), .cycleCount, "delta"),
        (.delta(Int64.min), .cycleCount, "delta"),
        (.delta(Int64.max), .cycleCount, "delta"),
        (.countedQuantity(-1), .cycleCount, "counted_quantity"),
        (.countedQuantity(D.maxQuantity + 1), .cycleCount, "counted_quantity"),
        (.delta(1), .unspecified, "reason"),
        (.delta(1), .UNRECOGNIZED(42), "reason"),
    ])
    func adjustValidation(change: StockItemDecider.Adjustment, reason: Tote_V1_StockAdjustmentReason, field: String) throws {
        let error = refusal(adjust(change, reason: reason), try stocked())
        #expect(error?.code == .invalidArgument)
        #expect(error?.violations.map(\.field).contains(field) == true)
    }

    @Test func noteIsBounded() throws {
        let long = D.Command.adjust(key: key, change: .delta(1), reason: .other, note: String(repeating: "n", count: D.maxTextLength + 1), force: false)
        #expect(refusal(long, try stocked())?.violations.first?.field == "note")
    }

    @Test func everyReasonIsAccepted() throws {
        let reasons: [Tote_V1_StockAdjustmentReason] = [.cycleCount, .damaged, .lost, .found, .expired, .returned, .correction, .transfer, .other]
        for reason in reasons {
            #expect(refusal(adjust(.delta(-1), reason: reason), try stocked()) == nil)
        }
    }

    @Test func adjustOverflowNearInt64Max() {
        var e = Tote_V1_StockAdjusted()
        e.key = key.proto
        e.delta = 1
        e.onHandAfter = Int64.max
        var envelope = D.Event()
        envelope.event = .stockAdjusted(e)
        let full = D.fold([envelope])
        #expect(refusal(adjust(.delta(1)), full)?.code == .invalidArgument)
        #expect(refusal(adjust(.delta(-1)), full) == nil)
        // A count is bounded by maxQuantity, so its difference never overflows.
        #expect(refusal(adjust(.countedQuantity(0)), full) == nil)
    }
}

// MARK: - Reserve

@Suite("StockItemDecider: reserve")
struct InventoryReserveTests {
    @Test func reserveRecordsTheReservation() throws {
        let events = try decide(reserve("r1", 4), try stocked())
        guard case .stockReserved(let e)? = events.first?.event else { Issue.record("not StockReserved"); return }
        #expect(e.reservation.reservationID == "r1" && e.reservation.quantity == 4)
        #expect(e.reservation.expiresAt.unixMicros == t0 + 15 * minute && e.reservation.createdAt.unixMicros == t0)
        #expect(e.reservation.reference == "order:1")
        #expect(events[0].typeName == "StockReserved")
        let s = D.fold(events, from: try stocked())
        #expect(s.onHand == 10 && s.reserved(atMicros: t0) == 4 && s.available(atMicros: t0) == 6)
        #expect(s.status(ofReservation: "r1", atMicros: t0) == .active)
    }

    @Test func reserveExactlyTheAvailableQuantity() throws {
        let s = try given([(reserve("r2", 6), t0)], from: try reservedState())
        #expect(s.available(atMicros: t0) == 0 && s.reserved(atMicros: t0) == 10)
    }

    @Test func reserveOneMoreThanAvailableIsRefused() throws {
        let error = refusal(reserve("r2", 7), try reservedState())
        #expect(error?.code == .failedPrecondition)
        #expect(error?.available == 6)
        #expect(error?.subject == "TSHIRT-RED-M@wh1")
        #expect(error?.message == "TSHIRT-RED-M@wh1: 7 requested, 6 available")
    }

    @Test func reserveOnAnItemNeverReceivedIsOutOfStock() {
        let error = refusal(reserve("r1", 1), D.initialState)
        #expect(error?.code == .failedPrecondition && error?.available == 0)
    }

    @Test func expiredReservationsStopCountingBeforeTheReaperRuns() throws {
        let s = try given([(reserve("r2", 6), t0)], from: try reservedState())  // all 10 held until t0+15m
        #expect(refusal(reserve("r3", 1), s, at: t0 + 15 * minute - 1)?.available == 0)
        let later = try given([(reserve("r3", 10, until: t0 + 30 * minute), t0 + 15 * minute)], from: s)
        #expect(later.available(atMicros: t0 + 15 * minute) == 0)
        #expect(later.reservations.count == 3)  // r1 and r2 are overdue, not yet reaped
    }

    @Test func expiryIsExclusive() throws {
        let s = try reservedState()
        let expiry = t0 + 15 * minute
        #expect(s.reserved(atMicros: expiry - 1) == 4 && s.available(atMicros: expiry - 1) == 6)
        #expect(s.reserved(atMicros: expiry) == 0 && s.available(atMicros: expiry) == 10)
        #expect(s.status(ofReservation: "r1", atMicros: expiry - 1) == .active)
        #expect(s.status(ofReservation: "r1", atMicros: expiry) == .expired)
        #expect(s.liveReservations(atMicros: expiry).isEmpty)
    }

    @Test func sameIdAndQuantityIsIdempotent() throws {
        let s = try reservedState()
        #expect(try decide(reserve("r1", 4), s).isEmpty)
        // Even with another expiry or reference (a retry computes a new expiry).
        #expect(try decide(reserve("r1", 4, until: t0 + 20 * minute, ref: "order:x"), s, at: t0 + minute).isEmpty)
    }

    @Test func sameIdWithAnotherQuantityIsRefused() throws {
        let error = refusal(reserve("r1", 5), try reservedState())
        #expect(error?.code == .alreadyExists)
    }

    @Test func sameIdAfterItEndedIsRefusedNamingItsState() throws {
        let base = try reservedState()
        let expiry = t0 + 15 * minute
        let cases: [(D.State, Int64, String)] = [
            (base, expiry, "RESERVATION_STATUS_EXPIRED"),  // overdue, not reaped
            (try given([(.releaseReservation(key: key, reservationId: "r1", reason: "x"), t0)], from: base), t0, "RESERVATION_STATUS_RELEASED"),
            (try given([(.commitReservation(key: key, reservationId: "r1"), t0)], from: base), t0, "RESERVATION_STATUS_COMMITTED"),
            (try given([(.expireReservations(key: key), expiry)], from: base), expiry, "RESERVATION_STATUS_EXPIRED"),
        ]
        for (state, now, name) in cases {
            let error = refusal(reserve("r1", 4, until: now + minute), state, at: now)
            #expect(error?.code == .failedPrecondition)
            #expect(error?.currentState == name)
        }
    }

    @Test func expiryMustBeAfterNow() throws {
        let s = try stocked()
        for until in [t0, t0 - 1, 0, Int64.min] {
            let error = refusal(reserve("r1", 1, until: until), s)
            #expect(error?.code == .invalidArgument)
            #expect(error?.violations.first?.field == "ttl")
        }
        #expect(refusal(reserve("r1", 1, until: t0 + 1), s) == nil)
        #expect(refusal(reserve("r1", 1, until: Int64.max), s) == nil)
    }

    @Test(arguments: [
        (D.Command.reserve(key: key, reservationId: "", quantity: 1, expiresAtMicros: t0 + 1, reference: "order:1"), "reservation_id"),
        (.reserve(key: key, reservationId: "r", quantity: 0, expiresAtMicros: t0 + 1, reference: "order:1"), "quantity"),
        (.reserve(key: key, reservationId: "r", quantity: -5, expiresAtMicros: t0 + 1, reference: "order:1"), "quantity"),
        (.reserve(key: key, reservationId: "r", quantity: D.maxQuantity + 1, expiresAtMicros: t0 + 1, reference: "order:1"), "quantity"),
        (.reserve(key: key, reservationId: "r", quantity: 1, expiresAtMicros: t0 + 1, reference: ""), "reference"),
        (.reserve(key: D.Key(sku: "", locationId: ""), reservationId: "r", quantity: 1, expiresAtMicros: t0 + 1, reference: "o"), "key.location_id"),
    ])
    func reserveValidation(command: StockItemDecider.Command, field: String) throws {
        let error = refusal(command, try stocked())
        #expect(error?.code == .invalidArgument)
        #expect(error?.violations.map(\.field).contains(field) == true)
    }

    @Test func validationCollectsEveryViolation() throws {
        let error = refusal(.reserve(key: key, reservationId: "", quantity: 0, expiresAtMicros: t0, reference: ""), try stocked())
        #expect(error?.violations.map(\.field) == ["reservation_id", "quantity", "ttl", "reference"])
    }
}

// MARK: - Extend, release, commit

@Suite("StockItemDecider: extend, release, commit")
struct InventoryReservationLifecycleTests {
    private func extend(_ id: String, to: Int64) -> D.Command { .extendReservation(key: key, reservationId: id, expiresAtMicros: to) }
    private func release(_ id: String) -> D.Command { .releaseReservation(key: key, reservationId: id, reason: "payment failed") }
    private func commit(_ id: String) -> D.Command { .commitReservation(key: key, reservationId: id) }
    private let expiry = t0 + 15 * minute

    @Test func extendMovesTheExpiryLater() throws {
        let events = try decide(extend("r1", to: expiry + minute), try reservedState(), at: t0 + minute)
        guard case .reservationExtended(let e)? = events.first?.event else { Issue.record("not ReservationExtended"); return }
        #expect(e.previousExpiresAt.unixMicros == expiry && e.expiresAt.unixMicros == expiry + minute)
        #expect(e.extendedAt.unixMicros == t0 + minute && e.reservationID == "r1")
        #expect(events[0].typeName == "ReservationExtended")
        let s = D.fold(events, from: try reservedState())
        #expect(s.reserved(atMicros: expiry) == 4 && s.nextExpiryMicros == expiry + minute)
    }

    @Test func extendToAnEarlierOrEqualExpiryIsANoOp() throws {
        #expect(try decide(extend("r1", to: expiry), try reservedState()).isEmpty)
        #expect(try decide(extend("r1", to: t0 + 1), try reservedState()).isEmpty)
    }

    @Test func extendJustBeforeExpiryWorksAndAtExpiryIsRefused() throws {
        #expect(refusal(extend("r1", to: expiry + minute), try reservedState(), at: expiry - 1) == nil)
        let error = refusal(extend("r1", to: expiry + minute), try reservedState(), at: expiry)
        #expect(error?.code == .failedPrecondition && error?.currentState == "RESERVATION_STATUS_EXPIRED")
    }

    @Test func extendValidation() throws {
        let past = refusal(extend("r1", to: t0), try reservedState())
        #expect(past?.violations.first?.field == "ttl")
        #expect(refusal(extend("", to: expiry), try reservedState())?.violations.first?.field == "reservation_id")
        #expect(refusal(extend("nope", to: expiry), try reservedState())?.code == .notFound)
    }

    @Test func releaseEndsTheReservation() throws {
        let events = try decide(release("r1"), try reservedState())
        guard case .reservationReleased(let e)? = events.first?.event else { Issue.record("not ReservationReleased"); return }
        #expect(e.quantity == 4 && e.reason == "payment failed" && e.releasedAt.unixMicros == t0)
        #expect(events[0].typeName == "ReservationReleased")
        let s = D.fold(events, from: try reservedState())
        #expect(s.available(atMicros: t0) == 10 && s.onHand == 10 && s.reservations.isEmpty)
        #expect(s.status(ofReservation: "r1", atMicros: t0) == .released)
        #expect(s.ended["r1"] == D.EndedReservation(status: .released, quantity: 4))
    }

    @Test func releaseOfAnOverdueReservationStillRecordsIt() throws {
        let events = try decide(release("r1"), try reservedState(), at: expiry + minute)
        #expect(events.first?.typeName == "ReservationReleased")
        let s = D.fold(events, from: try reservedState())
        #expect(s.nextExpiryMicros == nil)
        #expect(try decide(.expireReservations(key: key), s, at: expiry + minute).isEmpty)
    }

    @Test func releaseValidationAndUnknownId() throws {
        #expect(refusal(release(""), try reservedState())?.code == .invalidArgument)
        #expect(refusal(release("nope"), try reservedState())?.code == .notFound)
        #expect(refusal(release("nope"), D.initialState)?.code == .notFound)
        let long = D.Command.releaseReservation(key: key, reservationId: "r1", reason: String(repeating: "r", count: D.maxTextLength + 1))
        #expect(refusal(long, try reservedState())?.violations.first?.field == "reason")
    }

    @Test func commitTakesTheUnitsOutOfOnHand() throws {
        let events = try decide(commit("r1"), try reservedState(), at: t0 + minute)
        guard case .reservationCommitted(let e)? = events.first?.event else { Issue.record("not ReservationCommitted"); return }
        #expect(e.quantity == 4 && e.onHandAfter == 6 && e.reference == "order:1" && !e.afterExpiry)
        #expect(e.committedAt.unixMicros == t0 + minute)
        #expect(events[0].typeName == "ReservationCommitted")
        let s = D.fold(events, from: try reservedState())
        #expect(s.onHand == 6 && s.reserved(atMicros: t0) == 0 && s.available(atMicros: t0) == 6)
        #expect(s.status(ofReservation: "r1", atMicros: t0) == .committed)
    }

    @Test func commitAfterExpirySucceedsWhenStillAvailable() throws {
        let events = try decide(commit("r1"), try reservedState(), at: expiry)
        guard case .reservationCommitted(let e)? = events.first?.event else { Issue.record("not ReservationCommitted"); return }
        #expect(e.afterExpiry && e.onHandAfter == 6)
    }

    @Test func commitAfterExpiryIsRefusedWhenTheUnitsWereTaken() throws {
        // r1 (4) expired; r2 took 8 of the 10 at expiry; only 2 are left for r1.
        let s = try given([(reserve("r2", 8, until: expiry + 15 * minute), expiry)], from: try reservedState())
        let error = refusal(commit("r1"), s, at: expiry + 1)
        #expect(error?.code == .failedPrecondition && error?.available == 2 && error?.subject == "TSHIRT-RED-M@wh1")
        // With exactly 4 left it goes through.
        let t = try given([(reserve("r2", 6, until: expiry + 15 * minute), expiry)], from: try reservedState())
        #expect(refusal(commit("r1"), t, at: expiry + 1) == nil)
    }

    @Test func commitOfALiveReservationAfterAForcedAdjustmentBelowIt() throws {
        let s = try given([(adjust(.countedQuantity(3), reason: .lost, force: true), t0)], from: try reservedState())
        let error = refusal(commit("r1"), s)
        #expect(error?.code == .failedPrecondition && error?.available == 3)
    }

    @Test func commitUnknownIsNotFound() throws {
        #expect(refusal(commit("nope"), try reservedState())?.code == .notFound)
    }

    /// Every reservation command against every reservation status: the outcome table.
    @Test func reservationCommandsInEveryState() throws {
        let base = try reservedState()
        let released = try given([(release("r1"), t0)], from: base)
        let committed = try given([(commit("r1"), t0)], from: base)
        let reaped = try given([(.expireReservations(key: key), expiry)], from: base)
        enum Outcome: Equatable { case event(String), noOp, refused(DomainError.Code, String?) }
        let states: [(String, D.State, Int64)] = [
            ("active", base, t0 + minute), ("overdue", base, expiry), ("released", released, expiry),
            ("committed", committed, expiry), ("reaped", reaped, expiry),
        ]
        let expected: [String: [String: Outcome]] = [
            "active": [
                "extend": .event("ReservationExtended"), "release": .event("ReservationReleased"),
                "commit": .event("ReservationCommitted"), "reserveSame": .noOp, "expire": .noOp,
            ],
            "overdue": [
                "extend": .refused(.failedPrecondition, "RESERVATION_STATUS_EXPIRED"), "release": .event("ReservationReleased"),
                "commit": .event("ReservationCommitted"), "reserveSame": .refused(.failedPrecondition, "RESERVATION_STATUS_EXPIRED"),
                "expire": .event("ReservationExpired"),
            ],
            "released": [
                "extend": .refused(.failedPrecondition, "RESERVATION_STATUS_RELEASED"), "release": .noOp,
                "commit": .refused(.failedPrecondition, "RESERVATION_STATUS_RELEASED"),
                "reserveSame": .refused(.failedPrecondition, "RESERVATION_STATUS_RELEASED"), "expire": .noOp,
            ],
            "committed": [
                "extend": .refused(.failedPrecondition, "RESERVATION_STATUS_COMMITTED"),
                "release": .refused(.failedPrecondition, "RESERVATION_STATUS_COMMITTED"), "commit": .noOp,
                "reserveSame": .refused(.failedPrecondition, "RESERVATION_STATUS_COMMITTED"), "expire": .noOp,
            ],
            "reaped": [
                "extend": .refused(.failedPrecondition, "RESERVATION_STATUS_EXPIRED"), "release": .noOp,
                "commit": .refused(.failedPrecondition, "RESERVATION_STATUS_EXPIRED"),
                "reserveSame": .refused(.failedPrecondition, "RESERVATION_STATUS_EXPIRED"), "expire": .noOp,
            ],
        ]
        for (name, state, now) in states {
            let commands: [(String, D.Command)] = [
                ("extend", extend("r1", to: now + 30 * minute)), ("release", release("r1")), ("commit", commit("r1")),
                ("reserveSame", reserve("r1", 4, until: now + minute)), ("expire", .expireReservations(key: key)),
            ]
            for (commandName, command) in commands {
                let outcome: Outcome
                do {
                    let events = try decide(command, state, at: now)
                    outcome = events.isEmpty ? .noOp : .event(events[0].typeName)
                } catch {
                    outcome = .refused(error.code, error.currentState)
                }
                #expect(outcome == expected[name]?[commandName], "\(commandName) in \(name)")
            }
        }
    }
}

// MARK: - Reaper and queries

@Suite("StockItemDecider: reaper and queries")
struct InventoryReaperTests {
    private func threeReservations() throws -> D.State {
        try given([
            (reserve("b", 1, until: t0 + 10 * minute), t0), (reserve("a", 2, until: t0 + 10 * minute), t0),
            (reserve("c", 3, until: t0 + 5 * minute), t0),
        ], from: try stocked())
    }

    @Test func reaperWithNothingOverdueRecordsNothing() throws {
        #expect(try decide(.expireReservations(key: key), try threeReservations(), at: t0 + 5 * minute - 1).isEmpty)
        #expect(try decide(.expireReservations(key: key), D.initialState).isEmpty)
        #expect(try decide(.expireReservations(key: key), try stocked()).isEmpty)
    }

    @Test func reaperExpiresEveryOverdueReservationInExpiryOrder() throws {
        let s = try threeReservations()
        let atFive = try decide(.expireReservations(key: key), s, at: t0 + 5 * minute)  // inclusive of now
        #expect(atFive.count == 1)
        let all = try decide(.expireReservations(key: key), s, at: t0 + 10 * minute)
        let ids = all.compactMap { e -> String? in
            guard case .reservationExpired(let x)? = e.event else { return nil }
            return x.reservationID
        }
        #expect(ids == ["c", "a", "b"])
        #expect(all.allSatisfy { $0.typeName == "ReservationExpired" })
        guard case .reservationExpired(let first)? = all.first?.event else { return }
        #expect(first.quantity == 3 && first.expiresAt.unixMicros == t0 + 5 * minute)
        #expect(first.expiredAt.unixMicros == t0 + 10 * minute && first.reference == "order:1")
        let after = D.fold(all, from: s)
        #expect(after.reservations.isEmpty && after.nextExpiryMicros == nil && after.onHand == 10)
        #expect(after.ended.count == 3 && after.ended.values.allSatisfy { $0.status == .expired })
        #expect(try decide(.expireReservations(key: key), after, at: t0 + 10 * minute).isEmpty)
    }

    @Test func queriesOnLiveReservations() throws {
        let s = try threeReservations()
        #expect(s.liveReservations(atMicros: t0).map(\.id) == ["c", "a", "b"])
        #expect(s.liveReservations(atMicros: t0 + 5 * minute).map(\.id) == ["a", "b"])
        #expect(s.nextExpiryMicros == t0 + 5 * minute)
        #expect(s.reserved(atMicros: t0) == 6 && s.available(atMicros: t0) == 4)
        let level = s.stockLevel(atMicros: t0, version: 4)
        #expect(level.key.sku == "TSHIRT-RED-M" && level.onHand == 10 && level.reserved == 6 && level.available == 4)
        #expect(level.reservations.map(\.reservationID) == ["c", "a", "b"] && level.version == 4)
        #expect(D.initialState.nextExpiryMicros == nil)
        #expect(D.initialState.status(ofReservation: "x", atMicros: t0) == nil)
    }

    @Test func reservedSaturatesAndAvailableIsNeverNegative() {
        var s = D.State()
        s.onHand = 5
        s.reservations["x"] = D.Reservation(id: "x", quantity: Int64.max, expiresAtMicros: t0 + 1, reference: "r", createdAtMicros: t0)
        s.reservations["y"] = D.Reservation(id: "y", quantity: Int64.max, expiresAtMicros: t0 + 1, reference: "r", createdAtMicros: t0)
        #expect(s.reserved(atMicros: t0) == Int64.max)
        #expect(s.available(atMicros: t0) == 0)
    }

    @Test func keyAndStreamName() {
        #expect(key.streamName == "stock-TSHIRT-RED-M@wh1")
        #expect(key.description == "TSHIRT-RED-M@wh1")
        #expect(D.Key(key.proto) == key)
        #expect(D.ReservationStatus.active.protoName == "RESERVATION_STATUS_ACTIVE")
    }
}

// MARK: - Fold round trip

@Suite("StockItemDecider: events")
struct InventoryEventTests {
    @Test func aDayInTheLifeSurvivesSerializationAndRefolds() throws {
        var state = D.initialState
        var log: [D.Event] = []
        let steps: [(D.Command, Int64)] = [
            (receive(10), t0), (reserve("r1", 4), t0), (reserve("r2", 3), t0 + 1),
            (.extendReservation(key: key, reservationId: "r1", expiresAtMicros: t0 + 30 * minute), t0 + 2),
            (.commitReservation(key: key, reservationId: "r1"), t0 + 3),
            (adjust(.delta(-1), reason: .damaged), t0 + 4),
            (.expireReservations(key: key), t0 + 15 * minute),
            (reserve("r3", 2, until: t0 + 30 * minute), t0 + 15 * minute), (.releaseReservation(key: key, reservationId: "r3", reason: "cancelled"), t0 + 16 * minute),
        ]
        for (command, now) in steps {
            let events = try decide(command, state, at: now)
            #expect(!events.isEmpty)
            log += events
            state = D.fold(events, from: state)
        }
        #expect(log.map(\.typeName) == [
            "StockReceived", "StockReserved", "StockReserved", "ReservationExtended", "ReservationCommitted",
            "StockAdjusted", "ReservationExpired", "StockReserved", "ReservationReleased",
        ])
        let decoded = try log.map { try D.Event(serializedBytes: try $0.serializedBytes() as [UInt8]) }
        #expect(decoded == log)
        #expect(D.fold(decoded) == state)
        #expect(state.onHand == 5 && state.reservations.isEmpty && state.ended.count == 3)
        #expect(D.Event.schemaVersion == 1)
    }

    @Test func anEmptyEnvelopeChangesNothing() throws {
        #expect(D.evolve(try stocked(), D.Event()) == (try stocked()))
        #expect(D.Event().typeName == "StockItemEvent")
    }
}
