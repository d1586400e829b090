import ToteProto

/// What can be asked of an order. Commands are Swift values built by the service layer, which
/// looks up everything the order needs from other aggregates (prices and reservations from the
/// checkout, the captured amount from the payment). The actor and the time come from the
/// ``CommandContext``.
public enum OrderCommand: Sendable, Equatable {
    /// Creates the order from a checkout whose stock is already reserved. State: → PLACED.
    case place(PlaceOrder)
    /// The order's payment captured `amount`, which must equal the order total. PLACED → PAID.
    /// Repeating it with the same payment id is a no-op.
    case markPaid(paymentID: String, amount: Money, reason: String)
    /// The warehouse started picking. PAID → PICKING.
    case startPicking(reason: String)
    /// Every line is packed. PICKING → PACKED.
    case markPacked(reason: String)
    /// Handed to a carrier. PACKED → SHIPPED.
    case markShipped(MarkShipped)
    /// Arrived; `deliveredAtMicros` 0 = the command's time. SHIPPED → DELIVERED.
    case markDelivered(deliveredAtMicros: Int64, reason: String)
    /// Cancels an order that has not shipped; `reason` is required. → CANCELLED.
    case cancel(reason: String)
    /// Refunds all or part of what was paid. → PARTIALLY_REFUNDED or REFUNDED.
    case refund(RefundOrder)
    /// A chargeback was opened at the bank. → DISPUTED.
    case openDispute(disputeID: String, amount: Money, reason: String)
    /// A chargeback was closed: won (back to the state before it) or lost (the disputed amount
    /// counts as refunded). DISPUTED → previous state, PARTIALLY_REFUNDED or REFUNDED.
    case resolveDispute(disputeID: String, won: Bool, reason: String)
    /// Cancels a PLACED order whose reservations expired before it was paid (sent by the reaper
    /// with ``Principal/system``; refused before the expiry time). PLACED → CANCELLED.
    case expireUnpaid
}

extension OrderCommand {
    /// One line of ``PlaceOrder``, as priced and reserved by the checkout.
    public struct PlaceOrderLine: Sendable, Equatable {
        /// Tote-assigned line id (unique within the order).
        public var lineID: String
        public var sku: String
        public var productID: String
        /// Product name and option values as shown to the customer.
        public var displayName: String
        /// Units ordered: 1...``OrderDecider/maxLineQuantity``.
        public var quantity: Int64
        /// The catalog price of one unit, read by the service from the product (never from the client).
        public var unitPrice: Money
        /// The promotion rules applied to this line and their amounts (from the checkout).
        public var promotions: [Tote_V1_AppliedPromotion]
        /// The line's tax (contained or added, per ``PlaceOrder/totals``' tax_inclusive).
        public var tax: Money
        /// The stock location its units are reserved at.
        public var locationID: String
        /// The reservation made for it on the stock item `sku × locationID`.
        public var reservationID: String

        public init(lineID: String, sku: String, productID: String, displayName: String, quantity: Int64, unitPrice: Money, promotions: [Tote_V1_AppliedPromotion] = [], tax: Money, locationID: String, reservationID: String) {
            self.lineID = lineID
            self.sku = sku
            self.productID = productID
            self.displayName = displayName
            self.quantity = quantity
            self.unitPrice = unitPrice
            self.promotions = promotions
            self.tax = tax
            self.locationID = locationID
            self.reservationID = reservationID
        }
    }

