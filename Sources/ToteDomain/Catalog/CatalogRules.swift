import ToteProto

/// Field rules shared by the catalog deciders (lengths, code and slug shapes) and small helpers.
enum CatalogRules {
    /// The longest id (product id, SKU, category id, price list id, customer group) accepted.
    static let maxIdLength = 128
    /// The longest display name accepted.
    static let maxNameLength = 200
    /// The longest short text (summary, reason, alt text, keyword, barcode, url) accepted.
    static let maxShortTextLength = 2_000
    /// The longest long description accepted.
    static let maxDescriptionLength = 100_000
    /// The most entries of one repeated field (attributes, values, options, media, ...) accepted.
    static let maxRepeated = 200
    /// The largest price accepted, in minor units (10^12: e.g. ten billion euros).
    static let maxPriceMinorUnits: Int64 = 1_000_000_000_000
    /// The largest decimal scale of a number attribute.
    static let maxDecimalScale: UInt32 = 18

    /// Requires a non-empty id of bounded length.
    static func id(_ value: String, _ field: String, into v: inout Validator) {
        v.require(!value.isEmpty, field, "is required")
        v.require(value.count <= maxIdLength, field, "must be at most \(maxIdLength) characters")
        v.require(!value.contains(where: { $0.isWhitespace }), field, "must not contain whitespace")
    }

    /// Requires a lower-case code: letters a–z, digits and `_`, starting with a letter.
    static func code(_ value: String, _ field: String, into v: inout Validator) {
        v.require(isCode(value), field, "must be lower-case letters, digits and '_', starting with a letter")
    }

    /// Requires a URL slug: lower-case letters, digits and single `-` between them.
    static func slug(_ value: String, _ field: String, into v: inout Validator) {
        v.require(isSlug(value), field, "must be lower-case letters and digits separated by single '-'")
    }

    /// Requires text of at most `max` characters (and non-empty when `required`).
    static func text(_ value: String, _ field: String, max: Int, required: Bool, into v: inout Validator) {
        if required { v.require(!value.trimmingSpaces.isEmpty, field, "is required") }
        v.require(value.count <= max, field, "must be at most \(max) characters")
    }

    /// Requires at most ``maxRepeated`` entries.
    static func count<C: Collection>(_ values: C, _ field: String, into v: inout Validator) {
        v.require(values.count <= maxRepeated, field, "must have at most \(maxRepeated) entries")
    }

    static func isCode(_ value: String) -> Bool {
        let bytes = Array(value.utf8)
        guard let first = bytes.first, bytes.count <= 64, (97...122).contains(first) else { return false }
        return bytes.allSatisfy { (97...122).contains($0) || (48...57).contains($0) || $0 == 95 }
    }

    static func isSlug(_ value: String) -> Bool {
        let bytes = Array(value.utf8)
        guard !bytes.isEmpty, bytes.count <= maxIdLength, bytes.first != 45, bytes.last != 45 else { return false }
        var previousDash = false
        for b in bytes {
            if b == 45 {
                if previousDash { return false }
                previousDash = true
            } else if (97...122).contains(b) || (48...57).contains(b) {
                previousDash = false
            } else {
                return false
            }
        }
        return true
    }

    /// A wire timestamp from microseconds since the epoch.
    static func timestamp(_ micros: Int64) -> Tote_V1_Timestamp {
        var t = Tote_V1_Timestamp()
        t.unixMicros = micros
        return t
    }
}

extension String {
    /// The string without leading and trailing whitespace (no Foundation).
    fileprivate var trimmingSpaces: Substring {
        let start = firstIndex(where: { !$0.isWhitespace }) ?? endIndex
        let end = lastIndex(where: { !$0.isWhitespace }).map { index(after: $0) } ?? start
        return self[start..<max(start, end)]
    }
}
