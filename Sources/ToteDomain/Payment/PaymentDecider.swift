import ToteProto

/// The payment aggregate (stream `payment-<id>`):
///
///     PENDING → REQUIRES_ACTION → AUTHORIZED → CAPTURED → PARTIALLY_REFUNDED → REFUNDED
///     PENDING, REQUIRES_ACTION → FAILED;  … AUTHORIZED → VOIDED | EXPIRED
///     CAPTURED, PARTIALLY_REFUNDED, REFUNDED → DISPUTED → (won) previous | (lost) (PARTIALLY_)REFUNDED
///
/// Gateway results arrive as `record…` commands; provider events (webhooks) through
/// ``decideWebhook(_:state:context:)``, which deduplicates them by provider event id and never
/// moves the payment backwards:
/// - a provider event id seen before → no events, ``Tote_V1_WebhookOutcome/duplicate``;
/// - an event that moves the payment forward → `ProviderEventRecorded(APPLIED)` followed by the
///   state change (and any step it implies: a capture reported while PENDING implies the
///   authorization; a refund or dispute reported before the capture implies the capture of the
///   amount authorized) → ``Tote_V1_WebhookOutcome/applied``;
/// - an event that confirms the current state (the gateway's synchronous answer got there first)
///   → `ProviderEventRecorded(APPLIED)` only → ``Tote_V1_WebhookOutcome/applied``;
/// - a late or out-of-order event that would move it backwards (e.g. "authorized" after
///   "captured", anything after a final FAILED/VOIDED/EXPIRED) → `ProviderEventRecorded(STALE)`
///   only: the state is unchanged except that the id is remembered →
///   ``Tote_V1_WebhookOutcome/stale``;
/// - a kind Tote does not use, or a payment that does not exist → no events,
///   ``Tote_V1_WebhookOutcome/ignored``.
public enum PaymentDecider: Decider {
    public typealias Command = PaymentCommand
    public typealias Event = Tote_V1_PaymentEvent

    /// What the decider knows about one payment.
    public struct State: Sendable, Equatable {
        /// `.unspecified` until initiated.
        public var status: Tote_V1_PaymentState = .unspecified
        public var paymentID = ""
        public var orderID = ""
        /// The amount asked for; its currency is every amount's currency.
        public var amount = Money.zero("")
        public var method = Tote_V1_PaymentMethod()
        public var providerReference = ""
        public var nextAction = Tote_V1_PaymentNextAction()
        public var authorizedMinor: Int64 = 0
        public var capturedMinor: Int64 = 0
        public var refundedMinor: Int64 = 0
        public var failureCode = ""
        public var failureMessage = ""
        /// Capture and refund ids applied (idempotency of `recordCapture` / `recordRefund`).
        public var captureIDs: Set<String> = []
        public var refundIDs: Set<String> = []
        /// Every provider event id recorded (deduplication).
        public var providerEventIDs: Set<String> = []
        public var openDisputeID = ""
        public var disputeAmountMinor: Int64 = 0
        public var statusBeforeDispute: Tote_V1_PaymentState = .unspecified
        public var resolvedDisputeIDs: Set<String> = []
        public var createdAtMicros: Int64 = 0
        public var updatedAtMicros: Int64 = 0

        public init() {}

        public var currency: String { amount.currency }
        /// True in FAILED, VOIDED, EXPIRED and REFUNDED.
        public var isFinal: Bool { [.failed, .voided, .expired, .refunded].contains(status) }
        /// True while no money has been taken and the payment can still succeed.
        public var isBeforeCapture: Bool { [.pending, .requiresAction, .authorized].contains(status) }

        /// The payment as orders and operators see it.
        public var summary: Tote_V1_PaymentSummary {
            var s = Tote_V1_PaymentSummary()
            s.paymentID = paymentID
            s.orderID = orderID
            s.state = status
            s.method = method
            s.amount = amount.proto
            s.authorized = Money(authorizedMinor, currency).proto
            s.captured = Money(capturedMinor, currency).proto
            s.refunded = Money(refundedMinor, currency).proto
            s.providerReference = providerReference
            s.failureCode = failureCode
            s.failureMessage = failureMessage
            s.createdAt = PaymentDecider.timestamp(createdAtMicros)
            s.updatedAt = PaymentDecider.timestamp(updatedAtMicros)
            return s
        }
    }

