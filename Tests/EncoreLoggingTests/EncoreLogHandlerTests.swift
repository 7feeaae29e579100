import Foundation
import Logging
import Testing

@testable import EncoreLogging

@Suite struct EncoreLogHandlerTests {
    /// 2026-12-01T12:06:43.123Z
    let now: Int64 = 1_796_126_803_123_456_789

    @Test func textLineKeepsTheEncorePrefixAfterTheTimestamp() {
        let info = EncoreLogHandler.format(
            level: .info, label: "encore", message: "listening on 127.0.0.1:50051 (h2c, 2 threads)",
            metadata: ["port": "50051", "plane": "data"], format: .text, nowNanos: now)
        #expect(
            info
                == "2026-12-01T12:06:43.123Z encore: listening on 127.0.0.1:50051 (h2c, 2 threads) plane=data port=50051\n"
        )
        let warning = EncoreLogHandler.format(
            level: .warning, label: "encore", message: "drain deadline passed", metadata: [:], format: .text,
            nowNanos: now)
        #expect(warning == "2026-12-01T12:06:43.123Z encore: warning: drain deadline passed\n")
        let error = EncoreLogHandler.format(
            level: .error, label: "encore", message: "x", metadata: ["peer": "a b"], format: .text, nowNanos: now)
        #expect(error == "2026-12-01T12:06:43.123Z encore: error: x peer=\"a b\"\n")
    }

    @Test func jsonLineIsOneValidObjectWithLevelTimestampAndMetadata() throws {
        let message = "quote \" backslash \\ newline \n tab \t bell \u{07} é 😀"
        let line = EncoreLogHandler.format(
            level: .warning, label: "encore", message: message,
            metadata: [
                "peer": "127.0.0.1:5", "suppressed": "3", "msg": "clash", "list": ["a", "b"],
                "nested": ["k": "v"],
            ], format: .json, nowNanos: now)
        #expect(line.hasSuffix("}\n") && line.filter { $0 == "\n" }.count == 1)
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["ts"] as? String == "2026-12-01T12:06:43.123Z")
        #expect(object["level"] as? String == "warning")
        #expect(object["logger"] as? String == "encore")
        #expect(object["msg"] as? String == message)
        #expect(object["meta_msg"] as? String == "clash")
        #expect(object["peer"] as? String == "127.0.0.1:5")
        #expect(object["list"] as? [String] == ["a", "b"])
        #expect(object["nested"] as? [String: String] == ["k": "v"])
    }

    @Test func timestampPadsEveryField() {
        #expect(EncoreLogHandler.timestamp(0) == "1970-01-01T00:00:00.000Z")
        #expect(EncoreLogHandler.timestamp(1_000_000_000 * 86_400 * 31 + 7_000_000) == "1970-02-01T00:00:00.007Z")
    }

    @Test func levelNamesParseCaseInsensitively() {
        #expect(EncoreLogHandler.level(named: "TRACE") == .trace)
        #expect(EncoreLogHandler.level(named: "critical") == .critical)
        #expect(EncoreLogHandler.level(named: "verbose") == nil)
    }
}
