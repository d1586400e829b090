import ToteProto

/// Small helpers shared by the pricing, cart and checkout code (namespaced so that they never
/// collide with other parts of `ToteDomain`).
enum PricingSupport {
    /// `text` without leading and trailing spaces, tabs and newlines (no Foundation needed).
    static func trimmed(_ text: String) -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let first = text.firstIndex(where: { !isSpace($0) }),
              let last = text.lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(text[first...last])
    }

    /// A wire timestamp of `micros` since the epoch.
    static func timestamp(_ micros: Int64) -> Tote_V1_Timestamp {
        var t = Tote_V1_Timestamp()
        t.unixMicros = micros
        return t
    }

    /// Maps a money failure to the refusal a command gets: invalidArgument naming `field`.
    static func moneyError(_ error: MoneyError, field: String) -> DomainError {
        switch error {
        case .overflow: .invalid(field, "amount out of range")
        case .currencyMismatch(let a, let b): .invalid(field, "currency \(b) does not match \(a)")
        }
    }
}

extension PricingSupport {
    /// Currencies without minor units (ISO 4217 exponent 0); all others are shown with two
    /// decimals (three-decimal currencies are shown with two: display only).
    static let zeroDecimalCurrencies: Set<String> = ["JPY", "KRW", "ISK", "CLP", "VND", "PYG", "UGX", "XAF", "XOF", "HUF"]

    /// `EUR 50.00`, `JPY 500`: a display form of an amount for messages.
    static func format(_ money: Money) -> String {
        if zeroDecimalCurrencies.contains(money.currency) { return "\(money.currency) \(money.minorUnits)" }
        let sign = money.minorUnits < 0 ? "-" : ""
        let magnitude = money.minorUnits.magnitude
        let cents = magnitude % 100
        return "\(money.currency) \(sign)\(magnitude / 100).\(cents < 10 ? "0" : "")\(cents)"
    }
}
