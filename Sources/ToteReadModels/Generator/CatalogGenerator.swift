import EventStore
import Foundation
import SwiftProtobuf
import ToteProto

/// One generated event: the stream it belongs to, its type (the case message's name) and the
/// protobuf envelope bytes, ready to append (``newEvent``) or to feed a projection directly.
public struct GeneratedEvent: Sendable, Hashable {
    public var stream: String
    public var type: String
    public var data: [UInt8]
    /// Deterministic (derived from the generator's seed).
    public var eventID: UUID
    /// A plausible recording time, increasing.
    public var recordedAtMicros: Int64

    /// The event to append to the log (actor `generator`, role `system`).
    public var newEvent: NewEvent {
        NewEvent(eventID: eventID, type: type, data: data, metadata: EventMetadata(actorID: "generator", actorRole: "system"))
    }
}

/// A small, fast, seedable random number generator (SplitMix64): the same seed always gives the
/// same sequence, on every platform.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A deterministic catalog: a category tree of about 300 nodes, brands with Zipf-like popularity,
/// products with colour/size options, material and other attributes of skewed frequencies,
/// log-normal prices in EUR and USD, stock at two locations, and optionally orders whose product
/// choice is Zipf-distributed (popularity for autocomplete). The same seed and counts always give
/// the same events, byte for byte. Used by tests, benchmarks and `tote dev`.
public struct CatalogGenerator: Sendable {
    public let seed: UInt64
    /// Stock locations by default.
    public static let locations = ["main", "store"]
    /// The stock locations of this generator's catalog (stock at each with probability 0.6;
    /// generated orders reserve at the first).
    public let stockLocations: [String]

    public init(seed: UInt64, locations: [String] = CatalogGenerator.locations) {
        self.seed = seed
        self.stockLocations = locations.isEmpty ? Self.locations : locations
    }

    /// A category of the generated tree.
    public struct GeneratedCategory: Sendable, Hashable {
        public var id: String
        public var name: String
        public var parentID: String
        public var ancestorIDs: [String]
        /// Index into the root table (drives attributes and prices).
        var root: Int
        public var isLeaf: Bool
    }

    struct RootSpec {
        var name: String
        var nouns: [String]
        var materials: [String]
        var sizes: [String]
        var priceMu: Double
        var numeric: (key: String, values: [(Int64, UInt32)])?
        var waterproof: Bool
    }

