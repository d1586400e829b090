import SwiftProtobuf
import Testing
import ToteDomain
import ToteProto

// MARK: - Helpers (file-private: the test module is shared with other deciders' tests)

private typealias P = ProductDecider
private let t0: Int64 = 1_700_000_000_000_000
private let pid = "0f8fad5b-d9cb-469f-a165-70867728950e"

private func ctx(_ now: Int64) -> CommandContext {
    CommandContext(actor: Principal(id: "op-1", role: "operator"), nowMicros: now)
}

private func decide(_ command: P.Command, _ state: P.State, at now: Int64 = t0) throws(DomainError) -> [P.Event] {
    try P.decide(command, state: state, context: ctx(now))
}

private func given(_ commands: [P.Command], from state: P.State = P.initialState) throws -> P.State {
    var s = state
    for (i, command) in commands.enumerated() {
        s = P.fold(try decide(command, s, at: t0 + Int64(i)), from: s)
    }
    return s
}

private func refusal(_ command: P.Command, _ state: P.State) -> DomainError? {
    do {
        _ = try decide(command, state)
        return nil
    } catch {
        return error
    }
}

private let sizes = P.Option(code: "size", name: "Size", values: ["S", "M", "L"])
private let colours = P.Option(code: "colour", name: "Colour", values: ["red", "blue"])

private func details(name: String = "Classic T-shirt") -> P.Details {
    P.Details(
        name: name, slug: "classic-t-shirt", brand: "Tote", summary: "A tee", description: "**Soft** cotton",
        categoryIds: ["t-shirts", "summer"],
        attributes: [
            P.Attribute(key: "material", values: [.text("cotton")]),
            P.Attribute(key: "weight_kg", values: [.number(unscaled: 1500, scale: 3)]),
            P.Attribute(key: "organic", values: [.bool(true)]),
        ],
        options: [sizes, colours], media: [P.Media(url: "https://img/1.jpg", altText: "front")],
        searchKeywords: ["tee"])
}

private func variant(_ sku: String, _ size: String, _ colour: String) -> P.Variant {
    P.Variant(sku: sku, optionValues: ["size": size, "colour": colour], barcode: "4006381333931", weightGrams: 180)
}

private func eur(_ minor: Int64) -> Money { Money(minor, "EUR") }

private let created: [P.Command] = [.create(productId: pid, details: details())]
private let withVariants: [P.Command] = created + [
    .addVariant(productId: pid, variant: variant("TS-S-RED", "S", "red")),
    .addVariant(productId: pid, variant: variant("TS-M-RED", "M", "red")),
]
private let priced: [P.Command] = withVariants + [
    .setPrices(productId: pid, scope: .base("EUR"), prices: [P.Price(sku: "TS-S-RED", price: eur(1999), compareAtPrice: eur(2499))], removeSkus: []),
]
private let published: [P.Command] = priced + [.publish(productId: pid)]
private let archived: [P.Command] = published + [.archive(productId: pid, reason: "end of line")]

// MARK: - Create

@Suite("ProductDecider: create")
struct CatalogProductCreateTests {
    @Test func createRecordsADraftWithNormalizedNumbers() throws {
        let events = try decide(created[0], P.initialState)
        guard case .productCreated(let e)? = events.first?.event else { Issue.record("not ProductCreated"); return }
        #expect(e.productID == pid && e.createdAt.unixMicros == t0)
        #expect(e.details.name == "Classic T-shirt" && e.details.body == "**Soft** cotton")
        #expect(e.details.categorySlugs == ["t-shirts", "summer"])
        #expect(e.details.options.map(\.code) == ["size", "colour"])
        // 1.500 is recorded as 1.5 so that equal numbers facet together.
        #expect(e.details.attributes[1].values[0].numberValue.unscaled == 15)
        #expect(e.details.attributes[1].values[0].numberValue.scale == 1)
        #expect(events[0].typeName == "ProductCreated")
        let s = P.fold(events)
        #expect(s.exists && s.status == .draft && s.productId == pid && s.variants.isEmpty)
        #expect(s.details.attributes[1].values == [.number(unscaled: 15, scale: 1)])
        #expect(s.createdAtMicros == t0 && s.publishedAtMicros == nil)
    }

