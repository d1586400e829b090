// Method descriptors of the commerce command services (Protos/tote/v1/{catalog,inventory,cart,checkout,order,payment}.proto).
// Roles: the service's roles from `APIServices`, narrowed per method where an operator-only action sits in a
// service storefronts may call.

/// tote.v1.Catalog methods.
public enum CatalogAPI {
    public static let createProduct = MethodDescriptor<Tote_V1_CreateProductRequest, Tote_V1_CreateProductResponse>(
        service: APIServices.catalog, name: "CreateProduct", kind: .unary)
    public static let updateProduct = MethodDescriptor<Tote_V1_UpdateProductRequest, Tote_V1_UpdateProductResponse>(
        service: APIServices.catalog, name: "UpdateProduct", kind: .unary)
    public static let addVariant = MethodDescriptor<Tote_V1_AddVariantRequest, Tote_V1_AddVariantResponse>(
        service: APIServices.catalog, name: "AddVariant", kind: .unary)
    public static let setPrices = MethodDescriptor<Tote_V1_SetPricesRequest, Tote_V1_SetPricesResponse>(
        service: APIServices.catalog, name: "SetPrices", kind: .unary)
    public static let publishProduct = MethodDescriptor<Tote_V1_PublishProductRequest, Tote_V1_PublishProductResponse>(
        service: APIServices.catalog, name: "PublishProduct", kind: .unary)
    public static let archiveProduct = MethodDescriptor<Tote_V1_ArchiveProductRequest, Tote_V1_ArchiveProductResponse>(
        service: APIServices.catalog, name: "ArchiveProduct", kind: .unary)
    public static let createCategory = MethodDescriptor<Tote_V1_CreateCategoryRequest, Tote_V1_CreateCategoryResponse>(
        service: APIServices.catalog, name: "CreateCategory", kind: .unary)
    public static let moveCategory = MethodDescriptor<Tote_V1_MoveCategoryRequest, Tote_V1_MoveCategoryResponse>(
        service: APIServices.catalog, name: "MoveCategory", kind: .unary)
    public static let createPriceList = MethodDescriptor<Tote_V1_CreatePriceListRequest, Tote_V1_CreatePriceListResponse>(
        service: APIServices.catalog, name: "CreatePriceList", kind: .unary)
}

/// tote.v1.Inventory methods.
public enum InventoryAPI {
    public static let receiveStock = MethodDescriptor<Tote_V1_ReceiveStockRequest, Tote_V1_ReceiveStockResponse>(
        service: APIServices.inventory, name: "ReceiveStock", kind: .unary)
    public static let adjustStock = MethodDescriptor<Tote_V1_AdjustStockRequest, Tote_V1_AdjustStockResponse>(
        service: APIServices.inventory, name: "AdjustStock", kind: .unary)
    public static let reserveStock = MethodDescriptor<Tote_V1_ReserveStockRequest, Tote_V1_ReserveStockResponse>(
        service: APIServices.inventory, name: "ReserveStock", kind: .unary)
    public static let extendReservation = MethodDescriptor<Tote_V1_ExtendReservationRequest, Tote_V1_ExtendReservationResponse>(
        service: APIServices.inventory, name: "ExtendReservation", kind: .unary)
    public static let releaseReservation = MethodDescriptor<Tote_V1_ReleaseReservationRequest, Tote_V1_ReleaseReservationResponse>(
        service: APIServices.inventory, name: "ReleaseReservation", kind: .unary)
    public static let commitReservation = MethodDescriptor<Tote_V1_CommitReservationRequest, Tote_V1_CommitReservationResponse>(
        service: APIServices.inventory, name: "CommitReservation", kind: .unary)
    public static let getStock = MethodDescriptor<Tote_V1_GetStockRequest, Tote_V1_GetStockResponse>(
        service: APIServices.inventory, name: "GetStock", kind: .unary, roles: [.operator, .storefront])
}

/// tote.v1.Cart methods.
public enum CartAPI {
    public static let createCart = MethodDescriptor<Tote_V1_CreateCartRequest, Tote_V1_CreateCartResponse>(
        service: APIServices.cart, name: "CreateCart", kind: .unary)
    public static let addLine = MethodDescriptor<Tote_V1_AddLineRequest, Tote_V1_AddLineResponse>(
        service: APIServices.cart, name: "AddLine", kind: .unary)
    public static let changeLineQuantity = MethodDescriptor<Tote_V1_ChangeLineQuantityRequest, Tote_V1_ChangeLineQuantityResponse>(
        service: APIServices.cart, name: "ChangeLineQuantity", kind: .unary)
    public static let removeLine = MethodDescriptor<Tote_V1_RemoveLineRequest, Tote_V1_RemoveLineResponse>(
        service: APIServices.cart, name: "RemoveLine", kind: .unary)
    public static let applyCoupon = MethodDescriptor<Tote_V1_ApplyCouponRequest, Tote_V1_ApplyCouponResponse>(
        service: APIServices.cart, name: "ApplyCoupon", kind: .unary)
    public static let removeCoupon = MethodDescriptor<Tote_V1_RemoveCouponRequest, Tote_V1_RemoveCouponResponse>(
        service: APIServices.cart, name: "RemoveCoupon", kind: .unary)
    public static let mergeCarts = MethodDescriptor<Tote_V1_MergeCartsRequest, Tote_V1_MergeCartsResponse>(
        service: APIServices.cart, name: "MergeCarts", kind: .unary)
    public static let getCart = MethodDescriptor<Tote_V1_GetCartRequest, Tote_V1_CartView>(
        service: APIServices.cart, name: "GetCart", kind: .unary)
}

