import Logging
import ToteAPI
import ToteCommands
import SwiftProtobuf
import ToteDomain

/// The commerce command services a Tote command node serves, over one command runner (one
/// event store). `tote serve` and the integration tests register them the same way, and run
/// ``promotions`` (it follows the log) and a ``Reaper`` with ``reaperTrackers`` beside them.
public struct CommerceServices: RPCService, Sendable {
    public let commands: CommandSupport
    /// The active promotion rules carts are priced with; run it (``PromotionRegistry/run()``).
    public let promotions: PromotionRegistry
    public let settings: StoreSettings
    let payments: PaymentsService

    /// - Parameter gateways: payment adapters by provider name; each needs a webhook secret in
    ///   `settings.webhookSecrets` to accept its webhooks.
    public init(runner: CommandRunner, settings: StoreSettings = .demo, gateways: [String: any PaymentGateway] = [:]) {
        commands = CommandSupport(runner: runner)
        promotions = PromotionRegistry(store: runner.store)
        self.settings = settings
        payments = PaymentsService(commands: commands, settings: settings, gateways: gateways)
        self.gateways = gateways
    }

    let gateways: [String: any PaymentGateway]

    /// The services registered, for health reporting.
    public static let serviceNames = [
        APIServices.catalog.name, APIServices.inventory.name, APIServices.cart.name,
        APIServices.checkout.name, APIServices.orders.name, APIServices.payments.name,
        APIServices.promotions.name,
    ]

    public func register(into router: inout RPCRouter) {
        CatalogService(commands: commands).register(into: &router)
        InventoryService(commands: commands).register(into: &router)
        CartService(commands: commands, promotions: promotions).register(into: &router)
        CheckoutService(commands: commands, promotions: promotions, settings: settings).register(into: &router)
        OrdersService(commands: commands, gateways: gateways).register(into: &router)
        payments.register(into: &router)
        PromotionsService(commands: commands, promotions: promotions).register(into: &router)
    }

    /// What the reaper watches: expiring stock reservations, and unpaid orders whose
    /// reservations lapsed (cancelled as expired, their reservations released).
    public var reaperTrackers: [Reaper.Tracker] { [Reaper.stockReservations, OrderExpiry.tracker] }

    /// Delivers a provider webhook received outside the wire protocol (the simulated gateway's
    /// in-process deliveries), exactly as `Payments/ProviderWebhook` would.
    public func deliverWebhook(_ request: Tote_V1_ProviderWebhookRequest, logger: Logger) async throws -> Tote_V1_ProviderWebhookResponse {
        let context = ServerContext(
            method: PaymentsAPI.providerWebhook.fullName, role: .storefront, deadline: nil, idempotencyKey: "",
            correlationID: "webhook-\(request.providerEventID)", consistencyToken: nil, metadata: [:],
            remoteAddress: "in-process", logger: logger)
        return try await payments.webhook(request, context)
    }
}

/// Cancels orders left unpaid past their reservations' expiry, releasing the reservations in
/// the same append.
enum OrderExpiry {
    static let tracker = Reaper.Tracker(
        name: "unpaid orders",
        observe: { event, deadlines in
            guard event.stream.hasPrefix("order-"), let decoded = try? EventCodec.decode(event, as: OrderDecider.Event.self) else { return }
            switch decoded.event {
            case .orderPlaced(let placed): deadlines[event.stream] = placed.reservationsExpireAt.unixMicros
            case .orderPaid, .orderCancelled: deadlines[event.stream] = nil
            default: break
            }
        },
        expire: { stream, runner in
            _ = try await runner.execute(commandID: "", actor: .system, correlationID: "reaper") { unit -> Google_Protobuf_Empty in
                let order = try await unit.load(OrderDecider.self, stream)
                guard order.status == .placed, order.reservationsExpireAtMicros <= unit.context.nowMicros else { return Google_Protobuf_Empty() }
                let (events, _) = try await unit.decide(OrderDecider.self, stream, .expireUnpaid)
                if case .orderCancelled(let cancelled)? = events.first?.event {
                    try await OrdersService.release(cancelled.reservationsToRelease, reason: "order \(order.orderID) unpaid when its reservations expired", &unit)
                }
                return Google_Protobuf_Empty()
            }
        }
    )
}
