import EventStore

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
