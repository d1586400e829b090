import Foundation
import SwiftProtobuf
import ToteAPI
import ToteCommands
import ToteDomain

/// Serves tote.v1.Payments: payments on their own streams (``PaymentDecider``), gateway calls
/// through ``PaymentGateway`` adapters, and provider webhooks verified (HMAC) and deduplicated by
/// the provider's event id.
///
/// A payment succeeds when its funds are authorized (held) — by the gateway's answer or by a
/// webhook, whichever comes first. Then ``OrderSettlement`` marks the order paid and commits its
/// reservations. Capture (taking the funds) is an operator action, typically at shipment.
public struct PaymentsService: RPCService, Sendable {
    let commands: CommandSupport
    let settings: StoreSettings
    let gateways: [String: any PaymentGateway]

    /// - Parameter gateways: adapters by provider name (`PaymentMethod.provider`).
    public init(commands: CommandSupport, settings: StoreSettings, gateways: [String: any PaymentGateway]) {
        self.commands = commands
        self.settings = settings
        self.gateways = gateways
    }

    public func register(into router: inout RPCRouter) {
        router.register(PaymentsAPI.authorizePayment, unary: { request, context in
            try await authorize(request, context)
        })
        router.register(PaymentsAPI.capturePayment, unary: { request, context in
            try await capture(request, context)
        })
        router.register(PaymentsAPI.refundPayment, unary: { request, context in
            try await refund(request, context)
        })
        router.register(PaymentsAPI.providerWebhook, unary: { request, context in
            try await webhook(request, context)
        })
    }

    // MARK: Authorize

    func authorize(_ request: Tote_V1_AuthorizePaymentRequest, _ context: ServerContext) async throws -> Tote_V1_AuthorizePaymentResponse {
        guard !request.orderID.isEmpty else { throw RPCError.invalidArgument("order_id is required", fieldViolations: [("order_id", "required")]) }
        // 1. The payment is created (PENDING) before the gateway is asked, so that its answer —
        //    or a webhook racing it — always has a payment to land on.
        let paymentID = UUID().uuidString.lowercased()
        let started = try await commands.run(context, setToken: { $0.consistencyToken = $1 }) { unit -> Tote_V1_AuthorizePaymentResponse in
            let order = try await unit.load(OrderDecider.self, StreamName.order(request.orderID))
            guard order.status != .unspecified else { throw DomainError(.notFound, "order \(request.orderID) does not exist") }
            guard order.status == .placed else {
                throw DomainError.wrongState("order \(request.orderID) is not waiting for payment", currentState: OrderDecider.stateName(order.status))
            }
            let amount = Money(order.totals.total)
            if request.hasExpectedAmount, Money(request.expectedAmount) != amount {
                throw DomainError(.failedPrecondition, "the order's open amount is \(amount.minorUnits) \(amount.currency) minor units, not \(request.expectedAmount.minorUnits) \(request.expectedAmount.currency)", currentState: OrderDecider.stateName(order.status))
            }
            var method = request.method
            if !request.hasMethod {
                let checkout = try await unit.load(CheckoutDecider.self, StreamName.checkout(order.checkoutID))
                guard let chosen = checkout.paymentMethod else { throw DomainError.invalid("method", "required: the checkout chose none") }
                method = chosen
            }
            guard gateways[method.provider] != nil else { throw DomainError.invalid("method.provider", "unknown payment provider \(method.provider)") }
            let stream = StreamName.payment(paymentID)
            let (events, state) = try await unit.decide(PaymentDecider.self, stream, .initiate(paymentID: paymentID, orderID: request.orderID, amount: amount, method: method))
            var reply = Tote_V1_AuthorizePaymentResponse()
            reply.paymentID = paymentID
            reply.state = state.status
            reply.streamVersion = Int64(events.count)
            return reply
        }
        let stream = StreamName.payment(started.paymentID)
        let (payment, _) = try await commands.runner.read(PaymentDecider.self, stream)
        guard let gateway = gateways[payment.method.provider] else { throw RPCError(.internal, "internal error") }

        // 2. The gateway, outside any unit of work (a retried unit must not call it twice; its
        //    own idempotency key is the payment id).
        let outcome: PaymentCommand?
        do {
            switch try await gateway.authorize(GatewayAuthorization(paymentID: payment.paymentID, orderID: payment.orderID, amount: payment.amount, methodToken: payment.method.token, returnURL: request.returnURL, idempotencyKey: payment.paymentID)) {
            case .authorized(let reference, let amount): outcome = .recordAuthorization(providerReference: reference, amount: amount)
            case .requiresAction(let reference, let next): outcome = .recordActionRequired(providerReference: reference, nextAction: next)
            }
        } catch .declined(let code, let message) {
            outcome = .recordDecline(code: code, message: message)
        } catch .timeout {
            outcome = nil  // the provider may have authorized: its webhook settles it
        } catch .unavailable(let reason) {
            throw RPCError(.unavailable, "payment provider \(payment.method.provider) is unavailable: \(reason); retry with the same idempotency key")
        }

        // 3. Its answer, unless a webhook already moved the payment past it.
        var reply = started
        if let outcome {
            let recorded = try await commands.runner.execute(commandID: "\(context.method)#\(context.idempotencyKey)#result", actor: CommandSupport.actor(context, actorID: ""), correlationID: context.correlationID) { unit -> Tote_V1_AuthorizePaymentResponse in
                let current = try await unit.load(PaymentDecider.self, stream)
                var events: [Tote_V1_PaymentEvent] = []
                if current.status == .pending || (current.status == .requiresAction && Self.isAuthorization(outcome)) {
                    events = try await unit.decide(PaymentDecider.self, stream, outcome).events
                }
                let state = try await unit.load(PaymentDecider.self, stream)
                var reply = started
                reply.state = state.status
                reply.nextAction = state.nextAction
                reply.failureCode = state.failureCode
                reply.streamVersion = unit.version(of: stream) + Int64(events.count)
                return reply
            }
            reply = recorded.reply
            if let append = recorded.append { reply.consistencyToken = CommandSupport.token(append.position) }
        } else {
            reply.state = .pending
        }
        // 4. A payment that holds the funds pays the order.
        if reply.state == .authorized {
            if let token = try await OrderSettlement.settle(paymentID: reply.paymentID, commands: commands, context: context) { reply.consistencyToken = token }
        }
        return reply
    }

