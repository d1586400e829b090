import Foundation
import EventStore
import SwiftProtobuf
import ToteDomain
import ToteProto

/// The autocomplete read model's databases (layout in docs/READMODELS.md, "Autocomplete").
public enum AutocompleteLayout {
    /// entity key (kind byte 1 product / 2 category / 3 brand, then the product id, category id or
    /// normalized brand) → ``AutocompleteEntity`` bytes.
    public static let entities = "autocomplete.entities"
    /// normalized token 0x00 entity key → empty: one entry per token of each *active* entity.
    public static let terms = "autocomplete.terms"
    /// normalized token → how many term entries use it (u32 BE): the vocabulary typo tolerance
    /// searches.
    public static let dictionary = "autocomplete.dictionary"
    /// product id → `tote.v1.Product` (status and details only): what the product's entity,
    /// brand and categories were derived from.
    public static let products = "autocomplete.products"
    /// table (0 all kinds, else the kind) · normalized prefix → the best entities under it as an
    /// encoded response (``AutocompleteTop``); plus the alphabet record.
    public static let top = "autocomplete.top"
    /// Every database of the model.
    public static let all = [entities, terms, dictionary, products, top]

    static func entityKey(_ kind: Tote_V1_SuggestionKind, _ id: String) -> [UInt8] { [UInt8(kind.rawValue)] + Array(id.utf8) }
    static func term(_ token: String, _ entity: [UInt8]) -> [UInt8] { Array(token.utf8) + [0] + entity }
    /// The brand id: folded, whitespace collapsed.
    static func brandID(_ brand: String) -> String {
        TextNormalizer.fold(brand).split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
    }
}

/// One suggestible thing: its popularity (units ordered), whether it is shown, its text, the id
/// a suggestion carries, and the tokens it is indexed under.
public struct AutocompleteEntity: Sendable, Equatable {
    /// Units ordered (of the product, of the brand's products, of the category's products).
    public var score: UInt64 = 0
    /// For a brand: how many published products carry it.
    public var count: UInt32 = 0
    /// Shown in suggestions (a published product, a created category, a brand with products).
    public var active = false
    /// The text shown.
    public var text = ""
    /// Suggestion.id: product id, category slug or normalized brand.
    public var ref = ""
    /// Normalized tokens it is found under.
    public var tokens: [String] = []

    public init() {}

    /// `score u64 BE, count u32 BE, active u8, text length u16 BE, text, ref length u16 BE, ref,
    /// tokens separated by 0x00`.
    public var bytes: [UInt8] {
        var out = CatalogLayout.u64(score) + CatalogLayout.u32(count) + [active ? 1 : 0]
        let t = Array(text.utf8.prefix(0xffff)), r = Array(ref.utf8.prefix(0xffff))
        out += [UInt8(t.count >> 8), UInt8(t.count & 0xff)] + t
        out += [UInt8(r.count >> 8), UInt8(r.count & 0xff)] + r
        out += Array(tokens.joined(separator: "\u{0}").utf8)
        return out
    }

    /// Decodes ``bytes``; nil when malformed.
    public init?(bytes b: UnsafeRawBufferPointer) {
        guard b.count >= 15 else { return nil }
        score = CatalogLayout.readU64(b, at: 0)
        count = CatalogLayout.readU32(b, at: 8)
        active = b[12] != 0
        var i = 13
        let tn = Int(b[i]) << 8 | Int(b[i + 1]); i += 2
        guard i + tn + 2 <= b.count else { return nil }
        text = String(decoding: UnsafeRawBufferPointer(rebasing: b[i..<(i + tn)]), as: UTF8.self); i += tn
        let rn = Int(b[i]) << 8 | Int(b[i + 1]); i += 2
        guard i + rn <= b.count else { return nil }
        ref = String(decoding: UnsafeRawBufferPointer(rebasing: b[i..<(i + rn)]), as: UTF8.self); i += rn
        let rest = String(decoding: UnsafeRawBufferPointer(rebasing: b[i...]), as: UTF8.self)
        tokens = rest.isEmpty ? [] : rest.split(separator: "\u{0}", omittingEmptySubsequences: true).map(String.init)
    }
}

