import BenchSupport
import Foundation
import Glibc
import LocalPostgres
import Postgres
import ToteAPI
import ToteReadModels
import ToteRPC
import ToteServices

/// The facet query — a category with its descendants, two attribute filters, disjunctive counts
/// for both attributes, the total and the first page — on Tote (over the wire, one caller) and on
/// PostgreSQL (the same data in indexed tables, one GROUP BY statement, one connection).
enum Facets {
    struct Result {
        /// Over the wire from the Swift client in this process (sharing its event loops).
        var tote: LatencyHistogram
        /// Over the wire from tote-loadgen, a client process of its own as a storefront BFF is;
        /// nil without the tool.
        var toteExternal: PeerResult?
        var toteInProcess: LatencyHistogram
        var postgres: LatencyHistogram
        var calls: Int
        var products: Int

        /// The p99 a client of the query service sees: tote-loadgen's when it ran.
        var clientP99: Double { toteExternal?.p99 ?? Double(tote.value(atPercentile: 99)) / 1e6 }

        var row: String {
            let ratio = Double(postgres.value(atPercentile: 50)) / Double(tote.value(atPercentile: 50))
            let external = toteExternal.map { "; C client process (tote-loadgen) p50 \(formatFixed($0.p50, 3)) / p99 \(formatFixed($0.p99, 3)) ms" } ?? ""
            return "| facet query, \(products) products, 1 caller (\(calls) calls, PostgreSQL \(postgres.count); in-process p50 \(ms(toteInProcess, 50)) / p99 \(ms(toteInProcess, 99)) ms) | Swift client in process p50 \(ms(tote, 50)) / p99 \(ms(tote, 99)) ms\(external) | PostgreSQL p50 \(ms(postgres, 50)) / p99 \(ms(postgres, 99)) ms | \(formatFixed(ratio, 1))× (p50) | ≥ 20× and p99 < 1 ms: \(ratio >= 20 && clientP99 < 1 ? "met" : "missed") |"
        }
    }

    /// Roots of the generated tree and one material each (CatalogGenerator's tables).
    static let roots: [(slug: String, material: String)] = [
        ("clothing", "cotton"), ("shoes", "leather"), ("electronics", "aluminium"), ("home", "oak"),
        ("sports", "rubber"), ("beauty", "organic"), ("toys", "wood"), ("garden", "steel"),
    ]
    static let colours = ["black", "white", "blue", "red", "grey", "green", "navy", "beige", "pink", "yellow", "brown", "purple"]

    struct Case {
        var category: String
        var colours: [String]
        var materials: [String]

        /// The same query as ``Facets/request(_:)``, as a `tote-loadgen -t search` key.
        var loadgenKey: String {
            "EUR|\(category)|colour=\(colours.joined(separator: ","))|material=\(materials.joined(separator: ","))"
        }
    }

    /// 16 queries: each root and its "women" group, two colours and one material.
    static var cases: [Case] {
        var out: [Case] = []
        for (i, root) in roots.enumerated() {
            out.append(Case(category: root.slug, colours: [colours[i % 12], colours[(i + 2) % 12]], materials: [root.material]))
            out.append(Case(category: root.slug + "-women", colours: [colours[(i + 1) % 12], colours[(i + 5) % 12]], materials: [root.material]))
        }
        return out
    }

    static func request(_ c: Case) -> Tote_V1_SearchCatalogRequest {
        var r = Tote_V1_SearchCatalogRequest()
        r.categorySlug = c.category
        r.currency = "EUR"
        for (attribute, values) in [("colour", c.colours), ("material", c.materials)] {
            var f = Tote_V1_AttributeFilter()
            f.attribute = attribute
            f.values = values.map { var v = Tote_V1_AttributeValue(); v.stringValue = $0; return v }
            r.filters.append(f)
        }
        r.facetAttributes = ["colour", "material"]
        r.maxFacetValues = 50
        // PostgreSQL's query computes no price stats either: the same work on both sides.
        r.omitPriceStats = true
        return r
    }