    static let roots: [RootSpec] = [
        RootSpec(name: "Clothing", nouns: ["T-Shirt", "Jeans", "Jacket", "Hoodie", "Sweater", "Dress", "Shorts", "Shirt", "Coat", "Skirt"],
                 materials: ["cotton", "polyester", "wool", "linen", "denim", "silk", "viscose"], sizes: ["XS", "S", "M", "L", "XL"], priceMu: 3.6, numeric: nil, waterproof: false),
        RootSpec(name: "Shoes", nouns: ["Sneaker", "Boot", "Sandal", "Loafer", "Trainer", "Slipper", "Pump"],
                 materials: ["leather", "canvas", "suede", "rubber", "mesh"], sizes: ["38", "39", "40", "41", "42", "43", "44", "45"], priceMu: 4.3, numeric: nil, waterproof: true),
        RootSpec(name: "Electronics", nouns: ["Laptop", "Monitor", "Headphones", "Speaker", "Television", "Tablet", "Smartphone", "Camera"],
                 materials: ["aluminium", "plastic", "glass"], sizes: [], priceMu: 5.9, numeric: ("screen_size", [(133, 1), (14, 0), (156, 1), (173, 1), (24, 0), (27, 0), (55, 0)]), waterproof: true),
        RootSpec(name: "Home", nouns: ["Lamp", "Sofa", "Chair", "Table", "Rug", "Cushion", "Shelf", "Mirror"],
                 materials: ["oak", "pine", "steel", "velvet", "rattan", "ceramic"], sizes: [], priceMu: 4.8, numeric: ("width_cm", [(40, 0), (60, 0), (80, 0), (120, 0), (160, 0), (200, 0)]), waterproof: false),
        RootSpec(name: "Sports", nouns: ["Racket", "Ball", "Helmet", "Glove", "Bottle", "Mat", "Bike"],
                 materials: ["carbon", "aluminium", "rubber", "nylon", "foam"], sizes: ["S", "M", "L"], priceMu: 3.9, numeric: nil, waterproof: true),
        RootSpec(name: "Beauty", nouns: ["Cream", "Serum", "Shampoo", "Perfume", "Lipstick", "Mascara"],
                 materials: ["organic", "vegan", "mineral"], sizes: ["30ml", "50ml", "100ml"], priceMu: 3.0, numeric: nil, waterproof: false),
        RootSpec(name: "Toys", nouns: ["Puzzle", "Doll", "Robot", "Train", "Kite", "Blocks"],
                 materials: ["wood", "plastic", "plush"], sizes: [], priceMu: 3.2, numeric: nil, waterproof: false),
        RootSpec(name: "Garden", nouns: ["Hose", "Planter", "Shovel", "Grill", "Parasol", "Bench"],
                 materials: ["steel", "teak", "plastic", "terracotta"], sizes: [], priceMu: 4.4, numeric: nil, waterproof: true),
    ]
    static let groups = ["Men", "Women", "Kids", "Outdoor", "Premium", "Essentials"]
    static let adjectives = ["Classic", "Urban", "Vintage", "Café", "Élan", "Nordic", "Crème", "Swift", "Bold", "Soft", "Royal", "Zen",
                             "Alpine", "Coastal", "Modern", "Rustic", "Mödern", "Lumière", "Pure", "Smart"]
    static let colours = ["black", "white", "blue", "red", "grey", "green", "navy", "beige", "pink", "yellow", "brown", "purple"]
    static let syllables = ["ka", "lo", "mi", "ne", "ru", "to", "va", "zen", "bri", "sol", "dor", "fin", "gal", "hex", "jun", "kor", "lux", "mar", "nor", "pax"]

    /// The category tree: 8 roots, 6 groups under each, 5 leaves under each group (296 nodes).
    public func categories() -> [GeneratedCategory] {
        var out: [GeneratedCategory] = []
        for (r, root) in Self.roots.enumerated() {
            let rootID = Self.slugify(root.name)
            out.append(GeneratedCategory(id: rootID, name: root.name, parentID: "", ancestorIDs: [], root: r, isLeaf: false))
            for g in Self.groups {
                let groupID = rootID + "-" + Self.slugify(g)
                out.append(GeneratedCategory(id: groupID, name: "\(g) \(root.name)", parentID: rootID, ancestorIDs: [rootID], root: r, isLeaf: false))
                for noun in root.nouns.prefix(5) {
                    let leafID = groupID + "-" + Self.slugify(noun)
                    out.append(GeneratedCategory(id: leafID, name: "\(g) \(noun)s", parentID: groupID, ancestorIDs: [rootID, groupID], root: r, isLeaf: true))
                }
            }
        }
        return out
    }

    /// The brand names (index 0 is the most popular).
    public func brands(count: Int = 200) -> [String] {
        var rng = SplitMix64(seed: seed ^ 0xB2A9D)
        var names: [String] = []
        var seen = Set<String>()
        while names.count < count {
            let parts = 2 + Int(rng.next() % 2)
            var name = (0..<parts).map { _ in Self.syllables[Int(rng.next() % UInt64(Self.syllables.count))] }.joined()
            name = name.prefix(1).uppercased() + name.dropFirst()
            if seen.insert(name).inserted { names.append(name) }
        }
        return names
    }

    /// Every event, collected (see ``forEachEvent(products:orders:_:)`` for large catalogs).
    public func events(products: Int, orders: Int = 0) -> [GeneratedEvent] {
        var out: [GeneratedEvent] = []
        out.reserveCapacity(products * 16 + orders + 300)
        forEachEvent(products: products, orders: orders) { out.append($0) }
        return out
    }

