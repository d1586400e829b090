import ToteProto

/// The stock of one SKU at one location (stream ``StreamName/stockItem(sku:location:)``): on hand,
/// and reservations that hold units until they expire, are released, or are committed on payment.
///
/// Availability is computed from the command's clock input: `available = on hand − Σ quantities of
/// reservations with now < expiresAt`, never negative. Expiry is **exclusive**: a reservation
/// whose `expiresAtMicros == now` no longer counts, and the reaper
/// (``Command/expireReservations(key:)``) records ``Tote_V1_ReservationExpired`` for it.
public enum StockItemDecider: Decider {
    public typealias Event = Tote_V1_StockItemEvent

    /// The largest quantity one command may receive, adjust, count or reserve.
    public static let maxQuantity: Int64 = 1_000_000_000
    /// The longest reference, reason or note text accepted (in characters).
    public static let maxTextLength = 1_000
    /// The longest SKU or location id accepted (in characters).
    public static let maxIdLength = 128

    // MARK: - Model

    /// Which stock item: one SKU at one location.
    public struct Key: Sendable, Hashable, CustomStringConvertible {
        /// Catalog variant SKU.
        public var sku: String
        /// Stock location code (never contains `@`, so the stream name is unambiguous).
        public var locationId: String

        public init(sku: String, locationId: String) {
            self.sku = sku
            self.locationId = locationId
        }

        /// `<sku>@<location>`, the subject named in out-of-stock refusals.
        public var description: String { "\(sku)@\(locationId)" }
        /// The event-log stream of this stock item.
        public var streamName: String { StreamName.stockItem(sku: sku, location: locationId) }

        /// From the wire type.
        public init(_ proto: Tote_V1_StockItemKey) {
            self.init(sku: proto.sku, locationId: proto.locationID)
        }

        /// To the wire type.
        public var proto: Tote_V1_StockItemKey {
            var key = Tote_V1_StockItemKey()
            key.sku = sku
            key.locationID = locationId
            return key
        }
    }

    /// Where a reservation is in its life. ``protoName`` is the name used as `currentState` in refusals.
    public enum ReservationStatus: Sendable, Equatable {
        /// Holding units while now < expiresAt.
        case active
        /// Ended without taking stock.
        case released
        /// Ended by taking its units out of on hand.
        case committed
        /// Past its expiry (recorded by the reaper, or overdue and not yet reaped).
        case expired

        /// `RESERVATION_STATUS_*`, as in `inventory_events.proto`.
        public var protoName: String {
            switch self {
            case .active: "RESERVATION_STATUS_ACTIVE"
            case .released: "RESERVATION_STATUS_RELEASED"
            case .committed: "RESERVATION_STATUS_COMMITTED"
            case .expired: "RESERVATION_STATUS_EXPIRED"
            }
        }
    }

    /// A reservation that has not ended (it may be overdue: see ``isLive(atMicros:)``).
    public struct Reservation: Sendable, Equatable {
        public var id: String
        public var quantity: Int64
        /// It counts while `now < expiresAtMicros`.
        public var expiresAtMicros: Int64
        /// What holds it, e.g. `order:<uuid>`.
        public var reference: String
        public var createdAtMicros: Int64

        public init(id: String, quantity: Int64, expiresAtMicros: Int64, reference: String, createdAtMicros: Int64) {
            self.id = id
            self.quantity = quantity
            self.expiresAtMicros = expiresAtMicros
            self.reference = reference
            self.createdAtMicros = createdAtMicros
        }

        /// Whether it still holds units at `micros` (expiry is exclusive).
        public func isLive(atMicros micros: Int64) -> Bool { micros < expiresAtMicros }

        /// To the wire type (`tote.v1.Reservation`).
        public var proto: Tote_V1_Reservation {
            var r = Tote_V1_Reservation()
            r.reservationID = id
            r.quantity = quantity
            r.expiresAt = stockTimestamp(expiresAtMicros)
            r.reference = reference
            r.createdAt = stockTimestamp(createdAtMicros)
            return r
        }
    }

    /// A reservation that ended, kept so that repeats of commands about it stay idempotent.
    public struct EndedReservation: Sendable, Equatable {
        /// `.released`, `.committed` or `.expired`.
        public var status: ReservationStatus
        public var quantity: Int64

