import Foundation

/// Search text normalization shared by catalog search and autocomplete: lower case, diacritics
/// folded (é → e, ß → ss, ø → o), and tokens split on anything that is not a letter or digit.
/// Words joined by a hyphen or apostrophe also index joined ("t-shirt" → "tshirt", "t", "shirt")
/// so that "tshirt", "t-shirt" and "shirt" all find it.
public enum TextNormalizer {
    /// Letters that canonical decomposition does not fold.
    private static let special: [Character: String] = [
        "ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i",
    ]

    /// Lower case with diacritics removed; other characters kept.
    public static func fold(_ text: String) -> String {
        let lowered = text.lowercased()
        var out = ""
        out.reserveCapacity(lowered.utf8.count)
        if lowered.utf8.allSatisfy({ $0 < 0x80 }) { return lowered }
        for ch in lowered {
            if let s = special[ch] { out += s; continue }
            if ch.isASCII { out.append(ch); continue }
            for scalar in String(ch).decomposedStringWithCanonicalMapping.unicodeScalars {
                switch scalar.properties.generalCategory {
                case .nonspacingMark, .spacingMark, .enclosingMark: continue
                default: out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }

    /// Index tokens of `text`: folded words, plus hyphen/apostrophe-joined compounds, unique, in
    /// order of first appearance.
    public static func tokens(_ text: String) -> [String] {
        var result: [String] = []
        var seen = Set<String>()
        func add(_ t: String) { if !t.isEmpty && seen.insert(t).inserted { result.append(t) } }
        for compound in compounds(fold(text)) {
            let parts = compound
            if parts.count > 1 { add(parts.joined()) }
            for p in parts { add(p) }
        }
        return result
    }

    /// Query tokens: like ``tokens(_:)`` but a compound counts once, joined ("t-sh" → "tsh").
    public static func queryTokens(_ text: String) -> [String] {
        var result: [String] = []
        for compound in compounds(fold(text)) {
            let t = compound.joined()
            if !t.isEmpty && !result.contains(t) { result.append(t) }
        }
        return result
    }

    /// Splits folded text into compounds (words joined by `-`, `'` or `’`), each a list of parts.
    private static func compounds(_ folded: String) -> [[String]] {
        var out: [[String]] = []
        var parts: [String] = []
        var word = ""
        func endWord() { if !word.isEmpty { parts.append(word); word = "" } }
        func endCompound() { endWord(); if !parts.isEmpty { out.append(parts); parts = [] } }
        for ch in folded {
            if ch.isLetter || ch.isNumber {
                word.append(ch)
            } else if ch == "-" || ch == "'" || ch == "’" {
                endWord()
            } else {
                endCompound()
            }
        }
        endCompound()
        return out
    }
}
