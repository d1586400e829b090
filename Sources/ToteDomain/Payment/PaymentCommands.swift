import ToteProto

/// What can be asked of a payment (stream `payment-<id>`). The `record…` commands carry the result
/// of a call to the ``PaymentGateway``, made by the service before it sends them;
/// ``applyProviderEvent(_:)`` carries a provider event (webhook) whose signature the service has
/// verified with ``WebhookSignature/verify(payload:header:secret:nowSeconds:tolerance:)``.
public enum PaymentCommand: Sendable, Equatable {
    /// Starts a payment of `amount` (the order total) for an order. → PENDING.
    case initiate(paymentID: String, orderID: String, amount: Money, method: Tote_V1_PaymentMethod)
    /// The gateway needs the customer to act (3-D Secure, redirect). PENDING → REQUIRES_ACTION.
    case recordActionRequired(providerReference: String, nextAction: Tote_V1_PaymentNextAction)
    /// The gateway authorized `amount`. PENDING, REQUIRES_ACTION → AUTHORIZED.
    case recordAuthorization(providerReference: String, amount: Money)
    /// The gateway declined (`code` e.g. `card_declined`). PENDING, REQUIRES_ACTION → FAILED.
    case recordDecline(code: String, message: String)
    /// The call to the gateway failed (timeout, unavailable). PENDING, REQUIRES_ACTION → FAILED.
    case recordFailure(code: String, message: String)
    /// The gateway captured `amount` (capture id = the gateway's id, the deduplication key).
    /// AUTHORIZED, CAPTURED → CAPTURED; never more than authorized.
    case recordCapture(captureID: String, amount: Money)
    /// The gateway refunded `amount` (refund id = Tote's, the deduplication key).
    /// CAPTURED, PARTIALLY_REFUNDED → PARTIALLY_REFUNDED | REFUNDED; never more than captured.
    case recordRefund(refundID: String, amount: Money, reason: String)
    /// The authorization was cancelled at the gateway. PENDING, REQUIRES_ACTION, AUTHORIZED → VOIDED.
    case void(reason: String)
    /// The payment was not completed in time. PENDING, REQUIRES_ACTION, AUTHORIZED → EXPIRED.
    case expire(reason: String)
    /// A verified provider event. Use ``PaymentDecider/decideWebhook(_:state:context:)`` to get
    /// its ``Tote_V1_WebhookOutcome`` too.
    case applyProviderEvent(ProviderEvent)
}

/// What a provider event (webhook) reports, parsed from the provider's payload by its adapter.
public enum ProviderEventKind: Sendable, Equatable {
    /// The customer must act.
    case requiresAction
    /// Funds are held; `amount` = the amount authorized (nil = the payment's amount).
    case authorized
    /// Funds were taken; `amount` = the amount captured so far (cumulative; nil = the amount
    /// authorized).
    case captured
    /// The payment failed or was declined (`failureCode`, `failureMessage`).
    case failed
    /// Money was returned; `amount` = the amount refunded so far (cumulative, required).
    case refunded
    /// A chargeback was opened (`disputeID`; `amount` = the amount disputed, nil = all captured).
    case disputed
    /// A chargeback closed in the merchant's favour (`disputeID`).
    case disputeWon
    /// A chargeback closed in the customer's favour (`disputeID`; `amount` = the amount lost, nil =
    /// the disputed amount).
    case disputeLost
    /// The authorization was cancelled.
    case voided
    /// The payment or its authorization lapsed.
    case expired
    /// A kind Tote does not use: acknowledged (IGNORED), nothing recorded.
    case other(String)

    /// The kind as recorded in `ProviderEventRecorded`.
    public var proto: Tote_V1_ProviderEventKind {
        switch self {
        case .requiresAction: .requiresAction
        case .authorized: .authorized
        case .captured: .captured
        case .failed: .failed
        case .refunded: .refunded
        case .disputed: .disputed
        case .disputeWon: .disputeWon
        case .disputeLost: .disputeLost
        case .voided: .voided
        case .expired: .expired
        case .other: .unspecified
        }
    }
}

/// One verified provider event (webhook), as the provider's adapter parsed it.
public struct ProviderEvent: Sendable, Equatable {
    /// The provider's unique event id: the deduplication key.
    public var providerEventID: String
    public var kind: ProviderEventKind
    /// The amount it reports (see ``ProviderEventKind``); nil when none.
    public var amount: Money?
    /// When the provider says it happened (microseconds since the epoch).
    public var occurredAtMicros: Int64
    /// The provider's id for the payment.
    public var providerReference: String
    /// For `.failed`.
    public var failureCode: String
    public var failureMessage: String
    /// For disputes.
    public var disputeID: String

    public init(providerEventID: String, kind: ProviderEventKind, amount: Money? = nil, occurredAtMicros: Int64, providerReference: String = "", failureCode: String = "", failureMessage: String = "", disputeID: String = "") {
        self.providerEventID = providerEventID
        self.kind = kind
        self.amount = amount
        self.occurredAtMicros = occurredAtMicros
        self.providerReference = providerReference
        self.failureCode = failureCode
        self.failureMessage = failureMessage
        self.disputeID = disputeID
    }
}
