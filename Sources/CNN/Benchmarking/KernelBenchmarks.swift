import CNNKernels

// The benchmark bodies shared by `cnn bench` and the `Benchmarks/` package: each class owns the
// buffers of one case, filled once with a deterministic pattern, and `run()` is the call that is
// timed (no allocation inside it). This is the one file of the benchmarking area that talks to the
// C module directly.

/// Monotonic wall-clock seconds (the kernels' clock), for timing benchmark bodies.
public func benchmarkClock() -> Double { cnn_now() }

/// Median and minimum milliseconds of `repetitions` calls of `body` after `warmups` untimed calls.
///
/// - Throws: whatever `body` throws, and ``CNNError/invalidArgument(_:)`` when `repetitions` < 1.
public func benchmarkMilliseconds(repetitions: Int, warmups: Int = 1,
                                  _ body: () throws -> Void) throws -> (median: Double, minimum: Double) {
    guard repetitions >= 1 else {
        throw CNNError.invalidArgument("benchmark: repetitions must be at least 1, got \(repetitions)")
    }
    for _ in 0..<max(warmups, 0) { try body() }
    var samples: [Double] = []
    samples.reserveCapacity(repetitions)
    for _ in 0..<repetitions {
        let t0 = cnn_now()
        try body()
        samples.append((cnn_now() - t0) * 1e3)
    }
    samples.sort()
    return (samples[samples.count / 2], samples[0])
}

/// Owned float buffers with a deterministic fill in [-1, 1), released together.
final class BenchmarkBuffers {
    private var floats: [UnsafeMutablePointer<Float>] = []
    private var ints: [UnsafeMutablePointer<Int32>] = []
    private var seed: UInt32

    init(seed: UInt32 = 12345) { self.seed = seed }

    deinit {
        floats.forEach { $0.deallocate() }
        ints.forEach { $0.deallocate() }
    }

    /// `n` floats (at least one allocated), filled with a linear-congruential pattern in [-1, 1).
    func floats(_ n: Int) -> UnsafeMutablePointer<Float> {
        let p = UnsafeMutablePointer<Float>.allocate(capacity: max(n, 1))
        for i in 0..<n {
            seed = seed &* 1_664_525 &+ 1_013_904_223
            p[i] = Float(seed >> 8) * 0x1p-23 - 1
        }
        floats.append(p)
        return p
    }

    /// `n` 32-bit integers, uninitialised.
    func ints(_ n: Int) -> UnsafeMutablePointer<Int32> {
        let p = UnsafeMutablePointer<Int32>.allocate(capacity: max(n, 1))
        ints.append(p)
        return p
    }
}

private func checkBenchmark(_ s: cnn_status, _ what: @autoclosure () -> String) throws {
    guard s == CNN_OK else {
        throw CNNError.invalidArgument("\(what()): kernel returned status \(s.rawValue)")
    }
}

// MARK: GEMM

/// One SGEMM case ready to time: `C = op(A) * op(B)` on buffers allocated once.
public final class GEMMBenchmark {
    /// The case.
    public let benchmarkCase: GEMMBenchmarkCase
    private let buffers = BenchmarkBuffers()
    private let a, b, c: UnsafeMutablePointer<Float>

    /// Allocates and fills the matrices of `benchmarkCase`.
    ///
    /// - Throws: ``CNNError/invalidArgument(_:)`` when a dimension is not positive.
    public init(_ benchmarkCase: GEMMBenchmarkCase) throws {
        guard benchmarkCase.m >= 1, benchmarkCase.n >= 1, benchmarkCase.k >= 1 else {
            throw CNNError.invalidArgument("GEMM case \(benchmarkCase.name): m, n, k must be positive, got \(benchmarkCase.m), \(benchmarkCase.n), \(benchmarkCase.k)")
        }
        self.benchmarkCase = benchmarkCase
        a = buffers.floats(benchmarkCase.m * benchmarkCase.k)
        b = buffers.floats(benchmarkCase.k * benchmarkCase.n)
        c = buffers.floats(benchmarkCase.m * benchmarkCase.n)
    }

    /// One SGEMM call with the active ISA variant and thread count.
    public func run() throws {
        let g = benchmarkCase
        let ta = g.transposeA ? CNN_TRANS : CNN_NO_TRANS, tb = g.transposeB ? CNN_TRANS : CNN_NO_TRANS
        let lda = g.transposeA ? g.m : g.k, ldb = g.transposeB ? g.k : g.n
        try checkBenchmark(cnn_sgemm(ta, tb, g.m, g.n, g.k, 1, a, lda, b, ldb, 0, c, g.n, nil), "sgemm \(g.name)")
    }
}