        public init(status: ReservationStatus, quantity: Int64) {
            self.status = status
            self.quantity = quantity
        }
    }

    /// What the decider knows about one stock item.
    public struct State: Sendable, Equatable {
        /// Set by the first event; nil for a stock item never touched.
        public var key: Key?
        /// Units physically there and not yet committed to a paid order; never negative.
        public var onHand: Int64 = 0
        /// Reservations not yet ended, by id (including overdue ones the reaper has not recorded).
        public var reservations: [String: Reservation] = [:]
        /// Reservations that ended, by id.
        public var ended: [String: EndedReservation] = [:]

        public init() {}

        /// Units held by reservations still live at `micros` (saturating at `Int64.max`).
        public func reserved(atMicros micros: Int64) -> Int64 {
            var total: Int64 = 0
            for reservation in reservations.values where reservation.isLive(atMicros: micros) {
                let (sum, overflow) = total.addingReportingOverflow(reservation.quantity)
                total = overflow ? Int64.max : sum
            }
            return total
        }

        /// What can still be reserved at `micros`: on hand − reserved, never negative.
        public func available(atMicros micros: Int64) -> Int64 {
            max(0, onHand - reserved(atMicros: micros))
        }

        /// The reservations live at `micros`, soonest expiry first (ties by id).
        public func liveReservations(atMicros micros: Int64) -> [Reservation] {
            reservations.values.filter { $0.isLive(atMicros: micros) }.sorted {
                ($0.expiresAtMicros, $0.id) < ($1.expiresAtMicros, $1.id)
            }
        }

        /// The earliest expiry among reservations not yet ended, or nil if there are none: when
        /// the reaper should next run. A time at or before now means it has work already.
        public var nextExpiryMicros: Int64? {
            reservations.values.map(\.expiresAtMicros).min()
        }

        /// The status of reservation `id` at `micros`, or nil if it never existed here.
        public func status(ofReservation id: String, atMicros micros: Int64) -> ReservationStatus? {
            if let live = reservations[id] { return live.isLive(atMicros: micros) ? .active : .expired }
            return ended[id]?.status
        }

        /// The stock level at `micros` in the wire shape (`GetStock`); `version` is the stream's.
        public func stockLevel(atMicros micros: Int64, version: Int64) -> Tote_V1_StockLevel {
            var level = Tote_V1_StockLevel()
            if let key { level.key = key.proto }
            level.onHand = onHand
            level.reserved = reserved(atMicros: micros)
            level.available = available(atMicros: micros)
            level.reservations = liveReservations(atMicros: micros).map(\.proto)
            level.version = version
            return level
        }
    }

    /// How an adjustment changes on hand.
    public enum Adjustment: Sendable, Equatable {
        /// Add (positive) or remove (negative) units; not 0.
        case delta(Int64)
        /// On hand is now exactly this (a physical count).
        case countedQuantity(Int64)
    }

    /// What can be asked of a stock item. Each names its stock item; the service routes it to the
    /// stream ``Key/streamName`` and computes expiries as its now + ttl.
    public enum Command: Sendable, Equatable {
        /// Adds received goods to on hand. `reference` (the delivery document) is required.
        case receive(key: Key, quantity: Int64, reference: String)
        /// Corrects on hand with a reason. Refused if on hand would go negative, or below what is
        /// reserved unless `force`.
        case adjust(key: Key, change: Adjustment, reason: Tote_V1_StockAdjustmentReason, note: String, force: Bool)
        /// Reserves `quantity` until `expiresAtMicros` (> now) for `reference` (e.g. `order:<id>`),
        /// under a caller-chosen id (a repeat with the same id and quantity is a no-op).
        case reserve(key: Key, reservationId: String, quantity: Int64, expiresAtMicros: Int64, reference: String)
        /// Moves a live reservation's expiry later (an earlier or equal expiry is a no-op).
        case extendReservation(key: Key, reservationId: String, expiresAtMicros: Int64)
        /// Ends a reservation without taking stock; a no-op for one already released or expired.
        case releaseReservation(key: Key, reservationId: String, reason: String)
        /// Ends a reservation by taking its units out of on hand (the order was paid).
        case commitReservation(key: Key, reservationId: String)
        /// The reaper: records the expiry of every reservation overdue at now.
        case expireReservations(key: Key)
    }

