import ArgumentParser
import CNN
import Foundation

/// `cnn bench models`: whole networks compiled for inference (``Module/compiled(inputShape:algorithm:)``)
/// on the cases of `ModelCases.all`, at 1 thread and at all threads.
///
/// Each row reports the median milliseconds, images per second, the direct-convolution GFLOP/s,
/// the peak resident memory of building, compiling and running that model (`VmHWM` of
/// /proc/self/status, reset before each model through /proc/self/clear_refs), and the reference
/// figures. `--profile` adds one row per operation (median of the timed runs), so the bottleneck
/// layer is visible.
struct BenchModels: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "Time compiled whole-network inference (AlexNet, VGG-16, GoogLeNet, ResNet-18/50).")

    @Flag(help: "One JSON object per line per case.")
    var json = false

    @Option(name: .customLong("case"), help: "Only cases whose name contains this text.")
    var caseFilter: String?

    @Option(help: "Thread counts to run, comma separated (default: 1 and all cores).")
    var threads: String?

    @Option(name: .customLong("repeat"), help: "Timed runs per case after two warm-up runs (the median is reported).")
    var repetitions = 10

    @Option(help: "Convolution algorithm: auto (default), autotune, direct, im2col, gemm1x1, winograd2x2, winograd4x4, winograd6x6.")
    var algorithm: String = "auto"

    @Flag(help: "Also print the time of every operation.")
    var profile = false

    @Flag(help: "Also time the eager (uncompiled) evaluation-mode forward.")
    var eager = false

    func run() throws {
        guard repetitions >= 1 else { throw ValidationError("--repeat must be at least 1") }
        guard let alg = ConvolutionAlgorithm(rawValue: algorithm) else {
            throw ValidationError("unknown algorithm \(algorithm); one of \(ConvolutionAlgorithm.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        try ComputeRuntime.setThreadCount(nil)
        let all = ComputeRuntime.threadCount
        let counts: [Int]
        if let threads {
            counts = try threads.split(separator: ",").map {
                guard let n = Int($0.trimmingCharacters(in: .whitespaces)), n >= 1 else { throw ValidationError("bad thread count '\($0)'") }
                return n
            }
        } else {
            counts = Set([1, all]).sorted()
        }
        var peaks: [Int: Double] = [:]
        for n in counts { peaks[n] = ComputeRuntime.peakGFLOPS(isa: ComputeRuntime.activeISA, threads: n, seconds: 0.2) }

        var rows: [BenchRow] = []
        for c in ModelCases.all where caseFilter.map({ c.name.contains($0) }) ?? true {
            try ComputeRuntime.setThreadCount(nil)
            Memory.resetPeak()
            GlobalGenerator.seed(1)
            let model = try ModelZoo.make(name: c.model)
            model.eval()
            let t0 = Date()
            let compiled = try model.compiled(inputShape: c.inputShape, algorithm: alg)
            let compileSeconds = Date().timeIntervalSince(t0)
            var rng = SeededGenerator(seed: 5)
            let x = try Tensor.uniform(shape: c.inputShape, lower: -1, upper: 1, generator: &rng)
            var out = try Tensor(zeros: compiled.outputShape)
            let flops = 2 * Double(compiled.multiplyAccumulates)
            for n in counts {
                try ComputeRuntime.setThreadCount(n)
                let ms = try median { try compiled.predict(x, into: &out) }
                var row = BenchRow(suite: "models", caseName: c.name, strategy: "compiled-\(alg.rawValue)", threads: n,
                                   ms: ms, gflops: flops / (ms * 1e6), peakGFLOPS: peaks[n] ?? nil)
                row.extra.append(("images_per_s", String(format: "%.1f", Double(c.batch) / (ms / 1000))))
                row.extra.append(("peak_rss_mib", Memory.peakMiB().map { String(format: "%.0f", $0) } ?? "null"))
                row.extra.append(("arena_mib", String(format: "%.1f", Double(compiled.arenaByteCount) / 1_048_576)))
                row.extra.append(("compile_s", String(format: "%.2f", compileSeconds)))
                if let t = c.targetMilliseconds { row.extra.append(("target_ms_2t", String(format: "%.1f", t))) }
                if let p = c.peerMilliseconds { row.extra.append(("peer_ms_2t", String(format: "%.1f", p))) }
                rows.append(row)
                if eager {
                    let xv = x
                    let ems = try median { _ = try model(xv) }
                    rows.append(BenchRow(suite: "models", caseName: c.name, strategy: "eager", threads: n, ms: ems,
                                         gflops: flops / (ems * 1e6), peakGFLOPS: peaks[n] ?? nil,
                                         extra: [("images_per_s", String(format: "%.1f", Double(c.batch) / (ems / 1000)))]))
                }
                if profile {
                    var samples: [[Double]] = []
                    for _ in 0..<repetitions { samples.append(try compiled.profile(x).map(\.milliseconds)) }
                    for (i, op) in compiled.operations.enumerated() {
                        let times = samples.map { $0[i] }.sorted()
                        let t = times[times.count / 2]
                        rows.append(BenchRow(suite: "models.profile", caseName: "\(c.name)/\(op.name)", strategy: "\(op.kind) \(op.detail)",
                                             threads: n, ms: t, gflops: op.multiplyAccumulates > 0 ? 2 * Double(op.multiplyAccumulates) / (t * 1e6) : nil,
                                             peakGFLOPS: peaks[n] ?? nil,
                                             extra: [("shape", "\"" + op.outputShape.map(String.init).joined(separator: "x") + "\"")]))
                    }
                }
            }
        }
        try ComputeRuntime.setThreadCount(nil)
        BenchOutput.emit(rows, json: json)
    }

    /// Median milliseconds of `repetitions` runs after two warm-up runs.
    private func median(_ body: () throws -> Void) throws -> Double {
        try body(); try body()
        var samples: [Double] = []
        for _ in 0..<repetitions {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
        }
        samples.sort()
        return samples[samples.count / 2]
    }
}

/// The process's peak resident memory, from Linux's /proc.
private enum Memory {
    /// Resets VmHWM to the current resident size (`5` to /proc/self/clear_refs, Linux 4.0+).
    static func resetPeak() {
        guard let h = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return }
        try? h.write(contentsOf: Data("5".utf8))
        try? h.close()
    }

    /// VmHWM in MiB, or `nil` where /proc/self/status has none.
    static func peakMiB() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kb = Double(line.split(separator: " ").dropFirst().first ?? "") else { return nil }
        return kb / 1024
    }
}
