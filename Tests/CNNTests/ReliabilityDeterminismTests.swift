import Foundation
import Testing
@testable import CNN

/// Same seed and thread count give bit-identical weights; what the thread count changes is
/// measured, not assumed (see the README's "Reliability" section).
@Suite("Reliability: determinism", .serialized)
struct ReliabilityDeterminismTests {
    /// Trains a LeNet-5 with batch norm-free SGD+momentum for `steps` steps of 32 synthetic images
    /// on `threads` threads; returns every parameter and optimizer buffer as bit patterns.
    static func train(seed: UInt64, threads: Int, steps: Int = 6) throws -> [String: [UInt32]] {
        try ComputeRuntime.setThreadCount(threads)
        defer { try? ComputeRuntime.setThreadCount(nil) }
        GlobalGenerator.seed(seed)
        let model = try LeNet5()
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

    @Test("same seed, same thread count: bit-identical weights and optimizer state", arguments: [1, 2])
    func repeatable(threads: Int) throws {
        let a = try Self.train(seed: 42, threads: threads)
        let b = try Self.train(seed: 42, threads: threads)
        #expect(a.keys.sorted() == b.keys.sorted())
        for (key, value) in a where b[key] != value { Issue.record("\(key) differs between two runs on \(threads) thread(s)") }
    }

    @Test("a different seed gives different weights (the comparison can fail)")
    func seedMatters() throws {
        let a = try Self.train(seed: 42, threads: 1, steps: 1)
        let b = try Self.train(seed: 43, threads: 1, steps: 1)
        #expect(a["model.features.0.weight"] != b["model.features.0.weight"])
    }

    @Test("one and two threads: LeNet-5 training is bit-identical (measured; OpenMP build only)")
    func threadCountDoesNotChangeLeNet() throws {
        guard ComputeRuntime.isOpenMPEnabled else { return }
        let one = try Self.train(seed: 42, threads: 1)
        let two = try Self.train(seed: 42, threads: 2)
        var differing: [String] = []
        for (key, value) in one where two[key] != value { differing.append(key) }
        #expect(differing.isEmpty, "differ between 1 and 2 threads: \(differing.sorted())")
    }
}
