import Foundation
import Testing
@testable import ToteReadModels

@Suite("Catalog posting lists and text")
struct CatalogPostingListTests {
    @Test func operationsAgreeWithSets() {
        var rng = SplitMix64(seed: 11)
        for _ in 0..<200 {
            let a = (0..<Int(rng.next() % 300)).map { _ in UInt32(rng.next() % 1_000) }
            let b = (0..<Int(rng.next() % 3_000)).map { _ in UInt32(rng.next() % 1_000) }
            let la = PostingList(a), lb = PostingList(b)
            #expect(la.ids == Set(a).sorted())
            #expect(la.intersection(lb).ids == Set(a).intersection(b).sorted())
            #expect(la.intersectionCount(lb) == Set(a).intersection(b).count)
            #expect(la.union(lb).ids == Set(a).union(b).sorted())
            #expect(PostingList.union([la, lb, la]).ids == Set(a).union(b).sorted())
            let bytes = la.bytes
            #expect(bytes.withUnsafeBytes { PostingList(bytes: $0) } == la)
            var m = la
            let x = UInt32(rng.next() % 1_000)
            let inserted = m.insert(x)
            #expect(inserted == !Set(a).contains(x))
            #expect(m.contains(x))
            let removed = m.remove(x)
            #expect(removed)
            #expect(!m.contains(x))
            let removedAgain = m.remove(x)
            #expect(!removedAgain)
        }
        #expect(PostingList.intersect([nil, nil]) == nil)
        #expect(PostingList.intersect([PostingList([1, 2, 3]), nil, PostingList([2, 3, 4])])?.ids == [2, 3])
    }

    /// A quick in-process measurement behind the choice of sorted arrays (numbers in the log).
    @Test func intersectionCost() {
        var rng = SplitMix64(seed: 5)
        let large = PostingList((0..<100_000).map { _ in UInt32(rng.next() % 400_000) })
        let small = PostingList((0..<500).map { _ in UInt32(rng.next() % 400_000) })
        let medium = PostingList((0..<20_000).map { _ in UInt32(rng.next() % 400_000) })
        let clock = ContinuousClock()
        var sink = 0
        let gallop = clock.measure { for _ in 0..<100 { sink &+= small.intersectionCount(large) } }
        let merge = clock.measure { for _ in 0..<100 { sink &+= medium.intersectionCount(large) } }
        print("posting lists: 500 ∩ 100k ×100: \(gallop); 20k ∩ 100k ×100: \(merge); 100k list = \(large.bytes.count) bytes; sink \(sink)")
        #expect(sink > 0)
    }

    @Test func normalization() {
        #expect(TextNormalizer.fold("Crème Brûlée ÆSIR Straße") == "creme brulee aesir strasse")
        #expect(TextNormalizer.tokens("Classic T-Shirt (Navy)") == ["classic", "tshirt", "t", "shirt", "navy"])
        #expect(TextNormalizer.queryTokens("t-sh") == ["tsh"])
        #expect(TextNormalizer.tokens("  ") == [])
        #expect(TextNormalizer.tokens("15.6\" Laptop") == ["15", "6", "laptop"])
    }

    @Test("the ASCII fast path gives the tokens of the general path, and leaves other text to it")
    func asciiTokensMatchTheGeneralPath() {
        var rng = SplitMix64(seed: 7)
        let alphabet = Array("abcXYZ019 -'.,()/\"&\t\r\n")
        for round in 0..<5_000 {
            // Short names most of the time, now and then a text long enough for the set.
            let length = round % 50 == 0 ? 400 : Int(rng.next() % 24)
            let text = String((0..<length).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] })
            #expect(TextNormalizer.asciiTokens(text) == TextNormalizer.unicodeTokens(text), "\(text.debugDescription)")
            #expect(TextNormalizer.asciiQueryTokens(text) == TextNormalizer.unicodeQueryTokens(folded: TextNormalizer.fold(text)), "query \(text.debugDescription)")
        }
        #expect(TextNormalizer.asciiQueryTokens("T-Sh'irt  classic-T") == ["tshirt", "classict"])
        #expect(TextNormalizer.asciiQueryTokens("Crème") == nil)
        #expect(TextNormalizer.asciiTokens("Crème") == nil)
        #expect(TextNormalizer.tokens("Crème Brûlée T-Shirt") == ["creme", "brulee", "tshirt", "t", "shirt"])
        // Text that folds to ASCII takes the fast path after folding; the rest the general one.
        let accented = Array("aéÉßøñ Z-'’.\u{301}日本")
        for _ in 0..<2_000 {
            let text = String((0..<Int(rng.next() % 20)).map { _ in accented[Int(rng.next() % UInt64(accented.count))] })
            #expect(TextNormalizer.tokens(text) == TextNormalizer.unicodeTokens(text), "\(text.debugDescription)")
            #expect(TextNormalizer.queryTokens(text) == TextNormalizer.unicodeQueryTokens(folded: TextNormalizer.fold(text)), "query \(text.debugDescription)")
        }
    }

    @Test func keyEncodings() {
        #expect(CatalogLayout.decimalString(156, 1) == "15.6")
        #expect(CatalogLayout.decimalString(-5, 2) == "-0.05")
        #expect(CatalogLayout.parseDecimal("-0.05")! == (-5, 2))
        #expect(CatalogLayout.compare((156, 1), (1560, 2)) == 0)
        #expect(CatalogLayout.compare((155, 1), (1551, 2)) < 0)
        for v: Int64 in [0, 1, 7, 8, 99, 100, 1_000, 123_456_789] {
            #expect(CatalogLayout.bucket(v) <= CatalogLayout.bucket(v + 1))
        }
        #expect(CatalogLayout.encode(.number(unscaled: 1560, scale: 2)) == CatalogLayout.encode(.number(unscaled: 156, scale: 1)))
        #expect(CatalogLayout.decodeValue(CatalogLayout.encode(.bool(true))[...]) == .bool(true))
        let membership = [CatalogProjection.Entry(target: .posting, key: [1, 2]), CatalogProjection.Entry(target: .summary, key: [])]
        #expect(CatalogProjection.decodeMemberships(CatalogProjection.encodeMemberships(membership)) == membership)
    }
}
