import Crypto
import Foundation

/// Signatures of provider events (webhooks), in the Stripe style: the header
/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<payload>" with the shared secret>`. The
/// timestamp is signed too, so an old captured request cannot be replayed outside the tolerance.
/// Pure: the caller passes the time.
public enum WebhookSignature {
    /// The default accepted clock difference between the signer and the verifier, in seconds.
    public static let defaultToleranceSeconds: Int64 = 300

    /// The signature header for `payload` signed with `secret` at `timestampSeconds`.
    public static func sign(payload: [UInt8], secret: String, timestampSeconds: Int64) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: signedBytes(payload, timestampSeconds), using: key(secret))
        return "t=\(timestampSeconds),v1=\(hex(Array(mac)))"
    }

    /// Checks `header` against `payload` and `secret` at `nowSeconds`: the header must hold one
    /// `t=` and at least one `v1=` (several are accepted during secret rotation), the timestamp
    /// must be within `tolerance` seconds of now (either way), and one `v1` must equal the HMAC
    /// (compared in constant time). Anything else throws `permissionDenied`.
    /// Returns the signed timestamp.
    @discardableResult
    public static func verify(payload: [UInt8], header: String, secret: String, nowSeconds: Int64, tolerance: Int64 = defaultToleranceSeconds) throws(DomainError) -> Int64 {
        guard !secret.isEmpty else { throw DomainError(.permissionDenied, "no webhook secret is configured") }
        var timestamp: Int64?
        var signatures: [[UInt8]] = []
        for part in header.split(separator: ",", omittingEmptySubsequences: true) {
            let pair = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard pair.count == 2 else { throw malformed }
            let name = pair[0].trimmingCharacters(in: .whitespaces)
            let value = pair[1].trimmingCharacters(in: .whitespaces)
            switch name {
            case "t":
                guard timestamp == nil, !value.isEmpty, value.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let t = Int64(value) else { throw malformed }
                timestamp = t
            case "v1":
                guard let bytes = unhex(value), bytes.count == SHA256.byteCount else { throw malformed }
                signatures.append(bytes)
            default:
                continue  // other schemes (e.g. v0) are ignored
            }
        }
        guard let t = timestamp, !signatures.isEmpty else { throw malformed }
        let (difference, overflow) = nowSeconds.subtractingReportingOverflow(t)
        guard !overflow, difference.magnitude <= tolerance.magnitude else {
            throw DomainError(.permissionDenied, "the webhook signature's timestamp is outside the tolerance of \(tolerance) s")
        }
        let message = signedBytes(payload, t)
        let key = key(secret)
        var valid = false
        for signature in signatures {
            // Constant time in the signature's bytes (swift-crypto's safe comparison).
            if HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: message, using: key) { valid = true }
        }
        guard valid else { throw DomainError(.permissionDenied, "the webhook signature does not match") }
        return t
    }

    private static var malformed: DomainError {
        DomainError(.permissionDenied, "the webhook signature header is missing or malformed")
    }

    private static func key(_ secret: String) -> SymmetricKey { SymmetricKey(data: Array(secret.utf8)) }

    private static func signedBytes(_ payload: [UInt8], _ t: Int64) -> [UInt8] {
        Array("\(t).".utf8) + payload
    }

    private static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func unhex(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: c - 48
            case 97...102: c - 87
            case 65...70: c - 55
            default: nil
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(chars.count / 2)
        var i = 0
        while i < chars.count {
            guard let high = nibble(chars[i]), let low = nibble(chars[i + 1]) else { return nil }
            bytes.append(high << 4 | low)
            i += 2
        }
        return bytes
    }
}
