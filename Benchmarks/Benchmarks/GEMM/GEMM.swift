import Benchmark
import CNN
import CNNBenchmarkSupport

/// SGEMM on every shape of `GEMMCases.all`, with the active ISA variant and all threads.
let benchmarks: @Sendable () -> Void = {
    for c in GEMMCases.all {
        Benchmark("sgemm \(c.name) \(c.m)x\(c.n)x\(c.k)",
                  configuration: CNNBenchmarkSupport.configuration(extraMetrics: [CNNBenchmarkSupport.gflops])) { benchmark, gemm in
            try CNNBenchmarkSupport.measureGFLOPS(benchmark, flops: c.flops) { try gemm.run() }
        } setup: {
            try GEMMBenchmark(c)
        }
    }
}
