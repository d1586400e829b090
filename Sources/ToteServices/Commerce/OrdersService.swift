import EventStore
import Foundation
import SwiftProtobuf
import ToteAPI
import ToteCommands
import ToteDomain

/// Serves tote.v1.Orders' commands and the single-order read: the order state machine
/// (``OrderDecider``) with every transition recorded with its actor and reason, and what each
/// transition means for stock and money — a cancelled unpaid order releases its reservations in
/// the same append; a cancelled or refunded paid order is refunded at the gateway; a refund with
/// restock puts the units back on hand.
///
/// Customer order lists are read-side queries (the query service); `ListCustomerOrders` is not
/// served here.
public struct OrdersService: RPCService, Sendable {
    let commands: CommandSupport
    let gateways: [String: any PaymentGateway]

    public init(commands: CommandSupport, gateways: [String: any PaymentGateway]) {
        self.commands = commands
        self.gateways = gateways
    }

    public func register(into router: inout RPCRouter) {
        router.register(OrdersAPI.getOrder, unary: { request, _ in
            try await Self.orderView(request.orderID, runner: commands.runner)
        })
        router.register(OrdersAPI.cancelOrder, unary: { request, context in
            var response = try await transition(request.orderID, actorID: request.actor.id, context, reply: Tote_V1_CancelOrderResponse.self) { unit, stream in
                let (events, _) = try await unit.decide(OrderDecider.self, stream, .cancel(reason: request.reason))
                if case .orderCancelled(let cancelled)? = events.first?.event {
                    try await Self.release(cancelled.reservationsToRelease, reason: "order \(request.orderID) cancelled: \(request.reason)", &unit)
                }
                return events.count
            }
            if case .orderCancelled(let event)? = try await lastEvent(request.orderID, version: response.streamVersion)?.event, event.refundDue {
                try await refundPayment(event.paymentID, amount: Money(event.refundAmount), refundID: "\(request.orderID)/cancel", reason: request.reason, context, actorID: request.actor.id)
                response.state = try await commands.runner.read(OrderDecider.self, StreamName.order(request.orderID)).state.status
            }
            return response
        })
        router.register(OrdersAPI.refundOrder, unary: { request, context in
            let refundID = "\(request.orderID)/refund/\(context.idempotencyKey)"
            let command = OrderCommand.RefundOrder(
                refundID: refundID, full: request.full,
                lines: request.lines.map { OrderCommand.RefundOrderLine(lineID: $0.lineID, quantity: Int64($0.quantity)) },
                amount: request.hasAmount ? Money(request.amount) : nil, restock: request.restock, reason: request.reason)
            var response = try await transition(request.orderID, actorID: request.actor.id, context, reply: Tote_V1_RefundOrderResponse.self) { unit, stream in
                let (events, _) = try await unit.decide(OrderDecider.self, stream, .refund(command))
                if case .orderRefunded(let refunded)? = events.first?.event, refunded.restock {
                    for line in refunded.lines where line.quantity > 0 {
                        let key = StockItemDecider.Key(sku: line.sku, locationId: line.locationID)
                        try await unit.decide(StockItemDecider.self, key.streamName, .receive(key: key, quantity: Int64(line.quantity), reference: "refund \(refundID)"))
                    }
                }
                return events.count
            }
            response.refundID = refundID
            if case .orderRefunded(let refunded)? = try await lastEvent(request.orderID, version: response.streamVersion)?.event, refunded.refundID == refundID {
                try await refundPayment(refunded.paymentID, amount: Money(refunded.amount), refundID: refundID, reason: request.reason, context, actorID: request.actor.id)
                response.refundedAmount = refunded.amount
                response.refundedTotal = refunded.refundedTotal
            }
            return response
        })
        router.register(OrdersAPI.markShipped, unary: { request, context in
            let shipped = OrderCommand.MarkShipped(carrier: request.carrier, trackingNumber: request.trackingNumber, trackingURL: request.trackingURL, shippedAtMicros: request.shippedAt.unixMicros, reason: request.reason)
            return try await transition(request.orderID, actorID: request.actor.id, context, reply: Tote_V1_MarkShippedResponse.self) { unit, stream in
                try await unit.decide(OrderDecider.self, stream, .markShipped(shipped)).events.count
            }
        })
        router.register(OrdersAPI.markDelivered, unary: { request, context in
            try await transition(request.orderID, actorID: request.actor.id, context, reply: Tote_V1_MarkDeliveredResponse.self) { unit, stream in
                try await unit.decide(OrderDecider.self, stream, .markDelivered(deliveredAtMicros: request.deliveredAt.unixMicros, reason: request.reason)).events.count
            }
        })
    }

    /// Runs a transition of one order: `body` decides it (plus whatever must change with it) and
    /// returns how many events it decided for the order; the reply carries the order's new
    /// version and state.
    private func transition<Reply: SwiftProtobuf.Message & OrderTransitionReply>(
        _ orderID: String,
        actorID: String,
        _ context: ServerContext,
        reply: Reply.Type,
        _ body: @escaping (inout UnitOfWork, String) async throws -> Int
    ) async throws -> Reply {
        guard !orderID.isEmpty else { throw RPCError.invalidArgument("order_id is required", fieldViolations: [("order_id", "required")]) }
        let stream = StreamName.order(orderID)
        return try await commands.run(context, actorID: actorID, setToken: { $0.consistencyToken = $1 }) { unit in
            let order = try await unit.load(OrderDecider.self, stream)
            guard order.status != .unspecified else { throw DomainError(.notFound, "order \(orderID) does not exist") }
            let written = try await body(&unit, stream)
            var reply = Reply()
            reply.streamVersion = unit.version(of: stream) + Int64(written)
            reply.state = try await unit.load(OrderDecider.self, stream).status
            return reply
        }
    }

