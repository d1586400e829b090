import EventStore

extension GeneratedEvent {
    /// As the event store would deliver it at `position` (its transaction id the same number),
    /// recorded by the generator's actor.
    public func recorded(position: Int64, streamVersion: Int64 = 1) -> RecordedEvent {
        RecordedEvent(position: LogPosition(transactionID: UInt64(position), globalPosition: position), stream: stream,
                      streamVersion: streamVersion, eventID: eventID, type: type, schemaVersion: 1, data: data,
                      metadata: EventMetadata(actorID: "generator", actorRole: "system"), recordedAtMicros: recordedAtMicros)
    }
}

/// Generated events as the log delivers them, without a database: consecutive positions from 1,
/// per-stream versions. For tests and benchmarks that feed projections directly.
public func recordedLog(_ generated: [GeneratedEvent]) -> [RecordedEvent] {
    var versions: [String: Int64] = [:]
    return generated.enumerated().map { i, g in
        versions[g.stream, default: 0] += 1
        return g.recorded(position: Int64(i + 1), streamVersion: versions[g.stream]!)
    }
}

extension EventStore {
    /// Appends generated events (``CatalogGenerator``) in their order: consecutive events go in one
    /// transaction of up to `eventsPerTransaction` events, cut where a stream would come back after
    /// another, so the log keeps the generator's order. Returns the position of the last event.
    /// For tests and benchmarks that need a realistic log in PostgreSQL.
    public func appendInLogOrder(_ events: [GeneratedEvent], eventsPerTransaction: Int = 1000) async throws -> LogPosition {
        var end = LogPosition.start
        var chunk: [StreamAppend] = []
        var streams = Set<String>()
        var count = 0
        for event in events {
            if chunk.last?.stream == event.stream {
                chunk[chunk.count - 1].events.append(event.newEvent)
            } else {
                if streams.contains(event.stream) || count >= eventsPerTransaction {
                    end = try await append(chunk).position
                    chunk = []
                    streams = []
                    count = 0
                }
                chunk.append(StreamAppend(stream: event.stream, expectedVersion: .any, events: [event.newEvent]))
                streams.insert(event.stream)
            }
            count += 1
        }
        if !chunk.isEmpty { end = try await append(chunk).position }
        return end
    }
}
