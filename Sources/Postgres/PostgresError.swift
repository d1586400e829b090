import CLibPQ

/// A failure reported by libpq or the server, with its SQLSTATE mapped to a typed code.
///
/// `description` carries the server's primary message (never the connection string or
/// parameters, which may hold secrets); `debugDescription` adds detail, hint and context.
public struct PostgresError: Error, Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    /// A SQLSTATE code (five characters), extensible: unknown states are kept as they are.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        public static let uniqueViolation = Code(rawValue: "23505")
        public static let foreignKeyViolation = Code(rawValue: "23503")
        public static let checkViolation = Code(rawValue: "23514")
        public static let serializationFailure = Code(rawValue: "40001")
        public static let deadlockDetected = Code(rawValue: "40P01")
        public static let queryCanceled = Code(rawValue: "57014")
        public static let adminShutdown = Code(rawValue: "57P01")
        public static let crashShutdown = Code(rawValue: "57P02")
        public static let cannotConnectNow = Code(rawValue: "57P03")
        public static let idleInTransactionSessionTimeout = Code(rawValue: "25P03")
        public static let connectionException = Code(rawValue: "08000")
        public static let connectionFailure = Code(rawValue: "08006")
        public static let undefinedTable = Code(rawValue: "42P01")
        public static let syntaxError = Code(rawValue: "42601")
        /// Not a SQLSTATE: a result or value did not have the shape Tote expected.
        public static let unexpectedResult = Code(rawValue: "TOTE1")

        public var description: String { rawValue }
    }

    public var code: Code
    /// The server's (or libpq's) primary message.
    public var message: String
    public var detail: String?
    public var hint: String?
    /// What Tote was doing, e.g. "append to 3 streams".
    public var operation: String?

    public init(_ code: Code, _ message: String, detail: String? = nil, hint: String? = nil, operation: String? = nil) {
        self.code = code
        self.message = message
        self.detail = detail
        self.hint = hint
        self.operation = operation
    }

    /// The connection is unusable (server gone, restarted, network): retry on a new connection.
    public var isConnectionError: Bool {
        code.rawValue.hasPrefix("08") || code == .adminShutdown || code == .crashShutdown || code == .cannotConnectNow
            || code == .idleInTransactionSessionTimeout
    }

    /// Retrying the whole transaction may succeed (a conflict or a lost connection).
    public var isRetryable: Bool {
        isConnectionError || code == .serializationFailure || code == .deadlockDetected
    }

    public var description: String {
        (operation.map { "\($0): " } ?? "") + "\(message) (SQLSTATE \(code))"
    }

    public var debugDescription: String {
        var text = description
        if let detail { text += "; detail: \(detail)" }
        if let hint { text += "; hint: \(hint)" }
        return text
    }

    /// The error a failed result describes.
    static func from(result: OpaquePointer?, connection: OpaquePointer?) -> PostgresError {
        func field(_ code: Int32) -> String? {
            guard let result, let value = PQresultErrorField(result, code) else { return nil }
            return String(cString: value)
        }
        if let state = field(CLibPQ_DIAG_SQLSTATE) {
            return PostgresError(
                Code(rawValue: state),
                field(CLibPQ_DIAG_MESSAGE_PRIMARY) ?? "error",
                detail: field(CLibPQ_DIAG_MESSAGE_DETAIL),
                hint: field(CLibPQ_DIAG_MESSAGE_HINT)
            )
        }
        return fromConnection(connection)
    }

    /// The error libpq reports on a connection with no SQLSTATE (typically a lost connection).
    static func fromConnection(_ connection: OpaquePointer?) -> PostgresError {
        let message = connection.flatMap { PQerrorMessage($0) }.map { String(cString: $0) } ?? "no connection"
        let trimmed = message.split(whereSeparator: \.isNewline).joined(separator: " ")
        let bad = connection.map { PQstatus($0) == CONNECTION_BAD } ?? true
        return PostgresError(bad ? .connectionFailure : .unexpectedResult, trimmed.isEmpty ? "libpq failed" : trimmed)
    }
}
