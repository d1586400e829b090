import Foundation
import LMDB
import Testing
@testable import EventStore
@testable import ToteReadModels

/// The LMDB writer keeps a batch's puts and deletes in memory and writes each key once; inside
/// the transaction it must behave exactly like immediate writes (the MemoryStore).
@Suite("LMDB read-model store: the per-batch write overlay")
struct StoreWriteOverlayTests {
    static let names = ["alpha", "beta"]

    /// One step: 0 put, 1 delete, 2 get, 3 withValue, 4 forward scan of a prefix, 5 reverse scan from a key.
    struct Op: Sendable {
        var kind: Int
        var database: String
        var key: [UInt8]
        var value: [UInt8]
    }

    /// What one step read inside the transaction, to compare with the MemoryStore's answers.
    enum Seen: Equatable, Sendable {
        case value([UInt8]?)
        case entries([[UInt8]])
    }

    /// Runs `ops` on `writer`; returns what each read saw.
    static func run(_ writer: inout some ReadModelWriter, _ ops: [Op]) throws -> [Seen] {
        var seen: [Seen] = []
        for op in ops {
            switch op.kind {
            case 0: try writer.put(op.database, op.key, op.value)
            case 1: try writer.delete(op.database, op.key)
            case 2: seen.append(.value(try writer.get(op.database, op.key)))
            case 3: seen.append(.value(try writer.withValue(op.database, op.key) { Array($0) }))
            case 4:
                var keys: [[UInt8]] = []
                try writer.scan(op.database, prefix: Array(op.key.prefix(1)), from: nil, reverse: false) { k, v in keys.append(Array(k) + [0xEE] + Array(v)); return true }
                seen.append(.entries(keys))
            default:
                var keys: [[UInt8]] = []
                try writer.scan(op.database, prefix: [], from: op.key, reverse: true) { k, _ in keys.append(Array(k)); return keys.count < 5 }
                seen.append(.entries(keys))
            }
        }
        return seen
    }

    @Test("gets, zero-copy reads and scans inside one transaction see the batch's own puts and deletes, as the MemoryStore does; the committed bytes are equal")
    func readsInsideTheBatch() async throws {
        let folder = LMDBTestFolder()
        let store = try LMDBReadModelStore(path: folder.path, databases: Self.names, projections: [], configuration: .init(noSync: true))
        var random = LMDBTestRandom(state: 7)
        let alphabet: [UInt8] = [0x00, 0x61, 0x62, 0xFF]
        // Ops: 0 put, 1 delete, 2 get, 3 withValue, 4 forward scan of a prefix, 5 reverse scan from a key.
        var ops: [Op] = []
        for _ in 0..<3000 {
            let key = (0..<Int.random(in: 1...3, using: &random)).map { _ in alphabet.randomElement(using: &random)! }
            let value = (0..<Int.random(in: 0...6, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            ops.append(Op(kind: Int.random(in: 0...5, using: &random), database: Self.names.randomElement(using: &random)!, key: key, value: value))
        }
        var memory = MemoryStore()
        for chunk in stride(from: 0, to: ops.count, by: 1000) {
            let part = Array(ops[chunk..<min(chunk + 1000, ops.count)])
            let expected = try Self.run(&memory, part)
            let got = try await store.write { writer in try Self.run(&writer, part) }
            #expect(got == expected, "batch starting at op \(chunk)")
        }
        #expect(try store.snapshot() == memory)
        await store.shutdown()
    }

    @Test("a key put many times reaches LMDB once, with its last value; an aborted batch leaves nothing; bad keys fail at once with LMDB's error")
    func lastValueWinsAndAbort() async throws {
        let folder = LMDBTestFolder()
        let store = try LMDBReadModelStore(path: folder.path, databases: Self.names, projections: [], configuration: .init(noSync: true))
        let pending = try await store.write { writer -> Int in
            for i in 0..<1000 { try writer.put("alpha", [1], [UInt8(i & 0xFF)]) }
            try writer.put("beta", [2], [2])
            try writer.delete("beta", [2])
            return writer.overlay.count
        }
        #expect(pending == 2, "one pending entry per key")
        #expect(try store.read { try $0.get("alpha", [1]) } == [UInt8(999 & 0xFF)])
        #expect(try store.read { try $0.get("beta", [2]) } == nil)

        struct Stop: Error {}
        await #expect(throws: Stop.self) {
            try await store.write { writer in
                try writer.put("alpha", [9], [9])
                throw Stop()
            }
        }
        #expect(try store.read { try $0.get("alpha", [9]) } == nil, "an aborted batch writes nothing")

        await #expect(throws: LMDBError.self) {
            try await store.write { writer in try writer.put("alpha", [], [1]) }
        }
        await #expect(throws: LMDBError.self) {
            try await store.write { writer in try writer.put("alpha", Array(repeating: 7, count: 600), [1]) }
        }
        await #expect(throws: LMDBReadModelStore.Failure.self) {
            try await store.write { writer in try writer.put("undeclared", [1], [1]) }
        }
        await store.shutdown()
    }

    @Test("past its limit the overlay is written out mid-batch; the batch's result is unchanged")
    func limitFlush() async throws {
        let folder = LMDBTestFolder()
        let store = try LMDBReadModelStore(path: folder.path, databases: Self.names, projections: [], configuration: .init(noSync: true))
        let total = WriteOverlay.limit + 10
        let left = try await store.write { writer -> Int in
            for i in 0..<total { try writer.put("alpha", [UInt8(i >> 16), UInt8((i >> 8) & 0xFF), UInt8(i & 0xFF)], [1]) }
            return writer.overlay.count
        }
        #expect(left < 20, "written out once the limit was passed")
        let count = try store.read { reader in
            var n = 0
            try reader.scan("alpha", prefix: [], from: nil, reverse: false) { _, _ in n += 1; return true }
            return n
        }
        #expect(count == total)
        await store.shutdown()
    }
}
