import Benchmark
import CNN
import CNNBenchmarkSupport

/// Every applicable convolution algorithm (and the `auto` choice) on every layer of
/// `ConvBenchmarkCases.all`, forward through a plan prepared in the set-up; then the two backward
/// passes of each layer.
let benchmarks: @Sendable () -> Void = {
    let configuration = CNNBenchmarkSupport.configuration(extraMetrics: [CNNBenchmarkSupport.gflops], maxIterations: 5)
    for c in ConvBenchmarkCases.all {
        for algorithm in [ConvolutionAlgorithm.auto] + c.applicableAlgorithms {
            Benchmark("conv \(c.name) \(algorithm.rawValue)", configuration: configuration) { benchmark, conv in
                try CNNBenchmarkSupport.measureGFLOPS(benchmark, flops: c.directFLOPs) { try conv.run() }
            } setup: {
                try ConvolutionBenchmark(c, algorithm: algorithm)
            }
        }
        for pass in [ConvolutionBenchmarkPass.backwardData, .backwardWeight] {
            Benchmark("conv \(c.name) \(pass.rawValue)", configuration: configuration) { benchmark, conv in
                try CNNBenchmarkSupport.measureGFLOPS(benchmark, flops: c.directFLOPs) { try conv.run() }
            } setup: {
                try ConvolutionBenchmark(c, pass: pass)
            }
        }
    }
}
