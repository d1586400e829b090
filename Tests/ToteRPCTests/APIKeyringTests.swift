import Testing
@testable import ToteRPC

@Suite("API keys")
struct APIKeyringTests {
    @Test("parses role:key entries separated by commas or newlines, with comments")
    func parse() throws {
        let keyring = try APIKeyring(parsing: """
            # storefront BFF
            storefront: sf-0123456789abcdef
            OPERATOR:op-0123456789abcdef, controller:ct-0123456789abcdef  # warehouse
            """)
        #expect(keyring.count == 3)
        #expect(keyring.role(for: "sf-0123456789abcdef") == .storefront)
        #expect(keyring.role(for: "op-0123456789abcdef") == .operator)
        #expect(keyring.role(for: "ct-0123456789abcdef") == .controller)
        #expect(keyring.role(for: "") == nil)
        #expect(keyring.role(for: "sf-0123456789abcdeX") == nil)
    }

    @Test("refuses bad entries naming the entry and the problem", arguments: [
        ("storefront", "API keys, entry 1: expected role:key"),
        ("admin:0123456789abcdef0", "API keys, entry 1: unknown role 'admin' (expected storefront, operator or controller)"),
        ("\nstorefront:short", "API keys, entry 2: key for storefront is shorter than 16 characters"),
        ("storefront:0123456789abcdef,operator:0123456789abcdef", "API keys, entry 2: key listed for both storefront and operator"),
    ])
    func refuse(text: String, message: String) {
        #expect { try APIKeyring(parsing: text) } throws: { "\($0)" == message }
    }
}