/// tote.v1.Checkout methods.
public enum CheckoutAPI {
    public static let startCheckout = MethodDescriptor<Tote_V1_StartCheckoutRequest, Tote_V1_StartCheckoutResponse>(
        service: APIServices.checkout, name: "StartCheckout", kind: .unary)
    public static let setShippingAddress = MethodDescriptor<Tote_V1_SetShippingAddressRequest, Tote_V1_SetShippingAddressResponse>(
        service: APIServices.checkout, name: "SetShippingAddress", kind: .unary)
    public static let setBillingAddress = MethodDescriptor<Tote_V1_SetBillingAddressRequest, Tote_V1_SetBillingAddressResponse>(
        service: APIServices.checkout, name: "SetBillingAddress", kind: .unary)
    public static let chooseShippingOption = MethodDescriptor<Tote_V1_ChooseShippingOptionRequest, Tote_V1_ChooseShippingOptionResponse>(
        service: APIServices.checkout, name: "ChooseShippingOption", kind: .unary)
    public static let choosePaymentMethod = MethodDescriptor<Tote_V1_ChoosePaymentMethodRequest, Tote_V1_ChoosePaymentMethodResponse>(
        service: APIServices.checkout, name: "ChoosePaymentMethod", kind: .unary)
    public static let placeOrder = MethodDescriptor<Tote_V1_PlaceOrderRequest, Tote_V1_PlaceOrderResponse>(
        service: APIServices.checkout, name: "PlaceOrder", kind: .unary)
    public static let getCheckout = MethodDescriptor<Tote_V1_GetCheckoutRequest, Tote_V1_CheckoutView>(
        service: APIServices.checkout, name: "GetCheckout", kind: .unary)
}

/// tote.v1.Orders methods.
public enum OrdersAPI {
    public static let getOrder = MethodDescriptor<Tote_V1_GetOrderRequest, Tote_V1_OrderView>(
        service: APIServices.orders, name: "GetOrder", kind: .unary)
    public static let listCustomerOrders = MethodDescriptor<Tote_V1_ListCustomerOrdersRequest, Tote_V1_ListCustomerOrdersResponse>(
        service: APIServices.orders, name: "ListCustomerOrders", kind: .unary)
    public static let cancelOrder = MethodDescriptor<Tote_V1_CancelOrderRequest, Tote_V1_CancelOrderResponse>(
        service: APIServices.orders, name: "CancelOrder", kind: .unary)
    public static let refundOrder = MethodDescriptor<Tote_V1_RefundOrderRequest, Tote_V1_RefundOrderResponse>(
        service: APIServices.orders, name: "RefundOrder", kind: .unary, roles: [.operator])
    public static let markShipped = MethodDescriptor<Tote_V1_MarkShippedRequest, Tote_V1_MarkShippedResponse>(
        service: APIServices.orders, name: "MarkShipped", kind: .unary, roles: [.operator])
    public static let markDelivered = MethodDescriptor<Tote_V1_MarkDeliveredRequest, Tote_V1_MarkDeliveredResponse>(
        service: APIServices.orders, name: "MarkDelivered", kind: .unary, roles: [.operator])
}

/// tote.v1.Payments methods.
public enum PaymentsAPI {
    public static let authorizePayment = MethodDescriptor<Tote_V1_AuthorizePaymentRequest, Tote_V1_AuthorizePaymentResponse>(
        service: APIServices.payments, name: "AuthorizePayment", kind: .unary)
    public static let capturePayment = MethodDescriptor<Tote_V1_CapturePaymentRequest, Tote_V1_CapturePaymentResponse>(
        service: APIServices.payments, name: "CapturePayment", kind: .unary, roles: [.operator])
    public static let refundPayment = MethodDescriptor<Tote_V1_RefundPaymentRequest, Tote_V1_RefundPaymentResponse>(
        service: APIServices.payments, name: "RefundPayment", kind: .unary, roles: [.operator])
    public static let providerWebhook = MethodDescriptor<Tote_V1_ProviderWebhookRequest, Tote_V1_ProviderWebhookResponse>(
        service: APIServices.payments, name: "ProviderWebhook", kind: .unary)
}
