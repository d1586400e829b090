import EventStore
import Foundation
import LMDB
import Postgres
import Testing
import ToteReadModels
import ToteServices
import ToteTestSupport

/// The projector is killed with SIGKILL in the middle of its work, several times, and restarted;
/// its read models must end up byte for byte what a rebuild from position zero gives.
@Suite("Projector crash: SIGKILL mid-batch, restart, same bytes as a rebuild", .localCluster, .serialized)
struct ProjectorCrashTests {
    @Test("tote project killed with SIGKILL 4 times mid-run, restarted each time, equals tote project --rebuild in every key and value of every LMDB database")
    func sigkillThenRebuildGivesSameBytes() async throws {
        let tote = try toteExecutable()
        let cluster = try LocalCluster.cluster
        let databaseName = try await cluster.createDatabase()
        let connectionString = cluster.connectionString(database: databaseName)
        let pool = PostgresPool(configuration: .init(connectionString: connectionString, size: 2))
        let store = EventStore(pool: pool)
        try await store.migrate()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tote-crash-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }

        // A realistic log: the generated catalog (categories, products, SKUs, prices, stock) and orders.
        let events = CatalogGenerator(seed: 77).events(products: 400, orders: 400)
        let end = try await store.appendInLogOrder(events, eventsPerTransaction: 100)
        await store.shutdown()
        try await pool.shutdown()
        #expect(events.count > 5_000)

        let readModels = "\(folder)/models"
        let batchSize = 100
        // Batches grow 100 → 200 → 400 while behind, with deferred commits: small enough that
        // every kill lands mid-run among many transactions.
        let arguments = ["project", "--database", connectionString, "--read-models", readModels, "--batch-size", "\(batchSize)", "--max-batch-size", "\(4 * batchSize)"]
        // Kill moments spread over the log: once this run has committed past a share of it, after a varied delay.
        let moments: [(share: Int64, delay: Duration)] = [(10, .zero), (35, .milliseconds(7)), (60, .milliseconds(23)), (85, .milliseconds(3))]
        var killedAt: [LogPosition] = []
        var live: LMDBReadModelStore?
        for (round, moment) in moments.enumerated() {
            let child = try launch(tote, arguments, log: "\(folder)/project-\(round).log")
            let startedFrom = killedAt.last ?? .start
            let target = end.globalPosition * moment.share / 100
            let progressed = try await poll(timeout: .seconds(120)) { () -> LogPosition? in
                if live == nil { live = try? openReadOnly("\(readModels)/gen-000001") }
                guard let position = try live?.position, position > startedFrom, position.globalPosition >= target else { return nil }
                return position
            }
            let delay = moment.delay
            try await Task.sleep(for: delay)
            kill(child.processIdentifier, SIGKILL)
            await child.exited()
            #expect(child.terminationReason == .uncaughtSignal && child.terminationStatus == SIGKILL, "round \(round): the projector was killed by SIGKILL")
            let position = try #require(live).position
            print("kill \(round): progress seen at \(progressed), cursor after SIGKILL \(position), end \(end)")
            // The kill happened mid-run: some events were applied, not all of them.
            #expect(position > startedFrom && position >= progressed, "round \(round): the run made progress")
            #expect(position < end, "round \(round): the projector was killed before the end of the log (cursor \(position), end \(end))")
            killedAt.append(position)
        }

        // The last restart runs to the end of the log; then it is stopped gracefully.
        let last = try launch(tote, arguments, log: "\(folder)/project-final.log")
        _ = try await poll(timeout: .seconds(300)) { () -> Bool? in try live!.position >= end ? true : nil }
        last.terminate()
        await last.exited()
        #expect(last.terminationStatus == 0, "SIGTERM stops the projector gracefully")
        #expect(try live!.position == end)

        // A rebuild from position zero (another batch size, so batch boundaries differ) into a fresh generation.
        let rebuild = try launch(tote, ["project", "--database", connectionString, "--read-models", readModels, "--rebuild", "--batch-size", "1000"], log: "\(folder)/rebuild.log")
        await rebuild.exited()
        #expect(rebuild.terminationStatus == 0, "tote project --rebuild: \(tail("\(folder)/rebuild.log"))")
        #expect(try ReadModelDirectory.readLinkForTests(root: readModels) == "gen-000002")