    // MARK: - Decider

    public static var initialState: State { State() }

    public static func decide(_ command: Command, state: State, context: CommandContext) throws(DomainError) -> [Event] {
        let now = context.nowMicros
        switch command {
        case let .receive(key, quantity, reference):
            var v = Validator()
            validate(key, state: state, into: &v)
            validateQuantity(quantity, "quantity", into: &v)
            validateText(reference, "reference", required: true, into: &v)
            try v.check()
            let (onHandAfter, overflow) = state.onHand.addingReportingOverflow(quantity)
            guard !overflow else { throw .invalid("quantity", "would overflow on hand (\(state.onHand))") }
            var e = Tote_V1_StockReceived()
            e.key = key.proto
            e.quantity = quantity
            e.reference = reference
            e.onHandAfter = onHandAfter
            e.receivedAt = stockTimestamp(now)
            return [event(.stockReceived(e))]

        case let .adjust(key, change, reason, note, force):
            var v = Validator()
            validate(key, state: state, into: &v)
            switch change {
            case .delta(let delta):
                v.require(delta != 0, "delta", "must not be 0")
                v.require(delta.magnitude <= UInt64(maxQuantity), "delta", "must be within ±\(maxQuantity)")
            case .countedQuantity(let counted):
                v.require(counted >= 0 && counted <= maxQuantity, "counted_quantity", "must be between 0 and \(maxQuantity)")
            }
            switch reason {
            case .unspecified, .UNRECOGNIZED: v.require(false, "reason", "is required")
            default: break
            }
            validateText(note, "note", required: false, into: &v)
            try v.check()
            let delta: Int64
            let counted: Bool
            switch change {
            case .delta(let d): (delta, counted) = (d, false)
            case .countedQuantity(let c): (delta, counted) = (c - state.onHand, true)
            }
            if delta == 0 { return [] }  // a count that matches on hand: nothing to correct
            let (onHandAfter, overflow) = state.onHand.addingReportingOverflow(delta)
            guard !overflow else { throw .invalid("delta", "would overflow on hand (\(state.onHand))") }
            guard onHandAfter >= 0 else {
                throw .invalid(counted ? "counted_quantity" : "delta", "would make on hand negative (on hand is \(state.onHand))")
            }
            if delta < 0 && !force && onHandAfter < state.reserved(atMicros: now) {
                throw .outOfStock(key.description, requested: -delta, available: state.available(atMicros: now))
            }
            var e = Tote_V1_StockAdjusted()
            e.key = key.proto
            e.delta = delta
            e.onHandAfter = onHandAfter
            e.reason = reason
            e.note = note
            e.counted = counted
            e.forced = force && onHandAfter < state.reserved(atMicros: now)
            e.adjustedAt = stockTimestamp(now)
            return [event(.stockAdjusted(e))]

        case let .reserve(key, reservationId, quantity, expiresAtMicros, reference):
            var v = Validator()
            validate(key, state: state, into: &v)
            validateId(reservationId, "reservation_id", into: &v)
            validateQuantity(quantity, "quantity", into: &v)
            v.require(expiresAtMicros > now, "ttl", "must be positive (the expiry must be after now)")
            validateText(reference, "reference", required: true, into: &v)
            try v.check()
            if let existing = state.reservations[reservationId] {
                guard existing.quantity == quantity else {
                    throw DomainError(.alreadyExists, "reservation \(reservationId) already exists with quantity \(existing.quantity)")
                }
                guard existing.isLive(atMicros: now) else {
                    throw .wrongState("reservation \(reservationId) has expired", currentState: ReservationStatus.expired.protoName)
                }
                return []
            }
            if let ended = state.ended[reservationId] {
                throw .wrongState("reservation \(reservationId) has ended", currentState: ended.status.protoName)
            }
            let available = state.available(atMicros: now)
            guard quantity <= available else {
                throw .outOfStock(key.description, requested: quantity, available: available)
            }
            var e = Tote_V1_StockReserved()
            e.key = key.proto
            e.reservation = Reservation(id: reservationId, quantity: quantity, expiresAtMicros: expiresAtMicros, reference: reference, createdAtMicros: now).proto
            return [event(.stockReserved(e))]

        case let .extendReservation(key, reservationId, expiresAtMicros):
            var v = Validator()
            validate(key, state: state, into: &v)
            validateId(reservationId, "reservation_id", into: &v)
            v.require(expiresAtMicros > now, "ttl", "must be positive (the expiry must be after now)")
            try v.check()
            let reservation = try liveReservation(reservationId, in: state, now: now)
            if expiresAtMicros <= reservation.expiresAtMicros { return [] }  // never earlier than it already did
            var e = Tote_V1_ReservationExtended()
            e.key = key.proto
            e.reservationID = reservationId
            e.previousExpiresAt = stockTimestamp(reservation.expiresAtMicros)
            e.expiresAt = stockTimestamp(expiresAtMicros)
            e.extendedAt = stockTimestamp(now)
            return [event(.reservationExtended(e))]

        case let .releaseReservation(key, reservationId, reason):
            var v = Validator()
            validate(key, state: state, into: &v)
            validateId(reservationId, "reservation_id", into: &v)
            validateText(reason, "reason", required: false, into: &v)
            try v.check()
            if let ended = state.ended[reservationId] {
                if ended.status == .committed {
                    throw .wrongState("reservation \(reservationId) was committed", currentState: ended.status.protoName)
                }
                return []  // already released or expired
            }
            guard let reservation = state.reservations[reservationId] else {
                throw DomainError(.notFound, "no reservation \(reservationId) on \(key)")
            }
            // An overdue reservation not yet reaped is released too: it records the reason and
            // spares the reaper.
            var e = Tote_V1_ReservationReleased()
            e.key = key.proto
            e.reservationID = reservationId
            e.quantity = reservation.quantity
            e.reason = reason
            e.releasedAt = stockTimestamp(now)
            return [event(.reservationReleased(e))]

        case let .commitReservation(key, reservationId):
            var v = Validator()
            validate(key, state: state, into: &v)
            validateId(reservationId, "reservation_id", into: &v)
            try v.check()
            if let ended = state.ended[reservationId] {
                if ended.status == .committed { return [] }
                throw .wrongState("reservation \(reservationId) has ended", currentState: ended.status.protoName)
            }
            guard let reservation = state.reservations[reservationId] else {
                throw DomainError(.notFound, "no reservation \(reservationId) on \(key)")
            }
            let afterExpiry = !reservation.isLive(atMicros: now)
            if afterExpiry {
                // It no longer holds units: take them only if nobody else holds them now.
                let available = state.available(atMicros: now)
                guard reservation.quantity <= available else {
                    throw .outOfStock(key.description, requested: reservation.quantity, available: available)
                }
            } else if reservation.quantity > state.onHand {
                // Only after a forced adjustment took on hand below what was reserved.
                throw .outOfStock(key.description, requested: reservation.quantity, available: state.onHand)
            }
            var e = Tote_V1_ReservationCommitted()
            e.key = key.proto
            e.reservationID = reservationId
            e.quantity = reservation.quantity
            e.reference = reservation.reference
            e.onHandAfter = state.onHand - reservation.quantity
            e.afterExpiry = afterExpiry
            e.committedAt = stockTimestamp(now)
            return [event(.reservationCommitted(e))]

        case let .expireReservations(key):
            var v = Validator()
            validate(key, state: state, into: &v)
            try v.check()
            let overdue = state.reservations.values.filter { !$0.isLive(atMicros: now) }.sorted {
                ($0.expiresAtMicros, $0.id) < ($1.expiresAtMicros, $1.id)
            }
            return overdue.map { reservation in
                var e = Tote_V1_ReservationExpired()
                e.key = key.proto
                e.reservationID = reservation.id
                e.quantity = reservation.quantity
                e.expiresAt = stockTimestamp(reservation.expiresAtMicros)
                e.reference = reservation.reference
                e.expiredAt = stockTimestamp(now)
                return event(.reservationExpired(e))
            }
        }
    }

