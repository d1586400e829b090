import SwiftProtobuf
import Testing
import ToteDomain
import ToteProto

private let t0: Int64 = 1_700_000_000_000_000

private func ctx(_ now: Int64 = t0) -> CommandContext {
    CommandContext(actor: Principal(id: "op-1", role: "operator"), nowMicros: now)
}

/// The refusal `body` throws, or nil if it succeeds.
private func refusal(_ body: () throws(DomainError) -> Void) -> DomainError? {
    do {
        try body()
        return nil
    } catch {
        return error
    }
}

// MARK: - Categories

private typealias C = CategoryDecider

private func decideCategory(_ command: C.Command, _ state: C.State) throws(DomainError) -> [C.Event] {
    try C.decide(command, state: state, context: ctx())
}

private func categoryRefusal(_ command: C.Command, _ state: C.State) -> DomainError? {
    refusal { () throws(DomainError) in _ = try decideCategory(command, state) }
}

/// clothing > tops > t-shirts, as the t-shirts stream sees it.
private func tShirts() throws -> C.State {
    let command = C.Command.create(
        categoryId: "t-shirts", slug: "t-shirts", name: "T-shirts",
        placement: C.Placement(parentId: "tops", parentAncestorIds: ["clothing"], position: 2))
    return C.fold(try decideCategory(command, C.initialState))
}

@Suite("CategoryDecider")
struct CatalogCategoryTests {
    @Test func createARootCategory() throws {
        let events = try decideCategory(.create(categoryId: "clothing", slug: "clothing", name: "Clothing", placement: .root()), C.initialState)
        guard case .categoryCreated(let e)? = events.first?.event else { Issue.record("not CategoryCreated"); return }
        #expect(e.categoryID == "clothing" && e.slug == "clothing" && e.parentID.isEmpty && e.ancestorIds.isEmpty)
        #expect(e.createdAt.unixMicros == t0 && events[0].typeName == "CategoryCreated")
        let s = C.fold(events)
        #expect(s.exists && s.name == "Clothing" && s.parentId.isEmpty)
    }

    @Test func createAChildRecordsItsAncestors() throws {
        let s = try tShirts()
        #expect(s.parentId == "tops" && s.ancestorIds == ["clothing", "tops"] && s.position == 2)
    }

    @Test func createAgain() throws {
        let s = try tShirts()
        let same = C.Command.create(categoryId: "t-shirts", slug: "t-shirts", name: "T-shirts", placement: C.Placement(parentId: "tops", parentAncestorIds: ["clothing"], position: 2))
        #expect(try decideCategory(same, s).isEmpty)
        let other = C.Command.create(categoryId: "t-shirts", slug: "t-shirts", name: "Tees", placement: .root())
        #expect(categoryRefusal(other, s)?.code == .alreadyExists)
    }

    @Test func createUnderItselfIsRefused() {
        let error = categoryRefusal(.create(categoryId: "a", slug: "a", name: "A", placement: C.Placement(parentId: "a")), C.initialState)
        #expect(error?.code == .failedPrecondition)
    }

    @Test func createValidation() {
        let error = categoryRefusal(.create(categoryId: "", slug: "Bad Slug", name: " ", placement: C.Placement(parentId: "", parentAncestorIds: ["x"])), C.initialState)
        #expect(error?.code == .invalidArgument)
        #expect(error?.violations.map(\.field) == ["category_id", "slug", "name", "parent_slug"])
        let loop = categoryRefusal(.create(categoryId: "c", slug: "c", name: "C", placement: C.Placement(parentId: "p", parentAncestorIds: ["p"])), C.initialState)
        #expect(loop?.violations.map(\.field) == ["parent_slug"])
    }

    @Test func rename() throws {
        let s = try tShirts()
        let events = try decideCategory(.rename(categoryId: "t-shirts", name: "Tees"), s)
        guard case .categoryRenamed(let e)? = events.first?.event else { Issue.record("not CategoryRenamed"); return }
        #expect(e.previousName == "T-shirts" && e.name == "Tees" && events[0].typeName == "CategoryRenamed")
        #expect(C.fold(events, from: s).name == "Tees")
        #expect(try decideCategory(.rename(categoryId: "t-shirts", name: "T-shirts"), s).isEmpty)
        #expect(categoryRefusal(.rename(categoryId: "t-shirts", name: ""), s)?.code == .invalidArgument)
        #expect(categoryRefusal(.rename(categoryId: "t-shirts", name: "Tees"), C.initialState)?.code == .notFound)
        #expect(categoryRefusal(.rename(categoryId: "other", name: "Tees"), s)?.code == .invalidArgument)
    }

