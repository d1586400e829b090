import EventStore
import Testing
import ToteDomain
import ToteProto
import ToteReadModels

@Suite("Order views projection: a pure function over order and payment events")
struct OrderViewsProjectionTests {
    /// The stored view of `orderID`, decoded.
    func view(_ store: MemoryStore, _ orderID: String) throws -> Tote_V1_OrderView? {
        try store.get(OrderKeys.viewDB, Array(orderID.utf8)).map { try Tote_V1_OrderView(serializedBytes: $0) }
    }

    /// The (state, order id) entries of `orders.by_state`.
    func stateEntries(_ store: MemoryStore) throws -> [(UInt8, Tote_V1_OrderSummary)] {
        try orderKeys(store, OrderKeys.byStateDB).map { key in
            (key[0], try Tote_V1_OrderSummary(serializedBytes: store.get(OrderKeys.byStateDB, key)!))
        }
    }

    @Test("a scripted purchase: placed → paid → picking → packed → shipped → delivered; the view equals the deciders' view")
    func fullPurchase() throws {
        var script = OrderScript()
        try script.placeAndPay("o1", at: orderT0)
        try script.order("o1", .startPicking(reason: "wave 7"), at: orderT0 + 5 * orderMinute, actor: Principal(id: "ctl-1", role: "controller"))
        try script.order("o1", .markPacked(reason: ""), at: orderT0 + 9 * orderMinute, actor: Principal(id: "ctl-1", role: "controller"))
        try script.order("o1", .markShipped(.init(carrier: "DHL", trackingNumber: "JD0001")), at: orderT0 + 20 * orderMinute)
        try script.order("o1", .markDelivered(deliveredAtMicros: 0, reason: "carrier scan"), at: orderT0 + 3000 * orderMinute)

        var store = MemoryStore()
        // Check the secondary keys after every event, not just at the end.
        var statesSeen: [Tote_V1_OrderState] = []
        for event in script.log {
            try orderApply([event], to: &store)
            let entries = try stateEntries(store)
            if let current = try view(store, "o1") {
                #expect(entries.count == 1, "exactly one by_state entry per order")
                #expect(entries.first?.0 == UInt8(current.state.rawValue))
                #expect(entries.first?.1.stateSince == current.stateSince)
                if statesSeen.last != current.state { statesSeen.append(current.state) }
            } else {
                #expect(entries.isEmpty)
            }
        }
        #expect(statesSeen == [.placed, .paid, .picking, .packed, .shipped, .delivered])

        let stored = try #require(try store.get(OrderKeys.viewDB, Array("o1".utf8)))
        let expected = try script.expectedView("o1", paymentIDs: ["pay-o1"])
        #expect(stored == (try expected.serializedBytes() as [UInt8]), "stored bytes are the encoded response")
        let v = try #require(try view(store, "o1"))
        #expect(v.state == .delivered)
        #expect(v.version == 6)
        #expect(v.timeline.map(\.eventType) == ["OrderPlaced", "OrderPaid", "OrderPickingStarted", "OrderPacked", "OrderShipped", "OrderDelivered"])
        #expect(v.timeline.map(\.actor.id) == ["cust-1", "tote", "ctl-1", "ctl-1", "op-1", "op-1"])
        #expect(v.timeline[2].actor.role == .controller)
        #expect(v.timeline[2].reason == "wave 7")
        #expect(v.timeline[4].at.unixMicros == orderT0 + 20 * orderMinute + 7, "the time the log recorded it")
        #expect(v.payments.count == 1)
        #expect(v.payments.first?.state == .captured)
        #expect(v.payments.first?.captured.minorUnits == 8817)
        #expect(v.shipments.first?.trackingNumber == "JD0001")

        let customerKeys = orderKeys(store, OrderKeys.byCustomerDB)
        #expect(customerKeys == [try OrderKeys.customerKey(customerID: "cust-1", placedAtMicros: orderT0, orderID: "o1")])
        let summary = try Tote_V1_OrderSummary(serializedBytes: store.get(OrderKeys.byCustomerDB, customerKeys[0])!)
        #expect(summary.state == .delivered)
        #expect(summary.itemCount == 5)
        #expect(summary.total.minorUnits == 8817)
    }

