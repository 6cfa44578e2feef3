/// One whole-network inference case of `cnn bench models`: a zoo model at a batch and input size,
/// with the reference figures it is measured against.
public struct ModelBenchCase: Sendable, Hashable {
    /// A stable name (`resnet50`, `resnet50.batch8`).
    public var name: String
    /// The ``ModelZoo`` name.
    public var model: String
    public var batch: Int
    /// Input height and width.
    public var inputSize: Int
    /// The best peer's time on the reference machine, 2 threads, milliseconds
    /// (/work/shared/reference/ANCHORS.md: ONNX Runtime or ncnn, whichever was faster).
    public var peerMilliseconds: Double?
    /// The time this project aims for on the reference machine, 2 threads, milliseconds.
    public var targetMilliseconds: Double?

    /// `[batch, 3, inputSize, inputSize]`.
    public var inputShape: [Int] { [batch, 3, inputSize, inputSize] }
}

/// The case list of `cnn bench models` (batch 1 at 224x224 for the classic networks, and ResNet-50
/// at batch 8), also usable by the `Benchmarks/` package.
public enum ModelCases {
    public static let all: [ModelBenchCase] = [
        ModelBenchCase(name: "alexnet", model: "alexnet", batch: 1, inputSize: 224, peerMilliseconds: 10.0, targetMilliseconds: 10),
        ModelBenchCase(name: "vgg16", model: "vgg16", batch: 1, inputSize: 224, peerMilliseconds: 51.2, targetMilliseconds: 45),
        ModelBenchCase(name: "googlenet", model: "googlenet", batch: 1, inputSize: 224, peerMilliseconds: 7.2, targetMilliseconds: 7.5),
        ModelBenchCase(name: "resnet18", model: "resnet18", batch: 1, inputSize: 224, peerMilliseconds: 8.4, targetMilliseconds: 8.4),
        ModelBenchCase(name: "resnet50", model: "resnet50", batch: 1, inputSize: 224, peerMilliseconds: 19.4, targetMilliseconds: 19),
        ModelBenchCase(name: "resnet50.batch8", model: "resnet50", batch: 8, inputSize: 224, peerMilliseconds: 263, targetMilliseconds: nil),
    ]
}

/// One case of ``ModelCases/all`` ready to time: the zoo network (seeded weights, evaluation mode)
/// compiled for inference at the case's input shape, a uniform random input and the output buffer,
/// so ``run()`` is exactly one allocation-free ``InferenceModel/predict(_:into:)`` call.
public final class ModelForwardBenchmark {
    /// The case.
    public let benchmarkCase: ModelBenchCase
    /// The compiled network.
    public let compiled: InferenceModel
    private let input: Tensor
    private var output: Tensor

    /// Builds and compiles the network (`algorithm` for every convolution, `.auto` by default).
    ///
    /// - Throws: ``CNNError`` when the model name is unknown or the input shape does not fit it.
    public init(_ benchmarkCase: ModelBenchCase, algorithm: ConvolutionAlgorithm = .auto, seed: UInt64 = 1) throws {
        self.benchmarkCase = benchmarkCase
        GlobalGenerator.seed(seed)
        let model = try ModelZoo.make(name: benchmarkCase.model)
        model.eval()
        compiled = try model.compiled(inputShape: benchmarkCase.inputShape, algorithm: algorithm)
        var generator = SeededGenerator(seed: seed &+ 4)
        input = try Tensor.uniform(shape: benchmarkCase.inputShape, lower: -1, upper: 1, generator: &generator)
        output = try Tensor(zeros: compiled.outputShape)
    }

    /// Floating-point operations of one forward pass (2 per multiply-add).
    public var flops: Double { 2 * Double(compiled.multiplyAccumulates) }

    /// One forward pass into the preallocated output.
    ///
    /// - Throws: ``CNNError`` from the network (not expected once it has compiled).
    public func run() throws {
        try compiled.predict(input, into: &output)
    }
}
