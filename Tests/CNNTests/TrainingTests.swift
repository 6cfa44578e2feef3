import Foundation
import Testing
@testable import CNN

/// The Trainer on real MNIST data: exact checkpoint/resume and a short run that learns.
@Suite(.serialized) struct TrainingTests {
    /// The bundled MNIST, loaded once.
    static let mnist: Result<MNIST, any Error> = Result { try MNIST() }

    static func subset(_ n: Int, test m: Int) throws -> (train: LabeledDataset, test: LabeledDataset) {
        let mnist = try mnist.get()
        return (try LabeledDataset(images: mnist.train.images, labels: mnist.train.labels, classes: 10).prefix(n),
                try LabeledDataset(images: mnist.test.images, labels: mnist.test.labels, classes: 10).prefix(m))
    }

    /// A LeNet-5 trainer with momentum SGD and a step schedule (so that the checkpoint must carry
    /// the velocity and the schedule's state), its weights drawn from `seed`.
    static func trainer(_ data: (train: LabeledDataset, test: LabeledDataset), seed: UInt64, weightSeed: UInt64) throws -> Trainer {
        GlobalGenerator.seed(weightSeed)
        let model = try LeNet5(classes: 10)
        let optimizer = try SGD(parameters: model.namedParameters(), learningRate: 0.02, momentum: 0.9, weightDecay: 1e-4,
                                weightDecayExclusion: .biasesAndNormalization)
        let norm = ChannelNormalization.mnist.pair
        return try Trainer(model: model, optimizer: optimizer,
                           trainLoader: try DataLoader(dataset: data.train, batchSize: 32, shuffle: true, seed: seed, normalization: norm),
                           testLoader: try DataLoader(dataset: data.test, batchSize: 64, shuffle: false, normalization: norm),
                           schedule: .epochs(try StepLR(stepSize: 1, gamma: 0.5)))
    }

    static func bits(_ model: Module) -> [String: [UInt32]] {
        Dictionary(uniqueKeysWithValues: model.stateDictionary().map { ($0.0, $0.1.scalars.map(\.bitPattern)) })
    }