// MARK: Convolution

/// What a ``ConvolutionBenchmark`` times.
public enum ConvolutionBenchmarkPass: String, Sendable, CaseIterable {
    /// The forward pass through a plan prepared once (bias added in the epilogue).
    case forward
    /// The gradient with respect to the input.
    case backwardData = "backward-data"
    /// The gradients with respect to the weight and the bias.
    case backwardWeight = "backward-weight"
}

/// One convolution case ready to time with one algorithm (forward) or one backward pass.
public final class ConvolutionBenchmark {
    /// The case.
    public let benchmarkCase: ConvBenchmarkCase
    /// The pass timed.
    public let pass: ConvolutionBenchmarkPass
    /// The algorithm requested (forward only; `auto` for the backward passes).
    public let requestedAlgorithm: ConvolutionAlgorithm
    /// The algorithm the plan runs (`auto` resolved); `nil` for the backward passes.
    public let algorithm: ConvolutionAlgorithm?
    /// Bytes of prepared weights plus one call's scratch (forward only; 0 otherwise).
    public let planBytes: Int
    /// Bytes of one call's scratch alone, all threads together (forward only; 0 otherwise): the
    /// figure the 64 MiB bound on any listed case applies to.
    public let workspaceBytes: Int
    private let buffers = BenchmarkBuffers()
    private var shape: cnn_conv_shape
    private let plan: OpaquePointer?
    private let x, w, bias, y, dy: UnsafeMutablePointer<Float>

    /// Allocates the case's tensors and, for the forward pass, prepares the plan.
    ///
    /// - Throws: ``CNNError/unsupported(_:)`` when `algorithm` does not apply to the case's shape
    ///   (or its kernels are not in this build), ``CNNError/invalidArgument(_:)`` for a bad shape.
    public init(_ benchmarkCase: ConvBenchmarkCase, algorithm: ConvolutionAlgorithm = .auto,
                pass: ConvolutionBenchmarkPass = .forward) throws {
        let c = benchmarkCase
        let geometry = c.geometry
        _ = try geometry.outputSize()
        self.benchmarkCase = c
        self.pass = pass
        self.requestedAlgorithm = algorithm
        shape = geometry.cShape
        x = buffers.floats(c.batch * c.inputChannels * c.height * c.width)
        w = buffers.floats(c.outputChannels * (c.inputChannels / c.groups) * c.kernelSize * c.kernelSize)
        bias = buffers.floats(c.outputChannels)
        let yCount = c.batch * c.outputChannels * c.outputHeight * c.outputWidth
        y = buffers.floats(pass == .backwardData ? c.batch * c.inputChannels * c.height * c.width : yCount)
        dy = buffers.floats(pass == .forward ? 0 : yCount)
        guard pass == .forward else {
            plan = nil
            self.algorithm = nil
            planBytes = 0
            workspaceBytes = 0
            return
        }
        guard algorithm != .autotune else {
            throw CNNError.unsupported("convolution benchmark \(c.name): time each concrete algorithm instead of autotune")
        }
        if algorithm != .auto, cnn_conv_algorithm_applies(algorithm.cValue, &shape) == 0 {
            throw CNNError.unsupported("convolution benchmark \(c.name): \(algorithm.rawValue) does not apply to \(geometry)")
        }
        var status = CNN_OK
        guard let p = cnn_conv_plan_create(algorithm.cValue, &shape, w, &status) else {
            throw CNNError.unsupported("convolution benchmark \(c.name): cannot prepare \(algorithm.rawValue) (status \(status.rawValue))")
        }
        plan = p
        self.algorithm = ConvolutionAlgorithm(cnn_conv_plan_algorithm(p))
        workspaceBytes = cnn_conv_plan_workspace_bytes(p)
        planBytes = cnn_conv_plan_weight_bytes(p) + workspaceBytes
    }

    deinit { if let plan { cnn_conv_plan_destroy(plan) } }

    /// One call of the pass.
    public func run() throws {
        switch pass {
        case .forward:
            try checkBenchmark(cnn_conv_plan_forward(plan, x, bias, nil, 0, y), "conv \(benchmarkCase.name) forward")
        case .backwardData:
            // `y` holds dx here: the gradient with respect to the input is written (`=`).
            try checkBenchmark(cnn_conv2d_backward_data(&shape, dy, w, y), "conv \(benchmarkCase.name) backward-data")
        case .backwardWeight:
            // Parameter gradients accumulate (`+=`) into `w` and `bias`, which only scales them.
            try checkBenchmark(cnn_conv2d_backward_weight(&shape, x, dy, w, bias), "conv \(benchmarkCase.name) backward-weight")
        }
    }
}

