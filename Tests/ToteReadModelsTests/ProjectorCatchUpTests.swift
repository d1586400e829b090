import Foundation
import LMDB
import Postgres
import Testing
import ToteServices
import ToteTestSupport
@testable import EventStore
@testable import ToteReadModels

@Suite("Projector: batch planner (pure)")
struct ProjectorBatchPlannerTests {
    @Test("full reads double the limit up to the maximum; a short read returns to the base size")
    func growth() {
        var planner = BatchPlanner(baseSize: 100, maxSize: 1000, deferSync: false)
        var limits: [Int] = []
        for _ in 0..<6 {
            limits.append(planner.limit)
            #expect(planner.read(planner.limit, limit: planner.limit) == .synced, "deferSync off: every commit synced")
        }
        #expect(limits == [100, 200, 400, 800, 1000, 1000])
        #expect(planner.read(7, limit: planner.limit) == .synced)
        #expect(planner.limit == 100, "caught up: small batches again")
        #expect(planner.caughtUp() == false)
    }

    @Test("far behind, commits are deferred except every syncEvery-th; caught up, the owed sync is reported once")
    func deferral() {
        var planner = BatchPlanner(baseSize: 10, maxSize: 10, deferSync: true, syncEvery: 4)
        let plan = (0..<9).map { _ in planner.read(10, limit: 10) }
        #expect(plan == [.deferred, .deferred, .deferred, .synced, .deferred, .deferred, .deferred, .synced, .deferred])
        #expect(planner.deferredInARow == 1)
        #expect(planner.read(3, limit: 10) == .synced, "a short batch (the head of the log) commits synced")
        #expect(planner.caughtUp() == false, "that synced commit flushed the deferred one")
        _ = planner.read(10, limit: 10)
        #expect(planner.caughtUp() == true, "a full batch then nothing: one sync owed")
        #expect(planner.caughtUp() == false)
        #expect(planner.limit == 10)
    }

    @Test("with deferLive, short (live) batches are deferred too; full ones keep the syncEvery rhythm")
    func deferLive() {
        var planner = BatchPlanner(baseSize: 10, maxSize: 10, deferSync: true, syncEvery: 2, deferLive: true)
        #expect(planner.read(3, limit: 10) == .deferred)
        #expect(planner.read(10, limit: 10) == .deferred)
        #expect(planner.read(10, limit: 10) == .synced)
        #expect(planner.read(1, limit: 10) == .deferred)
    }

    @Test("a read-ahead made with an older limit counts as full against that limit")
    func olderLimit() {
        var planner = BatchPlanner(baseSize: 5, maxSize: 40, deferSync: true)
        _ = planner.read(5, limit: 5)
        #expect(planner.limit == 10)
        #expect(planner.read(5, limit: 5) == .deferred, "5 of 5 is full")
        #expect(planner.limit == 20)
    }
}


@Suite("Projector catch-up: growing batches, deferred fsync, lost commits replayed", .localCluster, .timeLimit(.minutes(5)), .serialized)
struct ProjectorCatchUpTests {
    /// Every key and value of every database, and the cursors.
    func contents(_ store: LMDBReadModelStore) throws -> MemoryStore { try store.snapshot(includingCursors: true) }

    @Test("growing batches with deferred commits give the same bytes as batches of 7 synced ones; fewer transactions; nothing owed at the end")
    func growingBatchesSameBytes() async throws {
        let events = try await projectorEventStore()
        let end = try await events.appendInLogOrder(CatalogGenerator(seed: 5).events(products: 60, orders: 60), eventsPerTransaction: 100)
        let projections = ReadSide.projections

        let bigFolder = LMDBTestFolder()
        let big = try LMDBReadModelStore(path: bigFolder.path, projections: projections)
        let growing = try ProjectorRunner(projections: projections, eventStore: events, store: big, batchSize: 7, maxBatchSize: 500)
        let firstTransaction = try big.environment.info().lastTransactionID
        let applied = try await growing.catchUp()
        #expect(growing.position == end)
        #expect(big.unsyncedCommits == 0, "deferred commits are flushed when the catch-up ends")
        #expect(big.environment.configuration.noMetaSync, "a writable store commits with one fsync")
        let bigTransactions = try big.environment.info().lastTransactionID - firstTransaction

        let smallFolder = LMDBTestFolder()
        let small = try LMDBReadModelStore(path: smallFolder.path, projections: projections)
        let fixed = try ProjectorRunner(projections: projections, eventStore: events, store: small, batchSize: 7, deferSyncWhileBehind: false)
        let smallStart = try small.environment.info().lastTransactionID
        #expect(try await fixed.catchUp() == applied)
        let smallTransactions = try small.environment.info().lastTransactionID - smallStart

        #expect(try contents(big) == contents(small), "any cut of the log into batches gives the same bytes")
        #expect(smallTransactions >= (applied + 6) / 7)
        // 7, 14, 28, …, 448, then 500s: a handful of transactions.
        #expect(bigTransactions <= 7 + (applied + 499) / 500, "\(bigTransactions) transactions for \(applied) events")
        print("catch-up of \(applied) events: \(bigTransactions) transactions growing to 500, \(smallTransactions) with batches of 7")
        await big.shutdown()
        await small.shutdown()
        await events.shutdown()
    }

