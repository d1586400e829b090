@testable import EventStore
import Foundation
import Testing
import ToteDomain
import ToteProto
@testable import ToteReadModels

@Suite("Order views: a batch writes each order once, with the bytes of event-by-event application")
struct OrderViewsBatchTests {
    /// Applies `log` in consecutive batches of `sizes` (repeated).
    func applyInBatches(_ log: [RecordedEvent], sizes: [Int]) throws -> MemoryStore {
        var store = MemoryStore()
        var start = 0, i = 0
        while start < log.count {
            let size = sizes[i % sizes.count]
            let end = min(log.count, start + size)
            try OrderViewsProjection().apply(batch: log[start..<end], to: &store)
            start = end
            i += 1
        }
        return store
    }

    @Test("the generated orders among catalog events: one batch, batches of 1, 2, 3, 17, 100 and uneven cuts equal event-by-event")
    func generatedLog() throws {
        let log = recordedLog(CatalogGenerator(seed: 9).events(products: 30, orders: 400))
        var reference = MemoryStore()
        for event in log { try OrderViewsProjection().apply(event, to: &reference) }
        #expect((reference.databases[OrderKeys.viewDB]?.count ?? 0) >= 300, "the log has orders")
        for sizes in [[log.count], [1], [2], [3], [17], [100], [5, 1, 64, 2, 333, 7]] {
            #expect(try applyInBatches(log, sizes: sizes) == reference, "batches of \(sizes)")
        }
    }

    @Test("a scripted life cycle (refunds, cancellations, payment before its order) in one batch equals event-by-event; replaying the batch changes nothing")
    func scripted() throws {
        var script = OrderScript()
        try script.placeAndPay("a", at: orderT0)
        try script.order("a", .startPicking(reason: ""), at: orderT0 + orderMinute)
        try script.placeAndPay("b", customerID: "cust-2", at: orderT0 + 2 * orderMinute)
        try script.order("c", .place(orderPlaceCommand(orderID: "c", customerID: "")), at: orderT0 + 3 * orderMinute)
        var reference = MemoryStore()
        try orderApply(script.log, to: &reference)
        var batched = MemoryStore()
        try OrderViewsProjection().apply(batch: script.log[...], to: &batched)
        #expect(batched == reference)
        try OrderViewsProjection().apply(batch: script.log[...], to: &batched)
        #expect(batched == reference, "a replayed batch is harmless")
        // An undecodable event in a batch throws (the projector aborts the transaction).
        var bad = script.log
        bad.append(try script.record("order-a", type: "OrderPaid", data: [0xFF, 0xFF, 0xFF], at: orderT0, actor: orderOperator))
        var scratch = MemoryStore()
        #expect(throws: OrderProjectionError.self) { try OrderViewsProjection().apply(batch: bad[...], to: &scratch) }
    }
}