extension ConvBenchmarkCase {
    /// The case as a ``ConvolutionGeometry`` (square kernel, equal stride and padding, no dilation).
    public var geometry: ConvolutionGeometry {
        ConvolutionGeometry(batch: batch, inputChannels: inputChannels, height: height, width: width,
                            outputChannels: outputChannels, kernelSize: (kernelSize, kernelSize),
                            stride: (stride, stride), padding: (padding, padding), groups: groups)
    }

    /// The concrete algorithms that apply to this case, for benchmarking each one.
    public var applicableAlgorithms: [ConvolutionAlgorithm] { geometry.applicableAlgorithms }
}

// MARK: Layers

/// One non-convolution kernel case (``LayerBenchCase``) ready to time.
public final class LayerBenchmark {
    /// The case.
    public let benchmarkCase: LayerBenchCase
    /// Bytes each call moves to or from memory (every pass the kernel makes over its arrays): these
    /// kernels are bound by memory bandwidth, so bytes per second is their meaningful rate.
    public private(set) var bytesMoved: Double = 0
    private let buffers = BenchmarkBuffers()
    private var body: () -> cnn_status = { CNN_OK }

    /// Allocates the buffers of `benchmarkCase` and runs the kernel once to validate the shape.
    ///
    /// - Throws: ``CNNError/invalidArgument(_:)`` when the kernel rejects the case's shape.
    public init(_ benchmarkCase: LayerBenchCase) throws {
        self.benchmarkCase = benchmarkCase
        try prepare()
        try run()
    }

    /// One call of the kernel (or kernel pair).
    public func run() throws {
        try checkBenchmark(body(), "layer case \(benchmarkCase.name)")
    }

    /// The pooling shape of a layer case (square window, no ceil mode).
    static func poolShape(_ c: LayerBenchCase, countIncludePad: Int32) -> cnn_pool_shape {
        cnn_pool_shape(N: Int64(c.shape[0]), C: Int64(c.shape[1]), H: Int64(c.shape[2]),
                       W: Int64(c.shape[3]), kernel_h: Int64(c.kernel), kernel_w: Int64(c.kernel),
                       stride_h: Int64(c.stride), stride_w: Int64(c.stride), pad_h: Int64(c.padding),
                       pad_w: Int64(c.padding), ceil_mode: 0, count_include_pad: countIncludePad)
    }

    /// The number of output values of a pooling case.
    static func poolOutputCount(_ c: LayerBenchCase, _ s: inout cnn_pool_shape) throws -> Int {
        var P: Int64 = 0, Q: Int64 = 0
        try checkBenchmark(cnn_pool_output_size(&s, &P, &Q), "layer case \(c.name) output size")
        return c.shape[0] * c.shape[1] * Int(P * Q)
    }

