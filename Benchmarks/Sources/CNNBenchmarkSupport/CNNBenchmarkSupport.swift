import Benchmark
import CNN

/// The settings every swift-cnn benchmark shares: the metrics, short default runs (the development
/// machines have 2 cores and are shared) and regression thresholds loose enough for that noise.
public enum CNNBenchmarkSupport {
    /// Floating-point throughput of the case, counted in direct-computation FLOPs (the figure the
    /// peers' tables use, whatever algorithm runs), recorded once per iteration.
    public static let gflops = BenchmarkMetric.custom("GFLOP/s", polarity: .prefersLarger, useScalingFactor: false)

    /// Wall clock, throughput, mallocs and peak resident memory, plus `extraMetrics`.
    ///
    /// Thresholds: wall clock, throughput and GFLOP/s may drift by 30 % at the median before
    /// `baseline check` reports a regression (a machine shared with other work moves them by 10-20 %;
    /// a real regression such as losing the vector kernels is 2-10x); malloc counts by 50 % (a few
    /// dozen per call come from the harness and the thread pool and vary by a handful; an allocation
    /// per element or per layer is far more); peak
    /// resident memory by 20 %.
    public static func configuration(extraMetrics: [BenchmarkMetric] = [], maxIterations: Int = 10,
                                     maxDuration: Duration = .seconds(2)) -> Benchmark.Configuration {
        let timing = BenchmarkThresholds(relative: [.p50: 30.0])
        var thresholds: [BenchmarkMetric: BenchmarkThresholds] = [
            .wallClock: timing,
            .throughput: timing,
            .mallocCountTotal: BenchmarkThresholds(relative: [.p50: 50.0]),
            .peakMemoryResident: BenchmarkThresholds(relative: [.p50: 20.0]),
        ]
        for metric in extraMetrics { thresholds[metric] = timing }
        return Benchmark.Configuration(
            metrics: [.wallClock, .throughput, .mallocCountTotal, .peakMemoryResident] + extraMetrics,
            timeUnits: .microseconds,
            warmupIterations: 1,
            maxDuration: maxDuration,
            maxIterations: maxIterations,
            thresholds: thresholds)
    }

    /// Runs `body` once per scaled iteration, recording GFLOP/s for each from its own wall time.
    public static func measureGFLOPS(_ benchmark: Benchmark, flops: Double, _ body: () throws -> Void) rethrows {
        for _ in benchmark.scaledIterations {
            let t0 = benchmarkClock()
            try body()
            let seconds = benchmarkClock() - t0
            benchmark.measurement(gflops, Int((flops / max(seconds, 1e-12) / 1e9).rounded()))
        }
    }

    /// `"<ISA>, <n> threads"`: appended to suite names so a baseline says what it measured.
    public static var runtimeLabel: String {
        "\(ComputeRuntime.activeISA), \(ComputeRuntime.threadCount) threads"
    }
}