    @Test func repeatingTheSameCreateIsANoOpAndOtherDetailsAreRefused() throws {
        let s = try given(created)
        #expect(try decide(created[0], s).isEmpty)
        #expect(refusal(.create(productId: pid, details: details(name: "Other")), s)?.code == .alreadyExists)
        #expect(refusal(.create(productId: "other", details: details()), s)?.code == .alreadyExists)
    }

    @Test func numberNormalization() {
        #expect(P.AttributeValue.number(unscaled: 1560, scale: 2).normalized == .number(unscaled: 156, scale: 1))
        #expect(P.AttributeValue.number(unscaled: 0, scale: 5).normalized == .number(unscaled: 0, scale: 0))
        #expect(P.AttributeValue.number(unscaled: -2000, scale: 3).normalized == .number(unscaled: -2, scale: 0))
        #expect(P.AttributeValue.number(unscaled: 1000, scale: 0).normalized == .number(unscaled: 1000, scale: 0))
        #expect(P.AttributeValue.text("a").normalized == .text("a"))
    }

    @Test func createValidation() {
        let cases: [(String, (inout P.Details) -> Void)] = [
            ("name", { (d: inout P.Details) in d.name = "  " }),
            ("name", { (d: inout P.Details) in d.name = String(repeating: "n", count: 201) }),
            ("slug", { (d: inout P.Details) in d.slug = "Classic Tee" }),
            ("slug", { (d: inout P.Details) in d.slug = "-tee" }),
            ("slug", { (d: inout P.Details) in d.slug = "a--b" }),
            ("slug", { (d: inout P.Details) in d.slug = "" }),
            ("category_slugs[2]", { (d: inout P.Details) in d.categoryIds.append("summer") }),
            ("category_slugs[2]", { (d: inout P.Details) in d.categoryIds.append("") }),
            ("attributes[3].key", { (d: inout P.Details) in d.attributes.append(P.Attribute(key: "Material", values: [.text("x")])) }),
            ("attributes[3].key", { (d: inout P.Details) in d.attributes.append(P.Attribute(key: "material", values: [.text("x")])) }),
            ("attributes[3].values", { (d: inout P.Details) in d.attributes.append(P.Attribute(key: "empty", values: [])) }),
            ("attributes[3].values", { (d: inout P.Details) in d.attributes.append(P.Attribute(key: "mixed", values: [.text("x"), .bool(true)])) }),
            ("attributes[3].values[0]", { (d: inout P.Details) in d.attributes.append(P.Attribute(key: "blank", values: [.text("")])) }),
            ("attributes[3].values[0]", { (d: inout P.Details) in d.attributes.append(P.Attribute(key: "tiny", values: [.number(unscaled: 1, scale: 19)])) }),
            ("attributes[3].values[1]", { (d: inout P.Details) in d.attributes.append(P.Attribute(key: "twice", values: [.number(unscaled: 15, scale: 1), .number(unscaled: 150, scale: 2)])) }),
            ("options[2].code", { (d: inout P.Details) in d.options.append(P.Option(code: "size", name: "Size 2", values: ["X"])) }),
            ("options[2].code", { (d: inout P.Details) in d.options.append(P.Option(code: "2size", name: "Size 2", values: ["X"])) }),
            ("options[2].name", { (d: inout P.Details) in d.options.append(P.Option(code: "fit", name: "", values: ["X"])) }),
            ("options[2].values", { (d: inout P.Details) in d.options.append(P.Option(code: "fit", name: "Fit", values: [])) }),
            ("options[2].values[1]", { (d: inout P.Details) in d.options.append(P.Option(code: "fit", name: "Fit", values: ["X", "X"])) }),
            ("options[2].values[0]", { (d: inout P.Details) in d.options.append(P.Option(code: "fit", name: "Fit", values: [""])) }),
            ("media[1].url", { (d: inout P.Details) in d.media.append(P.Media(url: "")) }),
            ("search_keywords[1]", { (d: inout P.Details) in d.searchKeywords.append("") }),
            ("attributes", { (d: inout P.Details) in d.attributes = (0...200).map { P.Attribute(key: "k\($0)", values: [.bool(true)]) } }),
        ]
        for (field, mutate) in cases {
            var d = details()
            mutate(&d)
            let error = refusal(.create(productId: pid, details: d), P.initialState)
            #expect(error?.code == .invalidArgument)
            #expect(error?.violations.map(\.field).contains("details.\(field)") == true, "\(field): \(error?.violations ?? [])")
        }
    }