    static func isAuthorization(_ command: PaymentCommand) -> Bool {
        if case .recordAuthorization = command { return true }
        return false
    }

    // MARK: Capture and refund (operators)

    func capture(_ request: Tote_V1_CapturePaymentRequest, _ context: ServerContext) async throws -> Tote_V1_CapturePaymentResponse {
        let stream = try Self.paymentStream(request.paymentID)
        let (payment, version) = try await commands.runner.read(PaymentDecider.self, stream)
        guard version > 0 else { throw RPCError(.notFound, "payment \(request.paymentID) does not exist") }
        guard payment.status == .authorized else {
            throw DomainError.wrongState("payment \(request.paymentID) is not authorized", currentState: PaymentDecider.stateName(payment.status))
        }
        let amount = request.hasAmount ? Money(request.amount) : Money(payment.authorizedMinor - payment.capturedMinor, payment.currency)
        guard let gateway = gateways[payment.method.provider] else { throw RPCError(.internal, "internal error") }
        let result: GatewayCaptureResult
        do {
            result = try await gateway.capture(GatewayCapture(paymentID: payment.paymentID, providerReference: payment.providerReference, amount: amount, idempotencyKey: "\(payment.paymentID)/capture/\(context.idempotencyKey)"))
        } catch {
            throw Self.gatewayError(error, provider: payment.method.provider)
        }
        return try await commands.run(context, actorID: request.actor.id, setToken: { $0.consistencyToken = $1 }) { unit in
            let current = try await unit.load(PaymentDecider.self, stream)
            var written = 0
            if !current.captureIDs.contains(result.captureID) {
                written = try await unit.decide(PaymentDecider.self, stream, .recordCapture(captureID: result.captureID, amount: result.amount)).events.count
            }
            let state = try await unit.load(PaymentDecider.self, stream)
            var reply = Tote_V1_CapturePaymentResponse()
            reply.streamVersion = unit.version(of: stream) + Int64(written)
            reply.state = state.status
            reply.captured = Money(state.capturedMinor, state.currency).proto
            return reply
        }
    }

