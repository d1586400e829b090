import ToteAPI
import ToteCommands

/// The commerce command services a Tote command node serves, over one command runner (one
/// event store). `tote serve` and the integration tests register them the same way.
public struct CommerceServices: RPCService, Sendable {
    public let commands: CommandSupport

    public init(runner: CommandRunner) {
        commands = CommandSupport(runner: runner)
    }

    /// The services registered, for health reporting.
    public static let serviceNames = [APIServices.catalog.name, APIServices.inventory.name]

    public func register(into router: inout RPCRouter) {
        CatalogService(commands: commands).register(into: &router)
        InventoryService(commands: commands).register(into: &router)
    }
}
