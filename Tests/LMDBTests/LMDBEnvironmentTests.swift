import Foundation
import Testing
@testable import LMDB

/// A fresh folder under /tmp, removed when the test ends.
final class TemporaryFolder: Sendable {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "lmdb-test-\(UUID().uuidString.prefix(8))"
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

func bytes(_ string: String) -> [UInt8] { Array(string.utf8) }

@Suite("LMDB wrapper")
struct LMDBEnvironmentTests {
    @Test("put, get, zero-copy withValue and delete in named databases")
    func putGetDelete() throws {
        let folder = TemporaryFolder()
        let env = try Environment(path: folder.path, configuration: .init(noSync: true))
        let a = try env.database("a"), b = try env.database("b")
        #expect(try env.database("a") == a, "opened once, then cached")
        try env.write { txn throws in
            try txn.put(a, bytes("k1"), bytes("v1"))
            try txn.put(b, bytes("k1"), bytes("other"))
            #expect(try txn.get(a, bytes("k1")) == bytes("v1"), "a transaction sees its own writes")
        }
        try env.read { txn throws in
            #expect(try txn.get(a, bytes("k1")) == bytes("v1"))
            #expect(try txn.get(b, bytes("k1")) == bytes("other"))
            #expect(try txn.get(a, bytes("missing")) == nil)
            let length = try txn.withValue(a, bytes("k1")) { $0.count }
            #expect(length == 2)
            #expect(try txn.withValue(a, bytes("nope")) { $0.count } == nil)
            #expect(try txn.statistics(a).entries == 1)
        }
        let deleted = try env.write { txn in (try txn.delete(a, bytes("k1")), try txn.delete(a, bytes("k1"))) }
        #expect(deleted == (true, false))
        #expect(try env.read { try $0.get(a, bytes("k1")) } == nil)
    }

    @Test("namedDatabaseNames and dump list every named database with every entry, in key order")
    func dumpEverything() throws {
        let folder = TemporaryFolder()
        let env = try Environment(path: folder.path, configuration: .init(noSync: true))
        let b = try env.database("b"), a = try env.database("a")
        _ = try env.database("empty")
        try env.write { txn throws in
            try txn.put(a, [2], [20])
            try txn.put(a, [1], [10, 11])
            try txn.put(b, bytes("x"), [])
        }
        #expect(try env.namedDatabaseNames() == ["a", "b", "empty"])
        let dump = try env.dump()
        #expect(dump.keys.sorted() == ["a", "b", "empty"])
        #expect(dump["a"]!.map(\.key) == [[1], [2]] && dump["a"]!.map(\.value) == [[10, 11], [20]])
        #expect(dump["b"]!.count == 1 && dump["b"]![0].value.isEmpty)
        #expect(dump["empty"]!.isEmpty)
    }

    @Test("a throwing closure aborts: nothing it wrote is visible")
    func abortOnThrow() throws {
        struct Boom: Error {}
        let folder = TemporaryFolder()
        let env = try Environment(path: folder.path, configuration: .init(noSync: true))
        let db = try env.database("d")
        try env.write { try $0.put(db, bytes("kept"), bytes("1")) }
        #expect(throws: Boom.self) {
            try env.write { txn throws in
                try txn.put(db, bytes("lost"), bytes("2"))
                try txn.delete(db, bytes("kept"))
                throw Boom()
            }
        }
        try env.read { txn throws in
            #expect(try txn.get(db, bytes("lost")) == nil)
            #expect(try txn.get(db, bytes("kept")) == bytes("1"))
        }
        // The environment is usable afterwards: the aborted transaction ended exactly once.
        try env.write { try $0.put(db, bytes("after"), bytes("3")) }
        #expect(try env.read { try $0.statistics(db).entries } == 2)
    }

