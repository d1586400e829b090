import Glibc
import SwiftProtobuf
import ToteDomain
import ToteProto

/// Catalog search over the catalog read model (``CatalogProjection``): category with its
/// descendants, attribute filters, a price range in a currency, in stock only, text as token
/// prefixes; the total count, one page of summaries, disjunctive facet counts and price stats.
///
/// Facets follow Algolia/Meilisearch semantics: the count of value v of attribute A is the number
/// of products matching every filter except A's own, and having v. Invalid requests throw
/// ``DomainError`` `.invalidArgument` (INVALID_ARGUMENT on the wire).
public enum CatalogQuery {
    /// Page size when the request gives none.
    public static let defaultPageSize = 20
    /// The largest page served.
    public static let maxPageSize = 100
    /// Values per facet when the request gives none.
    public static let defaultFacetValues = 10
    /// The most values per facet served.
    public static let maxFacetValues = 100

    /// Answers one search from one snapshot of the read model.
    public static func search(_ reader: some ReadModelReader, request: Tote_V1_SearchCatalogRequest) throws -> Tote_V1_SearchCatalogResponse {
        let plan = try Plan(request)
        var response = Tote_V1_SearchCatalogResponse()
        let page = try evaluate(reader, plan, &response)
        for id in page {
            let bytes = try reader.get(CatalogLayout.summaries, CatalogLayout.summary(id, plan.currency))
                ?? reader.get(CatalogLayout.summaries, CatalogLayout.summary(id, ""))
            if let bytes { response.products.append(try Tote_V1_ProductSummary(serializedBytes: bytes)) }
        }
        return response
    }

    /// The same answer, already encoded: the page's summaries are copied from the stored bytes
    /// into the response without decoding them (field 2 of `SearchCatalogResponse`).
    public static func searchEncoded(_ reader: some ReadModelReader, request: Tote_V1_SearchCatalogRequest) throws -> [UInt8] {
        let plan = try Plan(request)
        var response = Tote_V1_SearchCatalogResponse()
        let page = try evaluate(reader, plan, &response)
        var out: [UInt8] = try response.serializedBytes()
        for id in page {
            let copied: Void? = try reader.withValue(CatalogLayout.summaries, CatalogLayout.summary(id, plan.currency)) { b in appendField2(b, to: &out) }
            if copied == nil { _ = try reader.withValue(CatalogLayout.summaries, CatalogLayout.summary(id, "")) { b in appendField2(b, to: &out) } }
        }
        return out
    }

    private static func appendField2(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        out.append(0x12)
        var n = UInt64(bytes.count)
        while n >= 0x80 { out.append(UInt8(n & 0x7f) | 0x80); n >>= 7 }
        out.append(UInt8(n))
        out.append(contentsOf: bytes)
    }

    // MARK: Request

    /// One attribute filter, validated.
    struct Filter {
        var attribute: String
        var values: Set<[UInt8]>
        var min: (Int64, UInt32)?
        var max: (Int64, UInt32)?

        /// Whether a value (key form) passes this filter.
        func accepts(_ encoded: ArraySlice<UInt8>) -> Bool {
            if !values.isEmpty && !values.contains(Array(encoded)) { return false }
            if min == nil && max == nil { return true }
            guard case .number(let u, let s)? = CatalogLayout.decodeValue(encoded) else { return false }
            if let min, CatalogLayout.compare((u, s), min) < 0 { return false }
            if let max, CatalogLayout.compare((u, s), max) > 0 { return false }
            return true
        }
    }

    enum Sort { case relevance, priceAscending, priceDescending, newest }

    /// A validated request.
    struct Plan {
        var categorySlug: String
        var tokens: [String]
        var filters: [Filter]
        var currency: String
        var priceMin: Int64?
        var priceMax: Int64?
        var inStockOnly: Bool
        var sort: Sort
        var offset: Int
        var pageSize: Int
        var facetAttributes: [String]
        var maxFacetValues: Int
        var selected: [String: Set<[UInt8]>]
        /// Whether the response carries price stats (the request did not omit them).
        var priceStats: Bool

