import EncoreModel
import EncoreStore

extension DecisionWorkspace {
    /// Removes from `candidates[0..<n]` every offer a business rule excludes for this request:
    /// order, customer and campaign-window restrictions, decline suppression and frequency caps
    /// (from the customer's counter entry), paced budgets, then keeps only the highest priority
    /// present. Returns the new count; the order of the survivors is kept. No allocation, no
    /// lock (the counter entry is read through its seqlock).
    func applyRules(
        count n: Int, _ input: DecisionInput, model: ActiveModel, segments: UInt64, customerKey: UInt64,
        nowSeconds now: Int64
    ) -> Int {
        let table = model.rules
        guard table.anyStatic || table.anyCounters || table.anyBudget || table.anyPriority else { return n }
        if table.anyStatic { hashRequest(input) }
        var historyCount = 0
        if table.anyCounters && customerKey != 0,
            let touch = engine.counters.read(customer: customerKey, into: counterPayload.baseAddress!)
        {
            historyCount = CustomerCounters.summarize(
                payload: counterPayload.baseAddress!, touchSeconds: touch, nowSeconds: now,
                offers: historyOffers.baseAddress!, declinedAtMinute: historyDeclinedAtMinute.baseAddress!,
                recentShows: historyRecentShows.baseAddress!)
        }
        let nowMinute = CustomerCounters.minute(now)
        let budgets = engine.budgets
        var kept = 0
        var topPriority = Int32.min
        var mixedPriorities = false
        for i in 0..<n {
            let index = candidates[i]
            let rule = table.offers[Int(index)]
            if rule.hasStatic && !passesStatic(rule, table: table, input, segments: segments, now: now) { continue }
            if historyCount > 0 && (rule.cap > 0 || rule.suppressionSeconds > 0)
                && blockedByHistory(index, rule, historyCount: historyCount, nowMinute: nowMinute)
            {
                continue
            }
            if let unit = rule.budgetUnit,
                budgets.spent(offer: index, unit: unit, atSeconds: now)
                    >= OfferBudgets.pacedAllowance(limit: rule.budgetLimit, atSeconds: now)
            {
                continue
            }
            if kept > 0 && rule.priority != topPriority { mixedPriorities = true }
            topPriority = max(topPriority, rule.priority)
            candidates[kept] = index
            kept += 1
        }
        guard mixedPriorities else { return kept }
        var top = 0
        for i in 0..<kept where table.offers[Int(candidates[i])].priority == topPriority {
            candidates[top] = candidates[i]
            top += 1
        }
        return top
    }

    /// Hashes the request fields static rules compare (country, channel, device, categories).
    private func hashRequest(_ input: DecisionInput) {
        requestHashes.country = RuleTable.hash(input.country)
        requestHashes.channel = RuleTable.hash(input.channel)
        requestHashes.device = RuleTable.hash(input.device)
        let count = min(input.categories.count, requestHashes.categories.count)
        for i in 0..<count { requestHashes.categories[i] = RuleTable.hash(input.categories[i]) }
        requestHashes.categoryCount = count
    }

    @inline(__always)
    private func passesStatic(
        _ rule: RuleTable.OfferRule, table: RuleTable, _ input: DecisionInput, segments: UInt64, now: Int64
    ) -> Bool {
        guard input.totalCents >= rule.minTotalCents, input.totalCents <= rule.maxTotalCents else { return false }
        guard now >= rule.startSeconds, now < rule.endSeconds else { return false }
        if rule.giftOnly && !input.isGift { return false }
        if rule.requiresSegment && segments & rule.segmentMask == 0 { return false }
        if !rule.countries.isEmpty && !table.contains(rule.countries, requestHashes.country) { return false }
        if !rule.channels.isEmpty && !table.contains(rule.channels, requestHashes.channel) { return false }
        if !rule.devices.isEmpty && !table.contains(rule.devices, requestHashes.device) { return false }
        if !rule.required.isEmpty {
            var found = false
            for i in 0..<requestHashes.categoryCount where table.contains(rule.required, requestHashes.categories[i]) {
                found = true
                break
            }
            if !found { return false }
        }
        if !rule.excluded.isEmpty {
            for i in 0..<requestHashes.categoryCount where table.contains(rule.excluded, requestHashes.categories[i]) {
                return false
            }
        }
        return true
    }

    /// True when the customer declined `index` within its suppression window, or was shown it
    /// `cap` times in the last 24 hours.
    @inline(__always)
    private func blockedByHistory(_ index: Int32, _ rule: RuleTable.OfferRule, historyCount: Int, nowMinute: Int64)
        -> Bool
    {
        for k in 0..<historyCount where historyOffers[k] == index {
            let declined = historyDeclinedAtMinute[k]
            if declined >= 0 && (nowMinute - declined) * 60 < rule.suppressionSeconds { return true }
            return rule.cap > 0 && historyRecentShows[k] >= rule.cap
        }
        return false
    }

    /// Drops candidates whose expected value is below their threshold (after scoring; keeps
    /// `candidates`, `rewards` and `scores` aligned). Returns the new count.
    func applyThreshold(count n: Int, model: ActiveModel) -> Int {
        let table = model.rules
        guard table.anyThreshold, model.snapshot != nil else { return n }
        var kept = 0
        for i in 0..<n {
            let index = candidates[i]
            let value = model.objective == .revenue ? rewards[i] * model.valueCents[Int(index)] : rewards[i]
            guard value >= table.offers[Int(index)].minExpectedValue else { continue }
            candidates[kept] = index
            rewards[kept] = rewards[i]
            scores[kept] = scores[i]
            kept += 1
        }
        return kept
    }
}
