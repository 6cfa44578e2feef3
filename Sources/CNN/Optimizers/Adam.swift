import CNNKernels

/// Adam (Kingma & Ba 2015) with L2 weight decay and optional AMSGrad — PyTorch's `torch.optim.Adam`.
///
/// For each parameter p with gradient ∇, learning rate γ, betas β₁ and β₂, ε, weight decay λ (0 for
/// parameters excluded by name), at update t = 1, 2, ... (m, v and v̂ start at 0):
///
///     g ← ∇ + λ·p
///     m ← β₁·m + (1 − β₁)·g
///     v ← β₂·v + (1 − β₂)·g²
///     v̂ ← max(v̂, v)                     (AMSGrad only; then v̂ replaces v below)
///     p ← p − (γ / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
///
/// The bias corrections 1 − β₁ᵗ and 1 − β₂ᵗ are computed in double precision, and ε is added after
/// the correction of √v, exactly as PyTorch orders it. State slots: `exp_avg` (m), `exp_avg_sq` (v),
/// and `max_exp_avg_sq` (v̂) with AMSGrad.
///
/// The update runs in the CNNKernels C target (`cnn_adam_update`, also for ``AdamW``), in parallel
/// over fixed chunks for parameters of 32768 elements or more, with the same result for any thread
/// count.
///
/// Weight decay here is the L2 penalty folded into the gradient, so it is scaled by the adaptive
/// denominator; for decay decoupled from the gradient use ``AdamW``.
public class Adam: Optimizer {
    /// β₁, the decay of the first-moment average.
    public let beta1: Float
    /// β₂, the decay of the second-moment average.
    public let beta2: Float
    /// ε, added to the denominator for numerical stability.
    public let epsilon: Float
    /// Whether the AMSGrad variant (Reddi et al. 2018) keeps the running maximum of v.
    public let amsgrad: Bool
    /// Whether weight decay is decoupled (AdamW) rather than added to the gradient.
    let decoupledWeightDecay: Bool

    /// Creates an Adam optimizer.
    ///
    /// - Parameters:
    ///   - parameters: the parameters with their names, e.g. `model.namedParameters()`.
    ///   - learningRate: γ, ≥ 0 (PyTorch's default 0.001).
    ///   - beta1: β₁ in [0, 1).
    ///   - beta2: β₂ in [0, 1).
    ///   - epsilon: ε > 0.
    ///   - weightDecay: λ ≥ 0, the L2 penalty added to the gradient.
    ///   - amsgrad: use the AMSGrad variant.
    ///   - weightDecayExclusion: which parameters are not decayed.
    /// - Throws: ``CNNError/invalidArgument(_:)`` naming the offending value.
    public convenience init(parameters: [(String, Variable)], learningRate: Float = 0.001,
                            beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8,
                            weightDecay: Float = 0, amsgrad: Bool = false,
                            weightDecayExclusion: WeightDecayExclusion = .none) throws {
        try self.init(algorithmName: "Adam", decoupled: false, parameters: parameters,
                      learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon,
                      weightDecay: weightDecay, amsgrad: amsgrad, weightDecayExclusion: weightDecayExclusion)
    }

    init(algorithmName: String, decoupled: Bool, parameters: [(String, Variable)], learningRate: Float,
         beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float, amsgrad: Bool,
         weightDecayExclusion: WeightDecayExclusion) throws {
        try Optimizer.require(beta1 >= 0 && beta1 < 1, "\(algorithmName): beta1 must be in [0, 1), got \(beta1)")
        try Optimizer.require(beta2 >= 0 && beta2 < 1, "\(algorithmName): beta2 must be in [0, 1), got \(beta2)")
        try Optimizer.require(epsilon.isFinite && epsilon > 0, "\(algorithmName): epsilon must be finite and > 0, got \(epsilon)")
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.amsgrad = amsgrad
        self.decoupledWeightDecay = decoupled
        try super.init(algorithmName: algorithmName, parameters: parameters, learningRate: learningRate,
                       weightDecay: weightDecay, weightDecayExclusion: weightDecayExclusion)
    }

    /// `exp_avg`, `exp_avg_sq`, and `max_exp_avg_sq` with AMSGrad.
    public override var stateSlots: [String] {
        amsgrad ? ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"] : ["exp_avg", "exp_avg_sq"]
    }

    /// `beta1`, `beta2`, `eps`, `amsgrad`.
    public override var hyperparameters: [(String, Float)] {
        [("beta1", beta1), ("beta2", beta2), ("eps", epsilon), ("amsgrad", amsgrad ? 1 : 0)]
    }

    /// The Adam (or AdamW) rule on `count` elements (`cnn_adam_update`).
    public override func update(parameter p: UnsafeMutablePointer<Float>, gradient d: UnsafePointer<Float>,
                                count: Int, state: [UnsafeMutablePointer<Float>], step: Int, weightDecay λ: Float) {
        // The bias corrections 1 − β₁ᵗ and 1 − β₂ᵗ are taken in double inside the kernel; AdamW
        // shrinks p by 1 − γλ (in double, rounded once) before the step, Adam adds λ·p to the gradient.
        let status = cnn_adam_update(Int64(count), p, d, state[0], state[1], amsgrad ? state[2] : nil,
                                     learningRate, beta1, beta2, epsilon, λ, decoupledWeightDecay ? 1 : 0,
                                     Int64(step))
        precondition(status == CNN_OK, "\(algorithmName): cnn_adam_update failed with status \(status.rawValue)")
    }
}

/// AdamW (Loshchilov & Hutter 2019): Adam with weight decay decoupled from the gradient —
/// PyTorch's `torch.optim.AdamW`.
///
/// For each parameter p with gradient g, learning rate γ, betas β₁ and β₂, ε, weight decay λ (0 for
/// parameters excluded by name), at update t = 1, 2, ...:
///
///     p ← p − γλ·p
///     m ← β₁·m + (1 − β₁)·g
///     v ← β₂·v + (1 − β₂)·g²
///     v̂ ← max(v̂, v)                     (AMSGrad only; then v̂ replaces v below)
///     p ← p − (γ / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
///
/// The decay shrinks the weights at a rate independent of the gradient's scale, unlike ``Adam``'s L2
/// penalty. The default weight decay is PyTorch's 0.01. State slots as ``Adam``.
public final class AdamW: Adam {
    /// Creates an AdamW optimizer.
    ///
    /// - Parameters:
    ///   - parameters: the parameters with their names, e.g. `model.namedParameters()`.
    ///   - learningRate: γ, ≥ 0.
    ///   - beta1: β₁ in [0, 1).
    ///   - beta2: β₂ in [0, 1).
    ///   - epsilon: ε > 0.
    ///   - weightDecay: λ ≥ 0, the decoupled decay rate.
    ///   - amsgrad: use the AMSGrad variant.
    ///   - weightDecayExclusion: which parameters are not decayed.
    /// - Throws: ``CNNError/invalidArgument(_:)`` naming the offending value.
    public init(parameters: [(String, Variable)], learningRate: Float = 0.001,
                beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8,
                weightDecay: Float = 0.01, amsgrad: Bool = false,
                weightDecayExclusion: WeightDecayExclusion = .none) throws {
        try super.init(algorithmName: "AdamW", decoupled: true, parameters: parameters,
                       learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon,
                       weightDecay: weightDecay, amsgrad: amsgrad, weightDecayExclusion: weightDecayExclusion)
    }
}
