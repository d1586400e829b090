import CLibPQ
import Foundation

/// The rows of one statement, in binary format. Owns the libpq result and clears it exactly once
/// when it goes away (`~Copyable`: it cannot be duplicated, so it cannot be cleared twice).
public struct PostgresResult: ~Copyable {
    let handle: OpaquePointer

    init(_ handle: OpaquePointer) {
        self.handle = handle
    }

    deinit {
        PQclear(handle)
    }

    public var rowCount: Int { Int(PQntuples(handle)) }
    public var columnCount: Int { Int(PQnfields(handle)) }

    /// Rows affected by an INSERT/UPDATE/DELETE (PQcmdTuples); 0 when not applicable.
    public var affectedRows: Int {
        Int(String(cString: PQcmdTuples(handle))) ?? 0
    }

    /// The index of a named column.
    public func column(_ name: String) throws(PostgresError) -> Int {
        let index = PQfnumber(handle, name)
        guard index >= 0 else { throw PostgresError(.unexpectedResult, "no column \(name) in the result") }
        return Int(index)
    }

    public func isNull(_ row: Int, _ column: Int) -> Bool {
        PQgetisnull(handle, Int32(row), Int32(column)) == 1
    }

    /// Borrows a value's raw bytes (valid only inside `body`).
    public func withBytes<R>(_ row: Int, _ column: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let length = Int(PQgetlength(handle, Int32(row), Int32(column)))
        guard let pointer = PQgetvalue(handle, Int32(row), Int32(column)) else {
            return try body(UnsafeRawBufferPointer(start: nil, count: 0))
        }
        return try body(UnsafeRawBufferPointer(start: pointer, count: length))
    }

    private func type(of column: Int) -> UInt32 { PQftype(handle, Int32(column)) }

    private func fail(_ row: Int, _ column: Int, _ expected: String) -> PostgresError {
        PostgresError(.unexpectedResult, "column \(column) row \(row): expected \(expected), got type OID \(type(of: column))\(isNull(row, column) ? " (NULL)" : "")")
    }

    /// An integer column (int2, int4, int8 or xid8).
    public func int64(_ row: Int, _ column: Int) throws(PostgresError) -> Int64 {
        guard !isNull(row, column) else { throw fail(row, column, "an integer") }
        let value: Int64? = withBytes(row, column) { bytes in
            switch bytes.count {
            case 2: Int64(Int16(bigEndian: bytes.loadUnaligned(as: Int16.self)))
            case 4: Int64(Int32(bigEndian: bytes.loadUnaligned(as: Int32.self)))
            case 8: Int64(bigEndian: bytes.loadUnaligned(as: Int64.self))
            default: nil
            }
        }
        guard let value else { throw fail(row, column, "an integer") }
        return value
    }

    /// An `xid8` (or non-negative int8) column.
    public func uint64(_ row: Int, _ column: Int) throws(PostgresError) -> UInt64 {
        UInt64(bitPattern: try int64(row, column))
    }

    public func string(_ row: Int, _ column: Int) throws(PostgresError) -> String {
        guard !isNull(row, column) else { throw fail(row, column, "text") }
        if type(of: column) == PostgresValue.OID.jsonb {
            return withBytes(row, column) { String(decoding: $0.dropFirst(), as: UTF8.self) }
        }
        return withBytes(row, column) { String(decoding: $0, as: UTF8.self) }
    }

    public func bytes(_ row: Int, _ column: Int) throws(PostgresError) -> [UInt8] {
        guard !isNull(row, column) else { throw fail(row, column, "bytea") }
        return withBytes(row, column) { Array($0) }
    }

    public func uuid(_ row: Int, _ column: Int) throws(PostgresError) -> UUID {
        guard !isNull(row, column), PQgetlength(handle, Int32(row), Int32(column)) == 16 else { throw fail(row, column, "uuid") }
        return withBytes(row, column) { UUID(bytes: $0) }
    }

    public func bool(_ row: Int, _ column: Int) throws(PostgresError) -> Bool {
        guard !isNull(row, column) else { throw fail(row, column, "bool") }
        return withBytes(row, column) { $0.first == 1 }
    }

    /// A `timestamptz` column as microseconds since the Unix epoch.
    public func timestampMicros(_ row: Int, _ column: Int) throws(PostgresError) -> Int64 {
        guard !isNull(row, column), PQgetlength(handle, Int32(row), Int32(column)) == 8 else { throw fail(row, column, "timestamptz") }
        let raw = withBytes(row, column) { Int64(bigEndian: $0.loadUnaligned(as: Int64.self)) }
        return raw + PostgresValue.postgresEpochOffsetMicros
    }
}
