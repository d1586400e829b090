import Foundation
import ToteDomain
import ToteProto

/// A payment provider that lives in the process: for development (`tote dev`) and tests. It
/// answers ``PaymentGateway`` calls from rules — cards whose token ends in given digits are
/// declined, time out or require an action; a seeded random decline and timeout rate; a latency;
/// or outcomes scripted call by call — and reports what happened as SIGNED webhooks
/// (`ProviderWebhookRequest`, signed with ``WebhookSignature``) to a sink, after a delay,
/// optionally duplicated, shuffled out of order, or held until the test releases them.
///
/// A timeout is the hard case it exists for: the "provider" did authorize, the caller gets
/// ``PaymentGatewayError/timeout``, and the `authorized` webhook arrives later.
public actor SimulatedGateway: PaymentGateway {
    /// `simulated` unless configured otherwise.
    public nonisolated let provider: String

    /// How webhooks reach the sink.
    public enum WebhookDelivery: Sendable, Equatable {
        /// None are produced.
        case none
        /// Each one after `delay` (in its own task); with ``Configuration/reorderWebhooks`` each
        /// delay is drawn from 0...2×delay, so that they may overtake each other.
        case delayed(Duration)
        /// Held until ``deliverPendingWebhooks(reversed:)`` (deterministic tests).
        case manual
    }

    /// What the next call answers, when scripted with ``enqueue(_:)``.
    public enum ScriptedOutcome: Sendable, Equatable {
        case approve
        case requireAction
        case decline(code: String, message: String)
        case timeout
        case unavailable(String)
    }

    /// The rules.
    public struct Configuration: Sendable {
        public var provider = "simulated"
        /// Token suffix → decline code, e.g. `"0002": "card_declined"`, `"9995": "insufficient_funds"`.
        public var declineTokenSuffixes: [String: String] = ["0002": "card_declined", "9995": "insufficient_funds"]
        /// Tokens ending in these time out (after authorizing at the "provider").
        public var timeoutTokenSuffixes: Set<String> = ["0119"]
        /// Tokens ending in these need a 3-D Secure step (REQUIRES_ACTION, then an `authorized` webhook).
        public var requiresActionTokenSuffixes: Set<String> = ["3220"]
        /// Share of other authorizations declined (`card_declined`), in parts per million.
        public var declineRatePPM: UInt32 = 0
        /// Share of other authorizations that time out, in parts per million.
        public var timeoutRatePPM: UInt32 = 0
        /// Seed of the random generator behind the rates and the reordering.
        public var seed: UInt64 = 42
        /// How long each call takes.
        public var latency: Duration = .zero
        /// The secret webhooks are signed with (the server must be configured with the same one).
        public var webhookSecret = "whsec_simulated"
        public var webhookDelivery: WebhookDelivery = .delayed(.milliseconds(50))
        /// Deliver every webhook twice.
        public var duplicateWebhooks = false
        /// Randomize delivery delays so that webhooks can arrive out of order.
        public var reorderWebhooks = false

        public init() {}
    }

    /// Receives each signed webhook, as the provider's HTTP call would reach the relay.
    public typealias WebhookSink = @Sendable (Tote_V1_ProviderWebhookRequest) async -> Void

    private struct Intent {
        var paymentID: String
        var amount: Money
        var authorized: Int64 = 0
        var captured: Int64 = 0
        var refunded: Int64 = 0
    }

    private var configuration: Configuration
    private let sink: WebhookSink?
    private let nowMicros: @Sendable () -> Int64
    private var random: SimulatedGatewayRandom
    private var script: [ScriptedOutcome] = []
    private var intents: [String: Intent] = [:]  // by provider reference
    private var idempotentAuthorizations: [String: GatewayAuthorizationResult] = [:]
    private var pending: [Tote_V1_ProviderWebhookRequest] = []
    private var sequence = 0

    /// A gateway with `configuration`, delivering webhooks to `sink` (none when nil), reading the
    /// time from `nowMicros` (the wall clock by default).
    public init(configuration: Configuration = Configuration(), sink: WebhookSink? = nil, nowMicros: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1_000_000) }) {
        self.configuration = configuration
        self.provider = configuration.provider
        self.sink = sink
        self.nowMicros = nowMicros
        self.random = SimulatedGatewayRandom(seed: configuration.seed)
    }

    /// Scripts the outcome of the next call (authorize, capture or refund), first in first out;
    /// scripted outcomes win over the rules.
    public func enqueue(_ outcomes: ScriptedOutcome...) {
        script.append(contentsOf: outcomes)
    }

    /// Webhooks held by ``WebhookDelivery/manual`` delivery.
    public var pendingWebhooks: [Tote_V1_ProviderWebhookRequest] { pending }

    /// Delivers the held webhooks (in order, or newest first) and forgets them; duplicates each
    /// one when ``Configuration/duplicateWebhooks`` is set.
    public func deliverPendingWebhooks(reversed: Bool = false) async {
        let batch = reversed ? pending.reversed() : pending
        pending = []
        guard let sink else { return }
        for request in batch {
            await sink(request)
            if configuration.duplicateWebhooks { await sink(request) }
        }
    }

    // MARK: PaymentGateway

    public func authorize(_ request: GatewayAuthorization) async throws(PaymentGatewayError) -> GatewayAuthorizationResult {
        await pause()
        if let earlier = idempotentAuthorizations[request.idempotencyKey] { return earlier }
        let outcome = script.isEmpty ? ruleOutcome(token: request.methodToken) : script.removeFirst()
        let reference = "sim_pi_\(request.paymentID)"
        switch outcome {
        case .decline(let code, let message):
            emit(.failed, paymentID: request.paymentID, reference: reference, amount: nil, failureCode: code, failureMessage: message)
            throw .declined(code: code, message: message)
        case .unavailable(let reason):
            throw .unavailable(reason)
        case .timeout:
            // The provider authorized; the answer was lost. Only the webhook tells.
            intents[reference] = Intent(paymentID: request.paymentID, amount: request.amount, authorized: request.amount.minorUnits)
            emit(.authorized, paymentID: request.paymentID, reference: reference, amount: request.amount)
            throw .timeout
        case .requireAction:
            intents[reference] = Intent(paymentID: request.paymentID, amount: request.amount, authorized: request.amount.minorUnits)
            var next = Tote_V1_PaymentNextAction()
            next.redirectURL = "https://simulated.invalid/3ds/\(reference)"
            let result = GatewayAuthorizationResult.requiresAction(providerReference: reference, nextAction: next)
            idempotentAuthorizations[request.idempotencyKey] = result
            // The simulated customer completes the challenge: the authorization follows as a webhook.
            emit(.requiresAction, paymentID: request.paymentID, reference: reference, amount: nil)
            emit(.authorized, paymentID: request.paymentID, reference: reference, amount: request.amount)
            return result
        case .approve:
            intents[reference] = Intent(paymentID: request.paymentID, amount: request.amount, authorized: request.amount.minorUnits)
            let result = GatewayAuthorizationResult.authorized(providerReference: reference, amount: request.amount)
            idempotentAuthorizations[request.idempotencyKey] = result
            emit(.authorized, paymentID: request.paymentID, reference: reference, amount: request.amount)
            return result
        }
    }

    public func capture(_ request: GatewayCapture) async throws(PaymentGatewayError) -> GatewayCaptureResult {
        await pause()
        if let scripted = script.first, scripted != .approve { script.removeFirst(); try fail(scripted) } else if !script.isEmpty { script.removeFirst() }
        guard var intent = intents[request.providerReference] else {
            throw .declined(code: "resource_missing", message: "no authorization \(request.providerReference)")
        }
        guard request.amount.currency == intent.amount.currency, request.amount.minorUnits > 0,
              request.amount.minorUnits <= intent.authorized - intent.captured else {
            throw .declined(code: "amount_too_large", message: "capture exceeds the uncaptured authorization")
        }
        intent.captured += request.amount.minorUnits
        intents[request.providerReference] = intent
        emit(.captured, paymentID: intent.paymentID, reference: request.providerReference, amount: Money(intent.captured, intent.amount.currency))
        return GatewayCaptureResult(captureID: "sim_cap_\(request.idempotencyKey)", amount: request.amount)
    }

    public func refund(_ request: GatewayRefund) async throws(PaymentGatewayError) -> GatewayRefundResult {
        await pause()
        if let scripted = script.first, scripted != .approve { script.removeFirst(); try fail(scripted) } else if !script.isEmpty { script.removeFirst() }
        guard var intent = intents[request.providerReference] else {
            throw .declined(code: "resource_missing", message: "no payment \(request.providerReference)")
        }
        guard request.amount.currency == intent.amount.currency, request.amount.minorUnits > 0,
              request.amount.minorUnits <= intent.captured - intent.refunded else {
            throw .declined(code: "amount_too_large", message: "refund exceeds the captured amount not refunded")
        }
        intent.refunded += request.amount.minorUnits
        intents[request.providerReference] = intent
        emit(.refunded, paymentID: intent.paymentID, reference: request.providerReference, amount: Money(intent.refunded, intent.amount.currency))
        return GatewayRefundResult(providerRefundID: "sim_re_\(request.refundID)", amount: request.amount)
    }

    /// Reports a chargeback on a captured payment (for testing disputes), as a webhook.
    public func openDispute(providerReference: String, disputeID: String, amount: Money) {
        guard let intent = intents[providerReference] else { return }
        emit(.disputed, paymentID: intent.paymentID, reference: providerReference, amount: amount, disputeID: disputeID)
    }

    // MARK: Webhook payloads

    /// The simulated provider's webhook body (JSON).
    public struct WebhookPayload: Codable, Sendable, Equatable {
        public var id: String
        /// `payment.requires_action`, `payment.authorized`, `payment.captured`, `payment.failed`,
        /// `payment.refunded`, `payment.disputed`.
        public var type: String
        /// Tote's payment id (sent as metadata with the authorization).
        public var paymentID: String
        public var providerReference: String
        public var currency: String
        /// The amount (cumulative for captured and refunded); 0 = none.
        public var minorUnits: Int64
        public var occurredAtMicros: Int64
        public var failureCode: String
        public var failureMessage: String
        public var disputeID: String

        /// The payment id and the ``ProviderEvent`` for ``PaymentDecider/decideWebhook(_:state:context:)``.
        public var providerEvent: ProviderEvent {
            let kind: ProviderEventKind = switch type {
            case "payment.requires_action": .requiresAction
            case "payment.authorized": .authorized
            case "payment.captured": .captured
            case "payment.failed": .failed
            case "payment.refunded": .refunded
            case "payment.disputed": .disputed
            case "payment.dispute_won": .disputeWon
            case "payment.dispute_lost": .disputeLost
            case "payment.voided": .voided
            case "payment.expired": .expired
            default: .other(type)
            }
            return ProviderEvent(providerEventID: id, kind: kind, amount: minorUnits == 0 ? nil : Money(minorUnits, currency), occurredAtMicros: occurredAtMicros, providerReference: providerReference, failureCode: failureCode, failureMessage: failureMessage, disputeID: disputeID)
        }
    }

    /// Parses a webhook body this gateway sent (after its signature was verified).
    public static func parseWebhook(_ payload: [UInt8]) throws -> WebhookPayload {
        try JSONDecoder().decode(WebhookPayload.self, from: Data(payload))
    }

    // MARK: Private

    private func pause() async {
        if configuration.latency > .zero { try? await Task.sleep(for: configuration.latency) }
    }

    private func fail(_ outcome: ScriptedOutcome) throws(PaymentGatewayError) {
        switch outcome {
        case .approve, .requireAction: return
        case .decline(let code, let message): throw .declined(code: code, message: message)
        case .timeout: throw .timeout
        case .unavailable(let reason): throw .unavailable(reason)
        }
    }

    private func ruleOutcome(token: String) -> ScriptedOutcome {
        for (suffix, code) in configuration.declineTokenSuffixes.sorted(by: { $0.key < $1.key }) where token.hasSuffix(suffix) {
            return .decline(code: code, message: "The card was declined (\(code)).")
        }
        if configuration.timeoutTokenSuffixes.contains(where: { token.hasSuffix($0) }) { return .timeout }
        if configuration.requiresActionTokenSuffixes.contains(where: { token.hasSuffix($0) }) { return .requireAction }
        let roll = UInt32(random.next() % 1_000_000)
        if roll < configuration.declineRatePPM { return .decline(code: "card_declined", message: "The card was declined.") }
        if roll < configuration.declineRatePPM &+ configuration.timeoutRatePPM { return .timeout }
        return .approve
    }

    private enum Kind: String {
        case requiresAction = "payment.requires_action"
        case authorized = "payment.authorized"
        case captured = "payment.captured"
        case failed = "payment.failed"
        case refunded = "payment.refunded"
        case disputed = "payment.disputed"
    }

    /// Builds, signs and schedules one webhook.
    private func emit(_ kind: Kind, paymentID: String, reference: String, amount: Money?, failureCode: String = "", failureMessage: String = "", disputeID: String = "") {
        guard configuration.webhookDelivery != .none, sink != nil || configuration.webhookDelivery == .manual else { return }
        sequence += 1
        let now = nowMicros()
        let body = WebhookPayload(id: "sim_evt_\(sequence)_\(random.next() % 1_000_000)", type: kind.rawValue, paymentID: paymentID, providerReference: reference, currency: amount?.currency ?? "", minorUnits: amount?.minorUnits ?? 0, occurredAtMicros: now, failureCode: failureCode, failureMessage: failureMessage, disputeID: disputeID)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        guard let data = try? encoder.encode(body) else { return }
        let payload = [UInt8](data)
        var request = Tote_V1_ProviderWebhookRequest()
        request.provider = provider
        request.providerEventID = body.id
        request.payload = data
        request.signature = WebhookSignature.sign(payload: payload, secret: configuration.webhookSecret, timestampSeconds: now / 1_000_000)
        var received = Tote_V1_Timestamp()
        received.unixMicros = now
        request.receivedAt = received
        switch configuration.webhookDelivery {
        case .none:
            return
        case .manual:
            pending.append(request)
        case .delayed(let delay):
            guard let sink else { return }
            var wait = delay
            if configuration.reorderWebhooks {
                let ppm = Int(random.next() % 2_000_001)  // 0...2 × delay
                wait = delay * ppm / 1_000_000
            }
            let duplicate = configuration.duplicateWebhooks
            Task {
                try? await Task.sleep(for: wait)
                await sink(request)
                if duplicate { await sink(request) }
            }
        }
    }
}

/// A small seeded random generator (SimulatedGatewayRandom): the same seed gives the same declines.
struct SimulatedGatewayRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