    @Test func productIdIsRequired() {
        let error = refusal(.create(productId: "", details: details()), P.initialState)
        #expect(error?.violations.map(\.field) == ["product_id"])
    }

    @Test func everyCommandOnAMissingProductIsNotFound() {
        let commands: [P.Command] = [
            .updateDetails(productId: pid, update: P.DetailsUpdate(name: "x")),
            .addVariant(productId: pid, variant: variant("S1", "S", "red")),
            .setPrices(productId: pid, scope: .base("EUR"), prices: [P.Price(sku: "S1", price: eur(1))], removeSkus: []),
            .publish(productId: pid), .archive(productId: pid, reason: ""),
        ]
        for command in commands {
            #expect(refusal(command, P.initialState)?.code == .notFound)
        }
    }

    @Test func aCommandForAnotherProductIsRefused() throws {
        let error = refusal(.publish(productId: "other"), try given(priced))
        #expect(error?.code == .invalidArgument && error?.violations.first?.field == "product_id")
    }
}

// MARK: - Update details

@Suite("ProductDecider: update details")
struct CatalogProductUpdateTests {
    @Test func updateRecordsTheWholeNewDetailsAndWhatChanged() throws {
        let s = try given(withVariants)
        let events = try decide(.updateDetails(productId: pid, update: P.DetailsUpdate(name: "Tee", brand: "Other")), s)
        guard case .productDetailsUpdated(let e)? = events.first?.event else { Issue.record("not ProductDetailsUpdated"); return }
        #expect(e.changedFields == ["name", "brand"])
        #expect(e.details.name == "Tee" && e.details.slug == "classic-t-shirt" && e.details.options.count == 2)
        #expect(events[0].typeName == "ProductDetailsUpdated")
        let after = P.fold(events, from: s)
        #expect(after.details.name == "Tee" && after.details.brand == "Other" && after.variants.count == 2)
    }

    @Test func anUpdateThatChangesNothingIsANoOp() throws {
        let s = try given(created)
        #expect(try decide(.updateDetails(productId: pid, update: P.DetailsUpdate(name: "Classic T-shirt")), s).isEmpty)
        #expect(try decide(.updateDetails(productId: pid, update: P.DetailsUpdate()), s).isEmpty)
        // Numbers compare normalized.
        let sameNumber = P.DetailsUpdate(attributes: details().attributes)
        #expect(try decide(.updateDetails(productId: pid, update: sameNumber), s).isEmpty)
    }

    @Test func optionValuesInUseCannotBeRemoved() throws {
        let s = try given(withVariants)  // uses S/red and M/red
        let cases: [[P.Option]] = [
            [P.Option(code: "size", name: "Size", values: ["M", "L"]), colours],  // S in use
            [sizes],  // colour in use
            [sizes, colours, P.Option(code: "fit", name: "Fit", values: ["slim"])],  // variants lack a fit
        ]
        for options in cases {
            let error = refusal(.updateDetails(productId: pid, update: P.DetailsUpdate(options: options)), s)
            #expect(error?.code == .invalidArgument)
            #expect(error?.violations.first?.field == "details.options")
        }
        // Adding a value, renaming an option and dropping an unused value are fine.
        let fine = [P.Option(code: "size", name: "Größe", values: ["S", "M", "XL"]), P.Option(code: "colour", name: "Colour", values: ["red"])]
        #expect(refusal(.updateDetails(productId: pid, update: P.DetailsUpdate(options: fine)), s) == nil)
        // Without variants any options go.
        #expect(refusal(.updateDetails(productId: pid, update: P.DetailsUpdate(options: [])), try given(created)) == nil)
    }

