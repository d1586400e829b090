import Foundation
import Postgres
import Synchronization
import Testing
import ToteTestSupport
@testable import EventStore
@testable import ToteReadModels

/// A toy projection: per stream, how many events it has (8-byte big-endian), and per event
/// its stream (key: 8-byte big-endian global position). Throws on an event whose data is
/// `fail` while `faults` is armed (a simulated crash mid-batch).
struct ProjectorCountingProjection: Projection {
    struct Crash: Error {}

    /// Whether the projection throws on `fail` events.
    final class Faults: Sendable {
        let armed = Atomic<Bool>(false)
    }

    var name = "counting"
    var databases: [String] { ["\(name).counts", "\(name).events"] }
    var faults = Faults()

    func apply(_ event: RecordedEvent, to store: inout some ReadModelWriter) throws {
        if faults.armed.load(ordering: .relaxed), event.data == Array("fail".utf8) { throw Crash() }
        let key = Array(event.stream.utf8)
        let count = try store.withValue("\(name).counts", key) { bytes in bytes.reduce(UInt64(0)) { $0 << 8 | UInt64($1) } } ?? 0
        try store.put("\(name).counts", key, Self.bigEndian(count + 1))
        try store.put("\(name).events", Self.bigEndian(UInt64(event.position.globalPosition)), key)
    }

    static func bigEndian(_ value: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * UInt64($0))) } }

    static func count(_ reader: any ReadModelReader, _ stream: String, name: String = "counting") throws -> Int {
        Int(try reader.withValue("\(name).counts", Array(stream.utf8)) { $0.reduce(UInt64(0)) { $0 << 8 | UInt64($1) } } ?? 0)
    }
}

/// A migrated event store in a fresh database of the suite's cluster.
func projectorEventStore() async throws -> EventStore {
    let cluster = try LocalCluster.cluster
    let database = "p_\(UUID().uuidString.prefix(8).lowercased())"
    let admin = try PostgresConnection.connect(cluster.connectionString)
    try admin.executeScript("CREATE DATABASE \(database)")
    let pool = PostgresPool(configuration: .init(connectionString: cluster.connectionString(database: database), size: 4))
    let store = EventStore(pool: pool, pollInterval: .milliseconds(50))
    try await store.migrate()
    return store
}

func projectorEvents(_ payloads: [String]) -> [NewEvent] {
    payloads.map { NewEvent(type: "Thing", data: Array($0.utf8), metadata: EventMetadata(actorID: "test", actorRole: "system")) }
}

@discardableResult
func projectorAppend(_ store: EventStore, _ stream: String, _ payloads: [String]) async throws -> AppendResult {
    try await store.append(to: stream, expectedVersion: .any, events: projectorEvents(payloads))
}

func projectorFixedEvent(_ global: Int64, stream: String, data: String = "x") -> RecordedEvent {
    RecordedEvent(
        position: LogPosition(transactionID: UInt64(1000 + global), globalPosition: global), stream: stream, streamVersion: 1, eventID: UUID(),
        type: "Thing", schemaVersion: 1, data: Array(data.utf8), metadata: EventMetadata(actorID: "a", actorRole: "system"), recordedAtMicros: 0)
}

@Suite("Projector: the toy projection as a pure function")
struct ProjectorProjectionTests {
    @Test("counting events per stream over a MemoryStore; replay yields the same bytes")
    func pure() throws {
        let events = (1...6).map { projectorFixedEvent($0, stream: $0.isMultiple(of: 2) ? "order-1" : "cart-1") }
        var first = MemoryStore(), second = MemoryStore()
        for event in events { try ProjectorCountingProjection().apply(event, to: &first) }
        for event in events { try ProjectorCountingProjection().apply(event, to: &second) }
        #expect(first == second)
        #expect(try ProjectorCountingProjection.count(first, "order-1") == 3)
        #expect(try ProjectorCountingProjection.count(first, "nope") == 0)
    }

    @Test("a batch applied to the LMDB store equals the same events applied to a MemoryStore")
    func lmdbEqualsMemory() async throws {
        let folder = LMDBTestFolder()
        let projection = ProjectorCountingProjection()
        let store = try LMDBReadModelStore(path: folder.path, projections: [projection], configuration: .init(noSync: true))
        let events = (1...50).map { projectorFixedEvent($0, stream: "s-\($0 % 7)") }
        var memory = MemoryStore()
        for event in events { try projection.apply(event, to: &memory) }
        try await store.write { writer in for event in events { try projection.apply(event, to: &writer) } }
        #expect(try store.snapshot() == memory)
        await store.shutdown()
    }
}

