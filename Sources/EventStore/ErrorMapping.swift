import Postgres
import ToteProto
import ToteRPC

extension EventStoreError: RPCErrorConvertible {
    /// Version conflicts are ABORTED with the stream's current version (callers retry them after
    /// reloading; the command service does so itself before giving up); an unreachable database
    /// is UNAVAILABLE, retryable.
    public var rpcError: RPCError {
        switch code {
        case .wrongExpectedVersion:
            var state = Tote_V1_CurrentState()
            state.resourceType = "stream"
            state.resourceID = stream ?? ""
            state.state = actualVersion == nil ? "no stream" : "version \(actualVersion!)"
            state.version = actualVersion ?? 0
            var detail = Tote_V1_ErrorDetail()
            detail.currentState = state
            return RPCError(.aborted, message, details: [detail])
        case .invalidAppend:
            return RPCError(.invalidArgument, message)
        case .unavailable:
            var retry = Tote_V1_RetryInfo()
            retry.retryDelay.micros = 200_000
            var detail = Tote_V1_ErrorDetail()
            detail.retryInfo = retry
            return RPCError(.unavailable, message, details: [detail])
        default:
            return RPCError(.internal, "internal error")
        }
    }
}

extension PostgresError: RPCErrorConvertible {
    /// A lost database is UNAVAILABLE (retryable); anything else is an internal fault whose
    /// details are logged, never sent.
    public var rpcError: RPCError {
        isConnectionError ? RPCError(.unavailable, "the database is unavailable; retry") : RPCError(.internal, "internal error")
    }
}