    /// Calls `body` with each event in log order: the category tree, then each product (created,
    /// SKU claims and variants, prices in EUR and USD, published for ~95 %, archived afterwards for
    /// ~2 %) followed by its stock receipts, then `orders` placed orders.
    public func forEachEvent(products: Int, orders: Int = 0, _ body: (GeneratedEvent) throws -> Void) rethrows {
        var rng = SplitMix64(seed: seed)
        var clock: Int64 = 1_767_225_600_000_000  // 2026-01-01T00:00:00Z
        func emit(_ stream: String, _ type: String, _ message: some SwiftProtobuf.Message) -> GeneratedEvent {
            clock += 1_000 + Int64(rng.next() % 60_000_000)
            var b = rng.next(), c = rng.next()
            let uuid = withUnsafeBytes(of: &b) { x in withUnsafeBytes(of: &c) { y in Array(x) + Array(y) } }
            var bytes = uuid
            bytes[6] = (bytes[6] & 0x0f) | 0x40
            bytes[8] = (bytes[8] & 0x3f) | 0x80
            let id = UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
            let data: [UInt8] = try! message.serializedBytes()
            return GeneratedEvent(stream: stream, type: type, data: data, eventID: id, recordedAtMicros: clock)
        }
        func ts() -> Tote_V1_Timestamp { var t = Tote_V1_Timestamp(); t.unixMicros = clock; return t }

        let tree = categories()
        for c in tree {
            var e = Tote_V1_CategoryCreated()
            e.categoryID = c.id
            e.slug = c.id
            e.name = c.name
            e.parentID = c.parentID
            e.ancestorIds = c.ancestorIDs
            e.position = UInt32(tree.filter { $0.parentID == c.parentID }.firstIndex(of: c) ?? 0)
            e.createdAt = ts()
            var env = Tote_V1_CategoryEvent()
            env.categoryCreated = e
            try body(emit("category-\(c.id)", "CategoryCreated", env))
        }
        let leaves = tree.filter(\.isLeaf)
        let brandNames = brands()
        let brandPick = ZipfTable(count: brandNames.count, exponent: 1.0)
        let colourPick = ZipfTable(count: Self.colours.count, exponent: 1.1)
        let materialPick = ZipfTable(count: 8, exponent: 1.2)
        let leafPick = ZipfTable(count: leaves.count, exponent: 0.4)
        var productIDs: [String] = []
        var productSkus: [[String]] = []

        for n in 0..<products {
            let leaf = leaves[leafPick.sample(&rng)]
            let root = Self.roots[leaf.root]
            let productID = Self.uuidString(&rng)
            let noun = root.nouns[Int(rng.next() % UInt64(root.nouns.count))]
            let adjective = Self.adjectives[Int(rng.next() % UInt64(Self.adjectives.count))]
            let material = root.materials[materialPick.sample(&rng) % root.materials.count]
            var details = Tote_V1_ProductDetails()
            details.name = "\(adjective) \(material.capitalized) \(noun) \(n % 97 + 1)"
            details.slug = Self.slugify(details.name) + "-\(n)"
            details.brand = brandNames[brandPick.sample(&rng)]
            details.summary = "A \(adjective.lowercased()) \(noun.lowercased()) in \(material)."
            details.categorySlugs = [leaf.id]
            if rng.next() % 10 == 0 { details.categorySlugs.append(leaves[Int(rng.next() % UInt64(leaves.count))].id) }
            var mat = Tote_V1_Attribute()
            mat.key = "material"
            mat.values = [Self.text(material)]
            details.attributes = [mat]
            if root.waterproof {
                var w = Tote_V1_Attribute()
                w.key = "waterproof"
                var v = Tote_V1_AttributeValue()
                v.boolValue = rng.next() % 4 == 0
                w.values = [v]
                details.attributes.append(w)
            }
            if let numeric = root.numeric {
                var a = Tote_V1_Attribute()
                a.key = numeric.key
                let (u, s) = numeric.values[Int(rng.next() % UInt64(numeric.values.count))]
                var d = Tote_V1_Decimal()
                d.unscaled = u
                d.scale = s
                var v = Tote_V1_AttributeValue()
                v.numberValue = d
                a.values = [v]
                details.attributes.append(a)
            }
            var media = Tote_V1_Media()
            media.url = "https://img.example.com/p/\(productID).jpg"
            details.media = [media]
            // Options: colour (1–3 values) and, when the root has sizes, size (1–3 values).
            var colourValues: [String] = []
            for _ in 0..<(1 + Int(rng.next() % 3)) {
                let c = Self.colours[colourPick.sample(&rng)]
                if !colourValues.contains(c) { colourValues.append(c) }
            }
            var colour = Tote_V1_ProductOption()
            colour.code = "colour"
            colour.name = "Colour"
            colour.values = colourValues
            details.options = [colour]
            var sizeValues: [String] = []
            if !root.sizes.isEmpty {
                let start = Int(rng.next() % UInt64(root.sizes.count))
                let count = min(1 + Int(rng.next() % 3), root.sizes.count - start)
                sizeValues = Array(root.sizes[start..<(start + count)])
                var size = Tote_V1_ProductOption()
                size.code = "size"
                size.name = "Size"
                size.values = sizeValues
                details.options.append(size)
            }
            var created = Tote_V1_ProductCreated()
            created.productID = productID
            created.details = details
            created.createdAt = ts()
            var env = Tote_V1_ProductEvent()
            env.productCreated = created
            try body(emit("product-\(productID)", "ProductCreated", env))

            var skus: [String] = []
            for c in colourValues {
                for s in sizeValues.isEmpty ? [""] : sizeValues {
                    let sku = "P\(n)-\(c.uppercased())" + (s.isEmpty ? "" : "-\(s.uppercased())")
                    skus.append(sku)
                    var claim = Tote_V1_SkuClaimed()
                    claim.sku = sku
                    claim.productID = productID
                    claim.claimedAt = ts()
                    var claimEnv = Tote_V1_SkuClaimEvent()
                    claimEnv.skuClaimed = claim
                    try body(emit("sku-\(sku)", "SkuClaimed", claimEnv))
                    var variant = Tote_V1_Variant()
                    variant.sku = sku
                    var ov = Tote_V1_OptionValue()
                    ov.option = "colour"
                    ov.value = c
                    variant.optionValues = [ov]
                    if !s.isEmpty {
                        var sv = Tote_V1_OptionValue()
                        sv.option = "size"
                        sv.value = s
                        variant.optionValues.append(sv)
                    }
                    var added = Tote_V1_VariantAdded()
                    added.productID = productID
                    added.variant = variant
                    added.addedAt = ts()
                    var addEnv = Tote_V1_ProductEvent()
                    addEnv.variantAdded = added
                    try body(emit("product-\(productID)", "VariantAdded", addEnv))
                }
            }
            // Prices: log-normal around the root's median, a little spread per variant; USD ≈ 1.08 × EUR.
            let base = exp(root.priceMu + 0.6 * Self.gaussian(&rng))
            for (currency, rate) in [("EUR", 1.0), ("USD", 1.08)] {
                var set = Tote_V1_ProductPricesSet()
                set.productID = productID
                set.currency = currency
                set.setAt = ts()
                for sku in skus {
                    let amount = max(99, Int64((base * rate * (1 + Double(rng.next() % 10) / 100)).rounded()) * 100 - 1)
                    var vp = Tote_V1_VariantPrice()
                    vp.sku = sku
                    vp.price.currency = currency
                    vp.price.minorUnits = amount
                    if rng.next() % 5 == 0 {
                        vp.compareAtPrice.currency = currency
                        vp.compareAtPrice.minorUnits = amount + amount / 4
                    }
                    set.prices.append(vp)
                }
                var priceEnv = Tote_V1_ProductEvent()
                priceEnv.productPricesSet = set
                try body(emit("product-\(productID)", "ProductPricesSet", priceEnv))
            }
            let fate = rng.next() % 100
            if fate >= 3 {
                var published = Tote_V1_ProductPublished()
                published.productID = productID
                published.publishedAt = ts()
                var pubEnv = Tote_V1_ProductEvent()
                pubEnv.productPublished = published
                try body(emit("product-\(productID)", "ProductPublished", pubEnv))
            }
            if fate >= 98 {
                var archived = Tote_V1_ProductArchived()
                archived.productID = productID
                archived.reason = "discontinued"
                archived.archivedAt = ts()
                var arEnv = Tote_V1_ProductEvent()
                arEnv.productArchived = archived
                try body(emit("product-\(productID)", "ProductArchived", arEnv))
            }
            // Stock: each SKU at each location with probability 0.6, quantities skewed small.
            for sku in skus {
                for location in stockLocations where rng.next() % 10 < 6 {
                    var received = Tote_V1_StockReceived()
                    received.key.sku = sku
                    received.key.locationID = location
                    received.quantity = 1 + Int64(rng.next() % 8) * Int64(rng.next() % 8)
                    received.reference = "PO-\(n)"
                    received.onHandAfter = received.quantity
                    received.receivedAt = ts()
                    var stockEnv = Tote_V1_StockItemEvent()
                    stockEnv.stockReceived = received
                    try body(emit("stock-\(sku)@\(location)", "StockReceived", stockEnv))
                }
            }
            productIDs.append(productID)
            productSkus.append(skus)
        }

        // Orders: products chosen with Zipf popularity over a seeded permutation.
        guard orders > 0, !productIDs.isEmpty else { return }
        var permutation = Array(0..<productIDs.count)
        permutation.shuffle(using: &rng)
        let productPick = ZipfTable(count: productIDs.count, exponent: 1.0)
        for o in 0..<orders {
            var placed = Tote_V1_OrderPlaced()
            let orderID = Self.uuidString(&rng)
            placed.orderID = orderID
            placed.orderNumber = "G\(100_000 + o)"
            placed.customerID = "customer-\(rng.next() % 5_000)"
            placed.currency = "EUR"
            for l in 0..<(1 + Int(rng.next() % 3)) {
                let p = permutation[productPick.sample(&rng)]
                var line = Tote_V1_OrderLine()
                line.lineID = "\(orderID)-\(l)"
                line.productID = productIDs[p]
                line.sku = productSkus[p][Int(rng.next() % UInt64(productSkus[p].count))]
                line.quantity = 1 + UInt32(rng.next() % 3)
                line.locationID = stockLocations[0]
                placed.lines.append(line)
            }
            placed.placedAt = ts()
            var orderEnv = Tote_V1_OrderEvent()
            orderEnv.orderPlaced = placed
            try body(emit("order-\(orderID)", "OrderPlaced", orderEnv))
        }
    }