    @Test func updateValidatesTheResult() throws {
        let error = refusal(.updateDetails(productId: pid, update: P.DetailsUpdate(name: "", slug: "Bad Slug")), try given(created))
        #expect(error?.violations.map(\.field) == ["details.name", "details.slug"])
    }

    @Test func updateIsAllowedWhenPublishedAndRefusedWhenArchived() throws {
        #expect(refusal(.updateDetails(productId: pid, update: P.DetailsUpdate(name: "New")), try given(published)) == nil)
        let error = refusal(.updateDetails(productId: pid, update: P.DetailsUpdate(name: "New")), try given(archived))
        #expect(error?.code == .failedPrecondition && error?.currentState == "PRODUCT_STATUS_ARCHIVED")
    }

    @Test func updateMaskMapping() {
        let d = details(name: "Masked")
        let (all, none) = P.DetailsUpdate.from(mask: [], details: d)
        #expect(all == P.DetailsUpdate(replacingAllWith: d) && none.isEmpty)
        let (some, unknown) = P.DetailsUpdate.from(mask: ["name", "body", "category_slugs", "bogus"], details: d)
        #expect(some == P.DetailsUpdate(name: "Masked", description: "**Soft** cotton", categoryIds: ["t-shirts", "summer"]))
        #expect(unknown == ["bogus"])
        let (every, _) = P.DetailsUpdate.from(
            mask: ["name", "slug", "brand", "summary", "body", "category_slugs", "attributes", "options", "media", "search_keywords"], details: d)
        #expect(every == all)
    }
}

// MARK: - Variants

@Suite("ProductDecider: variants")
struct CatalogProductVariantTests {
    @Test func addVariantRecordsItWithOptionValuesInOptionOrder() throws {
        let s = try given(created)
        let events = try decide(.addVariant(productId: pid, variant: variant("TS-S-RED", "S", "red")), s)
        guard case .variantAdded(let e)? = events.first?.event else { Issue.record("not VariantAdded"); return }
        #expect(e.variant.sku == "TS-S-RED" && e.variant.weightGrams == 180 && e.variant.barcode == "4006381333931")
        #expect(e.variant.optionValues.map(\.option) == ["size", "colour"])
        #expect(e.variant.optionValues.map(\.value) == ["S", "red"])
        #expect(events[0].typeName == "VariantAdded")
        let after = P.fold(events, from: s)
        #expect(after.variant(sku: "TS-S-RED") == variant("TS-S-RED", "S", "red"))
    }

    @Test func theSameVariantAgainIsANoOp() throws {
        #expect(try decide(withVariants[1], try given(withVariants)).isEmpty)
    }

    @Test func aSkuOrCombinationTwiceIsRefused() throws {
        let s = try given(withVariants)
        let sameSku = refusal(.addVariant(productId: pid, variant: variant("TS-S-RED", "L", "blue")), s)
        #expect(sameSku?.code == .alreadyExists)
        let sameCombination = refusal(.addVariant(productId: pid, variant: variant("OTHER", "S", "red")), s)
        #expect(sameCombination?.code == .alreadyExists)
        #expect(sameCombination?.message.contains("TS-S-RED") == true)
    }

