import ToteProto

/// Per-call settings a client passes with a call; every field is optional.
public struct CallOptions: Sendable {
    /// The call fails with DEADLINE_EXCEEDED if it has not finished within this time. Enforced by
    /// both sides: the client stops waiting and the server cancels the handler.
    public var timeout: Duration?
    /// Overrides the connection's API key for this call.
    public var apiKey: String?
    /// Makes a command safe to retry: the server returns the first result for a repeated key.
    public var idempotencyKey: String
    /// Copied into every server log line and event the call causes; generated when empty.
    public var correlationID: String
    /// For queries: wait until the read model has passed this position (read-your-writes).
    public var consistencyToken: Tote_V1_ConsistencyToken?
    public var metadata: [String: String]
    /// With ``ToteClient``: wait (within the timeout) for a connection instead of failing fast
    /// with UNAVAILABLE while the server is unreachable.
    public var waitForReady: Bool

    public init(
        timeout: Duration? = nil,
        apiKey: String? = nil,
        idempotencyKey: String = "",
        correlationID: String = "",
        consistencyToken: Tote_V1_ConsistencyToken? = nil,
        metadata: [String: String] = [:],
        waitForReady: Bool = false
    ) {
        self.timeout = timeout
        self.apiKey = apiKey
        self.idempotencyKey = idempotencyKey
        self.correlationID = correlationID
        self.consistencyToken = consistencyToken
        self.metadata = metadata
        self.waitForReady = waitForReady
    }

    /// Timeout in microseconds as sent on the wire; 0 when none.
    var timeoutMicros: UInt64 {
        guard let timeout else { return 0 }
        let (seconds, attoseconds) = timeout.components
        let micros = seconds * 1_000_000 + attoseconds / 1_000_000_000_000
        return UInt64(max(1, micros))
    }

    func headers(method: String, defaultAPIKey: String) -> Tote_V1_CallHeaders {
        var headers = Tote_V1_CallHeaders()
        headers.method = method
        headers.timeoutMicros = timeoutMicros
        headers.authToken = apiKey ?? defaultAPIKey
        headers.idempotencyKey = idempotencyKey
        headers.correlationID = correlationID
        if let consistencyToken { headers.consistencyToken = consistencyToken }
        headers.metadata = metadata
        return headers
    }
}
