import EventStore
import Foundation
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import ServiceLifecycle
import Synchronization
import ToteReadModels

/// The process's metrics: swift-metrics bootstrapped once with a Prometheus registry, which
/// the HTTP endpoint renders in the Prometheus text format.
enum ToteMetrics {
    private static let bootstrapped = Mutex<PrometheusCollectorRegistry?>(nil)

    /// The registry every metric of this process reports to (bootstrapping swift-metrics on
    /// first use; it can be bootstrapped once per process).
    static var registry: PrometheusCollectorRegistry {
        bootstrapped.withLock { registry in
            if let registry { return registry }
            let created = PrometheusCollectorRegistry()
            var factory = PrometheusMetricsFactory(registry: created)
            // RPCs and appends take microseconds to milliseconds: finer buckets than the default.
            factory.defaultDurationHistogramBuckets = [
                .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
                .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
                .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
            ]
            factory.defaultValueHistogramBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256]
            MetricsSystem.bootstrap(factory)
            registry = created
            return created
        }
    }
}

/// An HTTP/1.1 endpoint beside the RPC port: `GET /metrics` (Prometheus text format), `GET
/// /health` (200 while the process runs: liveness) and `GET /ready` (200 once it serves and its
/// dependencies answer, else 503: readiness, for a load balancer or an orchestrator).
struct MetricsEndpoint: Service {
    var listen: HostAndPort
    var registry: PrometheusCollectorRegistry
    /// Whether the process is ready to take traffic, with a reason when it is not.
    var readiness: @Sendable () async -> (ready: Bool, reason: String)
    /// Called with the bound address once listening.
    var started: @Sendable (String) -> Void = { _ in }

    func run() async throws {
        let registry = registry
        let readiness = readiness
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(MetricsHTTPHandler(registry: registry, readiness: readiness))
                }
            }
            .bind(host: listen.host, port: listen.port).get()
        started("\(channel.localAddress?.ipAddress ?? listen.host):\(channel.localAddress?.port ?? listen.port)")
        try await withGracefulShutdownHandler {
            try await channel.closeFuture.get()
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
    }
}

/// Answers one HTTP request at a time on a connection (keep-alive honoured).
private final class MetricsHTTPHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let registry: PrometheusCollectorRegistry
    let readiness: @Sendable () async -> (ready: Bool, reason: String)

    init(registry: PrometheusCollectorRegistry, readiness: @escaping @Sendable () async -> (ready: Bool, reason: String)) {
        self.registry = registry
        self.readiness = readiness
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let request) = unwrapInboundIn(data) else { return }
        let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
        let keepAlive = request.isKeepAlive
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        guard request.method == .GET || request.method == .HEAD else {
            return respond(bound.value.1, .methodNotAllowed, "only GET\n", keepAlive: keepAlive)
        }
        switch path {
        case "/metrics":
            respond(context, .ok, String(decoding: registry.emitToBuffer(), as: UTF8.self), contentType: "text/plain; version=0.0.4; charset=utf-8", keepAlive: keepAlive)
        case "/health":
            respond(context, .ok, "ok\n", keepAlive: keepAlive)
        case "/ready":
            let readiness = readiness
            let promise = context.eventLoop.makePromise(of: (ready: Bool, reason: String).self)
            promise.completeWithTask { await readiness() }
            promise.futureResult.whenSuccess { answer in
                let (handler, context) = bound.value
                handler.respond(context, answer.ready ? .ok : .serviceUnavailable, answer.ready ? "ready\n" : "not ready: \(answer.reason)\n", keepAlive: keepAlive)
            }
        default:
            respond(context, .notFound, "not found: try /metrics, /health or /ready\n", keepAlive: keepAlive)
        }
    }

    private func respond(_ context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ body: String, contentType: String = "text/plain; charset=utf-8", keepAlive: Bool) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: "\(body.utf8.count)")
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}

/// Samples what no request reports by itself, every few seconds: the age of the oldest open
/// PostgreSQL transaction, and the projector's lag in events and seconds.
struct MetricsSampler: Service {
    var store: EventStore
    var projector: ProjectorRunner?
    var interval: Duration = .seconds(5)
    var logger = Logger(label: "tote.metrics")

    func run() async throws {
        let oldestTransaction = Gauge(label: "tote_postgres_oldest_transaction_seconds")
        let lagEvents = Gauge(label: "tote_projector_lag_events")
        let lagSeconds = Gauge(label: "tote_projector_lag_seconds")
        let appliedPosition = Gauge(label: "tote_projector_applied_global_position")
        while !Task.isShuttingDownGracefully {
            do {
                oldestTransaction.record(try await store.oldestOpenTransactionSeconds())
                if let projector {
                    let lag = try await projector.lag(probe: 1000)
                    lagEvents.record(lag.eventsBehind)
                    lagSeconds.record(lag.secondsBehind)
                    appliedPosition.record(lag.position.globalPosition)
                }
            } catch {
                logger.debug("metrics sample failed", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: interval)
        }
    }
}
