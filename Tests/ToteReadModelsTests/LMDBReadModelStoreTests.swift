import Foundation
import LMDB
import Testing
@testable import EventStore
@testable import ToteReadModels

/// A fresh folder for an LMDB environment (or a read-model directory), removed afterwards.
final class LMDBTestFolder: Sendable {
    let path: String
    init() { path = NSTemporaryDirectory() + "tote-rm-\(UUID().uuidString.prefix(8))" }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A deterministic pseudo-random generator (SplitMix64) so that failures reproduce.
struct LMDBTestRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("LMDB read-model store")
struct LMDBReadModelStoreTests {
    static let names = ["alpha", "beta"]

    func randomKey(_ random: inout LMDBTestRandom) -> [UInt8] {
        // Small alphabet with edge bytes so that prefixes collide and 0x00/0xFF are exercised.
        let alphabet: [UInt8] = [0x00, 0x01, 0x61, 0x62, 0x7F, 0xFE, 0xFF]
        return (0..<Int.random(in: 1...4, using: &random)).map { _ in alphabet.randomElement(using: &random)! }
    }

    @Test("after the same puts and deletes, the LMDB store equals the MemoryStore, and scans agree")
    func equalsMemoryStore() async throws {
        let folder = LMDBTestFolder()
        let store = try LMDBReadModelStore(path: folder.path, databases: Self.names, projections: [], configuration: .init(noSync: true))
        var memory = MemoryStore()
        var random = LMDBTestRandom(state: 42)
        var operations: [(put: Bool, database: String, key: [UInt8], value: [UInt8])] = []
        for _ in 0..<2000 {
            let value = (0..<Int.random(in: 0...8, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            operations.append((Bool.random(using: &random) || Bool.random(using: &random), Self.names.randomElement(using: &random)!, randomKey(&random), value))
        }
        for chunk in stride(from: 0, to: operations.count, by: 250).map({ Array(operations[$0..<min($0 + 250, operations.count)]) }) {
            for op in chunk {
                if op.put { try memory.put(op.database, op.key, op.value) } else { try memory.delete(op.database, op.key) }
            }
            let ops = chunk.map { ($0.put, $0.database, $0.key, $0.value) }
            try await store.write { writer in
                for (put, database, key, value) in ops {
                    if put { try writer.put(database, key, value) } else { try writer.delete(database, key) }
                }
            }
        }
        #expect(try store.snapshot() == memory)
        // Point reads and every flavour of scan give the same answers.
        for _ in 0..<300 {
            let database = Self.names.randomElement(using: &random)!
            let prefix = Bool.random(using: &random) ? [] : Array(randomKey(&random).prefix(Int.random(in: 1...2, using: &random)))
            let start: [UInt8]? = Bool.random(using: &random) ? nil : randomKey(&random)
            let reverse = Bool.random(using: &random)
            let limit = Int.random(in: 1...50, using: &random)
            func collect(_ reader: some ReadModelReader) throws -> [[UInt8]] {
                var seen: [[UInt8]] = []
                try reader.scan(database, prefix: prefix, from: start, reverse: reverse) { key, value in
                    seen.append(Array(key) + [0xAA] + Array(value))
                    return seen.count < limit
                }
                return seen
            }
            let expected = try collect(memory)
            let actual = try store.read { reader in try collect(LMDBAnyReader(base: reader)) }
            #expect(actual == expected, "scan \(database) prefix \(prefix) from \(String(describing: start)) reverse \(reverse)")
            let key = randomKey(&random)
            #expect(try store.read { try $0.get(database, key) } == memory.get(database, key))
            #expect(try store.read { try $0.withValue(database, key) { Array($0) } } == memory.withValue(database, key) { Array($0) })
        }
        await store.shutdown()
    }

    @Test("cursor bytes: 16 bytes big-endian, round trip, ordered like positions")
    func cursorEncoding() throws {
        let positions = [LogPosition.start, LogPosition(transactionID: 1, globalPosition: 255), LogPosition(transactionID: 1, globalPosition: 256),
                         LogPosition(transactionID: 0x0102_0304_0506_0708, globalPosition: 9), LogPosition(transactionID: .max, globalPosition: .max)]
        for position in positions {
            let bytes = LMDBReadModelStore.encodePosition(position)
            #expect(bytes.count == 16)
            #expect(bytes.withUnsafeBytes { LMDBReadModelStore.decodePosition($0) } == position)
        }
        #expect(LMDBReadModelStore.encodePosition(positions[3]).prefix(8) == [1, 2, 3, 4, 5, 6, 7, 8])
        let encoded = positions.map(LMDBReadModelStore.encodePosition)
        #expect(encoded == encoded.sorted { $0.lexicographicallyPrecedes($1) }, "byte order = log order")
        #expect([UInt8](repeating: 0, count: 15).withUnsafeBytes { LMDBReadModelStore.decodePosition($0) } == nil)
    }

    @Test("position is the minimum cursor of the store's projections; .start for one that never ran")
    func position() async throws {
        let folder = LMDBTestFolder()
        let store = try LMDBReadModelStore(path: folder.path, databases: ["x"], projections: ["p", "q"], configuration: .init(noSync: true))
        #expect(try store.position == .start)
        try await store.write { try $0.setCursor("p", LogPosition(transactionID: 9, globalPosition: 90)) }
        #expect(try store.position == .start, "q never ran")
        try await store.write { try $0.setCursor("q", LogPosition(transactionID: 7, globalPosition: 91)) }
        #expect(try store.position == LogPosition(transactionID: 7, globalPosition: 91))
        #expect(try store.cursors() == ["p": LogPosition(transactionID: 9, globalPosition: 90), "q": LogPosition(transactionID: 7, globalPosition: 91)])
        #expect(try store.snapshot(includingCursors: false).databases.keys.contains(LMDBReadModelStore.cursorsDatabase) == false)
        await store.shutdown()
    }

    @Test("a throwing write leaves nothing; undeclared databases are refused")
    func failures() async throws {
        struct Boom: Error {}
        let folder = LMDBTestFolder()
        let store = try LMDBReadModelStore(path: folder.path, databases: ["x"], projections: ["p"], configuration: .init(noSync: true))
        await #expect(throws: Boom.self) {
            try await store.write { writer in
                try writer.put("x", [1], [1])
                try writer.setCursor("p", LogPosition(transactionID: 1, globalPosition: 1))
                throw Boom()
            }
        }
        #expect(try store.snapshot(includingCursors: true) == MemoryStore())
        await #expect(throws: LMDBReadModelStore.Failure.self) { try await store.write { try $0.put("undeclared", [1], [1]) } }
        #expect(try store.read { try $0.get("undeclared", [1]) } == nil, "reading an unknown database finds nothing")
        await store.shutdown()
        await #expect(throws: LMDBError.self) { try await store.write { try $0.put("x", [1], [1]) } }
    }

    @Test("a read-only store sees committed data, later-created databases, and refuses writes")
    func readOnly() async throws {
        let folder = LMDBTestFolder()
        do {
            let writer = try LMDBReadModelStore(path: folder.path, databases: ["x"], projections: ["p"], configuration: .init(noSync: true))
            try await writer.write { try $0.put("x", Array("k".utf8), Array("v".utf8)) }
            await writer.shutdown()
        }
        let reader = try LMDBReadModelStore(path: folder.path, databases: ["x", "later"], projections: ["p"], configuration: .init(readOnly: true))
        #expect(reader.writer == nil)
        #expect(try reader.read { try $0.get("x", Array("k".utf8)) } == Array("v".utf8))
        #expect(try reader.read { try $0.get("later", [1]) } == nil)
        await #expect(throws: LMDBReadModelStore.Failure.self) { try await reader.write { try $0.put("x", [1], [1]) } }
        #expect(throws: (any Error).self) {
            _ = try LMDBReadModelStore(path: folder.path + "-missing", databases: ["x"], projections: [], configuration: .init(readOnly: true))
        }
    }
}

/// Lets a test call generic helpers with the existential reader the store lends.
struct LMDBAnyReader: ReadModelReader {
    let base: any ReadModelReader
    func get(_ database: String, _ key: [UInt8]) throws -> [UInt8]? { try base.get(database, key) }
    func withValue<R>(_ database: String, _ key: [UInt8], _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R? { try base.withValue(database, key, body) }
    func scan(_ database: String, prefix: [UInt8], from start: [UInt8]?, reverse: Bool, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        try base.scan(database, prefix: prefix, from: start, reverse: reverse, body)
    }
}

/// A test projection whose layout version is chosen by the test.
private struct VersionedProjection: Projection {
    var name: String
    var layoutVersion: Int
    var databases: [String] { ["\(name).data"] }
    func apply(_ event: RecordedEvent, to store: inout some ReadModelWriter) throws {
        try store.put("\(name).data", Array(event.stream.utf8), event.data)
    }
}

@Suite("Read-model layout versions")
struct LayoutVersionTests {
    private func open(_ folder: LMDBTestFolder, _ projections: [any Projection]) throws -> LMDBReadModelStore {
        try LMDBReadModelStore(path: folder.path, projections: projections, configuration: .init(noSync: true))
    }

