import Foundation
import Synchronization
import Postgres
import Testing
import ToteTestSupport
@testable import EventStore

/// A migrated event store on the suite's cluster, in a fresh database per test.
func makeStore(poolSize: Int = 8) async throws -> EventStore {
    let cluster = try LocalCluster.cluster
    let database = try await cluster.createDatabase()
    let pool = PostgresPool(configuration: .init(connectionString: cluster.connectionString(database: database), size: poolSize))
    let store = EventStore(pool: pool, pollInterval: .milliseconds(50))
    try await store.migrate()
    return store
}

let testMetadata = EventMetadata(actorID: "test", actorRole: "system", correlationID: "c-1")

func events(_ count: Int, type: String = "Thing", tag: String = "") -> [NewEvent] {
    (0..<count).map { NewEvent(type: type, data: Array("\(tag)\($0)".utf8), metadata: testMetadata) }
}

@Suite("Event store against a real PostgreSQL", .localCluster, .timeLimit(.minutes(5)))
struct EventStoreIntegrationTests {
    @Test("migrations apply once, from many processes at once")
    func migrations() async throws {
        let store = try await makeStore()
        let again = try await withThrowingTaskGroup(of: [Int].self) { group in
            for _ in 0..<4 { group.addTask { try await Migrations.apply(using: store.pool) } }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(again.isEmpty, "already migrated: nothing to apply")
    }

    @Test("append and read back a stream; versions start at 1 and count events")
    func appendAndRead() async throws {
        let store = try await makeStore()
        let first = try await store.append(to: "order-1", expectedVersion: .noStream, events: events(2))
        #expect(first.streamVersions == ["order-1": 2])
        let second = try await store.append(to: "order-1", expectedVersion: .exact(2), events: events(1, type: "Paid"))
        #expect(second.streamVersions == ["order-1": 3])
        #expect(first.position < second.position)
        let read = try await store.readStream("order-1")
        #expect(read.map(\.streamVersion) == [1, 2, 3])
        #expect(read.map(\.type) == ["Thing", "Thing", "Paid"])
        #expect(read[0].data == Array("0".utf8))
        #expect(read[2].metadata == testMetadata)
        #expect(try await store.readStream("order-1", from: 3).count == 1)
        #expect(try await store.streamVersion("order-1") == 3)
        #expect(try await store.streamVersion("nope") == nil)
    }

    @Test("a wrong expected version is a typed conflict naming the stream and its actual version")
    func conflicts() async throws {
        let store = try await makeStore()
        _ = try await store.append(to: "s", expectedVersion: .noStream, events: events(3))
        await #expect(throws: EventStoreError(.wrongExpectedVersion, "stream s expected version 2, but it is at version 3", stream: "s", actualVersion: 3)) {
            _ = try await store.append(to: "s", expectedVersion: .exact(2), events: events(1))
        }
        await #expect(throws: EventStoreError(.wrongExpectedVersion, "stream s expected no stream, but it is at version 3", stream: "s", actualVersion: 3)) {
            _ = try await store.append(to: "s", expectedVersion: .noStream, events: events(1))
        }
        await #expect(throws: EventStoreError(.wrongExpectedVersion, "stream t expected version 1, but it is at no stream", stream: "t", actualVersion: nil)) {
            _ = try await store.append(to: "t", expectedVersion: .exact(1), events: events(1))
        }
        #expect(try await store.append(to: "s", expectedVersion: .any, events: events(2)).streamVersions["s"] == 5)
    }

    @Test("a multi-stream append is atomic: one conflict and nothing is written")
    func atomicMultiStream() async throws {
        let store = try await makeStore()
        _ = try await store.append(to: "sku-B", expectedVersion: .noStream, events: events(1))
        await #expect(throws: EventStoreError.self) {
            _ = try await store.append([
                StreamAppend(stream: "sku-A", expectedVersion: .noStream, events: events(1)),
                StreamAppend(stream: "sku-B", expectedVersion: .noStream, events: events(1)),
                StreamAppend(stream: "sku-C", expectedVersion: .any, events: events(1)),
            ])
        }
        #expect(try await store.streamVersion("sku-A") == nil)
        #expect(try await store.streamVersion("sku-C") == nil)
        #expect(try await store.readAll(after: .start).count == 1)
        let ok = try await store.append([
            StreamAppend(stream: "sku-A", expectedVersion: .noStream, events: events(2)),
            StreamAppend(stream: "sku-B", expectedVersion: .exact(1), events: events(1)),
        ])
        #expect(ok.streamVersions == ["sku-A": 2, "sku-B": 2])
        let all = try await store.readAll(after: .start)
        #expect(all.count == 4)
        #expect(Set(all.dropFirst().map(\.position.transactionID)).count == 1, "one transaction")
    }

    @Test("N writers racing on one stream: exactly one wins each version, the others get the typed conflict")
    func optimisticConcurrency() async throws {
        let store = try await makeStore()
        _ = try await store.append(to: "hot", expectedVersion: .noStream, events: events(1))
        for round in 1...5 {
            let outcomes = try await withThrowingTaskGroup(of: Bool.self) { group in
                for writer in 0..<12 {
                    group.addTask {
                        do {
                            _ = try await store.append(to: "hot", expectedVersion: .exact(Int64(round)), events: events(1, tag: "w\(writer)"))
                            return true
                        } catch let error as EventStoreError where error.code == .wrongExpectedVersion {
                            #expect(error.actualVersion == Int64(round + 1))
                            return false
                        }
                    }
                }
                return try await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 }.count == 1, "round \(round): exactly one winner")
        }
        #expect(try await store.readStream("hot").map(\.streamVersion) == Array(1...6))
    }

    @Test("the same command id twice, also concurrently, writes once and returns the same result")
    func idempotency() async throws {
        let store = try await makeStore()
        let first = try await store.append(to: "cart-1", expectedVersion: .any, events: events(2), commandID: "cmd-1")
        let again = try await store.append(to: "cart-1", expectedVersion: .any, events: events(2), commandID: "cmd-1")
        #expect(!first.deduplicated && again.deduplicated)
        #expect(again.streamVersions == first.streamVersions && again.position == first.position)

        let results = try await withThrowingTaskGroup(of: AppendResult.self) { group in
            for _ in 0..<10 { group.addTask { try await store.append(to: "cart-2", expectedVersion: .any, events: events(3), commandID: "cmd-2") } }
            return try await group.reduce(into: [AppendResult]()) { $0.append($1) }
        }
        #expect(results.filter { !$0.deduplicated }.count == 1)
        #expect(Set(results.map(\.position)).count == 1 && Set(results.map(\.streamVersions)).count == 1)
        #expect(try await store.readStream("cart-2").count == 3)
        #expect(try await store.readStream("cart-2").allSatisfy { $0.metadata.commandID == "cmd-2" })

        // The command layer's reply is stored with the id: a repeat gets the first reply, not its own.
        let replied = try await store.append([StreamAppend(stream: "cart-3", expectedVersion: .any, events: events(1))], commandID: "cmd-3", reply: [1, 2, 3])
        let repeated = try await store.append([StreamAppend(stream: "cart-3", expectedVersion: .any, events: events(1))], commandID: "cmd-3", reply: [9])
        #expect(replied.reply == [1, 2, 3] && repeated.reply == [1, 2, 3] && repeated.deduplicated)
    }

    @Test("several commands in one append: parts chain on one stream, each command gets its own result, and a refusal writes nothing")
    func batchedCommands() async throws {
        let store = try await makeStore()
        let a = CommandAppend(commandID: "cmd-a", reply: [1], appends: [StreamAppend(stream: "hot", expectedVersion: .noStream, events: events(2, tag: "a"))])
        let b = CommandAppend(commandID: "cmd-b", reply: [2], appends: [
            StreamAppend(stream: "other", expectedVersion: .noStream, events: events(1, tag: "b")),
            StreamAppend(stream: "hot", expectedVersion: .exact(2), events: events(1, tag: "b")),
        ])
        let c = CommandAppend(commandID: nil, appends: [StreamAppend(stream: "hot", expectedVersion: .exact(3), events: events(1, tag: "c"))])
        let results = try await store.append(commands: [a, b, c])
        #expect(results.map(\.streamVersions) == [["hot": 2], ["hot": 3, "other": 1], ["hot": 4]])
        #expect(results.map(\.reply) == [[1], [2], nil])
        #expect(results.allSatisfy { !$0.deduplicated && $0.position.transactionID == results[0].position.transactionID })
        let hot = try await store.readStream("hot")
        // A command's position is that of its last event (parts go in stream-name order).
        let other = try await store.readStream("other")
        #expect(results[0].position == hot[1].position && results[2].position == hot[3].position && results[1].position == other[0].position)
        #expect(hot.map(\.streamVersion) == [1, 2, 3, 4])
        #expect(hot.map(\.metadata.commandID) == ["cmd-a", "cmd-a", "cmd-b", ""])
        #expect(hot.map { String(decoding: $0.data, as: UTF8.self) } == ["a0", "a1", "b0", "c0"])

        // Each command's result is stored with its id, and a repeat alone gets it back.
        let storedB = try #require(try await store.processedResult(commandID: "cmd-b"))
        #expect(storedB.streamVersions == ["hot": 3, "other": 1] && storedB.reply == [2] && storedB.deduplicated)
        #expect(storedB.position == results[1].position)
        let repeatA = try await store.append(commands: [a])
        #expect(repeatA == [AppendResult(streamVersions: ["hot": 2], position: results[0].position, deduplicated: true, reply: [1])])

        // In a batch of several, a processed id names itself and nothing is written.
        let d = CommandAppend(commandID: "cmd-d", appends: [StreamAppend(stream: "fresh", expectedVersion: .noStream, events: events(1))])
        let duplicate = await #expect(throws: EventStoreError.self) { try await store.append(commands: [d, b]) }
        #expect(duplicate?.code == .alreadyProcessed && duplicate?.commandID == "cmd-b")
        #expect(try await store.streamVersion("fresh") == nil)
        #expect(try await store.processedResult(commandID: "cmd-d") == nil)

        // A part whose expected version does not hold names its stream; the batch is all or nothing.
        let stale = CommandAppend(commandID: "cmd-e", appends: [StreamAppend(stream: "hot", expectedVersion: .exact(3), events: events(1))])
        let conflict = await #expect(throws: EventStoreError.self) { try await store.append(commands: [d, stale]) }
        #expect(conflict?.code == .wrongExpectedVersion && conflict?.stream == "hot" && conflict?.actualVersion == 4)
        #expect(try await store.streamVersion("fresh") == nil)
        let twice = await #expect(throws: EventStoreError.self) { try await store.append(commands: [d, d]) }
        #expect(twice?.code == .invalidAppend)
        await store.shutdown()
    }

    @Test("the skipped-event race: a slow transaction's event is not skipped by a tailing reader")
    func skippedEventRace() async throws {
        let store = try await makeStore()
        let connectionString = store.pool.configuration.connectionString
        // The slow appender takes its position first, then stalls before committing until released.
        let inserted = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        // On a thread of its own: it blocks (libpq, the semaphore) until released, and a
        // cooperative thread held that long is lost to every test running beside this one.
        let slow = Task {
            try await offCooperativeThreads {
                let connection = try PostgresConnection.connect(connectionString)
                try connection.transaction { connection in
                    _ = try EventStore.append([StreamAppend(stream: "slow", expectedVersion: .noStream, events: events(1, tag: "slow"))], commandID: nil, on: connection)
                    inserted.signal()
                    release.wait()
                }
            }
        }
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { inserted.wait(); continuation.resume() }
        }
        var seen: [RecordedEvent] = []
        var subscription = store.subscribe(from: .start, batchSize: 7).makeAsyncIterator()
        for index in 0..<20 {
            _ = try await store.append(to: "fast-\(index % 3)", expectedVersion: .any, events: events(1, tag: "fast"))
        }
        // While the slow transaction is open, a reader must not get past it.
        #expect(try await store.readAll(after: .start).isEmpty, "nothing beyond the open transaction's horizon")
        release.signal()
        try await slow.value
        while seen.count < 21, let event = try await subscription.next() { seen.append(event) }
        #expect(seen.count == 21)
        #expect(seen.first?.stream == "slow", "the slow event comes first in (tx id, position) order")
        #expect(Set(seen.map(\.eventID)).count == 21, "no duplicates")
        #expect(seen.map(\.position) == seen.map(\.position).sorted())
        await store.shutdown()
    }

    @Test("stress: 16 appenders × 2,000 events with random aborts; 2 tailing readers see exactly the committed set")
    func stress() async throws {
        let store = try await makeStore(poolSize: 16)
        let appenders = 16, perAppender = 2000
        let readers = (0..<2).map { _ in
            Task { () -> [UUID] in
                var ids: [UUID] = []
                for try await event in store.subscribe(from: .start, batchSize: 500) {
                    if event.type == "Stop" { break }
                    ids.append(event.eventID)
                }
                return ids
            }
        }
        let committed = try await withThrowingTaskGroup(of: [UUID].self) { group in
            for appender in 0..<appenders {
                group.addTask {
                    var generator = SystemRandomNumberGenerator()
                    var mine: [UUID] = []
                    var written = 0
                    while written < perAppender {
                        let batch = min(perAppender - written, Int.random(in: 1...20, using: &generator))
                        let batchEvents = events(batch, tag: "a\(appender)-")
                        let stream = "stream-\(Int.random(in: 0..<40, using: &generator))"
                        let abort = Int.random(in: 0..<10, using: &generator) == 0
                        let result: Bool = try await store.pool.withConnection { connection in
                            struct Abort: Error {}
                            do {
                                try connection.transaction { connection in
                                    _ = try EventStore.append([StreamAppend(stream: stream, expectedVersion: .any, events: batchEvents)], commandID: nil, on: connection)
                                    if abort { throw Abort() }
                                }
                                return true
                            } catch is Abort {
                                return false
                            }
                        }
                        if result {
                            mine += batchEvents.map(\.eventID)
                            written += batch
                        }
                    }
                    return mine
                }
            }
            return try await group.reduce(into: [UUID]()) { $0 += $1 }
        }
        _ = try await store.append(to: "control", expectedVersion: .any, events: [NewEvent(type: "Stop", data: [], metadata: testMetadata)])
        #expect(committed.count == appenders * perAppender)
        for reader in readers {
            let ids = try await reader.value
            #expect(ids.count == committed.count, "no gaps")
            #expect(Set(ids).count == ids.count, "no duplicates")
            #expect(Set(ids) == Set(committed), "exactly the committed set")
        }
        await store.shutdown()
    }
}