/// The autocomplete read model: products, categories and brands under their normalized tokens,
/// ranked by popularity (units ordered, from `OrderPlaced` lines; `OrderPaid` carries no new
/// units and is not counted twice). Fed by `product-`, `category-` and `order-` events.
public struct AutocompleteProjection: Projection {
    public let name = "autocomplete"
    public var databases: [String] { AutocompleteLayout.all }
    /// 2: the prefix → top-50 table (`autocomplete.top`) joined the layout. 3: its records carry
    /// the popularity-class score and its trailer no units.
    public var layoutVersion: Int { 3 }

    public init() {}

    public func apply(_ event: RecordedEvent, to store: inout some ReadModelWriter) throws {
        try apply(stream: event.stream, data: event.data, to: &store)
    }

    /// Applies the events one by one to entities, terms and dictionary, noting which entities
    /// changed; then updates each prefix list those entities are (or were) in once, writing only
    /// the lists whose entries, order or records change.
    public func apply(batch events: ArraySlice<RecordedEvent>, to store: inout some ReadModelWriter) throws {
        try applyCounting(batch: events, to: &store)
    }

    /// ``apply(batch:to:)``, returning what the lists' flush read and wrote.
    @discardableResult
    func applyCounting(batch events: ArraySlice<RecordedEvent>, to store: inout some ReadModelWriter) throws -> AutocompleteTop.FlushStats {
        var changes = AutocompleteTop.Changes()
        for event in events { try apply(stream: event.stream, data: event.data, &store, &changes) }
        return try AutocompleteTop.flush(changes, &store)
    }

    /// The projection over a stream name and the event's envelope bytes.
    public func apply<W: ReadModelWriter>(stream: String, data: [UInt8], to store: inout W) throws {
        var changes = AutocompleteTop.Changes()
        try apply(stream: stream, data: data, &store, &changes)
        try AutocompleteTop.flush(changes, &store)
    }

    private func apply<W: ReadModelWriter>(stream: String, data: [UInt8], _ store: inout W, _ changes: inout AutocompleteTop.Changes) throws {
        if stream.hasPrefix("product-") {
            // Variants and prices change no suggestion (see applyProduct): skipped undecoded.
            let kind = EventPeek.lastField(data)
            if kind == EventPeek.ProductCase.variantAdded || kind == EventPeek.ProductCase.pricesSet { return }
            try applyProduct(try Tote_V1_ProductEvent(serializedBytes: data), &store, &changes)
        } else if stream.hasPrefix("category-") {
            try applyCategory(try Tote_V1_CategoryEvent(serializedBytes: data), &store, &changes)
        } else if stream.hasPrefix("order-") {
            // Only a placed order's lines add units.
            if let kind = EventPeek.lastField(data), kind != EventPeek.OrderCase.placed { return }
            let e = try Tote_V1_OrderEvent(serializedBytes: data)
            if case .orderPlaced(let placed)? = e.event {
                for line in placed.lines where line.quantity > 0 { try addUnits(UInt64(line.quantity), product: line.productID, &store, &changes) }
            }
        }
    }

    // MARK: Entities

    static func entity(_ key: [UInt8], _ store: some ReadModelReader) throws -> AutocompleteEntity? {
        try store.withValue(AutocompleteLayout.entities, key) { AutocompleteEntity(bytes: $0) } ?? nil
    }

    /// Stores `entity`, moving its term entries from what the old record had to what it has now.
    private func put<W: ReadModelWriter>(_ key: [UInt8], _ entity: AutocompleteEntity, _ store: inout W, _ changes: inout AutocompleteTop.Changes) throws {
        let old = try Self.entity(key, store)
        if old == entity { return }
        changes.note(key, old: old, new: entity)
        let oldTokens = old.map { $0.active ? $0.tokens : [] } ?? []
        let newTokens = entity.active ? entity.tokens : []
        for t in oldTokens where !newTokens.contains(t) {
            try store.delete(AutocompleteLayout.terms, AutocompleteLayout.term(t, key))
            try changeDictionary(t, by: -1, &store)
        }
        for t in newTokens where !oldTokens.contains(t) {
            try store.put(AutocompleteLayout.terms, AutocompleteLayout.term(t, key), [])
            try changeDictionary(t, by: 1, &store)
        }
        try store.put(AutocompleteLayout.entities, key, entity.bytes)
    }

