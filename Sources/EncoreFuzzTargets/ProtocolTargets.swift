import EncoreProtocol
import SwiftProtobuf

/// The hand-written hot-path decoders against SwiftProtobuf's generated types. The decoders
/// promise SwiftProtobuf's verdicts and values exactly, so any disagreement is a problem. Where
/// they legitimately differ, the comparison allows it:
/// - `DecideRequestDecoder` stores at most 64 candidates, 128 items and 128 feature keys and
///   only counts the rest (Encore refuses more than 128 items with INVALID_ARGUMENT later, in
///   the service); the comparison checks the counts and the stored prefix.
/// - Both refuse inputs of 2 GiB or more, which SwiftProtobuf might accept; libFuzzer inputs are
///   far smaller, so that never arises here.
/// - Field length limits (`RequestLimits`) are the service's, after decoding: not compared.
enum ProtocolTargets {
    /// One decoder reused for every input, as the server reuses one per reactor, so state left
    /// over from a previous input is caught too.
    static let decideRequest: @Sendable () -> FuzzTarget.Check = {
        var decoder = DecideRequestDecoder()
        return { buffer in
            let bytes = Array(buffer)
            let result = differentialDecide(bytes, &decoder)
            if result.swiftProtobufAccepted != result.decoderAccepted {
                return
                    "SwiftProtobuf accepted: \(result.swiftProtobufAccepted), DecideRequestDecoder accepted: \(result.decoderAccepted)"
            }
            if let mismatch = result.mismatch { return "values differ: \(mismatch)" }
            return nil
        }
    }

    static let outcomeRequest: @Sendable () -> FuzzTarget.Check = {
        var decoder = OutcomeRequestDecoder()
        return { buffer in
            let bytes = Array(buffer)
            let message = try? Encore_V1_OutcomeRequest(serializedBytes: bytes)
            return bytes.withUnsafeBytes { raw -> String? in
                var accepted = true
                do { try decoder.decode(raw) } catch { accepted = false }
                guard let message, accepted else {
                    return (message != nil) == accepted
                        ? nil : "SwiftProtobuf accepted: \(message != nil), OutcomeRequestDecoder accepted: \(accepted)"
                }
                func same(_ span: ByteSpan, _ string: String) -> Bool {
                    Array(span.bytes(in: raw)) == Array(string.utf8)
                }
                if !same(decoder.decisionID, message.decisionID) { return "decision_id differs" }
                if !same(decoder.offerID, message.offerID) { return "offer_id differs" }
                if Int(decoder.outcome) != message.outcome.rawValue {
                    return "outcome \(decoder.outcome) != \(message.outcome.rawValue)"
                }
                if decoder.revenueCents != message.revenueCents {
                    return "revenue_cents \(decoder.revenueCents) != \(message.revenueCents)"
                }
                return nil
            }
        }
    }
}
