import ToteProto

extension StreamName {
    /// A promotion rule's stream (``PromotionDecider``).
    public static func promotion(_ id: String) -> String { "promotion-\(id)" }
    /// A coupon code's claim stream (``CouponCodeClaimDecider``); `code` is normalized to upper case.
    public static func couponClaim(_ code: String) -> String { "coupon-\(normalizedCouponCode(code))" }
}

extension Tote_V1_PromotionEvent: DomainEvent {
    public var typeName: String {
        switch event {
        case .promotionDefined: "PromotionDefined"
        case .promotionUpdated: "PromotionUpdated"
        case .promotionDeactivated: "PromotionDeactivated"
        case nil: "PromotionEvent"
        }
    }
}

extension Tote_V1_CouponCodeEvent: DomainEvent {
    public var typeName: String {
        switch event {
        case .couponCodeClaimed: "CouponCodeClaimed"
        case nil: "CouponCodeEvent"
        }
    }
}

/// A versioned promotion rule (stream `promotion-<id>`): defined at version 1, replaced by
/// updates (version + 1 each), deactivated for good. A coupon rule's code is claimed in its own
/// stream by ``CouponCodeClaimDecider`` in the same append as the definition.
public enum PromotionDecider: Decider {
    /// Active or inactive (wire: `PromotionStatus`).
    public enum Status: String, Sendable, Equatable {
        case unspecified = "PROMOTION_STATUS_UNSPECIFIED"
        case active = "PROMOTION_STATUS_ACTIVE"
        case inactive = "PROMOTION_STATUS_INACTIVE"
    }

    public struct State: Sendable, Equatable {
        public var status: Status = .unspecified
        /// The current rule (its ``PromotionRule/version`` is the rule version); nil before definition.
        public var rule: PromotionRule?
        public var deactivationReason = ""

        public init() {}
    }

    public enum Command: Sendable {
        /// Defines the rule `rule.id` (its `version` is ignored: a new rule is version 1).
        case define(PromotionRule)
        /// Replaces the rule's definition (version + 1). The coupon code cannot change (define a
        /// new promotion instead); the id must match the stream's.
        case update(PromotionRule)
        /// Stops the rule applying, for good.
        case deactivate(reason: String)
        /// Gives an active rule without a coupon code its code (version + 1; the rule then needs
        /// the code). The same code again is a no-op; another code is refused (one code per rule).
        /// The service claims the code (``CouponCodeClaimDecider``) in the same append.
        case assignCouponCode(String)
    }

    public typealias Event = Tote_V1_PromotionEvent

    public static var initialState: State { State() }

    public static func decide(_ command: Command, state: State, context: CommandContext) throws(DomainError) -> [Event] {
        let now = PricingSupport.timestamp(context.nowMicros)
        switch command {
        case .define(var rule):
            rule.version = 1
            rule.couponCode = normalizedCouponCode(rule.couponCode)
            try validate(rule)
            if let current = state.rule {
                var same = current
                same.version = 1
                if state.status == .active && current.version == 1 && same == rule { return [] }
                throw DomainError(.alreadyExists, "promotion \(rule.id) already exists")
            }
            var e = Tote_V1_PromotionDefined()
            e.promotionID = rule.id
            e.spec = rule.spec
            e.version = 1
            e.definedAt = now
            return [Event.with { $0.promotionDefined = e }]

        case .update(var rule):
            rule.couponCode = normalizedCouponCode(rule.couponCode)
            guard let current = state.rule else { throw DomainError(.notFound, "promotion \(rule.id) does not exist") }
            guard state.status == .active else {
                throw .wrongState("promotion \(current.id) is inactive", currentState: state.status.rawValue)
            }
            var v = Validator()
            rule.validate(into: &v)
            v.require(rule.id == current.id, "promotion_id", "does not match the stream's promotion \(current.id)")
            v.require(rule.couponCode == current.couponCode, "spec.coupon_code", "cannot change; define a new promotion")
            try v.check()
            rule.version = current.version
            if rule == current { return [] }
            var e = Tote_V1_PromotionUpdated()
            e.promotionID = rule.id
            e.spec = rule.spec
            e.version = current.version + 1
            e.updatedAt = now
            return [Event.with { $0.promotionUpdated = e }]

        case .deactivate(let reason):
            guard let current = state.rule else { throw DomainError(.notFound, "no such promotion") }
            if state.status == .inactive { return [] }
            let reason = PricingSupport.trimmed(reason)
            var v = Validator()
            v.require(!reason.isEmpty, "reason", "must not be empty")
            v.require(reason.count <= 500, "reason", "at most 500 characters")
            try v.check()
            var e = Tote_V1_PromotionDeactivated()
            e.promotionID = current.id
            e.reason = reason
            e.deactivatedAt = now
            return [Event.with { $0.promotionDeactivated = e }]

        case .assignCouponCode(let rawCode):
            guard var rule = state.rule else { throw DomainError(.notFound, "no such promotion") }
            let code = normalizedCouponCode(rawCode)
            var v = Validator()
            v.require(isCouponCode(code), "code", "1…64 of A-Z, 0-9, '-' and '_'")
            try v.check()
            if rule.couponCode == code { return [] }
            guard state.status == .active else {
                throw .wrongState("promotion \(rule.id) is inactive", currentState: state.status.rawValue)
            }
            guard rule.couponCode.isEmpty else {
                throw DomainError(.failedPrecondition, "promotion \(rule.id) already has coupon code \(rule.couponCode); define another promotion for another code")
            }
            rule.couponCode = code
            var e = Tote_V1_PromotionUpdated()
            e.promotionID = rule.id
            e.spec = rule.spec
            e.version = rule.version + 1
            e.updatedAt = now
            return [Event.with { $0.promotionUpdated = e }]
        }
    }

