@testable import CNN
import CNNKernels
import Testing

enum InferenceTestSupport {
    /// Gives every batch norm non-trivial statistics and affine parameters, so that folding them
    /// into the convolutions is really exercised (fresh models have mean 0, variance 1, γ 1, β 0).
    static func randomizeBatchNorms(_ model: Module, seed: UInt64 = 7) throws {
        var g = SeededGenerator(seed: seed)
        for (_, m) in model.namedModules() {
            guard let bn = m as? BatchNorm2d else { continue }
            let c = [bn.features]
            bn.runningMean.value = try Tensor.uniform(shape: c, lower: -0.2, upper: 0.2, generator: &g)
            bn.runningVar.value = try Tensor.uniform(shape: c, lower: 0.5, upper: 1.5, generator: &g)
            try bn.weight.assign(try Tensor.uniform(shape: c, lower: 0.5, upper: 1.5, generator: &g))
            try bn.bias.assign(try Tensor.uniform(shape: c, lower: -0.2, upper: 0.2, generator: &g))
        }
    }

    static func input(_ shape: [Int], seed: UInt64 = 3) throws -> Tensor {
        var g = SeededGenerator(seed: seed)
        return try Tensor.uniform(shape: shape, lower: -1, upper: 1, generator: &g)
    }

    /// max |a − b| / max |b|.
    static func relativeError(_ a: Tensor, _ b: Tensor) -> Float {
        guard a.shape == b.shape else { return .infinity }
        let (x, y) = (a.scalars, b.scalars)
        let scale = max(y.map(abs).max() ?? 0, 1e-30)
        return zip(x, y).map { abs($0 - $1) }.max().map { $0 / scale } ?? 0
    }

    /// Compiles `model` (in eval mode) and checks the compiled output against the eager one.
    @discardableResult
    static func checkAgainstEager(_ model: Module, inputShape: [Int], algorithm: ConvolutionAlgorithm? = nil,
                                  tolerance: Float = 1e-4) throws -> InferenceModel {
        model.eval()
        let x = try input(inputShape)
        let expected = try model(x)
        let compiled = try model.compiled(inputShape: inputShape, algorithm: algorithm)
        let got = try compiled(x)
        #expect(got.shape == expected.shape)
        let err = relativeError(got, expected)
        #expect(err <= tolerance, "relative error \(err) above \(tolerance) for \(type(of: model)) \(inputShape) \(algorithm?.rawValue ?? "default")")
        return compiled
    }

    /// A small network with every block the ResNets use: batch norm, bottlenecks with and without a
    /// projection shortcut, global pooling.
    static func bottleneckNet() throws -> Module {
        let downsample = Sequential(try Conv2d(inputChannels: 16, outputChannels: 32, kernelSize: 1, stride: 2, bias: false),
                                    try BatchNorm2d(features: 32))
        let net = Sequential(
            try Conv2d(inputChannels: 3, outputChannels: 16, kernelSize: 3, padding: 1, bias: false), try BatchNorm2d(features: 16), ReLU(),
            try Bottleneck(inputChannels: 16, width: 8, stride: 2, downsample: downsample),
            try Bottleneck(inputChannels: 32, width: 8),
            try AdaptiveAvgPool2d(outputSize: (1, 1)), Flatten(), try Linear(inputFeatures: 32, outputFeatures: 5))
        try randomizeBatchNorms(net)
        return net
    }
}

private final class Doubler: Module {
    override func forward(_ input: Variable) throws -> Variable { try Functional.add(input, input) }
}

@Suite("Inference: compiled zoo models equal the eager forward")
struct InferenceZooTests {
    typealias S = InferenceTestSupport

    @Test func resnet18() throws {
        GlobalGenerator.seed(11)
        let model = try ResNet(depth: .resnet18, classes: 10)
        try S.randomizeBatchNorms(model)
        let compiled = try S.checkAgainstEager(model, inputShape: [1, 3, 64, 64])
        // Every batch norm, ReLU and residual addition was fused into the 20 convolutions.
        let kinds = compiled.operations.map(\.kind)
        #expect(kinds.filter { $0 == "conv2d" }.count == 20)
        #expect(!kinds.contains("batchnorm") && !kinds.contains("relu") && !kinds.contains("add"))
        #expect(compiled.operations.filter { $0.detail.hasSuffix("+bn +add +relu") }.count == 8)
        // Forced Winograd F(6x6), the least accurate, on all 13 3x3 stride-1 layers.
        let w = try S.checkAgainstEager(model, inputShape: [1, 3, 64, 64], algorithm: .winograd6x6)
        #expect(w.operations.filter { $0.detail.contains("winograd6x6") }.count == 13)
    }

