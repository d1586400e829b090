import CProtobufC
import Foundation
import SwiftProtobuf
import Testing
import ToteProto
import ToteProtoC
@testable import ToteProtoCInterop

/// protobuf-c (what controllers and the C client run) and swift-protobuf (what servers run)
/// must agree byte for byte on the wire-protocol messages.
@Suite("protobuf-c ⇄ swift-protobuf")
struct InteropTests {
    @Test("the linked protobuf-c is 1.4 or newer")
    func version() {
        #expect(ProtobufC.version.hasPrefix("1."))
    }

    @Test("CallHeaders built in C decode in Swift, field for field")
    func headersFromC() throws {
        var headers = Tote__V1__CallHeaders()
        tote__v1__call_headers__init(&headers)
        let bytes: [UInt8] = "tote.v1.Health/Check".withCString { method in
            "dev-storefront-key-0001".withCString { token in
                "corr-7".withCString { correlation in
                    headers.method = UnsafeMutablePointer(mutating: method)
                    headers.auth_token = UnsafeMutablePointer(mutating: token)
                    headers.correlation_id = UnsafeMutablePointer(mutating: correlation)
                    headers.timeout_micros = 1_500_000
                    return withUnsafePointer(to: &headers) { pointer in
                        pointer.withMemoryRebound(to: ProtobufCMessage.self, capacity: 1) { ProtobufC.pack($0) }
                    }
                }
            }
        }
        let decoded = try Tote_V1_CallHeaders(serializedBytes: bytes)
        #expect(decoded.method == "tote.v1.Health/Check")
        #expect(decoded.authToken == "dev-storefront-key-0001")
        #expect(decoded.correlationID == "corr-7")
        #expect(decoded.timeoutMicros == 1_500_000)
        var expected = Tote_V1_CallHeaders()
        expected.method = "tote.v1.Health/Check"
        expected.authToken = "dev-storefront-key-0001"
        expected.correlationID = "corr-7"
        expected.timeoutMicros = 1_500_000
        #expect(try expected.serializedBytes() as [UInt8] == bytes, "identical bytes both ways")
    }

    @Test("a CallStatus with typed details built in Swift decodes in C")
    func statusToC() throws {
        var status = Tote_V1_CallStatus()
        status.code = .failedPrecondition
        status.message = "only 3 left of SKU TSHIRT-M"
        var detail = Tote_V1_ErrorDetail()
        var state = Tote_V1_CurrentState()
        state.resourceType = "stock_item"
        state.resourceID = "TSHIRT-M@main"
        state.state = "available=3"
        state.version = Int64.max
        detail.currentState = state
        status.details = [detail]
        let unpacked = try ProtobufC.unpack(withUnsafePointer(to: tote__v1__call_status__descriptor) { $0 }, try status.serializedBytes())
        unpacked.withMemoryRebound(to: Tote__V1__CallStatus.self) { c in
            #expect(c.pointee.code == TOTE__V1__STATUS_CODE__STATUS_CODE_FAILED_PRECONDITION)
            #expect(String(cString: c.pointee.message) == "only 3 left of SKU TSHIRT-M")
            #expect(c.pointee.n_details == 1)
            let cDetail = c.pointee.details[0]!.pointee
            #expect(cDetail.kind_case == TOTE__V1__ERROR_DETAIL__KIND_CURRENT_STATE)
            #expect(String(cString: cDetail.current_state.pointee.state) == "available=3")
            #expect(cDetail.current_state.pointee.version == Int64.max)
        }
    }

    @Test("an echo payload with every byte value round-trips Swift → C → Swift")
    func bytesRoundTrip() throws {
        var request = Tote_V1_EchoRequest()
        request.payload = Data((0...255).map { UInt8($0) })
        request.delayMicros = UInt32.max
        request.failWith.code = -5
        let unpacked = try ProtobufC.unpack(withUnsafePointer(to: tote__v1__echo_request__descriptor) { $0 }, try request.serializedBytes())
        let repacked = ProtobufC.pack(UnsafePointer(unpacked.pointer))
        #expect(try Tote_V1_EchoRequest(serializedBytes: repacked) == request)
    }

    @Test("protobuf-c refuses malformed bytes with a typed error")
    func malformed() {
        #expect(throws: ProtobufC.UnpackError.self) {
            try ProtobufC.unpack(withUnsafePointer(to: tote__v1__call_headers__descriptor) { $0 }, [0x0A, 0xFF, 0xFF, 0xFF])
        }
    }
}