    func refund(_ request: Tote_V1_RefundPaymentRequest, _ context: ServerContext) async throws -> Tote_V1_RefundPaymentResponse {
        let stream = try Self.paymentStream(request.paymentID)
        let (payment, version) = try await commands.runner.read(PaymentDecider.self, stream)
        guard version > 0 else { throw RPCError(.notFound, "payment \(request.paymentID) does not exist") }
        let amount = request.hasAmount ? Money(request.amount) : Money(payment.capturedMinor - payment.refundedMinor, payment.currency)
        let refundID = "\(payment.paymentID)/refund/\(context.idempotencyKey)"
        let stored = try await PaymentsService.refundAtGateway(payment: payment, amount: amount, refundID: refundID, reason: request.reason, gateways: gateways, commands: commands, context: context, actorID: request.actor.id)
        var reply = Tote_V1_RefundPaymentResponse()
        reply.streamVersion = stored.version
        reply.state = stored.state.status
        reply.refunded = Money(stored.state.refundedMinor, stored.state.currency).proto
        if let token = stored.token { reply.consistencyToken = token }
        return reply
    }

    /// Refunds `amount` of a captured payment at its gateway and records it. Used by
    /// RefundPayment and by order refunds and cancellations of paid orders.
    static func refundAtGateway(payment: PaymentDecider.State, amount: Money, refundID: String, reason: String, gateways: [String: any PaymentGateway], commands: CommandSupport, context: ServerContext, actorID: String) async throws -> (state: PaymentDecider.State, version: Int64, token: Tote_V1_ConsistencyToken?) {
        let stream = StreamName.payment(payment.paymentID)
        guard [.captured, .partiallyRefunded].contains(payment.status) else {
            throw DomainError.wrongState("payment \(payment.paymentID) has nothing captured to refund", currentState: PaymentDecider.stateName(payment.status))
        }
        guard let gateway = gateways[payment.method.provider] else { throw RPCError(.internal, "internal error") }
        if !payment.refundIDs.contains(refundID) {
            do {
                _ = try await gateway.refund(GatewayRefund(paymentID: payment.paymentID, providerReference: payment.providerReference, refundID: refundID, amount: amount, idempotencyKey: refundID))
            } catch {
                throw gatewayError(error, provider: payment.method.provider)
            }
        }
        let outcome = try await commands.runner.execute(commandID: "refund#\(refundID)", actor: CommandSupport.actor(context, actorID: actorID), correlationID: context.correlationID) { unit -> Tote_V1_PaymentSummary in
            let current = try await unit.load(PaymentDecider.self, stream)
            if !current.refundIDs.contains(refundID) {
                try await unit.decide(PaymentDecider.self, stream, .recordRefund(refundID: refundID, amount: amount, reason: reason))
            }
            return try await unit.load(PaymentDecider.self, stream).summary
        }
        let (state, version) = try await commands.runner.read(PaymentDecider.self, stream)
        return (state, version, outcome.append.map { CommandSupport.token($0.position) })
    }

    // MARK: Webhooks

    func webhook(_ request: Tote_V1_ProviderWebhookRequest, _ context: ServerContext) async throws -> Tote_V1_ProviderWebhookResponse {
        guard let secret = settings.webhookSecrets[request.provider], gateways[request.provider] != nil else {
            throw RPCError.invalidArgument("unknown payment provider \(request.provider)", fieldViolations: [("provider", "not configured")])
        }
        let nowSeconds = commands.runner.nowMicros / 1_000_000
        try WebhookSignature.verify(payload: Array(request.payload), header: request.signature, secret: secret, nowSeconds: nowSeconds, tolerance: settings.webhookToleranceSeconds)
        let payload: SimulatedGateway.WebhookPayload
        do {
            payload = try SimulatedGateway.parseWebhook(Array(request.payload))
        } catch {
            throw RPCError.invalidArgument("unreadable \(request.provider) webhook payload: \(error)", fieldViolations: [("payload", "not a \(request.provider) event")])
        }
        let event = payload.providerEvent
        guard !payload.paymentID.isEmpty, !event.providerEventID.isEmpty else {
            throw RPCError.invalidArgument("the webhook names no payment or event id", fieldViolations: [("payload", "payment id and event id required")])
        }
        let stream = StreamName.payment(payload.paymentID)
        // The provider's event id is the idempotency key: a redelivery gets the first answer.
        let outcome = try await commands.runner.execute(commandID: "webhook#\(request.provider)#\(event.providerEventID)", actor: Principal(id: request.provider, role: "provider"), correlationID: context.correlationID) { unit -> Tote_V1_ProviderWebhookResponse in
            let payment = try await unit.load(PaymentDecider.self, stream)
            var reply = Tote_V1_ProviderWebhookResponse()
            reply.paymentID = payload.paymentID
            guard payment.status != .unspecified else {
                reply.outcome = .ignored
                return reply
            }
            let (events, decided) = try PaymentDecider.decideWebhook(event, state: payment, context: unit.context)
            let state = PaymentDecider.fold(events, from: payment)
            try unit.record(PaymentDecider.self, stream, events, state: state)
            reply.outcome = decided
            reply.state = state.status
            reply.streamVersion = unit.version(of: stream) + Int64(events.count)
            return reply
        }
        var reply = outcome.reply
        if let append = outcome.append { reply.consistencyToken = CommandSupport.token(append.position) }
        if outcome.deduplicated, reply.outcome == .applied { reply.outcome = .duplicate }
        // Every delivery (also a duplicate) tries to settle: it is idempotent, and it finishes
        // the job if an earlier delivery recorded the payment but failed before settling.
        if [.authorized, .captured].contains(reply.state) {
            if let token = try await OrderSettlement.settle(paymentID: payload.paymentID, commands: commands, context: context) { reply.consistencyToken = token }
        }
        return reply
    }

