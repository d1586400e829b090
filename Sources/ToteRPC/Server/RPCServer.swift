#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import ToteWire

/// A Tote wire-protocol server: accepts connections, serves the router's methods to callers whose
/// API keys grant the right role, and shuts down gracefully (GOAWAY, drain, close).
///
/// Runs as a swift-service-lifecycle `Service`: `run()` serves until graceful shutdown is
/// triggered, then drains in-flight calls (bounded by `drainTimeout`) and returns.
public final class RPCServer: Service, Sendable {
    /// Where to listen and the limits every connection gets.
    public struct Configuration: Sendable {
        public var host: String
        /// 0 picks a free port; see ``RPCServer/localAddress``.
        public var port: Int
        public var settings: ConnectionSettings
        /// Connections beyond this are refused with GOAWAY(CONNECTION_LIMIT).
        public var maxConnections: Int
        /// A frame (or the preface) begun but not finished within this is a TIMEOUT (slowloris).
        public var partialFrameTimeout: TimeAmount
        /// How often an idle connection is pinged.
        public var keepaliveInterval: TimeAmount
        /// How long a PING may go unanswered before the connection is closed.
        public var keepaliveTimeout: TimeAmount
        /// How long graceful shutdown waits for in-flight calls before closing connections anyway.
        public var drainTimeout: TimeAmount
        /// Unconsumed request bytes per connection; a message beyond it fails its call with
        /// RESOURCE_EXHAUSTED (streaming calls whose handlers fall behind).
        public var maxBufferedInboundBytes: Int
        /// When set, the server runs its connections on an event-loop group of its own with this
        /// many threads (shut down when ``RPCServer/run()`` returns) instead of the `group` it was given. Point
        /// reads answered on the event loop scale with it only while cores are free: on a small
        /// host a load generator or the projector competes for the same cores. (Measured on 2
        /// cores: one thread had the better p99, the shared group the better throughput; nil
        /// stays the default.)
        public var eventLoopThreads: Int?
        /// How the kernel schedules the server's event-loop threads. ``EventLoopScheduling/batch``
        /// runs the server on a group of its own (``eventLoopThreads``, else one thread per core),
        /// never on the shared group it was given.
        public var eventLoopScheduling: EventLoopScheduling

        public init(
            host: String = "127.0.0.1",
            port: Int = 7700,
            settings: ConnectionSettings = ConnectionSettings(),
            maxConnections: Int = 4096,
            partialFrameTimeout: TimeAmount = .seconds(10),
            keepaliveInterval: TimeAmount = .seconds(30),
            keepaliveTimeout: TimeAmount = .seconds(10),
            drainTimeout: TimeAmount = .seconds(30),
            maxBufferedInboundBytes: Int = 64 * 1024 * 1024,
            eventLoopThreads: Int? = nil,
            eventLoopScheduling: EventLoopScheduling = .normal
        ) {
            self.host = host
            self.port = port
            self.settings = settings
            self.maxConnections = maxConnections
            self.partialFrameTimeout = partialFrameTimeout
            self.keepaliveInterval = keepaliveInterval
            self.keepaliveTimeout = keepaliveTimeout
            self.drainTimeout = drainTimeout
            self.maxBufferedInboundBytes = maxBufferedInboundBytes
            self.eventLoopThreads = eventLoopThreads
            self.eventLoopScheduling = eventLoopScheduling
        }

        /// The thread count of the group the server makes for itself; nil when it runs on the
        /// group it was given.
        var ownedThreads: Int? {
            eventLoopThreads ?? (eventLoopScheduling == .batch ? System.coreCount : nil)
        }
    }

    /// The kernel scheduling policy of the server's event-loop threads.
    public enum EventLoopScheduling: String, Sendable, CaseIterable {
        /// The default policy (`SCHED_OTHER`): a thread woken by a request may preempt whatever
        /// runs on its core.
        case normal
        /// `SCHED_BATCH`: a woken event loop does not preempt the thread running on its core; it
        /// runs when that thread's slice ends or it blocks, and then answers every request that
        /// arrived meanwhile. When the cores are saturated (a read node under a flash sale, or a
        /// load generator on the same host) this trades context switches for batching: on 2
        /// cores shared with the load generator, point reads took 14.1 instead of 15.9 µs of CPU
        /// per call and ran 1.15× the calls per second (benchmarks/RESULTS.md). On an idle core
        /// a wake-up runs at once either way. Linux only; elsewhere it behaves as ``normal``.
        case batch
    }

