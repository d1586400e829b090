import Foundation
import ToteProto

/// One page of `tote.v1.Operations/ListStuckTasks`, purely: stuck tasks (FAILED,
/// NEEDS_INTERVENTION, or in a non-final state for at least the threshold) ordered longest stuck
/// first — by the time they entered their state, then by task id — and paged by key: the page
/// token names the last task returned, so a page starts right after it even when tasks were
/// added or changed in between (a task that changes state moves to its new place in the order).
public enum StuckTaskPage {
    /// Where a page starts: after this (state-since time, task id).
    public struct Cursor: Sendable, Equatable, Comparable {
        public var stateSinceMicros: Int64
        public var taskID: String

        public init(stateSinceMicros: Int64, taskID: String) {
            self.stateSinceMicros = stateSinceMicros
            self.taskID = taskID
        }

        public static func < (a: Cursor, b: Cursor) -> Bool {
            (a.stateSinceMicros, a.taskID) < (b.stateSinceMicros, b.taskID)
        }
    }

    /// The default and the largest page size.
    public static let defaultPageSize = 100
    public static let maxPageSize = 1000

    /// The token of a cursor: `st1.` + base64url of `<micros>:<task id>`.
    public static func token(_ cursor: Cursor) -> String {
        let raw = Data("\(cursor.stateSinceMicros):\(cursor.taskID)".utf8).base64EncodedString()
        return "st1." + raw.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// The cursor of a token this service issued; nil for anything else.
    public static func cursor(_ token: String) -> Cursor? {
        guard token.hasPrefix("st1."), token.count <= 400 else { return nil }
        var b64 = String(token.dropFirst(4)).replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        guard !b64.isEmpty, !b64.contains("=") else { return nil }
        while b64.count % 4 != 0 { b64 += "=" }
        guard let data = Data(base64Encoded: b64), let text = String(data: data, encoding: .utf8),
              let colon = text.firstIndex(of: ":"), let micros = Int64(text[..<colon]) else { return nil }
        let id = String(text[text.index(after: colon)...])
        guard !id.isEmpty else { return nil }
        return Cursor(stateSinceMicros: micros, taskID: id)
    }

    /// A page of stuck tasks among `tasks` (with their stream versions) that pass `include`,
    /// starting after `after`; `nextPageToken` is empty on the last page.
    public static func page(
        _ tasks: [(state: TaskDecider.State, version: Int64)], after: Cursor?, pageSize: Int, nowMicros: Int64, olderThanMicros: Int64,
        include: (TaskDecider.State) -> Bool = { _ in true }
    ) -> (tasks: [Tote_V1_TaskSummary], nextPageToken: String) {
        let limit = pageSize <= 0 ? defaultPageSize : min(pageSize, maxPageSize)
        var stuck: [(Cursor, TaskDecider.State, Int64, String)] = []
        for (state, version) in tasks where include(state) {
            guard let why = state.stuckReason(nowMicros: nowMicros, olderThanMicros: olderThanMicros) else { continue }
            let cursor = Cursor(stateSinceMicros: state.stateSinceMicros, taskID: state.taskID)
            if let after, !(after < cursor) { continue }
            stuck.append((cursor, state, version, why))
        }
        stuck.sort { $0.0 < $1.0 }
        let page = stuck.prefix(limit)
        let next = stuck.count > limit ? token(page.last!.0) : ""
        return (page.map { $0.1.summary(version: $0.2, stuckReason: $0.3) }, next)
    }
}
