import ToteDomain
import ToteProto

/// The controller stream (`controller-<id>`) as a ``Decider`` so that the bridge can load it and
/// record its events in a ``UnitOfWork`` next to task events (one atomic append). Nothing is
/// decided on it: the events come from ``ControllerSession`` and ``ControllerLog``.
public enum ControllerStreamDecider: Decider {
    /// No commands: events are recorded with ``UnitOfWork/recordController(_:_:)``.
    public enum Command: Sendable {}
    public typealias State = ControllerLog.State
    public typealias Event = Tote_V1_ControllerEvent

    public static var initialState: State { State() }

    public static func decide(_ command: Command, state: State, context: CommandContext) throws(DomainError) -> [Event] {}

    public static func evolve(_ state: State, _ event: Event) -> State { ControllerLog.evolve(state, event) }
}

extension UnitOfWork {
    /// Loads `controller-<controllerID>` and records `events` on it (part of this unit's append).
    public mutating func recordController(_ controllerID: String, _ events: [Tote_V1_ControllerEvent]) async throws {
        guard !events.isEmpty else { return }
        let stream = StreamName.controller(controllerID)
        let state = try await load(ControllerStreamDecider.self, stream)
        try record(ControllerStreamDecider.self, stream, events, state: ControllerStreamDecider.fold(events, from: state))
    }
}
