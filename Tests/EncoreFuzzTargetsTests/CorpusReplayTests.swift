import EncoreProtocol
import Foundation
import SwiftProtobuf
import Testing

@testable import EncoreFuzzTargets

/// Replays every checked-in fuzz input (Fuzz/Corpus/<target>, the seeds, and
/// Fuzz/Regressions/<target>, the inputs of crashes that were fixed) through the fuzz target's
/// own check: a problem it reports fails the test, a trap crashes it.
@Suite struct CorpusReplayTests {
    static let fuzzDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz")

    static func inputs(_ kind: String, _ target: String) -> [URL] {
        let directory = fuzzDirectory.appendingPathComponent(kind).appendingPathComponent(target)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { directory.appendingPathComponent($0) }
    }

    @Test(arguments: FuzzTarget.all.map(\.name))
    func seedsAndRegressionsPassTheirTarget(name: String) throws {
        let target = try #require(FuzzTarget.named(name))
        let check = target.makeCheck()
        let seeds = Self.inputs("Corpus", name)
        // Every target has seeds checked in: an empty directory would make this test vacuous.
        #expect(seeds.count >= 3, "Fuzz/Corpus/\(name) holds \(seeds.count) inputs")
        for url in seeds + Self.inputs("Regressions", name) {
            let bytes = try [UInt8](Data(contentsOf: url))
            let problem = bytes.withUnsafeBytes { check($0) }
            #expect(problem == nil, "\(url.lastPathComponent): \(problem ?? "")")
        }
    }

    /// The checked-in corpus directories are exactly the targets (scripts/fuzz.sh --list lists
    /// the directories), each target once.
    @Test func everyTargetIsListedOnceAndHasACorpusDirectory() throws {
        let names = FuzzTarget.all.map(\.name)
        #expect(Set(names).count == names.count)
        #expect(
            names == [
                "decide-request", "outcome-request", "grpc-frames", "http2-stream", "snapshot", "catalog-jsonl",
                "customers-csv", "customers-jsonl", "config", "rule-state",
            ])
        let directories = try FileManager.default.contentsOfDirectory(
            atPath: Self.fuzzDirectory.appendingPathComponent("Corpus").path)
        #expect(Set(directories.filter { !$0.hasPrefix(".") }) == Set(names))
    }

    /// The http2-stream target's output check does catch a partial frame and an oversized one.
    @Test func wellFramedRefusesPartialAndOversizedFrames() {
        #expect(TransportTargets.wellFramed([0, 0, 0, 4, 1, 0, 0, 0, 0]) == nil)
        #expect(TransportTargets.wellFramed([0, 0, 2, 0, 0, 0, 0, 0, 1, 0xAA]) != nil)
        #expect(TransportTargets.wellFramed([0, 0, 0, 4]) != nil)
        #expect(
            TransportTargets.wellFramed([0, 0x40, 1, 0, 0, 0, 0, 0, 1] + [UInt8](repeating: 0, count: 16_385)) != nil)
    }

    /// The decide-request differential reports a value difference: a decoder fed other bytes
    /// than SwiftProtobuf's message disagrees on the surface.
    @Test func theDecideDifferentialReportsAMismatch() throws {
        var decoder = DecideRequestDecoder()
        let cart: [UInt8] = [0x0A, 0x04, 0x63, 0x61, 0x72, 0x74]
        let gift: [UInt8] = [0x0A, 0x04, 0x67, 0x69, 0x66, 0x74]
        let message = try Encore_V1_DecideRequest(serializedBytes: gift)
        let mismatch = cart.withUnsafeBytes { buffer -> String? in
            try? decoder.decode(buffer)
            return decideRequestMismatch(decoder, message, buffer)
        }
        #expect(mismatch?.hasPrefix("surface") == true)
    }
}
