/// Divides the learning rate when a monitored metric stops improving — PyTorch's
/// `ReduceLROnPlateau`, the classic ResNet recipe ("the learning rate ... is divided by 10 when the
/// error plateaus", He et al. 2016).
///
/// Call ``step(metric:)`` once per epoch with the validation metric (loss or error for mode
/// ``Mode-swift.enum/min``, accuracy for ``Mode-swift.enum/max``). With `best` the best metric so far
/// (starting at +∞ for min, −∞ for max), threshold θ, factor f:
///
///     better(a) = a < best·(1 − θ)   (min, relative)     a < best − θ   (min, absolute)
///                 a > best·(1 + θ)   (max, relative)     a > best + θ   (max, absolute)
///     if better(metric):  best ← metric;  badEpochs ← 0     else badEpochs ← badEpochs + 1
///     if cooldownCounter > 0:  cooldownCounter ← cooldownCounter − 1;  badEpochs ← 0
///     if badEpochs > patience:
///         new ← max(lr · f, minimumLearningRate);  if lr − new > ε (1e-8): lr ← new
///         cooldownCounter ← cooldown;  badEpochs ← 0
///
/// So with patience 10 the rate drops on the 11th epoch in a row without improvement, and after a
/// drop `cooldown` epochs pass during which bad epochs are not counted. A NaN metric is never better.
public final class ReduceLROnPlateau {
    /// Whether a lower or a higher metric is better.
    public enum Mode: String, Codable, Sendable {
        /// Lower is better (loss, error rate).
        case min
        /// Higher is better (accuracy).
        case max
    }

    /// How the threshold θ compares a metric with the best so far.
    public enum ThresholdMode: String, Codable, Sendable {
        /// Better means better than best by the fraction θ of best.
        case relative
        /// Better means better than best by θ.
        case absolute
    }

    /// What a plateau scheduler needs to resume (the optimizer's rate is saved with the optimizer).
    ///
    /// `best` is ±∞ before the first step; a `JSONEncoder` needs a
    /// `nonConformingFloatEncodingStrategy` to write it.
    public struct State: Codable, Equatable, Sendable {
        /// The best metric so far.
        public var best: Double
        /// Consecutive epochs without improvement.
        public var badEpochs: Int
        /// Epochs of cooldown left.
        public var cooldownCounter: Int
        /// The number of ``ReduceLROnPlateau/step(metric:)`` calls so far.
        public var epoch: Int

        /// Creates a state.
        public init(best: Double, badEpochs: Int, cooldownCounter: Int, epoch: Int) {
            self.best = best
            self.badEpochs = badEpochs
            self.cooldownCounter = cooldownCounter
            self.epoch = epoch
        }
    }

    /// The optimizer whose ``Optimizer/learningRate`` this scheduler reduces.
    public let optimizer: Optimizer
    /// Whether lower or higher is better.
    public let mode: Mode
    /// f, the factor applied at each reduction, in (0, 1).
    public let factor: Double
    /// The number of epochs without improvement tolerated before a reduction.
    public let patience: Int
    /// θ, the least improvement that counts.
    public let threshold: Double
    /// How θ is applied.
    public let thresholdMode: ThresholdMode
    /// The number of epochs after a reduction during which bad epochs are not counted.
    public let cooldown: Int
    /// The rate is never reduced below this.
    public let minimumLearningRate: Double
    /// ε: a reduction smaller than this is not applied (PyTorch's `eps`, 1e-8).
    public let epsilon: Double
    /// The current counters and best metric.
    public private(set) var state: State

    /// Creates the scheduler with PyTorch's defaults.
    /// - Throws: ``CNNError/invalidArgument(_:)`` when f is not in (0, 1), patience, cooldown,
    ///   θ, the minimum rate or ε is negative, or a value is not finite.
    public init(optimizer: Optimizer, mode: Mode = .min, factor: Double = 0.1, patience: Int = 10,
                threshold: Double = 1e-4, thresholdMode: ThresholdMode = .relative, cooldown: Int = 0,
                minimumLearningRate: Double = 0, epsilon: Double = 1e-8) throws {
        func require(_ ok: Bool, _ message: String) throws {
            if !ok { throw CNNError.invalidArgument("ReduceLROnPlateau: \(message)") }
        }
        try require(factor > 0 && factor < 1, "factor must be in (0, 1), got \(factor)")
        try require(patience >= 0, "patience must be >= 0, got \(patience)")
        try require(threshold.isFinite && threshold >= 0, "threshold must be finite and >= 0, got \(threshold)")
        try require(cooldown >= 0, "cooldown must be >= 0, got \(cooldown)")
        try require(minimumLearningRate.isFinite && minimumLearningRate >= 0,
                    "minimum learning rate must be finite and >= 0, got \(minimumLearningRate)")
        try require(epsilon.isFinite && epsilon >= 0, "epsilon must be finite and >= 0, got \(epsilon)")
        self.optimizer = optimizer
        self.mode = mode
        self.factor = factor
        self.patience = patience
        self.threshold = threshold
        self.thresholdMode = thresholdMode
        self.cooldown = cooldown
        self.minimumLearningRate = minimumLearningRate
        self.epsilon = epsilon
        self.state = State(best: mode == .min ? .infinity : -.infinity, badEpochs: 0, cooldownCounter: 0, epoch: 0)
    }

    /// Whether `metric` improves on `best` by the threshold.
    public func isBetter(_ metric: Double, than best: Double) -> Bool {
        switch (mode, thresholdMode) {
        case (.min, .relative): return metric < best * (1 - threshold)
        case (.min, .absolute): return metric < best - threshold
        case (.max, .relative): return metric > best * (threshold + 1)
        case (.max, .absolute): return metric > best + threshold
        }
    }

    /// Records one epoch's metric and reduces the optimizer's rate if it has plateaued.
    /// - Returns: whether the rate was reduced.
    @discardableResult
    public func step(metric: Double) -> Bool {
        state.epoch += 1
        if isBetter(metric, than: state.best) {
            state.best = metric
            state.badEpochs = 0
        } else {
            state.badEpochs += 1
        }
        if state.cooldownCounter > 0 {
            state.cooldownCounter -= 1
            state.badEpochs = 0
        }
        guard state.badEpochs > patience else { return false }
        state.cooldownCounter = cooldown
        state.badEpochs = 0
        let old = Double(optimizer.learningRate)
        let new = Swift.max(old * factor, minimumLearningRate)
        guard old - new > epsilon else { return false }
        optimizer.learningRate = Float(new)
        return true
    }

    /// Restores a saved state (the optimizer's rate comes from its own state dictionary).
    /// - Throws: ``CNNError/invalidArgument(_:)`` for negative counters or a NaN best; the
    ///   scheduler is then unchanged.
    public func load(_ saved: State) throws {
        guard saved.badEpochs >= 0, saved.cooldownCounter >= 0, saved.epoch >= 0, !saved.best.isNaN else {
            throw CNNError.invalidArgument("ReduceLROnPlateau.load: invalid state \(saved)")
        }
        state = saved
    }
}