    private func prepare() throws {
        let c = benchmarkCase
        let n = c.elementCount
        let f = Double(MemoryLayout<Float>.size)
        switch c.kind {
        case .maxPool, .maxPoolWithIndices:
            var s = Self.poolShape(c, countIncludePad: 1)
            let out = try Self.poolOutputCount(c, &s)
            let x = buffers.floats(n), y = buffers.floats(out)
            let withIndices = c.kind == .maxPoolWithIndices
            let ix = withIndices ? buffers.ints(out) : nil
            body = { cnn_maxpool2d_forward(&s, x, y, ix) }
            bytesMoved = f * Double(n + out + (withIndices ? out : 0))
        case .batchNormInference:
            let N = Int64(c.shape[0]), C = c.shape[1], HW = Int64(c.shape[2] * c.shape[3])
            let x = buffers.floats(n), y = buffers.floats(n)
            let g = buffers.floats(C), b = buffers.floats(C), m = buffers.floats(C), v = buffers.floats(C)
            for i in 0..<C { v[i] = 1 + abs(v[i]) }
            body = { cnn_batchnorm2d_forward_inference(N, Int64(C), HW, x, g, b, m, v, 1e-5, y) }
            bytesMoved = f * Double(2 * n)
        case .batchNormTraining:
            let N = Int64(c.shape[0]), C = c.shape[1], HW = Int64(c.shape[2] * c.shape[3])
            let x = buffers.floats(n), y = buffers.floats(n), dy = buffers.floats(n), dx = buffers.floats(n)
            let g = buffers.floats(C), b = buffers.floats(C), rm = buffers.floats(C), rv = buffers.floats(C)
            let sm = buffers.floats(C), si = buffers.floats(C), dg = buffers.floats(C), db = buffers.floats(C)
            for i in 0..<C { rv[i] = 1 }
            body = {
                let s = cnn_batchnorm2d_forward_train(N, Int64(C), HW, x, g, b, 1e-5, 0.1, rm, rv, sm, si, y)
                guard s == CNN_OK else { return s }
                return cnn_batchnorm2d_backward(N, Int64(C), HW, x, dy, g, sm, si, dx, dg, db)
            }
            // Forward: statistics pass over x, normalisation pass (read x, write y).
            // Backward: sums pass (x, dy), gradient pass (read x, dy, write dx).
            bytesMoved = f * Double(8 * n)
        case .batchNormBackward:
            let N = Int64(c.shape[0]), C = c.shape[1], HW = Int64(c.shape[2] * c.shape[3])
            let x = buffers.floats(n), dy = buffers.floats(n), dx = buffers.floats(n)
            let g = buffers.floats(C), sm = buffers.floats(C), si = buffers.floats(C)
            let dg = buffers.floats(C), db = buffers.floats(C)
            for i in 0..<C { si[i] = 1 }
            body = { cnn_batchnorm2d_backward(N, Int64(C), HW, x, dy, g, sm, si, dx, dg, db) }
            // Sums pass (x, dy), gradient pass (read x, dy, write dx).
            bytesMoved = f * Double(5 * n)
        case .avgPool, .avgPoolTraining:
            var s = Self.poolShape(c, countIncludePad: 0)
            let out = try Self.poolOutputCount(c, &s)
            let x = buffers.floats(n), y = buffers.floats(out)
            if c.kind == .avgPool {
                body = { cnn_avgpool2d_forward(&s, x, y) }
                bytesMoved = f * Double(n + out)
            } else {
                let dx = buffers.floats(n)
                body = {
                    let st = cnn_avgpool2d_forward(&s, x, y)
                    guard st == CNN_OK else { return st }
                    return cnn_avgpool2d_backward(&s, y, dx)
                }
                bytesMoved = f * Double(2 * (n + out))
            }
        case .globalAvgPool:
            let N = Int64(c.shape[0]), C = Int64(c.shape[1]), H = Int64(c.shape[2]), W = Int64(c.shape[3])
            let out = c.shape[0] * c.shape[1]
            let x = buffers.floats(n), y = buffers.floats(out), dx = buffers.floats(n)
            body = {
                let st = cnn_adaptive_avgpool2d_forward(N, C, H, W, 1, 1, x, y)
                guard st == CNN_OK else { return st }
                return cnn_adaptive_avgpool2d_backward(N, C, H, W, 1, 1, y, dx)
            }
            bytesMoved = f * Double(2 * (n + out))
        case .relu:
            let x = buffers.floats(n), y = buffers.floats(n)
            body = { cnn_relu_forward(Int64(n), x, y) }
            bytesMoved = f * Double(2 * n)
        case .lrn:
            let N = Int64(c.shape[0]), C = Int64(c.shape[1]), HW = Int64(c.shape[2] * c.shape[3])
            let size = Int64(c.kernel)
            let x = buffers.floats(n), y = buffers.floats(n), sc = buffers.floats(n)
            body = { cnn_lrn_forward(N, C, HW, size, 1e-4, 0.75, 2, x, y, sc) }
            bytesMoved = f * Double(3 * n)
        case .lrnTraining:
            let N = Int64(c.shape[0]), C = Int64(c.shape[1]), HW = Int64(c.shape[2] * c.shape[3])
            let size = Int64(c.kernel)
            let x = buffers.floats(n), y = buffers.floats(n), sc = buffers.floats(n)
            let dy = buffers.floats(n), dx = buffers.floats(n)
            body = {
                let st = cnn_lrn_forward(N, C, HW, size, 1e-4, 0.75, 2, x, y, sc)
                guard st == CNN_OK else { return st }
                return cnn_lrn_backward(N, C, HW, size, 1e-4, 0.75, 2, x, y, sc, dy, dx)
            }
            // Forward: read x, write y and the scale; backward: read x, y, scale, dy, write dx.
            bytesMoved = f * Double(8 * n)
        case .softmaxCrossEntropy:
            let rows = c.shape[0], classes = c.shape[1]
            let x = buffers.floats(n), probs = buffers.floats(n), dx = buffers.floats(n)
            let labels = buffers.ints(rows)
            for r in 0..<rows { labels[r] = Int32((r * 37) % classes) }
            body = {
                var loss: Float = 0
                let s = cnn_cross_entropy_forward(Int64(rows), Int64(classes), x, labels, 0.1, 0, &loss, probs)
                guard s == CNN_OK else { return s }
                return cnn_cross_entropy_backward(Int64(rows), Int64(classes), probs, labels, 0.1, 0, 1, dx)
            }
            bytesMoved = f * Double(4 * n)
        }
    }
}
