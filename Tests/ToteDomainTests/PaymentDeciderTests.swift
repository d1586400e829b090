import Foundation
import SwiftProtobuf
import Testing
import ToteDomain
import ToteProto

// MARK: - Fixture (file-private: the test module is shared with other deciders' tests)

private typealias D = PaymentDecider
private let t0: Int64 = 1_700_000_000_000_000
private let second: Int64 = 1_000_000

private func ctx(_ now: Int64 = t0 + second) -> CommandContext {
    CommandContext(actor: Principal(id: "payments", role: "system"), nowMicros: now)
}

private func eur(_ minor: Int64) -> Money { Money(minor, "EUR") }

private let card: Tote_V1_PaymentMethod = {
    var m = Tote_V1_PaymentMethod()
    m.kind = .card
    m.provider = "simulated"
    m.token = "tok_4242"
    m.display = "Visa **** 4242"
    return m
}()

private let initiate = PaymentCommand.initiate(paymentID: "pay-1", orderID: "o1", amount: eur(8117), method: card)
private let actionRequired = PaymentCommand.recordActionRequired(providerReference: "pi_1", nextAction: {
    var a = Tote_V1_PaymentNextAction()
    a.redirectURL = "https://sim.example/3ds"
    return a
}())
private let authorize = PaymentCommand.recordAuthorization(providerReference: "pi_1", amount: eur(8117))
private let decline = PaymentCommand.recordDecline(code: "card_declined", message: "Your card was declined.")
private let failure = PaymentCommand.recordFailure(code: "timeout", message: "no answer in 10 s")
private let captureAll = PaymentCommand.recordCapture(captureID: "cap-1", amount: eur(8117))
private let captureMore = PaymentCommand.recordCapture(captureID: "cap-new", amount: eur(100))
private let refundSome = PaymentCommand.recordRefund(refundID: "rf-new", amount: eur(100), reason: "goodwill")
private let void = PaymentCommand.void(reason: "order cancelled")
private let expire = PaymentCommand.expire(reason: "not completed in time")

private func webhook(_ id: String, _ kind: ProviderEventKind, _ amount: Int64? = nil, dispute: String = "") -> ProviderEvent {
    ProviderEvent(providerEventID: id, kind: kind, amount: amount.map(eur), occurredAtMicros: t0, providerReference: "pi_1", failureCode: kind == .failed ? "card_declined" : "", disputeID: dispute)
}

private func run(_ state: D.State, _ command: PaymentCommand) throws -> D.State {
    D.fold(try D.decide(command, state: state, context: ctx()), from: state)
}

private func given(_ commands: [PaymentCommand]) throws -> D.State {
    var s = D.initialState
    for c in commands { s = try run(s, c) }
    return s
}

private func refusal<T>(_ body: () throws(DomainError) -> T) -> DomainError? {
    do { _ = try body(); return nil } catch { return error }
}

/// Applies a webhook and returns the outcome and the state after it.
private func deliver(_ state: D.State, _ event: ProviderEvent) throws -> (Tote_V1_WebhookOutcome, D.State, [Tote_V1_PaymentEvent]) {
    let (events, outcome) = try D.decideWebhook(event, state: state, context: ctx())
    return (outcome, D.fold(events, from: state), events)
}

private let states: [(String, [PaymentCommand])] = [
    ("NONE", []),
    ("PENDING", [initiate]),
    ("REQUIRES_ACTION", [initiate, actionRequired]),
    ("AUTHORIZED", [initiate, authorize]),
    ("CAPTURED", [initiate, authorize, captureAll]),
    ("PARTIALLY_REFUNDED", [initiate, authorize, captureAll, .recordRefund(refundID: "rf-1", amount: eur(100), reason: "r")]),
    ("REFUNDED", [initiate, authorize, captureAll, .recordRefund(refundID: "rf-1", amount: eur(8117), reason: "r")]),
    ("FAILED", [initiate, decline]),
    ("VOIDED", [initiate, authorize, void]),
    ("EXPIRED", [initiate, expire]),
    ("DISPUTED", [initiate, authorize, captureAll, .applyProviderEvent(webhook("evt-d", .disputed, 8117, dispute: "dp-1"))]),
]

private let commands: [(String, PaymentCommand)] = [
    ("initiate", initiate), ("actionRequired", actionRequired), ("authorize", authorize), ("decline", decline),
    ("failure", failure), ("capture", captureMore), ("refund", refundSome), ("void", void), ("expire", expire),
]