@Suite("Projector: position watch")
struct ProjectorPositionWatchTests {
    let p1 = LogPosition(transactionID: 10, globalPosition: 1)
    let p2 = LogPosition(transactionID: 10, globalPosition: 2)
    let p3 = LogPosition(transactionID: 11, globalPosition: 3)

    @Test("a commit past the token wakes its waiters at once; others keep waiting")
    func wakes() async throws {
        let watch = PositionWatch(p1)
        #expect(await watch.wait(until: p1, timeout: .zero), "already there")
        async let early = watch.wait(until: p2, timeout: .seconds(30))
        async let late = watch.wait(until: p3, timeout: .milliseconds(200))
        try await Task.sleep(for: .milliseconds(20))
        let clock = ContinuousClock()
        let started = clock.now
        watch.advance(to: p2)
        #expect(await early)
        #expect(clock.now - started < .seconds(5))
        #expect(await late == false, "timed out: p3 never came")
        #expect(watch.position == p2)
    }

    @Test("the position never moves back except by reset; cancellation answers false")
    func monotonic() async throws {
        let watch = PositionWatch(p2)
        watch.advance(to: p1)
        #expect(watch.position == p2)
        watch.reset(to: p1)
        #expect(watch.position == p1)
        let waiter = Task { await watch.wait(until: p3, timeout: .seconds(60)) }
        try await Task.sleep(for: .milliseconds(20))
        waiter.cancel()
        #expect(await waiter.value == false)
        let cancelledFirst = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await watch.wait(until: p3, timeout: .seconds(60))
        }
        #expect(await cancelledFirst.value == false)
    }
}

@Suite("Projector runner against a real PostgreSQL", .localCluster, .timeLimit(.minutes(3)), .serialized)
struct ProjectorRunnerTests {
    @Test("catches up in batches; the cursor persists across restarts; only new events are applied")
    func cursorPersistence() async throws {
        let events = try await projectorEventStore()
        let folder = LMDBTestFolder()
        let projection = ProjectorCountingProjection()
        for i in 0..<5 { try await projectorAppend(events, "order-\(i)", ["a", "b", "c"]) }
        let position: LogPosition
        do {
            let store = try LMDBReadModelStore(path: folder.path, projections: [projection], configuration: .init(noSync: true))
            let runner = try ProjectorRunner(projections: [projection], eventStore: events, store: store, batchSize: 4)
            #expect(try await runner.lag().eventsBehind == 15)
            #expect(try await runner.catchUp() == 15)
            position = runner.position
            #expect(try store.position == position)
            #expect(try await runner.lag() == ProjectorLag(position: position, eventsBehind: 0, eventsBehindIsLowerBound: false, secondsBehind: 0))
            await store.shutdown()
        }
        let last = try await projectorAppend(events, "order-0", ["d", "e"])
        let store = try LMDBReadModelStore(path: folder.path, projections: [projection], configuration: .init(noSync: true))
        let runner = try ProjectorRunner(projections: [projection], eventStore: events, store: store, batchSize: 4)
        #expect(runner.position == position, "restarted from the stored cursor")
        let lag = try await runner.lag(probe: 1)
        #expect(lag.eventsBehind == 1 && lag.eventsBehindIsLowerBound && lag.secondsBehind >= 0)
        #expect(try await runner.catchUp() == 2)
        #expect(runner.position == last.position)
        #expect(try store.read { try ProjectorCountingProjection.count($0, "order-0") } == 5)
        #expect(try store.read { try ProjectorCountingProjection.count($0, "order-4") } == 3)
        await store.shutdown()
        await events.shutdown()
    }

