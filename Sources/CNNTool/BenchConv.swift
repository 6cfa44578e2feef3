import ArgumentParser
import CNN
import CNNKernels
import Foundation

/// `cnn bench conv`: every applicable algorithm on the reference layer list (ConvBenchmarkCases),
/// timed through a plan created once per case and algorithm.
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
        let algorithms = (0..<Int(CNN_CONV_ALGORITHM_COUNT)).map { cnn_conv_algorithm(rawValue: UInt32($0)) }
        if let strategy, !algorithms.contains(where: { name($0) == strategy }) {
            throw ValidationError("unknown strategy \(strategy)")
        }
        let cases = ConvBenchmarkCases.all.filter { caseFilter == nil || $0.name.contains(caseFilter!) }
        var rows: [BenchRow] = []
        for bc in cases {
            var shape = cnn_conv_shape(N: Int64(bc.batch), C: Int64(bc.inputChannels), H: Int64(bc.height),
                                       W: Int64(bc.width), K: Int64(bc.outputChannels), R: Int64(bc.kernelSize),
                                       S: Int64(bc.kernelSize), stride_h: Int64(bc.stride), stride_w: Int64(bc.stride),
                                       pad_h: Int64(bc.padding), pad_w: Int64(bc.padding), dilation_h: 1,
                                       dilation_w: 1, groups: Int64(bc.groups))
            let xCount = bc.batch * bc.inputChannels * bc.height * bc.width
            let wCount = bc.outputChannels * bc.inputChannels / bc.groups * bc.kernelSize * bc.kernelSize
            let yCount = bc.batch * bc.outputChannels * bc.outputHeight * bc.outputWidth
            var seed: UInt32 = 1
            func fill(_ n: Int) -> [Float] {
                (0..<n).map { _ in seed = seed &* 1_664_525 &+ 1_013_904_223; return Float(seed >> 8) / Float(1 << 24) - 0.5 }
            }
            let x = fill(xCount), w = fill(wCount), bias = fill(bc.outputChannels)
            var y = [Float](repeating: 0, count: yCount)
            let gflops = { (ms: Double) in bc.directFLOPs / (ms * 1e6) }

            if backward {
                let dy = fill(yCount)
                var dx = [Float](repeating: 0, count: xCount), dw = [Float](repeating: 0, count: wCount)
                var db = [Float](repeating: 0, count: bc.outputChannels)
                let data = time { _ = cnn_conv2d_backward_data(&shape, dy, w, &dx) }
                let weight = time { _ = cnn_conv2d_backward_weight(&shape, x, dy, &dw, &db) }
                rows.append(BenchRow(suite: "conv", caseName: bc.name, strategy: "backward-data", threads: threadCount,
                                     ms: data, gflops: gflops(data), peakGFLOPS: peak))
                rows.append(BenchRow(suite: "conv", caseName: bc.name, strategy: "backward-weight", threads: threadCount,
                                     ms: weight, gflops: gflops(weight), peakGFLOPS: peak))
                continue
            }
            for algorithm in algorithms where strategy == nil || name(algorithm) == strategy {
                guard cnn_conv_algorithm_applies(algorithm, &shape) != 0 else { continue }
                var status = CNN_OK
                guard let plan = cnn_conv_plan_create(algorithm, &shape, w, &status) else {
                    // Winograd kernels not built into this binary (or out of memory): say so.
                    rows.append(BenchRow(suite: "conv", caseName: bc.name, strategy: name(algorithm), threads: threadCount,
                                         ms: nil, gflops: nil, peakGFLOPS: peak, extra: [("status", "\(status.rawValue)")]))
                    continue
                }
                defer { cnn_conv_plan_destroy(plan) }
                var failed = false
                let ms = time {
                    if cnn_conv_plan_forward(plan, x, bias, nil, 1, &y) != CNN_OK { failed = true }
                }
                var extra: [(String, String)] = [
                    ("bytes", "\(cnn_conv_plan_weight_bytes(plan) + cnn_conv_plan_workspace_bytes(plan))"),
                ]
                if algorithm == CNN_CONV_AUTO { extra.append(("runs", "\"\(name(cnn_conv_plan_algorithm(plan)))\"")) }
                if failed { extra.append(("status", "\"failed\"")) }
                rows.append(BenchRow(suite: "conv", caseName: bc.name, strategy: name(algorithm), threads: threadCount,
                                     ms: failed ? nil : ms, gflops: failed ? nil : gflops(ms), peakGFLOPS: peak, extra: extra))
            }
        }
        BenchOutput.emit(rows, json: json)
    }

    private func name(_ a: cnn_conv_algorithm) -> String { String(cString: cnn_conv_algorithm_name(a)) }

    /// Median milliseconds of `repeat` runs after one warm-up.
    private func time(_ body: () -> Void) -> Double {
        body()
        var samples: [Double] = []
        for _ in 0..<`repeat` {
            let t0 = cnn_now()
            body()
            samples.append((cnn_now() - t0) * 1e3)
        }
        samples.sort()
        return samples[samples.count / 2]
    }
}
