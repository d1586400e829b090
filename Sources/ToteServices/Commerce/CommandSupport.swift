import EventStore
import SwiftProtobuf
import ToteAPI
import ToteCommands
import ToteDomain

/// What every commerce command handler does around its decision: require the idempotency key,
/// identify the actor, run the unit of work, and stamp the consistency token on the reply.
public struct CommandSupport: Sendable {
    public let runner: CommandRunner

    public init(runner: CommandRunner) {
        self.runner = runner
    }

    /// Runs one command for a call.
    ///
    /// The command id is the call's method and idempotency key (a key reused for another method
    /// is another command). The actor is the caller's role and, when the request names one (an
    /// operator's id), that id; else the metadata `actor-id`, else the role's name.
    /// `setToken` writes the consistency token into the reply once the append has a position.
    public func run<Reply: SwiftProtobuf.Message>(
        _ context: ServerContext,
        actorID: String = "",
        setToken: (inout Reply, Tote_V1_ConsistencyToken) -> Void,
        _ body: (inout UnitOfWork) async throws -> Reply
    ) async throws -> Reply {
        guard !context.idempotencyKey.isEmpty else {
            throw RPCError.invalidArgument("commands need an idempotency key (call header idempotency_key)", fieldViolations: [("idempotency_key", "required for commands")])
        }
        guard context.idempotencyKey.utf8.count <= 200 else {
            throw RPCError.invalidArgument("idempotency key longer than 200 bytes", fieldViolations: [("idempotency_key", "at most 200 bytes")])
        }
        let outcome = try await runner.execute(
            commandID: "\(context.method)#\(context.idempotencyKey)",
            actor: Self.actor(context, actorID: actorID),
            correlationID: context.correlationID,
            body
        )
        var reply = outcome.reply
        if let append = outcome.append { setToken(&reply, Self.token(append.position)) }
        return reply
    }

    /// The principal a call acts as.
    public static func actor(_ context: ServerContext, actorID: String) -> Principal {
        let role = context.role.rawValue
        let id = !actorID.isEmpty ? actorID : (context.metadata["actor-id"] ?? role)
        return Principal(id: String(id.prefix(200)), role: role)
    }

    /// The wire form of a log position.
    public static func token(_ position: LogPosition) -> Tote_V1_ConsistencyToken {
        var token = Tote_V1_ConsistencyToken()
        token.transactionID = position.transactionID
        token.globalPosition = position.globalPosition
        return token
    }
}
