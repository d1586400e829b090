/// Maps API keys to roles. Loaded from a config file or the environment by the executable.
///
/// Text format (file or `TOTE_API_KEYS`): entries separated by newlines or commas, each
/// `role:key` (`storefront:sf-123`); `#` starts a comment. Keys must be at least 16 characters so
/// that a short guessable key is refused at start-up rather than accepted silently.
public struct APIKeyring: Sendable, Hashable {
    /// Why a keyring text was refused.
    public struct ParseError: Error, Hashable, Sendable, CustomStringConvertible {
        public let line: Int
        public let message: String
        public var description: String { "API keys, entry \(line): \(message)" }
    }

    public static let minimumKeyLength = 16
    private var roles: [String: Role]

    public init(_ roles: [String: Role] = [:]) {
        self.roles = roles
    }

    /// The role of a key, or nil if the key is unknown.
    public func role(for key: String) -> Role? {
        key.isEmpty ? nil : roles[key]
    }

    public var isEmpty: Bool { roles.isEmpty }
    public var count: Int { roles.count }

    /// Parses the text format described on the type.
    public init(parsing text: String) throws(ParseError) {
        var roles: [String: Role] = [:]
        let entries = text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "," }
        for (index, rawEntry) in entries.enumerated() {
            let entry = rawEntry.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let trimmed = entry.trimmingWhitespace()
            if trimmed.isEmpty { continue }
            let parts = trimmed.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else {
                throw ParseError(line: index + 1, message: "expected role:key")
            }
            let roleName = parts[0].trimmingWhitespace().lowercased()
            guard let role = Role(rawValue: roleName) else {
                throw ParseError(line: index + 1, message: "unknown role '\(roleName)' (expected storefront, operator or controller)")
            }
            let key = parts[1].trimmingWhitespace()
            guard key.count >= Self.minimumKeyLength else {
                throw ParseError(line: index + 1, message: "key for \(roleName) is shorter than \(Self.minimumKeyLength) characters")
            }
            if let existing = roles[key], existing != role {
                throw ParseError(line: index + 1, message: "key listed for both \(existing) and \(role)")
            }
            roles[key] = role
        }
        self.roles = roles
    }
}

extension StringProtocol {
    fileprivate func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let start = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
              let end = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return String(String.UnicodeScalarView(scalars[start...end]))
    }
}