    @Test func optionValuesMustMatchTheProductsOptions() throws {
        let s = try given(created)
        let bad: [P.Variant] = [
            P.Variant(sku: "X", optionValues: ["size": "S"]),  // no colour
            P.Variant(sku: "X", optionValues: ["size": "XXL", "colour": "red"]),  // not a size
            P.Variant(sku: "X", optionValues: ["size": "S", "colour": "red", "fit": "slim"]),  // no such option
        ]
        for v in bad {
            let error = refusal(.addVariant(productId: pid, variant: v), s)
            #expect(error?.code == .invalidArgument)
            #expect(error?.violations.map(\.field) == ["variant.option_values"])
        }
    }

    @Test func variantFieldValidation() throws {
        let s = try given(created)
        var v = variant("", "S", "red")
        v.barcode = String(repeating: "9", count: 65)
        v.attributes = [P.Attribute(key: "Bad", values: [.text("x")])]
        v.media = [P.Media(url: "")]
        let error = refusal(.addVariant(productId: pid, variant: v), s)
        #expect(error?.violations.map(\.field) == ["variant.sku", "variant.attributes[0].key", "variant.barcode", "variant.media[0].url"])
        #expect(refusal(.addVariant(productId: pid, variant: variant("HAS SPACE", "S", "red")), s)?.code == .invalidArgument)
    }

    @Test func aProductWithoutOptionsHasOneVariant() throws {
        var d = details()
        d.options = []
        let s = try given([.create(productId: pid, details: d), .addVariant(productId: pid, variant: P.Variant(sku: "ONLY"))])
        #expect(refusal(.addVariant(productId: pid, variant: P.Variant(sku: "SECOND")), s)?.code == .alreadyExists)
    }

    @Test func variantsCanBeAddedWhenPublishedButNotWhenArchived() throws {
        #expect(refusal(.addVariant(productId: pid, variant: variant("TS-L-BLUE", "L", "blue")), try given(published)) == nil)
        let error = refusal(.addVariant(productId: pid, variant: variant("TS-L-BLUE", "L", "blue")), try given(archived))
        #expect(error?.currentState == "PRODUCT_STATUS_ARCHIVED")
    }

    @Test func variantWireRoundTrip() {
        let v = variant("TS-S-RED", "S", "red")
        #expect(P.Variant(v.proto(options: [sizes, colours])) == v)
        #expect(P.Variant(v.proto(options: [])) == v)  // unknown order: by code
    }
}

// MARK: - Prices

@Suite("ProductDecider: prices")
struct CatalogProductPriceTests {
    private let wholesale = P.PriceScope(priceListId: "eur-wholesale", currency: "EUR", customerGroup: "wholesale")

    @Test func basePricesAndTheLookup() throws {
        let s = try given(priced)
        #expect(s.unitPrice(sku: "TS-S-RED", currency: "EUR") == eur(1999))
        #expect(s.unitPrice(sku: "TS-S-RED", currency: "EUR", customerGroup: "wholesale") == eur(1999))  // falls back to base
        #expect(s.priceEntry(sku: "TS-S-RED", currency: "EUR")?.compareAtPrice == eur(2499))
        #expect(s.unitPrice(sku: "TS-M-RED", currency: "EUR") == nil)  // unpriced
        #expect(s.unitPrice(sku: "TS-S-RED", currency: "USD") == nil)  // not in that currency
        #expect(s.unitPrice(sku: "NOPE", currency: "EUR") == nil)
    }

    @Test func aCustomerGroupsPriceListWins() throws {
        let s = try given(priced + [
            .setPrices(productId: pid, scope: wholesale, prices: [P.Price(sku: "TS-S-RED", price: eur(1500)), P.Price(sku: "TS-M-RED", price: eur(1600))], removeSkus: []),
        ])
        #expect(s.unitPrice(sku: "TS-S-RED", currency: "EUR", customerGroup: "wholesale") == eur(1500))
        #expect(s.unitPrice(sku: "TS-S-RED", currency: "EUR", customerGroup: "retail") == eur(1999))
        #expect(s.unitPrice(sku: "TS-S-RED", currency: "EUR") == eur(1999))
        #expect(s.unitPrice(sku: "TS-M-RED", currency: "EUR", customerGroup: "wholesale") == eur(1600))
        #expect(s.unitPrice(sku: "TS-M-RED", currency: "EUR") == nil)  // only wholesale has it
        #expect(s.priceListIds[P.PriceSlot(currency: "EUR", customerGroup: "wholesale")] == "eur-wholesale")
    }

