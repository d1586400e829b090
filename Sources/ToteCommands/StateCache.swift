import Synchronization

/// Folded aggregate states by stream, each with the version it reflects. A command starts from
/// the cached state and reads only the events after that version, so a hot stream (a flash-sale
/// SKU with thousands of reservations) costs one short read per command, not a replay. A stale
/// entry is harmless: the newer events are read on top of it, and a conflicting append evicts it.
final class StateCache: Sendable {
    struct Entry {
        var version: Int64
        var state: any Sendable
    }
    private let capacity: Int
    private let entries = Mutex<[String: Entry]>([:])

    init(capacity: Int) {
        self.capacity = capacity
    }

    func get(_ stream: String) -> Entry? {
        entries.withLock { $0[stream] }
    }

    /// Keeps `state` at `version` unless a newer one is already cached. When full, drops an
    /// arbitrary half: simple, and a miss only costs a full read.
    func put(_ stream: String, version: Int64, state: any Sendable) {
        guard capacity > 0 else { return }
        entries.withLock { entries in
            if let existing = entries[stream], existing.version >= version { return }
            if entries.count >= capacity {
                for key in entries.keys.prefix(max(1, capacity / 2)) { entries[key] = nil }
            }
            entries[stream] = Entry(version: version, state: state)
        }
    }

    func evict(_ stream: String) {
        entries.withLock { $0[stream] = nil }
    }

    var count: Int { entries.withLock { $0.count } }
}