/// Its own suite, so its own cluster: it stops the server, which the other suite's tests share.
@Suite("Event store across a database restart", .localCluster, .timeLimit(.minutes(2)))
struct EventStoreRestartTests {
    @Test("PostgreSQL stopped mid-load: appends fail retryably, then succeed after restart; nothing acknowledged is lost")
    func databaseRestart() async throws {
        let cluster = try LocalCluster.cluster
        let store = try await makeStore(poolSize: 4)
        let acknowledged = Locked<[UUID]>([])
        let load = Task {
            var unavailable = 0
            for index in 0..<400 {
                let batch = events(1, tag: "r\(index)")
                do {
                    _ = try await store.append(to: "load-\(index % 5)", expectedVersion: .any, events: batch)
                    acknowledged.withLock { $0 += batch.map(\.eventID) }
                } catch let error as EventStoreError where error.code == .unavailable {
                    unavailable += 1
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            return unavailable
        }
        try await Task.sleep(for: .milliseconds(300))
        try await cluster.stopServerAsync()
        try await Task.sleep(for: .milliseconds(500))
        try await cluster.startServerAsync()
        let unavailable = try await load.value
        #expect(unavailable > 0, "some appends hit the outage")
        let stored = Set(try await store.readAll(after: .start, limit: 10_000).map(\.eventID))
        let acked = acknowledged.withLock { $0 }
        #expect(Set(acked).isSubset(of: stored), "every acknowledged append survived")
        #expect(try await store.append(to: "after", expectedVersion: .noStream, events: events(1)).streamVersions["after"] == 1)
    }
}