        init(_ r: Tote_V1_SearchCatalogRequest) throws {
            var v = Validator()
            let currency = r.currency
            v.require(currency.utf8.count == 3 && currency.utf8.allSatisfy { $0 >= 0x41 && $0 <= 0x5a }, "currency", "an ISO 4217 code (3 upper-case letters) is required")
            v.require(r.priceRange.minMinorUnits >= 0, "price_range.min_minor_units", "must not be negative")
            v.require(r.priceRange.maxMinorUnits >= 0, "price_range.max_minor_units", "must not be negative")
            if r.priceRange.maxMinorUnits > 0 {
                v.require(r.priceRange.minMinorUnits <= r.priceRange.maxMinorUnits, "price_range", "min_minor_units must not exceed max_minor_units")
            }
            v.require(r.text.count <= 200, "text", "at most 200 characters")
            v.require(r.filters.count <= 50, "filters", "at most 50 filters")
            var filters: [Filter] = []
            var seen = Set<String>()
            for (i, f) in r.filters.enumerated() {
                v.require(!f.attribute.isEmpty, "filters[\(i)].attribute", "is required")
                v.require(seen.insert(f.attribute).inserted, "filters[\(i)].attribute", "\(f.attribute) is filtered twice")
                var values = Set<[UInt8]>()
                for (j, value) in f.values.enumerated() {
                    if let parsed = ProductDecider.AttributeValue(value) { values.insert(CatalogLayout.encode(parsed)) } else { v.require(false, "filters[\(i)].values[\(j)]", "has no value set") }
                    if case .numberValue(let d)? = value.value { v.require(d.scale <= 18, "filters[\(i)].values[\(j)]", "scale at most 18") }
                }
                let min = f.hasMin ? (f.min.unscaled, f.min.scale) : nil
                let max = f.hasMax ? (f.max.unscaled, f.max.scale) : nil
                v.require((min?.1 ?? 0) <= 18 && (max?.1 ?? 0) <= 18, "filters[\(i)]", "min and max have a scale of at most 18")
                if let min, let max, min.1 <= 18, max.1 <= 18 { v.require(CatalogLayout.compare(min, max) <= 0, "filters[\(i)].min", "must not exceed max") }
                v.require(!values.isEmpty || min != nil || max != nil, "filters[\(i)]", "needs values, min or max")
                filters.append(Filter(attribute: f.attribute, values: values, min: min, max: max))
            }
            var offset = 0
            if !r.page.pageToken.isEmpty {
                if let o = Int(r.page.pageToken), o >= 0, o <= 1_000_000 { offset = o } else { v.require(false, "page.page_token", "is not a token this service issued") }
            }
            switch r.sort {
            case .unspecified, .relevance, .priceAsc, .priceDesc, .newest: break
            default: v.require(false, "sort", "unknown sort \(r.sort.rawValue)")
            }
            try v.check()
            self.categorySlug = r.categorySlug
            self.tokens = TextNormalizer.queryTokens(r.text)
            self.filters = filters
            self.currency = currency
            self.priceMin = r.priceRange.minMinorUnits > 0 ? r.priceRange.minMinorUnits : nil
            self.priceMax = r.priceRange.maxMinorUnits > 0 ? r.priceRange.maxMinorUnits : nil
            self.inStockOnly = r.inStockOnly
            switch r.sort {
            case .relevance: sort = .relevance
            case .priceAsc: sort = .priceAscending
            case .priceDesc: sort = .priceDescending
            case .newest: sort = .newest
            default: sort = tokens.isEmpty ? .newest : .relevance
            }
            if sort == .relevance && tokens.isEmpty { sort = .newest }
            self.offset = offset
            self.pageSize = r.page.pageSize == 0 ? CatalogQuery.defaultPageSize : min(Int(r.page.pageSize), CatalogQuery.maxPageSize)
            var attributes: [String] = []
            for a in r.facetAttributes where !attributes.contains(a) { attributes.append(a) }
            self.facetAttributes = attributes
            self.maxFacetValues = r.maxFacetValues == 0 ? CatalogQuery.defaultFacetValues : min(Int(r.maxFacetValues), CatalogQuery.maxFacetValues)
            self.selected = Dictionary(uniqueKeysWithValues: filters.map { ($0.attribute, $0.values) })
            self.priceStats = !r.omitPriceStats
        }
    }

