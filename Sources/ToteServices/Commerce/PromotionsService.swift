import EventStore
import Foundation
import SwiftProtobuf
import ToteAPI
import ToteCommands
import ToteDomain

/// Serves tote.v1.Promotions (operators): promotion rules decided by ``PromotionDecider`` on
/// `promotion-<id>`, and their coupon codes claimed by ``CouponCodeClaimDecider`` on
/// `coupon-<CODE>` in the same append, so a code belongs to one promotion at most.
///
/// After each command the node's ``PromotionRegistry`` catches up with the log through the
/// command's own append (waiting up to 5 s for it to become readable), so carts priced
/// by this node see the change at once (other nodes within one registry poll).
public struct PromotionsService: RPCService, Sendable {
    let commands: CommandSupport
    let promotions: PromotionRegistry

    public init(commands: CommandSupport, promotions: PromotionRegistry) {
        self.commands = commands
        self.promotions = promotions
    }

    /// Default and largest page of ``PromotionsAPI/listPromotions``.
    static let defaultPageSize = 50
    static let maxPageSize = 200
    /// How many promotion streams a listing looks at, at most.
    static let maxListed = 10_000

    public func register(into router: inout RPCRouter) {
        router.register(PromotionsAPI.definePromotion, unary: { request, context in
            try Self.requireSpec(request.hasSpec, request.spec)
            // Chosen once per call, so retries and repeats of the key name the same promotion.
            let promotionID = request.promotionID.isEmpty ? UUID().uuidString.lowercased() : request.promotionID
            return try await command(context) { unit in
                let stream = StreamName.promotion(promotionID)
                let rule = PromotionRule(id: promotionID, version: 1, spec: request.spec)
                let (events, state) = try await unit.decide(PromotionDecider.self, stream, .define(rule))
                if let code = state.rule?.couponCode, !code.isEmpty {
                    // The claim and the definition commit together, or neither does.
                    try await unit.decide(CouponCodeClaimDecider.self, StreamName.couponClaim(code), .claim(code: code, promotionID: promotionID))
                }
                var reply = Tote_V1_DefinePromotionResponse()
                reply.streamVersion = unit.version(of: stream) + Int64(events.count)
                reply.promotion = Self.view(state, version: reply.streamVersion)
                return reply
            }
        })
        router.register(PromotionsAPI.updatePromotion, unary: { request, context in
            try Self.requireSpec(request.hasSpec, request.spec)
            return try await promotion(request.promotionID, expected: request.expectedVersion, context, reply: Tote_V1_UpdatePromotionResponse.self) { unit, stream, current in
                var spec = request.spec
                // An empty code keeps the current one (the code itself cannot change).
                if spec.couponCode.isEmpty { spec.couponCode = current.rule?.couponCode ?? "" }
                return try await unit.decide(PromotionDecider.self, stream, .update(PromotionRule(id: request.promotionID, version: 0, spec: spec))).events.count
            }
        })
        router.register(PromotionsAPI.endPromotion, unary: { request, context in
            try await promotion(request.promotionID, expected: request.expectedVersion, context, reply: Tote_V1_EndPromotionResponse.self) { unit, stream, _ in
                try await unit.decide(PromotionDecider.self, stream, .deactivate(reason: request.reason)).events.count
            }
        })
        router.register(PromotionsAPI.createCouponCode, unary: { request, context in
            var reply = try await promotion(request.promotionID, expected: 0, context, reply: Tote_V1_CreateCouponCodeResponse.self) { unit, stream, _ in
                let written = try await unit.decide(PromotionDecider.self, stream, .assignCouponCode(request.code)).events.count
                try await unit.decide(CouponCodeClaimDecider.self, StreamName.couponClaim(request.code), .claim(code: request.code, promotionID: request.promotionID))
                return written
            }
            reply.code = reply.promotion.rule.spec.couponCode
            return reply
        })
        router.register(PromotionsAPI.getPromotion, unary: { request, _ in
            guard !request.promotionID.isEmpty else { throw RPCError.invalidArgument("promotion_id is required", fieldViolations: [("promotion_id", "required")]) }
            let (state, version) = try await commands.runner.read(PromotionDecider.self, StreamName.promotion(request.promotionID))
            guard version > 0, state.rule != nil else { throw RPCError(.notFound, "promotion \(request.promotionID) does not exist") }
            return Self.view(state, version: version)
        })
        router.register(PromotionsAPI.listPromotions, unary: { request, _ in
            try await list(request)
        })
    }

