import ToteProto

/// The failure of one call: a canonical status code (gRPC numbering), a message that names the
/// problem, and typed details. This is what a STATUS frame carries when the code is not OK.
///
/// Everything that can fail a call, anywhere in Tote, is turned into an `RPCError` in one place
/// (the server's call runner); handlers throw it directly or throw errors that convert to it.
public struct RPCError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A canonical status code. Extensible: an unknown number received from a peer is preserved.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }

        public static let ok = Code(rawValue: 0)
        public static let cancelled = Code(rawValue: 1)
        public static let unknown = Code(rawValue: 2)
        public static let invalidArgument = Code(rawValue: 3)
        public static let deadlineExceeded = Code(rawValue: 4)
        public static let notFound = Code(rawValue: 5)
        public static let alreadyExists = Code(rawValue: 6)
        public static let permissionDenied = Code(rawValue: 7)
        public static let resourceExhausted = Code(rawValue: 8)
        public static let failedPrecondition = Code(rawValue: 9)
        public static let aborted = Code(rawValue: 10)
        public static let outOfRange = Code(rawValue: 11)
        public static let unimplemented = Code(rawValue: 12)
        public static let `internal` = Code(rawValue: 13)
        public static let unavailable = Code(rawValue: 14)
        public static let dataLoss = Code(rawValue: 15)
        public static let unauthenticated = Code(rawValue: 16)

        private static let names = [
            "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
            "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
            "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
            "UNAUTHENTICATED",
        ]

        public var description: String {
            rawValue >= 0 && Int(rawValue) < Self.names.count ? Self.names[Int(rawValue)] : "CODE_\(rawValue)"
        }

        /// Whether a client may retry the same call unchanged (the failure was transient).
        public var isRetryable: Bool { self == .unavailable || self == .aborted || self == .resourceExhausted }
    }

    public var code: Code
    /// Human-readable; names the problem; never carries secrets.
    public var message: String
    /// Typed, machine-readable details (field violations, current state, retry delay, …).
    public var details: [Tote_V1_ErrorDetail]
    /// Trailing metadata to send with the status.
    public var metadata: [String: String]

    public init(_ code: Code, _ message: String, details: [Tote_V1_ErrorDetail] = [], metadata: [String: String] = [:]) {
        self.code = code
        self.message = message
        self.details = details
        self.metadata = metadata
    }

    /// Builds the error a STATUS frame describes; `nil` for OK.
    public init?(status: Tote_V1_CallStatus) {
        let code = Code(rawValue: Int32(status.code.rawValue))
        guard code != .ok else { return nil }
        self.init(code, status.message, details: status.details, metadata: status.metadata)
    }

    /// The STATUS frame payload for this error.
    public var callStatus: Tote_V1_CallStatus {
        var status = Tote_V1_CallStatus()
        status.code = Tote_V1_StatusCode(rawValue: Int(code.rawValue)) ?? .unknown
        status.message = message
        status.details = details
        status.metadata = metadata
        return status
    }

    public var description: String { "\(code): \(message)" }
}

extension RPCError {
    /// INVALID_ARGUMENT with one field violation per problem.
    public static func invalidArgument(_ message: String, fieldViolations: [(field: String, description: String)]) -> RPCError {
        var badRequest = Tote_V1_BadRequest()
        badRequest.fieldViolations = fieldViolations.map { violation in
            var v = Tote_V1_BadRequest.FieldViolation()
            v.field = violation.field
            v.description_p = violation.description
            return v
        }
        var detail = Tote_V1_ErrorDetail()
        detail.badRequest = badRequest
        return RPCError(.invalidArgument, message, details: [detail])
    }

    /// RESOURCE_EXHAUSTED naming the limit that was hit.
    public static func quotaExceeded(_ message: String, subject: String) -> RPCError {
        var quota = Tote_V1_QuotaFailure()
        var violation = Tote_V1_QuotaFailure.Violation()
        violation.subject = subject
        violation.description_p = message
        quota.violations = [violation]
        var detail = Tote_V1_ErrorDetail()
        detail.quotaFailure = quota
        return RPCError(.resourceExhausted, message, details: [detail])
    }

    /// The first detail of the given kind, if any.
    public var badRequest: Tote_V1_BadRequest? {
        for detail in details { if case .badRequest(let value) = detail.kind { return value } }
        return nil
    }

    public var quotaFailure: Tote_V1_QuotaFailure? {
        for detail in details { if case .quotaFailure(let value) = detail.kind { return value } }
        return nil
    }

    public var errorInfo: Tote_V1_ErrorInfo? {
        for detail in details { if case .errorInfo(let value) = detail.kind { return value } }
        return nil
    }

    public var currentState: Tote_V1_CurrentState? {
        for detail in details { if case .currentState(let value) = detail.kind { return value } }
        return nil
    }

    public var preconditionFailure: Tote_V1_PreconditionFailure? {
        for detail in details { if case .precondition(let value) = detail.kind { return value } }
        return nil
    }
}
