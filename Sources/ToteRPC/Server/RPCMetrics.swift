import CoreMetrics
import Dispatch
import Synchronization
import ToteWire

/// Request metrics of the RPC server, per method: `tote_rpc_requests_total{method, code}` (every
/// call that ended, with its status code: the error rate is the share with code ≠ OK) and
/// `tote_rpc_duration_seconds{method}` (time from the call's headers to its status). Reported
/// through swift-metrics, so they cost nothing until a process bootstraps a backend (`tote
/// serve` bootstraps Prometheus).
///
/// Each registered method has its own ``Method`` (held by its route), so a call's metrics take no
/// lock shared with other methods and hash no string; methods the router does not know are
/// counted under `method="unknown"`.
final class RPCMetrics: Sendable {
    /// Now, for ``Method/record(code:startedAt:)``.
    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Calls naming a method the server does not serve (a client could mint any number of
    /// names, so they are not labels).
    static let unknown = Method("unknown")

    /// The metrics of one method. Its handles are made on first use, not when the method is
    /// registered: a handle made before the process bootstraps its metrics backend would stay
    /// bound to the no-op backend.
    final class Method: Sendable {
        let name: String
        private let handles = AtomicLazyReference<Handles>()

        init(_ name: String) { self.name = name }

        /// One call ended with `code`, `startedAt` being ``RPCMetrics/now()`` when it opened.
        func record(code: RPCError.Code, startedAt: UInt64) {
            let handles = self.handles.load() ?? self.handles.storeIfNil(Handles(method: name))
            handles.counter(code).increment()
            handles.duration.recordNanoseconds(Int64(clamping: RPCMetrics.now() &- startedAt))
        }
    }

    /// A method's handles: the duration timer, the OK counter (most calls) without a lock, and
    /// the other codes' counters made as they occur.
    private final class Handles: Sendable {
        let method: String
        let duration: CoreMetrics.Timer
        let ok: CoreMetrics.Counter
        let failures = Mutex<[Int32: CoreMetrics.Counter]>([:])

        init(method: String) {
            self.method = method
            duration = CoreMetrics.Timer(label: "tote_rpc_duration_seconds", dimensions: [("method", method)])
            ok = Self.counter(method, .ok)
        }

        func counter(_ code: RPCError.Code) -> CoreMetrics.Counter {
            if code == .ok { return ok }
            return failures.withLock { counters in
                if let existing = counters[code.rawValue] { return existing }
                let made = Self.counter(method, code)
                counters[code.rawValue] = made
                return made
            }
        }

        static func counter(_ method: String, _ code: RPCError.Code) -> CoreMetrics.Counter {
            CoreMetrics.Counter(label: "tote_rpc_requests_total", dimensions: [("method", method), ("code", code.description)])
        }
    }
}
