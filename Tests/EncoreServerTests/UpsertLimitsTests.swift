import Testing

@testable import EncoreServer
@testable import EncoreTransport

@Suite struct UpsertLimitsTests {
    @Test func refusesTheRecordPastEitherBoundNamingItsFlag() {
        var limits = UpsertLimits()
        limits.maxRecords = 3
        limits.maxBytes = 1000
        var total = 0
        for records in 0..<3 { #expect(limits.admit(100, records: records, total: &total, what: "offer") == nil) }
        let overRecords = limits.admit(1, records: 3, total: &total, what: "offer")
        #expect(overRecords?.code == .resourceExhausted)
        #expect(overRecords?.message.string.contains("more than 3 offer records") == true)
        #expect(overRecords?.message.string.contains("--max-upsert-records") == true)
        total = 0
        #expect(limits.admit(1000, records: 0, total: &total, what: "customer") == nil)
        let overBytes = limits.admit(1, records: 1, total: &total, what: "customer")
        #expect(overBytes?.code == .resourceExhausted)
        #expect(overBytes?.message.string.contains("more than 1000 bytes") == true)
        #expect(overBytes?.message.string.contains("--max-upsert-bytes") == true)
    }

    @Test func defaultsAreValidAndNonsenseIsNot() throws {
        #expect(UpsertLimits().maxRecords == 100_000 && UpsertLimits().maxBytes == 64 << 20)
        // The ranges are the settings table's (ServeSettings), for flags and file alike.
        var flags = ServeSettings.Layer.flags()
        flags.set("uploads.max_upsert_records", 0)
        #expect(throws: SettingError.self) { try ServeSettings.resolve(file: nil, flags: flags) }
        flags = ServeSettings.Layer.flags()
        flags.set("uploads.max_upsert_bytes", -1)
        let error = #expect(throws: SettingError.self) { try ServeSettings.resolve(file: nil, flags: flags) }
        #expect(error?.description.hasPrefix("--max-upsert-bytes must be an integer in 1...") == true)
    }
}

@Suite struct AdminUploadBudgetTests {
    @Test func boundsUploadsInFlightAndTheirBytesAndGivesThemBack() {
        let budget = AdminUploadBudget(maxUploads: 2, maxBytes: 100)
        var first = budget.begin()
        let second = budget.begin()
        #expect(first != nil && second != nil)
        #expect(budget.begin() == nil, "a third upload was admitted")
        #expect(first?.reserve(60) == nil)
        let refusal = second?.reserve(41)
        #expect(refusal?.code == .resourceExhausted)
        #expect(refusal?.message.string.contains("--max-admin-upload-bytes") == true)
        #expect(second?.reserve(40) == nil)
        #expect(budget.inFlight == (2, 100))
        first = nil
        #expect(budget.inFlight == (1, 40))
        #expect(budget.begin() != nil, "a finished upload's slot was not given back")
        #expect(budget.tooManyUploads.message.string.contains("--max-admin-uploads"))
        var flags = ServeSettings.Layer.flags()
        flags.set("uploads.max_admin_uploads", 0)
        let error = #expect(throws: SettingError.self) { try ServeSettings.resolve(file: nil, flags: flags) }
        #expect(error?.description.hasPrefix("--max-admin-uploads must be") == true)
    }
}
