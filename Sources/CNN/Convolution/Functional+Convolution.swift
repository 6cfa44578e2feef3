import CNNKernels
import Synchronization

/// How a convolution is computed. Every algorithm gives the same answer within its stated
/// tolerance; they differ in speed and workspace.
public enum ConvolutionAlgorithm: String, CaseIterable, Sendable, Codable {
    /// A heuristic over the shape picks the algorithm (see `conv/conv.c` for the machine it was
    /// profiled on).
    case auto
    /// Direct loops: valid for every shape; the readable reference and the depthwise path.
    case direct
    /// im2col (bounded column tiles) plus the package GEMM: valid for every shape.
    case im2col
    /// 1x1 kernels as a plain GEMM (any stride, no padding).
    case gemm1x1
    /// Winograd F(2x2, 3x3): 3x3, stride 1, dilation 1, groups 1. Error about 1e-6 relative. On a
    /// 5x5 kernel (same conditions), F(2x2, 5x5): 36 multiplications for every 100 of the direct
    /// loops, error about 5e-6 relative; both gradients run F(2x2, 5x5) too.
    case winograd2x2
    /// Winograd F(4x4, 3x3): fewer multiplications, error about 1e-5 relative. On a 5x5 kernel,
    /// F(4x4, 5x5): 64 multiplications for every 400 of the direct loops, error about 1e-5
    /// relative; both gradients run it too.
    case winograd4x4
    /// Winograd F(6x6, 3x3): fewest multiplications, error about 1e-4 relative.
    case winograd6x6
    /// Times every applicable algorithm once per shape and remembers the fastest
    /// (see ``ConvolutionAutotuner``).
    case autotune

    var cValue: cnn_conv_algorithm {
        switch self {
        case .auto, .autotune: return CNN_CONV_AUTO
        case .direct: return CNN_CONV_DIRECT
        case .im2col: return CNN_CONV_IM2COL
        case .gemm1x1: return CNN_CONV_GEMM1X1
        case .winograd2x2: return CNN_CONV_WINOGRAD_2X2
        case .winograd4x4: return CNN_CONV_WINOGRAD_4X4
        case .winograd6x6: return CNN_CONV_WINOGRAD_6X6
        }
    }

    init(_ c: cnn_conv_algorithm) {
        switch c {
        case CNN_CONV_DIRECT: self = .direct
        case CNN_CONV_IM2COL: self = .im2col
        case CNN_CONV_GEMM1X1: self = .gemm1x1
        case CNN_CONV_WINOGRAD_2X2: self = .winograd2x2
        case CNN_CONV_WINOGRAD_4X4: self = .winograd4x4
        case CNN_CONV_WINOGRAD_6X6: self = .winograd6x6
        default: self = .auto
        }
    }

    /// Whether this is one of the Winograd algorithms.
    var isWinograd: Bool { self == .winograd2x2 || self == .winograd4x4 || self == .winograd6x6 }

    /// The concrete algorithms (neither `auto` nor `autotune`).
    public static var concrete: [ConvolutionAlgorithm] {
        [.direct, .im2col, .gemm1x1, .winograd2x2, .winograd4x4, .winograd6x6]
    }

    /// The process-wide default used by layers whose algorithm is `nil`. Initially `.auto`.
    public static var defaultAlgorithm: ConvolutionAlgorithm {
        get { defaultStorage.withLock { $0 } }
        set { defaultStorage.withLock { $0 = newValue } }
    }
    private static let defaultStorage = Mutex<ConvolutionAlgorithm>(.auto)
}

/// The geometry of one convolution: input `[N, C, H, W]`, weight `[K, C/groups, R, S]`.
public struct ConvolutionGeometry: Hashable, Sendable, Codable, CustomStringConvertible {
    public var batch, inputChannels, height, width: Int
    public var outputChannels, kernelHeight, kernelWidth: Int
    public var strideHeight, strideWidth, paddingHeight, paddingWidth: Int
    public var dilationHeight, dilationWidth, groups: Int