    public static func evolve(_ state: State, _ event: Event) -> State {
        var state = state
        switch event.event {
        case .promotionDefined(let e):
            state.status = .active
            state.rule = PromotionRule(id: e.promotionID, version: e.version, spec: e.spec)
        case .promotionUpdated(let e):
            state.rule = PromotionRule(id: e.promotionID, version: e.version, spec: e.spec)
        case .promotionDeactivated(let e):
            state.status = .inactive
            state.deactivationReason = e.reason
        case nil:
            break
        }
        return state
    }

    /// Validates a rule definition, naming fields as in the request (`promotion_id`, `spec.*`).
    static func validate(_ rule: PromotionRule) throws(DomainError) {
        var v = Validator()
        v.require(!rule.id.isEmpty && rule.id.utf8.count <= 128, "promotion_id", "must be 1…128 characters")
        rule.validate(into: &v)
        try v.check()
    }
}

/// The claim of one coupon code (stream `coupon-<CODE>`): the first promotion to claim it owns it.
public enum CouponCodeClaimDecider: Decider {
    public struct State: Sendable, Equatable {
        /// Upper case; empty while unclaimed.
        public var code = ""
        /// The owner; empty while unclaimed.
        public var promotionID = ""

        public init() {}
    }

    public enum Command: Sendable {
        /// Claims `code` (normalized to upper case) for `promotionID`. Repeating the same claim is
        /// a no-op; a code claimed by another promotion is refused with alreadyExists.
        case claim(code: String, promotionID: String)
    }

    public typealias Event = Tote_V1_CouponCodeEvent

    public static var initialState: State { State() }

    public static func decide(_ command: Command, state: State, context: CommandContext) throws(DomainError) -> [Event] {
        switch command {
        case .claim(let rawCode, let promotionID):
            let code = normalizedCouponCode(rawCode)
            var v = Validator()
            v.require(isCouponCode(code), "coupon_code", "1…64 of A-Z, 0-9, '-' and '_'")
            v.require(!promotionID.isEmpty, "promotion_id", "must not be empty")
            try v.check()
            if !state.promotionID.isEmpty {
                if state.promotionID == promotionID { return [] }
                throw DomainError(.alreadyExists, "coupon code \(code) is taken by another promotion")
            }
            var e = Tote_V1_CouponCodeClaimed()
            e.code = code
            e.promotionID = promotionID
            e.claimedAt = PricingSupport.timestamp(context.nowMicros)
            return [Event.with { $0.couponCodeClaimed = e }]
        }
    }

    public static func evolve(_ state: State, _ event: Event) -> State {
        var state = state
        if case .couponCodeClaimed(let e) = event.event {
            state.code = e.code
            state.promotionID = e.promotionID
        }
        return state
    }
}
