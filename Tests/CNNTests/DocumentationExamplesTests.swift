import Foundation
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

// DistributedTraining.md's rank function.
private func makeTrainer(train: LabeledDataset, communicator: (any Communicator)?) throws -> Trainer {
    let model = try LeNet5(classes: 10)
    let optimizer = try SGD(parameters: model.namedParameters(), learningRate: 0.03, momentum: 0.9)
    // 64 is the global batch: each of N ranks computes about 64 / N examples per step.
    let loader = try DataLoader(dataset: train, batchSize: 64, shuffle: true, seed: 1,
                                normalization: ChannelNormalization.mnist.pair)
    return try Trainer(model: model, optimizer: optimizer, trainLoader: loader, testLoader: nil,
                       communicator: communicator)
}

@Suite(.serialized) struct DocumentationExamplesTests {
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
        let path = Self.temporaryDirectory("weights") + ".safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
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

    /// A fresh directory for files an article writes under `runs/`.
    static func temporaryDirectory(_ name: String) -> String {
        NSTemporaryDirectory() + "cnn-doc-\(name)-\(UInt32.random(in: 0...UInt32.max))"
    }

    // TrainingLeNet.md (the article trains on 2,048 / 512 images as written).
    @Test func trainingLeNetOnMNIST() throws {
        let mnist = try MNIST()
        var train = try LabeledDataset(images: mnist.train.images, labels: mnist.train.labels, classes: 10)
        var test = try LabeledDataset(images: mnist.test.images, labels: mnist.test.labels, classes: 10)
        train = try train.prefix(2048)
        test = try test.prefix(512)
        #expect(train.count == 2048 && test.count == 512 && train.exampleShape == [1, 28, 28])

        let summary = try LeNet5(classes: 10).summary(inputShape: [1, 1, 28, 28])
        for layer in summary.layers where layer.type != "ReLU" {
            print(layer.name, layer.outputShape, layer.parameters)
        }
        print(summary.totalParameters)
        let walk = summary.layers.filter { $0.type != "ReLU" }
        #expect(walk.map(\.name) == ["features.0", "features.2", "features.3", "features.5", "classifier.0", "classifier.2", "classifier.4"])
        #expect(walk.map(\.outputShape) == [[1, 6, 28, 28], [1, 6, 14, 14], [1, 16, 10, 10], [1, 16, 5, 5], [1, 120], [1, 84], [1, 10]])
        #expect(walk.map(\.parameters) == [156, 0, 2416, 0, 48120, 10164, 850])
        #expect(summary.totalParameters == 61706)

        GlobalGenerator.seed(1)
        let model = try LeNet5(classes: 10)
        let optimizer = try SGD(parameters: model.namedParameters(), learningRate: 0.03, momentum: 0.9)
        let trainLoader = try DataLoader(dataset: train, batchSize: 64, shuffle: true, seed: 1,
                                         normalization: ChannelNormalization.mnist.pair)
        let testLoader = try DataLoader(dataset: test, batchSize: 500, shuffle: false,
                                        normalization: ChannelNormalization.mnist.pair)
        let trainer = try Trainer(model: model, optimizer: optimizer, trainLoader: trainLoader,
                                  testLoader: testLoader, schedule: .epochs(try StepLR(stepSize: 2, gamma: 0.1)))

        let directory = Self.temporaryDirectory("lenet")   // the article: "runs/lenet"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var batchesSeen = 0
        while trainer.epoch < 3 {
            let record = try trainer.trainEpoch { progress in
                // called after every batch: progress.loss, progress.accuracy, progress.imagesPerSecond
                batchesSeen += 1
            }
            print("epoch \(record.epoch + 1): train loss \(record.trainLoss), test accuracy \(record.testAccuracy), lr \(record.learningRate)")
            try trainer.saveCheckpoint(to: directory + "/checkpoint.safetensors")
            try TrainingLog.write(trainer.history, csv: directory + "/log.csv", svg: directory + "/log.svg")
        }
        try model.saveWeights(to: directory + "/model.safetensors")

        #expect(batchesSeen == 3 * 32)
        #expect(trainer.history.map(\.learningRate).map { Float($0) }.prefix(2) == [0.03, 0.03])
        #expect(abs(trainer.history[2].learningRate - 0.003) < 1e-7)
        #expect(trainer.history[2].trainLoss < trainer.history[0].trainLoss)
        // Chance is 0.1; 96 steps of the recipe on 2,048 images reach far more.
        #expect(trainer.history[2].testAccuracy > 0.7, "test accuracy \(trainer.history[2].testAccuracy)")
        let csv = try String(contentsOfFile: directory + "/log.csv", encoding: .utf8)
        #expect(csv.split(separator: "\n").count == 4 && csv.hasPrefix(EpochRecord.csvHeader))
        #expect(FileManager.default.fileExists(atPath: directory + "/log.svg"))

        let resumedModel = try LeNet5(classes: 10)
        let resumed = try Trainer(
            model: resumedModel,
            optimizer: try SGD(parameters: resumedModel.namedParameters(), learningRate: 0.03, momentum: 0.9),
            trainLoader: trainLoader, testLoader: testLoader,
            schedule: .epochs(try StepLR(stepSize: 2, gamma: 0.1)))
        try resumed.loadCheckpoint(from: directory + "/checkpoint.safetensors")
        print(resumed.epoch, resumed.optimizer.learningRate)
        #expect(resumed.epoch == 3 && resumed.history == trainer.history)
        #expect(resumed.optimizer.learningRate == trainer.optimizer.learningRate)
        for ((name, a), (_, b)) in zip(model.stateDictionary(), resumedModel.stateDictionary()) {
            #expect(a == b, "\(name)")
        }
        // (That both then continue identically is TrainingTests' exact-resume test.)

        model.eval()
        let digits = try ChannelNormalization.mnist.apply(to: try test.images.slice(batch: 0..<8))
        let predictions = try model(digits).argmaxIndices(alongAxis: 1)
        print(predictions, test.labels[0..<8])
        let evaluation = try model.evaluate(on: testLoader)
        print(evaluation.accuracy, evaluation.confusionTable(classNames: test.classNames))
        #expect(predictions.count == 8)
        #expect(evaluation.count == 512 && evaluation.confusion.joined().reduce(0, +) == 512)
    }

