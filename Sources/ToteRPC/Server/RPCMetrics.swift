import CoreMetrics
import Dispatch
import Synchronization
import ToteWire

/// Request metrics of the RPC server, per method: `tote_rpc_requests_total{method, code}` (every
/// call that ended, with its status code: the error rate is the share with code ≠ OK) and
/// `tote_rpc_duration_seconds{method}` (time from the call's headers to its status). Reported
/// through swift-metrics, so they cost nothing until a process bootstraps a backend (`tote
/// serve` bootstraps Prometheus). Handles are made once per method and code.
final class RPCMetrics: Sendable {
    static let shared = RPCMetrics()

    private let counters = Mutex<[String: CoreMetrics.Counter]>([:])
    private let timers = Mutex<[String: CoreMetrics.Timer]>([:])

    /// Now, for ``record(method:code:startedAt:)``.
    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// One call of `method` ended with `code`, `startedAt` being ``now()`` when it opened.
    func record(method: String, code: RPCError.Code, startedAt: UInt64) {
        let key = "\(method) \(code.rawValue)"
        let counter = counters.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = CoreMetrics.Counter(label: "tote_rpc_requests_total", dimensions: [("method", method), ("code", code.description)])
            counters[key] = counter
            return counter
        }
        counter.increment()
        let timer = timers.withLock { timers in
            if let timer = timers[method] { return timer }
            let timer = CoreMetrics.Timer(label: "tote_rpc_duration_seconds", dimensions: [("method", method)])
            timers[method] = timer
            return timer
        }
        timer.recordNanoseconds(Int64(clamping: Self.now() &- startedAt))
    }
}
