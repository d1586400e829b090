import ToteProto

/// A node of the category tree (stream ``StreamName/category(_:)``, one per category). Each
/// category records its parent and its ancestors; the service looks up the new parent's
/// ancestors for a create or a move, so that the decider can refuse cycles without reading other
/// streams. (Descendants keep their own streams: read models recompute their ancestor paths from
/// ``Tote_V1_CategoryMoved``.)
public enum CategoryDecider: Decider {
    public typealias Event = Tote_V1_CategoryEvent

    /// What the decider knows about one category.
    public struct State: Sendable, Equatable {
        /// Set by ``Tote_V1_CategoryCreated``; nil while it does not exist.
        public var categoryId: String?
        public var slug = ""
        public var name = ""
        /// Empty for a root category.
        public var parentId = ""
        /// Sort position among its siblings.
        public var position: UInt32 = 0
        /// Root first, the parent last; empty for a root category.
        public var ancestorIds: [String] = []

        public init() {}

        /// Whether the category was created.
        public var exists: Bool { categoryId != nil }
    }

    /// Where a category goes: its parent (empty = root) and that parent's own ancestors (root
    /// first), which the service reads from the parent's state.
    public struct Placement: Sendable, Equatable {
        public var parentId: String
        public var parentAncestorIds: [String]
        public var position: UInt32

        public init(parentId: String, parentAncestorIds: [String] = [], position: UInt32 = 0) {
            self.parentId = parentId
            self.parentAncestorIds = parentAncestorIds
            self.position = position
        }

        /// At the root of the tree.
        public static func root(position: UInt32 = 0) -> Placement {
            Placement(parentId: "", position: position)
        }

        /// The category's ancestors under this placement, root first.
        public var ancestorIds: [String] { parentId.isEmpty ? [] : parentAncestorIds + [parentId] }
    }

    /// What can be asked of a category.
    public enum Command: Sendable, Equatable {
        /// Creates it (a repeat with the same values is a no-op; other values → alreadyExists).
        case create(categoryId: String, slug: String, name: String, placement: Placement)
        /// Changes its display name (the same name is a no-op).
        case rename(categoryId: String, name: String)
        /// Moves it, with its descendants, under another parent or position. Refused when the new
        /// parent is the category itself or one of its descendants (the parent's ancestors
        /// include it). The same parent and position is a no-op.
        case move(categoryId: String, placement: Placement)
    }

    public static var initialState: State { State() }

    public static func decide(_ command: Command, state: State, context: CommandContext) throws(DomainError) -> [Event] {
        let now = context.nowMicros
        switch command {
        case let .create(categoryId, slug, name, placement):
            var v = Validator()
            CatalogRules.id(categoryId, "category_id", into: &v)
            CatalogRules.slug(slug, "slug", into: &v)
            CatalogRules.text(name, "name", max: CatalogRules.maxNameLength, required: true, into: &v)
            validate(placement, "parent_slug", into: &v)
            try v.check()
            try refuseCycle(categoryId, placement)
            if state.exists {
                if state.categoryId == categoryId && state.slug == slug && state.name == name
                    && state.parentId == placement.parentId && state.position == placement.position {
                    return []
                }
                throw DomainError(.alreadyExists, "category \(state.categoryId ?? categoryId) already exists")
            }
            var e = Tote_V1_CategoryCreated()
            e.categoryID = categoryId
            e.slug = slug
            e.name = name
            e.parentID = placement.parentId
            e.position = placement.position
            e.ancestorIds = placement.ancestorIds
            e.createdAt = CatalogRules.timestamp(now)
            return [event(.categoryCreated(e))]

        case let .rename(categoryId, name):
            var v = Validator()
            CatalogRules.id(categoryId, "category_id", into: &v)
            CatalogRules.text(name, "name", max: CatalogRules.maxNameLength, required: true, into: &v)
            try v.check()
            try existing(categoryId, state)
            if state.name == name { return [] }
            var e = Tote_V1_CategoryRenamed()
            e.categoryID = categoryId
            e.previousName = state.name
            e.name = name
            e.renamedAt = CatalogRules.timestamp(now)
            return [event(.categoryRenamed(e))]

        case let .move(categoryId, placement):
            var v = Validator()
            CatalogRules.id(categoryId, "category_id", into: &v)
            validate(placement, "new_parent_slug", into: &v)
            try v.check()
            try existing(categoryId, state)
            try refuseCycle(categoryId, placement)
            if state.parentId == placement.parentId && state.position == placement.position
                && state.ancestorIds == placement.ancestorIds {
                return []
            }
            var e = Tote_V1_CategoryMoved()
            e.categoryID = categoryId
            e.previousParentID = state.parentId
            e.parentID = placement.parentId
            e.position = placement.position
            e.ancestorIds = placement.ancestorIds
            e.movedAt = CatalogRules.timestamp(now)
            return [event(.categoryMoved(e))]
        }
    }

    public static func evolve(_ state: State, _ event: Event) -> State {
        var s = state
        switch event.event {
        case .categoryCreated(let e):
            s.categoryId = e.categoryID
            s.slug = e.slug
            s.name = e.name
            s.parentId = e.parentID
            s.position = e.position
            s.ancestorIds = e.ancestorIds
        case .categoryRenamed(let e):
            s.name = e.name
        case .categoryMoved(let e):
            s.parentId = e.parentID
            s.position = e.position
            s.ancestorIds = e.ancestorIds
        case nil:
            break
        }
        return s
    }

    private static func validate(_ placement: Placement, _ field: String, into v: inout Validator) {
        if placement.parentId.isEmpty {
            v.require(placement.parentAncestorIds.isEmpty, field, "a root category has no ancestors")
        } else {
            CatalogRules.id(placement.parentId, field, into: &v)
            v.require(!placement.parentAncestorIds.contains(placement.parentId), field, "the parent's ancestors contain the parent itself")
            v.require(placement.parentAncestorIds.allSatisfy { !$0.isEmpty }, field, "the parent's ancestors contain an empty id")
        }
    }

    /// A category cannot sit under itself or one of its descendants.
    private static func refuseCycle(_ categoryId: String, _ placement: Placement) throws(DomainError) {
        if placement.ancestorIds.contains(categoryId) {
            throw DomainError(.failedPrecondition, "category \(categoryId) cannot be placed under itself or one of its descendants (\(placement.parentId))", subject: categoryId)
        }
    }

    private static func existing(_ categoryId: String, _ state: State) throws(DomainError) {
        guard let id = state.categoryId else { throw DomainError(.notFound, "no category \(categoryId)") }
        guard id == categoryId else { throw .invalid("category_id", "this stream holds category \(id), not \(categoryId)") }
    }

    private static func event(_ payload: Event.OneOf_Event) -> Event {
        var e = Event()
        e.event = payload
        return e
    }
}

extension Tote_V1_CategoryEvent: DomainEvent {
    /// The case message's name, e.g. `CategoryMoved`.
    public var typeName: String {
        switch event {
        case .categoryCreated: "CategoryCreated"
        case .categoryRenamed: "CategoryRenamed"
        case .categoryMoved: "CategoryMoved"
        case nil: "CategoryEvent"
        }
    }
}