    // FastInference.md.
    @Test func fastInference() async throws {
        GlobalGenerator.seed(7)
        let model = try ModelZoo.make(name: "resnet18", classes: 10)
        model.eval()
        let fast = try model.compiled(inputShape: [1, 3, 64, 64])
        for operation in fast.operations.prefix(2) { print(operation) }
        print(fast.operations.contains { $0.kind == "batchnorm" })
        print(fast.arenaByteCount, fast.weightByteCount)
        #expect(!fast.operations.contains { $0.kind == "batchnorm" })
        #expect(fast.operations[0].name == "conv1" && fast.operations[0].detail.hasSuffix("+bn +relu"))
        #expect(fast.operations.contains { $0.detail.contains("+add") })
        #expect(fast.arenaByteCount > 0 && fast.weightByteCount > 0)

        var generator = SeededGenerator(seed: 8)
        let image = try Tensor.uniform(shape: [1, 3, 64, 64], lower: -1, upper: 1, generator: &generator)
        let logits = try fast(image)
        let eager: Tensor = try model(image)
        print(logits.maxAbsoluteDifference(eager))
        #expect(logits.shape == [1, 10])
        #expect(logits.maxAbsoluteDifference(eager) <= 1e-4 * max(eager.max(), -eager.min(), 1e-3))

        var output = try Tensor(zeros: fast.outputShape)
        for _ in 0..<3 {
            try fast.predict(image, into: &output)
        }
        #expect(output == logits)

        let inputs = try (0..<4).map { _ in try Tensor.uniform(shape: [1, 3, 64, 64], generator: &generator) }
        let outputs = try await withThrowingTaskGroup(of: (Int, Tensor).self) { group in
            for (index, input) in inputs.enumerated() {
                group.addTask { (index, try fast(input)) }
            }
            var results = [Tensor?](repeating: nil, count: inputs.count)
            for try await (index, result) in group { results[index] = result }
            return results.map { $0! }
        }
        for (input, result) in zip(inputs, outputs) {
            #expect(result == (try fast(input)))
        }

        let autotunePath = Self.temporaryDirectory("autotune") + ".json"
        defer { try? FileManager.default.removeItem(atPath: autotunePath) }
        let winograd = try model.compiled(inputShape: [1, 3, 64, 64], algorithm: .winograd4x4)
        let tuned = try model.compiled(inputShape: [1, 3, 64, 64], algorithm: .autotune)
        try ConvolutionAutotuner.shared.save(to: URL(fileURLWithPath: autotunePath))
        #expect(winograd.operations.contains { $0.detail.contains("winograd4x4") })
        #expect(tuned.operations.count == fast.operations.count)
        #expect(FileManager.default.fileExists(atPath: autotunePath))
        let scale = max(eager.max(), -eager.min(), 1e-3)
        #expect(try winograd(image).maxAbsoluteDifference(eager) <= 1e-2 * scale)
        #expect(try tuned(image).maxAbsoluteDifference(eager) <= 1e-2 * scale)

        let stem = model.namedModules().first { $0.0 == "conv1" }?.1 as? Conv2d
        stem?.algorithm = .direct
        let mixed = try model.compiled(inputShape: [1, 3, 64, 64])
        print(mixed.operations[0].detail)
        #expect(mixed.operations[0].detail == "7x7 s2 direct +bn +relu")
    }

