import ArgumentParser
import CNN

/// `cnn bench gemm`: SGEMM GFLOP/s per ISA variant and thread count, against the FMA peak probed
/// in the same run. Each case: warm-up call, then the median of `--repeat` timed calls.
struct BenchGEMM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm",
        abstract: "Measure SGEMM on square and convolution-like shapes, per ISA variant and thread count.")

    @Flag(help: "One JSON object per line per case.")
    var json = false

    @Option(help: "ISA variants to measure: all, or a comma-separated list of avx512, avx2, generic.")
    var isa = "all"

    @Option(help: "Thread counts, comma-separated (default: 1 and all threads).")
    var threads: String?

    @Option(help: "Timed calls per case (the median is reported).")
    var `repeat` = 5

    @Option(help: "Only cases whose name contains this text.")
    var filter: String?

    func run() throws {
        let supported = ComputeRuntime.supportedISAs.reversed()
        let isas: [ISA]
        if isa == "all" {
            isas = Array(supported)
        } else {
            isas = try isa.split(separator: ",").map { name in
                guard let v = ISA(rawValue: String(name)), supported.contains(v) else {
                    throw ValidationError("unknown or unsupported ISA '\(name)' (supported: \(supported.map(\.rawValue).joined(separator: ", ")))")
                }
                return v
            }
        }
        let all = ComputeRuntime.threadCount
        let threadCounts: [Int]
        if let threads {
            threadCounts = try threads.split(separator: ",").map {
                guard let t = Int($0), t >= 1 else { throw ValidationError("bad thread count '\($0)'") }
                return t
            }
        } else {
            threadCounts = Set([1, all]).sorted()
        }
        guard `repeat` >= 1 else { throw ValidationError("--repeat must be at least 1") }
        let cases = GEMMCases.all.filter { filter == nil || $0.name.contains(filter!) }

        defer { try? ComputeRuntime.setThreadCount(nil) }
        var rows: [BenchRow] = []
        for v in isas {
            try ComputeRuntime.withISA(v) {
                for t in threadCounts {
                    try ComputeRuntime.setThreadCount(t)
                    let peak = ComputeRuntime.peakGFLOPS(isa: v, threads: t, seconds: 0.2)
                    for c in cases {
                        let ms = try Self.measure(c, repeats: `repeat`)
                        rows.append(BenchRow(suite: "gemm", caseName: "\(c.name) \(c.m)x\(c.n)x\(c.k)", strategy: v.rawValue,
                                             threads: t, ms: ms, gflops: c.flops / (ms * 1e6), peakGFLOPS: peak,
                                             extra: [("m", "\(c.m)"), ("n", "\(c.n)"), ("k", "\(c.k)")]))
                    }
                }
            }
        }
        BenchOutput.emit(rows, json: json)
    }

    /// Median milliseconds of `repeats` calls after a warm-up call (the shared ``GEMMBenchmark`` body).
    static func measure(_ c: GEMMBenchmarkCase, repeats: Int) throws -> Double {
        let bench = try GEMMBenchmark(c)
        return try benchmarkMilliseconds(repetitions: repeats) { try bench.run() }.median
    }
}