    public static var initialState: State { State() }

    public static func decide(_ command: PaymentCommand, state: State, context: CommandContext) throws(DomainError) -> [Tote_V1_PaymentEvent] {
        let now = context.nowMicros
        if case let .initiate(paymentID, orderID, amount, method) = command {
            var v = Validator()
            v.require(!paymentID.isEmpty, "payment_id", "is required")
            v.require(!orderID.isEmpty, "order_id", "is required")
            v.require(isCurrencyCode(amount.currency), "amount.currency", "must be an ISO 4217 code")
            v.require(amount.minorUnits > 0, "amount.minor_units", "must be positive")
            v.require(!method.provider.isEmpty, "method.provider", "is required")
            v.require(method.kind != .unspecified, "method.kind", "is required")
            try v.check()
            if state.status != .unspecified {
                if state.paymentID == paymentID && state.orderID == orderID && state.amount == amount { return [] }
                throw DomainError(.alreadyExists, "payment \(state.paymentID) exists already")
            }
            var e = Tote_V1_PaymentInitiated()
            e.paymentID = paymentID
            e.orderID = orderID
            e.amount = amount.proto
            e.method = method
            e.at = timestamp(now)
            return [event(.paymentInitiated(e))]
        }
        if case .applyProviderEvent(let providerEvent) = command {
            return try decideWebhook(providerEvent, state: state, context: context).events
        }
        guard state.status != .unspecified else { throw DomainError(.notFound, "the payment does not exist") }
        switch command {
        case .initiate, .applyProviderEvent:
            return []  // handled above

        case let .recordActionRequired(providerReference, nextAction):
            try require(!providerReference.isEmpty, "provider_reference", "is required")
            if state.status == .requiresAction && state.providerReference == providerReference { return [] }
            guard state.status == .pending else { throw refusal("require action on", state.status) }
            return [actionRequired(providerReference, nextAction, now)]

        case let .recordAuthorization(providerReference, amount):
            var v = Validator()
            v.require(!providerReference.isEmpty, "provider_reference", "is required")
            v.require(amount.currency == state.currency, "amount.currency", "must be the payment's currency \(state.currency)")
            v.require(amount.minorUnits > 0 && amount.minorUnits <= state.amount.minorUnits, "amount.minor_units", "must be 1...\(state.amount.minorUnits)")
            try v.check()
            if [.authorized, .captured, .partiallyRefunded, .refunded, .disputed].contains(state.status), state.providerReference == providerReference { return [] }
            guard state.status == .pending || state.status == .requiresAction else { throw refusal("authorize", state.status) }
            return [authorized(providerReference, amount.minorUnits, state.currency, now)]

        case let .recordDecline(code, message):
            try require(!code.isEmpty, "failure_code", "is required")
            if state.status == .failed && state.failureCode == code { return [] }
            guard state.status == .pending || state.status == .requiresAction else { throw refusal("decline", state.status) }
            return [declined(code, message, now)]

        case let .recordFailure(code, message):
            try require(!code.isEmpty, "failure_code", "is required")
            if state.status == .failed { return [] }
            guard state.status == .pending || state.status == .requiresAction else { throw refusal("fail", state.status) }
            var e = Tote_V1_PaymentFailed()
            e.failureCode = code
            e.failureMessage = message
            e.at = timestamp(now)
            return [event(.paymentFailed(e))]

        case let .recordCapture(captureID, amount):
            var v = Validator()
            v.require(!captureID.isEmpty, "capture_id", "is required")
            v.require(amount.currency == state.currency, "amount.currency", "must be the payment's currency \(state.currency)")
            v.require(amount.minorUnits > 0, "amount.minor_units", "must be positive")
            try v.check()
            if state.captureIDs.contains(captureID) { return [] }
            guard state.status == .authorized || state.status == .captured else { throw refusal("capture", state.status) }
            let open = state.authorizedMinor - state.capturedMinor
            guard amount.minorUnits <= open else {
                throw DomainError(.failedPrecondition, "a capture of \(amount.minorUnits) exceeds the \(open) authorized and not captured", currentState: stateName(state.status))
            }
            return [captured(captureID, amount.minorUnits, state.capturedMinor + amount.minorUnits, state.currency, now)]

        case let .recordRefund(refundID, amount, reason):
            var v = Validator()
            v.require(!refundID.isEmpty, "refund_id", "is required")
            v.require(amount.currency == state.currency, "amount.currency", "must be the payment's currency \(state.currency)")
            v.require(amount.minorUnits > 0, "amount.minor_units", "must be positive")
            try v.check()
            if state.refundIDs.contains(refundID) { return [] }
            guard state.status == .captured || state.status == .partiallyRefunded else { throw refusal("refund", state.status) }
            let open = state.capturedMinor - state.refundedMinor
            guard amount.minorUnits <= open else {
                throw DomainError(.failedPrecondition, "a refund of \(amount.minorUnits) exceeds the \(open) captured and not refunded", currentState: stateName(state.status))
            }
            return [refunded(refundID, amount.minorUnits, state.refundedMinor + amount.minorUnits, reason, state.currency, now)]

        case .void(let reason):
            if state.status == .voided { return [] }
            guard state.isBeforeCapture else { throw refusal("void", state.status) }
            var e = Tote_V1_PaymentVoided()
            e.reason = reason
            e.at = timestamp(now)
            return [event(.paymentVoided(e))]

        case .expire(let reason):
            if state.status == .expired { return [] }
            guard state.isBeforeCapture else { throw refusal("expire", state.status) }
            return [expired(reason, now)]
        }
    }

