import EncoreModel
import EncoreStore
import EncoreSupport

#if canImport(Glibc)
    import Glibc
#endif

extension DecisionWorkspace {
    /// Evaluates the model's compiled feature program into `z` (features, then interactions).
    func evaluateFeatures(_ input: DecisionInput, surface: Surface, customer: CustomerView, model: ActiveModel) {
        let program = model.program
        let customerFeatures = customer.features
        let segments = customer.segments
        let known = customer.isKnown
        // Hash each categorical field of the request once.
        let shipping = StableHash.hash(input.shippingMethod)
        let channel = StableHash.hash(input.channel)
        let device = StableHash.hash(input.device)
        let country = StableHash.hash(input.country)
        let surfaceHash = StableHash.hash(input.surface)
        let totalLog = Float(log1p(Double(max(input.totalCents, 0)) / 100))
        let itemsLog = Float(log1p(Double(max(input.itemQuantity, 0))))
        var j = 0
        for op in program.ops {
            let value: Float
            switch op {
            case .bias: value = 1
            case .constant(let c): value = c
            case .totalLog: value = totalLog
            case .itemsLog: value = itemsLog
            case .isGift: value = input.isGift ? 1 : 0
            case .category(let h):
                var hit: Float = 0
                for category in input.categories where StableHash.hash(category) == h {
                    hit = 1
                    break
                }
                value = hit
            case .shipping(let h): value = shipping == h ? 1 : 0
            case .channel(let h): value = channel == h ? 1 : 0
            case .device(let h): value = device == h ? 1 : 0
            case .country(let h): value = country == h ? 1 : 0
            case .surface(let h): value = surfaceHash == h ? 1 : 0
            case .customerKnown: value = known ? 1 : 0
            case .customer(let column): value = column < customerFeatures.count ? customerFeatures[column] : 0
            case .segment(let bit): value = segments & (1 << UInt64(bit)) != 0 ? 1 : 0
            case .request(let h):
                var found: Float = 0
                for k in 0..<input.featureKeys.count where StableHash.hash(input.featureKeys[k]) == h {
                    found = Float(input.featureValues[k])
                }
                value = found
            case .customerColumn, .segmentNamed: value = 0
            }
            z[j] = value
            j += 1
        }
        // A product of two float32 features can overflow: saturate it so the context vector
        // (scored and logged) stays finite.
        let limit = Float.greatestFiniteMagnitude
        for pair in program.interactions {
            z[j] = max(-limit, min(limit, z[pair.first] * z[pair.second]))
            j += 1
        }
        while j < model.paddedWidth {
            z[j] = 0
            j += 1
        }
    }

    /// Scores the first `count` candidates: raw score (dot product + bias) and reward (link).
    /// With a relevance threshold in the rules, candidates whose expected value is below their
    /// minimum are dropped on the way (the survivors keep their order and the dropped ones are
    /// moved behind them, so the first `count` entries stay the eligible set). Returns the count
    /// left. Sets `scoresFinite` to whether every raw score was finite (float32 sums of extreme
    /// features and weights can overflow); when it is false the scores must not be used.
    func score(count: Int, model: ActiveModel) -> Int {
        scoresFinite = true
        guard model.snapshot != nil else {
            for i in 0..<count {
                scores[i] = 0
                rewards[i] = 0
            }
            return count
        }
        let width = model.paddedWidth
        let threshold = model.rules.anyThreshold
        let rules = model.rules.offers.baseAddress!
        let revenue = model.objective == .revenue
        let logistic = model.link == .logistic
        let candidates = self.candidates.baseAddress!
        let scores = self.scores.baseAddress!
        let rewards = self.rewards.baseAddress!
        var kept = 0
        // Sum of the raw scores: finite exactly when every one is (each is a float32 value, so
        // a sum of finite ones cannot overflow a Double). One add per candidate.
        var check = 0.0
        model.rows.withUnsafeBufferPointer { rows in
            model.biases.withUnsafeBufferPointer { biases in
                model.valueCents.withUnsafeBufferPointer { cents in
                    let zBase = UnsafeRawPointer(z.baseAddress!)
                    let rowsBase = UnsafeRawPointer(rows.baseAddress!)
                    for i in 0..<count {
                        let offer = Int(candidates[i])
                        var accumulator = SIMD8<Float>()
                        var k = 0
                        while k < width {
                            let a = zBase.loadUnaligned(fromByteOffset: k * 4, as: SIMD8<Float>.self)
                            let b = rowsBase.loadUnaligned(
                                fromByteOffset: (offer * width + k) * 4, as: SIMD8<Float>.self)
                            accumulator += a * b
                            k += 8
                        }
                        let raw = Double(accumulator.sum() + biases[offer])
                        check += raw
                        let reward = logistic ? 1 / (1 + exp(-raw)) : raw
                        if threshold && (revenue ? reward * cents[offer] : reward) < rules[offer].minExpectedValue {
                            continue
                        }
                        // Swap rather than overwrite: dropped candidates stay behind the kept ones.
                        candidates[i] = candidates[kept]
                        candidates[kept] = Int32(truncatingIfNeeded: offer)
                        scores[kept] = raw
                        rewards[kept] = reward
                        kept += 1
                    }
                }
            }
        }
        scoresFinite = check.isFinite
        return kept
    }

    /// Slot 1 given slot 0's offer `first`: adds the slot-1 model's bias of each of the first
    /// `count` candidates and its pair term with `first` to its raw score (in float32, as
    /// `encore.learn.slates` does) and recomputes its reward. The scores stay finite: each was a
    /// finite float32 and the two terms are at most 1e6 each, far below half the spacing of
    /// float32 values near its largest (about 1e31), so no sum can round to infinity.
    func conditionSlot1(count: Int, on first: Int32, _ table: ActiveModel.Slot1Table, logistic: Bool) {
        let row = Int(table.rowOf[Int(first)])
        table.biases.withUnsafeBufferPointer { biases in
            table.rowOf.withUnsafeBufferPointer { rowOf in
                table.pairs.withUnsafeBufferPointer { pairs in
                    for i in 0..<count {
                        let c = Int(candidates[i])
                        var raw = Float(scores[i]) + biases[c]
                        let column = Int(rowOf[c])
                        if row >= 0 && column >= 0 { raw += pairs[row * table.offers + column] }
                        let score = Double(raw)
                        scores[i] = score
                        rewards[i] = logistic ? 1 / (1 + exp(-score)) : score
                    }
                }
            }
        }
    }
}
