/// Reads a benchmark's command-line options one by one, turning bad values into a `BenchError`
/// that names the option or value. Shared by the benchmark executables.
public struct Arguments {
    private let items: [String]
    private let usage: String
    private var index = -1

    public init(_ items: [String], usage: String) {
        self.items = items
        self.usage = usage
    }

    /// The next option name, or nil at the end.
    public mutating func nextOption() -> String? {
        index += 1
        return index < items.count ? items[index] : nil
    }

    /// The value following the current option.
    public mutating func value() throws -> String {
        index += 1
        guard index < items.count else { throw BenchError("\(items[index - 1]) needs a value\n\(usage)") }
        return items[index]
    }

    /// An error for an option nobody knows.
    public func unknownOption() -> BenchError {
        BenchError("unknown option \(items[index])\n\(usage)")
    }

    /// The next value as a positive number of seconds.
    public mutating func seconds() throws -> Double {
        let text = try value()
        guard let value = Double(text), value > 0 else { throw BenchError("not a positive number of seconds: \(text)") }
        return value
    }

    /// The next value as a positive count.
    public mutating func count() throws -> Int {
        let text = try value()
        guard let value = Int(text), value > 0 else { throw BenchError("not a positive count: \(text)") }
        return value
    }

    /// The next value as a comma-separated list of positive counts.
    public mutating func counts() throws -> [Int] {
        let text = try value()
        let values = text.split(separator: ",").compactMap { Int($0) }
        guard !values.isEmpty, values.count == text.split(separator: ",").count, values.allSatisfy({ $0 > 0 }) else {
            throw BenchError("not a list of positive counts: \(text)")
        }
        return values
    }

    /// The next value as a byte count (0 allowed).
    public mutating func byteCount() throws -> Int {
        let text = try value()
        guard let bytes = Int(text), bytes >= 0 else { throw BenchError("not a byte count: \(text)") }
        return bytes
    }
}
