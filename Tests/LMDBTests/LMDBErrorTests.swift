import Testing
@testable import LMDB

@Suite("LMDB shim")
struct LMDBErrorTests {
    @Test("the linked LMDB is 0.9.x")
    func version() {
        let version = LMDBLibrary.version
        #expect(version.major == 0 && version.minor == 9)
    }

    @Test("return codes map to typed errors with LMDB's own text")
    func errors() throws {
        #expect(throws: Never.self) { try LMDBError.check(0, "mdb_txn_commit") }
        #expect(throws: LMDBError(code: .mapFull, operation: "mdb_put(catalog)")) { try LMDBError.check(LMDBError.Code.mapFull.rawValue, "mdb_put(catalog)") }
        let error = LMDBError(code: .notFound, operation: "mdb_get")
        #expect(error.description.hasPrefix("mdb_get: MDB_NOTFOUND"))
    }
}