        let crashed = try live!.environment.dump()
        let fresh = try openReadOnly("\(readModels)/gen-000002").environment.dump()
        #expect(crashed.keys.sorted() == fresh.keys.sorted(), "the same named databases")
        #expect(crashed.keys.contains("_cursors") && crashed.keys.contains("catalog.postings") && crashed.keys.contains("orders.view"))
        var compared = 0
        for name in fresh.keys.sorted() {
            let a = crashed[name] ?? [], b = fresh[name] ?? []
            #expect(a.count == b.count, "\(name): \(a.count) entries after the crashes, \(b.count) rebuilt")
            let firstDifference = zip(a, b).enumerated().first { $0.element.0.key != $0.element.1.key || $0.element.0.value != $0.element.1.value }?.offset
            #expect(firstDifference == nil, "\(name): first different entry at index \(firstDifference ?? -1)")
            compared += b.count
        }
        print("compared \(compared) entries in \(fresh.count) databases after \(killedAt.count) kills at \(killedAt)")
        #expect(compared > 10_000)
        #expect(Set(killedAt).count == killedAt.count, "every kill at a different position")
    }

    @Test("tote project refuses a batch size out of range with a usage error naming it")
    func badBatchSize() async throws {
        let tote = try toteExecutable()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tote-crash-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for bad in ["0", "100001", "-3"] {
            let child = try launch(tote, ["project", "--database", "host=/nonexistent", "--read-models", "\(folder)/models", "--batch-size", bad], log: "\(folder)/bad.log")
            await child.exited()
            #expect(child.terminationStatus == 64, "--batch-size \(bad): exit \(child.terminationStatus)")
            #expect(tail("\(folder)/bad.log").contains("batch-size"), "--batch-size \(bad): \(tail("\(folder)/bad.log"))")
        }
        let below = try launch(tote, ["project", "--database", "host=/nonexistent", "--read-models", "\(folder)/models", "--batch-size", "100", "--max-batch-size", "50"], log: "\(folder)/bad.log")
        await below.exited()
        #expect(below.terminationStatus == 64 && tail("\(folder)/bad.log").contains("max-batch-size"), "--max-batch-size below --batch-size: exit \(below.terminationStatus)")
        #expect(!FileManager.default.fileExists(atPath: "\(folder)/models"), "nothing created for a refused command")
    }

    // MARK: Helpers


    /// The `tote` executable built next to this test bundle (`swift build --build-tests`).
    func toteExecutable() throws -> String {
        let path = Binaries.tote
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw LocalPostgresCluster.Failure(description: "no tote executable at \(path): run `swift build --build-tests`")
        }
        return path
    }

    func launch(_ executable: String, _ arguments: [String], log: String) throws -> Process {
        FileManager.default.createFile(atPath: log, contents: nil)
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = output
        process.standardError = output
        try process.run()
        return process
    }

    /// The environment of one generation, opened read-only in this process (the child writes it).
    func openReadOnly(_ path: String) throws -> LMDBReadModelStore {
        var configuration = Environment.Configuration()
        configuration.readOnly = true
        return try LMDBReadModelStore(path: path, projections: ReadSide.projections, configuration: configuration)
    }

    /// Polls `body` every millisecond until it returns a value; fails after `timeout`.
    func poll<T>(timeout: Duration, _ body: () throws -> T?) async throws -> T {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let value = try body() { return value }
            try await Task.sleep(for: .milliseconds(1))
        }
        throw LocalPostgresCluster.Failure(description: "gave up waiting after \(timeout)")
    }

    func tail(_ path: String) -> String {
        String((try? String(contentsOfFile: path, encoding: .utf8))?.suffix(2_000) ?? "")
    }
}

extension ReadModelDirectory {
    /// The generation `root/current` names.
    static func readLinkForTests(root: String) throws -> String {
        let target = try FileManager.default.destinationOfSymbolicLink(atPath: "\(root)/current")
        return (target as NSString).lastPathComponent
    }
}
