import EventStore
import Synchronization
import ToteDomain

/// The active promotion rules, kept in memory by following the event log: carts are priced with
/// every active automatic rule (and the rules of their coupons) without reading each promotion's
/// stream on every call. It lags the log by one poll at most; a coupon's own rule is always read
/// from its stream when the coupon is applied.
public final class PromotionRegistry: Sendable {
    private struct State {
        var promotions: [String: PromotionDecider.State] = [:]
        var position = LogPosition.start
    }
    private let state = Mutex(State())
    let store: EventStore

    public init(store: EventStore) {
        self.store = store
    }

    /// Every active rule, in id order.
    public var activeRules: [PromotionRule] {
        state.withLock { state in
            state.promotions.values.filter { $0.status == .active }.compactMap(\.rule).sorted { $0.id < $1.id }
        }
    }

    /// Folds one event of the log into the registry (ignores anything but promotions, and any
    /// event at or before the position already folded).
    public func observe(_ event: RecordedEvent) {
        let decoded = event.stream.hasPrefix("promotion-") ? try? EventCodec.decode(event, as: PromotionDecider.Event.self) : nil
        state.withLock { state in
            guard event.position > state.position else { return }
            state.position = event.position
            if let decoded {
                state.promotions[event.stream] = PromotionDecider.evolve(state.promotions[event.stream] ?? PromotionDecider.initialState, decoded)
            }
        }
    }

    /// Reads everything new in the log now (used before answering when freshness matters, and
    /// by tests); ``run()`` does it continuously.
    public func catchUp() async throws {
        while true {
            let from = state.withLock { $0.position }
            let events = try await store.readAll(after: from, limit: 1000)
            for event in events { observe(event) }
            if events.count < 1000 { return }
        }
    }

    /// Reads the log until the registry has passed `position` (an append this node just made), for
    /// at most `timeout`. The log's readers never pass a transaction still open anywhere in the
    /// PostgreSQL cluster (so that no event is ever skipped), so an append can take a moment to
    /// become readable; a plain ``catchUp()`` then returns without it.
    public func catchUp(through position: LogPosition, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            try await catchUp()
            if state.withLock({ $0.position }) >= position || ContinuousClock.now >= deadline { return }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Follows the log until cancelled.
    public func run() async throws {
        let from = state.withLock { $0.position }
        for try await event in store.subscribe(from: from, batchSize: 1000) { observe(event) }
    }
}
