import ArgumentParser
import CNN
import Foundation

/// `cnn bench layers`: the non-convolution kernels on the shapes of `LayerCases.all`.
///
/// Every case reports the median time and the memory traffic it implies (these kernels are bound by
/// memory bandwidth, not by FMA throughput, so GB/s is the meaningful rate and the FMA peak is only
/// printed for reference), and, where PyTorch was measured on the reference machine, the ratio.
struct BenchLayers: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "layers",
        abstract: "Time pooling, batch norm, ReLU, LRN and softmax/cross-entropy kernels, per ISA variant.")

    @Option(help: "ISA variants to measure: active (the one CNN_ISA or the CPU selects), all, or a comma-separated list of avx512, avx2, generic. Each case runs every listed variant in turn, so they share the machine's load.")
    var isa = "active"

    @Option(help: "Threads (default: all cores or OMP_NUM_THREADS).")
    var threads: Int?

    @Option(name: .customLong("repeat"), help: "Timed runs per case (the median is reported).")
    var repetitions = 20

    @Option(name: .customLong("case"), help: "Run only the cases whose name contains this text.")
    var caseFilter: String?

    @Flag(help: "One JSON object per line per case.")
    var json = false

    func run() throws {
        let supported = Array(ComputeRuntime.supportedISAs.reversed())
        let isas: [ISA]
        switch isa {
        case "active": isas = [ComputeRuntime.activeISA]
        case "all": isas = supported
        default:
            isas = try isa.split(separator: ",").map { name in
                guard let v = ISA(rawValue: String(name)), supported.contains(v) else {
                    throw ValidationError("unknown or unsupported ISA '\(name)' (supported: \(supported.map(\.rawValue).joined(separator: ", ")))")
                }
                return v
            }
        }
        if let threads { try ComputeRuntime.setThreadCount(threads) }
        let nt = ComputeRuntime.threadCount
        var peaks: [ISA: Double] = [:]
        for v in isas { peaks[v] = ComputeRuntime.peakGFLOPS(isa: v, threads: nt, seconds: 0.2) }
        var rows: [BenchRow] = []
        for c in LayerCases.all where caseFilter.map({ c.name.contains($0) }) ?? true {
            let bench = try LayerBenchmark(c)
            for v in isas {
                rows.append(try ComputeRuntime.withISA(v) { try Self.measure(c, bench, isa: v, threads: nt, peak: peaks[v]!, repetitions: repetitions) })
            }
        }
        BenchOutput.emit(rows, json: json)
    }

    /// One case on the active ISA: median and minimum of `repetitions` timed calls after two warm-ups.
    private static func measure(_ c: LayerBenchCase, _ bench: LayerBenchmark, isa: ISA, threads nt: Int, peak: Double,
                                repetitions: Int) throws -> BenchRow {
        // Two warm-up calls: the first touches freshly allocated pages.
        let (ms, minMs) = try benchmarkMilliseconds(repetitions: max(1, repetitions), warmups: 2) { try bench.run() }
        let bytes = bench.bytesMoved
        var row = BenchRow(suite: "layers", caseName: c.name, strategy: isa.rawValue,
                           threads: nt, ms: ms, gflops: nil, peakGFLOPS: peak)
        // The minimum is steadier than the median on a machine shared with other work.
        row.extra.append(("min_ms", String(format: "%.3f", minMs)))
        row.extra.append(("GB/s", String(format: "%.1f", bytes / (ms * 1e-3) / 1e9)))
        row.extra.append(("shape", "\"" + c.shape.map(String.init).joined(separator: "x") + "\""))
        if let peer = c.peerMilliseconds {
            row.extra.append(("pytorch_ms", String(format: "%.2f", peer)))
            row.extra.append(("vs_pytorch", String(format: "%.3f", ms / peer)))
            if let t = c.targetRatio { row.extra.append(("target", String(format: "%.2f", t))) }
        }
        return row
    }
}