    // MARK: Evaluation

    /// Ids are below the next id to allocate (the bitmaps' size).
    private static func universe(_ reader: some ReadModelReader) throws -> Int {
        try reader.withValue(CatalogLayout.meta, Array("next_id".utf8)) { $0.count >= 4 ? Int(CatalogLayout.readU32($0)) : 0 } ?? 0
    }

    /// The whole list `key` as a bitmap (its chunks decoded straight into the bits).
    private static func bitmap(_ reader: some ReadModelReader, _ key: [UInt8], universe: Int) throws -> IDBitmap {
        var set = IDBitmap(universe: universe)
        try reader.scan(CatalogLayout.postings, prefix: key, from: nil, reverse: false) { k, v in
            guard k.count == key.count + Postings.suffixLength else { return false }
            set.insert(chunk: v, number: PostingChunk.number(ofKey: k))
            return true
        }
        return set
    }

    /// Calls `body` with (value key, chunk bytes, chunk number) for every chunk of every value
    /// list under `attributePrefix` (`c<cat>\0<attribute>\0`), in key order: a value's chunks
    /// are consecutive.
    private static func forEachValueChunk(_ reader: some ReadModelReader, _ attributePrefix: [UInt8], _ body: ([UInt8], UnsafeRawBufferPointer, Int) throws -> Void) throws {
        var lastValue: [UInt8] = []
        try reader.scan(CatalogLayout.postings, prefix: attributePrefix, from: nil, reverse: false) { k, v in
            guard k.count > attributePrefix.count + Postings.suffixLength else { return true }
            let value = UnsafeRawBufferPointer(rebasing: k[attributePrefix.count..<(k.count - Postings.suffixLength)])
            if !Self.equal(lastValue, value) { lastValue = Array(value) }
            try body(lastValue, v, PostingChunk.number(ofKey: k))
            return true
        }
    }

    /// Whether `a` holds exactly the bytes of `b` (one `memcmp`, not a generic element loop).
    @inline(__always)
    private static func equal(_ a: [UInt8], _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        return a.isEmpty || a.withUnsafeBytes { memcmp($0.baseAddress!, b.baseAddress!, b.count) == 0 }
    }

