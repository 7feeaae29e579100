import Foundation
import Testing

@testable import EncoreServer

/// `encore serve`'s settings are resolved once: defaults, then the demo's, then the config file,
/// then the flags; one table gives keys, flags and ranges; errors name the source and the key.
@Suite struct ServeSettingsTests {
    static func file(_ json: String) throws -> ServeSettings.Layer {
        try ServeSettings.Layer.file(json: json, source: "t.json")
    }

    @Test func eachLaterSourceWinsKeyByKey() throws {
        let none = ServeSettings.Layer.flags()
        // The demo is served (no data file): its settings are over the defaults.
        #expect(try ServeSettings.resolve(file: nil, flags: none).engine.holdoutShare == 0.05)
        #expect(try ServeSettings.resolve(file: nil, flags: none).engine.rules.frequencyCapPerDay == 3)
        // The file over the demo, key by key: the demo's cap stays.
        let file = try Self.file(#"{"holdout": {"share": 0.2}, "listen": {"port": 6000}}"#)
        let fromFile = try ServeSettings.resolve(file: file, flags: none)
        #expect(fromFile.engine.holdoutShare == 0.2)
        #expect(fromFile.engine.rules.frequencyCapPerDay == 3)
        #expect(fromFile.transport.port == 6000)
        // The flags over the file.
        var flags = ServeSettings.Layer.flags()
        flags.set("holdout.share", 0.3)
        let fromFlags = try ServeSettings.resolve(file: file, flags: flags)
        #expect(fromFlags.engine.holdoutShare == 0.3)
        #expect(fromFlags.transport.port == 6000)
        // Not the demo: its settings do not apply, the defaults do.
        var catalog = ServeSettings.Layer.flags()
        catalog.set("data.catalog", "catalog.jsonl")
        let plain = try ServeSettings.resolve(file: nil, flags: catalog)
        #expect(plain.engine.holdoutShare == 0)
        #expect(plain.engine.rules.frequencyCapPerDay == 0)
        #expect(plain.transport.port == EncoreServer.Options().transport.port)
        // A data file named only in the config file also turns the demo off.
        let dataFile = try Self.file(#"{"data": {"catalog": "c.jsonl"}}"#)
        #expect(try ServeSettings.resolve(file: dataFile, flags: none).engine.holdoutShare == 0)
    }

    @Test func oneRangeForFileAndFlagAndTheErrorNamesWhereTheValueCameFrom() throws {
        let fromFile = #expect(throws: SettingError.self) { try Self.file(#"{"holdout": {"share": 2}}"#) }
        #expect(fromFile?.description == "config t.json: 'holdout.share' must be in 0.0...1.0, got 2")
        var flags = ServeSettings.Layer.flags()
        flags.set("holdout.share", 2.0)
        let fromFlag = #expect(throws: SettingError.self) { try ServeSettings.resolve(file: nil, flags: flags) }
        #expect(fromFlag?.description == "--holdout-share must be in 0.0...1.0, got 2.0")
        flags = ServeSettings.Layer.flags()
        flags.set("listen.port", 70000)
        let port = #expect(throws: SettingError.self) { try ServeSettings.resolve(file: nil, flags: flags) }
        #expect(port?.description == "--port must be an integer in 0...65535, got 70000")
        let portInFile = #expect(throws: SettingError.self) { try Self.file(#"{"listen": {"port": 70000}}"#) }
        #expect(portInFile?.key == "listen.port")
    }

    @Test func unknownKeysAndShapesAreRefusedNamingThem() throws {
        let section = #expect(throws: SettingError.self) { try Self.file(#"{"holdut": {}}"#) }
        #expect(section?.description.contains("unknown key 'holdut' (sections: admin, counters, data,") == true)
        let key = #expect(throws: SettingError.self) { try Self.file(#"{"rules": {"frequency_cap": 3}}"#) }
        #expect(key?.description.contains("unknown key 'rules.frequency_cap' (allowed: budgets,") == true)
        let type = #expect(throws: SettingError.self) { try Self.file(#"{"logs": {"dir": 3}}"#) }
        #expect(type?.description == "config t.json: 'logs.dir' must be a non-empty string, got 3")
        #expect(throws: SettingError.self) { try Self.file(#"{"holdout": 1}"#) }
        #expect(throws: SettingError.self) { try Self.file("[1]") }
        #expect(throws: SettingError.self) { try Self.file("{") }
        // A flag-only setting is no key of the file.
        let testing = #expect(throws: SettingError.self) { try Self.file(#"{"testing": {"instance_id": "abc"}}"#) }
        #expect(testing?.description.contains("unknown key 'testing'") == true)
        #expect(throws: SettingError.self) { try ServeSettings.Layer.file("/nonexistent/encore.json") }
    }

    @Test func rulesBetweenSettingsAreCheckedOnceNamingTheKeyAsItWasGiven() throws {
        var flags = ServeSettings.Layer.flags()
        flags.set("counters.durable_outcomes", true)
        let flag = #expect(throws: SettingError.self) { try ServeSettings.resolve(file: nil, flags: flags) }
        #expect(flag?.description.hasPrefix("--durable-outcomes needs --state-file") == true)
        let file = try Self.file(#"{"counters": {"durable_outcomes": true}}"#)
        let inFile = #expect(throws: SettingError.self) {
            try ServeSettings.resolve(file: file, flags: ServeSettings.Layer.flags())
        }
        #expect(inFile?.description.hasPrefix("config t.json: 'counters.durable_outcomes' needs --state-file") == true)
        flags = ServeSettings.Layer.flags()
        flags.set("listen.tls_cert", "cert.pem")
        let pair = #expect(throws: SettingError.self) { try ServeSettings.resolve(file: nil, flags: flags) }
        #expect(pair?.description.hasPrefix("--tls-cert and --tls-key must be given together") == true)
        flags = ServeSettings.Layer.flags()
        flags.set("data.demo", true)
        flags.set("data.catalog", "c.jsonl")
        #expect(throws: SettingError.self) { try ServeSettings.resolve(file: nil, flags: flags) }
        flags = ServeSettings.Layer.flags()
        flags.set("listen.port", 7000)
        flags.set("admin.port", 7000)
        let ports = #expect(throws: SettingError.self) { try ServeSettings.resolve(file: nil, flags: flags) }
        #expect(ports?.description.hasPrefix("--admin-port 7000 is also the data plane's --port") == true)
        let auth = try Self.file(#"{"admin": {"data_plane_auth": true}}"#)
        let noCredentials = #expect(throws: SettingError.self) {
            try ServeSettings.resolve(file: auth, flags: ServeSettings.Layer.flags())
        }
        #expect(noCredentials?.description.contains("'admin.data_plane_auth' is on but no") == true)
    }

    @Test func everyKeyAndFlagIsDocumented() throws {
        let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/configuration.md")
        let text = try String(contentsOf: docs, encoding: .utf8)
        for setting in ServeSettings.all {
            if setting.inFile {
                #expect(
                    text.contains("`\(setting.key)`") || text.contains("`\(setting.section).\(setting.name)`"),
                    "docs/configuration.md does not document \(setting.key)")
            }
            if let flag = setting.flag { #expect(text.contains("`\(flag)"), "docs/configuration.md lacks \(flag)") }
        }
        // Keys are unique (the table is the one definition).
        #expect(Set(ServeSettings.all.map(\.key)).count == ServeSettings.all.count)
    }
}
