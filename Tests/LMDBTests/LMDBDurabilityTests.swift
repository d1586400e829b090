import Foundation
import Testing
@testable import LMDB

@Suite("LMDB commit durability: deferred commits, explicit sync, one fsync per commit")
struct LMDBDurabilityTests {
    @Test("a deferred commit skips the fsync for itself only; a synced commit or sync() flushes what was deferred")
    func deferredThenSynced() async throws {
        let folder = TemporaryFolder()
        let env = try Environment(path: folder.path, configuration: .init(noMetaSync: true))
        let db = try env.database("d")
        let writer = Writer(environment: env)
        #expect(!env.commitsSkipSync)
        for i in 0..<3 {
            try await writer.write(durability: .deferred) { txn in try txn.put(db, [UInt8(i)], [UInt8(i)]) }
            #expect(!env.commitsSkipSync, "MDB_NOSYNC is set only while the deferred transaction runs")
        }
        #expect(writer.unsyncedCommits == 3)
        try await writer.write { txn in try txn.put(db, [9], [9]) }
        #expect(writer.unsyncedCommits == 0, "a synced commit flushes the deferred ones before it")
        try await writer.write(durability: .deferred) { txn in try txn.put(db, [10], [10]) }
        #expect(writer.unsyncedCommits == 1)
        try await writer.sync()
        #expect(writer.unsyncedCommits == 0)
        // A deferred write that throws commits nothing and leaves the flag off.
        await #expect(throws: LMDBError.self) {
            try await writer.write(durability: .deferred) { txn in try txn.put(db, [], [1]) }  // empty key: EINVAL
        }
        #expect(!env.commitsSkipSync)
        #expect(writer.unsyncedCommits == 0)
        await writer.shutdown()
        #expect(try env.read { txn in try (0..<11).compactMap { try txn.get(db, [UInt8($0)]) } } == [[0], [1], [2], [9], [10]])
    }

    @Test("an environment opened with noSync stays so: deferred writes do not turn MDB_NOSYNC off, nothing counts as owed")
    func noSyncEnvironment() async throws {
        let folder = TemporaryFolder()
        let env = try Environment(path: folder.path, configuration: .init(noSync: true))
        let db = try env.database("d")
        let writer = Writer(environment: env)
        try await writer.write(durability: .deferred) { txn in try txn.put(db, [1], [1]) }
        try await writer.write { txn in try txn.put(db, [2], [2]) }
        #expect(env.commitsSkipSync)
        #expect(writer.unsyncedCommits == 0)
        await writer.shutdown()
    }

    @Test("noMetaSync commits survive closing and reopening the environment, byte for byte")
    func noMetaSyncReopen() async throws {
        let folder = TemporaryFolder()
        do {
            let env = try Environment(path: folder.path, configuration: .init(noMetaSync: true))
            let db = try env.database("d")
            let writer = Writer(environment: env)
            for i in 0..<50 {
                try await writer.write(durability: i.isMultiple(of: 3) ? .synced : .deferred) { txn in try txn.put(db, [UInt8(i)], Array(repeating: UInt8(i), count: 100)) }
            }
            try await writer.sync()
            await writer.shutdown()
        }
        let reopened = try Environment(path: folder.path, configuration: .init(readOnly: true))
        let db = try reopened.database("d", create: false)
        let values = try reopened.read { txn in try (0..<50).map { try txn.get(db, [UInt8($0)]) } }
        #expect(values == (0..<50).map { Array(repeating: UInt8($0), count: 100) })
    }
}
