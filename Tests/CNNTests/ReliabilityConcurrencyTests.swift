import Foundation
import Testing
@testable import CNN

/// A module shared by tasks that only run inference on it.
///
/// `Module` is not `Sendable` (training mutates gradients and buffers). In eval mode and with
/// gradients off, `forward` only reads the weights, and the one thing it writes — a convolution's
/// prepared-plan cache — is behind a mutex, so sharing it for inference is safe; this box says so
/// in one place.
struct InferenceOnly<M: Module>: @unchecked Sendable {
    let module: M
}

@Suite("Reliability: concurrency", .serialized)
struct ReliabilityConcurrencyTests {
    @Test("one model in eval mode, called from 8 tasks at once, gives the sequential outputs bit for bit")
    func concurrentInference() async throws {
        GlobalGenerator.seed(8)
        var g = SeededGenerator(seed: 9)
        // Convolutions on three algorithms (plans cached per layer), batch norm in eval mode, pooling
        // and a linear layer.
        let model = Sequential(
            try Conv2d(inputChannels: 3, outputChannels: 8, kernelSize: 3, padding: 1, algorithm: .winograd2x2),
            try BatchNorm2d(features: 8), ReLU(), try MaxPool2d(kernelSize: 2),
            try Conv2d(inputChannels: 8, outputChannels: 16, kernelSize: 3, padding: 1, algorithm: .im2col),
            try BatchNorm2d(features: 16), ReLU(),
            try Conv2d(inputChannels: 16, outputChannels: 16, kernelSize: 1, algorithm: .gemm1x1), ReLU(),
            try AdaptiveAvgPool2d(outputSize: (1, 1)), Flatten(), try Linear(inputFeatures: 16, outputFeatures: 10))
        // Non-trivial running statistics, so eval-mode batch norm is not the identity.
        for (_, buffer) in model.namedBuffers() where buffer.value.rank == 1 {
            buffer.value = try Tensor.uniform(shape: buffer.value.shape, lower: 0.5, upper: 1.5, generator: &g)
        }
        model.eval()
        let inputs = try (0..<8).map { _ in try Tensor.uniform(shape: [2, 3, 32, 32], lower: -1, upper: 1, generator: &g) }
        let sequential = try inputs.map { x in try GradientMode.withoutGradients { try model(Variable(x)).value.scalars } }
        let shared = InferenceOnly(module: model)
        for _ in 0..<2 {
            let concurrent = try await withThrowingTaskGroup(of: (Int, [Float]).self) { group in
                for (i, x) in inputs.enumerated() {
                    group.addTask {
                        try GradientMode.withoutGradients { (i, try shared.module(Variable(x)).value.scalars) }
                    }
                }
                var out = [[Float]](repeating: [], count: inputs.count)
                for try await (i, y) in group { out[i] = y }
                return out
            }
            for i in inputs.indices {
                #expect(concurrent[i].map(\.bitPattern) == sequential[i].map(\.bitPattern), "input \(i)")
            }
        }
    }

    @Test("gradient mode is per task: a task with gradients off does not switch them off for another")
    func gradientModeIsTaskLocal() async throws {
        let results = await withTaskGroup(of: Bool.self) { group in
            for i in 0..<8 {
                group.addTask {
                    if i % 2 == 0 {
                        return GradientMode.withoutGradients { for _ in 0..<1000 { if GradientMode.isEnabled { return true } }; return false }
                    }
                    for _ in 0..<1000 { if !GradientMode.isEnabled { return true } }
                    return false
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(!results.contains(true))
    }

    @Test("the shared autotuner and plan caches take concurrent loads and lookups")
    func concurrentAutotunerLoads() async throws {
        let tuner = ConvolutionAutotuner()
        let geometry = ConvolutionGeometry(batch: 1, inputChannels: 4, height: 8, width: 8, outputChannels: 4, kernelSize: (3, 3), padding: (1, 1))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for t in 1...8 {
                group.addTask {
                    let table = #"{"version":1,"entries":[{"geometry":{"batch":1,"inputChannels":4,"height":8,"width":8,"outputChannels":4,"kernelHeight":3,"kernelWidth":3,"strideHeight":1,"strideWidth":1,"paddingHeight":1,"paddingWidth":1,"dilationHeight":1,"dilationWidth":1,"groups":1},"algorithm":"direct","milliseconds":1,"isa":"portable","threads":\#(t)}]}"#
                    for _ in 0..<20 { try tuner.load(json: Data(table.utf8)); _ = tuner.entries }
                }
            }
            try await group.waitForAll()
        }
        #expect(tuner.entries.count == 8)
        #expect(tuner.entries.allSatisfy { $0.geometry == geometry })
    }

    @Test("value types that cross tasks are Sendable")
    func sendableTypes() {
        func isSendable<T: Sendable>(_: T.Type) -> Bool { true }
        #expect(isSendable(Tensor.self) && isSendable(CNNError.self) && isSendable(SafeTensors.self) && isSendable(LabeledDataset.self)
                && isSendable(DataLoader.self) && isSendable(Image.self) && isSendable(ConvolutionAutotuner.self))
    }
}
