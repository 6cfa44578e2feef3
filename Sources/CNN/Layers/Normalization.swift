/// Batch normalisation over the channels of `[N, C, H, W]` (Ioffe & Szegedy, 2015): in training the
/// batch mean and biased variance normalise, and the running statistics follow with `momentum`
/// (the running variance unbiased); in evaluation the running statistics are used.
/// PyTorch's defaults: eps 1e-5, momentum 0.1, weight 1, bias 0, running mean 0, running variance 1.
public final class BatchNorm2d: Module {
    /// Scale γ, `[C]`.
    public let weight: Variable
    /// Shift β, `[C]`.
    public let bias: Variable
    /// Running mean, `[C]` (saved as `running_mean`).
    public let runningMean: Buffer
    /// Running variance, `[C]` (saved as `running_var`).
    public let runningVar: Buffer
    /// Batches seen in training (saved as `num_batches_tracked`, an integer in PyTorch's files).
    public let numBatchesTracked: Buffer
    public let features: Int
    public let epsilon: Float
    public let momentum: Float
    /// The group whose ranks share the batch statistics while training (synchronised batch norm,
    /// PyTorch's `SyncBatchNorm`; see ``Functional/synchronizedBatchNorm(_:weight:bias:runningMean:runningVariance:momentum:epsilon:communicator:)``),
    /// or `nil` (the default) for this process's batch alone. Set it for a whole model with
    /// ``Module/convertToSynchronizedBatchNorm(communicator:)``.
    public var synchronization: (any Communicator)?

    /// Creates a batch norm layer for `features` channels.
    public init(features: Int, epsilon: Float = 1e-5, momentum: Float = 0.1) throws {
        guard features >= 1 else { throw CNNError.invalidArgument("BatchNorm2d: features \(features) must be positive") }
        guard epsilon > 0 else { throw CNNError.invalidArgument("BatchNorm2d: epsilon \(epsilon) must be positive") }
        guard momentum >= 0, momentum <= 1 else { throw CNNError.invalidArgument("BatchNorm2d: momentum \(momentum) is outside [0, 1]") }
        self.features = features
        self.epsilon = epsilon
        self.momentum = momentum
        weight = Variable(try Tensor(ones: [features]), requiresGradient: true)
        bias = Variable(try Tensor(zeros: [features]), requiresGradient: true)
        runningMean = Buffer(try Tensor(zeros: [features]))
        runningVar = Buffer(try Tensor(ones: [features]))
        numBatchesTracked = Buffer(Tensor(scalar: 0))
        super.init()
    }

    public override func forward(_ input: Variable) throws -> Variable {
        guard input.value.rank >= 2, input.shape[1] == features else {
            throw CNNError.shapeMismatch("BatchNorm2d(\(features)): input shape \(input.shape) does not have \(features) channels")
        }
        if isTraining { numBatchesTracked.value = Tensor(scalar: (try numBatchesTracked.value.item()) + 1) }
        if isTraining, let communicator = synchronization, communicator.size > 1 {
            return try Functional.synchronizedBatchNorm(input, weight: weight, bias: bias, runningMean: runningMean, runningVariance: runningVar,
                                                        momentum: momentum, epsilon: epsilon, communicator: communicator)
        }
        return try Functional.batchNorm(input, weight: weight, bias: bias, runningMean: runningMean, runningVariance: runningVar,
                                        training: isTraining, momentum: momentum, epsilon: epsilon)
    }

    public override var configurationDescription: String { "\(features)" }
}

/// Local response normalisation across channels (Krizhevsky et al., 2012; AlexNet used size 5,
/// α 1e-4, β 0.75, k 2): `y = x / (k + α/size · Σ x²)^β`, PyTorch's formula.
public final class LocalResponseNorm: Module {
    public let size: Int
    public let alpha: Float
    public let beta: Float
    public let k: Float

    /// Creates the layer (PyTorch's defaults: α 1e-4, β 0.75, k 1).
    public init(size: Int, alpha: Float = 1e-4, beta: Float = 0.75, k: Float = 1) throws {
        guard size >= 1 else { throw CNNError.invalidArgument("LocalResponseNorm: size \(size) must be at least 1") }
        self.size = size; self.alpha = alpha; self.beta = beta; self.k = k
        super.init()
    }

    public override func forward(_ input: Variable) throws -> Variable {
        try Functional.localResponseNorm(input, size: size, alpha: alpha, beta: beta, k: k)
    }

    public override var configurationDescription: String { "size \(size), alpha \(alpha), beta \(beta), k \(k)" }
}