    public static func evolve(_ state: State, _ event: Event) -> State {
        var state = state
        switch event.event {
        case .stockReceived(let e):
            state.key = Key(e.key)
            state.onHand = e.onHandAfter
        case .stockAdjusted(let e):
            state.key = Key(e.key)
            state.onHand = e.onHandAfter
        case .stockReserved(let e):
            state.key = Key(e.key)
            let r = e.reservation
            state.reservations[r.reservationID] = Reservation(
                id: r.reservationID, quantity: r.quantity, expiresAtMicros: r.expiresAt.unixMicros,
                reference: r.reference, createdAtMicros: r.createdAt.unixMicros)
        case .reservationExtended(let e):
            state.reservations[e.reservationID]?.expiresAtMicros = e.expiresAt.unixMicros
        case .reservationReleased(let e):
            state.reservations[e.reservationID] = nil
            state.ended[e.reservationID] = EndedReservation(status: .released, quantity: e.quantity)
        case .reservationCommitted(let e):
            state.reservations[e.reservationID] = nil
            state.ended[e.reservationID] = EndedReservation(status: .committed, quantity: e.quantity)
            state.onHand = e.onHandAfter
        case .reservationExpired(let e):
            state.reservations[e.reservationID] = nil
            state.ended[e.reservationID] = EndedReservation(status: .expired, quantity: e.quantity)
        case nil:
            break
        }
        return state
    }

