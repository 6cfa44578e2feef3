import Testing
@testable import CNN

/// Central finite differences of `loss()` with respect to a few entries of each parameter,
/// compared with the gradients from one backward pass.
///
/// The networks contain ReLUs: when a perturbation moves a pre-activation across zero, the central
/// difference straddles the kink and is wrong by up to the change of slope, however correct the
/// backward pass. So a small fraction of samples (`allowedOutliers`) may miss the tolerance; every
/// other sample must meet it.
private func gradientCheck(_ params: [(String, Variable)], samples: Int = 6, step: Float = 1e-3,
                           tolerance: Float = 2e-2, allowedOutliers: Double = 0.1,
                           loss: () throws -> Variable) throws {
    for (_, p) in params { p.zeroGradient() }
    let l = try loss()
    try l.backward()
    var g = SeededGenerator(seed: 99)
    var checked = 0
    var outliers: [String] = []
    for (name, p) in params {
        let analytic = try #require(p.gradient, "no gradient for \(name)")
        for _ in 0..<min(samples, p.value.count) {
            let i = Int(g.next() % UInt64(p.value.count))
            let original = p.value.scalars[i]
            func evaluate(_ v: Float) throws -> Double {
                p.update { t in t.withUnsafeMutableBufferPointer { $0[i] = v } }
                return Double(try GradientMode.withoutGradients { try loss().value.item() })
            }
            let plus = try evaluate(original + step), minus = try evaluate(original - step)
            _ = try evaluate(original)
            let numeric = Float((plus - minus) / Double(2 * step))
            let a = analytic.scalars[i]
            let scale = max(abs(numeric), abs(a), 1e-2)
            checked += 1
            if !(abs(numeric - a) / scale <= tolerance) {
                outliers.append("\(name)[\(i)]: analytic \(a), numeric \(numeric)")
            }
        }
    }
    #expect(Double(outliers.count) <= allowedOutliers * Double(checked), "\(outliers.count) of \(checked) samples off: \(outliers)")
}

/// y = relu?(conv(x, w) + bias + residual) summed in Double, straight from the definition.
private func referenceConvolution(_ x: Tensor, _ w: Tensor, bias: Tensor, residual: Tensor?, relu: Bool,
                                  stride: Int, padding: Int) -> [Float] {
    let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (k, r, s) = (w.shape[0], w.shape[2], w.shape[3])
    let p = (h + 2 * padding - r) / stride + 1, q = (wd + 2 * padding - s) / stride + 1
    let xs = x.scalars, ws = w.scalars, bs = bias.scalars, rs = residual?.scalars
    var out = [Float](repeating: 0, count: n * k * p * q)
    for img in 0..<n { for o in 0..<k { for i in 0..<p { for j in 0..<q {
        var acc = Double(bs[o])
        for ch in 0..<c { for u in 0..<r { for v in 0..<s {
            let hh = i * stride - padding + u, ww = j * stride - padding + v
            guard hh >= 0, hh < h, ww >= 0, ww < wd else { continue }
            acc += Double(xs[((img * c + ch) * h + hh) * wd + ww]) * Double(ws[((o * c + ch) * r + u) * s + v])
        } } }
        let at = ((img * k + o) * p + i) * q + j
        if let rs { acc += Double(rs[at]) }
        out[at] = Float(relu ? max(acc, 0) : acc)
    } } } }
    return out
}