    /// Runs one promotion command; on success this node's registry catches up with the log.
    private func command<Reply: SwiftProtobuf.Message & PromotionReply>(
        _ context: ServerContext,
        _ body: (inout UnitOfWork) async throws -> Reply
    ) async throws -> Reply {
        var appended: LogPosition?
        let reply = try await commands.run(context, setToken: { reply, token in
            reply.consistencyToken = token
            appended = LogPosition(transactionID: token.transactionID, globalPosition: token.globalPosition)
        }, body)
        // The command is committed whatever happens here; a failed or slow read only delays
        // pricing until the registry's next poll. Waiting for the append itself (not just what is
        // readable now) matters when another transaction in the cluster holds the log back.
        if let appended {
            try? await promotions.catchUp(through: appended, timeout: .seconds(5))
        } else {
            try? await promotions.catchUp()
        }
        return reply
    }

    /// A command on an existing promotion: checks the client's expected version (0: don't), runs
    /// `body` (which returns how many events it decided for the promotion) and answers with the
    /// promotion stream's new version and the promotion.
    private func promotion<Reply: SwiftProtobuf.Message & PromotionReply>(
        _ promotionID: String,
        expected: Int64,
        _ context: ServerContext,
        reply: Reply.Type,
        _ body: @escaping (inout UnitOfWork, String, PromotionDecider.State) async throws -> Int
    ) async throws -> Reply {
        guard !promotionID.isEmpty else { throw RPCError.invalidArgument("promotion_id is required", fieldViolations: [("promotion_id", "required")]) }
        return try await command(context) { unit in
            let stream = StreamName.promotion(promotionID)
            let state = try await unit.load(PromotionDecider.self, stream)
            guard state.rule != nil else { throw DomainError(.notFound, "promotion \(promotionID) does not exist") }
            try unit.expect(stream, version: expected)
            let written = try await body(&unit, stream, state)
            var reply = Reply()
            reply.streamVersion = unit.version(of: stream) + Int64(written)
            reply.promotion = Self.view(try await unit.load(PromotionDecider.self, stream), version: reply.streamVersion)
            return reply
        }
    }

    /// A page of promotions in id order (the page token is the last id of the previous page).
    func list(_ request: Tote_V1_ListPromotionsRequest) async throws -> Tote_V1_ListPromotionsResponse {
        let size = request.page.pageSize == 0 ? Self.defaultPageSize : Int(request.page.pageSize)
        guard size <= Self.maxPageSize else {
            throw RPCError.invalidArgument("page.page_size must be at most \(Self.maxPageSize)", fieldViolations: [("page.page_size", "at most \(Self.maxPageSize)")])
        }
        let prefix = StreamName.promotion("")
        let after = request.page.pageToken
        let names = try await commands.runner.store.streamNames(withPrefix: prefix, limit: Self.maxListed)
        var response = Tote_V1_ListPromotionsResponse()
        var lastID = ""
        var more = false
        for name in names {
            let id = String(name.dropFirst(prefix.count))
            guard after.isEmpty || id > after else { continue }
            if response.promotions.count == size {
                more = true
                break
            }
            let (state, version) = try await commands.runner.read(PromotionDecider.self, name)
            guard version > 0, state.rule != nil else { continue }
            lastID = id
            if state.status != .active && !request.includeEnded { continue }
            response.promotions.append(Self.view(state, version: version))
        }
        response.page.nextPageToken = more ? lastID : ""
        return response
    }

    /// Refuses a request without a spec or without an effect before anything is read.
    static func requireSpec(_ hasSpec: Bool, _ spec: Tote_V1_PromotionRuleSpec) throws {
        guard hasSpec else { throw RPCError.invalidArgument("spec is required", fieldViolations: [("spec", "required")]) }
        switch spec.effect {
        case .percentage, .fixedAmount, .freeShipping, .buyXGetY: return
        case .unspecified, .UNRECOGNIZED:
            throw RPCError.invalidArgument("spec.effect is required (PERCENTAGE, FIXED_AMOUNT, FREE_SHIPPING or BUY_X_GET_Y)", fieldViolations: [("spec.effect", "required")])
        }
    }

    /// The wire view of a promotion's state at `version`.
    static func view(_ state: PromotionDecider.State, version: Int64) -> Tote_V1_Promotion {
        var p = Tote_V1_Promotion()
        if let rule = state.rule { p.rule = rule.proto }
        switch state.status {
        case .unspecified: p.status = .unspecified
        case .active: p.status = .active
        case .inactive: p.status = .inactive
        }
        p.endReason = state.deactivationReason
        p.streamVersion = version
        return p
    }
}

/// Promotion command replies: new version, token and the promotion (see promotion.proto).
protocol PromotionReply: VersionedReply {
    var promotion: Tote_V1_Promotion { get set }
}

extension Tote_V1_DefinePromotionResponse: PromotionReply {}
extension Tote_V1_UpdatePromotionResponse: PromotionReply {}
extension Tote_V1_EndPromotionResponse: PromotionReply {}
extension Tote_V1_CreateCouponCodeResponse: PromotionReply {}
