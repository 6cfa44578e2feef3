import Testing
@testable import CNN
import CNNKernels

/// The shared benchmark bodies run what they claim on every case list, and reject what does not
/// apply. Nothing here is timed.
@Suite struct BenchmarkingTests {
    @Test func caseNamesAreUniqueInEveryList() {
        #expect(Set(GEMMCases.all.map(\.name)).count == GEMMCases.all.count)
        #expect(Set(ConvBenchmarkCases.all.map(\.name)).count == ConvBenchmarkCases.all.count)
        #expect(Set(LayerCases.all.map(\.name)).count == LayerCases.all.count)
        #expect(Set(TrainCases.all.map(\.name)).count == TrainCases.all.count)
    }

    @Test func gemmBodiesRunAndRejectEmptyShapes() throws {
        for c in GEMMCases.layers { try GEMMBenchmark(c).run() }
        #expect(throws: CNNError.self) { try GEMMBenchmark(GEMMBenchmarkCase(name: "empty", m: 0, n: 4, k: 4)) }
    }

    @Test func everyApplicableConvolutionAlgorithmAndBothBackwardPassesRun() throws {
        let c = try #require(ConvBenchmarkCases.all.first { $0.name == "resnet.l4.3x3" })
        #expect(c.applicableAlgorithms.contains(.winograd4x4))
        for algorithm in [ConvolutionAlgorithm.auto] + c.applicableAlgorithms {
            let bench = try ConvolutionBenchmark(c, algorithm: algorithm)
            try bench.run()
            #expect(bench.planBytes > 0)
            #expect(bench.algorithm != nil && bench.algorithm != .auto)
        }
        for pass in [ConvolutionBenchmarkPass.backwardData, .backwardWeight] {
            try ConvolutionBenchmark(c, pass: pass).run()
        }
        // A 1x1 GEMM does not apply to a 3x3 layer: refused, not silently replaced.
        #expect(throws: CNNError.self) { try ConvolutionBenchmark(c, algorithm: .gemm1x1) }
    }

    /// The convolution issue's memory rule, checked on the benchmark's own case list: no strategy
    /// needs more than 64 MiB of scratch (all threads together) for any listed case. The
    /// prepared weights are not scratch: F(6x6) on 512 channels holds 64 MiB of them.
    @Test func everyListedCaseNeedsAtMost64MiBOfWorkspace() throws {
        for c in ConvBenchmarkCases.all {
            var shape = c.geometry.cShape
            let weights = [Float](repeating: 0.25,
                                  count: c.outputChannels * (c.inputChannels / c.groups) * c.kernelSize * c.kernelSize)
            for algorithm in c.applicableAlgorithms {
                var status = CNN_OK
                let plan = try #require(cnn_conv_plan_create(algorithm.cValue, &shape, weights, &status))
                let bytes = cnn_conv_plan_workspace_bytes(plan)
                cnn_conv_plan_destroy(plan)
                #expect(bytes <= 64 << 20, "\(c.name) \(algorithm): \(bytes) bytes")
            }
        }
        // The benchmark reports the same figure.
        let l4 = try #require(ConvBenchmarkCases.all.first { $0.name == "resnet.l4.3x3" })
        let bench = try ConvolutionBenchmark(l4, algorithm: .winograd6x6)
        #expect(bench.workspaceBytes > 0 && bench.planBytes > bench.workspaceBytes)
    }

    @Test func everyConvolutionCaseHasAValidGeometry() throws {
        for c in ConvBenchmarkCases.all {
            let (p, q) = try c.geometry.outputSize()
            #expect(p == c.outputHeight && q == c.outputWidth, "\(c.name)")
            #expect(Double(c.geometry.multiplyAccumulates) * 2 == c.directFLOPs, "\(c.name)")
        }
    }

    @Test func everyLayerCaseRunsAndCountsItsBytes() throws {
        for c in LayerCases.all {
            let bench = try LayerBenchmark(c)
            try bench.run()
            #expect(bench.bytesMoved >= Double(c.elementCount * 4), "\(c.name)")
        }
    }

    @Test func lenetTrainingStepLowersTheLossOnItsBatch() throws {
        let c = try #require(TrainCases.all.first { $0.network == .lenet5 })
        #expect(c.stepsPerEpoch == 938)
        let bench = try TrainingStepBenchmark(c)
        let first = try bench.step()
        var last = first
        for _ in 0..<6 { last = try bench.step() }
        #expect(first.isFinite && last.isFinite)
        #expect(last < first, "loss \(first) -> \(last) on a fixed batch")
        let phases = try bench.timedStep()
        #expect(phases.forward > 0 && phases.backward > 0 && phases.optimizer >= 0)
        #expect(abs(phases.total - (phases.forward + phases.backward + phases.optimizer)) < 1e-9)
        let logits = try bench.inferenceForward()
        #expect(logits.shape == [c.batch, c.classes])
        #expect(bench.model.isTraining, "inference leaves the model in training mode")
    }

    @Test func repetitionsMustBePositive() {
        #expect(throws: CNNError.self) { _ = try benchmarkMilliseconds(repetitions: 0) {} }
        var calls = 0
        _ = try? benchmarkMilliseconds(repetitions: 3, warmups: 2) { calls += 1 }
        #expect(calls == 5)
    }
}