@Suite struct AutogradTests {
    /// A layer whose weights are being trained runs direct, im2col and 1x1 GEMM one-shot (no plan:
    /// the weights change after the step); Winograd keeps its cached plan. Either way the output
    /// matches the float64 definition, with and without gradients, with the fused residual and ReLU.
    @Test(arguments: [(ConvolutionAlgorithm.auto, 3, 2), (.direct, 3, 2), (.im2col, 3, 1), (.gemm1x1, 1, 2),
                      (.winograd2x2, 3, 1)])
    func trainedConvolutionsSkipThePlanAndMatchTheDefinition(_ algorithm: ConvolutionAlgorithm, _ kernel: Int, _ stride: Int) throws {
        let conv = try Conv2d(inputChannels: 5, outputChannels: 7, kernelSize: kernel, stride: stride,
                              padding: kernel / 2, algorithm: algorithm)
        var g = SeededGenerator(seed: 21)
        let x = try Tensor.uniform(shape: [2, 5, 9, 9], lower: -1, upper: 1, generator: &g)
        let q = (9 + 2 * (kernel / 2) - kernel) / stride + 1
        let residual = try Tensor.uniform(shape: [2, 7, q, q], lower: -1, upper: 1, generator: &g)
        let bias = try #require(conv.bias).value
        for (res, relu) in [(nil, false), (residual, true)] as [(Tensor?, Bool)] {
            let expected = referenceConvolution(x, conv.weight.value, bias: bias, residual: res, relu: relu,
                                                stride: stride, padding: kernel / 2)
            func run() throws -> Tensor {
                try Functional.conv2d(Variable(x), weight: conv.weight, bias: conv.bias, stride: (stride, stride),
                                      padding: (kernel / 2, kernel / 2), dilation: (1, 1), groups: 1,
                                      algorithm: algorithm, cache: conv._cache, residual: res, relu: relu).value
            }
            conv._cache.removeAll()
            let trained = try run()
            #expect(conv._cache.count == (algorithm.isWinograd ? 1 : 0))
            let frozen = try GradientMode.withoutGradients { try run() }
            #expect(conv._cache.count == 1)
            let scale = max(expected.map(abs).max() ?? 0, 1e-30)
            for y in [trained, frozen] {
                #expect(y.shape == [2, 7, q, q])
                let error = zip(y.scalars, expected).map { abs($0 - $1) }.max() ?? .infinity
                #expect(error / scale < 1e-5, "\(algorithm) residual \(res != nil): relative error \(error / scale)")
            }
        }
    }