    @Test("a projection of another layout version is cleared and starts from the log's start; the others keep their data and cursors")
    func otherVersionIsCleared() async throws {
        let folder = LMDBTestFolder()
        let at = LogPosition(transactionID: 5, globalPosition: 50)
        do {
            // A store written before versions were recorded: data and cursors, no versions.
            let v1: [any Projection] = [VersionedProjection(name: "a", layoutVersion: 1), VersionedProjection(name: "b", layoutVersion: 1)]
            let store = try open(folder, v1)
            try await store.write { w in
                for name in ["a", "b"] {
                    try w.put("\(name).data", Array("s".utf8), [1])
                    try w.setCursor(name, at)
                }
            }
            await store.shutdown()
        }
        do {
            // Unrecorded versions count as 1: nothing to clear, the versions get recorded.
            let store = try open(folder, [VersionedProjection(name: "a", layoutVersion: 1), VersionedProjection(name: "b", layoutVersion: 1)])
            #expect(try store.adoptLayouts([VersionedProjection(name: "a", layoutVersion: 1), VersionedProjection(name: "b", layoutVersion: 1)]).isEmpty)
            await store.shutdown()
        }
        let v2: [any Projection] = [VersionedProjection(name: "a", layoutVersion: 2), VersionedProjection(name: "b", layoutVersion: 1)]
        let store = try open(folder, v2)
        #expect(try store.adoptLayouts(v2) == ["a"])
        #expect(try store.cursors() == ["b": at])
        #expect(try store.position == .start, "the cleared projection replays from the start")
        #expect(try store.read { try $0.get("a.data", Array("s".utf8)) } == nil)
        #expect(try store.read { try $0.get("b.data", Array("s".utf8)) } == [1])
        #expect(try store.adoptLayouts(v2).isEmpty, "once adopted, the same versions clear nothing")
        await store.shutdown()
    }
}
