import Testing
import CNN

// The code of the DocC articles in Sources/CNN/Documentation.docc, compiled and run here so the
// articles cannot rot. Keep each test's body identical to its article's snippet.

private final class TinyResidual: Module {
    let conv1: Conv2d
    let conv2: Conv2d
    init(channels: Int) throws {
        conv1 = try Conv2d(inputChannels: channels, outputChannels: channels, kernelSize: 3, padding: 1)
        conv2 = try Conv2d(inputChannels: channels, outputChannels: channels, kernelSize: 3, padding: 1)
        super.init()
    }
    override func forward(_ x: Variable) throws -> Variable {
        let h = try Functional.relu(try conv1(x))
        return try Functional.relu(try Functional.add(try conv2(h), x))
    }
}

@Suite struct DocumentationExamplesTests {
    @Test func gettingStarted() throws {
        let x = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        let y = try x + Tensor(shape: [3], scalars: [10, 20, 30])
        let rowSums = try y.sum(alongAxes: [1])
        #expect(rowSums.scalars == [66, 75])

        GlobalGenerator.seed(1)
        let model = Sequential(
            try Conv2d(inputChannels: 1, outputChannels: 8, kernelSize: 3, padding: 1), ReLU(),
            try MaxPool2d(kernelSize: 2),
            Flatten(), try Linear(inputFeatures: 8 * 14 * 14, outputFeatures: 10))
        let optimizer = try SGD(parameters: model.namedParameters(), learningRate: 0.01, momentum: 0.9)

        var generator = SeededGenerator(seed: 2)
        let images = try Tensor.normal(shape: [16, 1, 28, 28], generator: &generator)
        let labels: [Int32] = (0..<16).map { Int32($0 % 10) }

        optimizer.zeroGradients()
        let loss = try Functional.crossEntropy(logits: try model(Variable(images)), labels: labels)
        try loss.backward()
        try optimizer.step()
        let after = try Functional.crossEntropy(logits: try model(Variable(images)), labels: labels)
        #expect(try after.value.item() < loss.value.item())
    }

    @Test func alexNetConv1Walk() throws {
        let alexnet = try ModelZoo.make(name: "alexnet2012", classes: 10)
        let summary = try alexnet.summary(inputShape: [1, 3, 227, 227])
        let conv1 = summary.layers[0]
        #expect(conv1.outputShape == [1, 96, 55, 55])
        #expect(conv1.parameters == 34_944)
    }

    @Test func choosingConvolutionAlgorithm() throws {
        let conv = try Conv2d(inputChannels: 64, outputChannels: 64, kernelSize: 3, padding: 1)
        let x = try Tensor(ones: [1, 64, 56, 56])
        conv.algorithm = .im2col
        let a = try conv(x)
        conv.algorithm = .winograd4x4
        let b = try conv(x)
        #expect(b.maxAbsoluteDifference(a) <= 1e-4 * max(a.max(), -a.min()))
    }

    @Test func customLayerAndOperation() throws {
        #expect(try TinyResidual(channels: 4).namedParameters().map(\.0) == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias"])
        let cube = CustomOperation(name: "cube",
            forward: { inputs in inputs[0].map { $0 * $0 * $0 } },
            backward: { inputs, _, gradient in [try gradient * inputs[0].map { 3 * $0 * $0 }] })
        let x = Variable(Tensor([1, 2, 3]), requiresGradient: true)
        try Functional.sum(try cube([x])).backward()
        #expect(x.gradient?.scalars == [3, 12, 27])
    }

    @Test func weightsRoundTripThroughSafetensors() throws {
        let path = "/tmp/cnn-doc-\(UInt32.random(in: 0...UInt32.max)).safetensors"
        GlobalGenerator.seed(5)
        let model = try ModelZoo.make(name: "lenet5", classes: 10)
        try model.saveWeights(to: path)
        GlobalGenerator.seed(6)
        let other = try ModelZoo.make(name: "lenet5", classes: 10)
        let report = try other.loadWeights(from: path)
        #expect(report.isComplete)
        for ((n1, a), (n2, b)) in zip(model.stateDictionary(), other.stateDictionary()) {
            #expect(n1 == n2)
            #expect(a == b, "\(n1)")
        }
        let wrong = try ModelZoo.make(name: "resnet18", classes: 10)
        #expect(throws: CNNError.self) { try wrong.loadWeights(from: path) }
    }
}