    @Test("cancelling an unpaid order moves it to CANCELLED and records the released reservations")
    func cancelUnpaid() throws {
        var script = OrderScript()
        try script.order("o2", .place(orderPlaceCommand(orderID: "o2")), at: orderT0, actor: orderShopper)
        try script.order("o2", .cancel(reason: "customer changed their mind"), at: orderT0 + orderMinute)
        var store = MemoryStore()
        try orderApply(script.log, to: &store)
        let v = try #require(try view(store, "o2"))
        #expect(v.state == .cancelled)
        #expect(v.timeline.last?.reason == "customer changed their mind")
        #expect(v.timeline.last?.summary.contains("2 reservation(s) released") == true)
        #expect(v.payments.isEmpty)
        let entries = try stateEntries(store)
        #expect(entries.map(\.0) == [UInt8(Tote_V1_OrderState.cancelled.rawValue)])
        #expect(entries.first?.1.stateSince.unixMicros == orderT0 + orderMinute)
    }

    @Test("partial then full refunds: PARTIALLY_REFUNDED then REFUNDED, refunded totals, payment refunds shown")
    func refunds() throws {
        var script = OrderScript()
        try script.placeAndPay("o3", at: orderT0)
        try script.order("o3", .refund(.init(refundID: "rf-1", lines: [.init(lineID: "l2", quantity: 1)], reason: "broken mug")), at: orderT0 + 10 * orderMinute)
        try script.payment("pay-o3", .recordRefund(refundID: "rf-1", amount: orderEUR(1200), reason: "broken mug"), at: orderT0 + 11 * orderMinute)
        var store = MemoryStore()
        try orderApply(script.log, to: &store)
        var v = try #require(try view(store, "o3"))
        #expect(v.state == .partiallyRefunded)
        #expect(v.refundedTotal.minorUnits > 0)
        #expect(v.lines.first { $0.lineID == "l2" }?.quantityRefunded == 1)
        #expect(v.payments.first?.refunded.minorUnits == 1200)
        #expect(try stateEntries(store).map(\.0) == [UInt8(Tote_V1_OrderState.partiallyRefunded.rawValue)])

        let before = script.log.count
        try script.order("o3", .refund(.init(refundID: "rf-2", full: true, reason: "returned")), at: orderT0 + 60 * orderMinute)
        try orderApply(Array(script.log[before...]), to: &store)
        v = try #require(try view(store, "o3"))
        #expect(v.state == .refunded)
        #expect(v.refundedTotal.minorUnits == 8817)
        #expect(try stateEntries(store).map(\.0) == [UInt8(Tote_V1_OrderState.refunded.rawValue)])
        #expect(try store.get(OrderKeys.viewDB, Array("o3".utf8)) == (try script.expectedView("o3", paymentIDs: ["pay-o3"]).serializedBytes() as [UInt8]))
    }

    @Test("cancelling a paid order and a dispute keep one state entry each")
    func cancelPaidAndDispute() throws {
        var script = OrderScript()
        try script.placeAndPay("a", at: orderT0)
        try script.order("a", .cancel(reason: "fraud check"), at: orderT0 + orderMinute)
        try script.placeAndPay("b", at: orderT0)
        try script.order("b", .openDispute(disputeID: "dp-1", amount: orderTotal, reason: "chargeback"), at: orderT0 + orderMinute, actor: .system)
        try script.order("b", .resolveDispute(disputeID: "dp-1", won: true, reason: "evidence"), at: orderT0 + 9 * orderMinute, actor: .system)
        var store = MemoryStore()
        try orderApply(script.log, to: &store)
        let entries = try stateEntries(store).map { ($0.0, $0.1.orderID) }
        #expect(entries.count == 2)
        #expect(entries.contains { $0 == (UInt8(Tote_V1_OrderState.cancelled.rawValue), "a") })
        #expect(entries.contains { $0 == (UInt8(Tote_V1_OrderState.paid.rawValue), "b") }, "a won dispute returns to PAID")
        #expect(try view(store, "a")?.timeline.last?.summary.contains("refund of EUR 88.17 due") == true)
    }

