/// Which parameters an optimizer leaves out of weight decay, decided once from each parameter's
/// name and shape when the optimizer is created.
///
/// The common recipe for convolutional networks (e.g. Goyal et al. 2017, "Accurate, Large Minibatch
/// SGD", and most ResNet training scripts since) decays only the convolution and linear weights:
/// biases and batch-norm scales and shifts are excluded. ``biasesAndNormalization`` says exactly that
/// by shape: every parameter of rank at most 1.
///
/// ```swift
/// let sgd = try SGD(parameters: model.namedParameters(), learningRate: 0.1, momentum: 0.9,
///                   weightDecay: 1e-4, weightDecayExclusion: .biasesAndNormalization)
/// ```
public struct WeightDecayExclusion: Sendable {
    /// Returns `true` for a parameter (by name and shape) that must not be decayed.
    public let isExcluded: @Sendable (_ name: String, _ shape: [Int]) -> Bool

    /// An exclusion decided by a predicate on the parameter's dotted name and shape.
    public init(_ isExcluded: @escaping @Sendable (_ name: String, _ shape: [Int]) -> Bool) {
        self.isExcluded = isExcluded
    }

    /// Excludes nothing: every parameter is decayed (PyTorch's default).
    public static let none = WeightDecayExclusion { _, _ in false }

    /// Excludes biases and normalization parameters: every parameter whose name ends in `.bias`
    /// (or is `bias`) and every parameter of rank at most 1 (batch-norm `weight` and `bias`, any
    /// vector). Convolution and linear weights (rank 4 and 2) are decayed.
    public static let biasesAndNormalization = WeightDecayExclusion { name, shape in
        shape.count <= 1 || name == "bias" || name.hasSuffix(".bias")
    }

    /// Excludes every parameter whose name ends with one of `suffixes` (e.g. `[".bias", "bn1.weight"]`).
    public static func namesEnding(with suffixes: [String]) -> WeightDecayExclusion {
        WeightDecayExclusion { name, _ in suffixes.contains { name.hasSuffix($0) } }
    }

    /// Excludes every parameter whose name contains one of `substrings` (e.g. `["bn", "downsample.1"]`).
    public static func namesContaining(_ substrings: [String]) -> WeightDecayExclusion {
        WeightDecayExclusion { name, _ in substrings.contains { name.contains($0) } }
    }

    /// Excludes what either exclusion excludes.
    public func union(_ other: WeightDecayExclusion) -> WeightDecayExclusion {
        let a = isExcluded, b = other.isExcluded
        return WeightDecayExclusion { name, shape in a(name, shape) || b(name, shape) }
    }
}

/// The base class of the optimizers: a list of named parameters, a learning rate that schedules
/// drive, weight decay with per-name exclusions, and per-parameter state keyed by parameter name.
///
/// A training step is
/// ```swift
/// optimizer.zeroGradients()
/// let loss = try criterion(model(x), y)
/// try loss.backward()
/// try optimizer.step()
/// ```
/// ``step()`` reads each parameter's ``Variable/gradient``, skips parameters whose gradient is `nil`
/// (they were not used in the forward pass; their state does not advance either, as in PyTorch) and
/// updates the value in place through ``Variable/update(_:)``, so the variable's version changes and
/// caches derived from the weights are rebuilt.
///
/// Subclasses (``SGD``, ``Adam``, ``AdamW``, ``RMSprop``) name their state buffers
/// (``stateSlots``), their fixed hyper-parameters (``hyperparameters``) and implement the
/// element-wise rule in ``update(parameter:gradient:count:state:step:weightDecay:)`` over raw
/// buffers; this class does the bookkeeping. The whole state, learning rate included, round-trips
/// through ``stateDictionary()`` and ``loadStateDictionary(_:)`` so an interrupted run resumes
/// bit-identically.
///
/// An optimizer holds `Variable`s, which belong to one task; it is not `Sendable`.
open class Optimizer {
    /// The per-parameter state of an optimizer: how many updates the parameter has received and the
    /// optimizer's buffers for it (each of the parameter's shape), in ``Optimizer/stateSlots`` order.
    public struct ParameterState: Sendable {
        /// The number of updates applied to the parameter (PyTorch's `state["step"]`).
        public internal(set) var step: Int
        /// The buffers, in ``Optimizer/stateSlots`` order.
        public internal(set) var buffers: [Tensor]
    }

    /// The parameters, with their dotted names, in the order given at creation.
    public let parameters: [(name: String, variable: Variable)]
    /// The step size. Schedules (``LearningRateScheduler``, ``ReduceLROnPlateau``) set it between
    /// steps; ``step()`` throws if it is negative or not finite.
    public var learningRate: Float
    /// The weight-decay coefficient λ (how it enters the update is the subclass's rule).
    public let weightDecay: Float
    /// The names of the parameters that are not decayed (from the ``WeightDecayExclusion`` given at
    /// creation).
    public let excludedFromWeightDecay: Set<String>
    /// The state of every parameter updated at least once, keyed by parameter name.
    public internal(set) var state: [String: ParameterState] = [:]

    /// The optimizer's name in error messages and docs (`"SGD"`, `"Adam"`).
    public let algorithmName: String

