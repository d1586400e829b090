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
        let (_, page) = try evaluate(reader, plan, &response)
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
        let (_, page) = try evaluate(reader, plan, &response)
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
        }
    }

    // MARK: Evaluation

    private static func list(_ reader: some ReadModelReader, _ key: [UInt8]) throws -> PostingList {
        try Postings.read(reader, key)
    }

    /// Fills everything but the products; returns the matching ids and the page's ids in order.
    private static func evaluate(_ reader: some ReadModelReader, _ plan: Plan, _ response: inout Tote_V1_SearchCatalogResponse) throws -> (PostingList, [UInt32]) {
        let categoryID: String
        if plan.categorySlug.isEmpty {
            categoryID = ""
        } else if let id = try reader.get(CatalogLayout.categorySlugs, Array(plan.categorySlug.utf8)) {
            categoryID = String(decoding: id, as: UTF8.self)
        } else {
            categoryID = plan.categorySlug  // unknown slug: an id-listed category may still exist
        }
        let all = try list(reader, CatalogLayout.categoryAll(categoryID))

        // Text: every query token as a prefix of some product token.
        var textList: PostingList?
        var exactLists: [PostingList] = []
        for token in plan.tokens {
            var lists: [PostingList] = []
            try reader.scan(CatalogLayout.postings, prefix: CatalogLayout.token(token), from: nil, reverse: false) { _, v in
                lists.append(PostingList(bytes: v))
                return true
            }
            let matched = PostingList.union(lists)
            textList = textList.map { $0.intersection(matched) } ?? matched
            exactLists.append(try list(reader, CatalogLayout.token(token)))
        }
        let stockList = plan.inStockOnly ? try list(reader, CatalogLayout.inStock) : nil
        let priceList = try priceFiltered(reader, plan)

        // The values of every attribute in the category: attribute → [(value key, list)].
        let categoryPrefix = CatalogLayout.categoryAll(categoryID)
        var attributeValues: [String: [([UInt8], PostingList)]] = [:]
        var attributeOrder: [String] = []
        let wanted = Set(plan.facetAttributes + plan.filters.map(\.attribute))
        try reader.scan(CatalogLayout.postings, prefix: categoryPrefix, from: nil, reverse: false) { k, v in
            // Skip the category's own list (key + chunk number only).
            guard k.count > categoryPrefix.count + Postings.suffixLength else { return true }
            let rest = Array(k[categoryPrefix.count..<(k.count - Postings.suffixLength)])
            guard let sep = rest.firstIndex(of: 0) else { return true }
            let attribute = String(decoding: rest[..<sep], as: UTF8.self)
            if !plan.facetAttributes.isEmpty && !wanted.contains(attribute) { return true }
            if attributeValues[attribute] == nil { attributeOrder.append(attribute) }
            let value = Array(rest[(sep + 1)...])
            let chunk = PostingList(bytes: v)
            if let last = attributeValues[attribute]?.last, last.0 == value {
                // The next chunk of the same list: ids continue in order.
                attributeValues[attribute]![attributeValues[attribute]!.count - 1].1 = PostingList(sortedUnique: last.1.ids + chunk.ids)
            } else {
                attributeValues[attribute, default: []].append((value, chunk))
            }
            return true
        }
        // Each filter's accepted products (OR over its values).
        var filterLists: [String: PostingList] = [:]
        for f in plan.filters {
            let lists = (attributeValues[f.attribute] ?? []).filter { f.accepts($0.0[...]) }.map(\.1)
            filterLists[f.attribute] = PostingList.union(lists)
        }
        let base = PostingList.intersect([all, textList, stockList])!
        let withoutPrice = PostingList.intersect([base] + plan.filters.map { filterLists[$0.attribute] })!
        let result = PostingList.intersect([withoutPrice, priceList])!
        let withPrice = PostingList.intersect([base, priceList])!
        response.totalCount = UInt64(result.count)

        // Facets: for A, everything but A's own filter.
        let facetNames = plan.facetAttributes.isEmpty ? attributeOrder.sorted() : plan.facetAttributes
        for attribute in facetNames {
            let others = PostingList.intersect([withPrice] + plan.filters.filter { $0.attribute != attribute }.map { filterLists[$0.attribute] })!
            let selected = plan.selected[attribute] ?? []
            var counted: [([UInt8], Int)] = []
            for (value, l) in attributeValues[attribute] ?? [] {
                let n = others.intersectionCount(l)
                if n > 0 || selected.contains(value) { counted.append((value, n)) }
            }
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

        // Price stats over the matches, ignoring the price filter.
        if let (lo, hi) = try priceStats(reader, plan.currency, withoutPrice) {
            var stats = Tote_V1_PriceStats()
            stats.min.currency = plan.currency
            stats.min.minorUnits = lo
            stats.max.currency = plan.currency
            stats.max.minorUnits = hi
            response.priceStats = stats
        }

        let page = try order(reader, plan, result, exactLists: exactLists)
        response.pageInfo.totalCount = UInt64(result.count)
        if plan.offset + plan.pageSize < result.count { response.pageInfo.nextPageToken = String(plan.offset + plan.pageSize) }
        return (result, page)
    }

    /// Products with a variant price in the requested range; nil when there is no range.
    private static func priceFiltered(_ reader: some ReadModelReader, _ plan: Plan) throws -> PostingList? {
        guard plan.priceMin != nil || plan.priceMax != nil else { return nil }
        let lo = plan.priceMin ?? 0, hi = plan.priceMax ?? Int64.max
        let loBucket = CatalogLayout.bucket(lo), hiBucket = CatalogLayout.bucket(hi)
        let prefix = CatalogLayout.priceBucketPrefix(plan.currency)
        var inside: [PostingList] = []
        var edge: [PostingList] = []
        try reader.scan(CatalogLayout.postings, prefix: prefix, from: CatalogLayout.priceBucket(plan.currency, loBucket), reverse: false) { k, v in
            guard k.count == prefix.count + 2 + Postings.suffixLength else { return true }
            let b = UInt16(k[prefix.count]) << 8 | UInt16(k[prefix.count + 1])
            if b > hiBucket { return false }
            if b == loBucket || b == hiBucket { edge.append(PostingList(bytes: v)) } else { inside.append(PostingList(bytes: v)) }
            return true
        }
        var accepted: [UInt32] = []
        for id in PostingList.union(edge).ids {
            let ok = try reader.withValue(CatalogLayout.prices, CatalogLayout.priceList(plan.currency, id)) { b in
                stride(from: 0, to: b.count, by: 8).contains { i in
                    let p = CatalogLayout.readSortable(b, at: i)
                    return p >= lo && p <= hi
                }
            } ?? false
            if ok { accepted.append(id) }
        }
        return PostingList.union(inside + [PostingList(sortedUnique: accepted)])
    }

    /// The lowest and highest variant price among `ids` in `currency`.
    private static func priceStats(_ reader: some ReadModelReader, _ currency: String, _ ids: PostingList) throws -> (Int64, Int64)? {
        guard !ids.isEmpty else { return nil }
        var lo: Int64?, hi: Int64?
        if ids.count <= 4096 {
            for id in ids.ids {
                try reader.withValue(CatalogLayout.prices, CatalogLayout.priceList(currency, id)) { b in
                    guard b.count >= 8 else { return }
                    let first = CatalogLayout.readSortable(b, at: 0), last = CatalogLayout.readSortable(b, at: b.count - 8)
                    lo = Swift.min(lo ?? first, first)
                    hi = Swift.max(hi ?? last, last)
                }
            }
        } else {
            let minPrefix = CatalogLayout.minPricePrefix(currency), maxPrefix = CatalogLayout.maxPricePrefix(currency)
            try reader.scan(CatalogLayout.sortKeys, prefix: minPrefix, from: nil, reverse: false) { k, _ in
                guard ids.contains(CatalogLayout.readU32(k, at: k.count - 4)) else { return true }
                lo = CatalogLayout.readSortable(k, at: minPrefix.count)
                return false
            }
            try reader.scan(CatalogLayout.sortKeys, prefix: maxPrefix, from: nil, reverse: true) { k, _ in
                guard ids.contains(CatalogLayout.readU32(k, at: k.count - 4)) else { return true }
                hi = CatalogLayout.readSortable(k, at: maxPrefix.count)
                return false
            }
        }
        guard let lo, let hi else { return nil }
        return (lo, hi)
    }

    /// The page of `result` in the requested order.
    private static func order(_ reader: some ReadModelReader, _ plan: Plan, _ result: PostingList, exactLists: [PostingList]) throws -> [UInt32] {
        let wanted = plan.offset + plan.pageSize
        guard plan.offset < result.count else { return [] }
        var ordered: [UInt32] = []
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
            var seen = Set<UInt32>()
            var exhausted = true
            try reader.scan(CatalogLayout.sortKeys, prefix: prefix, from: nil, reverse: !ascending) { k, _ in
                let id = CatalogLayout.readU32(k, at: k.count - 4)
                if result.contains(id) { ordered.append(id); seen.insert(id) }
                if ordered.count >= wanted { exhausted = false; return false }
                return true
            }
            // Products without a price in the currency come last, by id.
            if exhausted {
                for id in result.ids where !seen.contains(id) {
                    ordered.append(id)
                    if ordered.count >= wanted { break }
                }
            }
        }
        return Array(ordered.dropFirst(plan.offset).prefix(plan.pageSize))
    }
}