    // MARK: Helpers

    static func paymentStream(_ paymentID: String) throws -> String {
        guard !paymentID.isEmpty else { throw RPCError.invalidArgument("payment_id is required", fieldViolations: [("payment_id", "required")]) }
        return StreamName.payment(paymentID)
    }

    static func gatewayError(_ error: any Error, provider: String) -> any Error {
        switch error as? PaymentGatewayError {
        case .declined(let code, let message)?:
            return DomainError(.failedPrecondition, "\(provider) refused: \(message) (\(code))")
        case .timeout?:
            return RPCError(.unavailable, "payment provider \(provider) timed out; retry with the same idempotency key")
        case .unavailable(let reason)?:
            return RPCError(.unavailable, "payment provider \(provider) is unavailable: \(reason)")
        case nil:
            return error
        }
    }
}

/// What happens to an order when its payment holds the funds: the order is marked paid and
/// every reservation of it is committed (taken out of on hand), in one append. Idempotent:
/// settling a paid order again decides nothing.
enum OrderSettlement {
    /// Settles the order of `paymentID` if its payment is authorized or captured and the order
    /// still waits. Returns the consistency token of the append, or nil if nothing was written.
    /// A refusal (the order was cancelled meanwhile, or expired stock is gone) leaves the payment
    /// authorized for an operator to refund; it is not the caller's error.
    static func settle(paymentID: String, commands: CommandSupport, context: ServerContext) async throws -> Tote_V1_ConsistencyToken? {
        do {
            let outcome = try await commands.runner.execute(commandID: "settle#\(paymentID)", actor: .system, correlationID: context.correlationID) { unit -> Google_Protobuf_Empty in
                let payment = try await unit.load(PaymentDecider.self, StreamName.payment(paymentID))
                guard [.authorized, .captured].contains(payment.status) else { return Google_Protobuf_Empty() }
                let orderStream = StreamName.order(payment.orderID)
                let order = try await unit.load(OrderDecider.self, orderStream)
                guard order.status == .placed else { return Google_Protobuf_Empty() }
                try await unit.serialize(order.reservations.map { StreamName.stockItem(sku: $0.sku, location: $0.locationID) })
                let amount = Money(max(payment.authorizedMinor, payment.capturedMinor), payment.currency)
                try await unit.decide(OrderDecider.self, orderStream, .markPaid(paymentID: paymentID, amount: amount, reason: "payment \(paymentID) holds the funds"))
                for reservation in order.reservations {
                    let key = StockItemDecider.Key(sku: reservation.sku, locationId: reservation.locationID)
                    try await unit.decide(StockItemDecider.self, key.streamName, .commitReservation(key: key, reservationId: reservation.reservationID))
                }
                return Google_Protobuf_Empty()
            }
            return outcome.append.map { CommandSupport.token($0.position) }
        } catch let error as DomainError {
            context.logger.warning("payment holds funds but its order cannot be settled; an operator must refund it", metadata: ["payment_id": "\(paymentID)", "error": "\(error.message)"])
            return nil
        }
    }
}
