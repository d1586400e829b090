import BenchSupport
import EventStore
import Foundation
import LMDB
import Logging
import ToteReadModels
import ToteServices

/// `--apply-only`: what the projections cost by themselves, with no PostgreSQL. The generated log
/// is held in memory as the store would deliver it and applied the way the projector applies a
/// batch (``LMDBReadModelStore/apply(_:projections:after:durability:stagingThreads:logger:)``:
/// one LMDB write transaction per batch that also stores the cursors, the projections staged
/// side by side unless `TOTE_STAGING_THREADS=1`, deferred commits but every 16th), in batches of
/// `--max-batch-size`: first all projections together into a fresh environment, then each alone
/// into its own. Reports events per second and the applying thread's CPU per event, and, where the
/// catalog was applied, the facet queries' CPU in process (``Facets/timeInProcess(_:calls:label:)``). For profiling
/// (`perf record`) and iterating on projections; the catch-up figure of record still reads the log
/// from PostgreSQL.
enum ApplyOnly {
    static func run(_ options: ReadSideBench.Options, folder: String) async throws {
        var events: [GeneratedEvent] = []
        CatalogGenerator(seed: options.seed).forEachEvent(products: options.products, orders: options.orders) { events.append($0) }
        let log = recordedLog(events)
        // The log's mix: what each projection's per-event figure is spread over.
        let census = Dictionary(grouping: events, by: \.type).mapValues(\.count).sorted { ($1.value, $0.key) < ($0.value, $1.key) }
        print("apply-only: events by type: " + census.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        events = []
        let batch = max(1, options.maxBatchSize)
        print("apply-only: \(log.count) events (\(options.products) products, \(options.orders) orders) in memory, batches of \(batch); loadavg(1m) \(formatFixed(loadAverage(), 2))")
        var rows: [String] = []
        var logger = Logger(label: "readside-bench-apply")
        logger.logLevel = .warning
        // TOTE_STAGING_THREADS=1 measures the projections applied in turn inside the transaction.
        let stagingThreads = ProcessInfo.processInfo.environment["TOTE_STAGING_THREADS"].flatMap(Int.init) ?? ProcessInfo.processInfo.activeProcessorCount
        print("apply-only: staging threads \(stagingThreads)")
        var sets: [(String, [any Projection])] = [("all \(ReadSide.projections.count) projections", ReadSide.projections)]
            + ReadSide.projections.map { ("\($0.name) alone", [$0]) }
        if let only = options.projection {
            sets = only == "all" ? [sets[0]] : sets.filter { $0.1.count == 1 && $0.1[0].name == only }
            guard !sets.isEmpty else { throw BenchError("no projection named \(only) (all, \(ReadSide.projections.map(\.name).joined(separator: ", ")))") }
        }
        for (index, (label, projections)) in sets.enumerated() {
            let path = folder + "-apply-\(index)"
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: path) }
            let store = try LMDBReadModelStore(path: path, projections: projections)
            let cpu = processCPUSeconds()
            let start = monotonicNanoseconds()
            var commits = 0
            for first in stride(from: 0, to: log.count, by: batch) {
                let slice = Array(log[first..<min(first + batch, log.count)])
                commits += 1
                let durability: Writer.Durability = commits % 16 == 0 || first + batch >= log.count ? .synced : .deferred
                try await store.apply(slice, projections: projections, durability: durability, stagingThreads: stagingThreads, logger: logger)
            }
            let seconds = Double(monotonicNanoseconds() - start) / 1e9
            let perEvent = (processCPUSeconds() - cpu) * 1e6 / Double(log.count)
            if projections.contains(where: { $0.name == CatalogProjection().name }) {
                try Facets.timeInProcess(store, calls: options.facetCalls, label: label)
            }
            if projections.contains(where: { $0.name == AutocompleteProjection().name }) {
                try PointReads.timeAutocompleteInProcess(store, seed: options.seed, label: label)
            }
            await store.shutdown()
            print("apply-only, \(label): \(formatFixed(Double(log.count) / seconds, 0)) events/s (\(formatFixed(seconds, 2)) s), process CPU \(formatFixed(perEvent, 2)) µs/event; loadavg(1m) \(formatFixed(loadAverage(), 2))")
            rows.append("| \(label) | \(log.count) | \(formatFixed(seconds, 2)) s | \(formatFixed(Double(log.count) / seconds, 0)) events/s | \(formatFixed(perEvent, 2)) µs |")
        }
        print("""

            ## Apply only (no PostgreSQL; batches of \(batch); loadavg(1m) at end: \(formatFixed(loadAverage(), 2)))

            | projections | events | time | rate | process CPU per event |
            |---|--:|--:|--:|--:|
            \(rows.joined(separator: "\n"))
            """)
    }
}
