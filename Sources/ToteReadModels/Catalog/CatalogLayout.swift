import Glibc
import ToteDomain
import ToteProto

/// The catalog read model's databases and key encodings (documented in docs/READMODELS.md,
/// section "Catalog facets"). Integers in keys are big-endian so that byte order is numeric order;
/// parts of a key are separated by a 0 byte.
public enum CatalogLayout {
    /// `next_id` → the next internal product id (u32 BE).
    public static let meta = "catalog.meta"
    /// product_id (UTF-8) → internal id (u32 BE), allocated on first sight, never reused.
    public static let productIDs = "catalog.product_ids"
    /// internal id (u32 BE) → the projection's product record (`tote.v1.Product`: status,
    /// details, variants, and the default-slot prices of every currency in `prices[0]`).
    public static let products = "catalog.products"
    /// category id → `tote.v1.Category` (slug, name, parent_slug = parent id, ancestor_slugs =
    /// ancestor ids, root first).
    public static let categories = "catalog.categories"
    /// category slug → category id.
    public static let categorySlugs = "catalog.category_slugs"
    /// SKU → internal product id (u32 BE).
    public static let skus = "catalog.skus"
    /// SKU 0x00 location → on hand (i64 BE) + reserved (i64 BE).
    public static let stock = "catalog.stock"
    /// SKU → number of locations where it is available (u32 BE); absent = none.
    public static let skuStock = "catalog.sku_stock"
    /// Posting lists of published products, each split into chunks (``Postings``): key = list key
    /// + chunk number (u16 BE), value = the chunk's ids: below 128 ids sorted u32 LE, from 128 on
    /// a 512-byte bitset (``PostingChunk``). List keys:
    /// `c<cat>\0` all in the category or a descendant, `c<cat>\0<attr>\0<value>` with that value,
    /// `t<token>` text token, `p<currency>\0<bucket u16 BE>` a variant price in the bucket,
    /// `s` in stock.
    public static let postings = "catalog.postings"
    /// Sort indexes, empty values: `n<published_at>` + id, `l<currency>\0<min price>` + id,
    /// `h<currency>\0<max price>` + id (signed integers as order-preserving u64 BE).
    public static let sortKeys = "catalog.sort"
    /// internal id (u32 BE) + currency → encoded `tote.v1.ProductSummary` in that currency (empty
    /// currency: the summary without prices).
    public static let summaries = "catalog.summaries"
    /// currency 0x00 internal id (u32 BE) → the product's variant prices, ascending (i64 BE each).
    public static let prices = "catalog.prices"
    /// internal id (u32 BE) → every postings/sort/summary/prices key the product is in, so that
    /// a change removes exactly what the previous state added.
    public static let memberships = "catalog.memberships"

    /// Every database of the catalog model.
    public static let all = [meta, productIDs, products, categories, categorySlugs, skus, stock, skuStock, postings, sortKeys, summaries, prices, memberships]

    // MARK: Keys

    /// Unsigned byte order (LMDB's): whether `l` sorts before `r`.
    static func precedes(_ l: [UInt8], _ r: [UInt8]) -> Bool {
        let n = Swift.min(l.count, r.count)
        let c = l.withUnsafeBufferPointer { a in r.withUnsafeBufferPointer { b in n == 0 ? 0 : memcmp(a.baseAddress!, b.baseAddress!, n) } }
        return c != 0 ? c < 0 : l.count < r.count
    }