    /// Creates a geometry.
    public init(batch: Int, inputChannels: Int, height: Int, width: Int, outputChannels: Int,
                kernelSize: (Int, Int), stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0),
                dilation: (Int, Int) = (1, 1), groups: Int = 1) {
        self.batch = batch; self.inputChannels = inputChannels; self.height = height; self.width = width
        self.outputChannels = outputChannels; self.kernelHeight = kernelSize.0; self.kernelWidth = kernelSize.1
        self.strideHeight = stride.0; self.strideWidth = stride.1
        self.paddingHeight = padding.0; self.paddingWidth = padding.1
        self.dilationHeight = dilation.0; self.dilationWidth = dilation.1; self.groups = groups
    }

    var cShape: cnn_conv_shape {
        cnn_conv_shape(N: Int64(batch), C: Int64(inputChannels), H: Int64(height), W: Int64(width),
                       K: Int64(outputChannels), R: Int64(kernelHeight), S: Int64(kernelWidth),
                       stride_h: Int64(strideHeight), stride_w: Int64(strideWidth),
                       pad_h: Int64(paddingHeight), pad_w: Int64(paddingWidth),
                       dilation_h: Int64(dilationHeight), dilation_w: Int64(dilationWidth), groups: Int64(groups))
    }

    /// Output height and width: `floor((H + 2·pad − dilation·(R−1) − 1) / stride) + 1` — the
    /// lecture's `(W − F + 2P)/S + 1` generalised to dilation.
    public func outputSize() throws -> (height: Int, width: Int) {
        guard batch >= 1, inputChannels >= 1, height >= 1, width >= 1, outputChannels >= 1,
              kernelHeight >= 1, kernelWidth >= 1 else {
            throw CNNError.invalidArgument("conv2d: sizes must be positive: \(self)")
        }
        guard strideHeight >= 1, strideWidth >= 1 else {
            throw CNNError.invalidArgument("conv2d: stride (\(strideHeight), \(strideWidth)) must be at least 1")
        }
        guard dilationHeight >= 1, dilationWidth >= 1 else {
            throw CNNError.invalidArgument("conv2d: dilation (\(dilationHeight), \(dilationWidth)) must be at least 1")
        }
        guard paddingHeight >= 0, paddingWidth >= 0 else {
            throw CNNError.invalidArgument("conv2d: padding (\(paddingHeight), \(paddingWidth)) must not be negative")
        }
        guard groups >= 1, inputChannels % groups == 0, outputChannels % groups == 0 else {
            throw CNNError.invalidArgument("conv2d: groups \(groups) must divide input channels \(inputChannels) and output channels \(outputChannels)")
        }
        // Bounded so that the arithmetic below (and the kernels' int64 index arithmetic) cannot
        // overflow on sizes read from a file.
        let limit = Int(Int32.max)
        guard [batch, inputChannels, height, width, outputChannels, kernelHeight, kernelWidth, strideHeight, strideWidth,
               paddingHeight, paddingWidth, dilationHeight, dilationWidth, groups].allSatisfy({ $0 <= limit }) else {
            throw CNNError.invalidArgument("conv2d: sizes, strides, paddings and dilations must be at most \(limit): \(self)")
        }
        let effH = dilationHeight * (kernelHeight - 1) + 1, effW = dilationWidth * (kernelWidth - 1) + 1
        guard height + 2 * paddingHeight >= effH, width + 2 * paddingWidth >= effW else {
            throw CNNError.shapeMismatch("conv2d: kernel \(kernelHeight)x\(kernelWidth) (dilation \(dilationHeight)x\(dilationWidth)) is larger than the padded input \(height + 2 * paddingHeight)x\(width + 2 * paddingWidth)")
        }
        return ((height + 2 * paddingHeight - effH) / strideHeight + 1, (width + 2 * paddingWidth - effW) / strideWidth + 1)
    }

    /// The algorithms that apply to this geometry.
    public var applicableAlgorithms: [ConvolutionAlgorithm] {
        var s = cShape
        return ConvolutionAlgorithm.concrete.filter { cnn_conv_algorithm_applies($0.cValue, &s) != 0 }
    }

    /// Multiply-accumulates of the direct computation: `N·K·P·Q·(C/groups)·R·S`.
    public var multiplyAccumulates: Int {
        guard let (p, q) = try? outputSize() else { return 0 }
        return batch * outputChannels * p * q * (inputChannels / groups) * kernelHeight * kernelWidth
    }

    /// `N=1 C=64 H=56 W=56 K=64 3x3 s1 p1 d1 g1`.
    public var description: String {
        "N=\(batch) C=\(inputChannels) H=\(height) W=\(width) K=\(outputChannels) \(kernelHeight)x\(kernelWidth) s\(strideHeight)" +
            (strideWidth != strideHeight ? "x\(strideWidth)" : "") + " p\(paddingHeight)" + (paddingWidth != paddingHeight ? "x\(paddingWidth)" : "") +
            " d\(dilationHeight) g\(groups)"
    }
}