    @Test("every read transaction ends: far more reads (returning or throwing) than reader slots")
    func readersEnd() throws {
        struct Boom: Error {}
        let folder = TemporaryFolder()
        let env = try Environment(path: folder.path, configuration: .init(maxReaders: 2, noSync: true))
        let db = try env.database("r")
        try env.write { try $0.put(db, bytes("k"), bytes("v")) }
        for i in 0..<200 {
            if i.isMultiple(of: 2) {
                #expect(try env.read { try $0.get(db, bytes("k")) } == bytes("v"))
            } else {
                #expect(throws: Boom.self) { try env.read { _ in throw Boom() } }
            }
        }
        // Two at once fit; a third concurrent one is refused with a typed error.
        try env.read { _ in
            try env.read { _ in
                #expect(throws: LMDBError(code: .readersFull, operation: "mdb_txn_begin(read, \(folder.path))")) {
                    try env.read { _ in }
                }
            }
        }
        #expect(try env.read { try $0.get(db, bytes("k")) } == bytes("v"))
    }

    @Test("prefix scans forward and backward, from a start key, stopping early")
    func scans() throws {
        let folder = TemporaryFolder()
        let env = try Environment(path: folder.path, configuration: .init(noSync: true))
        let db = try env.database("s")
        let keys = ["a", "b1", "b2", "b3", "b\u{7F}", "c"].map(bytes) + [[0x62, 0xFF], [0x62, 0xFF, 0xFF], [0xFF], [0xFF, 0x01]]
        try env.write { txn in for key in keys { try txn.put(db, key, key) } }
        func scan(_ prefix: [UInt8], from: [UInt8]? = nil, reverse: Bool = false, limit: Int = .max) throws -> [[UInt8]] {
            try env.read { txn throws in
                var seen: [[UInt8]] = []
                try txn.scan(db, prefix: prefix, from: from, reverse: reverse) { key, value in
                    #expect(Array(key) == Array(value))
                    seen.append(Array(key))
                    return seen.count < limit
                }
                return seen
            }
        }
        let bs: [[UInt8]] = ["b1", "b2", "b3", "b\u{7F}"].map(bytes) + [[0x62, 0xFF], [0x62, 0xFF, 0xFF]]
        #expect(try scan(bytes("b")) == bs)
        #expect(try scan(bytes("b"), reverse: true) == bs.reversed())
        #expect(try scan(bytes("b"), from: bytes("b2")) == Array(bs.dropFirst()))
        #expect(try scan(bytes("b"), from: bytes("b2"), reverse: true) == [bytes("b2"), bytes("b1")])
        #expect(try scan(bytes("b"), from: bytes("b25"), reverse: true) == [bytes("b2"), bytes("b1")])
        #expect(try scan(bytes("b"), from: bytes("a"), reverse: true) == [])
        #expect(try scan(bytes("b"), from: bytes("z"), reverse: true) == bs.reversed())
        #expect(try scan(bytes("b"), from: bytes("a")) == bs)
        #expect(try scan(bytes("b"), limit: 2) == Array(bs.prefix(2)))
        let sorted = keys.sorted { $0.lexicographicallyPrecedes($1) }
        #expect(try scan([]) == sorted)
        #expect(try scan([], reverse: true) == sorted.reversed())
        #expect(try scan([0xFF], reverse: true) == [[0xFF, 0x01], [0xFF]])
        #expect(try scan(bytes("x")) == [])
        #expect(try scan(bytes("x"), reverse: true) == [])
    }

    @Test("cursors move, seek and lend the current entry")
    func cursors() throws {
        let folder = TemporaryFolder()
        let env = try Environment(path: folder.path, configuration: .init(noSync: true))
        let db = try env.database("c")
        try env.write { txn in for key in ["b", "d", "f"] { try txn.put(db, bytes(key), bytes(key.uppercased())) } }
        try env.read { txn throws in
            try txn.withCursor(db) { cursor throws in
                #expect(throws: LMDBError.self) { try cursor.withCurrent { _, _ in 0 } }
                #expect(try cursor.move(.first))
                #expect(try cursor.withCurrent { Array($1) } == bytes("B"))
                #expect(try cursor.move(.next))
                #expect(try cursor.move(.next))
                #expect(try !cursor.move(.next))
                #expect(try cursor.seek(atLeast: bytes("c")))
                #expect(try cursor.withCurrent { k, _ in Array(k) } == bytes("d"))
                #expect(try cursor.seek(atMost: bytes("e")))
                #expect(try cursor.withCurrent { k, _ in Array(k) } == bytes("d"))
                #expect(try cursor.seek(atMost: bytes("d")))
                #expect(try cursor.withCurrent { k, _ in Array(k) } == bytes("d"))
                #expect(try cursor.seek(below: bytes("d")))
                #expect(try cursor.withCurrent { k, _ in Array(k) } == bytes("b"))
                #expect(try !cursor.seek(below: bytes("b")))
                #expect(try !cursor.seek(atLeast: bytes("g")))
                #expect(try cursor.seek(atMost: bytes("z")))
                #expect(try cursor.withCurrent { k, _ in Array(k) } == bytes("f"))
            }
        }
    }

    @Test("the map grows from a tiny size when a write finds it full")
    func mapGrowth() throws {
        let folder = TemporaryFolder()
        let env = try Environment(path: folder.path, configuration: .init(mapSize: 64 << 10, noSync: true))
        let db = try env.database("big")
        let before = try env.info().mapSize
        let value = [UInt8](repeating: 7, count: 1000)
        var attempts = 0
        try env.write { txn throws in
            attempts += 1
            for i in 0..<2000 { try txn.put(db, bytes("key-\(i)"), value) }
        }
        #expect(attempts > 1, "the closure ran again after growing")
        #expect(try env.info().mapSize > before)
        try env.read { txn throws in
            #expect(try txn.statistics(db).entries == 2000)
            #expect(try txn.get(db, bytes("key-1999")) == value)
        }
    }

    @Test("the map stops growing at maxMapSize: a typed map-full error, nothing written")
    func mapLimit() throws {
        let folder = TemporaryFolder()
        let env = try Environment(path: folder.path, configuration: .init(mapSize: 64 << 10, maxMapSize: 256 << 10, noSync: true))
        let db = try env.database("big")
        let value = [UInt8](repeating: 7, count: 1000)
        #expect(throws: LMDBError.self) {
            try env.write { txn in for i in 0..<2000 { try txn.put(db, bytes("key-\(i)"), value) } }
        }
        do {
            try env.write { txn in for i in 0..<2000 { try txn.put(db, bytes("key-\(i)"), value) } }
        } catch let error as LMDBError {
            #expect(error.code == .mapFull)
        }
        #expect(try env.read { try $0.statistics(db).entries } == 0)
    }

    @Test("read-only open sees committed data and refuses writes; a missing folder is ENOENT")
    func readOnly() throws {
        let folder = TemporaryFolder()
        do {
            let env = try Environment(path: folder.path, configuration: .init(noSync: true))
            let db = try env.database("r")
            try env.write { try $0.put(db, bytes("k"), bytes("v")) }
        }
        let reader = try Environment(path: folder.path, configuration: .init(readOnly: true))
        let db = try reader.database("r", create: true)  // read-only: opened, not created
        #expect(try reader.read { try $0.get(db, bytes("k")) } == bytes("v"))
        #expect(throws: LMDBError(code: .notFound, operation: "mdb_dbi_open(absent)")) { try reader.database("absent") }
        do {
            try reader.write { try $0.put(db, bytes("k"), bytes("w")) }
            Issue.record("a read-only environment accepted a write")
        } catch let error as LMDBError {
            #expect(error.code == .readOnly)
        }
        do {
            _ = try Environment(path: folder.path + "-missing", configuration: .init(readOnly: true))
            Issue.record("opened a missing folder")
        } catch {
            #expect(error.code == .noSuchFile)
        }
    }

    @Test("typed errors: key exists, bad key size, missing database")
    func errors() throws {
        let folder = TemporaryFolder()
        let env = try Environment(path: folder.path, configuration: .init(noSync: true))
        let db = try env.database("e")
        try env.write { try $0.put(db, bytes("k"), bytes("1")) }
        do {
            try env.write { try $0.put(db, bytes("k"), bytes("2"), overwrite: false) }
            Issue.record("no error")
        } catch let error as LMDBError {
            #expect(error.code == .keyExists)
            #expect(error.description.contains("mdb_put(e)"))
        }
        do {
            try env.write { try $0.put(db, [UInt8](repeating: 1, count: 600), bytes("2")) }
            Issue.record("no error")
        } catch let error as LMDBError {
            #expect(error.code == .badValueSize)
        }
        #expect(throws: LMDBError.self) { try env.write { try $0.put(db, [], bytes("2")) } }
        #expect(try env.read { try $0.get(db, bytes("k")) } == bytes("1"))
        #expect(try env.readerCheck() == 0)
        #expect(env.staleReadersClearedAtOpen == 0)
    }

    @Test("the writer runs writes one at a time on its thread; stopped, it refuses with .cancelled")
    func writer() async throws {
        let folder = TemporaryFolder()
        let env = try Environment(path: folder.path, configuration: .init(noSync: true))
        let db = try env.database("w")
        let writer = Writer(environment: env)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<50 {
                group.addTask {
                    try await writer.write { txn throws in
                        let count = try txn.get(db, bytes("count")).map { Int($0[0]) + Int($0[1]) * 256 } ?? 0
                        try txn.put(db, bytes("count"), [UInt8((count + 1) & 0xFF), UInt8((count + 1) >> 8)])
                        try txn.put(db, bytes("k\(i)"), bytes("\(i)"))
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try env.read { try $0.get(db, bytes("count")) } == [50, 0], "no lost update: writes are serialized")
        struct Boom: Error {}
        await #expect(throws: Boom.self) { try await writer.write { txn in try txn.put(db, bytes("x"), bytes("y")); throw Boom() } }
        #expect(try env.read { try $0.get(db, bytes("x")) } == nil)
        await writer.shutdown()
        await writer.shutdown()
        do {
            try await writer.write { try $0.put(db, bytes("late"), bytes("1")) }
            Issue.record("a stopped writer accepted a write")
        } catch let error as LMDBError {
            #expect(error.code == .cancelled)
        }
    }

    @Test("readers on other threads keep reading while the writer grows the map")
    func concurrentGrowth() async throws {
        let folder = TemporaryFolder()
        let env = try Environment(path: folder.path, configuration: .init(mapSize: 64 << 10, noSync: true))
        let db = try env.database("g")
        let writer = Writer(environment: env)
        try await writer.write { try $0.put(db, bytes("anchor"), bytes("here")) }
        try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<3 {
                group.addTask {
                    var reads = 0
                    for _ in 0..<2000 {
                        let value = try env.read { try $0.get(db, bytes("anchor")) }
                        if value == bytes("here") { reads += 1 }
                    }
                    return reads
                }
            }
            group.addTask {
                for batch in 0..<20 {
                    try await writer.write { txn throws in
                        for i in 0..<100 { try txn.put(db, bytes("b\(batch)-\(i)"), [UInt8](repeating: 1, count: 500)) }
                    }
                }
                return 0
            }
            let reads = try await group.reduce(0, +)
            #expect(reads == 6000)
        }
        #expect(try env.info().mapSize > 64 << 10)
        await writer.shutdown()
    }
}
