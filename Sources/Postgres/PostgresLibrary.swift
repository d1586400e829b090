import CLibPQ

/// Facts about the libpq client library Tote is linked against.
///
/// The connection, pool and query wrappers arrive with the event-store issue; this target is the
/// only one that imports `CLibPQ`.
public enum PostgresLibrary {
    /// libpq's version as a number, e.g. 150018 for 15.18.
    public static var version: Int { Int(PQlibVersion()) }

    /// Whether libpq was built thread-safe (required: Tote calls it from several threads).
    public static var isThreadSafe: Bool { PQisthreadsafe() == 1 }

    /// Validates a libpq connection string without connecting, returning libpq's own complaint.
    ///
    /// - Returns: `nil` when the string parses, else libpq's error message.
    public static func validate(connectionString: String) -> String? {
        var errorMessage: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(connectionString, &errorMessage) else {
            defer { if let errorMessage { PQfreemem(errorMessage) } }
            return errorMessage.map { String(cString: $0).trimmingSuffixNewlines() } ?? "out of memory"
        }
        PQconninfoFree(options)
        return nil
    }
}

extension String {
    fileprivate func trimmingSuffixNewlines() -> String {
        var s = Substring(self)
        while s.last == "\n" { s = s.dropLast() }
        return String(s)
    }
}
