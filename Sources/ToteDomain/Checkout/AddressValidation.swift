import ToteProto

/// Validates postal addresses per country format: required fields, postal code patterns (US,
/// CA, GB, DE, FR, NL, SE, ES, IT, AU, JP; any non-empty code elsewhere), and regions where a
/// country needs one (US, CA, AU).
public enum AddressValidation {
    /// Postal code shapes per country: `9` a digit, `A` a letter, anything else literally.
    /// The code is upper-cased and trimmed first.
    static let postalPatterns: [String: [String]] = [
        "US": ["99999", "99999-9999"],
        "CA": ["A9A 9A9", "A9A9A9"],
        "GB": ["A9 9AA", "A99 9AA", "AA9 9AA", "AA99 9AA", "A9A 9AA", "AA9A 9AA",
               "A99AA", "A999AA", "AA99AA", "AA999AA", "A9A9AA", "AA9A9AA"],
        "DE": ["99999"],
        "FR": ["99999"],
        "NL": ["9999 AA", "9999AA"],
        "SE": ["999 99", "99999"],
        "ES": ["99999"],
        "IT": ["99999"],
        "AU": ["9999"],
        "JP": ["999-9999", "9999999"],
    ]

    /// The regions (states, provinces) of countries that require one.
    static let regions: [String: Set<String>] = [
        "US": ["AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS",
               "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC",
               "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY",
               "PR", "GU", "VI", "AS", "MP", "AA", "AE", "AP"],
        "CA": ["AB", "BC", "MB", "NB", "NL", "NS", "NT", "NU", "ON", "PE", "QC", "SK", "YT"],
        "AU": ["ACT", "NSW", "NT", "QLD", "SA", "TAS", "VIC", "WA"],
    ]

    /// True when `code` (upper-cased, trimmed) has one of `country`'s postal code shapes; any
    /// non-empty code for countries without a known shape.
    public static func isValidPostalCode(_ code: String, country: String) -> Bool {
        let code = PricingSupport.trimmed(code).uppercased()
        guard !code.isEmpty, code.count <= 16 else { return false }
        guard let patterns = postalPatterns[country.uppercased()] else { return true }
        return patterns.contains { matches(code, $0) }
    }

    private static func matches(_ code: String, _ pattern: String) -> Bool {
        let c = Array(code.unicodeScalars), p = Array(pattern.unicodeScalars)
        guard c.count == p.count else { return false }
        for (x, q) in zip(c, p) {
            switch q {
            case "9": if !("0"..."9").contains(x) { return false }
            case "A": if !("A"..."Z").contains(x) { return false }
            default: if x != q { return false }
            }
        }
        return true
    }

    /// Collects the violations of `address` into `v`, naming fields `<prefix>.<field>` (e.g.
    /// `shipping_address.postal_code`). `requireEmail`: guests need one for the confirmation.
    public static func validate(_ address: Tote_V1_Address, prefix: String, requireEmail: Bool, into v: inout Validator) {
        let country = PricingSupport.trimmed(address.country)
        let isCountry = country.utf8.count == 2 && country.utf8.allSatisfy { $0 >= 65 && $0 <= 90 }
        v.require(isCountry, "\(prefix).country", "must be an ISO 3166-1 alpha-2 code in upper case")
        v.require(!PricingSupport.trimmed(address.name).isEmpty, "\(prefix).name", "is required")
        v.require(address.name.count <= 200, "\(prefix).name", "at most 200 characters")
        let lines = address.lines.filter { !PricingSupport.trimmed($0).isEmpty }
        v.require(!lines.isEmpty, "\(prefix).lines", "at least one street line is required")
        v.require(address.lines.count <= 4, "\(prefix).lines", "at most 4 lines")
        for (i, line) in address.lines.enumerated() {
            v.require(line.count <= 200, "\(prefix).lines[\(i)]", "at most 200 characters")
        }
        v.require(!PricingSupport.trimmed(address.city).isEmpty, "\(prefix).city", "is required")
        if isCountry {
            let postal = PricingSupport.trimmed(address.postalCode)
            if postal.isEmpty {
                v.require(false, "\(prefix).postal_code", "is required")
            } else {
                v.require(isValidPostalCode(postal, country: country), "\(prefix).postal_code", "not a valid postal code for \(country)")
            }
            if let regions = regions[country] {
                let region = PricingSupport.trimmed(address.region).uppercased()
                let bare = region.hasPrefix(country + "-") ? String(region.dropFirst(3)) : region
                if bare.isEmpty {
                    v.require(false, "\(prefix).region", "is required for \(country)")
                } else {
                    v.require(regions.contains(bare), "\(prefix).region", "not a region of \(country)")
                }
            }
        }
        let email = PricingSupport.trimmed(address.email)
        if requireEmail { v.require(!email.isEmpty, "\(prefix).email", "is required for guest checkout") }
        if !email.isEmpty { v.require(isPlausibleEmail(email), "\(prefix).email", "not an email address") }
        v.require(address.phone.count <= 32, "\(prefix).phone", "at most 32 characters")
    }

    /// `local@domain.tld` with no spaces: a plausibility check, not RFC 5322.
    static func isPlausibleEmail(_ email: String) -> Bool {
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        return parts.count == 2 && !parts[0].isEmpty && parts[1].contains(".") && !parts[1].hasPrefix(".")
            && !parts[1].hasSuffix(".") && !email.contains(" ") && email.count <= 254
    }
}