/// Weights prepared once for one algorithm and geometry (packed panels, Winograd transforms): the
/// expensive part of a convolution's set-up, reused by every call until the weights change.
public final class ConvolutionPlan: @unchecked Sendable {
    let pointer: OpaquePointer
    /// The geometry the plan was made for.
    public let geometry: ConvolutionGeometry
    /// The algorithm the plan runs (`auto` resolved).
    public let algorithm: ConvolutionAlgorithm
    /// Whether ``InferenceModel`` can fuse a following 2x2, stride-2 max pool into this plan's
    /// output (Winograd plans: every Winograd tile is even).
    var fusesMaxPool2x2: Bool { cnn_conv_plan_fuses_maxpool2x2(pointer) != 0 }

    /// Prepares `weight` for `algorithm` (`auto` resolved by the heuristic; `autotune` measured).
    ///
    /// - Throws: ``CNNError/unsupported(_:)`` naming the geometry and the algorithms that do apply
    ///   when `algorithm` does not apply; ``CNNError/shapeMismatch(_:)`` for a weight of the wrong shape.
    public init(algorithm requested: ConvolutionAlgorithm, geometry: ConvolutionGeometry, weight: Tensor) throws {
        let algorithm = try Self.validated(requested, geometry: geometry, weight: weight)
        var shape = geometry.cShape
        var status = CNN_OK
        guard let plan = cnn_conv_plan_create(algorithm.cValue, &shape, weight.basePointer, &status) else {
            try check(status, "conv2d: cannot prepare \(algorithm.rawValue) for \(geometry)")
            throw CNNError.outOfMemory("conv2d: cannot prepare \(algorithm.rawValue) for \(geometry)")
        }
        self.pointer = plan
        self.geometry = geometry
        self.algorithm = ConvolutionAlgorithm(cnn_conv_plan_algorithm(plan))
    }

    deinit { cnn_conv_plan_destroy(pointer) }

    /// `requested` checked against the geometry and the weight's shape, with `autotune` resolved to
    /// the measured best (`auto` stays `auto`).
    static func validated(_ requested: ConvolutionAlgorithm, geometry: ConvolutionGeometry, weight: Tensor) throws -> ConvolutionAlgorithm {
        _ = try geometry.outputSize()
        let expected = [geometry.outputChannels, geometry.inputChannels / geometry.groups, geometry.kernelHeight, geometry.kernelWidth]
        guard weight.shape == expected else {
            throw CNNError.shapeMismatch("conv2d: weight shape \(weight.shape) does not match \(expected) for input channels \(geometry.inputChannels), groups \(geometry.groups)")
        }
        var algorithm = requested
        if requested == .autotune {
            algorithm = try ConvolutionAutotuner.shared.best(for: geometry, weight: weight)
        }
        var shape = geometry.cShape
        if algorithm != .auto, cnn_conv_algorithm_applies(algorithm.cValue, &shape) == 0 {
            throw CNNError.unsupported("conv2d: algorithm \(algorithm.rawValue) does not apply to \(geometry); applicable: \(geometry.applicableAlgorithms.map(\.rawValue).joined(separator: ", "))")
        }
        return algorithm
    }