    @Test("a crash mid-batch leaves no trace of the batch; the restarted run equals a fresh rebuild, byte for byte")
    func effectivelyOnce() async throws {
        let events = try await projectorEventStore()
        for i in 0..<4 { try await projectorAppend(events, "cart-\(i)", ["1", "2", "3"]) }
        try await projectorAppend(events, "cart-9", ["4", "fail", "5"])
        for i in 0..<3 { try await projectorAppend(events, "order-\(i)", ["6", "7"]) }

        let folder = LMDBTestFolder()
        let faulty = ProjectorCountingProjection()
        faulty.faults.armed.store(true, ordering: .relaxed)
        let store = try LMDBReadModelStore(path: folder.path, projections: [faulty], configuration: .init(noSync: true))
        let runner = try ProjectorRunner(projections: [faulty], eventStore: events, store: store, batchSize: 5)
        await #expect(throws: ProjectorCountingProjection.Crash.self) { try await runner.catchUp() }
        // Batches 1–2 (10 events) committed; batch 3 (events 11–15, the 14th fails) left nothing.
        let afterCrash = try store.snapshot(includingCursors: true)
        #expect(afterCrash.databases["counting.events"]?.count == 10)
        #expect(try store.position.globalPosition == runner.position.globalPosition)
        #expect(try store.read { try ProjectorCountingProjection.count($0, "cart-9") } == 0)
        // Replaying the failed batch again fails the same way and still leaves nothing.
        await #expect(throws: ProjectorCountingProjection.Crash.self) { try await runner.catchUp() }
        #expect(try store.snapshot(includingCursors: true) == afterCrash)
        await store.shutdown()

        // Restart (the bug "fixed"), from the stored cursor.
        faulty.faults.armed.store(false, ordering: .relaxed)
        let reopened = try LMDBReadModelStore(path: folder.path, projections: [faulty], configuration: .init(noSync: true))
        let restarted = try ProjectorRunner(projections: [faulty], eventStore: events, store: reopened, batchSize: 5)
        #expect(try await restarted.catchUp() == 11)

        let freshFolder = LMDBTestFolder()
        let fresh = try LMDBReadModelStore(path: freshFolder.path, projections: [ProjectorCountingProjection()], configuration: .init(noSync: true))
        let rebuild = try ProjectorRunner(projections: [ProjectorCountingProjection()], eventStore: events, store: fresh, batchSize: 1000)
        #expect(try await rebuild.catchUp() == 21)
        #expect(try reopened.snapshot(includingCursors: true) == fresh.snapshot(includingCursors: true))
        #expect(try reopened.read { try ProjectorCountingProjection.count($0, "cart-9") } == 3)
        await reopened.shutdown()
        await fresh.shutdown()
        await events.shutdown()
    }

    @Test("a replayed batch or a second runner on the same environment applies nothing twice; a projection added later starts from zero")
    func cursorsPerProjection() async throws {
        let events = try await projectorEventStore()
        for i in 0..<3 { try await projectorAppend(events, "sku-\(i)", ["a", "b"]) }
        let folder = LMDBTestFolder()
        let first = ProjectorCountingProjection()
        let store = try LMDBReadModelStore(path: folder.path, databases: ["counting.counts", "counting.events", "late.counts", "late.events"], projections: ["counting", "late"], configuration: .init(noSync: true))
        let runner = try ProjectorRunner(projections: [first], eventStore: events, store: store)
        try await runner.catchUp()
        let once = try store.snapshot(includingCursors: true)
        // The same batch again (as after a crash between commit and acknowledgement).
        let all = try await events.readAll(after: .start)
        try await runner.apply(all, to: store)
        #expect(try store.snapshot(includingCursors: true) == once)
        // A second runner with the old and a new projection.
        let late = ProjectorCountingProjection(name: "late")
        let both = try ProjectorRunner(projections: [first, late], eventStore: events, store: store)
        #expect(both.position == .start, "late never ran")
        #expect(try await both.catchUp() == 6)
        #expect(try store.read { try ProjectorCountingProjection.count($0, "sku-1") } == 2)
        #expect(try store.read { try ProjectorCountingProjection.count($0, "sku-1", name: "late") } == 2)
        #expect(try store.position == all.last!.position)
        await store.shutdown()
        await events.shutdown()
    }

    @Test("run() follows the log live; read-your-writes through the token; a wait past the head times out")
    func liveAndTokens() async throws {
        let events = try await projectorEventStore()
        let folder = LMDBTestFolder()
        let projection = ProjectorCountingProjection()
        let store = try LMDBReadModelStore(path: folder.path, projections: [projection], configuration: .init(noSync: true))
        let runner = try ProjectorRunner(projections: [projection], eventStore: events, store: store, batchSize: 100)
        let task = Task { try await runner.run() }
        for round in 1...5 {
            let written = try await projectorAppend(events, "order-live", ["e\(round)"])
            #expect(await runner.wait(until: written.position, timeout: .seconds(10)), "the token is reached")
            #expect(try store.read { try ProjectorCountingProjection.count($0, "order-live") } == round, "read-your-writes")
            #expect(try await store.waitForPosition(written.position, timeout: .milliseconds(1)), "the polling wait agrees")
        }
        let beyond = LogPosition(transactionID: .max, globalPosition: .max)
        let clock = ContinuousClock()
        let started = clock.now
        #expect(await runner.wait(until: beyond, timeout: .milliseconds(100)) == false)
        #expect(clock.now - started < .seconds(5))
        #expect(try await store.waitForPosition(beyond, timeout: .milliseconds(50)) == false)
        // Cancelling a waiter answers false at once.
        let waiter = Task { await runner.wait(until: beyond, timeout: .seconds(60)) }
        try await Task.sleep(for: .milliseconds(20))
        waiter.cancel()
        #expect(await waiter.value == false)
        task.cancel()
        try await task.value
        await store.shutdown()
        await events.shutdown()
    }