    @Test func setPricesRecordsOnlyWhatChanges() throws {
        let s = try given(priced)
        let events = try decide(.setPrices(productId: pid, scope: .base("EUR"), prices: [
            P.Price(sku: "TS-S-RED", price: eur(1999), compareAtPrice: eur(2499)),  // unchanged
            P.Price(sku: "TS-M-RED", price: eur(2199)),
        ], removeSkus: []), s)
        guard case .productPricesSet(let e)? = events.first?.event else { Issue.record("not ProductPricesSet"); return }
        #expect(e.prices.map(\.sku) == ["TS-M-RED"] && e.currency == "EUR" && e.priceListID.isEmpty && e.customerGroup.isEmpty)
        #expect(!e.prices[0].hasCompareAtPrice)
        #expect(events[0].typeName == "ProductPricesSet")
        #expect(try decide(priced.last!, s).isEmpty)  // the same prices again
    }

    @Test func removingPrices() throws {
        let s = try given(priced)
        let events = try decide(.setPrices(productId: pid, scope: .base("EUR"), prices: [], removeSkus: ["TS-S-RED", "TS-M-RED"]), s)
        guard case .productPricesSet(let e)? = events.first?.event else { Issue.record("not ProductPricesSet"); return }
        #expect(e.removedSkus == ["TS-S-RED"])  // TS-M-RED had no price
        let after = P.fold(events, from: s)
        #expect(after.unitPrice(sku: "TS-S-RED", currency: "EUR") == nil && after.prices.isEmpty && !after.hasPricedVariant)
        #expect(try decide(.setPrices(productId: pid, scope: .base("EUR"), prices: [], removeSkus: ["TS-S-RED"]), after).isEmpty)
    }

    @Test func setPricesValidation() throws {
        let s = try given(withVariants)
        func fields(_ scope: P.PriceScope, _ prices: [P.Price], _ remove: [String] = []) -> [String] {
            refusal(.setPrices(productId: pid, scope: scope, prices: prices, removeSkus: remove), s)?.violations.map(\.field) ?? []
        }
        #expect(fields(.base("eur"), [P.Price(sku: "TS-S-RED", price: Money(1, "eur"))]) == ["currency"])
        #expect(fields(.base("EUR"), [P.Price(sku: "TS-S-RED", price: Money(1, "USD"))]) == ["prices[0].price"])
        #expect(fields(.base("EUR"), [P.Price(sku: "TS-S-RED", price: eur(-1))]) == ["prices[0].price"])
        #expect(fields(.base("EUR"), [P.Price(sku: "TS-S-RED", price: eur(1_000_000_000_001))]) == ["prices[0].price"])
        #expect(fields(.base("EUR"), [P.Price(sku: "TS-S-RED", price: eur(1), compareAtPrice: Money(2, "USD"))]) == ["prices[0].compare_at_price"])
        #expect(fields(.base("EUR"), [P.Price(sku: "NOPE", price: eur(1))]) == ["prices[0].sku"])
        #expect(fields(.base("EUR"), [P.Price(sku: "TS-S-RED", price: eur(1)), P.Price(sku: "TS-S-RED", price: eur(2))]) == ["prices[1].sku"])
        #expect(fields(.base("EUR"), [P.Price(sku: "TS-S-RED", price: eur(1))], ["TS-S-RED"]) == ["prices[0].sku"])
        #expect(fields(.base("EUR"), []) == ["prices"])
        #expect(fields(.base("EUR"), [], [""]) == ["remove_skus[0]"])
        #expect(fields(P.PriceScope(priceListId: "", currency: "EUR", customerGroup: "vip"), [P.Price(sku: "TS-S-RED", price: eur(1))]) == ["price_list_id"])
        // 0 and the maximum are prices.
        #expect(fields(.base("EUR"), [P.Price(sku: "TS-S-RED", price: eur(0)), P.Price(sku: "TS-M-RED", price: eur(1_000_000_000_000))]).isEmpty)
    }

