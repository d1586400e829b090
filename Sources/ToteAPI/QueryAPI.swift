// Method descriptors of the read-side query service (Protos/tote/v1/query.proto). Storefronts and
// operators may call it; ListOrdersByState is operator only.

/// tote.v1.Query methods.
public enum QueryAPI {
    public static let searchCatalog = MethodDescriptor<Tote_V1_SearchCatalogRequest, Tote_V1_SearchCatalogResponse>(
        service: APIServices.query, name: "SearchCatalog", kind: .unary)
    public static let autocomplete = MethodDescriptor<Tote_V1_AutocompleteRequest, Tote_V1_AutocompleteResponse>(
        service: APIServices.query, name: "Autocomplete", kind: .unary)
    public static let getProduct = MethodDescriptor<Tote_V1_GetProductRequest, Tote_V1_Product>(
        service: APIServices.query, name: "GetProduct", kind: .unary)
    public static let getCategoryTree = MethodDescriptor<Tote_V1_GetCategoryTreeRequest, Tote_V1_GetCategoryTreeResponse>(
        service: APIServices.query, name: "GetCategoryTree", kind: .unary)
    public static let getOrderView = MethodDescriptor<Tote_V1_GetOrderViewRequest, Tote_V1_OrderView>(
        service: APIServices.query, name: "GetOrderView", kind: .unary)
    public static let listCustomerOrders = MethodDescriptor<Tote_V1_ListCustomerOrdersRequest, Tote_V1_ListCustomerOrdersResponse>(
        service: APIServices.query, name: "ListCustomerOrders", kind: .unary)
    public static let listOrdersByState = MethodDescriptor<Tote_V1_ListOrdersByStateRequest, Tote_V1_ListOrdersByStateResponse>(
        service: APIServices.query, name: "ListOrdersByState", kind: .unary, roles: [.operator])

    /// Every method of the service.
    public static let methodNames = [
        searchCatalog.fullName, autocomplete.fullName, getProduct.fullName, getCategoryTree.fullName,
        getOrderView.fullName, listCustomerOrders.fullName, listOrdersByState.fullName,
    ]
}
