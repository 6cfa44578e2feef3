import CNNKernels

/// RMSprop (Hinton, Lecture 6e) with optional centering, momentum and L2 weight decay — PyTorch's
/// `torch.optim.RMSprop`.
///
/// For each parameter p with gradient ∇, learning rate γ, smoothing constant α, ε, weight decay λ
/// (0 for parameters excluded by name) and momentum μ, at each update (v, ḡ and b start at 0):
///
///     g ← ∇ + λ·p
///     v ← α·v + (1 − α)·g²
///     if centered:  ḡ ← α·ḡ + (1 − α)·g;   d ← √(v − ḡ²) + ε
///     else:         d ← √v + ε
///     if μ > 0:     b ← μ·b + g / d;   p ← p − γ·b
///     else:         p ← p − γ·g / d
///
/// State slots: `square_avg` (v), then `momentum_buffer` (b) when μ > 0, then `grad_avg` (ḡ) when
/// centered. There is no bias correction, so the first steps are large (v starts at 0), as in PyTorch.
///
/// The update runs in the CNNKernels C target (`cnn_rmsprop_update`), in parallel over fixed chunks
/// for parameters of 32768 elements or more, with the same result for any thread count.
public final class RMSprop: Optimizer {
    /// α, the decay of the squared-gradient average.
    public let alpha: Float
    /// ε, added to the denominator after the square root.
    public let epsilon: Float
    /// μ, the momentum factor (0 for none).
    public let momentum: Float
    /// Whether the gradient's variance (v − ḡ²) rather than its second moment normalises the step.
    public let centered: Bool

    /// Creates an RMSprop optimizer.
    ///
    /// - Parameters:
    ///   - parameters: the parameters with their names, e.g. `model.namedParameters()`.
    ///   - learningRate: γ, ≥ 0 (PyTorch's default 0.01).
    ///   - alpha: α in [0, 1).
    ///   - epsilon: ε > 0.
    ///   - weightDecay: λ ≥ 0, the L2 penalty added to the gradient.
    ///   - momentum: μ ≥ 0.
    ///   - centered: normalise by the estimated variance.
    ///   - weightDecayExclusion: which parameters are not decayed.
    /// - Throws: ``CNNError/invalidArgument(_:)`` naming the offending value.
    public init(parameters: [(String, Variable)], learningRate: Float = 0.01, alpha: Float = 0.99,
                epsilon: Float = 1e-8, weightDecay: Float = 0, momentum: Float = 0, centered: Bool = false,
                weightDecayExclusion: WeightDecayExclusion = .none) throws {
        try Optimizer.require(alpha >= 0 && alpha < 1, "RMSprop: alpha must be in [0, 1), got \(alpha)")
        try Optimizer.require(epsilon.isFinite && epsilon > 0, "RMSprop: epsilon must be finite and > 0, got \(epsilon)")
        try Optimizer.require(momentum.isFinite && momentum >= 0, "RMSprop: momentum must be finite and >= 0, got \(momentum)")
        self.alpha = alpha
        self.epsilon = epsilon
        self.momentum = momentum
        self.centered = centered
        try super.init(algorithmName: "RMSprop", parameters: parameters, learningRate: learningRate,
                       weightDecay: weightDecay, weightDecayExclusion: weightDecayExclusion)
    }

    /// `square_avg`, then `momentum_buffer` (momentum > 0), then `grad_avg` (centered).
    public override var stateSlots: [String] {
        ["square_avg"] + (momentum > 0 ? ["momentum_buffer"] : []) + (centered ? ["grad_avg"] : [])
    }

    /// `alpha`, `eps`, `momentum`, `centered`.
    public override var hyperparameters: [(String, Float)] {
        [("alpha", alpha), ("eps", epsilon), ("momentum", momentum), ("centered", centered ? 1 : 0)]
    }

    /// The RMSprop rule above on `count` elements (`cnn_rmsprop_update`).
    public override func update(parameter p: UnsafeMutablePointer<Float>, gradient d: UnsafePointer<Float>,
                                count: Int, state: [UnsafeMutablePointer<Float>], step: Int, weightDecay λ: Float) {
        let status = cnn_rmsprop_update(Int64(count), p, d, state[0], momentum > 0 ? state[1] : nil,
                                        centered ? state[state.count - 1] : nil, learningRate, alpha, epsilon,
                                        λ, momentum)
        precondition(status == CNN_OK, "RMSprop: cnn_rmsprop_update failed with status \(status.rawValue)")
    }
}
