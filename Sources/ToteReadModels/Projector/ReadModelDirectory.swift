import EventStore
import Foundation
import LMDB
import Synchronization

/// The folder of a read node's LMDB environments and the pointer to the live one, so that a
/// rebuild can replace the read models atomically while queries keep running.
///
/// Layout: `<root>/gen-000001/`, `<root>/gen-000002/`, … (one LMDB environment each) and
/// `<root>/current`, a symbolic link to the live generation. A switch writes a new link beside
/// it and renames it over `current` (atomic on POSIX). Every process re-reads the link at most
/// every ``refreshInterval`` (or at once through ``refresh()``); a query already running keeps
/// its snapshot of the old environment, which closes when its last user lets go, and the next
/// query reads the new one. No query fails during a switch.
///
/// Queries hold the directory as their ``ReadModelSource``. Inside one process there must be
/// one directory per root: LMDB forbids opening one environment twice in a process, so the
/// projector of `tote serve` writes through ``current`` of the same directory the queries read.
public final class ReadModelDirectory: ReadModelSource {
    /// The folder holding the generations and the `current` link.
    public let root: String
    public let databases: [String]
    public let projections: [String]
    public let configuration: Environment.Configuration
    /// How long a process trusts the link it read last.
    public let refreshInterval: Duration

    private struct Live {
        var generation: String
        var store: LMDBReadModelStore
        var checkedAt: ContinuousClock.Instant
    }

    private let live: Mutex<Live>
    private static let link = "current"
    private static let clock = ContinuousClock()

    /// Opens the live generation under `root`. Writable, it creates `root` and a first
    /// generation when there is none; read-only, the link must exist.
    public init(root: String, databases: [String], projections: [String], configuration: Environment.Configuration = .init(), refreshInterval: Duration = .milliseconds(50)) throws {
        self.root = root
        self.databases = databases
        self.projections = projections
        self.configuration = configuration
        self.refreshInterval = refreshInterval
        var generation = try? Self.readLink(root: root)
        if generation == nil {
            guard !configuration.readOnly else {
                throw LMDBReadModelStore.Failure(description: "no read models at \(root): \(root)/\(Self.link) is missing (run the projector first)")
            }
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            let first = Self.generationName(1)
            try Self.point(root: root, to: first)
            generation = first
        }
        let store = try LMDBReadModelStore(path: "\(root)/\(generation!)", databases: databases, projections: projections, configuration: configuration)
        live = Mutex(Live(generation: generation!, store: store, checkedAt: Self.clock.now))
    }

    /// Opens the directory for `projections`.
    public convenience init(root: String, projections: [any Projection], configuration: Environment.Configuration = .init(), refreshInterval: Duration = .milliseconds(50)) throws {
        try self.init(root: root, databases: projections.flatMap(\.databases), projections: projections.map(\.name), configuration: configuration, refreshInterval: refreshInterval)
    }

    /// The live store, re-reading the link when ``refreshInterval`` has passed.
    public var current: LMDBReadModelStore {
        get throws {
            let (store, stale) = live.withLock { live in (live.store, Self.clock.now - live.checkedAt >= refreshInterval) }
            return stale ? try refresh() : store
        }
    }

    /// The name of the live generation (e.g. `gen-000002`).
    public var generation: String { live.withLock { $0.generation } }

    /// Re-reads the link now and opens the generation it names if it changed.
    @discardableResult
    public func refresh() throws -> LMDBReadModelStore {
        let named = try Self.readLink(root: root)
        if let same = live.withLock({ live -> LMDBReadModelStore? in
            guard live.generation == named else { return nil }
            live.checkedAt = Self.clock.now
            return live.store
        }) { return same }
        let store = try LMDBReadModelStore(path: "\(root)/\(named)", databases: databases, projections: projections, configuration: configuration)
        return live.withLock { live in
            if live.generation != named {
                live.generation = named
                live.store = store
            }
            live.checkedAt = Self.clock.now
            return live.store
        }
    }

    public func read<R>(_ body: (any ReadModelReader) throws -> R) throws -> R {
        try current.read(body)
    }

    public var position: LogPosition {
        get throws { try current.position }
    }

    // MARK: Rebuild

    /// Creates an empty generation next to the live one (for a rebuild), writable.
    public func makeGeneration(configuration: Environment.Configuration? = nil) throws -> (name: String, store: LMDBReadModelStore) {
        let existing = try FileManager.default.contentsOfDirectory(atPath: root).compactMap(Self.generationNumber)
        let name = Self.generationName((existing.max() ?? 0) + 1)
        let store = try LMDBReadModelStore(path: "\(root)/\(name)", databases: databases, projections: projections, configuration: configuration ?? self.configuration)
        return (name, store)
    }

    /// Makes generation `name`, already open as `store` in this process, the live one: the
    /// link is replaced atomically and this process adopts `store` at once (other processes
    /// within their refresh interval).
    public func switchTo(_ name: String, store: LMDBReadModelStore) throws {
        try Self.point(root: root, to: name)
        live.withLock { live in
            live.generation = name
            live.store = store
            live.checkedAt = Self.clock.now
        }
    }

    /// Deletes generation folders older than the live one, keeping the `keep` newest of them
    /// (a process that has not yet refreshed still reads its mapped files: unlinking them is
    /// safe on POSIX, but a reader opening one afterwards would not find it).
    public func pruneGenerations(keepingPrevious keep: Int = 1) throws {
        let liveNumber = Self.generationNumber(generation) ?? 0
        let older = try FileManager.default.contentsOfDirectory(atPath: root)
            .compactMap { name in Self.generationNumber(name).map { (name, $0) } }
            .filter { $0.1 < liveNumber }
            .sorted { $0.1 > $1.1 }
        for (name, _) in older.dropFirst(keep) {
            try FileManager.default.removeItem(atPath: "\(root)/\(name)")
        }
    }

    // MARK: The link

    static func generationName(_ number: Int) -> String {
        let digits = String(number)
        return "gen-" + String(repeating: "0", count: max(0, 6 - digits.count)) + digits
    }

    static func generationNumber(_ name: String) -> Int? {
        guard name.hasPrefix("gen-") else { return nil }
        return Int(name.dropFirst(4))
    }

    static func readLink(root: String) throws -> String {
        let target = try FileManager.default.destinationOfSymbolicLink(atPath: "\(root)/\(link)")
        return (target as NSString).lastPathComponent
    }

    /// Points `current` at `generation`: a new link beside it, renamed over it (atomic).
    static func point(root: String, to generation: String) throws {
        let temporary = "\(root)/.\(link)-\(UUID().uuidString.prefix(8))"
        guard symlink(generation, temporary) == 0 else {
            throw LMDBReadModelStore.Failure(description: "symlink(\(generation), \(temporary)): errno \(errno)")
        }
        guard rename(temporary, "\(root)/\(link)") == 0 else {
            let code = errno
            unlink(temporary)
            throw LMDBReadModelStore.Failure(description: "rename(\(temporary), \(root)/\(link)): errno \(code)")
        }
    }
}
