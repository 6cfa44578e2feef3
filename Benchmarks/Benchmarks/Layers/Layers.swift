import Benchmark
import CNN
import CNNBenchmarkSupport

/// Pooling, batch norm, ReLU, LRN and softmax/cross-entropy kernels on the shapes of
/// `LayerCases.all` (memory-bound: wall clock and throughput are the metrics that matter).
let benchmarks: @Sendable () -> Void = {
    let configuration = CNNBenchmarkSupport.configuration(maxIterations: 20)
    for c in LayerCases.all {
        Benchmark("layer \(c.name) \(c.shape.map(String.init).joined(separator: "x"))",
                  configuration: configuration) { benchmark, layer in
            for _ in benchmark.scaledIterations { try layer.run() }
        } setup: {
            try LayerBenchmark(c)
        }
    }
}
