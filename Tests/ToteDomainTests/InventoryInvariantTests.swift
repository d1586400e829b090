import Testing
import ToteDomain
import ToteProto

/// A small deterministic generator (SplitMix64), so a failing sequence can be replayed from its seed.
private struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func int(_ range: ClosedRange<Int64>) -> Int64 {
        range.lowerBound + Int64(next() % UInt64(range.upperBound - range.lowerBound + 1))
    }
}

@Suite("StockItemDecider: invariants over random command sequences")
struct InventoryInvariantTests {
    /// Without forced adjustments: on hand never negative, live reservations never exceed on
    /// hand, availability matches its definition, refusals are only the documented kinds, and
    /// refolding the whole log rebuilds the state.
    @Test(arguments: [1, 2, 3, 42, 2026] as [UInt64])
    func invariantsHold(seed: UInt64) throws {
        let key = StockItemDecider.Key(sku: "FLASH-1", locationId: "wh1")
        var rng = SplitMix64(state: seed)
        var state = StockItemDecider.initialState
        var log: [StockItemDecider.Event] = []
        var now: Int64 = 1_700_000_000_000_000
        var accepted = 0
        for _ in 0..<1_500 {
            now += rng.int(0...30_000_000)  // time never goes back
            let id = "r\(rng.int(0...40))"
            let command: StockItemDecider.Command
            switch rng.int(0...7) {
            case 0: command = .receive(key: key, quantity: rng.int(1...20), reference: "PO")
            case 1: command = .adjust(key: key, change: .delta(rng.int(-15...15)), reason: .cycleCount, note: "", force: false)
            case 2: command = .adjust(key: key, change: .countedQuantity(rng.int(0...40)), reason: .cycleCount, note: "", force: false)
            case 3, 4: command = .reserve(key: key, reservationId: id, quantity: rng.int(1...8), expiresAtMicros: now + rng.int(1...600_000_000), reference: "order:\(id)")
            case 5: command = .extendReservation(key: key, reservationId: id, expiresAtMicros: now + rng.int(1...600_000_000))
            case 6: command = rng.int(0...1) == 0 ? .commitReservation(key: key, reservationId: id) : .releaseReservation(key: key, reservationId: id, reason: "")
            default: command = .expireReservations(key: key)
            }
            do {
                let events = try StockItemDecider.decide(command, state: state, context: CommandContext(actor: .system, nowMicros: now))
                state = StockItemDecider.fold(events, from: state)
                log += events
                if !events.isEmpty { accepted += 1 }
            } catch {
                // Only these refusals exist for well-formed commands.
                #expect([.failedPrecondition, .notFound, .alreadyExists, .invalidArgument].contains(error.code))
                if error.code == .invalidArgument {
                    // Only "on hand would go negative" from an adjustment.
                    #expect(error.violations.allSatisfy { $0.field == "delta" || $0.field == "counted_quantity" }, "\(error)")
                }
            }
            #expect(state.onHand >= 0)
            let reserved = state.reserved(atMicros: now)
            #expect(reserved <= state.onHand, "reserved \(reserved) > on hand \(state.onHand) at step with \(command)")
            #expect(state.available(atMicros: now) == state.onHand - reserved)
            #expect(state.liveReservations(atMicros: now).reduce(0) { $0 + $1.quantity } == reserved)
        }
        #expect(accepted > 300)
        #expect(StockItemDecider.fold(log) == state)
    }
}