    @Test("rebuild beside the live generation and switch atomically while readers run: no failed read, the live projector follows")
    func rebuildAndSwitch() async throws {
        let events = try await projectorEventStore()
        for i in 0..<20 { try await projectorAppend(events, "product-\(i % 4)", (0..<10).map { "v\($0)" }) }
        let folder = LMDBTestFolder()
        let projection = ProjectorCountingProjection()
        let directory = try ReadModelDirectory(root: folder.path, projections: [projection], configuration: .init(noSync: true), refreshInterval: .milliseconds(5))
        let firstGeneration = directory.generation
        let live = try ProjectorRunner(projections: [projection], eventStore: events, directory: directory, batchSize: 50)
        let liveTask = Task { try await live.run() }
        let head = try await projectorAppend(events, "product-0", ["head"])
        #expect(await live.wait(until: head.position, timeout: .seconds(10)))

        let stop = ProjectorCountingProjection.Faults()  // reused as a shared stop flag
        let readers = (0..<2).map { _ in
            Task.detached { () -> (reads: Int, failures: Int) in
                var reads = 0, failures = 0
                while !stop.armed.load(ordering: .relaxed) {
                    do {
                        let total = try directory.read { reader in try (0..<4).reduce(0) { $0 + (try ProjectorCountingProjection.count(reader, "product-\($1)")) } }
                        if total >= 201 { reads += 1 } else { failures += 1 }
                    } catch {
                        failures += 1
                    }
                    await Task.yield()  // the cooperative pool has as many threads as cores
                }
                return (reads, failures)
            }
        }
        try await Task.sleep(for: .milliseconds(20))
        let newGeneration = try await ProjectorRunner.rebuild(projections: [projection], eventStore: events, directory: directory, batchSize: 7)
        #expect(newGeneration != firstGeneration)
        #expect(directory.generation == newGeneration)
        #expect(try directory.refresh().path.hasSuffix(newGeneration))
        try await Task.sleep(for: .milliseconds(20))
        stop.armed.store(true, ordering: .relaxed)
        var reads = 0
        for reader in readers {
            let result = await reader.value
            #expect(result.failures == 0, "no read failed or saw a partial model during the switch")
            reads += result.reads
        }
        #expect(reads > 0)
        // The live projector continues on the new generation.
        let after = try await projectorAppend(events, "product-1", ["after"])
        #expect(await live.wait(until: after.position, timeout: .seconds(10)))
        #expect(try directory.read { try ProjectorCountingProjection.count($0, "product-1") } == 51)
        #expect(try directory.position >= after.position)
        liveTask.cancel()
        try await liveTask.value
        // A read-only opener of the root finds the new generation, equal to a fresh rebuild.
        let freshFolder = LMDBTestFolder()
        let fresh = try LMDBReadModelStore(path: freshFolder.path, projections: [projection], configuration: .init(noSync: true))
        try await ProjectorRunner(projections: [projection], eventStore: events, store: fresh).catchUp()
        #expect(try directory.current.snapshot(includingCursors: true) == fresh.snapshot(includingCursors: true))
        try directory.pruneGenerations(keepingPrevious: 0)
        #expect(!FileManager.default.fileExists(atPath: "\(folder.path)/\(firstGeneration)"))
        #expect(try directory.read { try ProjectorCountingProjection.count($0, "product-1") } == 51)
        await fresh.shutdown()
        await events.shutdown()
    }

    @Test("a read-only directory needs the link; a writable one creates the first generation")
    func directoryFailures() throws {
        let folder = LMDBTestFolder()
        #expect(throws: LMDBReadModelStore.Failure.self) {
            _ = try ReadModelDirectory(root: folder.path, databases: ["x"], projections: ["p"], configuration: .init(readOnly: true))
        }
        let directory = try ReadModelDirectory(root: folder.path, databases: ["x"], projections: ["p"], configuration: .init(noSync: true))
        #expect(directory.generation == "gen-000001")
        #expect(try directory.position == .start)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "\(folder.path)/current") == "gen-000001")
    }
}