    /// Fills everything but the products; returns the page's ids in order.
    ///
    /// Sets are bitmaps over every internal id (``IDBitmap``): intersections are word ANDs, and a
    /// facet value's count is, per stored chunk, an AND + popcount of 64 words (bitset chunks) or a
    /// probe per id (array chunks); no intermediate id list is built. Only the attributes asked
    /// for (facets and filters) are read, each by its own prefix.
    private static func evaluate(_ reader: some ReadModelReader, _ plan: Plan, _ response: inout Tote_V1_SearchCatalogResponse) throws -> [UInt32] {
        let categoryID: String
        if plan.categorySlug.isEmpty {
            categoryID = ""
        } else if let id = try reader.get(CatalogLayout.categorySlugs, Array(plan.categorySlug.utf8)) {
            categoryID = String(decoding: id, as: UTF8.self)
        } else {
            categoryID = plan.categorySlug  // unknown slug: an id-listed category may still exist
        }
        let universe = try universe(reader)
        let all = try bitmap(reader, CatalogLayout.categoryAll(categoryID), universe: universe)

        // Text: every query token as a prefix of some product token.
        var textList: IDBitmap?
        var exactLists: [IDBitmap] = []
        for token in plan.tokens {
            var matched = IDBitmap(universe: universe)
            try reader.scan(CatalogLayout.postings, prefix: CatalogLayout.token(token), from: nil, reverse: false) { k, v in
                matched.insert(chunk: v, number: PostingChunk.number(ofKey: k))
                return true
            }
            if textList == nil { textList = matched } else { textList!.formIntersection(matched) }
            if plan.sort == .relevance { exactLists.append(try bitmap(reader, CatalogLayout.token(token), universe: universe)) }
        }
        let stockList = plan.inStockOnly ? try bitmap(reader, CatalogLayout.inStock, universe: universe) : nil
        let priceList = try priceFiltered(reader, plan, universe: universe)

        // Each filter's accepted products (OR over its values): a filter listing values reads just
        // those lists; one with a numeric range reads every value of its attribute.
        let categoryPrefix = CatalogLayout.categoryAll(categoryID)
        var filterLists: [String: IDBitmap] = [:]
        for f in plan.filters {
            var accepted = IDBitmap(universe: universe)
            let attributePrefix = categoryPrefix + Array(f.attribute.utf8) + [0]
            if f.min == nil && f.max == nil {
                for value in f.values {
                    let key = attributePrefix + value
                    try reader.scan(CatalogLayout.postings, prefix: key, from: nil, reverse: false) { k, v in
                        // Longer values under the same prefix are skipped (their keys are longer).
                        if k.count == key.count + Postings.suffixLength { accepted.insert(chunk: v, number: PostingChunk.number(ofKey: k)) }
                        return true
                    }
                }
            } else {
                try forEachValueChunk(reader, attributePrefix) { value, v, c in
                    if f.accepts(value[...]) { accepted.insert(chunk: v, number: c) }
                }
            }
            filterLists[f.attribute] = accepted
        }
        let base = IDBitmap.intersect([all, textList, stockList])!
        let withoutPrice = IDBitmap.intersect([base] + plan.filters.map { filterLists[$0.attribute] })!
        let result = IDBitmap.intersect([withoutPrice, priceList])!
        let withPrice = IDBitmap.intersect([base, priceList])!
        let total = result.count
        response.totalCount = UInt64(total)

        // Facets: for A, everything but A's own filter; each chunk of A's value lists is counted
        // against that set as it is read (no id list is built).
        var facetNames = plan.facetAttributes
        if facetNames.isEmpty {
            // Every attribute of the category, by name.
            var names = Set<String>()
            try reader.scan(CatalogLayout.postings, prefix: categoryPrefix, from: nil, reverse: false) { k, _ in
                guard k.count > categoryPrefix.count + Postings.suffixLength else { return true }
                let rest = UnsafeRawBufferPointer(rebasing: k[categoryPrefix.count..<(k.count - Postings.suffixLength)])
                if let sep = rest.firstIndex(of: 0) { names.insert(String(decoding: rest[..<sep], as: UTF8.self)) }
                return true
            }
            facetNames = names.sorted()
        }
        for attribute in facetNames {
            let others = IDBitmap.intersect([withPrice] + plan.filters.filter { $0.attribute != attribute }.map { filterLists[$0.attribute] })!
            let selected = plan.selected[attribute] ?? []
            var counted: [([UInt8], Int)] = []
            try forEachValueChunk(reader, categoryPrefix + Array(attribute.utf8) + [0]) { value, v, c in
                let n = others.count(chunk: v, number: c)
                if let last = counted.last, last.0 == value {
                    counted[counted.count - 1].1 += n
                } else {
                    counted.append((value, n))
                }
            }
            counted.removeAll { $0.1 == 0 && !selected.contains($0.0) }
            for value in selected.sorted(by: { $0.lexicographicallyPrecedes($1) }) where !counted.contains(where: { $0.0 == value }) { counted.append((value, 0)) }
            if plan.facetAttributes.isEmpty && !counted.contains(where: { $0.1 > 0 }) && selected.isEmpty { continue }
            counted.sort { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0.lexicographicallyPrecedes($1.0) }
            var facet = Tote_V1_Facet()
            facet.attribute = attribute
            var kept = 0
            for (value, n) in counted {
                let isSelected = selected.contains(value)
                if kept >= plan.maxFacetValues && !isSelected { continue }
                guard let decoded = CatalogLayout.decodeValue(value[...]) else { continue }
                var fv = Tote_V1_FacetValue()
                fv.value = decoded.proto
                fv.count = UInt64(n)
                fv.selected = isSelected
                facet.values.append(fv)
                if !isSelected { kept += 1 }
            }
            response.facets.append(facet)
        }

        // Price stats over the matches, ignoring the price filter, unless the request omits them.
        if plan.priceStats, let (lo, hi) = try priceStats(reader, plan.currency, withoutPrice) {
            var stats = Tote_V1_PriceStats()
            stats.min.currency = plan.currency
            stats.min.minorUnits = lo
            stats.max.currency = plan.currency
            stats.max.minorUnits = hi
            response.priceStats = stats
        }

        let page = try order(reader, plan, result, count: total, universe: universe, exactLists: exactLists)
        response.pageInfo.totalCount = UInt64(total)
        if plan.offset + plan.pageSize < total { response.pageInfo.nextPageToken = String(plan.offset + plan.pageSize) }
        return page
    }