/// `→STATE` events leading to that state, `=` no events, `!` refused naming the state, `404`.
private let expected: [String: [String]] = [
    //                   initiate    actionRequired       authorize      decline    failure    capture       refund                  void        expire
    "NONE":               ["→PENDING", "404", "404", "404", "404", "404", "404", "404", "404"],
    "PENDING":            ["=", "→REQUIRES_ACTION", "→AUTHORIZED", "→FAILED", "→FAILED", "!", "!", "→VOIDED", "→EXPIRED"],
    "REQUIRES_ACTION":    ["=", "=", "→AUTHORIZED", "→FAILED", "→FAILED", "!", "!", "→VOIDED", "→EXPIRED"],
    "AUTHORIZED":         ["=", "!", "=", "!", "!", "→CAPTURED", "!", "→VOIDED", "→EXPIRED"],
    "CAPTURED":           ["=", "!", "=", "!", "!", "!", "→PARTIALLY_REFUNDED", "!", "!"],
    "PARTIALLY_REFUNDED": ["=", "!", "=", "!", "!", "!", "→PARTIALLY_REFUNDED", "!", "!"],
    "REFUNDED":           ["=", "!", "=", "!", "!", "!", "!", "!", "!"],
    "FAILED":             ["=", "!", "!", "=", "=", "!", "!", "!", "!"],
    "VOIDED":             ["=", "!", "!", "!", "!", "!", "!", "=", "!"],
    "EXPIRED":            ["=", "!", "!", "!", "!", "!", "!", "!", "="],
    "DISPUTED":           ["=", "!", "=", "!", "!", "!", "!", "!", "!"],
]

private let kinds: [(String, ProviderEvent)] = [
    ("requiresAction", webhook("w", .requiresAction)),
    ("authorized", webhook("w", .authorized, 8117)),
    ("captured", webhook("w", .captured, 8117)),
    ("failed", webhook("w", .failed)),
    ("refunded", webhook("w", .refunded, 8117)),
    ("disputed", webhook("w", .disputed, 8117, dispute: "dp-new")),
    ("disputeWon", webhook("w", .disputeWon, dispute: "dp-1")),
    ("disputeLost", webhook("w", .disputeLost, dispute: "dp-1")),
    ("voided", webhook("w", .voided)),
    ("expired", webhook("w", .expired)),
]

/// Webhook outcomes: `A→STATE` applied and moved to STATE, `A=` applied, confirming the state,
/// `S` stale (state unchanged), `I` ignored.
private let expectedWebhooks: [String: [String]] = [
    //                   requiresAction       authorized      captured      failed      refunded      disputed      disputeWon    disputeLost   voided      expired
    "NONE":               ["I", "I", "I", "I", "I", "I", "I", "I", "I", "I"],
    "PENDING":            ["A→REQUIRES_ACTION", "A→AUTHORIZED", "A→CAPTURED", "A→FAILED", "A→REFUNDED", "A→DISPUTED", "S", "S", "A→VOIDED", "A→EXPIRED"],
    "REQUIRES_ACTION":    ["A=", "A→AUTHORIZED", "A→CAPTURED", "A→FAILED", "A→REFUNDED", "A→DISPUTED", "S", "S", "A→VOIDED", "A→EXPIRED"],
    "AUTHORIZED":         ["S", "A=", "A→CAPTURED", "S", "A→REFUNDED", "A→DISPUTED", "S", "S", "A→VOIDED", "A→EXPIRED"],
    "CAPTURED":           ["S", "S", "A=", "S", "A→REFUNDED", "A→DISPUTED", "S", "S", "S", "S"],
    "PARTIALLY_REFUNDED": ["S", "S", "S", "S", "A→REFUNDED", "A→DISPUTED", "S", "S", "S", "S"],
    "REFUNDED":           ["S", "S", "S", "S", "A=", "A→DISPUTED", "S", "S", "S", "S"],
    "FAILED":             ["S", "S", "S", "A=", "S", "S", "S", "S", "S", "S"],
    "VOIDED":             ["S", "S", "S", "S", "S", "S", "S", "S", "A=", "S"],
    "EXPIRED":            ["S", "S", "S", "S", "S", "S", "S", "S", "S", "A="],
    "DISPUTED":           ["S", "S", "S", "S", "S", "S", "A→CAPTURED", "A→REFUNDED", "S", "S"],
]

