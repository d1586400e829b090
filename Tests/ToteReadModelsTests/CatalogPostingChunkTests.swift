import Foundation
import Testing
@testable import ToteReadModels

/// The stored posting chunks (``PostingChunk``): sorted arrays below 128 ids, 512-byte bitsets
/// from 128 on, and the query-time bitmap operations that read them without decoding.
@Suite("Catalog posting chunks")
struct CatalogPostingChunkTests {
    /// `count` random ids of chunk `chunk`, ascending.
    static func randomChunk(_ count: Int, chunk: Int, _ rng: inout SplitMix64) -> [UInt32] {
        var set = Set<UInt32>()
        let base = UInt32(chunk * PostingChunk.span)
        while set.count < count { set.insert(base + UInt32(rng.next() % UInt64(PostingChunk.span))) }
        return set.sorted()
    }

    @Test("the form follows the count: arrays below 128 ids, bitsets from 128; both decode to the ids")
    func formFollowsCount() {
        var rng = SplitMix64(seed: 3)
        for chunk in [0, 1, 7, 300] {
            for count in [1, 2, 64, 127, 128, 129, 1_000, 4_096] {
                let ids = Self.randomChunk(count, chunk: chunk, &rng)
                let bytes = PostingChunk.encode(sortedIDs: ids, chunk: chunk)
                #expect(bytes.count == (count < 128 ? count * 4 : 512), "count \(count)")
                bytes.withUnsafeBytes { raw in
                    #expect(PostingChunk.isBitset(raw) == (count >= 128))
                    #expect(PostingChunk.count(raw) == count)
                    #expect(PostingChunk.ids(raw, chunk: chunk) == ids, "chunk \(chunk) count \(count)")
                    let key: [UInt8] = [0x74, 0x78, UInt8(chunk >> 8), UInt8(chunk & 0xff)]
                    key.withUnsafeBytes { k in #expect(PostingList(chunk: raw, key: k).ids == ids) }
                }
            }
        }
    }

    /// Random batches of adds and removes on one chunk, crossing 128 ids both ways: the stored
    /// bytes always equal the canonical form of the ids (so the history of a chunk never shows in
    /// its bytes), and an emptied chunk is deleted.
    @Test("batched changes keep the canonical form across the threshold, both ways")
    func changesKeepTheCanonicalForm() throws {
        var rng = SplitMix64(seed: 17)
        for chunk in [0, 2] {
            let chunkKey = Postings.chunkKey(CatalogLayout.categoryAll("c1"), UInt32(chunk * PostingChunk.span))
            var store = MemoryStore()
            var reference = Set<UInt32>()
            var crossedUp = 0, crossedDown = 0, emptied = 0
            for round in 0..<400 {
                // Grow in the first half, shrink in the second, with noise both ways.
                let growing = (round / 50) % 2 == 0
                var change = CatalogProjection.ChunkChange()
                let before = reference.count
                for id in Self.randomChunk(Int(rng.next() % 40) + 1, chunk: chunk, &rng) {
                    let remove = growing ? rng.next() % 4 == 0 : rng.next() % 4 != 0
                    if remove, reference.contains(id) || rng.next() % 8 == 0 {
                        change.removes.append(id)  // sometimes an absent id: changes nothing
                        reference.remove(id)
                    } else if !remove {
                        change.adds.append(id)  // sometimes a present id: changes nothing
                        reference.insert(id)
                    }
                }
                // When shrinking, also remove existing ids so the chunk really empties now and then.
                if !growing {
                    // (Not one added by this change: a change's adds and removes are disjoint.)
                    let added = Set(change.adds)
                    for id in reference.subtracting(added).shuffled(using: &rng).prefix(Int(rng.next() % 60)) {
                        change.removes.append(id)
                        reference.remove(id)
                    }
                }
                change.adds.shuffle(using: &rng)
                try Postings.apply(change, to: chunkKey, &store)
                let stored = store.databases[CatalogLayout.postings]?[chunkKey]
                if reference.isEmpty {
                    #expect(stored == nil, "round \(round)")
                    if before > 0 { emptied += 1 }
                } else {
                    #expect(stored == PostingChunk.encode(sortedIDs: reference.sorted(), chunk: chunk), "round \(round)")
                }
                if before < 128 && reference.count >= 128 { crossedUp += 1 }
                if before >= 128 && reference.count < 128 { crossedDown += 1 }
            }
            #expect(crossedUp > 0 && crossedDown > 0 && emptied > 0, "up \(crossedUp) down \(crossedDown) emptied \(emptied)")
        }
    }

    /// ``IDBitmap``'s chunk operations against `Set` arithmetic, over several chunks in both forms.
    @Test("bitmap insert, count and common ids over stored chunks agree with sets")
    func bitmapChunkOperations() {
        var rng = SplitMix64(seed: 29)
        for _ in 0..<60 {
            let universe = 5 * PostingChunk.span - Int(rng.next() % 1_000)
            var set = Set<UInt32>()
            for _ in 0..<Int(rng.next() % 6_000) { set.insert(UInt32(rng.next() % UInt64(universe))) }
            var bitmap = IDBitmap(universe: universe)
            bitmap.insert(contentsOf: Array(set))
            #expect(bitmap.count == set.count)
            var filled = IDBitmap(universe: Int(rng.next() % 100))  // grows as chunks arrive
            var union = Set<UInt32>()
            for chunk in 0..<5 {
                let n = [0, 5, 127, 128, 900, 3_000][Int(rng.next() % 6)]
                let ids = Self.randomChunk(n, chunk: chunk, &rng).filter { Int($0) < universe }
                let bytes = PostingChunk.encode(sortedIDs: ids, chunk: chunk)
                bytes.withUnsafeBytes { raw in
                    #expect(bitmap.count(chunk: raw, number: chunk) == set.intersection(ids).count)
                    var common: [UInt32] = []
                    bitmap.forEachCommon(chunk: raw, number: chunk) { common.append($0) }
                    #expect(common == set.intersection(ids).sorted())
                    filled.insert(chunk: raw, number: chunk)
                }
                union.formUnion(ids)
            }
            #expect(filled.ids == union.sorted())
        }
    }

    /// Counting probes ids without branching on the answer; ids past the set's last word (a list
    /// read from a snapshot newer than the set's universe) must count as absent, never be read.
    @Test("counting ids past a small set's words counts them as absent")
    func countPastTheSet() {
        var rng = SplitMix64(seed: 31)
        for _ in 0..<40 {
            let universe = 1 + Int(rng.next() % 300)
            var set = Set<UInt32>()
            for _ in 0..<Int(rng.next() % 200) { set.insert(UInt32(rng.next() % UInt64(universe))) }
            var bitmap = IDBitmap(universe: universe)
            bitmap.insert(contentsOf: Array(set))
            let ids = Self.randomChunk([5, 60, 127][Int(rng.next() % 3)], chunk: 0, &rng)
            #expect(bitmap.count(of: ids) == set.intersection(ids).count)
            PostingChunk.encode(sortedIDs: ids, chunk: 0).withUnsafeBytes { raw in
                #expect(bitmap.count(chunk: raw, number: 0) == set.intersection(ids).count)
            }
        }
    }
}
