import Foundation
import LMDB
import Logging
import Testing
import ToteServices
@testable import EventStore
@testable import ToteReadModels

/// Projections staged side by side (StagedApply.swift) must give exactly the bytes of applying
/// them in turn inside the write transaction.
@Suite("Staged batches: projections side by side")
struct StagedApplyTests {
    static let logger = Logger(label: "test.staged")

    /// A projection owning databases `alpha` and `beta` whose batches are given as operations:
    /// it stands for any projection when the staging writer is checked against the classic one.
    struct OpsProjection: Projection {
        let name = "ops"
        var databases: [String] { StoreWriteOverlayTests.names }
        func apply(_ event: RecordedEvent, to store: inout some ReadModelWriter) throws {}
    }

    /// A projection that fails on the event of type "boom".
    struct FailingProjection: Projection {
        let name = "failing"
        var databases: [String] { ["failing"] }
        struct Boom: Error {}
        func apply(_ event: RecordedEvent, to store: inout some ReadModelWriter) throws {
            if event.type == "boom" { throw Boom() }
            try store.put("failing", Array(event.stream.utf8), [1])
        }
    }

    /// Runs `ops` through a staging writer over a snapshot of `store`; returns what each read saw
    /// and the staged changes.
    static func stage(_ ops: [StoreWriteOverlayTests.Op], on store: LMDBReadModelStore) throws -> ([StoreWriteOverlayTests.Seen], StagedChanges) {
        let handles = try store.databaseHandles()
        let changes = StagedChanges()
        let seen = try store.environment.read { txn in
            try withUnsafePointer(to: txn) { pointer in
                var writer = StagingWriter(snapshot: LMDBReadModelReader(transaction: pointer, handles: handles), changes: changes, path: store.path)
                return try StoreWriteOverlayTests.run(&writer, ops) + Self.boundedScans(&writer, ops)
            }
        }
        return (seen, changes)
    }

    /// Scans from a start key under a prefix, both ways, stopped after three entries: the merge
    /// of staged and stored keys must stop, skip and bound exactly as LMDB's scan does.
    static func boundedScans(_ reader: inout some ReadModelWriter, _ ops: [StoreWriteOverlayTests.Op]) throws -> [StoreWriteOverlayTests.Seen] {
        var seen: [StoreWriteOverlayTests.Seen] = []
        for op in ops.prefix(40) {
            for reverse in [false, true] {
                var keys: [[UInt8]] = []
                try reader.scan(op.database, prefix: Array(op.key.prefix(1)), from: op.key, reverse: reverse) { k, v in
                    keys.append(Array(k) + [0xEE] + Array(v))
                    return keys.count < 3
                }
                seen.append(.entries(keys))
            }
        }
        return seen
    }