    @Test func checkpointResumeIsBitIdenticalToAnUninterruptedRun() throws {
        let data = try Self.subset(320, test: 128)
        try ComputeRuntime.setThreadCount(1)
        defer { try? ComputeRuntime.setThreadCount(nil) }

        let straight = try Self.trainer(data, seed: 5, weightSeed: 21)
        _ = try straight.trainEpoch()
        _ = try straight.trainEpoch()

        let first = try Self.trainer(data, seed: 5, weightSeed: 21)
        _ = try first.trainEpoch()
        let dir = try CLI.temporaryDirectory("checkpoint")
        defer { CLI.remove(dir) }
        try first.saveCheckpoint(to: dir + "/checkpoint.safetensors")
        // Different initial weights: everything must come from the checkpoint.
        let resumed = try Self.trainer(data, seed: 5, weightSeed: 99)
        #expect(Self.bits(resumed.model) != Self.bits(first.model))
        try resumed.loadCheckpoint(from: dir + "/checkpoint.safetensors")
        #expect(resumed.epoch == 1)
        #expect(abs(resumed.optimizer.learningRate - 0.01) < 1e-7)
        _ = try resumed.trainEpoch()

        #expect(resumed.history.count == 2)
        for (a, b) in zip(straight.history, resumed.history) {
            #expect(a.trainLoss == b.trainLoss && a.trainAccuracy == b.trainAccuracy)
            #expect(a.testLoss == b.testLoss && a.testAccuracy == b.testAccuracy)
            #expect(a.learningRate == b.learningRate)
        }
        #expect(abs(straight.history[1].learningRate - 0.01) < 1e-7)
        #expect(Self.bits(resumed.model) == Self.bits(straight.model))
        #expect(resumed.optimizer.stateDictionary().map { $0.1.scalars.map(\.bitPattern) }
                == straight.optimizer.stateDictionary().map { $0.1.scalars.map(\.bitPattern) })
    }

    @Test func shortMNISTRunLearns() throws {
        // 2,000 images, batches of 20, two epochs: 200 SGD steps.
        let data = try Self.subset(2000, test: 1000)
        GlobalGenerator.seed(1)
        let model = try LeNet5(classes: 10)
        let norm = ChannelNormalization.mnist.pair
        let trainer = try Trainer(model: model,
                                  optimizer: try SGD(parameters: model.namedParameters(), learningRate: 0.02, momentum: 0.9),
                                  trainLoader: try DataLoader(dataset: data.train, batchSize: 20, shuffle: true, seed: 1, normalization: norm),
                                  testLoader: try DataLoader(dataset: data.test, batchSize: 500, shuffle: false, normalization: norm))
        var steps = 0
        let first = try trainer.trainEpoch { _ in steps += 1 }
        let second = try trainer.trainEpoch { _ in steps += 1 }
        #expect(steps == 200)
        #expect(second.trainLoss < first.trainLoss)
        #expect(second.testAccuracy > 0.8, "test accuracy \(second.testAccuracy) after 200 steps")
        let evaluation = try model.evaluate(on: try DataLoader(dataset: data.test, batchSize: 250, shuffle: false, normalization: norm))
        #expect(evaluation.count == 1000)
        #expect(evaluation.accuracy == second.testAccuracy)
        #expect(evaluation.confusion.flatMap { $0 }.reduce(0, +) == 1000)
    }

    @Test func logHasTheHeaderAndOneRowPerEpoch() throws {
        let records = [EpochRecord(epoch: 0, trainLoss: 1.5, trainAccuracy: 0.5, testLoss: 1.25, testAccuracy: 0.625, learningRate: 0.1, seconds: 2),
                       EpochRecord(epoch: 1, trainLoss: 0.5, trainAccuracy: 0.875, testLoss: 0.75, testAccuracy: 0.75, learningRate: 0.05, seconds: 2.5)]
        let dir = try CLI.temporaryDirectory("log")
        defer { CLI.remove(dir) }
        try TrainingLog.write(records, csv: dir + "/log.csv", svg: dir + "/log.svg")
        let csv = try String(contentsOfFile: dir + "/log.csv", encoding: .utf8)
        #expect(csv == """
            epoch,train_loss,train_acc,test_loss,test_acc,lr,seconds
            1,1.500000,0.500000,1.250000,0.625000,0.1,2.000
            2,0.500000,0.875000,0.750000,0.750000,0.05,2.500

            """)
        let svg = try String(contentsOfFile: dir + "/log.svg", encoding: .utf8)
        #expect(svg.hasPrefix("<svg") && svg.components(separatedBy: "<polyline").count == 5)
    }

    @Test func normalizationConstantsAndValidation() throws {
        #expect(ChannelNormalization.mnist.mean == [0.1307] && ChannelNormalization.mnist.standardDeviation == [0.3081])
        #expect(ChannelNormalization.dataset(named: "MNIST") == .mnist)
        #expect(ChannelNormalization.dataset(named: "cifar10") == .cifar10)
        #expect(ChannelNormalization.dataset(named: "svhn") == nil)
        #expect(throws: CNNError.self) { try ChannelNormalization(mean: [0.5], standardDeviation: [0]) }
        #expect(throws: CNNError.self) { try ChannelNormalization(mean: [0.5, 0.5], standardDeviation: [1]) }
        let x = try Tensor(shape: [1, 2, 1, 2], scalars: [0, 1, 0.5, 1])
        let n = try ChannelNormalization(mean: [0.5, 0.25], standardDeviation: [0.5, 0.25]).apply(to: x)
        #expect(n.scalars == [-1, 1, 1, 3])
        #expect(throws: CNNError.self) { try ChannelNormalization.mnist.apply(to: x) }
    }
}