    // MARK: Webhooks

    /// The events a verified provider event produces, and what it did (see the type's
    /// documentation for the rules). The signature must have been checked before.
    public static func decideWebhook(_ pe: ProviderEvent, state: State, context: CommandContext) throws(DomainError) -> (events: [Tote_V1_PaymentEvent], outcome: Tote_V1_WebhookOutcome) {
        var v = Validator()
        v.require(!pe.providerEventID.isEmpty, "provider_event_id", "is required")
        if let amount = pe.amount {
            v.require(isCurrencyCode(amount.currency), "amount.currency", "must be an ISO 4217 code")
            v.require(amount.minorUnits >= 0, "amount.minor_units", "must not be negative")
        }
        try v.check()
        if case .other = pe.kind { return ([], .ignored) }
        guard state.status != .unspecified else { return ([], .ignored) }
        if state.providerEventIDs.contains(pe.providerEventID) { return ([], .duplicate) }
        if let amount = pe.amount, amount.currency != state.currency {
            throw .invalid("amount.currency", "must be the payment's currency \(state.currency)")
        }
        let now = context.nowMicros
        let changes = webhookChanges(pe, state: state, now: now)
        var record = Tote_V1_ProviderEventRecorded()
        record.providerEventID = pe.providerEventID
        record.kind = pe.kind.proto
        if let amount = pe.amount { record.amount = amount.proto }
        record.providerReference = pe.providerReference
        record.failureCode = pe.failureCode
        record.failureMessage = pe.failureMessage
        record.disputeID = pe.disputeID
        record.occurredAt = timestamp(pe.occurredAtMicros)
        record.at = timestamp(now)
        record.outcome = changes == nil ? .stale : .applied
        return ([event(.providerEventRecorded(record))] + (changes ?? []), record.outcome)
    }

