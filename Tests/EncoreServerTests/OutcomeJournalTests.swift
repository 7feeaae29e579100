import Foundation
import Testing

@testable import EncoreServer

@Suite struct OutcomeJournalTests {
    func records(_ n: Int) -> [UInt8] {
        var out = OutcomeJournal.magic
        for i in 0..<n {
            let decision = Array("decision-\(i)".utf8)
            let offer = Array("offer-\(i % 3)".utf8)
            decision.withUnsafeBytes { d in
                offer.withUnsafeBytes { o in
                    OutcomeJournal.encode(
                        sequence: UInt64(i + 1), nowMillis: 1_764_000_000_000 + Int64(i), outcome: Int32(1 + i % 4),
                        revenueCents: Int64(i * 100), decisionID: d, offerID: o, into: &out)
                }
            }
        }
        return out
    }

    func write(_ bytes: [UInt8]) throws -> String {
        let path = NSTemporaryDirectory() + "encore-journal-\(UUID().uuidString).wal-00000000000000000001"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func readsBackEveryRecordItWrote() throws {
        let path = try write(records(50))
        defer { unlink(path) }
        let (read, damaged) = try OutcomeJournal.read(segment: path)
        #expect(damaged == nil)
        #expect(read.count == 50)
        for (i, r) in read.enumerated() {
            #expect(r.sequence == UInt64(i + 1))
            #expect(r.outcome == Int32(1 + i % 4))
            #expect(r.revenueCents == Int64(i * 100))
            #expect(r.nowMillis == 1_764_000_000_000 + Int64(i))
            #expect(String(decoding: r.decisionID, as: UTF8.self) == "decision-\(i)")
            #expect(String(decoding: r.offerID, as: UTF8.self) == "offer-\(i % 3)")
        }
    }

    /// A crash mid-write leaves a torn last record: never acknowledged, so it is ignored, and
    /// every complete record before it is kept. A flipped byte stops the segment there too.
    @Test func stopsAtATornOrDamagedRecord() throws {
        let whole = records(10)
        for cut in [whole.count - 1, whole.count - 9, whole.count - 30] {
            let path = try write(Array(whole[0..<cut]))
            defer { unlink(path) }
            let (read, damaged) = try OutcomeJournal.read(segment: path)
            #expect(read.count == 9)
            #expect(damaged != nil)
        }
        var flipped = whole
        flipped[OutcomeJournal.magic.count + 4 + 10] ^= 0xFF  // inside the first record's body
        let path = try write(flipped)
        defer { unlink(path) }
        let (read, damaged) = try OutcomeJournal.read(segment: path)
        #expect(read.isEmpty)
        #expect(damaged == OutcomeJournal.magic.count)
    }

    @Test func refusesAFileThatIsNotAJournal() throws {
        let path = try write(Array("NOTAJOURNALFILE!".utf8))
        defer { unlink(path) }
        #expect(throws: (any Error).self) { try OutcomeJournal.read(segment: path) }
    }
}