private struct Case: CustomTestStringConvertible, Sendable {
    var state: String
    var index: Int
    var name: String
    var testDescription: String { "\(name) in \(state)" }
}

private let commandCases = states.flatMap { s in commands.enumerated().map { Case(state: s.0, index: $0.offset, name: $0.element.0) } }
private let webhookCases = states.flatMap { s in kinds.enumerated().map { Case(state: s.0, index: $0.offset, name: $0.element.0) } }

private func stateNamed(_ name: String) throws -> D.State {
    try given(states.first { $0.0 == name }!.1)
}

// MARK: - Tables

@Suite("PaymentDecider: every command and webhook in every state")
struct PaymentTransitionTableTests {
    @Test(arguments: commandCases)
    fileprivate func command(_ c: Case) throws {
        let state = try stateNamed(c.state)
        let want = expected[c.state]![c.index]
        let result: Result<[Tote_V1_PaymentEvent], DomainError>
        do { result = .success(try D.decide(commands[c.index].1, state: state, context: ctx())) } catch { result = .failure(error) }
        switch (want, result) {
        case ("=", .success(let events)):
            #expect(events.isEmpty)
        case ("404", .failure(let error)):
            #expect(error.code == .notFound)
        case ("!", .failure(let error)):
            #expect(error.code == .failedPrecondition)
            #expect(error.currentState == D.stateName(state.status))
        case (let arrow, .success(let events)) where arrow.hasPrefix("→"):
            #expect(!events.isEmpty)
            #expect(D.stateName(D.fold(events, from: state).status) == "PAYMENT_STATE_" + arrow.dropFirst())
        default:
            Issue.record("\(c.testDescription): expected \(want), got \(result)")
        }
    }

    @Test(arguments: webhookCases)
    fileprivate func webhookOutcome(_ c: Case) throws {
        let state = try stateNamed(c.state)
        let want = expectedWebhooks[c.state]![c.index]
        let event = kinds[c.index].1
        let (outcome, after, events) = try deliver(state, event)
        switch want {
        case "I":
            #expect(outcome == .ignored)
            #expect(events.isEmpty)
        case "S":
            #expect(outcome == .stale)
            #expect(events.count == 1)
            #expect(events.first?.typeName == "ProviderEventRecorded")
            var unchanged = after
            unchanged.providerEventIDs.remove(event.providerEventID)
            #expect(unchanged == state, "a stale event changes nothing but the ids seen")
        case "A=":
            #expect(outcome == .applied)
            #expect(events.count == 1)
            #expect(after.status == state.status)
        default:
            #expect(outcome == .applied)
            #expect(events.count >= 2)
            #expect(D.stateName(after.status) == "PAYMENT_STATE_" + want.dropFirst(2))
        }
        if want != "I" {
            // The same event delivered again is a duplicate and changes nothing.
            let (again, afterAgain, eventsAgain) = try deliver(after, event)
            #expect(again == .duplicate)
            #expect(eventsAgain.isEmpty)
            #expect(afterAgain == after)
        }
    }
}

// MARK: - Commands

@Suite("PaymentDecider: commands")
struct PaymentCommandTests {
    @Test func initiateValidatesEveryField() {
        var badMethod = card
        badMethod.provider = ""
        badMethod.kind = .unspecified
        let error = refusal { () throws(DomainError) in
            try D.decide(.initiate(paymentID: "", orderID: "", amount: Money(0, "euro"), method: badMethod), state: D.initialState, context: ctx())
        }
        #expect(error?.violations.map(\.field) == ["payment_id", "order_id", "amount.currency", "amount.minor_units", "method.provider", "method.kind"])
    }

    @Test func initiatingAgainWithOtherValuesIsRefused() throws {
        let state = try given([initiate])
        let error = refusal { () throws(DomainError) in
            try D.decide(.initiate(paymentID: "pay-1", orderID: "o1", amount: eur(1), method: card), state: state, context: ctx())
        }
        #expect(error?.code == .alreadyExists)
    }

    @Test func capturesArePartialUpToTheAuthorizedAmount() throws {
        var state = try given([initiate, authorize, .recordCapture(captureID: "c1", amount: eur(5000))])
        #expect(state.status == .captured && state.capturedMinor == 5000)
        let over = refusal { () throws(DomainError) in try D.decide(.recordCapture(captureID: "c2", amount: eur(3118)), state: state, context: ctx()) }
        #expect(over?.code == .failedPrecondition)
        state = try run(state, .recordCapture(captureID: "c2", amount: eur(3117)))
        #expect(state.capturedMinor == 8117)
        #expect(try D.decide(.recordCapture(captureID: "c1", amount: eur(5000)), state: state, context: ctx()).isEmpty)
    }

