import Foundation

extension Process {
    /// Waits until the child has exited, on a thread of its own. `waitUntilExit()` blocks its
    /// thread; called from async code it holds one of the few cooperative threads (two on a
    /// 2-core machine) that every test running in parallel shares, and their timers and handlers
    /// stall: a query test once got DEADLINE_EXCEEDED instead of its answer that way.
    public func exited() async {
        nonisolated(unsafe) let process = self
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread {
                process.waitUntilExit()
                continuation.resume()
            }
        }
    }
}

/// Runs blocking work (a pipe read, a child's wait) on a thread of its own, off the cooperative
/// pool (see ``Foundation/Process/exited()``).
public func offCooperativeThreads<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
    }
}
