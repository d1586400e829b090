import EventStore
import Foundation
import LMDB
import Logging
import ToteAPI
import ToteReadModels

/// The read side of one node: the projections, their LMDB environments in a folder, the
/// projector that keeps them current (when this process writes them), and the query service that
/// answers from them. `tote serve` and `tote dev` run both; `tote project` only the projector;
/// `tote query` only the queries, read-only.
public struct ReadSide: Sendable {
    /// Every read model Tote builds.
    public static var projections: [any Projection] { [CatalogProjection(), AutocompleteProjection(), OrderViewsProjection(), StorefrontProjection()] }

    public let directory: ReadModelDirectory
    /// The projector, when this process writes the read models.
    public let projector: ProjectorRunner?

    /// The most events per LMDB write transaction while the projector is far behind the log
    /// (batches grow from `batchSize` up to this; see `BatchPlanner`).
    public static let defaultMaxBatchSize = 16_384

    /// Opens (creating if needed) the read models under `folder`; with an event store, also the
    /// projector that feeds them, applying up to `batchSize` events per LMDB write transaction
    /// once caught up, and batches growing up to `maxBatchSize` while far behind.
    public init(folder: String, eventStore: EventStore?, batchSize: Int = 1000, maxBatchSize: Int? = nil, logger: Logger = Logger(label: "tote.projector")) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        // Without an event store this process only reads (`tote query`): LMDB opened read-only.
        var configuration = Environment.Configuration()
        configuration.readOnly = eventStore == nil
        let directory = try ReadModelDirectory(root: folder, projections: Self.projections, configuration: configuration)
        self.directory = directory
        let maxBatchSize = maxBatchSize ?? max(batchSize, Self.defaultMaxBatchSize)
        projector = try eventStore.map { try ProjectorRunner(projections: Self.projections, eventStore: $0, directory: directory, batchSize: batchSize, maxBatchSize: maxBatchSize, logger: logger) }
    }

    /// The query service over these read models; a query with a consistency token wakes as soon
    /// as the in-process projector commits past it.
    public var queryService: QueryService {
        let search: CatalogQueryHandlers.Handler<Tote_V1_SearchCatalogRequest, Tote_V1_SearchCatalogResponse> = { reader, request in
            try CatalogQuery.search(reader, request: request)
        }
        var wait: (@Sendable (LogPosition, Duration) async -> Void)?
        if let watch = projector?.watch {
            wait = { token, timeout in _ = await watch.wait(until: token, timeout: timeout) }
        }
        var catalog = CatalogQueryHandlers(searchCatalog: search)
        // The page's product summaries are copied from the stored bytes, not decoded and re-encoded.
        catalog.searchCatalogEncoded = { reader, request in try CatalogQuery.searchEncoded(reader, request: request) }
        // The common answer is a slice of one stored value, sent without decoding.
        catalog.autocompleteEncoded = { reader, request in try Autocomplete.suggestEncoded(reader, request: request) }
        return QueryService(source: directory, catalog: catalog, waitForAdvance: wait)
    }

    /// Builds a fresh generation from position zero beside the live one and switches the query
    /// side to it once it has caught up (`tote project --rebuild`). Returns the new generation.
    public func rebuild(eventStore: EventStore, batchSize: Int = 1000, maxBatchSize: Int? = nil, logger: Logger = Logger(label: "tote.projector.rebuild")) async throws -> String {
        try await ProjectorRunner.rebuild(projections: Self.projections, eventStore: eventStore, directory: directory, batchSize: batchSize, maxBatchSize: maxBatchSize ?? max(batchSize, Self.defaultMaxBatchSize), logger: logger)
    }
}