    /// Creates an order from a READY checkout after its stock was reserved. The decider computes each
    /// line's subtotal, discount and total from `unitPrice × quantity` and the promotions, and checks
    /// that `totals` add up (subtotal = Σ line subtotals; total = subtotal − discount + shipping
    /// (+ tax when tax-exclusive); total ≥ 0; every amount in `currency`).
    public struct PlaceOrder: Sendable, Equatable {
        public var orderID: String
        /// Human-friendly number, e.g. `T-100234`, allocated by the service.
        public var orderNumber: String
        /// Empty for a guest order.
        public var customerID: String
        public var email: String
        /// ISO 4217 code of every amount.
        public var currency: String
        public var lines: [PlaceOrderLine]
        /// Promotions on the whole order or its shipping.
        public var orderPromotions: [Tote_V1_AppliedPromotion]
        /// The checkout's totals.
        public var totals: Tote_V1_Totals
        public var shippingAddress: Tote_V1_Address
        public var billingAddress: Tote_V1_Address
        public var shippingOptionLabel: String
        public var checkoutID: String
        /// The payment started for it, if any (empty otherwise).
        public var paymentID: String
        /// When the reservations lapse unless the order is paid (microseconds since the epoch).
        public var reservationsExpireAtMicros: Int64

        public init(orderID: String, orderNumber: String, customerID: String, email: String, currency: String, lines: [PlaceOrderLine], orderPromotions: [Tote_V1_AppliedPromotion] = [], totals: Tote_V1_Totals, shippingAddress: Tote_V1_Address, billingAddress: Tote_V1_Address, shippingOptionLabel: String, checkoutID: String, paymentID: String = "", reservationsExpireAtMicros: Int64) {
            self.orderID = orderID
            self.orderNumber = orderNumber
            self.customerID = customerID
            self.email = email
            self.currency = currency
            self.lines = lines
            self.orderPromotions = orderPromotions
            self.totals = totals
            self.shippingAddress = shippingAddress
            self.billingAddress = billingAddress
            self.shippingOptionLabel = shippingOptionLabel
            self.checkoutID = checkoutID
            self.paymentID = paymentID
            self.reservationsExpireAtMicros = reservationsExpireAtMicros
        }
    }

    /// Records the hand-over of a packed order to a carrier.
    public struct MarkShipped: Sendable, Equatable {
        public var carrier: String
        public var trackingNumber: String
        /// Empty if none.
        public var trackingURL: String
        /// When it was handed over; 0 = the command's time.
        public var shippedAtMicros: Int64
        /// May be empty.
        public var reason: String

        public init(carrier: String, trackingNumber: String, trackingURL: String = "", shippedAtMicros: Int64 = 0, reason: String = "") {
            self.carrier = carrier
            self.trackingNumber = trackingNumber
            self.trackingURL = trackingURL
            self.shippedAtMicros = shippedAtMicros
            self.reason = reason
        }
    }

    /// Units of one line to refund.
    public struct RefundOrderLine: Sendable, Equatable {
        /// `OrderLine.line_id`.
        public var lineID: String
        /// At most the line's units not yet refunded.
        public var quantity: Int64

        public init(lineID: String, quantity: Int64) {
            self.lineID = lineID
            self.quantity = quantity
        }
    }

    /// Refunds an order: everything not yet refunded (`full`), or lines and/or an extra amount. A
    /// line's units are refunded at their share of what was paid (see ``OrderDecider/paidShares(_:)``).
    /// Never more than paid minus already refunded.
    public struct RefundOrder: Sendable, Equatable {
        /// Tote-assigned refund id, chosen by the service: the idempotency key (a repeat is a no-op).
        public var refundID: String
        /// Refund everything not yet refunded; `lines` and `amount` must then be empty.
        public var full: Bool
        public var lines: [RefundOrderLine]
        /// An amount not tied to lines (shipping, goodwill) in the order's currency; nil = none.
        public var amount: Money?
        /// Put the refunded lines' units back into stock.
        public var restock: Bool
        /// Required.
        public var reason: String

        public init(refundID: String, full: Bool = false, lines: [RefundOrderLine] = [], amount: Money? = nil, restock: Bool = false, reason: String) {
            self.refundID = refundID
            self.full = full
            self.lines = lines
            self.amount = amount
            self.restock = restock
            self.reason = reason
        }
    }
}
