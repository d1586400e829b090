import Testing
import ToteReadModels

@Suite("MemoryStore: the reference read-model store")
struct MemoryStoreTests {
    func keys(_ store: MemoryStore, prefix: [UInt8], from start: [UInt8]? = nil, reverse: Bool = false) throws -> [[UInt8]] {
        var seen: [[UInt8]] = []
        try store.scan("db", prefix: prefix, from: start, reverse: reverse) { key, _ in
            seen.append(Array(key))
            return true
        }
        return seen
    }

    @Test("prefix scans run in unsigned byte order, forward and backward, from a start key")
    func scans() throws {
        var store = MemoryStore()
        for key in [[1, 2], [1, 255], [1, 0], [2], [1], [0, 9]] as [[UInt8]] { try store.put("db", key, key) }
        #expect(try keys(store, prefix: [1]) == [[1], [1, 0], [1, 2], [1, 255]])
        #expect(try keys(store, prefix: [1], reverse: true) == [[1, 255], [1, 2], [1, 0], [1]])
        #expect(try keys(store, prefix: [1], from: [1, 1]) == [[1, 2], [1, 255]])
        #expect(try keys(store, prefix: [1], from: [1, 2], reverse: true) == [[1, 2], [1, 0], [1]])
        #expect(try keys(store, prefix: [3]).isEmpty)
    }

    @Test("put replaces, delete removes (absent keys are fine), withValue borrows")
    func putDelete() throws {
        var store = MemoryStore()
        try store.put("db", [1], [10])
        try store.put("db", [1], [11])
        #expect(try store.get("db", [1]) == [11])
        #expect(try store.withValue("db", [1]) { Array($0) } == [11])
        try store.delete("db", [1])
        try store.delete("db", [9])
        #expect(try store.get("db", [1]) == nil)
        #expect(try store.withValue("other", [1]) { $0.count } == nil)
    }
}
