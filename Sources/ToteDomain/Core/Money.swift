import ToteProto

/// An amount of money in minor units (cents) of one currency. Never a float: all arithmetic is on
/// integers, overflow is an error, and mixing currencies is an error.
public struct Money: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// ISO 4217 code, upper case, e.g. `EUR`.
    public var currency: String
    public var minorUnits: Int64

    public init(_ minorUnits: Int64, _ currency: String) {
        self.minorUnits = minorUnits
        self.currency = currency
    }

    public static func zero(_ currency: String) -> Money { Money(0, currency) }

    public var isZero: Bool { minorUnits == 0 }
    public var isNegative: Bool { minorUnits < 0 }

    public var description: String { "\(minorUnits) \(currency) minor units" }

    public static func < (a: Money, b: Money) -> Bool {
        precondition(a.currency == b.currency, "comparing \(a.currency) with \(b.currency)")
        return a.minorUnits < b.minorUnits
    }

    /// `self + other`, or a ``MoneyError`` on a currency mismatch or overflow.
    public func adding(_ other: Money) throws(MoneyError) -> Money {
        guard currency == other.currency else { throw .currencyMismatch(currency, other.currency) }
        let (sum, overflow) = minorUnits.addingReportingOverflow(other.minorUnits)
        guard !overflow else { throw .overflow }
        return Money(sum, currency)
    }

    /// `self - other`, or a ``MoneyError`` on a currency mismatch or overflow.
    public func subtracting(_ other: Money) throws(MoneyError) -> Money {
        guard currency == other.currency else { throw .currencyMismatch(currency, other.currency) }
        let (difference, overflow) = minorUnits.subtractingReportingOverflow(other.minorUnits)
        guard !overflow else { throw .overflow }
        return Money(difference, currency)
    }

    /// `self × quantity`, or ``MoneyError/overflow``.
    public func multiplied(by quantity: Int64) throws(MoneyError) -> Money {
        let (product, overflow) = minorUnits.multipliedReportingOverflow(by: quantity)
        guard !overflow else { throw .overflow }
        return Money(product, currency)
    }

    /// `self × ppm / 1,000,000`, rounded half away from zero (the usual commercial rounding).
    /// Used for percentages and tax rates given in parts per million.
    public func scaled(ppm: Int64) throws(MoneyError) -> Money {
        Money(try Self.divideRounded(minorUnits, times: ppm, by: 1_000_000), currency)
    }

    /// `value × numerator / denominator` rounded half away from zero, without intermediate
    /// overflow (128-bit product).
    public static func divideRounded(_ value: Int64, times numerator: Int64, by denominator: Int64) throws(MoneyError) -> Int64 {
        precondition(denominator > 0, "denominator must be positive")
        let product = value.multipliedFullWidth(by: numerator)
        let negative = (value < 0) != (numerator < 0) && value != 0 && numerator != 0
        // |value × numerator| as a 128-bit magnitude.
        var high = product.high
        var low = product.low
        if high < 0 {
            low = ~low &+ 1
            high = ~high &+ (low == 0 ? 1 : 0)
        }
        let magnitude = (high: UInt64(bitPattern: high), low: low)
        let d = UInt64(denominator)
        guard magnitude.high < d else { throw .overflow }
        let (quotient, remainder) = d.dividingFullWidth(magnitude)
        let rounded = remainder >= d - remainder ? quotient + 1 : quotient  // half away from zero
        guard rounded <= UInt64(Int64.max) else { throw .overflow }
        return negative ? -Int64(rounded) : Int64(rounded)
    }

    /// Splits `self` into parts proportional to `weights`, exactly: the parts sum to `self`, and
    /// the remainder left by rounding down goes one minor unit at a time to the largest
    /// fractional parts (ties to the earlier part). Used to spread an order discount over lines.
    public func allocated(proportionally weights: [Int64]) throws(MoneyError) -> [Money] {
        precondition(weights.allSatisfy { $0 >= 0 }, "weights must not be negative")
        let total = weights.reduce(0, +)
        guard total > 0 else { return weights.map { _ in Money.zero(currency) } }
        var parts: [Int64] = []
        var remainders: [(index: Int, remainder: UInt64)] = []
        for (index, weight) in weights.enumerated() {
            let product = minorUnits.magnitude.multipliedFullWidth(by: UInt64(weight))
            guard product.high < UInt64(total) else { throw .overflow }
            let (quotient, remainder) = UInt64(total).dividingFullWidth(product)
            parts.append(Int64(quotient))
            remainders.append((index, remainder))
        }
        var left = minorUnits.magnitude - UInt64(parts.reduce(0, +))
        for entry in remainders.sorted(by: { $0.remainder != $1.remainder ? $0.remainder > $1.remainder : $0.index < $1.index }) where left > 0 {
            parts[entry.index] += 1
            left -= 1
        }
        return parts.map { Money(minorUnits < 0 ? -$0 : $0, currency) }
    }
}

/// Why a money operation failed.
public enum MoneyError: Error, Sendable, Equatable {
    case currencyMismatch(String, String)
    case overflow
}

extension Money {
    /// From the wire type (`tote.v1.Money`).
    public init(_ proto: Tote_V1_Money) {
        self.init(proto.minorUnits, proto.currency)
    }

    /// To the wire type.
    public var proto: Tote_V1_Money {
        var m = Tote_V1_Money()
        m.currency = currency
        m.minorUnits = minorUnits
        return m
    }
}

/// Currency codes Tote accepts: three upper-case ASCII letters (ISO 4217 shape).
public func isCurrencyCode(_ code: String) -> Bool {
    code.utf8.count == 3 && code.utf8.allSatisfy { $0 >= 65 && $0 <= 90 }
}