    // DistributedTraining.md.
    @Test func distributedTrainingInProcess() throws {
        let mnist = try MNIST()
        let train = try LabeledDataset(images: mnist.train.images, labels: mnist.train.labels, classes: 10).prefix(256)
        let weights = try InProcessCommunicator.run(ranks: 2) { communicator in
            let trainer = try makeTrainer(train: train, communicator: communicator)
            let record = try trainer.trainEpoch()
            return trainer.model.stateDictionary().flatMap { $0.1.scalars } + [Float(record.trainLoss)]
        }
        print(weights[0] == weights[1])
        #expect(weights.count == 2 && weights[0] == weights[1])
        #expect(weights[0].last!.isFinite && weights[0].last! > 0)
    }

    // Benchmarking.md.
    @Test func benchmarkingOneLayer() throws {
        let layer = ConvBenchmarkCase("small.3x3", batch: 1, inputChannels: 32, height: 28, width: 28,
                                      outputChannels: 32, kernelSize: 3, padding: 1)
        let threads = ComputeRuntime.threadCount
        let peak = ComputeRuntime.peakGFLOPS(isa: ComputeRuntime.activeISA, threads: threads, seconds: 0.05)
        var measured: [ConvolutionAlgorithm] = []
        for algorithm in layer.geometry.applicableAlgorithms {
            let benchmark = try ConvolutionBenchmark(layer, algorithm: algorithm)
            let time = try benchmarkMilliseconds(repetitions: 5) { try benchmark.run() }
            let gflops = layer.directFLOPs / (time.median * 1e6)
            print(algorithm, time.median, gflops, peak.map { 100 * gflops / $0 } ?? .nan)
            measured.append(algorithm)
            #expect(time.median > 0 && time.minimum <= time.median)
        }
        #expect(measured == [.direct, .im2col, .winograd2x2, .winograd4x4, .winograd6x6])
        #expect(layer.directFLOPs == 2 * 32 * 28 * 28 * 32 * 9)
        #expect(peak != nil)
    }
}
