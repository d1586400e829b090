import EventStore
import Foundation
import ToteReadModels

/// The demo catalog `tote dev` loads on its first start: the deterministic ``CatalogGenerator``'s
/// category tree and products (options, variants, typed attributes, prices in EUR and USD,
/// mostly published) with stock at the demo store's two locations — written to the event log as
/// the events the catalog and inventory deciders would have recorded, in batches, so that a fresh
/// installation has a shop to browse and buy from within seconds.
enum DevDemo {
    /// The stream whose existence says the demo catalog is loaded.
    static let marker = "demo-catalog"
    /// Generator seed: the same demo shop on every machine.
    static let seed: UInt64 = 2026

    /// Loads `products` products unless the log already has the demo catalog. Returns the number
    /// of events written (0 when it was already there).
    static func loadIfNeeded(into store: EventStore, products: Int, locations: [String], progress: (String) -> Void) async throws -> Int {
        guard products > 0, try await store.streamVersion(marker) == nil else { return 0 }
        let metadata = EventMetadata(actorID: "demo-loader", actorRole: "system", correlationID: "demo-catalog")
        var batch: [(stream: String, event: NewEvent)] = []
        var written = 0
        func flush() async throws {
            guard !batch.isEmpty else { return }
            // One part per stream, its events in order; a stream may continue in the next batch.
            var order: [String] = []
            var events: [String: [NewEvent]] = [:]
            for (stream, event) in batch {
                if events[stream] == nil { order.append(stream) }
                events[stream, default: []].append(event)
            }
            let appends = order.map { StreamAppend(stream: $0, expectedVersion: .any, events: events[$0]!) }
            _ = try await store.append(commands: [CommandAppend(commandID: nil, appends: appends)])
            written += batch.count
            batch.removeAll(keepingCapacity: true)
        }
        let generator = CatalogGenerator(seed: seed, locations: locations)
        var generated: [GeneratedEvent] = []
        generator.forEachEvent(products: products) { generated.append($0) }
        for event in generated {
            batch.append((event.stream, NewEvent(eventID: event.eventID, type: event.type, data: event.data, metadata: metadata)))
            if batch.count >= 2000 {
                try await flush()
                if written % 20_000 < 2000 { progress("dev: demo catalog: \(written) of \(generated.count) events") }
            }
        }
        try await flush()
        let done = NewEvent(type: "DemoCatalogLoaded", data: Array("{\"products\":\(products),\"seed\":\(seed)}".utf8), metadata: metadata)
        _ = try await store.append(to: marker, expectedVersion: .noStream, events: [done])
        return written + 1
    }

    /// A SKU of the demo catalog a shopper can buy: the first one whose product is published
    /// (not archived) and that has stock received at one of `locations`; what the start-up
    /// banner's purchase example uses. Nil when the catalog has none (e.g. no products).
    static func sellableSKU(products: Int, locations: [String]) -> String? {
        struct Found: Error { let sku: String }
        var published = false, archived = false
        do {
            try CatalogGenerator(seed: seed, locations: locations).forEachEvent(products: products) { event in
                switch event.type {
                case "ProductCreated": (published, archived) = (false, false)
                case "ProductPublished": published = true
                case "ProductArchived": archived = true
                case "StockReceived" where published && !archived:
                    // Stream `stock-<sku>@<location>`; every stock event of a product follows its
                    // publication and archiving.
                    let key = event.stream.dropFirst("stock-".count)
                    if let at = key.lastIndex(of: "@"), locations.contains(String(key[key.index(after: at)...])) {
                        throw Found(sku: String(key[..<at]))
                    }
                default: break
                }
            }
        } catch let found as Found {
            return found.sku
        } catch {}
        return nil
    }
}
