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
        if table.anyStatic { hashRequest(input, model: model) }
        let rules = table.offers.baseAddress!
        // The customer's history, read once: each offer it blocks gets this decision's stamp.
        // Stamps advance by 2 so that (stamp | 1) marks a group that passed.
        ruleStamp &+= 2
        let stamp = ruleStamp
        var anyBlocked = false
        if table.anyCounters && customerKey != 0,
            let touch = engine.counters.read(customer: customerKey, into: counterPayload.baseAddress!)
        {
            let records = CustomerCounters.summarize(
                payload: counterPayload.baseAddress!, touchSeconds: touch, nowSeconds: now,
                offers: historyOffers.baseAddress!, declinedAtMinute: historyDeclinedAtMinute.baseAddress!,
                recentShows: historyRecentShows.baseAddress!)
            let nowMinute = CustomerCounters.minute(now)
            for k in 0..<records {
                let offer = Int(historyOffers[k])
                guard offer >= 0, offer < table.count else { continue }
                let declined = historyDeclinedAtMinute[k]
                let suppressed = declined >= 0 && (nowMinute - declined) * 60 < rules[offer].suppressionSeconds
                let capped = rules[offer].cap > 0 && historyRecentShows[k] >= rules[offer].cap
                if suppressed || capped {
                    blockMarks[offer] = stamp
                    anyBlocked = true
                }
            }
        }
        let budgets = engine.budgets
        let day = OfferBudgets.day(now)
        let secondsIntoDay = ((now % 86400) + 86400) % 86400
        // Raw views, so the loop does not reload the workspace's buffers on every access.
        let candidates = self.candidates.baseAddress!
        let groupMarks = self.groupMarks.baseAddress!
        let blockMarks = self.blockMarks.baseAddress!
        let groups = table.groups.baseAddress!
        let checkPriority = table.anyPriority
        var kept = 0
        var topPriority = Int32.min
        var mixedPriorities = false
        for i in 0..<n {
            let index = candidates[i]
            let rule = rules + Int(index)
            let group = Int(rule.pointee.group)
            if group >= 0 {
                var mark = groupMarks[group]
                if mark | 1 != stamp | 1 {
                    mark =
                        passesStatic(groups + group, table: table, input, segments: segments, now: now)
                        ? stamp | 1 : stamp
                    groupMarks[group] = mark
                }
                if mark & 1 == 0 { continue }
            }
            if anyBlocked && blockMarks[Int(index)] == stamp { continue }
            if rule.pointee.budgetLimit >= 0 {
                let unit: OfferRules.Budget.Unit = rule.pointee.budgetOnAcceptances ? .acceptances : .shows
                if budgets.spent(offer: index, unit: unit, day: day)
                    >= OfferBudgets.pacedAllowance(limit: rule.pointee.budgetLimit, secondsIntoDay: secondsIntoDay)
                {
                    budgetCells.add(min(Int(index), DecisionWorkspace.offerMetricsCapacity))
                    continue
                }
            }
            if checkPriority {
                let priority = rule.pointee.priority
                if kept > 0 && priority != topPriority { mixedPriorities = true }
                topPriority = max(topPriority, priority)
            }
            candidates[kept] = index
            kept += 1
        }
        guard mixedPriorities else { return kept }
        var top = 0
        for i in 0..<kept where rules[Int(candidates[i])].priority == topPriority {
            candidates[top] = candidates[i]
            top += 1
        }
        return top
    }

    /// Hashes the request fields static rules compare (country, channel, device, categories).
    private func hashRequest(_ input: DecisionInput, model: ActiveModel) {
        let table = model.rules
        if table.usesCountry { requestHashes.country = RuleTable.hash(input.country) }
        if table.usesChannel { requestHashes.channel = RuleTable.hash(input.channel) }
        if table.usesDevice { requestHashes.device = RuleTable.hash(input.device) }
        let count = table.usesCategories ? min(input.categories.count, requestHashes.categories.count) : 0
        for i in 0..<count { requestHashes.categories[i] = RuleTable.hash(input.categories[i]) }
        requestHashes.categoryCount = count
    }

    private func passesStatic(
        _ pointer: UnsafeMutablePointer<RuleTable.Group>, table: RuleTable, _ input: DecisionInput,
        segments: UInt64, now: Int64
    ) -> Bool {
        let rule = pointer.pointee
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

}
