import Testing
import ToteRPC
@testable import EventStore

@Suite("Event store: pure parts")
struct EventStoreUnitTests {
    static let metadata = EventMetadata(actorID: "t", actorRole: "system")
    static func event() -> NewEvent { NewEvent(type: "T", data: [1], metadata: metadata) }

    @Test("invalid appends are refused before touching the database", arguments: [
        ([], "an append needs at least one stream"),
        ([StreamAppend(stream: "", expectedVersion: .any, events: [event()])], "stream names must not be empty"),
        ([StreamAppend(stream: "a", expectedVersion: .any, events: [])], "no events to append to stream a"),
        ([StreamAppend(stream: "a", expectedVersion: .any, events: [event()]), StreamAppend(stream: "a", expectedVersion: .any, events: [event()])],
         "stream a appears twice in one append"),
        ([StreamAppend(stream: "a", expectedVersion: .exact(0), events: [event()])],
         "expected version 0 of a is not a version (they start at 1; use noStream)"),
    ] as [([StreamAppend], String)])
    func validation(appends: [StreamAppend], message: String) {
        #expect(throws: EventStoreError(.invalidAppend, message)) { try EventStore.validate(appends) }
    }

    @Test("log positions order by transaction id first, then global position")
    func ordering() {
        let a = LogPosition(transactionID: 5, globalPosition: 100)
        let b = LogPosition(transactionID: 6, globalPosition: 3)
        #expect(a < b)
        #expect(LogPosition.start < a)
        #expect([b, a, .start].sorted() == [.start, a, b])
    }

    @Test("errors map to wire statuses in one place")
    func mapping() {
        let conflict = EventStoreError(.wrongExpectedVersion, "stream s expected version 3, but it is at version 4", stream: "s", actualVersion: 4)
        #expect(conflict.rpcError.code == .aborted)
        guard case .currentState(let state) = conflict.rpcError.details.first?.kind else { Issue.record("no current state"); return }
        #expect(state.resourceID == "s" && state.version == 4)
        #expect(EventStoreError(.unavailable, "down").rpcError.code == .unavailable)
        #expect(RPCError.from(EventStoreError(.invalidAppend, "bad")).code == .invalidArgument)
    }
}