    /// Bytes of prepared weights the plan holds.
    public var weightBytes: Int { cnn_conv_plan_weight_bytes(pointer) }
    /// Peak scratch bytes one call takes.
    public var workspaceBytes: Int { cnn_conv_plan_workspace_bytes(pointer) }

    /// `y = relu?(conv(x) + bias + residual)` with the epilogue fused into the kernel.
    public func forward(_ x: Tensor, bias: Tensor? = nil, residual: Tensor? = nil, relu: Bool = false) throws -> Tensor {
        let g = geometry
        guard x.shape == [g.batch, g.inputChannels, g.height, g.width] else {
            throw CNNError.shapeMismatch("conv2d: input shape \(x.shape) does not match the plan's [\(g.batch), \(g.inputChannels), \(g.height), \(g.width)]")
        }
        let (p, q) = try g.outputSize()
        let outShape = [g.batch, g.outputChannels, p, q]
        if let bias, bias.shape != [g.outputChannels] {
            throw CNNError.shapeMismatch("conv2d: bias shape \(bias.shape) does not match [\(g.outputChannels)]")
        }
        if let residual, residual.shape != outShape {
            throw CNNError.shapeMismatch("conv2d: residual shape \(residual.shape) does not match the output \(outShape)")
        }
        let y = try Tensor(uninitializedShape: outShape)
        try check(cnn_conv_plan_forward(pointer, x.basePointer, bias?.basePointer, residual?.basePointer, relu ? 1 : 0, y.basePointer),
                  "conv2d \(algorithm.rawValue) on \(g)")
        return y
    }
}

/// Caches a layer's prepared weights per geometry; rebuilt when the weight version or the algorithm
/// changes. Safe to use from several threads.
final class ConvolutionPlanCache: @unchecked Sendable {
    private struct Key: Hashable { var geometry: ConvolutionGeometry; var algorithm: ConvolutionAlgorithm; var version: Int }
    private let entries = Mutex<[Key: ConvolutionPlan]>([:])

    func plan(geometry: ConvolutionGeometry, algorithm: ConvolutionAlgorithm, weight: Variable) throws -> ConvolutionPlan {
        let key = Key(geometry: geometry, algorithm: algorithm, version: weight.version)
        if let p = entries.withLock({ $0[key] }) { return p }
        let plan = try ConvolutionPlan(algorithm: algorithm, geometry: geometry, weight: weight.value)
        entries.withLock { dict in
            // Keep few entries: plans for stale weight versions are dropped.
            dict = dict.filter { $0.key.version == key.version && dict.count < 8 }
            dict[key] = plan
        }
        return plan
    }

    func removeAll() { entries.withLock { $0.removeAll() } }

    /// The plans held (for tests).
    var count: Int { entries.withLock { $0.count } }
}