    /// Creates the shared part of an optimizer; subclasses validate their own hyper-parameters first.
    ///
    /// - Throws: ``CNNError/invalidArgument(_:)`` for a negative or non-finite learning rate or
    ///   weight decay, an empty name, a name given twice, or one variable given under two names.
    public init(algorithmName: String, parameters: [(String, Variable)], learningRate: Float,
                weightDecay: Float, weightDecayExclusion: WeightDecayExclusion) throws {
        try Optimizer.require(learningRate.isFinite && learningRate >= 0,
                              "\(algorithmName): learning rate must be finite and >= 0, got \(learningRate)")
        try Optimizer.require(weightDecay.isFinite && weightDecay >= 0,
                              "\(algorithmName): weight decay must be finite and >= 0, got \(weightDecay)")
        var names = Set<String>(), variables = Set<ObjectIdentifier>()
        for (name, variable) in parameters {
            try Optimizer.require(!name.isEmpty, "\(algorithmName): a parameter has an empty name")
            try Optimizer.require(names.insert(name).inserted,
                                  "\(algorithmName): parameter name \"\(name)\" is given twice")
            try Optimizer.require(variables.insert(ObjectIdentifier(variable)).inserted,
                                  "\(algorithmName): parameter \"\(name)\" is a variable already given under another name")
        }
        self.algorithmName = algorithmName
        self.parameters = parameters.map { (name: $0.0, variable: $0.1) }
        self.learningRate = learningRate
        self.weightDecay = weightDecay
        self.excludedFromWeightDecay = Set(parameters.filter {
            weightDecayExclusion.isExcluded($0.0, $0.1.value.shape)
        }.map(\.0))
    }

    static func require(_ condition: Bool, _ message: @autoclosure () -> String) throws {
        if !condition { throw CNNError.invalidArgument(message()) }
    }

    // MARK: What subclasses provide

    /// The names of the per-parameter buffers, as PyTorch names them (`"momentum_buffer"`,
    /// `"exp_avg"`, ...). Each buffer has the parameter's shape and starts at zero.
    open var stateSlots: [String] { [] }

    /// The fixed hyper-parameters besides the learning rate and weight decay, with PyTorch's names
    /// (`"momentum"`, `"beta1"`, ...), saved in the state dictionary and checked when it is loaded.
    /// Booleans are 0 or 1.
    open var hyperparameters: [(String, Float)] { [] }

    /// Applies one update to one parameter, element-wise over raw buffers.
    ///
    /// - Parameters:
    ///   - parameter: the parameter's `count` elements, updated in place.
    ///   - gradient: the gradient's `count` elements.
    ///   - count: the number of elements of the parameter.
    ///   - state: one pointer per ``stateSlots`` entry, `count` elements each (zeros before the first step).
    ///   - step: the number of this update, 1 for the first.
    ///   - weightDecay: ``weightDecay``, or 0 for a parameter excluded from decay.
    open func update(parameter: UnsafeMutablePointer<Float>, gradient: UnsafePointer<Float>, count: Int,
                     state: [UnsafeMutablePointer<Float>], step: Int, weightDecay: Float) {
        preconditionFailure("\(type(of: self)) must override update(parameter:gradient:count:state:step:weightDecay:)")
    }

    // MARK: Stepping

    /// Updates every parameter that has a gradient, once.
    ///
    /// Parameters with a `nil` gradient or that do not require one are skipped, and their state
    /// does not advance.
    /// - Throws: ``CNNError/invalidArgument(_:)`` when ``learningRate`` is negative or not finite;
    ///   ``CNNError/shapeMismatch(_:)`` when a gradient's shape differs from its parameter's (checked
    ///   for all parameters before any is updated).
    public func step() throws {
        try Optimizer.require(learningRate.isFinite && learningRate >= 0,
                              "\(algorithmName): learning rate must be finite and >= 0, got \(learningRate)")
        for (name, p) in parameters where p.requiresGradient {
            if let g = p.gradient, g.shape != p.value.shape {
                throw CNNError.shapeMismatch("\(algorithmName): gradient of \"\(name)\" has shape \(g.shape), the parameter has \(p.value.shape)")
            }
        }
        let slots = stateSlots.count
        for (name, p) in parameters where p.requiresGradient {
            guard let gradient = p.gradient else { continue }
            // Take the state out of the dictionary so each buffer is uniquely referenced and is
            // updated in place (no copy on write).
            var entry: ParameterState
            if let existing = state.removeValue(forKey: name) {
                entry = existing
            } else {
                entry = ParameterState(step: 0, buffers: try (0..<slots).map { _ in try Tensor(zeros: p.value.shape) })
            }
            entry.step += 1
            for i in 0..<slots { entry.buffers[i].makeUnique() }
            let decay = excludedFromWeightDecay.contains(name) ? 0 : weightDecay
            let stepNumber = entry.step
            withExtendedLifetime(entry) {
                let pointers = entry.buffers.map { $0.storage.pointer }
                p.update { value in
                    value.makeUnique()
                    self.update(parameter: value.storage.pointer, gradient: gradient.storage.pointer,
                                count: value.count, state: pointers, step: stepNumber, weightDecay: decay)
                }
            }
            state[name] = entry
        }
    }

    /// Clears the gradient of every parameter (sets it to `nil`, as PyTorch's `set_to_none=True`).
    public func zeroGradients() {
        for (_, p) in parameters { p.zeroGradient() }
    }

    /// The number of updates applied to a parameter (0 before its first).
    public func stepCount(for parameterName: String) -> Int {
        state[parameterName]?.step ?? 0
    }

    /// One of a parameter's state buffers by slot name (`"momentum_buffer"`), or `nil` before the
    /// parameter's first update or for a slot this optimizer does not keep.
    public func stateBuffer(_ slot: String, for parameterName: String) -> Tensor? {
        guard let i = stateSlots.firstIndex(of: slot) else { return nil }
        return state[parameterName]?.buffers[i]
    }
}
