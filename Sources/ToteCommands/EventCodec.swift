import EventStore
import Foundation
import SwiftProtobuf
import ToteDomain

/// Turns domain events into the event log's rows and back: the envelope message's bytes as
/// `data`, the case name as `type`, the envelope's schema version, and the command's metadata.
public enum EventCodec {
    /// A row to append for `event`, recorded by `context`'s actor under `commandID`.
    public static func encode<E: DomainEvent>(_ event: E, context: CommandContext, commandID: String, correlationID: String, causationID: String = "") throws -> NewEvent {
        NewEvent(
            type: event.typeName,
            schemaVersion: E.schemaVersion,
            data: try event.serializedBytes(),
            metadata: EventMetadata(
                actorID: context.actor.id,
                actorRole: context.actor.role,
                causationID: causationID,
                correlationID: correlationID,
                commandID: commandID
            )
        )
    }

    /// The domain event a row holds; a row written by a newer schema than this build knows is
    /// refused rather than misread.
    public static func decode<E: DomainEvent>(_ recorded: RecordedEvent, as type: E.Type = E.self) throws -> E {
        guard recorded.schemaVersion <= E.schemaVersion else {
            throw EventDecodingError(recorded: recorded, reason: "schema version \(recorded.schemaVersion) is newer than this build's \(E.schemaVersion)")
        }
        do {
            return try E(serializedBytes: recorded.data)
        } catch {
            throw EventDecodingError(recorded: recorded, reason: "undecodable \(E.protoMessageName): \(error)")
        }
    }
}

/// An event row that cannot be read as the domain event its stream should hold.
public struct EventDecodingError: Error, Sendable, CustomStringConvertible {
    public var stream: String
    public var version: Int64
    public var reason: String

    init(recorded: RecordedEvent, reason: String) {
        stream = recorded.stream
        version = recorded.streamVersion
        self.reason = reason
    }

    public var description: String { "event \(version) of stream \(stream): \(reason)" }
}