    @Test("commits lost after the last sync (a system crash with deferred commits) are read again from the log: the result equals a fresh rebuild byte for byte")
    func lostCommitsReplayed() async throws {
        let events = try await projectorEventStore()
        let generated = CatalogGenerator(seed: 11).events(products: 80, orders: 80)
        let cut = generated.count / 2
        _ = try await events.appendInLogOrder(Array(generated[..<cut]), eventsPerTransaction: 100)
        let projections = ReadSide.projections
        let folder = LMDBTestFolder()
        let durable = LMDBTestFolder()

        // Part one, then the disk as it is after the sync that ends the catch-up.
        do {
            let store = try LMDBReadModelStore(path: folder.path, projections: projections)
            try await ProjectorRunner(projections: projections, eventStore: events, store: store, batchSize: 10, maxBatchSize: 80).catchUp()
            await store.shutdown()
        }
        let synced = try LMDBReadModelStore(path: folder.path, projections: projections, configuration: .init(readOnly: true)).position
        try FileManager.default.copyItem(atPath: folder.path, toPath: durable.path)

        // Part two (full batches: deferred commits), then the "crash": the files go back to what
        // was on disk at the last sync, as a system crash leaves them when the later deferred
        // commits had not reached the disk.
        let end = try await events.appendInLogOrder(Array(generated[cut...]), eventsPerTransaction: 100)
        do {
            let store = try LMDBReadModelStore(path: folder.path, projections: projections)
            let runner = try ProjectorRunner(projections: projections, eventStore: events, store: store, batchSize: 10, maxBatchSize: 80)
            #expect(runner.position == synced)
            try await runner.catchUp()
            #expect(runner.position == end)
            await store.shutdown()
        }
        try FileManager.default.removeItem(atPath: folder.path)
        try FileManager.default.copyItem(atPath: durable.path, toPath: folder.path)

        // Restart: the cursors are those of the last durable commit, in the same transaction as
        // its data; the runner reads the lost events again.
        let restarted = try LMDBReadModelStore(path: folder.path, projections: projections)
        let runner = try ProjectorRunner(projections: projections, eventStore: events, store: restarted, batchSize: 10, maxBatchSize: 80)
        #expect(runner.position == synced, "back at the last durable cursor")
        let replayed = try await runner.catchUp()
        #expect(replayed == generated.count - cut)
        #expect(runner.position == end)

        let freshFolder = LMDBTestFolder()
        let fresh = try LMDBReadModelStore(path: freshFolder.path, projections: projections)
        try await ProjectorRunner(projections: projections, eventStore: events, store: fresh, batchSize: 1000).catchUp()
        let after = try restarted.environment.dump(), rebuilt = try fresh.environment.dump()
        #expect(after.keys.sorted() == rebuilt.keys.sorted())
        var compared = 0
        for name in rebuilt.keys.sorted() {
            let a = after[name] ?? [], b = rebuilt[name] ?? []
            #expect(a.count == b.count, "\(name)")
            #expect(zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }, "\(name): same keys and values")
            compared += b.count
        }
        #expect(compared > 1_000)
        await restarted.shutdown()
        await fresh.shutdown()
        await events.shutdown()
    }

    @Test("run() catches up in growing batches, flushes before waiting, then applies small live batches promptly (synced, or deferred and flushed alongside)", arguments: [false, true])
    func runThenLive(deferLive: Bool) async throws {
        let events = try await projectorEventStore()
        let backlog = try await events.appendInLogOrder(CatalogGenerator(seed: 3).events(products: 40, orders: 40), eventsPerTransaction: 100)
        let folder = LMDBTestFolder()
        let projections = ReadSide.projections
        let store = try LMDBReadModelStore(path: folder.path, projections: projections)
        let runner = try ProjectorRunner(projections: projections, eventStore: events, store: store, batchSize: 5, maxBatchSize: 400, deferSyncWhenLive: deferLive)
        let task = Task { try await runner.run() }
        #expect(await runner.wait(until: backlog, timeout: .seconds(60)))
        // The flush of deferred commits happens right after the last commit, before waiting.
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        while store.unsyncedCommits > 0, clock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        #expect(store.unsyncedCommits == 0, "caught up: nothing left unsynced")
        // Live: one order at a time, each visible shortly after its commit (generous bound for a loaded machine).
        var lags: [Duration] = []
        for i in 0..<10 {
            let appended = try await projectorAppend(events, "cart-live-\(i)", ["x"])
            let started = clock.now
            #expect(await runner.wait(until: appended.position, timeout: .seconds(10)))
            lags.append(clock.now - started)
            if !deferLive { #expect(store.unsyncedCommits == 0, "a live batch commits synced") }
        }
        // Deferred live commits are flushed alongside the writer soon after.
        let flushed = clock.now + .seconds(10)
        while store.unsyncedCommits > 0, clock.now < flushed { try await Task.sleep(for: .milliseconds(5)) }
        #expect(store.unsyncedCommits == 0, "nothing left unsynced once idle")
        lags.sort()
        print("live lag after the catch-up (deferred live commits: \(deferLive)): median \(lags[lags.count / 2]), max \(lags.last!)")
        #expect(lags[lags.count / 2] < .seconds(2))
        task.cancel()
        try await task.value
        await store.shutdown()
        await events.shutdown()
    }
}