    @Test func moveUnderAnotherParent() throws {
        let s = try tShirts()
        let events = try decideCategory(.move(categoryId: "t-shirts", placement: C.Placement(parentId: "summer", parentAncestorIds: ["sale"], position: 0)), s)
        guard case .categoryMoved(let e)? = events.first?.event else { Issue.record("not CategoryMoved"); return }
        #expect(e.previousParentID == "tops" && e.parentID == "summer" && e.ancestorIds == ["sale", "summer"] && e.position == 0)
        #expect(events[0].typeName == "CategoryMoved")
        let moved = C.fold(events, from: s)
        #expect(moved.parentId == "summer" && moved.ancestorIds == ["sale", "summer"])
    }

    @Test func moveToTheRootAndRepositioning() throws {
        let s = try tShirts()
        let root = C.fold(try decideCategory(.move(categoryId: "t-shirts", placement: .root(position: 1)), s), from: s)
        #expect(root.parentId.isEmpty && root.ancestorIds.isEmpty && root.position == 1)
        let reordered = try decideCategory(.move(categoryId: "t-shirts", placement: C.Placement(parentId: "tops", parentAncestorIds: ["clothing"], position: 7)), s)
        #expect(reordered.count == 1)
    }

    @Test func moveToWhereItIsIsANoOp() throws {
        let s = try tShirts()
        #expect(try decideCategory(.move(categoryId: "t-shirts", placement: C.Placement(parentId: "tops", parentAncestorIds: ["clothing"], position: 2)), s).isEmpty)
    }

    @Test func moveUnderItselfOrADescendantIsRefused() throws {
        let s = try tShirts()
        let underItself = categoryRefusal(.move(categoryId: "t-shirts", placement: C.Placement(parentId: "t-shirts", parentAncestorIds: ["clothing", "tops"])), s)
        #expect(underItself?.code == .failedPrecondition && underItself?.subject == "t-shirts")
        // "v-necks" is a child of t-shirts: its ancestors include t-shirts.
        let underChild = categoryRefusal(.move(categoryId: "t-shirts", placement: C.Placement(parentId: "v-necks", parentAncestorIds: ["clothing", "tops", "t-shirts"])), s)
        #expect(underChild?.code == .failedPrecondition)
        let deeper = categoryRefusal(.move(categoryId: "t-shirts", placement: C.Placement(parentId: "slim", parentAncestorIds: ["clothing", "tops", "t-shirts", "v-necks"])), s)
        #expect(deeper?.code == .failedPrecondition)
    }

    @Test func moveOfAMissingCategory() {
        #expect(categoryRefusal(.move(categoryId: "x", placement: .root()), C.initialState)?.code == .notFound)
        #expect(categoryRefusal(.move(categoryId: "", placement: .root()), C.initialState)?.code == .invalidArgument)
    }

    @Test func eventsRoundTrip() throws {
        var s = C.initialState
        var log: [C.Event] = []
        for command: C.Command in [
            .create(categoryId: "t-shirts", slug: "t-shirts", name: "T-shirts", placement: .root()),
            .rename(categoryId: "t-shirts", name: "Tees"),
            .move(categoryId: "t-shirts", placement: C.Placement(parentId: "tops", parentAncestorIds: ["clothing"])),
        ] {
            let events = try decideCategory(command, s)
            log += events
            s = C.fold(events, from: s)
        }
        let decoded = try log.map { try C.Event(serializedBytes: try $0.serializedBytes() as [UInt8]) }
        #expect(C.fold(decoded) == s && decoded == log)
        #expect(C.evolve(s, C.Event()) == s && C.Event().typeName == "CategoryEvent")
    }
}

// MARK: - Price lists

private typealias L = PriceListDecider

private func decideList(_ command: L.Command, _ state: L.State) throws(DomainError) -> [L.Event] {
    try L.decide(command, state: state, context: ctx())
}

@Suite("PriceListDecider")
struct CatalogPriceListTests {
    private let create = L.Command.create(priceListId: "eur-wholesale", name: "Wholesale EUR", currency: "EUR", customerGroup: "wholesale", taxInclusive: false)

