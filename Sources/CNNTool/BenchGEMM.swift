import ArgumentParser
import CNN
import CNNKernels

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
                        let ms = Self.measure(c, repeats: `repeat`)
                        rows.append(BenchRow(suite: "gemm", caseName: "\(c.name) \(c.m)x\(c.n)x\(c.k)", strategy: v.rawValue,
                                             threads: t, ms: ms, gflops: c.flops / (ms * 1e6), peakGFLOPS: peak))
                    }
                }
            }
        }
        BenchOutput.emit(rows, json: json)
    }

    /// Median milliseconds of `repeats` calls after a warm-up call.
    static func measure(_ c: GEMMBenchmarkCase, repeats: Int) -> Double {
        let a = (0..<(c.m * c.k)).map { Float($0 % 17) * 0.05 - 0.4 }
        let b = (0..<(c.k * c.n)).map { Float($0 % 13) * 0.05 - 0.3 }
        var out = [Float](repeating: 0, count: c.m * c.n)
        let ta = c.transposeA ? CNN_TRANS : CNN_NO_TRANS, tb = c.transposeB ? CNN_TRANS : CNN_NO_TRANS
        let lda = c.transposeA ? c.m : c.k, ldb = c.transposeB ? c.k : c.n
        var times: [Double] = []
        out.withUnsafeMutableBufferPointer { cP in
            a.withUnsafeBufferPointer { aP in
                b.withUnsafeBufferPointer { bP in
                    for r in 0...repeats {
                        let t0 = cnn_now()
                        let s = cnn_sgemm(ta, tb, c.m, c.n, c.k, 1, aP.baseAddress, lda, bP.baseAddress, ldb, 0,
                                          cP.baseAddress, c.n, nil)
                        precondition(s == CNN_OK, "cnn_sgemm failed on \(c.name)")
                        if r > 0 { times.append(cnn_now() - t0) }
                    }
                }
            }
        }
        times.sort()
        return times[times.count / 2] * 1e3
    }
}