    private func changeDictionary<W: ReadModelWriter>(_ token: String, by delta: Int, _ store: inout W) throws {
        let key = Array(token.utf8)
        let n = Int(try store.get(AutocompleteLayout.dictionary, key).map { CatalogLayout.readU32($0) } ?? 0) + delta
        if n <= 0 { try store.delete(AutocompleteLayout.dictionary, key) } else { try store.put(AutocompleteLayout.dictionary, key, CatalogLayout.u32(UInt32(n))) }
    }

    private func modify<W: ReadModelWriter>(_ key: [UInt8], _ store: inout W, _ changes: inout AutocompleteTop.Changes, _ change: (inout AutocompleteEntity) -> Void) throws {
        var e = try Self.entity(key, store) ?? AutocompleteEntity()
        change(&e)
        try put(key, e, &store, &changes)
    }

    private func addScore<W: ReadModelWriter>(_ key: [UInt8], _ delta: Int64, _ store: inout W, _ changes: inout AutocompleteTop.Changes) throws {
        guard delta != 0 else { return }
        // Only the units change: patch the record's first 8 bytes (no decode, no term or
        // dictionary change), decoding it once per batch for the lists' flush.
        guard var bytes = try store.get(AutocompleteLayout.entities, key), bytes.count >= 15 else {
            try modify(key, &store, &changes) { e in e.score = UInt64(max(0, Int64(e.score) + delta)) }
            return
        }
        let units = bytes.withUnsafeBytes { CatalogLayout.readU64($0, at: 0) }
        let new = UInt64(max(0, Int64(units) + delta))
        if new == units { return }
        if !changes.knows(key) { changes.noteBefore(key, bytes.withUnsafeBytes { AutocompleteEntity(bytes: $0) }) }
        for j in 0..<8 { bytes[j] = UInt8(truncatingIfNeeded: new >> UInt64(56 - 8 * j)) }
        try store.put(AutocompleteLayout.entities, key, bytes)
    }

    // MARK: Products

