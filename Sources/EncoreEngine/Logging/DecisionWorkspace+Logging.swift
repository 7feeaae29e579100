import EncoreModel

extension DecisionWorkspace {
    /// Encodes the decision into this thread's log ring (binary; the writer thread formats JSON).
    /// Layout: see `DecisionRecord.decode` in EncoreServer's LogWriter.
    func logDecision(_ input: DecisionInput, _ output: DecisionOutput, model: ActiveModel) {
        guard let log = engine.log, let ring = logRing else { return }
        var b = LogBuffer(base: log.scratch[threadIndex], capacity: DecisionLog.maxRecordBytes)
        b.u8(DecisionLog.decisionRecord)
        b.i64(nowMillis)
        b.u32(model.logNamesID)
        output.withDecisionID { b.string($0) }
        b.string(input.requestID)
        b.string(input.surface)
        b.string(input.customerID)
        b.u8(
            (output.knownCustomer ? 1 : 0) | (output.holdout ? 2 : 0) | (input.isGift ? 4 : 0)
                | (output.uniformFallback ? 8 : 0))
        b.string(input.orderID)
        b.i64(input.totalCents)
        b.string(input.currency)
        b.string(input.shippingMethod)
        b.string(input.channel)
        b.string(input.device)
        b.string(input.country)
        b.count16(input.items.count)
        for item in input.items {
            b.string(item.sku)
            b.string(item.category)
            b.i64(item.priceCents)
            b.u32(item.quantity)
        }
        b.count16(input.featureKeys.count)
        for k in 0..<input.featureKeys.count {
            b.string(input.featureKeys[k])
            b.f64(input.featureValues[k])
        }
        b.u64(lastSegments)
        b.count16(lastCustomerFeatures.count)
        for f in lastCustomerFeatures { b.f32(f) }
        let contextWidth = output.holdout || output.eligibleCount == 0 || model.snapshot == nil ? 0 : model.width
        b.count16(contextWidth)
        for j in 0..<contextWidth { b.f32(z[j]) }
        let n = output.holdout ? 0 : output.eligibleCount
        b.count16(n)
        for i in 0..<n { b.u32(UInt32(bitPattern: loggedCandidates[i])) }
        b.u8(UInt8(output.placementCount))
        for i in 0..<output.placementCount {
            let p = output.placement(i)
            b.u32(UInt32(bitPattern: p.offerIndex))
            b.u32(p.slot)
            b.f64(p.propensity)
            b.f64(p.score)
            b.f64(p.expectedValue)
        }
        b.f64(output.jointPropensity)
        _ = log.commit(b, thread: threadIndex)
        _ = ring
    }
}
