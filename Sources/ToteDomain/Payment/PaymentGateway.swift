import ToteProto

/// A payment provider adapter: the only way Tote moves money. The payment service calls it, then
/// records the result on the payment's stream with a ``PaymentCommand`` (`recordAuthorization`,
/// `recordDecline`, `recordFailure`, `recordCapture`, `recordRefund`). The provider also reports
/// results later as signed webhooks (``WebhookSignature``), which may arrive before, after or
/// instead of the call's answer; the ``PaymentDecider`` reconciles both.
///
/// Every call carries an idempotency key: the adapter passes it to the provider so that a retry
/// after a timeout does not charge twice.
public protocol PaymentGateway: Sendable {
    /// The adapter's name, as in `PaymentMethod.provider` (e.g. `simulated`, `stripe`).
    var provider: String { get }
    /// Holds `amount` on the customer's method (or asks the customer to act first).
    func authorize(_ request: GatewayAuthorization) async throws(PaymentGatewayError) -> GatewayAuthorizationResult
    /// Takes (part of) an authorized amount.
    func capture(_ request: GatewayCapture) async throws(PaymentGatewayError) -> GatewayCaptureResult
    /// Returns (part of) a captured amount.
    func refund(_ request: GatewayRefund) async throws(PaymentGatewayError) -> GatewayRefundResult
}

/// Why a gateway call failed.
public enum PaymentGatewayError: Error, Sendable, Equatable {
    /// The provider refused: `code` is machine-readable (e.g. `card_declined`,
    /// `insufficient_funds`), `message` human-readable. Record with `recordDecline`.
    case declined(code: String, message: String)
    /// No answer in time: the outcome is unknown (a webhook may still report it). Record with
    /// `recordFailure(code: "timeout", …)` only if no webhook settles it first.
    case timeout
    /// The provider could not be reached or failed (5xx); nothing happened. Retry later.
    case unavailable(String)

    /// The failure code to record on the payment.
    public var code: String {
        switch self {
        case .declined(let code, _): code
        case .timeout: "timeout"
        case .unavailable: "unavailable"
        }
    }
}

/// An authorization request.
public struct GatewayAuthorization: Sendable, Equatable {
    /// Tote's payment id (passed to the provider as metadata; it comes back in webhooks).
    public var paymentID: String
    public var orderID: String
    public var amount: Money
    /// The provider's token for the customer's method.
    public var methodToken: String
    /// Where the provider sends the customer back after a redirect.
    public var returnURL: String
    /// The provider-side idempotency key (e.g. `authorize-<payment id>`).
    public var idempotencyKey: String

    public init(paymentID: String, orderID: String, amount: Money, methodToken: String, returnURL: String = "", idempotencyKey: String) {
        self.paymentID = paymentID
        self.orderID = orderID
        self.amount = amount
        self.methodToken = methodToken
        self.returnURL = returnURL
        self.idempotencyKey = idempotencyKey
    }
}

/// The answer to an authorization.
public enum GatewayAuthorizationResult: Sendable, Equatable {
    /// Funds are held: record with `recordAuthorization`.
    case authorized(providerReference: String, amount: Money)
    /// The customer must act first: record with `recordActionRequired`.
    case requiresAction(providerReference: String, nextAction: Tote_V1_PaymentNextAction)
}

/// A capture request.
public struct GatewayCapture: Sendable, Equatable {
    public var paymentID: String
    /// The provider's id of the authorization.
    public var providerReference: String
    public var amount: Money
    public var idempotencyKey: String

    public init(paymentID: String, providerReference: String, amount: Money, idempotencyKey: String) {
        self.paymentID = paymentID
        self.providerReference = providerReference
        self.amount = amount
        self.idempotencyKey = idempotencyKey
    }
}

/// The answer to a capture: record with `recordCapture(captureID:amount:)`.
public struct GatewayCaptureResult: Sendable, Equatable {
    /// The provider's id of the capture.
    public var captureID: String
    public var amount: Money

    public init(captureID: String, amount: Money) {
        self.captureID = captureID
        self.amount = amount
    }
}

/// A refund request.
public struct GatewayRefund: Sendable, Equatable {
    public var paymentID: String
    public var providerReference: String
    /// Tote's refund id (also the idempotency key's basis).
    public var refundID: String
    public var amount: Money
    public var idempotencyKey: String

    public init(paymentID: String, providerReference: String, refundID: String, amount: Money, idempotencyKey: String) {
        self.paymentID = paymentID
        self.providerReference = providerReference
        self.refundID = refundID
        self.amount = amount
        self.idempotencyKey = idempotencyKey
    }
}

/// The answer to a refund: record with `recordRefund(refundID:amount:reason:)`.
public struct GatewayRefundResult: Sendable, Equatable {
    /// The provider's id of the refund.
    public var providerRefundID: String
    public var amount: Money

    public init(providerRefundID: String, amount: Money) {
        self.providerRefundID = providerRefundID
        self.amount = amount
    }
}
