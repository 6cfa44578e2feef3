import ArgumentParser
import CNN
import Foundation

/// `cnn bench conv`: every applicable algorithm on the reference layer list (ConvBenchmarkCases),
/// timed through a plan created once per case and algorithm (the shared ``ConvolutionBenchmark``).
struct BenchConv: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conv",
        abstract: "Time 2-D convolution algorithms on VGG, ResNet and AlexNet layers.")

    @Flag(help: "One JSON object per line per case.")
    var json = false

    @Option(name: .customLong("case"), help: "Only cases whose name contains this substring.")
    var caseFilter: String?

    @Option(help: "Only this algorithm (auto, direct, im2col, gemm1x1, winograd2x2, winograd4x4, winograd6x6).")
    var strategy: String?

    @Option(help: "Threads (default: all cores).")
    var threads: Int?

    @Option(help: "Timed runs per case after one warm-up; the median is reported.")
    var `repeat`: Int = 5

    @Flag(help: "Time the backward pass (data and weight gradients) instead of the forward.")
    var backward = false

    func run() throws {
        guard `repeat` >= 1 else { throw ValidationError("--repeat must be at least 1") }
        try ComputeRuntime.setThreadCount(threads)
        let threadCount = ComputeRuntime.threadCount
        let peak = ComputeRuntime.peakGFLOPS(isa: ComputeRuntime.activeISA, threads: threadCount, seconds: 0.2)
        let algorithms = [ConvolutionAlgorithm.auto] + ConvolutionAlgorithm.concrete
        if let strategy, !algorithms.contains(where: { $0.rawValue == strategy }) {
            throw ValidationError("unknown strategy \(strategy) (known: \(algorithms.map(\.rawValue).joined(separator: ", ")))")
        }
        let cases = ConvBenchmarkCases.all.filter { caseFilter == nil || $0.name.contains(caseFilter!) }
        var rows: [BenchRow] = []
        for bc in cases {
            // The layer's geometry travels with every row, so a comparison script needs no copy of the list.
            let geometry = ("geometry", "[\(bc.batch),\(bc.inputChannels),\(bc.height),\(bc.width),\(bc.outputChannels),\(bc.kernelSize),\(bc.stride),\(bc.padding),\(bc.groups)]")
            let gflops = { (ms: Double) in bc.directFLOPs / (ms * 1e6) }
            if backward {
                for pass in [ConvolutionBenchmarkPass.backwardData, .backwardWeight] {
                    let bench = try ConvolutionBenchmark(bc, pass: pass)
                    let ms = try benchmarkMilliseconds(repetitions: `repeat`) { try bench.run() }.median
                    rows.append(BenchRow(suite: "conv", caseName: bc.name, strategy: pass.rawValue, threads: threadCount,
                                         ms: ms, gflops: gflops(ms), peakGFLOPS: peak, extra: [geometry]))
                }
                continue
            }
            let applicable = bc.applicableAlgorithms
            for algorithm in algorithms where strategy == nil || algorithm.rawValue == strategy {
                guard algorithm == .auto || applicable.contains(algorithm) else { continue }
                let bench: ConvolutionBenchmark
                do {
                    bench = try ConvolutionBenchmark(bc, algorithm: algorithm)
                } catch {
                    // Kernels not built into this binary, or out of memory: say so in the row.
                    rows.append(BenchRow(suite: "conv", caseName: bc.name, strategy: algorithm.rawValue, threads: threadCount,
                                         ms: nil, gflops: nil, peakGFLOPS: peak, extra: [geometry, ("status", "\"unavailable\"")]))
                    continue
                }
                var extra: [(String, String)] = [geometry, ("bytes", "\(bench.planBytes)"),
                                                 ("workspace_bytes", "\(bench.workspaceBytes)")]
                if algorithm == .auto, let runs = bench.algorithm { extra.append(("runs", "\"\(runs.rawValue)\"")) }
                do {
                    let ms = try benchmarkMilliseconds(repetitions: `repeat`) { try bench.run() }.median
                    rows.append(BenchRow(suite: "conv", caseName: bc.name, strategy: algorithm.rawValue, threads: threadCount,
                                         ms: ms, gflops: gflops(ms), peakGFLOPS: peak, extra: extra))
                } catch {
                    extra.append(("status", "\"failed\""))
                    rows.append(BenchRow(suite: "conv", caseName: bc.name, strategy: algorithm.rawValue, threads: threadCount,
                                         ms: nil, gflops: nil, peakGFLOPS: peak, extra: extra))
                }
            }
        }
        BenchOutput.emit(rows, json: json)
    }
}
