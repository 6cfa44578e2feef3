import CNNKernels

/// Stochastic gradient descent with optional momentum, dampening, Nesterov momentum and L2 weight
/// decay — PyTorch's `torch.optim.SGD`, update for update.
///
/// For each parameter p with gradient ∇, learning rate γ, weight decay λ (0 for parameters excluded
/// by name), momentum μ and dampening τ, at update t = 1, 2, ...:
///
///     g ← ∇ + λ·p
///     if μ ≠ 0:
///         b ← g                        if t = 1
///         b ← μ·b + (1 − τ)·g          otherwise
///         g ← g + μ·b   if Nesterov,   else g ← b
///     p ← p − γ·g
///
/// The momentum buffer b is the state slot `momentum_buffer` (kept only when μ ≠ 0). Note the
/// first step copies g into b without dampening, as PyTorch does. This is the form of momentum of
/// Sutskever et al. 2013, with the learning rate outside the buffer, which the ResNet recipe
/// (lr 0.1, momentum 0.9, weight decay 1e-4) assumes.
///
/// The update runs in the CNNKernels C target (`cnn_sgd_update`), in parallel over fixed chunks for
/// parameters of 32768 elements or more, with the same result for any thread count.
///
/// ```swift
/// let sgd = try SGD(parameters: model.namedParameters(), learningRate: 0.1, momentum: 0.9,
///                   weightDecay: 1e-4, weightDecayExclusion: .biasesAndNormalization)
/// ```
public final class SGD: Optimizer {
    /// The momentum factor μ (0 for plain SGD).
    public let momentum: Float
    /// The dampening τ applied to the gradient entering the momentum buffer (after the first step).
    public let dampening: Float
    /// Whether the Nesterov form g + μ·b is used.
    public let nesterov: Bool

    /// Creates an SGD optimizer.
    ///
    /// - Parameters:
    ///   - parameters: the parameters with their names, e.g. `model.namedParameters()`.
    ///   - learningRate: γ, ≥ 0.
    ///   - momentum: μ, ≥ 0.
    ///   - dampening: τ, in [0, 1].
    ///   - nesterov: use Nesterov momentum; requires μ > 0 and τ = 0.
    ///   - weightDecay: λ, ≥ 0 (L2 penalty added to the gradient).
    ///   - weightDecayExclusion: which parameters are not decayed.
    /// - Throws: ``CNNError/invalidArgument(_:)`` naming the offending value.
    public init(parameters: [(String, Variable)], learningRate: Float, momentum: Float = 0,
                dampening: Float = 0, nesterov: Bool = false, weightDecay: Float = 0,
                weightDecayExclusion: WeightDecayExclusion = .none) throws {
        try Optimizer.require(momentum.isFinite && momentum >= 0, "SGD: momentum must be finite and >= 0, got \(momentum)")
        try Optimizer.require(dampening >= 0 && dampening <= 1, "SGD: dampening must be in [0, 1], got \(dampening)")
        try Optimizer.require(!nesterov || (momentum > 0 && dampening == 0),
                              "SGD: Nesterov momentum requires momentum > 0 and dampening 0, got momentum \(momentum) and dampening \(dampening)")
        self.momentum = momentum
        self.dampening = dampening
        self.nesterov = nesterov
        try super.init(algorithmName: "SGD", parameters: parameters, learningRate: learningRate,
                       weightDecay: weightDecay, weightDecayExclusion: weightDecayExclusion)
    }

    /// `["momentum_buffer"]` when momentum is used, else none.
    public override var stateSlots: [String] { momentum != 0 ? ["momentum_buffer"] : [] }

    /// `momentum`, `dampening`, `nesterov`.
    public override var hyperparameters: [(String, Float)] {
        [("momentum", momentum), ("dampening", dampening), ("nesterov", nesterov ? 1 : 0)]
    }

    /// The SGD rule above on `count` elements (`cnn_sgd_update`).
    public override func update(parameter p: UnsafeMutablePointer<Float>, gradient d: UnsafePointer<Float>,
                                count: Int, state: [UnsafeMutablePointer<Float>], step: Int, weightDecay λ: Float) {
        let status = cnn_sgd_update(Int64(count), p, d, momentum != 0 ? state[0] : nil, learningRate, momentum,
                                    dampening, nesterov ? 1 : 0, λ, step == 1 ? 1 : 0)
        precondition(status == CNN_OK, "SGD: cnn_sgd_update failed with status \(status.rawValue)")
    }
}
