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

    @Test func defaultsAreValidAndNonsenseIsNot() {
        #expect(UpsertLimits().validationError() == nil)
        #expect(UpsertLimits().maxRecords == 100_000 && UpsertLimits().maxBytes == 64 << 20)
        var limits = UpsertLimits()
        limits.maxRecords = 0
        #expect(limits.validationError()?.contains("--max-upsert-records") == true)
        limits = UpsertLimits()
        limits.maxBytes = -1
        #expect(limits.validationError()?.contains("--max-upsert-bytes") == true)
    }
}