    @Test func createRecordsTheList() throws {
        let events = try decideList(create, L.initialState)
        guard case .priceListCreated(let e)? = events.first?.event else { Issue.record("not PriceListCreated"); return }
        #expect(e.priceList.priceListID == "eur-wholesale" && e.priceList.currency == "EUR" && e.priceList.customerGroup == "wholesale")
        #expect(!e.priceList.taxInclusive && e.createdAt.unixMicros == t0 && events[0].typeName == "PriceListCreated")
        let s = L.fold(events)
        #expect(s.exists && s.name == "Wholesale EUR" && s.createdAtMicros == t0)
        #expect(s.scope == ProductDecider.PriceScope(priceListId: "eur-wholesale", currency: "EUR", customerGroup: "wholesale"))
        #expect(L.initialState.scope == nil)
        let decoded = try events.map { try L.Event(serializedBytes: try $0.serializedBytes() as [UInt8]) }
        #expect(L.fold(decoded) == s)
    }

    @Test func createAgain() throws {
        let s = L.fold(try decideList(create, L.initialState))
        #expect(try decideList(create, s).isEmpty)
        let other = L.Command.create(priceListId: "eur-wholesale", name: "Wholesale EUR", currency: "EUR", customerGroup: "wholesale", taxInclusive: true)
        #expect(refusal { () throws(DomainError) in _ = try decideList(other, s) }?.code == .alreadyExists)
    }

    @Test func theDefaultListOfACurrency() throws {
        let s = L.fold(try decideList(.create(priceListId: "eur-retail", name: "Retail", currency: "EUR", customerGroup: "", taxInclusive: true), L.initialState))
        #expect(s.customerGroup.isEmpty && s.taxInclusive)
    }

    @Test func validation() {
        let bad = L.Command.create(priceListId: "", name: "", currency: "euro", customerGroup: "has space", taxInclusive: false)
        let error = refusal { () throws(DomainError) in _ = try decideList(bad, L.initialState) }
        #expect(error?.violations.map(\.field) == ["price_list.price_list_id", "price_list.name", "price_list.currency", "price_list.customer_group"])
        #expect(L.evolve(L.initialState, L.Event()) == L.initialState && L.Event().typeName == "PriceListEvent")
    }
}

// MARK: - SKU claims

private typealias K = SkuClaimDecider

private func decideClaim(_ command: K.Command, _ state: K.State) throws(DomainError) -> [K.Event] {
    try K.decide(command, state: state, context: ctx())
}

@Suite("SkuClaimDecider")
struct CatalogSkuClaimTests {
    @Test func claimAFreeSku() throws {
        let events = try decideClaim(.claim(sku: "TS-S-RED", productId: "p1"), K.initialState)
        guard case .skuClaimed(let e)? = events.first?.event else { Issue.record("not SkuClaimed"); return }
        #expect(e.sku == "TS-S-RED" && e.productID == "p1" && e.claimedAt.unixMicros == t0 && events[0].typeName == "SkuClaimed")
        let s = K.fold(events)
        #expect(s.productId == "p1" && s.sku == "TS-S-RED")
        #expect(StreamName.skuClaim("TS-S-RED") == "sku-TS-S-RED")
    }

    @Test func theSameProductAgainIsANoOp() throws {
        let s = K.fold(try decideClaim(.claim(sku: "TS-S-RED", productId: "p1"), K.initialState))
        #expect(try decideClaim(.claim(sku: "TS-S-RED", productId: "p1"), s).isEmpty)
    }

    @Test func anotherProductIsRefusedNamingTheOwner() throws {
        let s = K.fold(try decideClaim(.claim(sku: "TS-S-RED", productId: "p1"), K.initialState))
        let error = refusal { () throws(DomainError) in _ = try decideClaim(.claim(sku: "TS-S-RED", productId: "p2"), s) }
        #expect(error?.code == .alreadyExists && error?.subject == "p1")
        #expect(error?.message.contains("p1") == true)
    }

    @Test func validation() {
        let error = refusal { () throws(DomainError) in _ = try decideClaim(.claim(sku: "", productId: ""), K.initialState) }
        #expect(error?.violations.map(\.field) == ["variant.sku", "product_id"])
        #expect(K.evolve(K.initialState, K.Event()) == K.initialState && K.Event().typeName == "SkuClaimEvent")
    }
}