    @Test func bottlenecksAtBatchTwo() throws {
        GlobalGenerator.seed(12)
        let net = try S.bottleneckNet()
        let compiled = try S.checkAgainstEager(net, inputShape: [2, 3, 16, 16])
        #expect(!compiled.operations.map(\.kind).contains("batchnorm"))
        for algorithm in [ConvolutionAlgorithm.direct, .winograd2x2, .winograd4x4, .winograd6x6] {
            try S.checkAgainstEager(net, inputShape: [2, 3, 16, 16], algorithm: algorithm)
        }
        try S.checkAgainstEager(net, inputShape: [2, 3, 16, 16], algorithm: .im2col)
    }

    @Test func googlenet() throws {
        GlobalGenerator.seed(13)
        let model = try GoogLeNet(classes: 10)
        try S.randomizeBatchNorms(model)
        let compiled = try S.checkAgainstEager(model, inputShape: [1, 3, 64, 64])
        // Batch 1: every branch writes into its slice of the concatenated output; no copy is left.
        #expect(!compiled.operations.map(\.kind).contains("concat"))
        // The three 1x1 heads of each of the nine Inception modules run as one convolution.
        #expect(compiled.operations.filter { $0.detail.contains("+merge3") }.count == 9)
        try S.checkAgainstEager(model, inputShape: [1, 3, 64, 64], algorithm: .winograd4x4)
    }

    /// Sibling 1x1 convolutions over one input merge into one at batch 1, each head a channel slice
    /// of the merged output; a head at the front of the concatenation keeps its place there. Where
    /// the concatenation is the model's output (which must own its buffer) only the other two heads
    /// merge; at batch 2 nothing does.
    @Test func siblingPointwiseConvolutionsMerge() throws {
        GlobalGenerator.seed(15)
        let block = try Inception(16, 8, 4, 8, 5, 8, 8)
        try S.randomizeBatchNorms(block)
        let inner = Sequential(block, try Conv2d(inputChannels: 32, outputChannels: 6, kernelSize: 3, padding: 1))
        let net = try S.checkAgainstEager(inner, inputShape: [1, 16, 9, 7])
        let convs = { (m: InferenceModel) in m.operations.filter { $0.kind == "conv2d" } }
        #expect(convs(net).count == 5)
        #expect(convs(net).contains { $0.detail.contains("+merge3") && $0.outputShape == [1, 17, 9, 7] })
        #expect(!net.operations.map(\.kind).contains("concat"))
        let alone = try S.checkAgainstEager(block, inputShape: [1, 16, 9, 7])
        #expect(convs(alone).count == 5)
        #expect(convs(alone).contains { $0.detail.contains("+merge2") && $0.outputShape == [1, 9, 9, 7] })
        let batch2 = try S.checkAgainstEager(inner, inputShape: [2, 16, 9, 7])
        #expect(convs(batch2).count == 7)
    }

    @Test func inceptionAtBatchTwoConcatenates() throws {
        GlobalGenerator.seed(14)
        let block = try Inception(16, 8, 4, 8, 4, 8, 8)
        try S.randomizeBatchNorms(block)
        let compiled = try S.checkAgainstEager(block, inputShape: [2, 16, 8, 8])
        #expect(compiled.operations.filter { $0.kind == "concat" }.count == 1)
        let single = try S.checkAgainstEager(block, inputShape: [1, 16, 8, 8])
        #expect(single.operations.filter { $0.kind == "concat" }.isEmpty)
    }

