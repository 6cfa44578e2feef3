/// A 2-D convolution layer: input `[N, C, H, W]`, weight `[K, C/groups, R, S]` (PyTorch's OIHW),
/// output `[N, K, P, Q]` with `P = floor((H + 2·pad − dilation·(R−1) − 1) / stride) + 1` — the
/// lecture's `(W − F + 2P)/S + 1`. One activation map per filter.
///
/// The algorithm (direct, im2col, 1x1 GEMM, Winograd...) is a stored property that can be changed
/// at any time; `nil` uses ``ConvolutionAlgorithm/defaultAlgorithm``. Prepared weights are cached
/// per input geometry and rebuilt when the weights change.
///
/// Initialisation as PyTorch: weight and bias uniform in `±1/sqrt(fan-in)`
/// (Kaiming-uniform with `a = √5`), fan-in = `C/groups · R · S`.
public final class Conv2d: Module {
    /// `[K, C/groups, R, S]`.
    public let weight: Variable
    /// `[K]`, or `nil` without bias (the usual choice before batch norm).
    public let bias: Variable?
    public let inputChannels: Int
    public let outputChannels: Int
    public let kernelSize: (Int, Int)
    public let stride: (Int, Int)
    public let padding: (Int, Int)
    public let dilation: (Int, Int)
    public let groups: Int
    /// The algorithm; `nil` follows the process-wide default.
    public var algorithm: ConvolutionAlgorithm? {
        didSet { _cache.removeAll() }
    }
    let _cache = ConvolutionPlanCache()

    /// Creates a convolution.
    ///
    /// - Throws: ``CNNError/invalidArgument(_:)`` for non-positive sizes, strides or dilations,
    ///   negative padding, or groups that do not divide both channel counts.
    public init(inputChannels: Int, outputChannels: Int, kernelSize: (Int, Int), stride: (Int, Int) = (1, 1),
                padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1), groups: Int = 1, bias: Bool = true,
                algorithm: ConvolutionAlgorithm? = nil) throws {
        guard inputChannels >= 1, outputChannels >= 1, kernelSize.0 >= 1, kernelSize.1 >= 1 else {
            throw CNNError.invalidArgument("Conv2d: channels \(inputChannels)->\(outputChannels) and kernel \(kernelSize.0)x\(kernelSize.1) must be positive")
        }
        guard stride.0 >= 1, stride.1 >= 1 else { throw CNNError.invalidArgument("Conv2d: stride (\(stride.0), \(stride.1)) must be at least 1") }
        guard dilation.0 >= 1, dilation.1 >= 1 else { throw CNNError.invalidArgument("Conv2d: dilation (\(dilation.0), \(dilation.1)) must be at least 1") }
        guard padding.0 >= 0, padding.1 >= 0 else { throw CNNError.invalidArgument("Conv2d: padding (\(padding.0), \(padding.1)) must not be negative") }
        guard groups >= 1, inputChannels % groups == 0, outputChannels % groups == 0 else {
            throw CNNError.invalidArgument("Conv2d: groups \(groups) must divide input channels \(inputChannels) and output channels \(outputChannels)")
        }
        self.inputChannels = inputChannels; self.outputChannels = outputChannels
        self.kernelSize = kernelSize; self.stride = stride; self.padding = padding; self.dilation = dilation
        self.groups = groups; self.algorithm = algorithm
        let shape = [outputChannels, inputChannels / groups, kernelSize.0, kernelSize.1]
        let fanIn = Float(shape[1] * kernelSize.0 * kernelSize.1)
        let bound = 1 / fanIn.squareRoot()
        let (w, b) = try GlobalGenerator.with { g in
            (try Tensor.uniform(shape: shape, lower: -bound, upper: bound, generator: &g),
             bias ? try Tensor.uniform(shape: [outputChannels], lower: -bound, upper: bound, generator: &g) : nil)
        }
        self.weight = Variable(w, requiresGradient: true)
        self.bias = b.map { Variable($0, requiresGradient: true) }
        super.init()
    }

    /// A square-kernel convenience.
    public convenience init(inputChannels: Int, outputChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                            dilation: Int = 1, groups: Int = 1, bias: Bool = true, algorithm: ConvolutionAlgorithm? = nil) throws {
        try self.init(inputChannels: inputChannels, outputChannels: outputChannels, kernelSize: (kernelSize, kernelSize),
                      stride: (stride, stride), padding: (padding, padding), dilation: (dilation, dilation), groups: groups,
                      bias: bias, algorithm: algorithm)
    }

    public override func forward(_ input: Variable) throws -> Variable {
        guard input.value.rank == 4, input.shape[1] == inputChannels else {
            throw CNNError.shapeMismatch("Conv2d(\(inputChannels)->\(outputChannels)): input shape \(input.shape) does not have \(inputChannels) channels ([N, \(inputChannels), H, W] expected)")
        }
        return try Functional.conv2d(input, weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation,
                                     groups: groups, algorithm: algorithm, cache: _cache)
    }

    /// The geometry of this layer for an input of `[N, C, H, W]`.
    public func geometry(forInput shape: [Int]) throws -> ConvolutionGeometry {
        guard shape.count == 4, shape[1] == inputChannels else {
            throw CNNError.shapeMismatch("Conv2d(\(inputChannels)->\(outputChannels)): input shape \(shape) does not have \(inputChannels) channels")
        }
        return ConvolutionGeometry(batch: shape[0], inputChannels: inputChannels, height: shape[2], width: shape[3],
                                   outputChannels: outputChannels, kernelSize: kernelSize, stride: stride, padding: padding,
                                   dilation: dilation, groups: groups)
    }

    public override var configurationDescription: String {
        var s = "\(inputChannels)->\(outputChannels), \(kernelSize.0)x\(kernelSize.1), stride \(stride.0)"
        if padding != (0, 0) { s += ", pad \(padding.0)" }
        if dilation != (1, 1) { s += ", dilation \(dilation.0)" }
        if groups != 1 { s += ", groups \(groups)" }
        return s
    }
}