    @Test func refundsNeverExceedTheCapturedAmount() throws {
        var state = try given([initiate, authorize, captureAll, .recordRefund(refundID: "r1", amount: eur(8000), reason: "")])
        let over = refusal { () throws(DomainError) in try D.decide(.recordRefund(refundID: "r2", amount: eur(118), reason: ""), state: state, context: ctx()) }
        #expect(over?.code == .failedPrecondition)
        #expect(over?.currentState == "PAYMENT_STATE_PARTIALLY_REFUNDED")
        state = try run(state, .recordRefund(refundID: "r2", amount: eur(117), reason: ""))
        #expect(state.status == .refunded)
        #expect(try D.decide(.recordRefund(refundID: "r2", amount: eur(117), reason: ""), state: state, context: ctx()).isEmpty)
    }

    @Test func amountsMustBeInThePaymentsCurrency() throws {
        let state = try given([initiate, authorize])
        let error = refusal { () throws(DomainError) in try D.decide(.recordCapture(captureID: "c", amount: Money(1, "USD")), state: state, context: ctx()) }
        #expect(error?.violations.map(\.field) == ["amount.currency"])
        let pending = try given([initiate])
        let auth = refusal { () throws(DomainError) in try D.decide(.recordAuthorization(providerReference: "x", amount: eur(9000)), state: pending, context: ctx()) }
        #expect(auth?.violations.map(\.field) == ["amount.minor_units"])
    }

    @Test func summaryReportsTheAmounts() throws {
        let state = try given([initiate, authorize, captureAll, .recordRefund(refundID: "r1", amount: eur(17), reason: "")])
        let s = state.summary
        #expect(s.state == .partiallyRefunded)
        #expect(s.amount.minorUnits == 8117 && s.authorized.minorUnits == 8117)
        #expect(s.captured.minorUnits == 8117 && s.refunded.minorUnits == 17)
        #expect(s.providerReference == "pi_1")
        #expect(s.method.display == "Visa **** 4242")
    }

    @Test func declineRecordsItsReason() throws {
        let state = try given([initiate, decline])
        #expect(state.failureCode == "card_declined")
        #expect(state.summary.failureMessage == "Your card was declined.")
    }

    @Test func eventsSurviveSerialization() throws {
        var events: [Tote_V1_PaymentEvent] = []
        var state = D.initialState
        for c in [initiate, authorize, captureAll, .applyProviderEvent(webhook("e1", .refunded, 500)), refundSome] {
            let new = try D.decide(c, state: state, context: ctx())
            events += new
            state = D.fold(new, from: state)
        }
        let decoded = try events.map { try Tote_V1_PaymentEvent(serializedBytes: try $0.serializedBytes() as [UInt8]) }
        #expect(D.fold(decoded) == state)
        #expect(state.refundedMinor == 600)
        #expect(events.map(\.typeName) == ["PaymentInitiated", "PaymentAuthorized", "PaymentCaptured", "ProviderEventRecorded", "PaymentRefunded", "PaymentRefunded"])
    }
}

// MARK: - Webhook sequences

@Suite("PaymentDecider: webhook sequences")
struct PaymentWebhookTests {
    @Test func synchronousAnswerThenWebhookConfirms() throws {
        var state = try given([initiate, authorize])
        var outcome: Tote_V1_WebhookOutcome
        (outcome, state, _) = try deliver(state, webhook("e1", .authorized, 8117))
        #expect(outcome == .applied)
        #expect(state.status == .authorized)
        (outcome, state, _) = try deliver(state, webhook("e2", .captured, 8117))
        #expect(outcome == .applied && state.status == .captured)
        // The synchronous capture answer arrives after the webhook: it is applied on top only if
        // it would capture more than authorized — here it is refused, nothing is double-counted.
        let late = refusal { () throws(DomainError) in try D.decide(captureAll, state: state, context: ctx()) }
        #expect(late?.code == .failedPrecondition)
        #expect(state.capturedMinor == 8117)
    }

