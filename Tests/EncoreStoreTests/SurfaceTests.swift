import Testing

@testable import EncoreStore

@Suite struct SurfaceTests {
    private func parse(_ s: String) -> Surface? {
        var s = s
        return s.withUTF8 { Surface(utf8: UnsafeRawBufferPointer($0)) }
    }

    @Test func parsesEveryWireSpellingFromBytes() {
        for surface in Surface.allCases {
            #expect(parse(surface.rawValue) == surface)
        }
        #expect(parse("thank_you") == .thankYou)
    }

    @Test func rejectsNearMissesAndOtherCase() {
        for s in ["", "Cart", "carts", "car", "thankyou", "thank-you", "emails", "confirmatio", "paymenT"] {
            #expect(parse(s) == nil, "\(s)")
        }
    }

    @Test func surfaceSetHoldsExactlyItsMembers() {
        let set = SurfaceSet([.cart, .confirmation])
        #expect(set.contains(.cart))
        #expect(set.contains(.confirmation))
        #expect(!set.contains(.payment))
        #expect(!set.contains(.email))
        #expect(set.surfaces == [.cart, .confirmation])
        #expect(SurfaceSet.all.surfaces == Surface.allCases)
        #expect(Set(Surface.allCases.map(\.bit)).count == 5)
    }
}
