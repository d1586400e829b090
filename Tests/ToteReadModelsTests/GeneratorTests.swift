import Foundation
import Testing
import ToteProto
@testable import ToteReadModels

@Suite("Catalog generator")
struct GeneratorTests {
    @Test func sameSeedSameEvents() {
        let a = CatalogGenerator(seed: 1).events(products: 300, orders: 50)
        let b = CatalogGenerator(seed: 1).events(products: 300, orders: 50)
        let c = CatalogGenerator(seed: 2).events(products: 300, orders: 50)
        #expect(a == b)
        #expect(a != c)
        #expect(Set(a.map(\.eventID)).count == a.count)
        #expect(zip(a, a.dropFirst()).allSatisfy { $0.recordedAtMicros < $1.recordedAtMicros })
    }

    @Test func realisticShape() throws {
        let events = GeneratedFixture.events
        let tree = CatalogGenerator(seed: 42).categories()
        #expect(tree.count == 296)
        #expect(Set(tree.map(\.id)).count == tree.count)
        #expect(events.filter { $0.type == "CategoryCreated" }.count == 296)
        #expect(events.filter { $0.type == "ProductCreated" }.count == 2_000)
        #expect(events.filter { $0.type == "OrderPlaced" }.count == 3_000)
        // Every event decodes as its stream's envelope, and its type names the case.
        var brands: [String: Int] = [:]
        var eur: [Int64] = []
        for e in events {
            if e.stream.hasPrefix("product-") {
                let env = try Tote_V1_ProductEvent(serializedBytes: e.data)
                if case .productCreated(let c)? = env.event { brands[c.details.brand, default: 0] += 1 }
                if case .productPricesSet(let p)? = env.event, p.currency == "EUR" { eur += p.prices.map(\.price.minorUnits) }
            } else if e.stream.hasPrefix("stock-") {
                let env = try Tote_V1_StockItemEvent(serializedBytes: e.data)
                #expect(env.stockReceived.onHandAfter > 0)
                #expect(e.stream == "stock-\(env.stockReceived.key.sku)@\(env.stockReceived.key.locationID)")
            }
        }
        // Zipf-like brands: the top brand far above the median one.
        let counts = brands.values.sorted(by: >)
        #expect(counts[0] > 8 * counts[counts.count / 2])
        // Log-normal prices: median well below the mean, a long tail.
        eur.sort()
        let median = eur[eur.count / 2], mean = eur.reduce(0, +) / Int64(eur.count)
        #expect(median < mean)
        #expect(eur.last! > 10 * median)
        // Some products are drafts or archived; most are published.
        let reference = GeneratedFixture.reference
        let published = reference.products.values.filter { $0.status == .published }.count
        #expect(published > 1_850 && published < 2_000)
        #expect(reference.products.values.contains { $0.status == .archived })
    }

    @Test func fastEnough() {
        let start = ContinuousClock.now
        var count = 0
        CatalogGenerator(seed: 9).forEachEvent(products: 10_000) { _ in count += 1 }
        let elapsed = ContinuousClock.now - start
        print("generator: 10,000 products, \(count) events in \(elapsed)")
        #expect(count > 100_000)
    }
}
