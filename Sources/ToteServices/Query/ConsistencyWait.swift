import EventStore
import ToteAPI

/// Read-your-writes for queries, as a pure decision (no clock, no I/O): given how far the read
/// models have applied the log, the caller's consistency token and the time left, answer now,
/// poll again after a pause, or give up with UNAVAILABLE.
public struct ConsistencyWait: Sendable, Equatable {
    /// What to do next.
    public enum Action: Sendable, Equatable {
        /// The read models have passed the token (or there is none): run the query.
        case proceed
        /// Not yet: look at the position again after this pause.
        case poll(after: Duration)
        /// Out of time: fail UNAVAILABLE naming both positions.
        case giveUp(applied: LogPosition, token: LogPosition)
    }

    /// The position the caller waits for.
    public let token: LogPosition?
    /// The longest pause between two looks at the position.
    public let maxPollInterval: Duration
    private var nextInterval: Duration

    public init(token: LogPosition?, firstPollInterval: Duration = .microseconds(500), maxPollInterval: Duration = .milliseconds(10)) {
        self.token = token
        self.maxPollInterval = maxPollInterval
        self.nextInterval = firstPollInterval
    }

    /// The next action, with the read models at `applied` and `remaining` time before the wait
    /// must end. Pauses double from the first interval up to ``maxPollInterval`` and never
    /// overshoot the time left.
    public mutating func next(applied: LogPosition, remaining: Duration) -> Action {
        guard let token, applied < token else { return .proceed }
        guard remaining > .zero else { return .giveUp(applied: applied, token: token) }
        let pause = min(nextInterval, remaining)
        nextInterval = min(nextInterval * 2, maxPollInterval)
        return .poll(after: pause)
    }

    /// The wire position of a consistency token.
    public static func position(_ token: Tote_V1_ConsistencyToken) -> LogPosition {
        LogPosition(transactionID: token.transactionID, globalPosition: token.globalPosition)
    }

    /// UNAVAILABLE for a read model still at `applied` when the caller asked for `token`: the
    /// message and an `ErrorInfo` (reason `READ_MODEL_BEHIND`) name both positions and the gap
    /// in global positions; `RetryInfo` says when to try again.
    public static func behindError(applied: LogPosition, token: LogPosition, retryDelay: Duration) -> RPCError {
        let gap = max(0, token.globalPosition &- applied.globalPosition)
        var info = Tote_V1_ErrorInfo()
        info.reason = "READ_MODEL_BEHIND"
        info.domain = "tote.v1.Query"
        info.metadata = [
            "applied_position": applied.description,
            "token_position": token.description,
            "positions_behind": String(gap),
        ]
        var retry = Tote_V1_RetryInfo()
        let (seconds, attoseconds) = retryDelay.components
        retry.retryDelay.micros = seconds * 1_000_000 + attoseconds / 1_000_000_000_000
        var infoDetail = Tote_V1_ErrorDetail()
        infoDetail.errorInfo = info
        var retryDetail = Tote_V1_ErrorDetail()
        retryDetail.retryInfo = retry
        return RPCError(
            .unavailable,
            "the read model is behind: it has applied the log up to \(applied), the consistency token asks for \(token) (\(gap) positions behind); retry later",
            details: [infoDetail, retryDetail])
    }
}