    @Test("a staging writer reads, scans and writes over its snapshot as the write transaction does over the same state")
    func stagingWriterMatchesTheMemoryStore() async throws {
        let folder = LMDBTestFolder()
        let store = try LMDBReadModelStore(path: folder.path, projections: [OpsProjection()], configuration: .init(noSync: true))
        var random = LMDBTestRandom(state: 11)
        let alphabet: [UInt8] = [0x00, 0x61, 0x62, 0xFF]
        var ops: [StoreWriteOverlayTests.Op] = []
        for _ in 0..<4000 {
            // Up to 340 keys a database: enough for the staged key index to merge during scans.
            let key = (0..<Int.random(in: 1...4, using: &random)).map { _ in alphabet.randomElement(using: &random)! }
            let value = (0..<Int.random(in: 0...6, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            ops.append(.init(kind: Int.random(in: 0...5, using: &random), database: StoreWriteOverlayTests.names.randomElement(using: &random)!, key: key, value: value))
        }
        var memory = MemoryStore()
        var cursor = LogPosition.start
        for (index, chunk) in stride(from: 0, to: ops.count, by: 1000).enumerated() {
            let part = Array(ops[chunk..<min(chunk + 1000, ops.count)])
            let expected = try StoreWriteOverlayTests.run(&memory, part) + Self.boundedScans(&memory, part)
            let (got, changes) = try Self.stage(part, on: store)
            #expect(got == expected, "batch starting at op \(chunk)")
            // The writer copies the staged changes into the transaction.
            let staged = StagedBatch(projection: OpsProjection(), cursor: cursor, changes: changes)
            let last = LogPosition(transactionID: UInt64(index + 1), globalPosition: Int64(index + 1))
            try await store.write { writer in try writer.commit(staged, last: last) }
            cursor = last
        }
        #expect(try store.snapshot() == memory)
        await store.shutdown()
    }

    /// The 2,000-product fixture with its orders, as the log delivers it.
    static let log = recordedLog(GeneratedFixture.events)

    /// Applies `log` in batches of `batch` through the store's batch path.
    static func applyAll(_ log: [RecordedEvent], to store: LMDBReadModelStore, batch: Int, threads: Int) async throws {
        for first in stride(from: 0, to: log.count, by: batch) {
            let slice = Array(log[first..<min(first + batch, log.count)])
            try await store.apply(slice, projections: ReadSide.projections, after: first == 0 ? nil : log[first - 1].position, stagingThreads: threads, logger: logger)
        }
    }

    @Test("the four projections staged side by side write the bytes and cursors of applying them in turn, whatever the batch split or map growth")
    func stagedEqualsInTurn() async throws {
        let inTurn = LMDBTestFolder(), staged = LMDBTestFolder(), stagedOtherSplit = LMDBTestFolder(), growing = LMDBTestFolder()
        let reference = try LMDBReadModelStore(path: inTurn.path, projections: ReadSide.projections, configuration: .init(noSync: true))
        try await Self.applyAll(Self.log, to: reference, batch: 1000, threads: 1)
        let expected = try reference.snapshot(includingCursors: true)
        await reference.shutdown()
        // The last store starts with a 256 KiB map: the writer, copying one projection's changes
        // while others still stage, finds it full again and again and grows it past their snapshots.
        for (folder, batch, mapSize) in [(staged, 1000, 64 << 20), (stagedOtherSplit, 4321, 64 << 20), (growing, 4321, 256 << 10)] {
            let store = try LMDBReadModelStore(path: folder.path, projections: ReadSide.projections, configuration: .init(mapSize: mapSize, noSync: true))
            try await Self.applyAll(Self.log, to: store, batch: batch, threads: 2)
            #expect(try store.snapshot(includingCursors: true) == expected, "batches of \(batch), map of \(mapSize) bytes at first")
            if mapSize < 1 << 20 { #expect(try store.environment.info().mapSize > 16 * mapSize, "the map grew") }
            // A replayed batch changes nothing: each projection skips what its cursor passed.
            try await store.apply(Array(Self.log.suffix(600)), projections: ReadSide.projections, stagingThreads: 2, logger: Self.logger)
            #expect(try store.snapshot(includingCursors: true) == expected, "replay after batches of \(batch)")
            await store.shutdown()
        }
    }

    @Test("a staged batch whose cursor moved since its snapshot is refused at the write; the store then applies it in the transaction")
    func movedCursorFallsBack() async throws {
        let folder = LMDBTestFolder()
        let store = try LMDBReadModelStore(path: folder.path, projections: ReadSide.projections, configuration: .init(noSync: true))
        let first = Array(Self.log.prefix(2000)), second = Array(Self.log[2000..<4000])
        try await store.apply(first, projections: ReadSide.projections, stagingThreads: 2, logger: Self.logger)
        let staged = try await store.stage(second, projections: ReadSide.projections, after: nil, threads: 2)
        // Another runner applies the same batch first.
        try await store.apply(second, projections: ReadSide.projections, stagingThreads: 1, logger: Self.logger)
        let before = try store.snapshot(includingCursors: true)
        await #expect(throws: StagingFallback.self) {
            try await store.write { writer in
                for one in staged { try writer.commit(one, last: second.last!.position) }
            }
        }
        #expect(try store.snapshot(includingCursors: true) == before, "nothing of the refused batch was written")
        await store.shutdown()
    }

    @Test("a projection failing while staging fails the batch with its own error and nothing is written; a gap is refused")
    func failuresWriteNothing() async throws {
        let folder = LMDBTestFolder()
        let projections: [any Projection] = [CatalogProjection(), FailingProjection()]
        let store = try LMDBReadModelStore(path: folder.path, projections: projections, configuration: .init(noSync: true))
        var batch = Array(Self.log.prefix(999))
        batch.append(RecordedEvent(position: LogPosition(transactionID: 1000, globalPosition: 1000), stream: "x-1", streamVersion: 1, eventID: UUID(),
                                   type: "boom", schemaVersion: 1, data: [], metadata: EventMetadata(actorID: "t", actorRole: "system"), recordedAtMicros: 0))
        await #expect(throws: FailingProjection.Boom.self) {
            try await store.apply(batch, projections: projections, stagingThreads: 2, logger: Self.logger)
        }
        #expect(try store.cursors().isEmpty)
        #expect(try store.snapshot() == MemoryStore())
        let late = Array(Self.log[1000..<2000])
        await #expect(throws: LMDBReadModelStore.Failure.self) {
            try await store.apply(late, projections: projections, after: Self.log[998].position, stagingThreads: 2, logger: Self.logger)
        }
        #expect(try store.snapshot() == MemoryStore())
        await store.shutdown()
    }
}
