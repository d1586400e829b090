import ToteProto

/// An event about an order recorded on another stream — one of its payments, warehouse tasks, or
/// a stock item holding one of its reservations — as read back from the log.
public struct RelatedOrderEvent: Sendable, Equatable {
    /// `payment-<id>`, `task-<id>` or `stock-<sku>@<location>`.
    public var stream: String
    public var streamVersion: Int64
    /// The event envelope's bytes.
    public var data: [UInt8]
    /// When the log recorded it (microseconds since the epoch).
    public var recordedAtMicros: Int64
    /// The actor from the log's metadata columns (used when the event names none).
    public var actor: Principal
    /// The global log position: the history interleaves streams in log order.
    public var position: Int64

    public init(stream: String, streamVersion: Int64, data: [UInt8], recordedAtMicros: Int64, actor: Principal, position: Int64) {
        self.stream = stream
        self.streamVersion = streamVersion
        self.data = data
        self.recordedAtMicros = recordedAtMicros
        self.actor = actor
        self.position = position
    }
}

extension OrderDecider {
    /// The order's complete history for operators: its own timeline (``timeline(_:)``, each
    /// entry with the log position of its event) interleaved in log order with the entries of
    /// `related` events that concern `orderID` (``relatedEntry(_:orderID:)``). A related entry
    /// carries its stream and the order state at that point.
    public static func history(orderID: String, own: [(entry: Tote_V1_TimelineEntry, position: Int64)], related: [RelatedOrderEvent]) throws -> [Tote_V1_TimelineEntry] {
        var entries: [(position: Int64, entry: Tote_V1_TimelineEntry)] = own.map { ($0.position, $0.entry) }
        for event in related {
            if let entry = try relatedEntry(event, orderID: orderID) { entries.append((event.position, entry)) }
        }
        entries.sort { $0.position < $1.position }
        var state = Tote_V1_OrderState.unspecified
        return entries.map { item in
            var entry = item.entry
            if entry.stream.isEmpty { state = entry.state } else { entry.state = state }
            return entry
        }
    }

    /// One related event as a timeline entry: type, actor (the event's own when it names one,
    /// else the log's), reason, stream and version, and a one-line summary. Nil for an event
    /// that does not concern `orderID` (another order's reservation on the same stock item) or a
    /// stream kind it does not know.
    public static func relatedEntry(_ event: RelatedOrderEvent, orderID: String) throws -> Tote_V1_TimelineEntry? {
        var entry = Tote_V1_TimelineEntry()
        entry.stream = event.stream
        entry.streamVersion = event.streamVersion
        entry.at = timestamp(event.recordedAtMicros)
        var actorID = "", actorRole = ""
        if event.stream.hasPrefix("task-") {
            let e = try Tote_V1_TaskEvent(serializedBytes: event.data)
            entry.eventType = e.typeName
            (actorID, actorRole, entry.reason, entry.summary) = taskDetails(e)
        } else if event.stream.hasPrefix("payment-") {
            let e = try Tote_V1_PaymentEvent(serializedBytes: event.data)
            entry.eventType = e.typeName
            (entry.reason, entry.summary) = paymentDetails(e)
        } else if event.stream.hasPrefix("stock-") {
            let e = try Tote_V1_StockItemEvent(serializedBytes: event.data)
            guard let (reservationID, reason, summary) = reservationDetails(e), reservationID.hasPrefix(orderID + "/") else { return nil }
            entry.eventType = e.typeName
            entry.reason = reason
            entry.summary = summary
        } else {
            return nil
        }
        entry.actor = protoActor(id: actorID.isEmpty ? event.actor.id : actorID, role: actorID.isEmpty ? event.actor.role : actorRole)
        return entry
    }

    /// (actor id, actor role, reason, summary) of a task event.
    private static func taskDetails(_ e: Tote_V1_TaskEvent) -> (String, String, String, String) {
        switch e.event {
        case .taskCreated(let x)?: (x.actorID, x.actorRole, "", "task \(x.taskID) created: \(x.lines.count) line(s)")
        case .taskAssigned(let x)?: ("", "", "", "task \(x.taskID) assigned to \(x.controllerID)")
        case .taskDispatched(let x)?: ("", "", "", "task \(x.taskID) sent to \(x.controllerID)")
        case .taskAccepted(let x)?: ("", "", "", "task \(x.taskID) accepted")
        case .taskStarted(let x)?: ("", "", "", "task \(x.taskID) started")
        case .taskFinished(let x)?: ("", "", "", "task \(x.taskID) finished at \(x.controllerID)")
        case .taskFailed(let x)?: ("", "", x.failureText, "task \(x.taskID) failed at \(x.controllerID): \(x.failureCode)\(x.retriable ? " (retriable)" : "")")
        case .taskExceptionRaised(let x)?: ("", "", "", "task \(x.taskID): exception")
        case .taskReassigned(let x)?:
            (x.actorID, x.actorRole, x.reason, "task \(x.taskID) reassigned from \(x.previousControllerID.isEmpty ? "no station" : x.previousControllerID) to \(x.targetControllerID.isEmpty ? "any station" : x.targetControllerID)")
        case .taskCancelled(let x)?: (x.actorID, x.actorRole, x.reason, "task \(x.taskID) cancelled")
        case .taskRetried(let x)?: (x.actorID, x.actorRole, x.reason, "task \(x.taskID) retried")
        case .taskCompletedByHand(let x)?: (x.actorID, x.actorRole, x.reason, "task \(x.taskID) marked done by hand")
        case .taskInterventionRequired(let x)?: (x.actorID, x.actorRole, x.reason, "task \(x.taskID) needs an operator")
        case nil: ("", "", "", "")
        }
    }

    /// (reason, summary) of a payment event.
    private static func paymentDetails(_ e: Tote_V1_PaymentEvent) -> (String, String) {
        switch e.event {
        case .paymentDeclined(let x)?: (x.failureMessage, "payment declined: \(x.failureCode)")
        case .paymentFailed(let x)?: (x.failureMessage, "payment failed: \(x.failureCode)")
        default: ("", "payment: \(e.typeName)")
        }
    }

    /// (reservation id, reason, summary) of a stock event about a reservation; nil otherwise.
    private static func reservationDetails(_ e: Tote_V1_StockItemEvent) -> (String, String, String)? {
        switch e.event {
        case .stockReserved(let x)?:
            (x.reservation.reservationID, "", "reserved \(x.reservation.quantity) x \(x.key.sku) at \(x.key.locationID)")
        case .reservationExtended(let x)?: (x.reservationID, "", "reservation of \(x.key.sku) extended")
        case .reservationReleased(let x)?: (x.reservationID, x.reason, "released \(x.quantity) x \(x.key.sku) at \(x.key.locationID)")
        case .reservationCommitted(let x)?: (x.reservationID, "", "took \(x.quantity) x \(x.key.sku) from \(x.key.locationID)")
        case .reservationExpired(let x)?: (x.reservationID, "", "reservation of \(x.quantity) x \(x.key.sku) expired")
        default: nil
        }
    }
}