    @Test func pricesOfAnArchivedProductCannotChange() throws {
        let error = refusal(.setPrices(productId: pid, scope: .base("EUR"), prices: [P.Price(sku: "TS-S-RED", price: eur(1))], removeSkus: []), try given(archived))
        #expect(error?.code == .failedPrecondition && error?.currentState == "PRODUCT_STATUS_ARCHIVED")
    }
}

// MARK: - Publish and archive

@Suite("ProductDecider: publish and archive")
struct CatalogProductLifecycleTests {
    @Test func publishNeedsAPricedVariant() throws {
        for steps in [created, withVariants] {
            let error = refusal(.publish(productId: pid), try given(steps))
            #expect(error?.code == .failedPrecondition && error?.currentState == "PRODUCT_STATUS_DRAFT")
        }
        let events = try decide(.publish(productId: pid), try given(priced), at: t0 + 99)
        guard case .productPublished(let e)? = events.first?.event else { Issue.record("not ProductPublished"); return }
        #expect(e.publishedAt.unixMicros == t0 + 99 && events[0].typeName == "ProductPublished")
        let s = P.fold(events, from: try given(priced))
        #expect(s.status == .published && s.publishedAtMicros == t0 + 99)
    }

    @Test func publishTwiceIsANoOpAndAnArchivedProductCannotBePublished() throws {
        #expect(try decide(.publish(productId: pid), try given(published)).isEmpty)
        let error = refusal(.publish(productId: pid), try given(archived))
        #expect(error?.currentState == "PRODUCT_STATUS_ARCHIVED")
    }

    @Test func sellability() throws {
        #expect(!(try given(priced)).isSellable(sku: "TS-S-RED"))
        let s = try given(published)
        #expect(s.isSellable(sku: "TS-S-RED") && s.isSellable(sku: "TS-M-RED") && !s.isSellable(sku: "NOPE"))
        #expect(!(try given(archived)).isSellable(sku: "TS-S-RED"))
        #expect(!P.initialState.isSellable(sku: "TS-S-RED"))
    }

    @Test func archiveFromDraftOrPublishedAndAgainIsANoOp() throws {
        for steps in [created, published] {
            let events = try decide(.archive(productId: pid, reason: "end of line"), try given(steps))
            guard case .productArchived(let e)? = events.first?.event else { Issue.record("not ProductArchived"); return }
            #expect(e.reason == "end of line" && events[0].typeName == "ProductArchived")
            #expect(P.fold(events, from: try given(steps)).status == .archived)
        }
        #expect(try decide(.archive(productId: pid, reason: "again"), try given(archived)).isEmpty)
        let long = refusal(.archive(productId: pid, reason: String(repeating: "r", count: 2001)), try given(created))
        #expect(long?.violations.first?.field == "reason")
    }