    // MARK: Helpers

    static func text(_ s: String) -> Tote_V1_AttributeValue {
        var v = Tote_V1_AttributeValue()
        v.stringValue = s
        return v
    }

    static func slugify(_ s: String) -> String {
        let folded = TextNormalizer.fold(s)
        var out = ""
        var dash = false
        for ch in folded {
            if ch.isASCII && (ch.isLetter || ch.isNumber) {
                if dash && !out.isEmpty { out.append("-") }
                out.append(ch)
                dash = false
            } else {
                dash = true
            }
        }
        return out
    }

    static func uuidString(_ rng: inout SplitMix64) -> String {
        let a = rng.next(), b = rng.next()
        let hex = String(format: "%016llx%016llx", a, b)
        let c = Array(hex)
        return String(c[0..<8]) + "-" + String(c[8..<12]) + "-4" + String(c[13..<16]) + "-a" + String(c[17..<20]) + "-" + String(c[20..<32])
    }

    /// A standard normal sample (Box–Muller).
    static func gaussian(_ rng: inout SplitMix64) -> Double {
        let u1 = max(Double(rng.next() >> 11) / Double(1 << 53), 1e-12)
        let u2 = Double(rng.next() >> 11) / Double(1 << 53)
        return sqrt(-2 * log(u1)) * cos(2 * Double.pi * u2)
    }
}

/// Samples ranks 0..<count with probability ∝ 1/(rank+1)^exponent.
struct ZipfTable: Sendable {
    private var cumulative: [Double]

    init(count: Int, exponent: Double) {
        var acc = 0.0
        cumulative = (0..<max(count, 1)).map { r in
            acc += 1 / pow(Double(r + 1), exponent)
            return acc
        }
    }

    func sample(_ rng: inout SplitMix64) -> Int {
        let u = Double(rng.next() >> 11) / Double(1 << 53) * cumulative[cumulative.count - 1]
        var lo = 0, hi = cumulative.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if cumulative[mid] < u { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}