    private struct State {
        var listener: (any Channel)?
        var connections: [ObjectIdentifier: any Channel] = [:]
        /// Set once by ``RPCServer/shutdownGracefully()`` and never cleared: a server that has
        /// begun shutting down never binds again.
        var draining = false
    }

    /// Why ``RPCServer/start()`` refused to listen.
    public enum LifecycleError: Error, CustomStringConvertible {
        /// Graceful shutdown began before (or while) the listener was bound.
        case shutDown

        public var description: String {
            switch self {
            case .shutDown: "the server has been shut down; make a new RPCServer to listen again"
            }
        }
    }

    public let configuration: Configuration
    private let router: RPCRouter
    private let keyring: APIKeyring
    private let group: any EventLoopGroup
    /// The group made for ``Configuration/eventLoopThreads``, shut down at the end of ``run()``.
    private let ownedGroup: Mutex<MultiThreadedEventLoopGroup?>
    private let logger: Logger
    private let state = Mutex(State())
    private let ready = Mutex<[CheckedContinuation<SocketAddress, any Error>]>([])

    public init(
        configuration: Configuration,
        router: RPCRouter,
        keyring: APIKeyring,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "tote.rpc.server")
    ) {
        self.configuration = configuration
        self.router = router
        self.keyring = keyring
        if let threads = configuration.ownedThreads {
            precondition(threads > 0, "eventLoopThreads must be positive")
            let owned = MultiThreadedEventLoopGroup(numberOfThreads: threads)
            if configuration.eventLoopScheduling == .batch {
                // Each loop sets its own thread's policy, before any channel of this server
                // runs on it (its tasks run in order).
                for loop in owned.makeIterator() {
                    loop.execute { Self.useBatchScheduling(logger: logger) }
                }
            }
            self.group = owned
            self.ownedGroup = Mutex(owned)
        } else {
            self.group = group
            self.ownedGroup = Mutex(nil)
        }
        self.logger = logger
    }

    /// Number of open client connections.
    public var connectionCount: Int { state.withLock { $0.connections.count } }

    /// The bound address, once started.
    public var localAddress: SocketAddress? { state.withLock { $0.listener?.localAddress } }

    /// Binds the listening socket and starts accepting. Returns the bound address. Throws
    /// ``LifecycleError/shutDown`` once ``shutdownGracefully()`` has begun.
    @discardableResult
    public func start() async throws -> SocketAddress {
        guard !state.withLock({ $0.draining }) else { throw LifecycleError.shutDown }
        let connectionConfiguration = ServerConnectionHandler.Configuration(
            settings: configuration.settings,
            partialFrameTimeout: configuration.partialFrameTimeout,
            keepaliveInterval: configuration.keepaliveInterval,
            keepaliveTimeout: configuration.keepaliveTimeout,
            maxBufferedInboundBytes: configuration.maxBufferedInboundBytes
        )
        let listener = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    if let refusal = admit(channel) {
                        try channel.pipeline.syncOperations.addHandler(refusal)
                        return
                    }
                    try channel.pipeline.syncOperations.addHandler(ServerConnectionHandler(
                        router: router,
                        keyring: keyring,
                        configuration: connectionConfiguration,
                        logger: logger
                    ))
                }
            }
            .bind(host: configuration.host, port: configuration.port)
            .get()
        // Shutdown may have begun while binding: it found no listener to close, so close this one.
        let shutDown = state.withLock { state in
            if !state.draining { state.listener = listener }
            return state.draining
        }
        if shutDown {
            try? await listener.close()
            throw LifecycleError.shutDown
        }
        logger.info("listening", metadata: ["address": "\(listener.localAddress.map { "\($0)" } ?? "?")"])
        return listener.localAddress!
    }

    /// Registers an accepted connection, or returns the handler that refuses it and says why.
    private func admit(_ channel: any Channel) -> RefuseConnectionHandler? {
        let id = ObjectIdentifier(channel)
        enum Admission { case admitted, draining, full }
        let admission = state.withLock { state -> Admission in
            if state.draining { return .draining }
            guard state.connections.count < configuration.maxConnections else { return .full }
            state.connections[id] = channel
            return .admitted
        }
        switch admission {
        case .admitted:
            break
        case .draining:
            return RefuseConnectionHandler(code: .noError, message: "server is shutting down; connect to another instance")
        case .full:
            logger.warning("refusing connection over the limit", metadata: ["limit": "\(configuration.maxConnections)"])
            return RefuseConnectionHandler(
                code: .connectionLimit,
                message: "server is at its limit of \(configuration.maxConnections) connections; retry later"
            )
        }
        channel.closeFuture.whenComplete { [self] _ in
            _ = state.withLock { $0.connections.removeValue(forKey: id) }
        }
        return nil
    }

    /// Serves until graceful shutdown, then drains. The `Service` entry point. Binds first unless
    /// ``start()`` already did; returns at once (after the drain) when shutdown came first.
    public func run() async throws {
        // Not `localAddress == nil`: a closed listener has no address either, and binding anew
        // after an early shutdownGracefully() would serve forever.
        let (bound, draining) = state.withLock { ($0.listener, $0.draining) }
        var listener = bound
        if listener == nil, !draining {
            do {
                try await start()
            } catch LifecycleError.shutDown {
                // Shut down while binding: fall through to the drain and the group's end.
            }
            listener = state.withLock { $0.listener }
        }
        if let listener {
            try await withGracefulShutdownHandler {
                try await listener.closeFuture.get()
            } onGracefulShutdown: {
                Task { await self.shutdownGracefully() }
            }
        }
        await waitForConnectionsToClose()
        // Every channel is closed: nothing of this server runs on its own loops any more. (Not
        // in `shutdownGracefully()`, which may run concurrently with this and after which
        // waiting on a channel's future needs its loop.) Without `run()` the group lives on.
        if let owned = ownedGroup.withLock({ group in defer { group = nil }; return group }) {
            try? await owned.shutdownGracefully()
        }
    }

    /// Whether the group made for ``Configuration/eventLoopThreads`` has been shut down (by
    /// the end of ``run()``).
    var ownedGroupIsShutDown: Bool {
        configuration.ownedThreads != nil && ownedGroup.withLock { $0 == nil }
    }

    /// The scheduling policy of the calling thread: `SCHED_BATCH` when `batch`, `SCHED_OTHER`
    /// otherwise (tests read it on the event loops).
    static func currentThreadScheduling() -> EventLoopScheduling {
        #if os(Linux)
        return sched_getscheduler(0) == schedBatch ? .batch : .normal
        #else
        return .normal
        #endif
    }

    /// `SCHED_BATCH` of `<linux/sched.h>`, which Glibc's module does not export.
    private static let schedBatch: Int32 = 3

    /// Puts the calling thread under `SCHED_BATCH` (no privilege needed); logs when refused.
    private static func useBatchScheduling(logger: Logger) {
        #if os(Linux)
        var parameters = sched_param(sched_priority: 0)
        if sched_setscheduler(0, schedBatch, &parameters) != 0 {
            logger.warning("could not set SCHED_BATCH on an event-loop thread", metadata: ["errno": "\(errno)"])
        }
        #endif
    }

    /// Stops accepting, sends GOAWAY on every connection, lets in-flight calls finish (up to
    /// `drainTimeout`), then closes whatever is left. Returns when every connection is closed.
    public func shutdownGracefully() async {
        let (listener, connections) = state.withLock { state in
            state.draining = true
            return (state.listener, Array(state.connections.values))
        }
        logger.info("shutting down", metadata: ["connections": "\(connections.count)"])
        try? await listener?.close()
        for channel in connections {
            channel.pipeline.fireUserInboundEventTriggered(DrainConnectionEvent())
        }
        let deadline = NIODeadline.now() + configuration.drainTimeout
        while NIODeadline.now() < deadline, connectionCount > 0 {
            try? await Task.sleep(for: .milliseconds(10))
        }
        let remaining = state.withLock { Array($0.connections.values) }
        if !remaining.isEmpty {
            logger.warning("drain timeout: closing connections with calls in flight", metadata: ["connections": "\(remaining.count)"])
            for channel in remaining { channel.close(promise: nil) }
        }
        await waitForConnectionsToClose()
    }

    private func waitForConnectionsToClose() async {
        let channels = state.withLock { Array($0.connections.values) }
        for channel in channels { try? await channel.closeFuture.get() }
    }
}
