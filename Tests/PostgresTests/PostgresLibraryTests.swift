import Testing
@testable import Postgres

@Suite("libpq shim")
struct PostgresLibraryTests {
    @Test("libpq 15 or newer, built thread-safe")
    func library() {
        #expect(PostgresLibrary.version >= 150000)
        #expect(PostgresLibrary.isThreadSafe)
    }

    @Test("connection strings are validated by libpq without connecting")
    func validate() {
        #expect(PostgresLibrary.validate(connectionString: "host=/tmp port=5432 dbname=tote") == nil)
        #expect(PostgresLibrary.validate(connectionString: "postgresql://u@localhost/db") == nil)
        let complaint = PostgresLibrary.validate(connectionString: "nonsense_option=1")
        #expect(complaint?.contains("nonsense_option") == true)
    }
}
