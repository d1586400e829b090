@_exported import ToteProto
@_exported import ToteRPC

/// Every Tote service with the roles allowed to call it: the access policy in one table.
///
/// Servers enforce it; clients and docs read it. docs/PROTOCOL.md lists the same table.
public enum APIServices {
    public static let health = ServiceDescriptor(name: "tote.v1.Health", roles: Set(Role.allCases))
    public static let diagnostics = ServiceDescriptor(name: "tote.v1.Diagnostics", roles: Set(Role.allCases))
    public static let catalog = ServiceDescriptor(name: "tote.v1.Catalog", roles: [.operator])
    public static let inventory = ServiceDescriptor(name: "tote.v1.Inventory", roles: [.operator])
    public static let cart = ServiceDescriptor(name: "tote.v1.Cart", roles: [.storefront, .operator])
    public static let checkout = ServiceDescriptor(name: "tote.v1.Checkout", roles: [.storefront, .operator])
    public static let orders = ServiceDescriptor(name: "tote.v1.Orders", roles: [.storefront, .operator])
    public static let payments = ServiceDescriptor(name: "tote.v1.Payments", roles: [.storefront, .operator])
    public static let query = ServiceDescriptor(name: "tote.v1.Query", roles: [.storefront, .operator])
    public static let automation = ServiceDescriptor(name: "tote.v1.Automation", roles: [.controller])
    public static let operations = ServiceDescriptor(name: "tote.v1.Operations", roles: [.operator])
    public static let promotions = ServiceDescriptor(name: "tote.v1.Promotions", roles: [.operator])

    public static let all: [ServiceDescriptor] = [
        health, diagnostics, catalog, inventory, cart, checkout, orders, payments, query, automation, operations,
        promotions,
    ]
}

/// tote.v1.Health methods.
public enum Health {
    public static let check = MethodDescriptor<Tote_V1_HealthCheckRequest, Tote_V1_HealthCheckResponse>(
        service: APIServices.health, name: "Check", kind: .unary)
    public static let watch = MethodDescriptor<Tote_V1_HealthCheckRequest, Tote_V1_HealthCheckResponse>(
        service: APIServices.health, name: "Watch", kind: .serverStreaming)
}

/// tote.v1.Diagnostics methods.
public enum Diagnostics {
    public static let echo = MethodDescriptor<Tote_V1_EchoRequest, Tote_V1_EchoResponse>(
        service: APIServices.diagnostics, name: "Echo", kind: .unary)
    public static let expand = MethodDescriptor<Tote_V1_ExpandRequest, Tote_V1_EchoResponse>(
        service: APIServices.diagnostics, name: "Expand", kind: .serverStreaming)
    public static let collect = MethodDescriptor<Tote_V1_EchoRequest, Tote_V1_CollectResponse>(
        service: APIServices.diagnostics, name: "Collect", kind: .clientStreaming)
    public static let chat = MethodDescriptor<Tote_V1_EchoRequest, Tote_V1_EchoResponse>(
        service: APIServices.diagnostics, name: "Chat", kind: .bidirectionalStreaming)
}
