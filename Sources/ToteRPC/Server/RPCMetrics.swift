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

    /// A counter's key: no string is formatted per call to find it.
    private struct CounterKey: Hashable {
        var method: String
        var code: Int32
    }

    private let handles = Mutex<(counters: [CounterKey: CoreMetrics.Counter], timers: [String: CoreMetrics.Timer])>(([:], [:]))

    /// Now, for ``record(method:code:startedAt:)``.
    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// One call of `method` ended with `code`, `startedAt` being ``now()`` when it opened.
    func record(method: String, code: RPCError.Code, startedAt: UInt64) {
        let key = CounterKey(method: method, code: code.rawValue)
        // One lock for both handles; they are created once per method and code.
        let (counter, timer) = handles.withLock { handles in
            let counter: CoreMetrics.Counter
            if let existing = handles.counters[key] {
                counter = existing
            } else {
                counter = CoreMetrics.Counter(label: "tote_rpc_requests_total", dimensions: [("method", method), ("code", code.description)])
                handles.counters[key] = counter
            }
            let timer: CoreMetrics.Timer
            if let existing = handles.timers[method] {
                timer = existing
            } else {
                timer = CoreMetrics.Timer(label: "tote_rpc_duration_seconds", dimensions: [("method", method)])
                handles.timers[method] = timer
            }
            return (counter, timer)
        }
        counter.increment()
        timer.recordNanoseconds(Int64(clamping: Self.now() &- startedAt))
    }
}
