import SwiftProtobuf

/// The shape of every aggregate in Tote: a pure function from a command and the current state to
/// new events, and a pure fold from events to state. No I/O, no clock: time arrives in the
/// command's ``CommandContext``.
///
/// The command side loads a stream, folds its events with ``evolve(_:_:)`` from ``initialState``,
/// calls ``decide(_:state:context:)`` and appends what it returns with the stream's version as the
/// expected version. Replaying the stream always rebuilds the same state.
public protocol Decider {
    /// What the decider knows about one stream.
    associatedtype State: Sendable & Equatable
    /// What can be asked of it.
    associatedtype Command: Sendable
    /// What it records: a protobuf message with a `oneof` of event cases (see `Protos/tote/v1/*_events.proto`).
    associatedtype Event: DomainEvent

    /// The state of a stream with no events.
    static var initialState: State { get }
    /// The events `command` produces in `state`, or a ``DomainError`` saying why it is refused.
    /// Returns no events when the command is already satisfied (an idempotent repeat).
    static func decide(_ command: Command, state: State, context: CommandContext) throws(DomainError) -> [Event]
    /// The state after `event`. Never fails: an event is a fact.
    static func evolve(_ state: State, _ event: Event) -> State
}

extension Decider {
    /// Folds `events` from `state` (``initialState`` by default).
    public static func fold<S: Sequence>(_ events: S, from state: State = initialState) -> State where S.Element == Event {
        events.reduce(state, evolve)
    }
}

/// An event envelope message: one protobuf message per aggregate whose `oneof` holds the event
/// cases. Stored in the event log as the envelope's bytes, with ``typeName`` in the log's `type`
/// column so that `psql` shows what happened without decoding.
public protocol DomainEvent: SwiftProtobuf.Message, Sendable, Equatable {
    /// The name of the case this event holds, e.g. `StockReceived` (the case message's name).
    var typeName: String { get }
    /// The payload schema version written with it (bump when a case changes incompatibly and add
    /// an upcaster in the decoder).
    static var schemaVersion: Int32 { get }
}

extension DomainEvent {
    public static var schemaVersion: Int32 { 1 }
}

/// Who asks and when: the inputs a decider needs that are not in the command itself.
public struct CommandContext: Sendable, Equatable {
    /// The caller, recorded on every event (`actor_id`, `actor_role`).
    public var actor: Principal
    /// The time of the decision in microseconds since the Unix epoch. Deciders never read a clock.
    public var nowMicros: Int64

    public init(actor: Principal, nowMicros: Int64) {
        self.actor = actor
        self.nowMicros = nowMicros
    }
}

/// Who did something.
public struct Principal: Sendable, Equatable, Hashable {
    public var id: String
    /// `storefront`, `operator`, `controller` or `system`.
    public var role: String

    public init(id: String, role: String) {
        self.id = id
        self.role = role
    }

    /// Tote itself (reapers, process managers reacting to events).
    public static let system = Principal(id: "tote", role: "system")
}
