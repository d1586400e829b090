/// Stream names in the event log, one place: `<aggregate>-<id>`.
public enum StreamName {
    public static func product(_ id: String) -> String { "product-\(id)" }
    public static func category(_ id: String) -> String { "category-\(id)" }
    public static func priceList(_ id: String) -> String { "pricelist-\(id)" }
    /// A stock item: one SKU at one location.
    public static func stockItem(sku: String, location: String) -> String { "stock-\(sku)@\(location)" }
    public static func cart(_ id: String) -> String { "cart-\(id)" }
    public static func checkout(_ id: String) -> String { "checkout-\(id)" }
    public static func order(_ id: String) -> String { "order-\(id)" }
    public static func payment(_ id: String) -> String { "payment-\(id)" }
    /// Unique index streams: a stream whose existence claims a key (a SKU, a coupon code).
    public static func skuClaim(_ sku: String) -> String { "sku-\(sku)" }
}
