/// One training-step benchmark: a zoo network, a batch of random images and labels, and SGD with
/// momentum and weight decay, as in the reference table (/work/shared/reference/ANCHORS.md).
public struct TrainBenchmarkCase: Sendable, Hashable {
    /// The networks the training cases use.
    public enum Network: String, Sendable, Hashable, CaseIterable {
        /// ``LeNet5`` on 28x28 single-channel images (MNIST size).
        case lenet5
        /// ``ResNet`` with depth 18 on 32x32 colour images (CIFAR-10 size), torchvision's stem.
        case resnet18
    }

    /// A stable name, e.g. `lenet5.mnist.batch64`.
    public var name: String
    /// The network.
    public var network: Network
    /// Images per step.
    public var batch: Int
    /// Input channels, and the square image size.
    public var inputChannels: Int, imageSize: Int
    /// Outputs of the classifier.
    public var classes: Int
    /// SGD hyperparameters: learning rate, momentum and L2 weight decay.
    public var learningRate: Float, momentum: Float, weightDecay: Float
    /// Images in one epoch of the data set this case stands for (60,000 for MNIST, 50,000 for
    /// CIFAR-10), for the one-epoch estimate.
    public var epochImages: Int
    /// PyTorch's milliseconds per step on the reference machine (2 threads), where measured.
    public var peerMilliseconds: Double?

    /// The input shape `[batch, channels, size, size]`.
    public var inputShape: [Int] { [batch, inputChannels, imageSize, imageSize] }

    /// Steps in one epoch, the last one partial: `ceil(epochImages / batch)`.
    public var stepsPerEpoch: Int { (epochImages + batch - 1) / batch }

    /// Builds the network with PyTorch's default initialisation (seeded by ``GlobalGenerator``).
    ///
    /// - Throws: ``CNNError`` when the case's sizes do not suit the network.
    public func makeModel() throws -> Module {
        switch network {
        case .lenet5: return try LeNet5(classes: classes, inputChannels: inputChannels, inputSize: imageSize)
        case .resnet18: return try ResNet(depth: .resnet18, classes: classes, inputChannels: inputChannels)
        }
    }
}

/// The training cases of `cnn bench train` and the Benchmarks package (the one list of them).
public enum TrainCases {
    /// LeNet-5 on MNIST-size input and ResNet-18 on CIFAR-size input, batch 64 each.
    public static let all: [TrainBenchmarkCase] = [
        TrainBenchmarkCase(name: "lenet5.mnist.batch64", network: .lenet5, batch: 64, inputChannels: 1, imageSize: 28,
                           classes: 10, learningRate: 0.01, momentum: 0.9, weightDecay: 0, epochImages: 60_000,
                           peerMilliseconds: 3.86),
        TrainBenchmarkCase(name: "resnet18.cifar.batch64", network: .resnet18, batch: 64, inputChannels: 3, imageSize: 32,
                           classes: 10, learningRate: 0.1, momentum: 0.9, weightDecay: 5e-4, epochImages: 50_000,
                           peerMilliseconds: 85.5),
    ]
}

/// Milliseconds spent in each phase of one training step.
public struct TrainingStepPhases: Sendable, Equatable {
    /// Forward pass with the graph recorded, and the cross-entropy loss.
    public var forward: Double
    /// The backward pass from the loss to every parameter.
    public var backward: Double
    /// Clearing the gradients and the optimizer's update.
    public var optimizer: Double
    /// The sum of the three.
    public var total: Double { forward + backward + optimizer }
}

/// A model, its optimizer and one fixed batch, ready to time training steps or forward passes.
public final class TrainingStepBenchmark {
    /// The case.
    public let benchmarkCase: TrainBenchmarkCase
    /// The network (in training mode, except inside ``inferenceForward()``).
    public let model: Module
    /// SGD with the case's momentum and weight decay.
    public let optimizer: SGD
    private let images: Tensor
    private let labels: [Int32]

    /// Builds the network, the optimizer and a batch of normal random images with uniform labels.
    ///
    /// - Throws: ``CNNError`` when the case is inconsistent (non-positive sizes, bad hyperparameters).
    public init(_ benchmarkCase: TrainBenchmarkCase, seed: UInt64 = 1) throws {
        guard benchmarkCase.batch >= 1, benchmarkCase.classes >= 1 else {
            throw CNNError.invalidArgument("training case \(benchmarkCase.name): batch \(benchmarkCase.batch) and classes \(benchmarkCase.classes) must be positive")
        }
        self.benchmarkCase = benchmarkCase
        GlobalGenerator.seed(seed)
        model = try benchmarkCase.makeModel()
        model.train()
        optimizer = try SGD(parameters: model.namedParameters(), learningRate: benchmarkCase.learningRate,
                            momentum: benchmarkCase.momentum, weightDecay: benchmarkCase.weightDecay)
        var generator = SeededGenerator(seed: seed &+ 1)
        images = try Tensor.normal(shape: benchmarkCase.inputShape, generator: &generator)
        labels = (0..<benchmarkCase.batch).map { _ in Int32(generator.next() % UInt64(benchmarkCase.classes)) }
    }

    /// One training step: clear gradients, forward, cross-entropy, backward, SGD update.
    ///
    /// - Returns: the loss before the update.
    @discardableResult
    public func step() throws -> Float {
        optimizer.zeroGradients()
        let logits = try model(Variable(images))
        let loss = try Functional.crossEntropy(logits: logits, labels: labels)
        try loss.backward()
        try optimizer.step()
        return try loss.value.item()
    }

    /// One step, timed phase by phase with the monotonic clock (the sum is the step time within the
    /// clock's resolution).
    public func timedStep() throws -> TrainingStepPhases {
        let t0 = benchmarkClock()
        let logits = try model(Variable(images))
        let loss = try Functional.crossEntropy(logits: logits, labels: labels)
        let t1 = benchmarkClock()
        try loss.backward()
        let t2 = benchmarkClock()
        try optimizer.step()
        optimizer.zeroGradients()
        let t3 = benchmarkClock()
        return TrainingStepPhases(forward: (t1 - t0) * 1e3, backward: (t2 - t1) * 1e3, optimizer: (t3 - t2) * 1e3)
    }

    /// The forward pass alone in eval mode with recording off (inference on the training batch).
    @discardableResult
    public func inferenceForward() throws -> Tensor {
        model.eval()
        defer { model.train() }
        return try GradientMode.withoutGradients { try model(images) }
    }
}
