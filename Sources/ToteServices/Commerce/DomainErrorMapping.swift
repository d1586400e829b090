import EventStore
import ToteAPI
import ToteCommands
import ToteDomain

// Domain refusals and command-runtime failures become wire statuses here, and only here.

extension DomainError: RPCErrorConvertible {
    /// - invalid argument → INVALID_ARGUMENT with every field violation (`BadRequest`);
    /// - not found → NOT_FOUND; already exists → ALREADY_EXISTS; permission denied → PERMISSION_DENIED;
    /// - wrong state → FAILED_PRECONDITION with the current state (`CurrentState`);
    /// - out of stock → FAILED_PRECONDITION with a `PreconditionFailure` of type `OUT_OF_STOCK`
    ///   naming the SKU and location, and `ErrorInfo` metadata `available` = the quantity left.
    public var rpcError: RPCError {
        switch code {
        case .invalidArgument:
            return .invalidArgument(message, fieldViolations: violations.map { ($0.field, $0.description) })
        case .notFound:
            return RPCError(.notFound, message)
        case .alreadyExists:
            return RPCError(.alreadyExists, message)
        case .permissionDenied:
            return RPCError(.permissionDenied, message)
        case .failedPrecondition:
            var details: [Tote_V1_ErrorDetail] = []
            if let currentState {
                var state = Tote_V1_CurrentState()
                state.resourceType = subject.map { _ in "stock item" } ?? ""
                state.resourceID = subject ?? ""
                state.state = currentState
                var detail = Tote_V1_ErrorDetail()
                detail.currentState = state
                details.append(detail)
            }
            if let available {
                var violation = Tote_V1_PreconditionFailure.Violation()
                violation.type = "OUT_OF_STOCK"
                violation.subject = subject ?? ""
                violation.description_p = message
                var failure = Tote_V1_PreconditionFailure()
                failure.violations = [violation]
                var detail = Tote_V1_ErrorDetail()
                detail.precondition = failure
                details.append(detail)
                var info = Tote_V1_ErrorInfo()
                info.reason = "OUT_OF_STOCK"
                info.domain = "tote.v1"
                info.metadata = ["available": String(available), "subject": subject ?? ""]
                var infoDetail = Tote_V1_ErrorDetail()
                infoDetail.errorInfo = info
                details.append(infoDetail)
            }
            return RPCError(.failedPrecondition, message, details: details)
        }
    }
}

extension CommandError: RPCErrorConvertible {
    /// Conflicts that outlasted every retry are ABORTED (retry later, with the same idempotency
    /// key); a client's stale expected version is ABORTED with the current version; an
    /// unreadable stream is INTERNAL; a malformed call INVALID_ARGUMENT.
    public var rpcError: RPCError {
        switch code {
        case .conflict:
            var retry = Tote_V1_RetryInfo()
            retry.retryDelay.micros = 50_000
            var detail = Tote_V1_ErrorDetail()
            detail.retryInfo = retry
            return RPCError(.aborted, "too many concurrent changes to \(stream ?? "the same data"); retry", details: [detail])
        case .corruptStream:
            return RPCError(.internal, "internal error")
        case .staleVersion:
            var state = Tote_V1_CurrentState()
            state.resourceType = "stream"
            state.resourceID = stream ?? ""
            state.version = currentVersion ?? 0
            state.state = "version \(currentVersion ?? 0)"
            var detail = Tote_V1_ErrorDetail()
            detail.currentState = state
            return RPCError(.aborted, message, details: [detail])
        case .badRequest:
            return RPCError(.invalidArgument, message)
        }
    }
}