    @Test func capturedBeforeAuthorizedThenLateAuthorizedIsStale() throws {
        var state = try given([initiate])
        var outcome: Tote_V1_WebhookOutcome
        var events: [Tote_V1_PaymentEvent]
        (outcome, state, events) = try deliver(state, webhook("e2", .captured, 8117))
        #expect(outcome == .applied)
        #expect(events.map(\.typeName) == ["ProviderEventRecorded", "PaymentAuthorized", "PaymentCaptured"])
        #expect(state.status == .captured && state.authorizedMinor == 8117)
        let before = state
        (outcome, state, _) = try deliver(state, webhook("e1", .authorized, 8117))
        #expect(outcome == .stale)
        #expect(state.status == before.status && state.capturedMinor == before.capturedMinor)
        (outcome, state, _) = try deliver(state, webhook("e1", .authorized, 8117))
        #expect(outcome == .duplicate)
    }

    @Test func cumulativeRefundsApplyDeltasAndIgnoreOlderTotals() throws {
        var state = try given([initiate, authorize, captureAll])
        var outcome: Tote_V1_WebhookOutcome
        (outcome, state, _) = try deliver(state, webhook("r-a", .refunded, 100))
        #expect(outcome == .applied && state.refundedMinor == 100)
        (outcome, state, _) = try deliver(state, webhook("r-c", .refunded, 300))
        #expect(outcome == .applied && state.refundedMinor == 300)
        (outcome, state, _) = try deliver(state, webhook("r-b", .refunded, 200))  // older, arrives late
        #expect(outcome == .stale && state.refundedMinor == 300)
        #expect(state.status == .partiallyRefunded)
    }

    @Test func recordedRefundThenItsWebhookIsNotCountedTwice() throws {
        var state = try given([initiate, authorize, captureAll, .recordRefund(refundID: "rf-1", amount: eur(500), reason: "r")])
        var outcome: Tote_V1_WebhookOutcome
        var events: [Tote_V1_PaymentEvent]
        (outcome, state, events) = try deliver(state, webhook("e9", .refunded, 500))
        #expect(outcome == .applied && events.count == 1)
        #expect(state.refundedMinor == 500)
    }

    @Test func failureAfterAuthorizationIsStale() throws {
        var state = try given([initiate, authorize])
        var outcome: Tote_V1_WebhookOutcome
        (outcome, state, _) = try deliver(state, webhook("f", .failed))
        #expect(outcome == .stale && state.status == .authorized)
    }

    @Test func everyOrderOfDeliveryEndsInTheSameState() throws {
        let hooks = [webhook("a", .authorized, 8117), webhook("c", .captured, 8117), webhook("r", .refunded, 100)]
        var finals: [D.State] = []
        for permutation in permutations(of: hooks) {
            var state = try given([initiate])
            // Each event delivered twice in a row, as a provider retrying would.
            for hook in permutation + permutation {
                state = try deliver(state, hook).1
            }
            finals.append(state)
        }
        for state in finals {
            #expect(state.status == .partiallyRefunded)
            #expect(state.authorizedMinor == 8117 && state.capturedMinor == 8117 && state.refundedMinor == 100)
            #expect(state.providerEventIDs == ["a", "c", "r"])
        }
    }

    @Test func disputeLostCountsAsRefundedAndWonRestores() throws {
        let disputed = try stateNamed("DISPUTED")
        #expect(disputed.statusBeforeDispute == .captured)
        let lost = try deliver(disputed, webhook("l", .disputeLost, 3000, dispute: "dp-1")).1
        #expect(lost.status == .partiallyRefunded && lost.refundedMinor == 3000)
        let won = try deliver(disputed, webhook("w", .disputeWon, dispute: "dp-1")).1
        #expect(won.status == .captured && won.refundedMinor == 0)
        // A late "disputed" for the closed dispute is stale.
        #expect(try deliver(won, webhook("d2", .disputed, 8117, dispute: "dp-1")).0 == .stale)
    }

    @Test func unknownKindsAndUnknownPaymentsAreIgnored() throws {
        let state = try given([initiate])
        let (events, outcome) = try D.decideWebhook(webhook("x", .other("customer.updated")), state: state, context: ctx())
        #expect(events.isEmpty && outcome == .ignored)
        #expect(try D.decideWebhook(webhook("x", .captured, 1), state: D.initialState, context: ctx()).outcome == .ignored)
    }

    @Test func webhookValidation() throws {
        let state = try given([initiate])
        var error = refusal { () throws(DomainError) in try D.decideWebhook(webhook("", .captured, -1), state: state, context: ctx()) }
        #expect(error?.violations.map(\.field) == ["provider_event_id", "amount.minor_units"])
        var usd = webhook("u", .captured)
        usd.amount = Money(1, "USD")
        error = refusal { () throws(DomainError) in try D.decideWebhook(usd, state: state, context: ctx()) }
        #expect(error?.violations.map(\.field) == ["amount.currency"])
    }

