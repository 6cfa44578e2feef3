import Benchmark
import CNN
import CNNBenchmarkSupport

/// For each case of `TrainCases.all` (LeNet-5 at 28x28 and ResNet-18 at 32x32, batch 64, SGD with
/// momentum and weight decay): one training step (forward, loss, backward, update) and the
/// inference forward pass of the same batch. Throughput counts steps (or forward passes) per second.
let benchmarks: @Sendable () -> Void = {
    for c in TrainCases.all {
        // ResNet-18 steps take about 0.1-0.3 s on 2 cores: a handful keeps the default run short.
        let iterations = c.network == .lenet5 ? 30 : 5
        let configuration = CNNBenchmarkSupport.configuration(maxIterations: iterations, maxDuration: .seconds(3))
        Benchmark("train-step \(c.name)", configuration: configuration) { (benchmark: Benchmark, bench: TrainingStepBenchmark) in
            for _ in benchmark.scaledIterations { blackHole(try bench.step()) }
        } setup: { () throws -> TrainingStepBenchmark in
            let bench = try TrainingStepBenchmark(c)
            // Outside the measurement: the first steps build plans and momentum buffers.
            try bench.step()
            return bench
        }
        Benchmark("forward \(c.name)", configuration: configuration) { benchmark, bench in
            for _ in benchmark.scaledIterations { blackHole(try bench.inferenceForward()) }
        } setup: {
            try TrainingStepBenchmark(c)
        }
    }
}
