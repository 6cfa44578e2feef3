import Benchmark
import CNN
import CNNBenchmarkSupport

/// Whole networks compiled for inference (`ModelCases.all`: AlexNet, VGG-16, GoogLeNet, ResNet-18
/// and ResNet-50 at batch 1, 224x224, and ResNet-50 at batch 8), the same cases as
/// `cnn bench models`. Throughput counts forward passes per second; GFLOP/s counts 2 per
/// multiply-add of the network.
let benchmarks: @Sendable () -> Void = {
    for c in ModelCases.all {
        // VGG-16 and ResNet-50 at batch 8 take 0.1-0.4 s a pass on 2 cores: keep default runs short.
        let iterations = c.model == "vgg16" || c.batch > 1 ? 5 : 20
        let configuration = CNNBenchmarkSupport.configuration(
            extraMetrics: [CNNBenchmarkSupport.gflops], maxIterations: iterations, maxDuration: .seconds(3))
        Benchmark("forward \(c.name) \(c.inputShape.map(String.init).joined(separator: "x"))",
                  configuration: configuration) { benchmark, model in
            try CNNBenchmarkSupport.measureGFLOPS(benchmark, flops: model.flops) { try model.run() }
        } setup: {
            try ModelForwardBenchmark(c)
        }
    }
}