    static func u32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }

    static func readU32(_ b: UnsafeRawBufferPointer, at offset: Int = 0) -> UInt32 {
        (UInt32(b[offset]) << 24) | (UInt32(b[offset + 1]) << 16) | (UInt32(b[offset + 2]) << 8) | UInt32(b[offset + 3])
    }

    static func readU32(_ b: [UInt8], at offset: Int = 0) -> UInt32 { b.withUnsafeBytes { readU32($0, at: offset) } }

    static func u64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8((v >> (56 - 8 * UInt64($0))) & 0xff) } }

    static func readU64(_ b: UnsafeRawBufferPointer, at offset: Int = 0) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<8 { v = (v << 8) | UInt64(b[offset + i]) }
        return v
    }

    /// A signed integer as a u64 whose unsigned order is the signed order.
    static func sortable(_ v: Int64) -> [UInt8] { u64(UInt64(bitPattern: v) ^ (1 << 63)) }
    static func readSortable(_ b: UnsafeRawBufferPointer, at offset: Int) -> Int64 { Int64(bitPattern: readU64(b, at: offset) ^ (1 << 63)) }

    static func categoryAll(_ category: String) -> [UInt8] { [0x63] + Array(category.utf8) + [0] }
    static func categoryValue(_ category: String, _ attribute: String, _ value: [UInt8]) -> [UInt8] {
        categoryAll(category) + Array(attribute.utf8) + [0] + value
    }
    static func token(_ token: String) -> [UInt8] { [0x74] + Array(token.utf8) }
    static func priceBucketPrefix(_ currency: String) -> [UInt8] { [0x70] + Array(currency.utf8) + [0] }
    static func priceBucket(_ currency: String, _ bucket: UInt16) -> [UInt8] { priceBucketPrefix(currency) + [UInt8(bucket >> 8), UInt8(bucket & 0xff)] }
    static let inStock: [UInt8] = [0x73]
    static func newest(_ publishedAt: Int64, _ id: UInt32) -> [UInt8] { [0x6e] + sortable(publishedAt) + u32(id) }
    static func minPricePrefix(_ currency: String) -> [UInt8] { [0x6c] + Array(currency.utf8) + [0] }
    static func maxPricePrefix(_ currency: String) -> [UInt8] { [0x68] + Array(currency.utf8) + [0] }
    static func summary(_ id: UInt32, _ currency: String) -> [UInt8] { u32(id) + Array(currency.utf8) }
    static func priceList(_ currency: String, _ id: UInt32) -> [UInt8] { Array(currency.utf8) + [0] + u32(id) }
    static func stockItem(_ sku: String, _ location: String) -> [UInt8] { Array(sku.utf8) + [0] + Array(location.utf8) }

    /// The price bucket of an amount: 8 buckets per power of two (about ±6 % wide), monotonic.
    static func bucket(_ minorUnits: Int64) -> UInt16 {
        guard minorUnits > 0 else { return 0 }
        let bits = 64 - minorUnits.leadingZeroBitCount
        let sub = bits >= 4 ? Int((minorUnits >> (bits - 4)) & 7) : 0
        return UInt16(bits * 8 + sub)
    }

    // MARK: Attribute values

    /// The key form of an attribute value: `s<text>`, `n<decimal>` (normalized, e.g. `n15.6`),
    /// `b0`/`b1`.
    static func encode(_ value: ProductDecider.AttributeValue) -> [UInt8] {
        switch value.normalized {
        case .text(let s): return [0x73] + Array(s.utf8)
        case .bool(let b): return [0x62, b ? 0x31 : 0x30]
        case .number(let unscaled, let scale): return [0x6e] + Array(decimalString(unscaled, scale).utf8)
        }
    }

    /// Decodes ``encode(_:)``.
    static func decodeValue(_ bytes: ArraySlice<UInt8>) -> ProductDecider.AttributeValue? {
        guard let tag = bytes.first else { return nil }
        let rest = String(decoding: bytes.dropFirst(), as: UTF8.self)
        switch tag {
        case 0x73: return .text(rest)
        case 0x62: return .bool(rest == "1")
        case 0x6e: return parseDecimal(rest).map { .number(unscaled: $0.0, scale: $0.1) }
        default: return nil
        }
    }

    static func decimalString(_ unscaled: Int64, _ scale: UInt32) -> String {
        let negative = unscaled < 0
        var digits = String(unscaled.magnitude)
        if scale > 0 {
            let s = Int(scale)
            if digits.count <= s { digits = String(repeating: "0", count: s - digits.count + 1) + digits }
            digits.insert(".", at: digits.index(digits.endIndex, offsetBy: -s))
        }
        return negative ? "-" + digits : digits
    }

    static func parseDecimal(_ s: String) -> (Int64, UInt32)? {
        var text = Substring(s)
        let negative = text.hasPrefix("-")
        if negative { text = text.dropFirst() }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, let whole = UInt64(parts[0] + (parts.count == 2 ? parts[1] : "")), whole <= UInt64(Int64.max) else { return nil }
        let scale = parts.count == 2 ? UInt32(parts[1].count) : 0
        return (negative ? -Int64(whole) : Int64(whole), scale)
    }

    /// Compares two decimals exactly (-1, 0, 1).
    static func compare(_ a: (Int64, UInt32), _ b: (Int64, UInt32)) -> Int {
        let scale = max(a.1, b.1)
        func widen(_ x: (Int64, UInt32)) -> Int128 {
            var v = Int128(x.0)
            for _ in 0..<(scale - x.1) { v *= 10 }
            return v
        }
        let l = widen(a), r = widen(b)
        return l < r ? -1 : (l > r ? 1 : 0)
    }
}
