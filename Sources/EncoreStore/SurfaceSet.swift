/// A set of surfaces as a 5-bit mask (one bit per `Surface`); copying and testing it never
/// allocates.
public struct SurfaceSet: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt8

    public init(rawValue: UInt8) { self.rawValue = rawValue & SurfaceSet.allMask }

    /// The set holding exactly `surface`.
    public init(_ surface: Surface) { self.rawValue = surface.bit }

    /// The set holding every surface in `surfaces`.
    public init(_ surfaces: some Sequence<Surface>) {
        var raw: UInt8 = 0
        for s in surfaces { raw |= s.bit }
        self.rawValue = raw
    }

    private static let allMask: UInt8 = 0b1_1111

    /// Every surface (what an offer without a `surfaces` field is eligible on).
    public static let all = SurfaceSet(rawValue: allMask)

    /// Whether `surface` is in the set.
    @inline(__always)
    public func contains(_ surface: Surface) -> Bool { rawValue & surface.bit != 0 }

    /// The members in declaration order.
    public var surfaces: [Surface] { Surface.allCases.filter { contains($0) } }

    public var description: String { "[" + surfaces.map(\.rawValue).joined(separator: ",") + "]" }
}
