/// Why a command was refused. Each case maps to one wire status, in one place
/// (`ToteServices/DomainErrorMapping.swift`), so deciders never think about the wire.
public struct DomainError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of refusal.
    public enum Code: Sendable, Equatable {
        /// The command itself is malformed: see ``violations``. Wire: INVALID_ARGUMENT.
        case invalidArgument
        /// It names something that does not exist. Wire: NOT_FOUND.
        case notFound
        /// The target exists but is in the wrong state for it (``currentState`` says which), or
        /// there is not enough stock (``available`` says how much there is). Wire: FAILED_PRECONDITION.
        case failedPrecondition
        /// It would create something that exists already. Wire: ALREADY_EXISTS.
        case alreadyExists
        /// A caller without the right to do it (e.g. a bad webhook signature). Wire: PERMISSION_DENIED.
        case permissionDenied
    }

    /// One invalid field of a command.
    public struct FieldViolation: Sendable, Equatable {
        /// The field's path in the request, e.g. `lines[2].quantity`.
        public var field: String
        public var description: String

        public init(_ field: String, _ description: String) {
            self.field = field
            self.description = description
        }
    }

    public var code: Code
    /// A sentence naming the problem, safe to show to the caller.
    public var message: String
    public var violations: [FieldViolation]
    /// For `failedPrecondition`: the state the target is in, e.g. `ORDER_STATE_SHIPPED`.
    public var currentState: String?
    /// For `failedPrecondition` on stock: the quantity still available.
    public var available: Int64?
    /// For `failedPrecondition` on stock: which SKU (and location) ran short.
    public var subject: String?

    public init(_ code: Code, _ message: String, violations: [FieldViolation] = [], currentState: String? = nil, available: Int64? = nil, subject: String? = nil) {
        self.code = code
        self.message = message
        self.violations = violations
        self.currentState = currentState
        self.available = available
        self.subject = subject
    }

    public var description: String { message }

    /// A command with invalid fields.
    public static func invalid(_ violations: [FieldViolation]) -> DomainError {
        DomainError(.invalidArgument, violations.map { "\($0.field): \($0.description)" }.joined(separator: "; "), violations: violations)
    }

    /// A command with one invalid field.
    public static func invalid(_ field: String, _ description: String) -> DomainError {
        invalid([FieldViolation(field, description)])
    }

    /// The target is in a state that refuses the command.
    public static func wrongState(_ message: String, currentState: String) -> DomainError {
        DomainError(.failedPrecondition, message, currentState: currentState)
    }

    /// Not enough stock.
    public static func outOfStock(_ subject: String, requested: Int64, available: Int64) -> DomainError {
        DomainError(.failedPrecondition, "\(subject): \(requested) requested, \(available) available", available: available, subject: subject)
    }
}

/// Collects field violations while validating a command, then throws them all at once.
public struct Validator {
    public private(set) var violations: [DomainError.FieldViolation] = []

    public init() {}

    /// Records a violation of `field` unless `condition` holds.
    public mutating func require(_ condition: Bool, _ field: String, _ description: @autoclosure () -> String) {
        if !condition { violations.append(.init(field, description())) }
    }

    /// Throws the violations collected, if any.
    public func check() throws(DomainError) {
        if !violations.isEmpty { throw DomainError.invalid(violations) }
    }
}
