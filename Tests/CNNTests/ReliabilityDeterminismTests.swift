import Foundation
import Testing
@testable import CNN

/// Same seed and thread count give bit-identical weights; what the thread count changes is
/// measured, not assumed (see the README's "Reliability" section).
@Suite("Reliability: determinism", .serialized)
struct ReliabilityDeterminismTests {
    /// Trains a LeNet-5 with batch norm-free SGD+momentum for `steps` steps of 32 synthetic images
    /// on `threads` threads; returns every parameter and optimizer buffer as bit patterns.
    static func train(seed: UInt64, threads: Int, steps: Int = 6, batchNorm: Bool = false) throws -> [String: [UInt32]] {
        try ComputeRuntime.setThreadCount(threads)
        defer { try? ComputeRuntime.setThreadCount(nil) }
        GlobalGenerator.seed(seed)
        // LeNet-5, or a small batch-norm network (3x3 convolutions on Winograd and im2col, batch
        // norm, global pooling) for the reductions LeNet does not have.
        let model: Module = batchNorm
            ? Sequential(try Conv2d(inputChannels: 1, outputChannels: 8, kernelSize: 3, padding: 1, bias: false, algorithm: .winograd2x2),
                         try BatchNorm2d(features: 8), ReLU(), try MaxPool2d(kernelSize: 2),
                         try Conv2d(inputChannels: 8, outputChannels: 16, kernelSize: 3, padding: 1, bias: false, algorithm: .im2col),
                         try BatchNorm2d(features: 16), ReLU(), try AdaptiveAvgPool2d(outputSize: (1, 1)), Flatten(),
                         try Linear(inputFeatures: 16, outputFeatures: 10))
            : try LeNet5()
        let optimizer = try SGD(parameters: model.namedParameters(), learningRate: 0.05, momentum: 0.9, weightDecay: 1e-4)
        var g = SeededGenerator(seed: seed &+ 1)
        let images = try Tensor.uniform(shape: [32 * steps, 1, 28, 28], lower: 0, upper: 1, generator: &g)
        let labels = (0..<(32 * steps)).map { _ in Int32.random(in: 0..<10, using: &g) }
        let data = try LabeledDataset(images: images, labels: labels, classes: 10)
        let loader = try DataLoader(dataset: data, batchSize: 32, shuffle: true, seed: seed, prefetch: false)
        let trainer = try Trainer(model: model, optimizer: optimizer, trainLoader: loader, testLoader: nil)
        _ = try trainer.trainEpoch()
        var result: [String: [UInt32]] = [:]
        for (name, t) in model.stateDictionary() { result["model." + name] = t.scalars.map(\.bitPattern) }
        for (name, t) in optimizer.stateDictionary() { result["optimizer." + name] = t.scalars.map(\.bitPattern) }
        return result
    }

    @Test("same seed, same thread count: bit-identical weights and optimizer state",
          arguments: [(1, false), (2, false), (1, true), (2, true)])
    func repeatable(threads: Int, batchNorm: Bool) throws {
        let a = try Self.train(seed: 42, threads: threads, batchNorm: batchNorm)
        let b = try Self.train(seed: 42, threads: threads, batchNorm: batchNorm)
        #expect(a.keys.sorted() == b.keys.sorted())
        for (key, value) in a where b[key] != value { Issue.record("\(key) differs between two runs on \(threads) thread(s)") }
    }

    @Test("a different seed gives different weights (the comparison can fail)")
    func seedMatters() throws {
        let a = try Self.train(seed: 42, threads: 1, steps: 1)
        let b = try Self.train(seed: 43, threads: 1, steps: 1)
        #expect(a["model.features.0.weight"] != b["model.features.0.weight"])
    }

    @Test("one thread against two and four: training is bit-identical (measured; OpenMP build only)",
          arguments: [false, true], [2, 4])
    func threadCountDoesNotChangeTraining(batchNorm: Bool, threads: Int) throws {
        guard ComputeRuntime.isOpenMPEnabled else { return }
        let one = try Self.train(seed: 42, threads: 1, batchNorm: batchNorm)
        let two = try Self.train(seed: 42, threads: threads, batchNorm: batchNorm)
        var differing: [String] = []
        for (key, value) in one where two[key] != value { differing.append(key) }
        #expect(differing.isEmpty, "differ between 1 and \(threads) threads: \(differing.sorted())")
    }
}
