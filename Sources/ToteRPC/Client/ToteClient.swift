import Foundation
import NIOCore
import NIOPosix
import Synchronization
import ToteWire

/// A client for BFFs and tools that keeps one connection to a server and re-establishes it when
/// it drops, with exponential backoff and jitter.
///
/// While the server is unreachable, calls fail fast with UNAVAILABLE (naming the last connect
/// error) unless ``CallOptions/waitForReady`` is set, in which case they wait for a connection
/// within their timeout. Calls that were in flight when a connection dropped fail with
/// UNAVAILABLE and are not retried automatically: only the caller knows whether a call is safe to
/// repeat (commands are, with an idempotency key).
public final class ToteClient: Sendable {
    /// Reconnect timing: delays grow from `initial` by `multiplier` up to `maximum`, each
    /// randomised by ±`jitter` so that many clients do not reconnect in lockstep.
    public struct Backoff: Sendable {
        public var initial: Duration = .milliseconds(100)
        public var maximum: Duration = .seconds(5)
        public var multiplier: Double = 2
        public var jitter: Double = 0.2

        public init(initial: Duration = .milliseconds(100), maximum: Duration = .seconds(5), multiplier: Double = 2, jitter: Double = 0.2) {
            self.initial = initial
            self.maximum = maximum
            self.multiplier = multiplier
            self.jitter = jitter
        }

        /// The delay before attempt `attempt` (1 = the first retry).
        func delay(attempt: Int) -> Duration {
            let base = Double(initial.components.seconds) + Double(initial.components.attoseconds) / 1e18
            let cap = Double(maximum.components.seconds) + Double(maximum.components.attoseconds) / 1e18
            let raw = min(cap, base * pow(multiplier, Double(max(0, attempt - 1))))
            let jittered = raw * Double.random(in: (1 - jitter)...(1 + jitter))
            return .nanoseconds(Int64(jittered * 1e9))
        }
    }

    private enum State {
        case idle
        case connecting(Task<ClientConnection, any Error>)
        case connected(ClientConnection)
    }

    private struct Shared {
        var state: State = .idle
        var failedAttempts = 0
        var nextAttemptAt: ContinuousClock.Instant = .now
        var lastError: String = ""
        var closed = false
    }

    public let host: String
    public let port: Int
    private let configuration: ClientConnection.Configuration
    private let backoff: Backoff
    private let group: any EventLoopGroup
    private let shared = Mutex(Shared())

    public init(
        host: String,
        port: Int,
        configuration: ClientConnection.Configuration,
        backoff: Backoff = Backoff(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.host = host
        self.port = port
        self.configuration = configuration
        self.backoff = backoff
        self.group = group
    }

    /// A usable connection: the current one, or a new one if it dropped.
    public func connection(waitForReady: Bool = false, deadline: ContinuousClock.Instant? = nil) async throws -> ClientConnection {
        while true {
            try Task.checkCancellation()
            let action: Result<Task<ClientConnection, any Error>, RPCError>? = shared.withLock { shared in
                if shared.closed { return .failure(RPCError(.unavailable, "the client is closed")) }
                switch shared.state {
                case .connected(let connection) where connection.isUsable:
                    return nil
                case .connecting(let task):
                    return .success(task)
                case .idle, .connected:
                    let now = ContinuousClock.now
                    if now < shared.nextAttemptAt, !waitForReady {
                        return .failure(RPCError(.unavailable, "cannot reach \(host):\(port) (\(shared.lastError)); next attempt in \(shared.nextAttemptAt - now)"))
                    }
                    let delay = max(.zero, shared.nextAttemptAt - now)
                    let task = Task { [host, port, configuration, group] in
                        try await Task.sleep(for: delay)
                        return try await ClientConnection.connect(host: host, port: port, configuration: configuration, group: group)
                    }
                    shared.state = .connecting(task)
                    return .success(task)
                }
            }
            switch action {
            case nil:
                if case .connected(let connection) = shared.withLock({ $0.state }) { return connection }
            case .failure(let error):
                throw error
            case .success(let task):
                do {
                    let connection = try await task.value
                    shared.withLock { shared in
                        if case .connecting = shared.state { shared.state = .connected(connection) }
                        shared.failedAttempts = 0
                    }
                    return connection
                } catch {
                    let message = (error as? RPCError)?.message ?? "\(error)"
                    shared.withLock { shared in
                        if case .connecting = shared.state { shared.state = .idle }
                        shared.failedAttempts += 1
                        shared.lastError = message
                        shared.nextAttemptAt = .now + backoff.delay(attempt: shared.failedAttempts)
                    }
                    if !waitForReady { throw RPCError(.unavailable, message) }
                    if let deadline, ContinuousClock.now >= deadline {
                        throw RPCError(.deadlineExceeded, "no connection to \(host):\(port) before the deadline: \(message)")
                    }
                }
            }
        }
    }

    private func connection(for options: CallOptions) async throws -> ClientConnection {
        try await connection(waitForReady: options.waitForReady, deadline: options.timeout.map { .now + $0 })
    }

    /// Calls a unary method on the current connection.
    public func unary<Req, Resp>(_ method: MethodDescriptor<Req, Resp>, _ request: Req, options: CallOptions = CallOptions()) async throws -> Resp {
        try await connection(for: options).unary(method, request, options: options)
    }

    /// Calls a server-streaming method on the current connection.
    public func serverStreaming<Req, Resp, Result: Sendable>(
        _ method: MethodDescriptor<Req, Resp>, _ request: Req, options: CallOptions = CallOptions(),
        _ body: (ResponseStream<Resp>) async throws -> Result
    ) async throws -> Result {
        try await connection(for: options).serverStreaming(method, request, options: options, body)
    }

    /// Calls a client-streaming method on the current connection.
    public func clientStreaming<Req, Resp>(
        _ method: MethodDescriptor<Req, Resp>, options: CallOptions = CallOptions(),
        _ body: (RequestWriter<Req>) async throws -> Void
    ) async throws -> Resp {
        try await connection(for: options).clientStreaming(method, options: options, body)
    }

    /// Calls a bidirectional method on the current connection.
    public func bidirectional<Req, Resp, Result: Sendable>(
        _ method: MethodDescriptor<Req, Resp>, options: CallOptions = CallOptions(),
        _ body: (RequestWriter<Req>, ResponseStream<Resp>) async throws -> Result
    ) async throws -> Result {
        try await connection(for: options).bidirectional(method, options: options, body)
    }

    /// Closes the current connection gracefully; later calls fail with UNAVAILABLE.
    public func close() async {
        let state = shared.withLock { shared -> State in
            shared.closed = true
            defer { shared.state = .idle }
            return shared.state
        }
        switch state {
        case .connected(let connection): await connection.close()
        case .connecting(let task): task.cancel()
        case .idle: break
        }
    }
}