    /// Products with a variant price in the requested range; nil when there is no range.
    private static func priceFiltered(_ reader: some ReadModelReader, _ plan: Plan, universe: Int) throws -> IDBitmap? {
        guard plan.priceMin != nil || plan.priceMax != nil else { return nil }
        let lo = plan.priceMin ?? 0, hi = plan.priceMax ?? Int64.max
        let loBucket = CatalogLayout.bucket(lo), hiBucket = CatalogLayout.bucket(hi)
        let prefix = CatalogLayout.priceBucketPrefix(plan.currency)
        var inside = IDBitmap(universe: universe)
        var edge = IDBitmap(universe: universe)
        try reader.scan(CatalogLayout.postings, prefix: prefix, from: CatalogLayout.priceBucket(plan.currency, loBucket), reverse: false) { k, v in
            guard k.count == prefix.count + 2 + Postings.suffixLength else { return true }
            let b = UInt16(k[prefix.count]) << 8 | UInt16(k[prefix.count + 1])
            if b > hiBucket { return false }
            let c = PostingChunk.number(ofKey: k)
            if b == loBucket || b == hiBucket { edge.insert(chunk: v, number: c) } else { inside.insert(chunk: v, number: c) }
            return true
        }
        try edge.forEach { id in
            guard !inside.contains(id) else { return true }
            let ok = try reader.withValue(CatalogLayout.prices, CatalogLayout.priceList(plan.currency, id)) { b in
                stride(from: 0, to: b.count, by: 8).contains { i in
                    let p = CatalogLayout.readSortable(b, at: i)
                    return p >= lo && p <= hi
                }
            } ?? false
            if ok { inside.insert(id) }
            return true
        }
        return inside
    }

    /// The lowest and highest variant price among `ids` in `currency`.
    ///
    /// From the price-bucket posting lists: the lowest bucket whose list meets the set holds the
    /// lowest price of every product of the set it lists (none of them has a price in a lower
    /// bucket), so the minimum is the least first price (`catalog.prices`) among just those
    /// products; the maximum likewise from the highest bucket down. Each bucket passed costs a
    /// word AND per bitset chunk or a probe per id of an array chunk, so a set of expensive
    /// products among many cheap ones no longer falls back to one `catalog.prices` read per
    /// product (what the scan of the `l`/`h` sort index did when it found no match early).
    private static func priceStats(_ reader: some ReadModelReader, _ currency: String, _ ids: IDBitmap) throws -> (Int64, Int64)? {
        guard !ids.isEmpty else { return nil }
        let prefix = CatalogLayout.priceBucketPrefix(currency)
        func extreme(highest: Bool) throws -> Int64? {
            var bucket: (UInt8, UInt8)?
            var hits: [UInt32] = []
            try reader.scan(CatalogLayout.postings, prefix: prefix, from: nil, reverse: highest) { k, v in
                guard k.count == prefix.count + 2 + Postings.suffixLength else { return true }
                let b = (k[prefix.count], k[prefix.count + 1])
                if let found = bucket, found != b { return false }  // past the found bucket's chunks
                ids.forEachCommon(chunk: v, number: PostingChunk.number(ofKey: k)) { hits.append($0) }
                if !hits.isEmpty { bucket = b }
                return true
            }
            var best: Int64?
            for id in hits {
                try reader.withValue(CatalogLayout.prices, CatalogLayout.priceList(currency, id)) { b in
                    guard b.count >= 8 else { return }
                    let p = CatalogLayout.readSortable(b, at: highest ? b.count - 8 : 0)
                    best = highest ? Swift.max(best ?? p, p) : Swift.min(best ?? p, p)
                }
            }
            return best
        }
        guard let lo = try extreme(highest: false), let hi = try extreme(highest: true) else { return nil }
        return (lo, hi)
    }