extension Functional {
    /// 2-D convolution of `x` `[N, C, H, W]` with `weight` `[K, C/groups, R, S]` and optional `bias` `[K]`,
    /// giving `[N, K, P, Q]`; see ``ConvolutionGeometry/outputSize()``.
    public static func conv2d(_ x: Variable, weight: Variable, bias: Variable?, stride: (Int, Int) = (1, 1),
                              padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1), groups: Int = 1,
                              algorithm: ConvolutionAlgorithm? = nil) throws -> Variable {
        try conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation,
                   groups: groups, algorithm: algorithm, cache: nil)
    }

    static func geometry(_ x: Tensor, _ w: Tensor, stride: (Int, Int), padding: (Int, Int),
                         dilation: (Int, Int), groups: Int) throws -> ConvolutionGeometry {
        guard x.rank == 4 else {
            throw CNNError.shapeMismatch("conv2d: input must be [N, C, H, W], got \(x.shape)")
        }
        guard w.rank == 4 else {
            throw CNNError.shapeMismatch("conv2d: weight must be [K, C/groups, R, S], got \(w.shape)")
        }
        guard groups >= 1, x.shape[1] == w.shape[1] * groups else {
            throw CNNError.shapeMismatch("conv2d: input \(x.shape) has \(x.shape[1]) channels but weight \(w.shape) with groups \(groups) expects \(w.shape[1] * groups)")
        }
        let g = ConvolutionGeometry(batch: x.shape[0], inputChannels: x.shape[1], height: x.shape[2], width: x.shape[3],
                                    outputChannels: w.shape[0], kernelSize: (w.shape[2], w.shape[3]), stride: stride,
                                    padding: padding, dilation: dilation, groups: groups)
        _ = try g.outputSize()
        return g
    }

    static func conv2d(_ x: Variable, weight: Variable, bias: Variable?, stride: (Int, Int), padding: (Int, Int),
                       dilation: (Int, Int), groups: Int, algorithm: ConvolutionAlgorithm?,
                       cache: ConvolutionPlanCache?, residual: Tensor? = nil, relu: Bool = false) throws -> Variable {
        let g = try geometry(x.value, weight.value, stride: stride, padding: padding, dilation: dilation, groups: groups)
        if let bias, bias.shape != [g.outputChannels] {
            throw CNNError.shapeMismatch("conv2d: bias shape \(bias.shape) does not match [\(g.outputChannels)] output channels")
        }
        // In training the weights change every step, so a Winograd plan (its weight transform) is
        // rebuilt every step, and the other algorithms run without one (below). Sessions 1-3 resolved AUTO's Winograd choices to im2col
        // there (a ResNet-18 step at 32x32, batch 64: forward 40.3-40.8 ms with im2col against
        // 42.8-42.9 with Winograd). Since the weight transform runs in float on vectors (session
        // 6), Winograd wins in training too, so AUTO is taken as it is: forward 40.5-41.3 -> 29.5-
        // 35.6 ms, step 110-112 -> 101-104 ms (median of 15, three alternated runs, 2 threads; the
        // third Winograd run, 122 ms, fell in one of the VM's slow stretches).
        let alg = algorithm ?? ConvolutionAlgorithm.defaultAlgorithm
        let y: Tensor
        let ran: ConvolutionAlgorithm
        let resolved = try ConvolutionPlan.validated(alg, geometry: g, weight: weight.value)
        var cShape = g.cShape
        let runs = resolved == .auto ? ConvolutionAlgorithm(cnn_conv_auto_algorithm(&cShape)) : resolved
        if weight.requiresGradient, GradientMode.isEnabled, !runs.isWinograd {
            // Weights being trained change after this step, so a plan would serve one call: its
            // copy of the weights and its packed panels (written to fresh memory) are pure cost.
            // Direct, im2col and 1x1 GEMM run one-shot on the weights as they are. ResNet-18 at
            // 32x32, batch 64, plan-and-run against one-shot (session 16, C harness, alternated):
            // layer4's 3x3 layers at 1x1 2.22 -> 0.91 ms, 256 -> 512 3x3/2 0.67x, 128 -> 256 0.85x,
            // the 1x1 downsample 0.84x; LeNet-5's layers unchanged (0.99). Winograd layers keep the
            // cache: their weight transform is the plan.
            let (p, q) = try g.outputSize()
            if let residual, residual.shape != [g.batch, g.outputChannels, p, q] {
                throw CNNError.shapeMismatch("conv2d: residual shape \(residual.shape) does not match the output \([g.batch, g.outputChannels, p, q])")
            }
            let out = try Tensor(uninitializedShape: [g.batch, g.outputChannels, p, q])
            try check(cnn_conv2d_forward(resolved.cValue, &cShape, x.value.basePointer, weight.value.basePointer,
                                         bias?.value.basePointer, residual?.basePointer, relu ? 1 : 0, out.basePointer),
                      "conv2d \(runs.rawValue) on \(g)")
            y = out
            ran = runs
        } else {
            let plan = try cache?.plan(geometry: g, algorithm: alg, weight: weight)
                ?? ConvolutionPlan(algorithm: alg, geometry: g, weight: weight.value)
            y = try plan.forward(x.value, bias: bias?.value, residual: residual, relu: relu)
            ran = plan.algorithm
        }
        // The gradients follow the forward: AUTO's Winograd layers take Winograd gradients, a layer
        // pinned to direct, im2col or 1x1 GEMM takes the GEMM path (a small layer its weight
        // gradient by the direct sum; both chosen by the layer's shape, so the rounding
        // does not depend on the batch size), an autotuned one whatever its table picked.
        let backwardAlgorithm = alg == .auto ? CNN_CONV_AUTO : ran.cValue
        let xv = x.value, wv = weight.value
        var inputs = [x, weight]
        if let bias { inputs.append(bias) }
        let needX = x.requiresGradient, needW = weight.requiresGradient, needB = bias?.requiresGradient ?? false
        return Variable.result(y, operation: "conv2d", inputs: inputs) { dy in
            var shape = g.cShape
            var dx: Tensor? = nil
            if needX {
                let t = try Tensor(uninitializedShape: xv.shape)
                try check(cnn_conv2d_backward_data_for(backwardAlgorithm, &shape, dy.basePointer, wv.basePointer, t.basePointer),
                          "conv2d backward data on \(g)")
                dx = t
            }
            var dw: Tensor? = nil, db: Tensor? = nil
            if needW || needB {
                let tw = try Tensor(zeros: wv.shape)
                let tb = try Tensor(zeros: [g.outputChannels])
                try check(cnn_conv2d_backward_weight_for(backwardAlgorithm, &shape, xv.basePointer, dy.basePointer, tw.basePointer,
                                                         needB ? tb.basePointer : nil),
                          "conv2d backward weight on \(g)")
                if needW { dw = tw }
                if needB { db = tb }
            }
            return bias == nil ? [dx, dw] : [dx, dw, db]
        }
    }

    /// Fully connected: `x` `[N, in]` times `weightᵀ` (`weight` is `[out, in]`, PyTorch's layout) plus `bias` `[out]`.
    public static func linear(_ x: Variable, weight: Variable, bias: Variable?) throws -> Variable {
        let xv = x.value, wv = weight.value
        guard xv.rank == 2, wv.rank == 2, xv.shape[1] == wv.shape[1] else {
            throw CNNError.shapeMismatch("linear: input \(xv.shape) does not fit weight \(wv.shape) (expects [N, \(wv.rank == 2 ? wv.shape[1] : 0)])")
        }
        let n = xv.shape[0], inF = xv.shape[1], outF = wv.shape[0]
        if let bias, bias.shape != [outF] {
            throw CNNError.shapeMismatch("linear: bias shape \(bias.shape) does not match [\(outF)]")
        }
        let y = try Tensor(uninitializedShape: [n, outF])
        var ep = cnn_epilogue(bias: bias?.value.basePointer, bias_per_column: 1, residual: nil, residual_ld: 0, relu: 0)
        try check(cnn_sgemm(CNN_NO_TRANS, CNN_TRANS, n, outF, inF, 1, xv.basePointer, inF, wv.basePointer, inF, 0,
                             y.basePointer, outF, &ep), "linear \(xv.shape) x \(wv.shape)")
        var inputs = [x, weight]
        if let bias { inputs.append(bias) }
        let needX = x.requiresGradient, needW = weight.requiresGradient
        return Variable.result(y, operation: "linear", inputs: inputs) { dy in
            let dx: Tensor? = needX ? try dy.matmul(wv) : nil                       // [N,out] x [out,in]
            let dw: Tensor? = needW ? try dy.matmul(xv, transposeSelf: true) : nil  // [out,N] x [N,in]
            if bias == nil { return [dx, dw] }
            return [dx, dw, try dy.sum(alongAxes: [0])]
        }
    }
}
