import SwiftProtobuf
import ToteProto

/// The four shapes of call, as in gRPC.
public enum CallKind: Sendable, Hashable {
    case unary
    case serverStreaming
    case clientStreaming
    case bidirectionalStreaming

    /// Whether the client sends a stream of requests rather than exactly one.
    public var clientStreams: Bool { self == .clientStreaming || self == .bidirectionalStreaming }
    /// Whether the server sends a stream of responses rather than exactly one.
    public var serverStreams: Bool { self == .serverStreaming || self == .bidirectionalStreaming }
}

/// The kind of client an API key belongs to; a role reaches only the services granted to it.
public enum Role: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Frontend BFFs.
    case storefront
    /// Admin tools and operations staff.
    case `operator`
    /// Warehouse hardware controllers.
    case controller

    public var description: String { rawValue }

    /// The protobuf enum value for this role.
    public var proto: Tote_V1_Role {
        switch self {
        case .storefront: .storefront
        case .operator: .operator
        case .controller: .controller
        }
    }
}

/// A service: its fully qualified name and the roles allowed to call it.
///
/// Declared once (in `ToteAPI`) and shared by servers, which enforce `roles`, and clients.
public struct ServiceDescriptor: Sendable, Hashable {
    /// Fully qualified protobuf service name, e.g. "tote.v1.Health".
    public let name: String
    /// Roles whose API keys may call this service's methods.
    public let roles: Set<Role>

    public init(name: String, roles: Set<Role>) {
        self.name = name
        self.roles = roles
    }
}

/// One RPC method: its service, name, call kind and message types.
///
/// The single source of truth for a method, used by both ``RPCRouter`` (server) and
/// ``ClientConnection`` (client), so a method name is never spelled twice.
public struct MethodDescriptor<Request: SwiftProtobuf.Message & Sendable, Response: SwiftProtobuf.Message & Sendable>: Sendable, Hashable {
    public let service: ServiceDescriptor
    /// The method's own name, e.g. "Check".
    public let name: String
    public let kind: CallKind
    /// Roles allowed to call this method: the service's, unless the method narrows them (for
    /// example an operator-only method on a service storefronts may otherwise call).
    public let roles: Set<Role>

    public init(service: ServiceDescriptor, name: String, kind: CallKind, roles: Set<Role>? = nil) {
        self.service = service
        self.name = name
        self.kind = kind
        self.roles = roles ?? service.roles
    }

    /// The name sent on the wire: "tote.v1.Health/Check".
    public var fullName: String { "\(service.name)/\(name)" }
}
