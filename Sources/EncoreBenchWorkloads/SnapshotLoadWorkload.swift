import EncoreModel

/// SnapshotFile.read (EncoreModel) of a 50-offer x 64-feature snapshot's bytes, unsigned:
/// parse, validate and build the ModelSnapshot.
public final class SnapshotLoadWorkload: @unchecked Sendable {
    /// The snapshot file's bytes.
    public let bytes: [UInt8]

    /// Writes the fixture snapshot to bytes and reads it back once. Throws when either fails.
    public init() throws {
        bytes = try SnapshotFile.write(Fixtures.snapshot())
        _ = try SnapshotFile.read(bytes)
    }

    /// One complete read and validation; returns the snapshot and its metadata.
    @inline(__always)
    public func read() throws(ModelError) -> (ModelSnapshot, SnapshotFile.Metadata) {
        try SnapshotFile.read(bytes)
    }
}