    @Test func vgg11WithBatchNorm() throws {
        GlobalGenerator.seed(15)
        let model = try VGG(configuration: .a, batchNorm: true, classes: 10, hiddenFeatures: 16)
        try S.randomizeBatchNorms(model)
        let compiled = try S.checkAgainstEager(model, inputShape: [1, 3, 32, 32])
        #expect(!compiled.operations.map(\.kind).contains("relu"))
        // The arena reuses memory: it is smaller than all intermediate outputs together (with
        // im2col, so that no pooling is fused and every layer's output is an intermediate); fused
        // pooling (AUTO picks Winograd here) needs no more.
        let unfused = try model.compiled(inputShape: [1, 3, 32, 32], algorithm: .im2col)
        #expect(unfused.operations.contains { $0.kind == "maxpool" })
        let total = unfused.operations.reduce(0) { $0 + $1.outputShape.reduce(1, *) * 4 }
        #expect(unfused.arenaByteCount < total / 2)
        #expect(compiled.operations.contains { $0.detail.hasSuffix("+maxpool") })
        #expect(compiled.arenaByteCount <= unfused.arenaByteCount)
    }

    @Test func alexnetVariants() throws {
        GlobalGenerator.seed(16)
        try S.checkAgainstEager(try AlexNet(variant: .torchvision, classes: 10, hiddenFeatures: 16), inputShape: [1, 3, 63, 63])
        let original = try AlexNet(variant: .original2012, classes: 10, hiddenFeatures: 16)
        let compiled = try S.checkAgainstEager(original, inputShape: [2, 3, 67, 67])
        #expect(compiled.operations.filter { $0.kind == "lrn" }.count == 2)
        #expect(compiled.operations.contains { $0.detail.contains("g2") })
    }

    @Test func lenetLargeBatchPacksTheClassifier() throws {
        GlobalGenerator.seed(17)
        let model = try LeNet5(classes: 10)
        let compiled = try S.checkAgainstEager(model, inputShape: [16, 1, 28, 28])
        #expect(compiled.operations.filter { $0.kind == "linear" && $0.detail.contains("packed") }.count == 3)
        try S.checkAgainstEager(model, inputShape: [1, 1, 28, 28])
    }

    /// A 2x2, stride-2 max pool after a Winograd convolution is computed in the output transform:
    /// one operation, bit for bit the eager convolution, ReLU and pool, for every tile size, even
    /// and odd planes (floor mode drops the last row and column), clipped edge tiles, batch 2, and
    /// with NaN in the input. Other algorithms and other pools keep a separate pooling operation.
    @Test func maxPoolFusesIntoWinograd() throws {
        GlobalGenerator.seed(19)
        for isa in ComputeRuntime.supportedISAs {
            try ComputeRuntime.withISA(isa) { try Self.checkFusedMaxPool() }
        }
        for net in [Sequential(try Conv2d(inputChannels: 3, outputChannels: 4, kernelSize: 3, padding: 1, algorithm: .im2col),
                               try MaxPool2d(kernelSize: 2, stride: 2)),
                    Sequential(try Conv2d(inputChannels: 3, outputChannels: 4, kernelSize: 3, padding: 1, algorithm: .winograd4x4),
                               try MaxPool2d(kernelSize: 3, stride: 2)),
                    Sequential(try Conv2d(inputChannels: 3, outputChannels: 4, kernelSize: 3, padding: 1, algorithm: .winograd4x4),
                               try MaxPool2d(kernelSize: 2, stride: 2, ceilMode: true))] {
            let compiled = try S.checkAgainstEager(net, inputShape: [1, 3, 11, 11], tolerance: 0)
            #expect(compiled.operations.map(\.kind) == ["conv2d", "maxpool"])
        }
        // The C entry point refuses plans it cannot fuse, and bad arguments, without touching y.
        let geometry = ConvolutionGeometry(batch: 1, inputChannels: 3, height: 8, width: 8, outputChannels: 4,
                                           kernelSize: (3, 3), padding: (1, 1))
        let w = try S.input([4, 3, 3, 3]), x = try S.input([1, 3, 8, 8])
        var y = [Float](repeating: 7, count: 4 * 4 * 4)
        let gemm = try ConvolutionPlan(algorithm: .im2col, geometry: geometry, weight: w)
        let wino = try ConvolutionPlan(algorithm: .winograd2x2, geometry: geometry, weight: w)
        #expect(!gemm.fusesMaxPool2x2 && wino.fusesMaxPool2x2)
        #expect(cnn_conv_plan_forward_maxpool2x2(gemm.pointer, x.basePointer, nil, 1, &y) == CNN_ERR_UNSUPPORTED)
        #expect(cnn_conv_plan_forward_maxpool2x2(wino.pointer, nil, nil, 1, &y) == CNN_ERR_INVALID_ARGUMENT)
        #expect(cnn_conv_plan_forward_maxpool2x2(nil, x.basePointer, nil, 1, &y) == CNN_ERR_INVALID_ARGUMENT)
        #expect(y.allSatisfy { $0 == 7 })
        #expect(cnn_conv_plan_forward_maxpool2x2(wino.pointer, x.basePointer, nil, 1, &y) == CNN_OK)
        #expect(!y.contains(7))
    }

