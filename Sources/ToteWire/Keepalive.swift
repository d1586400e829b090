/// Keepalive for one side of a connection, as a pure state machine over a caller-supplied clock.
///
/// The connection handler calls ``tick(now:)`` every `interval`. If nothing arrived since the last
/// tick, it sends a PING; if a PING stays unanswered for `timeout`, the connection is dead.
public struct KeepaliveStateMachine: Sendable {
    /// What the handler must do on a keepalive tick.
    public enum Action: Sendable, Equatable {
        case none
        /// Send a PING with this payload.
        case sendPing(UInt64)
        /// No reply to the last PING within the timeout: close the connection.
        case timedOut
    }

    /// Nanoseconds without a PING reply after which the connection is declared dead.
    public let timeoutNanoseconds: Int64
    private var sawActivitySinceTick = false
    private var sawActivitySincePing = false
    private var pingSentAt: Int64?
    private var pingCounter: UInt64 = 0

    public init(timeoutNanoseconds: Int64) {
        self.timeoutNanoseconds = timeoutNanoseconds
    }

    /// Bytes arrived from the peer (any frame proves it is alive).
    public mutating func receivedData() {
        sawActivitySinceTick = true
        sawActivitySincePing = true
    }

    /// The peer acknowledged a PING.
    public mutating func receivedPingAck() {
        pingSentAt = nil
        sawActivitySinceTick = true
        sawActivitySincePing = true
    }

    /// Called `timeout` after a PING was sent: whether the peer has stayed silent since, so the
    /// connection is dead. (Any bytes from the peer count as proof of life, not only the ACK.)
    public mutating func pingTimedOut(now: Int64) -> Bool {
        guard let sentAt = pingSentAt else { return false }
        if sawActivitySincePing {
            pingSentAt = nil
            return false
        }
        return now - sentAt >= timeoutNanoseconds
    }

    /// Called periodically; says whether to ping or give up.
    public mutating func tick(now: Int64) -> Action {
        defer { sawActivitySinceTick = false }
        if let sentAt = pingSentAt {
            if sawActivitySinceTick { pingSentAt = nil; return .none }
            return now - sentAt >= timeoutNanoseconds ? .timedOut : .none
        }
        guard !sawActivitySinceTick else { return .none }
        pingCounter &+= 1
        pingSentAt = now
        sawActivitySincePing = false
        return .sendPing(pingCounter)
    }
}