/// A fully connected layer: `[N, in] -> [N, out]`, `y = x Wᵀ + b` with `W` of shape `[out, in]`.
/// Initialisation as PyTorch: uniform in `±1/sqrt(in)` for weight and bias.
public final class Linear: Module {
    /// `[out, in]`.
    public let weight: Variable
    /// `[out]` or `nil`.
    public let bias: Variable?
    public let inputFeatures: Int
    public let outputFeatures: Int

    /// Creates a fully connected layer.
    public init(inputFeatures: Int, outputFeatures: Int, bias: Bool = true) throws {
        guard inputFeatures >= 1, outputFeatures >= 1 else {
            throw CNNError.invalidArgument("Linear: features \(inputFeatures)->\(outputFeatures) must be positive")
        }
        self.inputFeatures = inputFeatures
        self.outputFeatures = outputFeatures
        let bound = 1 / Float(inputFeatures).squareRoot()
        let (w, b) = try GlobalGenerator.with { g in
            (try Tensor.uniform(shape: [outputFeatures, inputFeatures], lower: -bound, upper: bound, generator: &g),
             bias ? try Tensor.uniform(shape: [outputFeatures], lower: -bound, upper: bound, generator: &g) : nil)
        }
        self.weight = Variable(w, requiresGradient: true)
        self.bias = b.map { Variable($0, requiresGradient: true) }
        super.init()
    }

    public override func forward(_ input: Variable) throws -> Variable {
        guard input.value.rank == 2, input.shape[1] == inputFeatures else {
            throw CNNError.shapeMismatch("Linear(\(inputFeatures)->\(outputFeatures)): input shape \(input.shape) is not [N, \(inputFeatures)]")
        }
        return try Functional.linear(input, weight: weight, bias: bias)
    }

    public override var configurationDescription: String { "\(inputFeatures)->\(outputFeatures)" }
}
