import Foundation
import Testing
import ToteProto
@testable import ToteReadModels

@Suite("Event envelopes peeked without decoding")
struct EventPeekTests {
    @Test("the field numbers the projections skip by are the generated messages' own")
    func caseNumbersMatchTheProtos() throws {
        var variant = Tote_V1_ProductEvent()
        variant.variantAdded = Tote_V1_VariantAdded()
        variant.variantAdded.productID = "p-1"
        var prices = Tote_V1_ProductEvent()
        prices.productPricesSet = Tote_V1_ProductPricesSet()
        prices.productPricesSet.currency = "EUR"
        var created = Tote_V1_ProductEvent()
        created.productCreated = Tote_V1_ProductCreated()
        var placed = Tote_V1_OrderEvent()
        placed.orderPlaced = Tote_V1_OrderPlaced()
        var paid = Tote_V1_OrderEvent()
        paid.orderPaid = Tote_V1_OrderPaid()
        #expect(EventPeek.lastField(try variant.serializedBytes()) == EventPeek.ProductCase.variantAdded)
        #expect(EventPeek.lastField(try prices.serializedBytes()) == EventPeek.ProductCase.pricesSet)
        #expect(EventPeek.lastField(try created.serializedBytes()) == 1)
        #expect(EventPeek.lastField(try placed.serializedBytes()) == EventPeek.OrderCase.placed)
        #expect(EventPeek.lastField(try paid.serializedBytes()) == 2)
        #expect(EventPeek.lastField([]) == nil)
    }

    @Test("the last field wins, as it does for a oneof; malformed bytes give nil and never trap")
    func lastFieldAndMalformedBytes() throws {
        var first = Tote_V1_ProductEvent()
        first.variantAdded = Tote_V1_VariantAdded()
        var second = Tote_V1_ProductEvent()
        second.productPublished = Tote_V1_ProductPublished()
        let both = try first.serializedBytes() + second.serializedBytes()
        #expect(EventPeek.lastField(both) == 5)
        #expect(try Tote_V1_ProductEvent(serializedBytes: both).productPublished == Tote_V1_ProductPublished())
        var withLength = Tote_V1_ProductEvent()
        withLength.variantAdded.productID = "p-2"
        let whole: [UInt8] = try withLength.serializedBytes()
        #expect(EventPeek.lastField(Array(whole.dropLast())) == nil)  // length past the end
        #expect(EventPeek.lastField([0x80]) == nil)  // unterminated varint
        #expect(EventPeek.lastField([0x03]) == nil)  // a group
        #expect(EventPeek.lastField([0x00]) == nil)  // field number 0
        var rng = SplitMix64(seed: 3)
        for _ in 0..<10_000 {
            let bytes = (0..<Int(rng.next() % 12)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            _ = EventPeek.lastField(bytes)
        }
    }
}