    /// Every command in every status: what it yields.
    @Test func everyCommandInEveryStatus() throws {
        enum Outcome: Equatable { case event(String), noOp, refused(DomainError.Code, String?) }
        let commands: [(String, P.Command)] = [
            ("create", created[0]),
            ("update", .updateDetails(productId: pid, update: P.DetailsUpdate(summary: "new"))),
            ("addVariant", .addVariant(productId: pid, variant: variant("TS-L-BLUE", "L", "blue"))),
            ("setPrices", .setPrices(productId: pid, scope: .base("EUR"), prices: [P.Price(sku: "TS-S-RED", price: eur(1))], removeSkus: [])),
            ("publish", .publish(productId: pid)),
            ("archive", .archive(productId: pid, reason: "")),
        ]
        let archivedRefusal = Outcome.refused(.failedPrecondition, "PRODUCT_STATUS_ARCHIVED")
        let table: [(String, [P.Command], [String: Outcome])] = [
            ("none", [], [
                "create": .event("ProductCreated"), "update": .refused(.notFound, nil), "addVariant": .refused(.notFound, nil),
                "setPrices": .refused(.notFound, nil), "publish": .refused(.notFound, nil), "archive": .refused(.notFound, nil),
            ]),
            ("draft", priced, [
                "create": .noOp, "update": .event("ProductDetailsUpdated"), "addVariant": .event("VariantAdded"),
                "setPrices": .event("ProductPricesSet"), "publish": .event("ProductPublished"), "archive": .event("ProductArchived"),
            ]),
            ("published", published, [
                "create": .noOp, "update": .event("ProductDetailsUpdated"), "addVariant": .event("VariantAdded"),
                "setPrices": .event("ProductPricesSet"), "publish": .noOp, "archive": .event("ProductArchived"),
            ]),
            ("archived", archived, [
                "create": .noOp, "update": archivedRefusal, "addVariant": archivedRefusal,
                "setPrices": archivedRefusal, "publish": archivedRefusal, "archive": .noOp,
            ]),
        ]
        for (name, steps, expected) in table {
            let state = try given(steps)
            for (commandName, command) in commands {
                let outcome: Outcome
                do {
                    let events = try decide(command, state)
                    outcome = events.isEmpty ? .noOp : .event(events[0].typeName)
                } catch {
                    outcome = .refused(error.code, error.currentState)
                }
                #expect(outcome == expected[commandName], "\(commandName) in \(name)")
            }
        }
    }
}

// MARK: - Events and views

@Suite("ProductDecider: events")
struct CatalogProductEventTests {
    @Test func historySurvivesSerializationAndRefolds() throws {
        var state = P.initialState
        var log: [P.Event] = []
        let steps = archived + [.archive(productId: pid, reason: "noop")]
        for (i, command) in steps.enumerated() {
            let events = try decide(command, state, at: t0 + Int64(i))
            log += events
            state = P.fold(events, from: state)
        }
        #expect(log.map(\.typeName) == ["ProductCreated", "VariantAdded", "VariantAdded", "ProductPricesSet", "ProductPublished", "ProductArchived"])
        let decoded = try log.map { try P.Event(serializedBytes: try $0.serializedBytes() as [UInt8]) }
        #expect(decoded == log)
        #expect(P.fold(decoded) == state)
        #expect(P.evolve(state, P.Event()) == state && P.Event().typeName == "ProductEvent")
    }

    @Test func operatorView() throws {
        let s = try given(published)
        let view = s.proto(version: 5)
        #expect(view.productID == pid && view.status == .published && view.version == 5)
        #expect(view.variants.map(\.sku) == ["TS-S-RED", "TS-M-RED"])
        #expect(view.prices.count == 1 && view.prices[0].prices.map(\.sku) == ["TS-S-RED"])
        #expect(view.createdAt.unixMicros == t0 && view.publishedAt.unixMicros == t0 + 4)
        #expect(P.Details(view.details) == s.details)
        #expect(P.initialState.proto(version: 0).status == .unspecified)
        #expect(P.Status.draft.proto == .draft && P.Status.archived.protoName == "PRODUCT_STATUS_ARCHIVED")
    }

    @Test func attributeWireRoundTrip() {
        for value in [P.AttributeValue.text("x"), .number(unscaled: -15, scale: 1), .bool(false)] {
            #expect(P.AttributeValue(value.proto) == value)
        }
        #expect(P.AttributeValue(Tote_V1_AttributeValue()) == nil)
        let price = P.Price(sku: "A", price: eur(5))
        #expect(P.Price(price.proto) == price)
    }
}