    /// The state changes a provider event causes: nil when it is stale, [] when it confirms the
    /// current state.
    private static func webhookChanges(_ pe: ProviderEvent, state s: State, now: Int64) -> [Tote_V1_PaymentEvent]? {
        let currency = s.currency
        let reference = pe.providerReference.isEmpty ? s.providerReference : pe.providerReference
        let preAuthorization = s.status == .pending || s.status == .requiresAction
        /// The events that bring a payment not yet captured to CAPTURED with at least `minimum`.
        func impliedCapture(atLeast minimum: Int64) -> [Tote_V1_PaymentEvent] {
            var events: [Tote_V1_PaymentEvent] = []
            var authorizedNow = s.authorizedMinor
            if preAuthorization {
                authorizedNow = max(s.amount.minorUnits, minimum)
                events.append(authorized(reference, authorizedNow, currency, now))
            }
            let total = max(authorizedNow, minimum)
            events.append(captured("provider:\(pe.providerEventID)", total - s.capturedMinor, total, currency, now))
            return events
        }
        switch pe.kind {
        case .other:
            return nil
        case .requiresAction:
            if s.status == .requiresAction { return [] }
            return s.status == .pending ? [actionRequired(reference, Tote_V1_PaymentNextAction(), now)] : nil
        case .authorized:
            if s.status == .authorized { return [] }
            guard preAuthorization else { return nil }
            let amount = pe.amount.map { $0.minorUnits > 0 ? $0.minorUnits : s.amount.minorUnits } ?? s.amount.minorUnits
            return [authorized(reference, amount, currency, now)]
        case .captured:
            let total = pe.amount.map(\.minorUnits).flatMap { $0 > 0 ? $0 : nil } ?? max(s.authorizedMinor, s.amount.minorUnits)
            switch s.status {
            case .pending, .requiresAction:
                return impliedCapture(atLeast: total)
            case .authorized, .captured:
                if total > s.capturedMinor {
                    return [captured("provider:\(pe.providerEventID)", total - s.capturedMinor, total, currency, now)]
                }
                return s.status == .captured && total == s.capturedMinor ? [] : nil
            default:
                return nil
            }
        case .failed:
            if s.status == .failed { return [] }
            guard preAuthorization else { return nil }
            return [declined(pe.failureCode.isEmpty ? "failed" : pe.failureCode, pe.failureMessage, now)]
        case .refunded:
            guard let total = pe.amount?.minorUnits, total > 0 else { return nil }
            var events: [Tote_V1_PaymentEvent] = []
            var captured = s.capturedMinor
            switch s.status {
            case .pending, .requiresAction, .authorized:
                events = impliedCapture(atLeast: total)
                captured = max(max(s.authorizedMinor, preAuthorization ? s.amount.minorUnits : 0), total)
            case .captured, .partiallyRefunded, .refunded:
                break
            default:
                return nil
            }
            if total == s.refundedMinor && events.isEmpty { return [] }
            guard total > s.refundedMinor else { return nil }
            let delta = min(total, captured) - s.refundedMinor
            guard delta > 0 else { return events.isEmpty ? [] : events }
            events.append(refunded("provider:\(pe.providerEventID)", delta, s.refundedMinor + delta, "reported by the provider", currency, now))
            return events
        case .disputed:
            if s.status == .disputed { return s.openDisputeID == pe.disputeID ? [] : nil }
            if s.resolvedDisputeIDs.contains(pe.disputeID) { return nil }
            var events: [Tote_V1_PaymentEvent] = []
            var captured = s.capturedMinor
            var previous = s.status
            switch s.status {
            case .pending, .requiresAction, .authorized:
                events = impliedCapture(atLeast: pe.amount?.minorUnits ?? 0)
                captured = max(max(s.authorizedMinor, preAuthorization ? s.amount.minorUnits : 0), pe.amount?.minorUnits ?? 0)
                previous = .captured
            case .captured, .partiallyRefunded, .refunded:
                break
            default:
                return nil
            }
            var e = Tote_V1_PaymentDisputed()
            e.disputeID = pe.disputeID
            e.amount = Money(pe.amount.flatMap { $0.minorUnits > 0 ? $0.minorUnits : nil } ?? captured, currency).proto
            e.previousState = previous
            e.at = timestamp(now)
            return events + [event(.paymentDisputed(e))]
        case .disputeWon, .disputeLost:
            if s.resolvedDisputeIDs.contains(pe.disputeID) { return [] }
            guard s.status == .disputed, s.openDisputeID == pe.disputeID else { return nil }
            var e = Tote_V1_PaymentDisputeResolved()
            e.disputeID = pe.disputeID
            if pe.kind == .disputeWon {
                e.won = true
                e.amountLost = Money.zero(currency).proto
                e.resultingState = s.statusBeforeDispute
            } else {
                let asked = pe.amount.flatMap { $0.minorUnits > 0 ? $0.minorUnits : nil } ?? s.disputeAmountMinor
                let lost = min(asked, s.capturedMinor - s.refundedMinor)
                e.amountLost = Money(lost, currency).proto
                e.resultingState = s.refundedMinor + lost >= s.capturedMinor ? .refunded : .partiallyRefunded
            }
            e.at = timestamp(now)
            return [event(.paymentDisputeResolved(e))]
        case .voided:
            if s.status == .voided { return [] }
            guard s.isBeforeCapture else { return nil }
            var e = Tote_V1_PaymentVoided()
            e.reason = "voided at the provider"
            e.at = timestamp(now)
            return [event(.paymentVoided(e))]
        case .expired:
            if s.status == .expired { return [] }
            guard s.isBeforeCapture else { return nil }
            return [expired("expired at the provider", now)]
        }
    }