    @Test func elementwiseAndBroadcastGradients() throws {
        let a = Variable(try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6]), requiresGradient: true)
        let b = Variable(try Tensor(shape: [3], scalars: [1, -1, 2]), requiresGradient: true)
        let y = try Functional.sum(Functional.multiply(Functional.add(a, b), a))
        try y.backward()
        // d/da (a+b)*a = 2a + b ; d/db = sum over rows of a
        #expect(a.gradient?.scalars == [3, 3, 8, 9, 9, 14])
        #expect(b.gradient?.scalars == [5, 7, 9])
    }

    @Test func fanOutAccumulatesAndGradientsAccumulateAcrossPasses() throws {
        let x = Variable(Tensor([2]), requiresGradient: true)
        let y = try Functional.sum(Functional.add(Functional.multiply(x, x), x))  // x^2 + x
        try y.backward()
        #expect(x.gradient?.scalars == [5])
        let y2 = try Functional.sum(Functional.scale(x, by: 3))
        try y2.backward()
        #expect(x.gradient?.scalars == [8])  // accumulated, not overwritten
        x.zeroGradient()
        #expect(x.gradient == nil)
    }

    @Test func backwardTwiceIsAnError() throws {
        let x = Variable(Tensor([1, 2]), requiresGradient: true)
        let y = try Functional.sum(Functional.multiply(x, x))
        try y.backward()
        #expect(throws: CNNError.autograd("backward: this graph was already used by an earlier backward pass (operation sum); run the forward pass again")) {
            try y.backward()
        }
        #expect(x.gradient?.scalars == [2, 4])
    }

    @Test func nonScalarNeedsSeedAndNothingIsRecordedWithoutGradients() throws {
        let x = Variable(Tensor([1, 2]), requiresGradient: true)
        let y = try Functional.multiply(x, x)
        #expect(throws: CNNError.autograd("backward: value of shape [2] is not a scalar; pass a seed gradient")) { try y.backward() }
        try y.backward(seed: Tensor([1, 1]))
        #expect(x.gradient?.scalars == [2, 4])
        let z = try GradientMode.withoutGradients { try Functional.multiply(x, x) }
        #expect(z.isLeaf)
        #expect(!z.requiresGradient)
    }

    @Test func customOperation() throws {
        let cube = CustomOperation(name: "cube", forward: { $0[0].map { $0 * $0 * $0 } },
                                   backward: { inputs, _, g in [try g * inputs[0].map { 3 * $0 * $0 }] })
        let x = Variable(Tensor([1, 2, 3]), requiresGradient: true)
        try Functional.sum(try cube([x])).backward()
        #expect(x.gradient?.scalars == [3, 12, 27])
    }

    @Test func residualNetworkWithBatchNormMatchesFiniteDifferences() throws {
        GlobalGenerator.seed(3)
        let block = Residual(body: Sequential(
            try Conv2d(inputChannels: 3, outputChannels: 3, kernelSize: 3, padding: 1, bias: false),
            try BatchNorm2d(features: 3), ReLU(),
            try Conv2d(inputChannels: 3, outputChannels: 3, kernelSize: 3, padding: 1, bias: false),
            try BatchNorm2d(features: 3)))
        let net = Sequential(
            try Conv2d(inputChannels: 2, outputChannels: 3, kernelSize: 3, padding: 1), ReLU(),
            block,
            Residual(body: Sequential(try Conv2d(inputChannels: 3, outputChannels: 4, kernelSize: 1, stride: 2), try BatchNorm2d(features: 4)),
                     shortcut: Sequential(try Conv2d(inputChannels: 3, outputChannels: 4, kernelSize: 1, stride: 2, bias: false))),
            try AdaptiveAvgPool2d(outputSize: (1, 1)), Flatten(), try Linear(inputFeatures: 4, outputFeatures: 3))
        #expect(net.namedParameters().map(\.0).contains("2.body.1.weight"))
        var g = SeededGenerator(seed: 5)
        let x = Variable(try Tensor.normal(shape: [4, 2, 6, 5], generator: &g))
        // Batch norm in training mode over few values per channel amplifies every ReLU-kink crossing
        // of the float32 central difference, so this whole-network check uses a 5% tolerance; the
        // kernels themselves are checked against float64 finite differences in CNNKernelsTests.
        try gradientCheck(net.namedParameters(), tolerance: 5e-2) {
            try Functional.crossEntropy(logits: try net(x), labels: [0, 1, 2, 1])
        }
    }

    @Test func inceptionStyleConcatAndPoolingMatchFiniteDifferences() throws {
        GlobalGenerator.seed(4)
        let inception = Concat([
            try Conv2d(inputChannels: 3, outputChannels: 2, kernelSize: 1),
            Sequential(try Conv2d(inputChannels: 3, outputChannels: 2, kernelSize: 1), ReLU(),
                       try Conv2d(inputChannels: 2, outputChannels: 3, kernelSize: 3, padding: 1)),
            Sequential(try MaxPool2d(kernelSize: 3, stride: 1, padding: 1, ceilMode: true),
                       try Conv2d(inputChannels: 3, outputChannels: 2, kernelSize: 1)),
        ])
        let net = Sequential(inception, try LocalResponseNorm(size: 3, alpha: 1e-2, beta: 0.75, k: 2),
                             try AvgPool2d(kernelSize: 2), Flatten(), try Linear(inputFeatures: 7 * 2 * 2, outputFeatures: 3))
        var g = SeededGenerator(seed: 6)
        let x = Variable(try Tensor.normal(shape: [2, 3, 4, 4], generator: &g), requiresGradient: true)
        try gradientCheck(net.namedParameters() + [("x", x)]) {
            try Functional.crossEntropy(logits: try net(x), labels: [2, 0], labelSmoothing: 0.1)
        }
    }

    @Test func dropoutWithFixedSeedMatchesFiniteDifferences() throws {
        GlobalGenerator.seed(8)
        let fc = try Linear(inputFeatures: 10, outputFeatures: 4)
        var g = SeededGenerator(seed: 9)
        let x = Variable(try Tensor.normal(shape: [3, 10], generator: &g), requiresGradient: true)
        try gradientCheck(fc.namedParameters() + [("x", x)]) {
            let h = try Functional.dropout(try fc(x), probability: 0.5, seed: 1234)
            return try Functional.meanSquaredError(h, target: try Tensor(zeros: [3, 4]))
        }
    }

    @Test func smallNetworkLearnsSyntheticData() throws {
        // Two Gaussian blobs per class in 2-D, 3 classes; an MLP must fit them to a low loss.
        GlobalGenerator.seed(10)
        var g = SeededGenerator(seed: 11)
        let n = 96
        var xs: [Float] = [], labels: [Int32] = []
        let centers: [(Float, Float)] = [(2, 0), (-1, 1.7), (-1, -1.7)]
        for i in 0..<n {
            let c = i % 3
            xs += [centers[c].0 + 0.4 * g.nextNormal(), centers[c].1 + 0.4 * g.nextNormal()]
            labels.append(Int32(c))
        }
        let x = Variable(try Tensor(shape: [n, 2], scalars: xs))
        let net = Sequential(try Linear(inputFeatures: 2, outputFeatures: 16), ReLU(), try Linear(inputFeatures: 16, outputFeatures: 3))
        var last: Float = .infinity
        for _ in 0..<200 {
            net.zeroGradients()
            let loss = try Functional.crossEntropy(logits: try net(x), labels: labels)
            try loss.backward()
            last = try loss.value.item()
            for p in net.parameters() { try p.update { try $0.add(p.gradient!, scaledBy: -0.2) } }
        }
        #expect(last < 0.05, "final loss \(last)")
        let predictions = try net(x.value).argmaxIndices(alongAxis: 1)
        #expect(zip(predictions, labels).filter { $0 == Int($1) }.count == n)
    }

    @Test func moduleNamesFollowPyTorch() throws {
        let bn = try BatchNorm2d(features: 4)
        #expect(bn.namedBuffers().map(\.0) == ["running_mean", "running_var", "num_batches_tracked"])
        #expect(bn.namedParameters().map(\.0) == ["weight", "bias"])
        let seq = Sequential(try Conv2d(inputChannels: 1, outputChannels: 2, kernelSize: 3), ReLU(), bn)
        #expect(seq.stateDictionary().map(\.0) == ["0.weight", "0.bias", "2.weight", "2.bias", "2.running_mean", "2.running_var", "2.num_batches_tracked"])
        seq.eval()
        #expect(!bn.isTraining)
        seq.train()
        #expect(bn.isTraining)
    }

    @Test func layerErrorsNameShapes() throws {
        let conv = try Conv2d(inputChannels: 3, outputChannels: 8, kernelSize: 3)
        #expect(throws: CNNError.shapeMismatch("Conv2d(3->8): input shape [1, 4, 8, 8] does not have 3 channels ([N, 3, H, W] expected)")) {
            try conv(Variable(try Tensor(zeros: [1, 4, 8, 8])))
        }
        #expect(throws: CNNError.shapeMismatch("conv2d: kernel 3x3 (dilation 1x1) is larger than the padded input 2x2")) {
            try conv(Variable(try Tensor(zeros: [1, 3, 2, 2])))
        }
        #expect(throws: CNNError.invalidArgument("Conv2d: stride (0, 0) must be at least 1")) {
            try Conv2d(inputChannels: 3, outputChannels: 8, kernelSize: 3, stride: 0)
        }
        #expect(throws: CNNError.invalidArgument("Conv2d: groups 2 must divide input channels 3 and output channels 8")) {
            try Conv2d(inputChannels: 3, outputChannels: 8, kernelSize: 3, groups: 2)
        }
        let five = try Conv2d(inputChannels: 3, outputChannels: 8, kernelSize: 5, algorithm: .winograd6x6)
        #expect(throws: CNNError.unsupported("conv2d: algorithm winograd6x6 does not apply to N=1 C=3 H=8 W=8 K=8 5x5 s1 p0 d1 g1; applicable: direct, im2col, winograd2x2, winograd4x4")) {
            try five(Variable(try Tensor(zeros: [1, 3, 8, 8])))
        }
        #expect(throws: CNNError.invalidArgument("crossEntropy: label 3 at index 1 is outside 0..<3")) {
            try Functional.crossEntropy(logits: Variable(try Tensor(zeros: [2, 3])), labels: [0, 3])
        }
        #expect(throws: CNNError.shapeMismatch("crossEntropy: 1 labels for a batch of 2 (logits [2, 3])")) {
            try Functional.crossEntropy(logits: Variable(try Tensor(zeros: [2, 3])), labels: [0])
        }
        #expect(throws: CNNError.invalidArgument("maxPool2d: padding (2, 2) must be between 0 and half the kernel size 3x3")) {
            try Functional.maxPool2d(Variable(try Tensor(zeros: [1, 1, 8, 8])), kernel: (3, 3), padding: (2, 2))
        }
    }

    @Test func everyConvolutionAlgorithmGivesTheSameLayerOutput() throws {
        GlobalGenerator.seed(12)
        let conv = try Conv2d(inputChannels: 16, outputChannels: 24, kernelSize: 3, padding: 1)
        var g = SeededGenerator(seed: 13)
        let x = try Tensor.normal(shape: [2, 16, 11, 9], generator: &g)
        conv.algorithm = .direct
        let reference = try conv(x)
        for alg in [ConvolutionAlgorithm.im2col, .winograd2x2, .winograd4x4, .winograd6x6, .auto, .autotune] {
            conv.algorithm = alg
            let y = try conv(x)
            let err = y.maxAbsoluteDifference(reference) / max(reference.max(), -reference.min())
            #expect(err < 1e-3, "\(alg): relative error \(err)")
        }
    }

    /// A 5x5 layer on winograd2x2 (winograd4x4) runs F(2x2, 5x5) (F(4x4, 5x5)) forward and for both
    /// gradients: each within 1e-4 of the same layer on im2col, and different from it (so it did run); the bias gradient,
    /// a sum of dy, is the same bits.
    @Test func fiveByFiveWinogradForwardAndGradients() throws {
        GlobalGenerator.seed(25)
        let conv = try Conv2d(inputChannels: 32, outputChannels: 20, kernelSize: 5, padding: 2)
        var g = SeededGenerator(seed: 26)
        let x = try Tensor.normal(shape: [2, 32, 13, 10], generator: &g)
        func run(_ alg: ConvolutionAlgorithm) throws -> (y: Tensor, dx: Tensor, dw: Tensor, db: Tensor) {
            conv.algorithm = alg
            conv.zeroGradients()
            let input = Variable(x, requiresGradient: true)
            let y = try conv(input)
            try Functional.sum(try Functional.multiply(y, y)).backward()
            return (y.value, input.gradient!, conv.weight.gradient!, conv.bias!.gradient!)
        }
        let gemm = try run(.im2col)
        for tile in [ConvolutionAlgorithm.winograd2x2, .winograd4x4] {
            let wino = try run(tile)
            let err = wino.y.maxAbsoluteDifference(gemm.y) / max(gemm.y.max(), -gemm.y.min())
            #expect(err < 1e-4, "forward relative error \(err)")
            #expect(err > 0, "\(tile): rounds like the GEMM, so the forward did not run Winograd")
            // The gradients of one dy (twice the Winograd output), taken by each algorithm.
            let dy = wino.y * 2
            conv.algorithm = .im2col
            conv.zeroGradients()
            let input = Variable(x, requiresGradient: true)
            try conv(input).backward(seed: dy)
            let dxErr = wino.dx.maxAbsoluteDifference(input.gradient!) / max(input.gradient!.max(), -input.gradient!.min())
            #expect(dxErr < 1e-4 && dxErr > 0, "data gradient relative difference \(dxErr)")
            let dwErr = wino.dw.maxAbsoluteDifference(conv.weight.gradient!) / max(conv.weight.gradient!.max(), -conv.weight.gradient!.min())
            #expect(dwErr < 1e-4 && dwErr > 0, "weight gradient relative difference \(dwErr)")
            #expect(conv.bias!.gradient!.scalars == wino.db.scalars)
        }
    }
}
