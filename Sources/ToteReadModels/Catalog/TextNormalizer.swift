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
        tokenize(text, ascii: asciiTokens, folded: tokens(folded:))
    }

    /// `ascii` of `text`, else (most other text folds to ASCII: "Crème" → "creme", and folding
    /// twice changes nothing) `ascii` of the folded text, else `folded` of it.
    private static func tokenize(_ text: String, ascii: (String) -> [String]?, folded general: (String) -> [String]) -> [String] {
        if let tokens = ascii(text) { return tokens }
        let folded = fold(text)
        return ascii(folded) ?? general(folded)
    }

    /// ``tokens(_:)`` of ASCII text (nil for anything else), byte by byte: the same tokens as
    /// ``unicodeTokens(_:)`` gives, without its `Character` iteration, Unicode property lookups
    /// and intermediate strings (a tenth of the catalog's and autocomplete's catch-up profiles).
    /// In ASCII the letters and digits are exactly `[A-Za-z0-9]`, folding is lowercasing, and
    /// `-` and `'` join.
    static func asciiTokens(_ text: String) -> [String]? {
        var text = text
        return text.withUTF8 { bytes -> [String]? in
            var result: [String] = []
            // Names and attribute values have a handful of tokens: a linear search beats hashing
            // them; long texts switch to a set.
            var seen: Set<String>?
            func add(_ token: String) {
                if let set = seen {
                    if set.contains(token) { return }
                } else if result.contains(token) {
                    return
                }
                result.append(token)
                if seen != nil { seen!.insert(token) } else if result.count > 32 { seen = Set(result) }
            }
            var compound: [UInt8] = []  // the compound's parts, joined
            var parts: [Range<Int>] = []  // each part's range in `compound`
            var partStart = 0
            func endWord() {
                if compound.count > partStart { parts.append(partStart..<compound.count) }
                partStart = compound.count
            }
            func endCompound() {
                endWord()
                if parts.count > 1 { add(String(decoding: compound, as: UTF8.self)) }
                for part in parts { add(String(decoding: compound[part], as: UTF8.self)) }
                compound.removeAll(keepingCapacity: true)
                parts.removeAll(keepingCapacity: true)
                partStart = 0
            }
            for byte in bytes {
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"): compound.append(byte)
                case UInt8(ascii: "A")...UInt8(ascii: "Z"): compound.append(byte | 0x20)
                case UInt8(ascii: "-"), UInt8(ascii: "'"): endWord()
                case 0x80...: return nil
                default: endCompound()
                }
            }
            endCompound()
            return result
        }
    }

    /// ``tokens(_:)`` for any text, by `Character`.
    static func unicodeTokens(_ text: String) -> [String] { tokens(folded: fold(text)) }

    /// ``unicodeTokens(_:)`` of text ``fold(_:)`` returned.
    private static func tokens(folded: String) -> [String] {
        var result: [String] = []
        var seen = Set<String>()
        func add(_ t: String) { if !t.isEmpty && seen.insert(t).inserted { result.append(t) } }
        for compound in compounds(folded) {
            let parts = compound
            if parts.count > 1 { add(parts.joined()) }
            for p in parts { add(p) }
        }
        return result
    }

    /// Query tokens: like ``tokens(_:)`` but a compound counts once, joined ("t-sh" → "tsh").
    public static func queryTokens(_ text: String) -> [String] {
        tokenize(text, ascii: asciiQueryTokens, folded: unicodeQueryTokens(folded:))
    }

    /// ``queryTokens(_:)`` of ASCII text (nil for anything else), byte by byte, as
    /// ``asciiTokens(_:)`` is for ``tokens(_:)``: every autocomplete call tokenizes what the
    /// shopper typed, and the `Character` path was a sixth of its handling.
    static func asciiQueryTokens(_ text: String) -> [String]? {
        var text = text
        return text.withUTF8 { bytes -> [String]? in
            var result: [String] = []
            var compound: [UInt8] = []
            func endCompound() {
                guard !compound.isEmpty else { return }
                let token = String(decoding: compound, as: UTF8.self)
                if !result.contains(token) { result.append(token) }
                compound.removeAll(keepingCapacity: true)
            }
            for byte in bytes {
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"): compound.append(byte)
                case UInt8(ascii: "A")...UInt8(ascii: "Z"): compound.append(byte | 0x20)
                case UInt8(ascii: "-"), UInt8(ascii: "'"): continue
                case 0x80...: return nil
                default: endCompound()
                }
            }
            endCompound()
            return result
        }
    }

    /// ``queryTokens(_:)`` of text ``fold(_:)`` returned, by `Character`.
    static func unicodeQueryTokens(folded: String) -> [String] {
        var result: [String] = []
        for compound in compounds(folded) {
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