    static let sql = """
        WITH base AS (SELECT product_id FROM product_category WHERE category = $1),
        a AS (SELECT product_id FROM product_attribute WHERE attribute = 'colour' AND value = ANY($2)),
        b AS (SELECT product_id FROM product_attribute WHERE attribute = 'material' AND value = ANY($3)),
        hits AS (SELECT product_id FROM base WHERE product_id IN (SELECT product_id FROM a) AND product_id IN (SELECT product_id FROM b))
        SELECT 'total' AS facet, NULL AS value, count(*) AS n FROM hits
        UNION ALL SELECT 'page', product_id::text, 0 FROM (SELECT product_id FROM hits ORDER BY product_id LIMIT 20) page
        UNION ALL (SELECT 'colour', pa.value, count(*) FROM base JOIN product_attribute pa ON pa.product_id = base.product_id AND pa.attribute = 'colour'
                   WHERE base.product_id IN (SELECT product_id FROM b) GROUP BY pa.value)
        UNION ALL (SELECT 'material', pa.value, count(*) FROM base JOIN product_attribute pa ON pa.product_id = base.product_id AND pa.attribute = 'material'
                   WHERE base.product_id IN (SELECT product_id FROM a) GROUP BY pa.value)
        """

    static let schema = """
        CREATE TABLE product_category (category text NOT NULL, product_id int NOT NULL, PRIMARY KEY (category, product_id));
        CREATE TABLE product_attribute (product_id int NOT NULL, attribute text NOT NULL, value text NOT NULL, PRIMARY KEY (product_id, attribute, value));
        CREATE INDEX product_attribute_value ON product_attribute (attribute, value, product_id);
        """

    /// The 16 facet queries in process over `store` (as `--apply-only` built it): thread CPU time
    /// per call, overall and per query shape, after one warm-up pass. For comparing query code
    /// in a minute; the figure of record is the full run's, against PostgreSQL and over the wire.
    static func timeInProcess(_ store: LMDBReadModelStore, calls: Int, label: String) throws {
        let requests = cases.map(request)
        for r in requests { _ = try store.read { try CatalogQuery.searchEncoded($0, request: r) } }
        var all = LatencyHistogram()
        var shapes = [LatencyHistogram](repeating: LatencyHistogram(), count: requests.count)
        for i in 0..<max(calls, requests.count) {
            let start = threadCPUNanoseconds()
            _ = try store.read { try CatalogQuery.searchEncoded($0, request: requests[i % requests.count]) }
            let spent = threadCPUNanoseconds() - start
            all.record(spent)
            shapes[i % requests.count].record(spent)
        }
        let worst = shapes.map { Double($0.value(atPercentile: 99)) / 1e6 }.max() ?? 0
        print("apply-only, \(label): facet queries in process, thread CPU p50 \(ms(all, 50)) / p99 \(ms(all, 99)) ms over \(all.count) calls; worst shape p99 \(formatFixed(worst, 3)) ms")
        print("apply-only, \(label): facet query p50 per shape (ms): " + shapes.map { ms($0, 50) }.joined(separator: " "))
    }