    @Test("replaying events already applied changes nothing (a crash mid-batch replays the batch)")
    func idempotentReplay() throws {
        var script = OrderScript()
        try script.placeAndPay("o1", at: orderT0)
        try script.order("o1", .startPicking(reason: ""), at: orderT0 + orderMinute)
        var once = MemoryStore()
        try orderApply(script.log, to: &once)
        var twice = once
        try orderApply(script.log, to: &twice)
        try orderApply(Array(script.log.suffix(3)), to: &twice)
        #expect(once == twice)
    }

    @Test("the same events always yield the same bytes, however they are split into batches")
    func deterministic() throws {
        var script = OrderScript()
        for (i, id) in ["x", "y", "z"].enumerated() {
            try script.placeAndPay(id, customerID: i == 2 ? "cust-2" : "cust-1", at: orderT0 + Int64(i) * orderMinute)
        }
        try script.order("y", .startPicking(reason: ""), at: orderT0 + 30 * orderMinute)
        var a = MemoryStore()
        try orderApply(script.log, to: &a)
        var b = MemoryStore()
        for chunk in stride(from: 0, to: script.log.count, by: 4) {
            try orderApply(Array(script.log[chunk..<min(chunk + 4, script.log.count)]), to: &b)
        }
        #expect(a == b)
        #expect(Set(a.databases.keys).isSubset(of: Set(OrderViewsProjection().databases)))
    }

    @Test("payment events that arrive before the order are shown once it is placed")
    func paymentBeforeOrder() throws {
        var script = OrderScript()
        try script.placeAndPay("o5", at: orderT0)
        // The fixture initiates the payment before placing the order: the first event is the payment's.
        #expect(script.log.first?.stream == "payment-pay-o5")
        var store = MemoryStore()
        try orderApply(Array(script.log.prefix(2)), to: &store)
        #expect(try view(store, "o5")?.payments.map(\.state) == [.pending])
    }

    @Test("a guest order has no customer entry but is listed by state")
    func guestOrder() throws {
        var script = OrderScript()
        try script.order("g1", .place(orderPlaceCommand(orderID: "g1", customerID: "")), at: orderT0, actor: orderShopper)
        var store = MemoryStore()
        try orderApply(script.log, to: &store)
        #expect(orderKeys(store, OrderKeys.byCustomerDB).isEmpty)
        #expect(try stateEntries(store).map(\.1.orderID) == ["g1"])
    }

    @Test("events of other streams are ignored")
    func otherStreams() throws {
        var script = OrderScript()
        let cart = try script.record("cart-c1", type: "CartCreated", data: [1, 2, 3], at: orderT0, actor: orderShopper)
        var store = MemoryStore()
        try OrderViewsProjection().apply(cart, to: &store)
        #expect(store == MemoryStore())
    }

    @Test("an undecodable order or payment event throws and leaves the store as it was")
    func badBytes() throws {
        var script = OrderScript()
        try script.order("o1", .place(orderPlaceCommand(orderID: "o1")), at: orderT0)
        var store = MemoryStore()
        try orderApply(script.log, to: &store)
        let before = store
        let bad = try script.record("order-o1", type: "OrderPaid", data: [0xFF, 0xFF, 0xFF], at: orderT0, actor: orderOperator)
        #expect(throws: OrderProjectionError.undecodableEvent(stream: "order-o1", version: 2)) {
            try OrderViewsProjection().apply(bad, to: &store)
        }
        let badPayment = try script.record("payment-p9", type: "PaymentInitiated", data: [0x0A, 0x05, 0x01], at: orderT0, actor: .system)
        #expect(throws: OrderProjectionError.undecodableEvent(stream: "payment-p9", version: 1)) {
            try OrderViewsProjection().apply(badPayment, to: &store)
        }
        #expect(store == before)
    }

    @Test("a corrupt stored event record is reported, not misread")
    func corruptRecord() throws {
        var script = OrderScript()
        try script.order("o1", .place(orderPlaceCommand(orderID: "o1")), at: orderT0)
        var store = MemoryStore()
        try orderApply(script.log, to: &store)
        let key = try #require(orderKeys(store, OrderKeys.eventsDB).first)
        try store.put(OrderKeys.eventsDB, key, [9, 9])
        try script.order("o1", .cancel(reason: "x"), at: orderT0 + 1)
        #expect(throws: OrderProjectionError.corruptRecord(OrderKeys.eventsDB)) {
            try OrderViewsProjection().apply(script.log.last!, to: &store)
        }
    }
}