    /// The order's event at `version` (what a transition just recorded, or recorded the first
    /// time for a repeated idempotency key).
    private func lastEvent(_ orderID: String, version: Int64) async throws -> Tote_V1_OrderEvent? {
        guard version > 0, let recorded = try await commands.runner.store.readStream(StreamName.order(orderID), from: version, limit: 1).first else { return nil }
        return try EventCodec.decode(recorded, as: OrderDecider.Event.self)
    }

    /// Releases reservations in the unit of work (stock streams serialized first).
    static func release(_ reservations: [Tote_V1_OrderReservation], reason: String, _ unit: inout UnitOfWork) async throws {
        guard !reservations.isEmpty else { return }
        try await unit.serialize(reservations.map { StreamName.stockItem(sku: $0.sku, location: $0.locationID) })
        for reservation in reservations {
            let key = StockItemDecider.Key(sku: reservation.sku, locationId: reservation.locationID)
            try await unit.decide(StockItemDecider.self, key.streamName, .releaseReservation(key: key, reservationId: reservation.reservationID, reason: reason))
        }
    }

    /// Gives money back for an order: refunds what was captured; an authorization that was never
    /// captured is voided instead (nothing was taken).
    private func refundPayment(_ paymentID: String, amount: Money, refundID: String, reason: String, _ context: ServerContext, actorID: String) async throws {
        guard !paymentID.isEmpty, amount.minorUnits > 0 else { return }
        let stream = StreamName.payment(paymentID)
        let (payment, _) = try await commands.runner.read(PaymentDecider.self, stream)
        switch payment.status {
        case .authorized:
            _ = try await commands.runner.execute(commandID: "void#\(refundID)", actor: CommandSupport.actor(context, actorID: actorID), correlationID: context.correlationID) { unit -> Google_Protobuf_Empty in
                let current = try await unit.load(PaymentDecider.self, stream)
                if current.status == .authorized { try await unit.decide(PaymentDecider.self, stream, .void(reason: reason)) }
                return Google_Protobuf_Empty()
            }
        case .captured, .partiallyRefunded:
            _ = try await PaymentsService.refundAtGateway(payment: payment, amount: amount, refundID: refundID, reason: reason, gateways: gateways, commands: commands, context: context, actorID: actorID)
        default:
            return
        }
    }

    /// An order with its complete history and its payments, read from the log: its own events
    /// interleaved with those of its payments, warehouse tasks and reservations.
    static func orderView(_ orderID: String, runner: CommandRunner) async throws -> Tote_V1_OrderView {
        guard !orderID.isEmpty else { throw RPCError.invalidArgument("order_id is required", fieldViolations: [("order_id", "required")]) }
        let stream = StreamName.order(orderID)
        let recorded = try await runner.store.readStream(stream)
        guard !recorded.isEmpty else { throw RPCError(.notFound, "order \(orderID) does not exist") }
        var timelineEvents: [RecordedOrderEvent] = []
        for event in recorded {
            timelineEvents.append(RecordedOrderEvent(
                event: try EventCodec.decode(event, as: OrderDecider.Event.self), streamVersion: event.streamVersion,
                recordedAtMicros: event.recordedAtMicros, actor: Principal(id: event.metadata.actorID, role: event.metadata.actorRole)))
        }
        let state = OrderDecider.fold(timelineEvents.map(\.event))
        var payments: [Tote_V1_PaymentSummary] = []
        var related: [RecordedEvent] = []
        for paymentID in Set([state.paymentID, state.paidPaymentID]).subtracting([""]).sorted() {
            let paymentEvents = try await runner.store.readStream(StreamName.payment(paymentID))
            related += paymentEvents
            if !paymentEvents.isEmpty {
                payments.append(PaymentDecider.fold(try paymentEvents.map { try EventCodec.decode($0, as: PaymentDecider.Event.self) }).summary)
            }
        }
        // Its warehouse tasks, and what happened to its reservations on their stock items.
        for task in try await runner.store.streamNames(withPrefix: StreamName.task(orderID + "-")) {
            related += try await runner.store.readStream(task)
        }
        for item in Set(state.reservations.map { StreamName.stockItem(sku: $0.sku, location: $0.locationID) }).sorted() {
            related += try await runner.store.readStream(item, containing: Array((orderID + "/").utf8))
        }
        let own = zip(OrderDecider.timeline(timelineEvents), recorded).map { ($0, $1.position.globalPosition) }
        let history = try OrderDecider.history(orderID: orderID, own: own, related: related.map {
            RelatedOrderEvent(stream: $0.stream, streamVersion: $0.streamVersion, data: $0.data, recordedAtMicros: $0.recordedAtMicros,
                              actor: Principal(id: $0.metadata.actorID, role: $0.metadata.actorRole), position: $0.position.globalPosition)
        })
        return state.view(version: recorded.last!.streamVersion, timeline: history, payments: payments)
    }
}

/// Order transition replies: new version, token and the order's state (fields 1–3).
protocol OrderTransitionReply: VersionedReply {
    var state: Tote_V1_OrderState { get set }
}

extension Tote_V1_CancelOrderResponse: OrderTransitionReply {}
extension Tote_V1_RefundOrderResponse: OrderTransitionReply {}
extension Tote_V1_MarkShippedResponse: OrderTransitionReply {}
extension Tote_V1_MarkDeliveredResponse: OrderTransitionReply {}