    // MARK: Evolve

    public static func evolve(_ state: State, _ event: Tote_V1_PaymentEvent) -> State {
        var s = state
        switch event.event {
        case nil:
            return s
        case .paymentInitiated(let e)?:
            s.status = .pending
            s.paymentID = e.paymentID
            s.orderID = e.orderID
            s.amount = Money(e.amount)
            s.method = e.method
            s.createdAtMicros = e.at.unixMicros
            s.updatedAtMicros = e.at.unixMicros
        case .paymentActionRequired(let e)?:
            s.status = .requiresAction
            s.providerReference = e.providerReference
            s.nextAction = e.nextAction
            s.updatedAtMicros = e.at.unixMicros
        case .paymentAuthorized(let e)?:
            s.status = .authorized
            s.providerReference = e.providerReference
            s.authorizedMinor = e.amount.minorUnits
            s.nextAction = Tote_V1_PaymentNextAction()
            s.updatedAtMicros = e.at.unixMicros
        case .paymentDeclined(let e)?:
            s.status = .failed
            s.failureCode = e.failureCode
            s.failureMessage = e.failureMessage
            s.updatedAtMicros = e.at.unixMicros
        case .paymentFailed(let e)?:
            s.status = .failed
            s.failureCode = e.failureCode
            s.failureMessage = e.failureMessage
            s.updatedAtMicros = e.at.unixMicros
        case .paymentCaptured(let e)?:
            s.status = .captured
            s.captureIDs.insert(e.captureID)
            s.capturedMinor = e.capturedTotal.minorUnits
            s.authorizedMinor = max(s.authorizedMinor, s.capturedMinor)
            s.updatedAtMicros = e.at.unixMicros
        case .paymentRefunded(let e)?:
            s.refundIDs.insert(e.refundID)
            s.refundedMinor = e.refundedTotal.minorUnits
            s.status = s.refundedMinor >= s.capturedMinor ? .refunded : .partiallyRefunded
            s.updatedAtMicros = e.at.unixMicros
        case .paymentVoided(let e)?:
            s.status = .voided
            s.updatedAtMicros = e.at.unixMicros
        case .paymentExpired(let e)?:
            s.status = .expired
            s.updatedAtMicros = e.at.unixMicros
        case .paymentDisputed(let e)?:
            s.statusBeforeDispute = e.previousState
            s.openDisputeID = e.disputeID
            s.disputeAmountMinor = e.amount.minorUnits
            s.status = .disputed
            s.updatedAtMicros = e.at.unixMicros
        case .paymentDisputeResolved(let e)?:
            s.resolvedDisputeIDs.insert(e.disputeID)
            s.openDisputeID = ""
            s.disputeAmountMinor = 0
            s.statusBeforeDispute = .unspecified
            s.refundedMinor += e.amountLost.minorUnits
            s.status = e.resultingState
            s.updatedAtMicros = e.at.unixMicros
        case .providerEventRecorded(let e)?:
            s.providerEventIDs.insert(e.providerEventID)
        }
        return s
    }

    // MARK: Helpers

    /// `PAYMENT_STATE_AUTHORIZED` etc.: the proto enum value's name, as errors report it.
    public static func stateName(_ state: Tote_V1_PaymentState) -> String {
        switch state {
        case .unspecified: "PAYMENT_STATE_UNSPECIFIED"
        case .pending: "PAYMENT_STATE_PENDING"
        case .requiresAction: "PAYMENT_STATE_REQUIRES_ACTION"
        case .authorized: "PAYMENT_STATE_AUTHORIZED"
        case .captured: "PAYMENT_STATE_CAPTURED"
        case .partiallyRefunded: "PAYMENT_STATE_PARTIALLY_REFUNDED"
        case .refunded: "PAYMENT_STATE_REFUNDED"
        case .failed: "PAYMENT_STATE_FAILED"
        case .voided: "PAYMENT_STATE_VOIDED"
        case .expired: "PAYMENT_STATE_EXPIRED"
        case .disputed: "PAYMENT_STATE_DISPUTED"
        case .UNRECOGNIZED(let n): "PAYMENT_STATE_\(n)"
        }
    }

