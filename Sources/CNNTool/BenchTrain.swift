import ArgumentParser
import CNN
import Foundation

/// `cnn bench train`: the time of one training step (forward, cross-entropy, backward, SGD with
/// momentum and weight decay) of the networks in `TrainCases.all`, phase by phase, with the one-epoch
/// estimate and, where measured, the ratio to PyTorch on the reference machine; and the inference
/// forward pass of the same batch.
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Time training steps of LeNet-5 (28x28, batch 64) and ResNet-18 (32x32, batch 64).")

    @Flag(help: "One JSON object per line per case.")
    var json = false

    @Option(name: .customLong("case"), help: "Only cases whose name contains this text.")
    var caseFilter: String?

    @Option(help: "Threads (default: all cores or OMP_NUM_THREADS).")
    var threads: Int?

    @Option(name: .customLong("repeat"), help: "Timed steps per case after two warm-up steps (the median is reported).")
    var repetitions = 10

    @Flag(help: "Skip the inference forward pass.")
    var noForward = false

    func run() throws {
        guard repetitions >= 1 else { throw ValidationError("--repeat must be at least 1") }
        try ComputeRuntime.setThreadCount(threads)
        let nt = ComputeRuntime.threadCount
        let peak = ComputeRuntime.peakGFLOPS(isa: ComputeRuntime.activeISA, threads: nt, seconds: 0.2)
        let cases = TrainCases.all.filter { caseFilter == nil || $0.name.contains(caseFilter!) }
        if let caseFilter, cases.isEmpty {
            throw ValidationError("no training case matches '\(caseFilter)' (cases: \(TrainCases.all.map(\.name).joined(separator: ", ")))")
        }
        var rows: [BenchRow] = []
        for c in cases {
            let bench = try TrainingStepBenchmark(c)
            // Warm-up: the first steps build the convolution plans and the momentum buffers.
            for _ in 0..<2 { _ = try bench.timedStep() }
            var samples: [TrainingStepPhases] = []
            for _ in 0..<repetitions { samples.append(try bench.timedStep()) }
            func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
            let ms = median(samples.map(\.total))
            var row = BenchRow(suite: "train", caseName: c.name, strategy: "step", threads: nt, ms: ms,
                               gflops: nil, peakGFLOPS: peak)
            // The case's definition travels with the row, so a comparison script needs no copy of it.
            row.extra.append(("network", "\"\(c.network.rawValue)\""))
            row.extra.append(("input", "[" + c.inputShape.map(String.init).joined(separator: ",") + "]"))
            row.extra.append(("classes", "\(c.classes)"))
            row.extra.append(("sgd", "[\(c.learningRate),\(c.momentum),\(c.weightDecay)]"))
            row.extra.append(("min_ms", String(format: "%.3f", samples.map(\.total).min()!)))
            row.extra.append(("forward_ms", String(format: "%.3f", median(samples.map(\.forward)))))
            row.extra.append(("backward_ms", String(format: "%.3f", median(samples.map(\.backward)))))
            row.extra.append(("optimizer_ms", String(format: "%.3f", median(samples.map(\.optimizer)))))
            row.extra.append(("images_per_s", String(format: "%.1f", Double(c.batch) / (ms * 1e-3))))
            row.extra.append(("epoch_s", String(format: "%.2f", Double(c.stepsPerEpoch) * ms * 1e-3)))
            if let peer = c.peerMilliseconds {
                row.extra.append(("pytorch_ms", String(format: "%.2f", peer)))
                row.extra.append(("vs_pytorch", String(format: "%.3f", ms / peer)))
            }
            rows.append(row)
            if !noForward {
                let (fms, fmin) = try benchmarkMilliseconds(repetitions: repetitions, warmups: 2) { _ = try bench.inferenceForward() }
                var frow = BenchRow(suite: "train", caseName: c.name, strategy: "inference-forward", threads: nt, ms: fms,
                                    gflops: nil, peakGFLOPS: peak)
                frow.extra.append(("min_ms", String(format: "%.3f", fmin)))
                frow.extra.append(("images_per_s", String(format: "%.1f", Double(c.batch) / (fms * 1e-3))))
                rows.append(frow)
            }
        }
        BenchOutput.emit(rows, json: json)
    }
}