    static func checkFusedMaxPool() throws {
        // F(2x2, 5x5) and F(4x4, 5x5) (on a 5x5 kernel, padding 2) fuse the same way.
        for (algorithm, kernel) in [(ConvolutionAlgorithm.winograd2x2, 3), (.winograd4x4, 3), (.winograd6x6, 3),
                                    (.winograd2x2, 5), (.winograd4x4, 5)] {
            for shape in [[1, 5, 14, 14], [2, 3, 13, 11], [1, 4, 9, 16]] {
                let net = Sequential(
                    try Conv2d(inputChannels: shape[1], outputChannels: 6, kernelSize: kernel, padding: kernel / 2, algorithm: algorithm),
                    ReLU(), try MaxPool2d(kernelSize: 2, stride: 2))
                net.eval()
                let compiled = try net.compiled(inputShape: shape)
                #expect(compiled.operations.count == 1, "\(algorithm.rawValue) \(kernel)x\(kernel) \(shape): \(compiled.operations)")
                #expect(compiled.operations.first?.detail.hasSuffix("+relu +maxpool") == true)
                #expect(compiled.operations.first?.outputShape == [shape[0], 6, shape[2] / 2, shape[3] / 2])
                let x = try Tensor(shape: shape, scalars: try S.input(shape).scalars.enumerated().map { $0.offset == 37 ? .nan : $0.element })
                let expected = try net(x), got = try compiled(x)
                #expect(got.shape == expected.shape)
                let differing = zip(got.scalars, expected.scalars).filter { $0.bitPattern != $1.bitPattern }.count
                #expect(differing == 0, "\(algorithm.rawValue) \(shape): \(differing) fused pooled values differ from the eager layers")
                #expect(got.scalars.contains { $0.isNaN }, "\(algorithm.rawValue) \(shape): the NaN input did not propagate")
            }
        }
    }

    @Test func genericContainers() throws {
        GlobalGenerator.seed(18)
        let net = Sequential(
            try Conv2d(inputChannels: 4, outputChannels: 8, kernelSize: 3, padding: 1),
            Residual(body: Sequential(try Conv2d(inputChannels: 8, outputChannels: 8, kernelSize: 3, padding: 1), try BatchNorm2d(features: 8))),
            Residual(body: try MaxPool2d(kernelSize: 3, stride: 1, padding: 1), applyReLU: false),
            Concat([try Conv2d(inputChannels: 8, outputChannels: 4, kernelSize: 1), try AvgPool2d(kernelSize: 3, stride: 1, padding: 1), Identity()]),
            try BatchNorm2d(features: 20), LeakyReLU(negativeSlope: 0.1), try LocalResponseNorm(size: 3))
        try S.randomizeBatchNorms(net)
        let compiled = try S.checkAgainstEager(net, inputShape: [1, 4, 6, 6])
        // The identity branch is the concatenation's input itself: it is copied; the others are not.
        #expect(compiled.operations.contains { $0.kind == "concat" && $0.detail == "1 of 3 copied" })
        try S.checkAgainstEager(net, inputShape: [3, 4, 6, 6])
        // A model that returns its input is a copy.
        let identity = try S.checkAgainstEager(Sequential(Identity(), Dropout()), inputShape: [2, 3])
        #expect(identity.operations.map(\.kind) == ["copy"])
    }
}

@Suite("Inference: buffers, concurrency and errors")
struct InferenceRuntimeTests {
    typealias S = InferenceTestSupport

    @Test func callsReuseOneArena() throws {
        GlobalGenerator.seed(21)
        let net = try S.bottleneckNet()
        net.eval()
        let compiled = try net.compiled(inputShape: [1, 3, 16, 16])
        let x = try S.input([1, 3, 16, 16])
        #expect(compiled.arenaAllocationCount == 0)
        let first = try compiled(x)
        let bytes = compiled.arenaByteCount
        var out = try Tensor(zeros: compiled.outputShape)
        for _ in 0..<5 {
            try compiled.predict(x, into: &out)
            #expect(out == first)
        }
        #expect(compiled.arenaAllocationCount == 1)
        #expect(compiled.arenaByteCount == bytes)
        _ = try compiled.profile(x)
        #expect(compiled.arenaAllocationCount == 1)
    }