    @Test func applyProviderEventCommandGivesTheSameEvents() throws {
        let state = try given([initiate, authorize])
        let hook = webhook("e", .captured, 8117)
        #expect(try D.decide(.applyProviderEvent(hook), state: state, context: ctx()) == D.decideWebhook(hook, state: state, context: ctx()).events)
    }

    private func permutations<T>(of items: [T]) -> [[T]] {
        guard items.count > 1 else { return [items] }
        return items.indices.flatMap { i -> [[T]] in
            var rest = items
            let head = rest.remove(at: i)
            return permutations(of: rest).map { [head] + $0 }
        }
    }
}

// MARK: - Signatures

@Suite("WebhookSignature")
struct PaymentWebhookSignatureTests {
    private let payload = Array(#"{"id":"evt_1"}"#.utf8)
    private let secret = "whsec_test"
    private let t: Int64 = 1_700_000_000

    @Test func signMatchesAKnownVector() {
        // python3: hmac.new(b"whsec_test", b'1700000000.{"id":"evt_1"}', sha256).hexdigest()
        #expect(WebhookSignature.sign(payload: payload, secret: secret, timestampSeconds: t)
            == "t=1700000000,v1=c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925")
    }

    @Test func aGoodSignatureVerifies() throws {
        let header = WebhookSignature.sign(payload: payload, secret: secret, timestampSeconds: t)
        #expect(try WebhookSignature.verify(payload: payload, header: header, secret: secret, nowSeconds: t + 10) == t)
        #expect(try WebhookSignature.verify(payload: payload, header: header, secret: secret, nowSeconds: t - 10) == t)
        // Whitespace, an unknown scheme and a second (rotated-out) signature are tolerated.
        let v1 = header.split(separator: "=").last!
        let rotated = "t=\(t), v0=abc, v1=\(String(repeating: "0", count: 64)), v1=\(v1)"
        #expect(try WebhookSignature.verify(payload: payload, header: rotated, secret: secret, nowSeconds: t) == t)
    }

    private func denied(_ payload: [UInt8], _ header: String, secret: String = "whsec_test", now: Int64 = 1_700_000_000) -> DomainError? {
        refusal { () throws(DomainError) in try WebhookSignature.verify(payload: payload, header: header, secret: secret, nowSeconds: now) }
    }

    @Test func aTamperedPayloadIsDenied() {
        let header = WebhookSignature.sign(payload: payload, secret: secret, timestampSeconds: t)
        #expect(denied(Array(#"{"id":"evt_2"}"#.utf8), header)?.code == .permissionDenied)
        #expect(denied(payload + [0x20], header)?.code == .permissionDenied)
    }

    @Test func theWrongSecretIsDenied() {
        let header = WebhookSignature.sign(payload: payload, secret: "other", timestampSeconds: t)
        #expect(denied(payload, header)?.code == .permissionDenied)
        #expect(denied(payload, WebhookSignature.sign(payload: payload, secret: secret, timestampSeconds: t), secret: "")?.code == .permissionDenied)
    }

    @Test func timestampsOutsideTheToleranceAreDenied() {
        let header = WebhookSignature.sign(payload: payload, secret: secret, timestampSeconds: t)
        #expect(denied(payload, header, now: t + 301)?.code == .permissionDenied)
        #expect(denied(payload, header, now: t - 301)?.code == .permissionDenied)
        #expect(denied(payload, header, now: t + 300) == nil)
        // A re-signed timestamp without the matching MAC does not help.
        let forged = header.replacingOccurrences(of: "t=\(t)", with: "t=\(t + 1000)")
        #expect(denied(payload, forged, now: t + 1000)?.code == .permissionDenied)
    }

    @Test(arguments: [
        "", "garbage", "t=1700000000", "v1=c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925",
        "t=abc,v1=c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925",
        "t=-5,v1=c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925",
        "t=1700000000,t=1700000000,v1=c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925",
        "t=1700000000,v1=zz9214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925",
        "t=1700000000,v1=c89214",
        "t=99999999999999999999,v1=c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925",
    ])
    func malformedHeadersAreDenied(_ header: String) {
        let error = denied(payload, header)
        #expect(error?.code == .permissionDenied)
    }
}
