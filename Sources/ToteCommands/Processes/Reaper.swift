import EventStore
import Metrics
import Logging
import SwiftProtobuf
import Synchronization
import ToteDomain

/// Ends what time ends: follows the event log, remembers when each live stock reservation (and
/// each unpaid order, through ``DeadlineTracker``s registered by other processes) falls due, and
/// when one does, runs the command that records it — `ExpireReservations` on the stock item.
///
/// Deciders already stop counting an expired reservation by their clock input, so availability
/// never waits for the reaper; the reaper makes the expiry a fact in the log (for projections,
/// operators and the audit trail). Running it on several nodes at once is safe: a second run
/// finds nothing overdue and writes nothing, and expected versions order the rest.
public final class Reaper: Sendable {
    /// Something the reaper watches: it reads each event, says which keys fall due when, and
    /// runs the command for a key that fell due.
    public struct Tracker: Sendable {
        /// The name as a metric label: `stock_reservations`.
        var metricName: String { name.replacingOccurrences(of: " ", with: "_") }

        /// A short name for logs.
        public var name: String
        /// Updates `deadlines` (key → due time in µs since the epoch; nil removes) from one event.
        public var observe: @Sendable (RecordedEvent, inout [String: Int64]) -> Void
        /// The target of the expiry command for a due key (several keys may share one target,
        /// e.g. the reservations of one stock item); each target runs once per sweep.
        public var target: @Sendable (String) -> String
        /// Records the expiry for a target that has something due.
        public var expire: @Sendable (String, CommandRunner) async throws -> Void

        public init(
            name: String,
            observe: @escaping @Sendable (RecordedEvent, inout [String: Int64]) -> Void,
            target: @escaping @Sendable (String) -> String = { $0 },
            expire: @escaping @Sendable (String, CommandRunner) async throws -> Void
        ) {
            self.name = name
            self.observe = observe
            self.target = target
            self.expire = expire
        }
    }

    private struct State {
        /// Per tracker: key → due time.
        var deadlines: [[String: Int64]]
        /// Whether the reaper has read the log up to its head once.
        var caughtUp = false
    }

    let runner: CommandRunner
    let trackers: [Tracker]
    let interval: Duration
    let logger: Logger
    private let state: Mutex<State>

    /// - Parameters:
    ///   - trackers: what to watch; ``stockReservations`` by default.
    ///   - interval: how often due keys are looked for (expiry is recorded within about this long).
    public init(runner: CommandRunner, trackers: [Tracker] = [Reaper.stockReservations], interval: Duration = .seconds(1), logger: Logger = Logger(label: "tote.reaper")) {
        self.runner = runner
        self.trackers = trackers
        self.interval = interval
        self.logger = logger
        self.state = Mutex(State(deadlines: trackers.map { _ in [:] }))
    }

    /// Keys currently tracked by each tracker (for tests and metrics).
    public var pending: [String: Int] {
        state.withLock { state in
            Dictionary(uniqueKeysWithValues: zip(trackers.map(\.name), state.deadlines.map(\.count)))
        }
    }

    /// Follows the log and expires what falls due, until cancelled.
    public func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.follow() }
            group.addTask { try await self.sweepLoop() }
            try await group.next()
            group.cancelAll()
        }
    }

    private func follow() async throws {
        for try await event in runner.store.subscribe(from: .start, batchSize: 1000) {
            state.withLock { state in
                for (index, tracker) in trackers.enumerated() { tracker.observe(event, &state.deadlines[index]) }
            }
        }
    }

    private func sweepLoop() async throws {
        while !Task.isCancelled {
            try await Task.sleep(for: interval)
            await sweep()
        }
    }

    /// Runs the expiry command of every key due now (once per key and sweep). Errors are logged
    /// and the key is tried again at the next sweep.
    public func sweep() async {
        let now = runner.nowMicros
        let due: [(Int, String)] = state.withLock { state in
            state.deadlines.enumerated().flatMap { index, deadlines in
                Set(deadlines.filter { $0.value <= now }.map { trackers[index].target($0.key) }).sorted().map { (index, $0) }
            }
        }
        let pending = self.pending
        for tracker in trackers {
            Gauge(label: "tote_reaper_pending", dimensions: [("tracker", tracker.metricName)]).record(pending[tracker.name] ?? 0)
        }
        for (index, key) in due {
            do {
                try await trackers[index].expire(key, runner)
                Counter(label: "tote_reaper_expired_total", dimensions: [("tracker", trackers[index].metricName)]).increment()
            } catch {
                logger.warning("expiry failed; retrying at the next sweep", metadata: ["tracker": "\(trackers[index].name)", "key": "\(key)", "error": "\(error)"])
            }
        }
    }

    // MARK: Stock reservations

    /// Live reservations of every stock item; a stock item is due at its earliest expiry.
    public static let stockReservations = Tracker(
        name: "stock reservations",
        observe: { event, deadlines in
            guard event.stream.hasPrefix("stock-") else { return }
            guard let decoded = try? EventCodec.decode(event, as: StockItemDecider.Event.self) else { return }
            // One deadline per live reservation, keyed "<stream>\n<reservation id>".
            switch decoded.event {
            case .stockReserved(let reserved):
                deadlines["\(event.stream)\n\(reserved.reservation.reservationID)"] = reserved.reservation.expiresAt.unixMicros
            case .reservationExtended(let extended):
                deadlines["\(event.stream)\n\(extended.reservationID)"] = extended.expiresAt.unixMicros
            case .reservationReleased(let ended):
                deadlines["\(event.stream)\n\(ended.reservationID)"] = nil
            case .reservationCommitted(let ended):
                deadlines["\(event.stream)\n\(ended.reservationID)"] = nil
            case .reservationExpired(let ended):
                deadlines["\(event.stream)\n\(ended.reservationID)"] = nil
            default:
                break
            }
        },
        target: { key in String(key.prefix { $0 != "\n" }) },
        expire: { stream, runner in
            let (state, _) = try await runner.read(StockItemDecider.self, stream)
            guard let item = state.key else { return }
            _ = try await runner.execute(commandID: "", actor: .system, correlationID: "reaper") { unit -> Google_Protobuf_Empty in
                try await unit.serialize([stream])
                try await unit.decide(StockItemDecider.self, stream, .expireReservations(key: item))
                return Google_Protobuf_Empty()
            }
        }
    )
}