    @Test func concurrentCallsMatchSequentialOnes() async throws {
        GlobalGenerator.seed(22)
        let net = try S.bottleneckNet()
        net.eval()
        let compiled = try net.compiled(inputShape: [1, 3, 16, 16])
        let inputs = try (0..<8).map { try S.input([1, 3, 16, 16], seed: UInt64(100 + $0)) }
        let sequential = try inputs.map { try compiled($0) }
        let concurrent = try await withThrowingTaskGroup(of: (Int, [Tensor]).self) { group in
            for (i, x) in inputs.enumerated() {
                group.addTask { (i, try (0..<4).map { _ in try compiled(x) }) }
            }
            var results = [[Tensor]](repeating: [], count: inputs.count)
            for try await (i, r) in group { results[i] = r }
            return results
        }
        for (i, runs) in concurrent.enumerated() {
            for r in runs { #expect(r == sequential[i], "task \(i) differs from the sequential call") }
        }
        #expect(compiled.arenaAllocationCount >= 1 && compiled.arenaAllocationCount <= 8)
    }

    @Test func weightsAreASnapshot() throws {
        GlobalGenerator.seed(23)
        let conv = try Conv2d(inputChannels: 2, outputChannels: 3, kernelSize: 3, padding: 1)
        conv.eval()
        let compiled = try conv.compiled(inputShape: [1, 2, 5, 5])
        let x = try S.input([1, 2, 5, 5])
        let before = try compiled(x)
        try conv.weight.assign(try Tensor(zeros: conv.weight.shape))
        #expect(try compiled(x) == before)
    }

    @Test func errorsNameTheProblem() throws {
        GlobalGenerator.seed(24)
        let net = Sequential(try Conv2d(inputChannels: 3, outputChannels: 4, kernelSize: 3), Doubler())
        #expect {
            _ = try net.compiled(inputShape: [1, 3, 8, 8])
        } throws: { ($0 as? CNNError).map { if case .invalidArgument(let m) = $0 { m.contains("eval()") } else { false } } ?? false }
        net.eval()
        #expect {
            _ = try net.compiled(inputShape: [1, 3, 8, 8])
        } throws: { ($0 as? CNNError).map { if case .unsupported(let m) = $0 { m.contains("'1'") && m.contains("Doubler") } else { false } } ?? false }
        let conv = Sequential(try Conv2d(inputChannels: 3, outputChannels: 4, kernelSize: 3))
        conv.eval()
        #expect {
            _ = try conv.compiled(inputShape: [1, 2, 8, 8])
        } throws: { ($0 as? CNNError).map { if case .shapeMismatch(let m) = $0 { m.contains("'0'") } else { false } } ?? false }
        #expect(throws: CNNError.self) { _ = try conv.compiled(inputShape: [1, 3, 0, 8]) }
        let compiled = try conv.compiled(inputShape: [1, 3, 8, 8])
        #expect(throws: CNNError.self) { _ = try compiled(try Tensor(zeros: [1, 3, 9, 8])) }
        var wrong = try Tensor(zeros: [1, 4, 5, 5])
        #expect(throws: CNNError.self) { try compiled.predict(try Tensor(zeros: [1, 3, 8, 8]), into: &wrong) }
        // Prepared for one instruction set: a call under another one throws instead of misreading.
        if let other = ComputeRuntime.supportedISAs.first(where: { $0 != compiled.isa }) {
            _ = try ComputeRuntime.withISA(other) {
                #expect(throws: CNNError.self) { _ = try compiled(try Tensor(zeros: [1, 3, 8, 8])) }
            }
        }
    }

    @Test func everyISAGivesTheEagerResult() throws {
        GlobalGenerator.seed(25)
        let net = try S.bottleneckNet()
        for isa in ComputeRuntime.supportedISAs {
            try ComputeRuntime.withISA(isa) {
                try S.checkAgainstEager(net, inputShape: [1, 3, 16, 16], algorithm: .winograd4x4)
                try S.checkAgainstEager(net, inputShape: [9, 3, 16, 16])
            }
        }
    }
}
