import Foundation

/// What the writer expects a stream's version to be before an append (optimistic concurrency).
public enum ExpectedVersion: Sendable, Hashable, CustomStringConvertible {
    /// Append whatever the stream's state.
    case any
    /// The stream must not exist yet.
    case noStream
    /// The stream's last event must have this version (versions start at 1).
    case exact(Int64)

    public var description: String {
        switch self {
        case .any: "any"
        case .noStream: "no stream"
        case .exact(let version): "version \(version)"
        }
    }
}

/// Who and what caused an event: stored with every event, for the audit trail.
public struct EventMetadata: Sendable, Hashable, Codable {
    /// Operator user id, customer id, controller id, or a component name ("reaper").
    public var actorID: String
    /// "storefront", "operator", "controller" or "system".
    public var actorRole: String
    /// The event or command that caused this one; empty when none.
    public var causationID: String
    /// The correlation id of the call that caused it.
    public var correlationID: String
    /// The idempotency key of the command that wrote it; empty when none.
    public var commandID: String

    public init(actorID: String, actorRole: String, causationID: String = "", correlationID: String = "", commandID: String = "") {
        self.actorID = actorID
        self.actorRole = actorRole
        self.causationID = causationID
        self.correlationID = correlationID
        self.commandID = commandID
    }
}

/// An event to append: its payload is a serialized protobuf message of `type` at `schemaVersion`.
public struct NewEvent: Sendable, Hashable {
    public var eventID: UUID
    public var type: String
    public var schemaVersion: Int32
    public var data: [UInt8]
    public var metadata: EventMetadata

    public init(eventID: UUID = UUID(), type: String, schemaVersion: Int32 = 1, data: [UInt8], metadata: EventMetadata) {
        self.eventID = eventID
        self.type = type
        self.schemaVersion = schemaVersion
        self.data = data
        self.metadata = metadata
    }
}

/// The events to append to one stream, and the version the writer expects it to have.
public struct StreamAppend: Sendable, Hashable {
    public var stream: String
    public var expectedVersion: ExpectedVersion
    public var events: [NewEvent]

    public init(stream: String, expectedVersion: ExpectedVersion, events: [NewEvent]) {
        self.stream = stream
        self.expectedVersion = expectedVersion
        self.events = events
    }
}

/// A position in the event log, in reading order: (transaction id, global position). Also the
/// consistency token a command returns: a reader that has passed it has seen the command's events.
public struct LogPosition: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var transactionID: UInt64
    public var globalPosition: Int64

    public init(transactionID: UInt64, globalPosition: Int64) {
        self.transactionID = transactionID
        self.globalPosition = globalPosition
    }

    /// Before every event.
    public static let start = LogPosition(transactionID: 0, globalPosition: 0)

    public static func < (lhs: LogPosition, rhs: LogPosition) -> Bool {
        (lhs.transactionID, lhs.globalPosition) < (rhs.transactionID, rhs.globalPosition)
    }

    public var description: String { "\(transactionID)/\(globalPosition)" }
}

/// The outcome of an append: each stream's new version and the position of the last event
/// written. A repeated command id returns the first outcome with `deduplicated` set.
public struct AppendResult: Sendable, Hashable, Codable {
    public var streamVersions: [String: Int64]
    public var position: LogPosition
    public var deduplicated: Bool
    /// What the command answered its caller (the command layer's encoded reply), stored with the
    /// command id so that a repeat gets the same answer; nil when none was given.
    public var reply: [UInt8]?

    public init(streamVersions: [String: Int64], position: LogPosition, deduplicated: Bool = false, reply: [UInt8]? = nil) {
        self.streamVersions = streamVersions
        self.position = position
        self.deduplicated = deduplicated
        self.reply = reply
    }
}

/// An event as stored in the log.
/// One command's part of a batched append (``EventStore/append(commands:)``): its id (nil: no
/// idempotency), the reply stored with the id, and its streams' events.
public struct CommandAppend: Sendable, Hashable {
    public var commandID: String?
    public var reply: [UInt8]?
    public var appends: [StreamAppend]

    public init(commandID: String?, reply: [UInt8]? = nil, appends: [StreamAppend]) {
        self.commandID = commandID
        self.reply = reply
        self.appends = appends
    }
}

public struct RecordedEvent: Sendable, Hashable {
    public var position: LogPosition
    public var stream: String
    public var streamVersion: Int64
    public var eventID: UUID
    public var type: String
    public var schemaVersion: Int32
    public var data: [UInt8]
    public var metadata: EventMetadata
    /// When the event was written, in microseconds since the Unix epoch.
    public var recordedAtMicros: Int64

    /// An event as the log delivers it. The store makes these; tests and tools build them to feed
    /// projections without a database.
    public init(position: LogPosition, stream: String, streamVersion: Int64, eventID: UUID, type: String,
                schemaVersion: Int32, data: [UInt8], metadata: EventMetadata, recordedAtMicros: Int64) {
        self.position = position
        self.stream = stream
        self.streamVersion = streamVersion
        self.eventID = eventID
        self.type = type
        self.schemaVersion = schemaVersion
        self.data = data
        self.metadata = metadata
        self.recordedAtMicros = recordedAtMicros
    }
}

/// Why an append or read was refused.
public struct EventStoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kinds of failure, extensible.
    public struct Code: RawRepresentable, Hashable, Sendable {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        /// A stream's version was not the expected one.
        public static let wrongExpectedVersion = Code(rawValue: "wrong_expected_version")
        /// The request itself is invalid (no events, duplicate stream, empty name).
        public static let invalidAppend = Code(rawValue: "invalid_append")
        /// The database is unreachable or restarting: retry.
        public static let unavailable = Code(rawValue: "unavailable")
        /// One command of a batch of several (``EventStore/append(commands:)``) was already
        /// processed; ``EventStoreError/commandID`` names it. Nothing was written.
        public static let alreadyProcessed = Code(rawValue: "already_processed")
    }

    public var code: Code
    public var message: String
    /// For a version conflict: the stream and its actual version (nil if it does not exist).
    public var stream: String?
    public var actualVersion: Int64?
    /// For `.alreadyProcessed`: the command id.
    public var commandID: String?

    public init(_ code: Code, _ message: String, stream: String? = nil, actualVersion: Int64? = nil, commandID: String? = nil) {
        self.code = code
        self.message = message
        self.stream = stream
        self.actualVersion = actualVersion
        self.commandID = commandID
    }

    public var description: String { message }
}