    private func applyProduct<W: ReadModelWriter>(_ event: Tote_V1_ProductEvent, _ store: inout W, _ changes: inout AutocompleteTop.Changes) throws {
        let productID: String
        switch event.event {
        case .productCreated(let e)?: productID = e.productID
        case .productDetailsUpdated(let e)?: productID = e.productID
        case .productPublished(let e)?: productID = e.productID
        case .productArchived(let e)?: productID = e.productID
        default: return  // variants and prices do not change suggestions
        }
        let recordKey = Array(productID.utf8)
        let old = try store.get(AutocompleteLayout.products, recordKey).map { try Tote_V1_Product(serializedBytes: $0) }
        var new = old ?? Tote_V1_Product()
        new.productID = productID
        switch event.event {
        case .productCreated(let e)?: new.status = .draft; new.details = Self.kept(e.details)
        case .productDetailsUpdated(let e)?: new.details = Self.kept(e.details)
        case .productPublished?: new.status = .published
        case .productArchived?: new.status = .archived
        default: return
        }
        if new == old { return }
        try store.put(AutocompleteLayout.products, recordKey, try new.serializedBytes())
        changes.productTargets[productID] = nil

        let productKey = AutocompleteLayout.entityKey(.product, productID)
        let units = Int64(try Self.entity(productKey, store)?.score ?? 0)
        try modify(productKey, &store, &changes) { e in
            e.active = new.status == .published
            e.text = new.details.name
            e.ref = productID
            var tokens: [String] = []
            for text in [new.details.name, new.details.brand] + new.details.searchKeywords {
                for t in TextNormalizer.tokens(text) where !tokens.contains(t) { tokens.append(t) }
            }
            e.tokens = tokens
        }
        // Brand: popularity follows the product; shown while a published product carries it.
        let oldBrand = old.map { AutocompleteLayout.brandID($0.details.brand) } ?? ""
        let newBrand = AutocompleteLayout.brandID(new.details.brand)
        let wasCounted = old?.status == .published && !oldBrand.isEmpty
        let isCounted = new.status == .published && !newBrand.isEmpty
        if oldBrand != newBrand {
            if !oldBrand.isEmpty { try addScore(AutocompleteLayout.entityKey(.brand, oldBrand), -units, &store, &changes) }
            if !newBrand.isEmpty { try addScore(AutocompleteLayout.entityKey(.brand, newBrand), units, &store, &changes) }
        }
        if wasCounted && (!isCounted || oldBrand != newBrand) {
            try modify(AutocompleteLayout.entityKey(.brand, oldBrand), &store, &changes) { e in
                e.count = e.count > 0 ? e.count - 1 : 0
                e.active = e.count > 0
            }
        }
        if isCounted && (!wasCounted || oldBrand != newBrand) {
            let display = new.details.brand.trimmingCharacters(in: .whitespaces)
            try modify(AutocompleteLayout.entityKey(.brand, newBrand), &store, &changes) { e in
                e.count += 1
                e.active = true
                if e.text.isEmpty { e.text = display }
                e.ref = newBrand
                e.tokens = TextNormalizer.tokens(e.text)
            }
        }
        // Categories: popularity of the products listed directly in them.
        let oldCategories = Set(old?.details.categorySlugs ?? []), newCategories = Set(new.details.categorySlugs)
        for c in oldCategories.subtracting(newCategories).sorted() { try addScore(AutocompleteLayout.entityKey(.category, c), -units, &store, &changes) }
        for c in newCategories.subtracting(oldCategories).sorted() { try addScore(AutocompleteLayout.entityKey(.category, c), units, &store, &changes) }
    }

    /// The details fields autocomplete needs.
    private static func kept(_ d: Tote_V1_ProductDetails) -> Tote_V1_ProductDetails {
        var k = Tote_V1_ProductDetails()
        k.name = d.name
        k.brand = d.brand
        k.categorySlugs = d.categorySlugs
        k.searchKeywords = d.searchKeywords
        return k
    }

    private func addUnits<W: ReadModelWriter>(_ units: UInt64, product productID: String, _ store: inout W, _ changes: inout AutocompleteTop.Changes) throws {
        try addScore(AutocompleteLayout.entityKey(.product, productID), Int64(units), &store, &changes)
        let targets: [[UInt8]]
        if let known = changes.productTargets[productID] {
            targets = known
        } else {
            guard let record = try store.get(AutocompleteLayout.products, Array(productID.utf8)).map({ try Tote_V1_Product(serializedBytes: $0) }) else { return }
            let brand = AutocompleteLayout.brandID(record.details.brand)
            var keys = brand.isEmpty ? [] : [AutocompleteLayout.entityKey(.brand, brand)]
            for c in Set(record.details.categorySlugs).sorted() { keys.append(AutocompleteLayout.entityKey(.category, c)) }
            changes.productTargets[productID] = keys
            targets = keys
        }
        for key in targets { try addScore(key, Int64(units), &store, &changes) }
    }

    // MARK: Categories

    private func applyCategory<W: ReadModelWriter>(_ event: Tote_V1_CategoryEvent, _ store: inout W, _ changes: inout AutocompleteTop.Changes) throws {
        switch event.event {
        case .categoryCreated(let e)?:
            try modify(AutocompleteLayout.entityKey(.category, e.categoryID), &store, &changes) { c in
                c.active = true
                c.text = e.name
                c.ref = e.slug.isEmpty ? e.categoryID : e.slug
                c.tokens = TextNormalizer.tokens(e.name)
            }
        case .categoryRenamed(let e)?:
            try modify(AutocompleteLayout.entityKey(.category, e.categoryID), &store, &changes) { c in
                c.text = e.name
                c.tokens = TextNormalizer.tokens(e.name)
            }
        default:
            return  // moves do not change suggestions
        }
    }
}