    /// "cannot capture a payment that is failed".
    private static func refusal(_ verb: String, _ state: Tote_V1_PaymentState) -> DomainError {
        let words = stateName(state).dropFirst("PAYMENT_STATE_".count).lowercased().map { $0 == "_" ? " " : String($0) }.joined()
        return .wrongState("cannot \(verb) a payment that is \(words)", currentState: stateName(state))
    }

    private static func require(_ condition: Bool, _ field: String, _ description: String) throws(DomainError) {
        if !condition { throw .invalid(field, description) }
    }

    static func timestamp(_ micros: Int64) -> Tote_V1_Timestamp {
        var t = Tote_V1_Timestamp()
        t.unixMicros = micros
        return t
    }

    private static func event(_ e: Tote_V1_PaymentEvent.OneOf_Event) -> Tote_V1_PaymentEvent {
        var envelope = Tote_V1_PaymentEvent()
        envelope.event = e
        return envelope
    }

    private static func actionRequired(_ reference: String, _ nextAction: Tote_V1_PaymentNextAction, _ now: Int64) -> Tote_V1_PaymentEvent {
        var e = Tote_V1_PaymentActionRequired()
        e.providerReference = reference
        e.nextAction = nextAction
        e.at = timestamp(now)
        return event(.paymentActionRequired(e))
    }

    private static func authorized(_ reference: String, _ amount: Int64, _ currency: String, _ now: Int64) -> Tote_V1_PaymentEvent {
        var e = Tote_V1_PaymentAuthorized()
        e.providerReference = reference
        e.amount = Money(amount, currency).proto
        e.at = timestamp(now)
        return event(.paymentAuthorized(e))
    }

    private static func declined(_ code: String, _ message: String, _ now: Int64) -> Tote_V1_PaymentEvent {
        var e = Tote_V1_PaymentDeclined()
        e.failureCode = code
        e.failureMessage = message
        e.at = timestamp(now)
        return event(.paymentDeclined(e))
    }

    private static func captured(_ captureID: String, _ amount: Int64, _ total: Int64, _ currency: String, _ now: Int64) -> Tote_V1_PaymentEvent {
        var e = Tote_V1_PaymentCaptured()
        e.captureID = captureID
        e.amount = Money(amount, currency).proto
        e.capturedTotal = Money(total, currency).proto
        e.at = timestamp(now)
        return event(.paymentCaptured(e))
    }

    private static func refunded(_ refundID: String, _ amount: Int64, _ total: Int64, _ reason: String, _ currency: String, _ now: Int64) -> Tote_V1_PaymentEvent {
        var e = Tote_V1_PaymentRefunded()
        e.refundID = refundID
        e.amount = Money(amount, currency).proto
        e.refundedTotal = Money(total, currency).proto
        e.reason = reason
        e.at = timestamp(now)
        return event(.paymentRefunded(e))
    }

    private static func expired(_ reason: String, _ now: Int64) -> Tote_V1_PaymentEvent {
        var e = Tote_V1_PaymentExpired()
        e.reason = reason
        e.at = timestamp(now)
        return event(.paymentExpired(e))
    }
}

extension Tote_V1_PaymentEvent: DomainEvent {
    /// The case message's name, e.g. `PaymentCaptured`.
    public var typeName: String {
        switch event {
        case .paymentInitiated?: "PaymentInitiated"
        case .paymentActionRequired?: "PaymentActionRequired"
        case .paymentAuthorized?: "PaymentAuthorized"
        case .paymentDeclined?: "PaymentDeclined"
        case .paymentFailed?: "PaymentFailed"
        case .paymentCaptured?: "PaymentCaptured"
        case .paymentRefunded?: "PaymentRefunded"
        case .paymentVoided?: "PaymentVoided"
        case .paymentExpired?: "PaymentExpired"
        case .paymentDisputed?: "PaymentDisputed"
        case .paymentDisputeResolved?: "PaymentDisputeResolved"
        case .providerEventRecorded?: "ProviderEventRecorded"
        case nil: "PaymentEvent"
        }
    }
}