    /// The `catalog.sort` key starting with `prefix` (and followed by exactly 8 + 4 bytes) among a
    /// product's memberships (`u8` kind · `u16` length · key, repeated), or nil.
    private static func sortKey(in m: UnsafeRawBufferPointer, prefix: [UInt8]) -> [UInt8]? {
        var i = 0
        while i + 3 <= m.count {
            let kind = m[i], n = Int(m[i + 1]) << 8 | Int(m[i + 2])
            i += 3
            guard i + n <= m.count else { return nil }
            if kind == CatalogProjection.Target.sort.rawValue, n == prefix.count + 12,
               prefix.withUnsafeBytes({ p in memcmp(p.baseAddress!, m.baseAddress! + i, prefix.count) == 0 }) {
                return Array(m[i..<(i + n)])
            }
            i += n
        }
        return nil
    }

    /// The page of `result` in the requested order.
    private static func order(_ reader: some ReadModelReader, _ plan: Plan, _ result: IDBitmap, count: Int, universe: Int, exactLists: [IDBitmap]) throws -> [UInt32] {
        let wanted = plan.offset + plan.pageSize
        guard plan.offset < count else { return [] }
        var ordered: [UInt32] = []
        if plan.sort != .relevance && count * 64 < universe * wanted / count {
            // Few matches: scanning the index would pass about universe / count keys per match
            // wanted; reading each match's own sort key (from its memberships) is cheaper. One
            // memberships read and walk costs about as much as stepping over 50–60 index keys
            // (ReadSideBench per-shape CPU time, 100,000 products), hence the factor 64.
            let prefix: [UInt8]
            switch plan.sort {
            case .newest: prefix = [0x6e]
            case .priceAscending: prefix = CatalogLayout.minPricePrefix(plan.currency)
            default: prefix = CatalogLayout.maxPricePrefix(plan.currency)
            }
            var keyed: [[UInt8]] = []
            var missing: [UInt32] = []
            try result.forEach { id in
                let key: [UInt8]?? = try reader.withValue(CatalogLayout.memberships, CatalogLayout.u32(id)) { m in sortKey(in: m, prefix: prefix) }
                if case let k?? = key { keyed.append(k) } else { missing.append(id) }
                return true
            }
            keyed.sort { CatalogLayout.precedes($0, $1) }
            if plan.sort != .priceAscending { keyed.reverse() }
            // Same order as the scan: by key, then products without a price in the currency, by id.
            ordered = (keyed.map { CatalogLayout.readU32($0, at: $0.count - 4) } + missing).prefix(wanted).map { $0 }
            return Array(ordered.dropFirst(plan.offset).prefix(plan.pageSize))
        }
        switch plan.sort {
        case .relevance:
            // Score: 2 per query token matching a whole product token, 1 per prefix match; ties by id.
            var scored = result.ids.map { id in (id, exactLists.reduce(0) { $0 + ($1.contains(id) ? 2 : 1) }) }
            scored.sort { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }
            ordered = scored.prefix(wanted).map(\.0)
        case .newest:
            try reader.scan(CatalogLayout.sortKeys, prefix: [0x6e], from: nil, reverse: true) { k, _ in
                let id = CatalogLayout.readU32(k, at: k.count - 4)
                if result.contains(id) { ordered.append(id) }
                return ordered.count < wanted
            }
        case .priceAscending, .priceDescending:
            let ascending = plan.sort == .priceAscending
            let prefix = ascending ? CatalogLayout.minPricePrefix(plan.currency) : CatalogLayout.maxPricePrefix(plan.currency)
            var seen = IDBitmap(universe: 0)
            var exhausted = true
            try reader.scan(CatalogLayout.sortKeys, prefix: prefix, from: nil, reverse: !ascending) { k, _ in
                let id = CatalogLayout.readU32(k, at: k.count - 4)
                if result.contains(id) { ordered.append(id); seen.insert(id) }
                if ordered.count >= wanted { exhausted = false; return false }
                return true
            }
            // Products without a price in the currency come last, by id.
            if exhausted {
                result.forEach { id in
                    if !seen.contains(id) { ordered.append(id) }
                    return ordered.count < wanted
                }
            }
        }
        return Array(ordered.dropFirst(plan.offset).prefix(plan.pageSize))
    }
}