    /// CPU time consumed by the calling thread, in nanoseconds.
    static func threadCPUNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    static func run(options: ReadSideBench.Options, readSide: ReadSide, connection: ClientConnection, cluster: LocalPostgresCluster) async throws -> Result {
        // The same data in PostgreSQL: category memberships (with ancestors) and facet values of
        // every published product, read from the catalog's posting lists.
        var categories: [(String, Int32)] = []
        var attributes: [(Int32, String, String)] = []
        try readSide.directory.read { reader in
            try reader.scan(CatalogLayout.postings, prefix: [UInt8(ascii: "c")], from: nil, reverse: false) { key, value in
                let body = Array(key.dropFirst().dropLast(2))
                let parts = body.split(separator: 0, maxSplits: 2, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
                let ids = PostingList(chunk: value, key: key).ids.map { Int32(bitPattern: $0) }
                if parts.count == 2, parts[1].isEmpty {
                    for id in ids { categories.append((parts[0], id)) }
                } else if parts.count == 3, parts[0].isEmpty {
                    for id in ids { attributes.append((id, parts[1], parts[2])) }
                }
                return true
            }
        }
        let pg = try PostgresConnection.connect(cluster.connectionString(database: "facets"))
        try pg.executeScript(schema)
        let loadStart = monotonicNanoseconds()
        for chunk in stride(from: 0, to: categories.count, by: 50_000) {
            let rows = categories[chunk..<min(chunk + 50_000, categories.count)]
            _ = try pg.execute("INSERT INTO product_category SELECT * FROM unnest($1::text[], $2::int[])", [.textArray(rows.map(\.0)), .int32Array(rows.map(\.1))])
        }
        for chunk in stride(from: 0, to: attributes.count, by: 50_000) {
            let rows = attributes[chunk..<min(chunk + 50_000, attributes.count)]
            _ = try pg.execute("INSERT INTO product_attribute SELECT * FROM unnest($1::int[], $2::text[], $3::text[])", [.int32Array(rows.map(\.0)), .textArray(rows.map(\.1)), .textArray(rows.map(\.2))])
        }
        _ = try pg.execute("VACUUM ANALYZE product_category")
        _ = try pg.execute("VACUUM ANALYZE product_attribute")
        print("facets: PostgreSQL tables loaded in \(formatFixed(Double(monotonicNanoseconds() - loadStart) / 1e9, 1)) s: \(categories.count) product_category rows, \(attributes.count) product_attribute rows")
        print("facets: PostgreSQL schema:\n\(schema)\nfacets: PostgreSQL query ($1 category, $2 colours, $3 materials, values as stored: s<text>):\n\(sql)")

        let cases = Self.cases
        func pgQuery(_ c: Case) throws -> (total: UInt64, counts: [String: UInt64]) {
            let result = try pg.execute(sql, [.text(c.category), .textArray(c.colours.map { "s" + $0 }), .textArray(c.materials.map { "s" + $0 })])
            var total: UInt64 = 0
            var counts: [String: UInt64] = [:]
            for row in 0..<result.rowCount {
                let facet = try result.string(row, 0)
                let n = UInt64(try result.int64(row, 2))
                if facet == "total" { total = n } else if facet != "page" { counts[facet + "=" + (try result.string(row, 1)).dropFirst()] = n }
            }
            return (total, counts)
        }
        // The two agree on every case (totals and every facet count).
        for c in cases {
            let tote = try await connection.unary(QueryAPI.searchCatalog, request(c))
            let pgAnswer = try pgQuery(c)
            var counts: [String: UInt64] = [:]
            for facet in tote.facets {
                for value in facet.values where value.count > 0 { counts[facet.attribute + "=" + value.value.stringValue] = value.count }
            }
            guard tote.totalCount == pgAnswer.total, counts == pgAnswer.counts else {
                throw BenchError("Tote and PostgreSQL disagree on \(c): Tote \(tote.totalCount) \(counts.sorted { $0.key < $1.key }), PostgreSQL \(pgAnswer.total) \(pgAnswer.counts.sorted { $0.key < $1.key })")
            }
        }
        let sample = try await connection.unary(QueryAPI.searchCatalog, request(cases[0]))
        print("facets: checked \(cases.count) queries, Tote's totals and facet counts = PostgreSQL's; e.g. \(cases[0].category) colour \(cases[0].colours) material \(cases[0].materials): \(sample.totalCount) products")

        // Each side: a warm-up pass over the 16 queries, then up to `facetCalls` calls or 10 s.
        let requests = cases.map(request)
        let limit: UInt64 = 10_000_000_000
        func measure(_ call: (Int) async throws -> Void) async throws -> LatencyHistogram {
            for i in 0..<requests.count { try await call(i) }
            var histogram = LatencyHistogram()
            let started = monotonicNanoseconds()
            for i in 0..<options.facetCalls where monotonicNanoseconds() - started < limit {
                let start = monotonicNanoseconds()
                try await call(i % requests.count)
                histogram.record(monotonicNanoseconds() - start)
            }
            return histogram
        }
        let tote = try await measure { i in _ = try await connection.unary(QueryAPI.searchCatalog, requests[i]) }
        // The same 16 queries from a client process of its own, one call at a time.
        let keysFile = FileManager.default.temporaryDirectory.appendingPathComponent("readside-facet-keys-\(getpid()).txt")
        try cases.map(\.loadgenKey).joined(separator: "\n").write(to: keysFile, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: keysFile) }
        let loadgen = try await LoadgenServer.start(readSide: readSide, scheduling: .normal)
        let external: PeerResult?
        do {
            external = try await loadgen.run(method: "search", keysFile: keysFile.path, clients: 1, seconds: options.seconds)
            await loadgen.stop()
        } catch {
            await loadgen.stop()
            throw error
        }
        if let external { print("facets: Tote over the wire from tote-loadgen (1 connection, 1 call at a time) \(formatFixed(external.perSecond, 0)) calls/s, p50 \(formatFixed(external.p50, 3)) ms, p99 \(formatFixed(external.p99, 3)) ms") }
        // In process, also the thread CPU time of each call: on a loaded 2-core machine the wall
        // time's tail is mostly preemption; the CPU time is what the query itself costs.
        // Per query shape as well (wall and thread CPU), to find the expensive shapes.
        var cpu = LatencyHistogram()
        var shapeWall = [LatencyHistogram](repeating: LatencyHistogram(), count: requests.count)
        var shapeCPU = [LatencyHistogram](repeating: LatencyHistogram(), count: requests.count)
        let toteInProcess = try await measure { i in
            let wallStart = monotonicNanoseconds()
            let start = threadCPUNanoseconds()
            _ = try readSide.directory.read { reader in try CatalogQuery.searchEncoded(reader, request: requests[i]) }
            let spent = threadCPUNanoseconds() - start
            cpu.record(spent)
            shapeCPU[i].record(spent)
            shapeWall[i].record(monotonicNanoseconds() - wallStart)
        }
        for (i, c) in cases.enumerated() {
            let answer = try readSide.directory.read { reader in try CatalogQuery.search(reader, request: requests[i]) }
            let unfiltered = try readSide.directory.read { reader -> UInt64 in
                var r = Tote_V1_SearchCatalogRequest()
                r.categorySlug = c.category
                r.currency = "EUR"
                r.page.pageSize = 1
                return try CatalogQuery.search(reader, request: r).totalCount
            }
            print("facets: shape \(i) \(c.category) colour \(c.colours) material \(c.materials): \(unfiltered) in category, \(answer.totalCount) matches; in-process p50 \(ms(shapeWall[i], 50)) / p99 \(ms(shapeWall[i], 99)) ms, thread CPU p50 \(ms(shapeCPU[i], 50)) / max \(ms(shapeCPU[i], 100)) ms (\(shapeWall[i].count) calls)")
        }
        let postgres = try await measure { i in _ = try pgQuery(cases[i]) }
        let calls = Int(tote.count)
        print("facets: calls measured: Tote \(tote.count), in-process \(toteInProcess.count), PostgreSQL \(postgres.count) (each up to \(options.facetCalls) or 10 s)")
        print("facets: in-process thread CPU time per call p50 \(ms(cpu, 50)) ms, p99 \(ms(cpu, 99)) ms, max \(ms(cpu, 100)) ms")
        print("facets: Tote over the wire p50 \(ms(tote, 50)) ms, p99 \(ms(tote, 99)) ms; in-process p50 \(ms(toteInProcess, 50)) ms, p99 \(ms(toteInProcess, 99)) ms; PostgreSQL p50 \(ms(postgres, 50)) ms, p99 \(ms(postgres, 99)) ms")
        return Result(tote: tote, toteExternal: external, toteInProcess: toteInProcess, postgres: postgres, calls: calls, products: options.products)
    }
}
