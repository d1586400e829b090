import Synchronization
import ToteAPI

/// Serves tote.v1.Health: the serving status of the whole server ("") and of each service,
/// which other components update as they start, stop or lose a dependency.
public final class HealthService: RPCService, Sendable {
    /// A serving status: SERVING, NOT_SERVING or SERVICE_UNKNOWN.
    public typealias Status = Tote_V1_HealthCheckResponse.ServingStatus

    private struct State {
        var statuses: [String: Status] = [:]
        var watchers: [UInt64: (service: String, continuation: AsyncStream<Status>.Continuation)] = [:]
        var nextWatcher: UInt64 = 0
    }

    private let state = Mutex(State())
    public let serverVersion: String

    /// - Parameter services: the services this server serves; they and the server start SERVING.
    public init(serverVersion: String, services: some Sequence<String>) {
        self.serverVersion = serverVersion
        state.withLock { state in
            state.statuses[""] = .serving
            for service in services { state.statuses[service] = .serving }
        }
    }

    /// The current status of `service` ("" = the server); SERVICE_UNKNOWN if not served here.
    public func status(of service: String) -> Status {
        state.withLock { $0.statuses[service] ?? .serviceUnknown }
    }

    /// Changes a status and tells every watcher of that service.
    public func setStatus(_ status: Status, for service: String = "") {
        let watchers = state.withLock { state in
            state.statuses[service] = status
            return state.watchers.values.filter { $0.service == service }.map(\.continuation)
        }
        for watcher in watchers { watcher.yield(status) }
    }

    /// Marks the server and every service NOT_SERVING (on shutdown).
    public func markAllNotServing() {
        let services = state.withLock { Array($0.statuses.keys) }
        for service in services { setStatus(.notServing, for: service) }
    }

    private func response(_ status: Status) -> Tote_V1_HealthCheckResponse {
        var response = Tote_V1_HealthCheckResponse()
        response.status = status
        response.serverVersion = serverVersion
        return response
    }

    public func register(into router: inout RPCRouter) {
        router.register(Health.check, unary: { [self] request, _ in
            response(status(of: request.service))
        })
        router.register(Health.watch, serverStreaming: { [self] request, writer, _ in
            let (updates, continuation) = AsyncStream<Status>.makeStream(bufferingPolicy: .bufferingNewest(1))
            let id = state.withLock { state in
                state.nextWatcher += 1
                state.watchers[state.nextWatcher] = (request.service, continuation)
                return state.nextWatcher
            }
            defer { _ = state.withLock { $0.watchers.removeValue(forKey: id) } }
            var last = status(of: request.service)
            try await writer.write(response(last))
            for await status in updates where status != last {
                last = status
                try await writer.write(response(status))
            }
        })
    }
}