    // MARK: - Helpers

    /// The reservation if it is live at `now`; otherwise the refusal naming its state.
    private static func liveReservation(_ id: String, in state: State, now: Int64) throws(DomainError) -> Reservation {
        if let reservation = state.reservations[id] {
            guard reservation.isLive(atMicros: now) else {
                throw .wrongState("reservation \(id) has expired", currentState: ReservationStatus.expired.protoName)
            }
            return reservation
        }
        if let ended = state.ended[id] {
            throw .wrongState("reservation \(id) has ended", currentState: ended.status.protoName)
        }
        throw DomainError(.notFound, "no reservation \(id)" + (state.key.map { " on \($0)" } ?? ""))
    }

    private static func validate(_ key: Key, state: State, into v: inout Validator) {
        validateId(key.sku, "key.sku", into: &v)
        validateId(key.locationId, "key.location_id", into: &v)
        v.require(!key.locationId.contains("@"), "key.location_id", "must not contain '@'")
        if let existing = state.key {
            v.require(existing == key, "key", "this stream holds \(existing), not \(key)")
        }
    }

    private static func validateId(_ id: String, _ field: String, into v: inout Validator) {
        v.require(!id.isEmpty, field, "is required")
        v.require(id.count <= maxIdLength, field, "must be at most \(maxIdLength) characters")
    }

    private static func validateQuantity(_ quantity: Int64, _ field: String, into v: inout Validator) {
        v.require(quantity > 0 && quantity <= maxQuantity, field, "must be between 1 and \(maxQuantity)")
    }

    private static func validateText(_ text: String, _ field: String, required: Bool, into v: inout Validator) {
        if required { v.require(!text.isEmpty, field, "is required") }
        v.require(text.count <= maxTextLength, field, "must be at most \(maxTextLength) characters")
    }

    private static func event(_ payload: Event.OneOf_Event) -> Event {
        var e = Event()
        e.event = payload
        return e
    }
}

extension Tote_V1_StockItemEvent: DomainEvent {
    /// The case message's name, e.g. `StockReceived`.
    public var typeName: String {
        switch event {
        case .stockReceived: "StockReceived"
        case .stockAdjusted: "StockAdjusted"
        case .stockReserved: "StockReserved"
        case .reservationExtended: "ReservationExtended"
        case .reservationReleased: "ReservationReleased"
        case .reservationCommitted: "ReservationCommitted"
        case .reservationExpired: "ReservationExpired"
        case nil: "StockItemEvent"
        }
    }
}

/// A wire timestamp from microseconds since the epoch.
private func stockTimestamp(_ micros: Int64) -> Tote_V1_Timestamp {
    var t = Tote_V1_Timestamp()
    t.unixMicros = micros
    return t
}
