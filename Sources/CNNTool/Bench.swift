import ArgumentParser
import CNN
import Foundation

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the kernels and networks on this machine.",
        subcommands: [Peak.self, BenchGEMM.self, BenchConv.self, BenchLayers.self, BenchModels.self, BenchTrain.self, BenchAllreduce.self, BenchScaling.self]
    )
}

struct Peak: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Probe the float32 fused-multiply-add peak per ISA variant, 1 thread and all threads.")

    @Flag(help: "One JSON object per line per case.")
    var json = false

    @Option(help: "Seconds per probe.")
    var seconds: Double = 0.3

    func run() throws {
        let all = ComputeRuntime.threadCount
        var rows: [BenchRow] = []
        for isa in ComputeRuntime.supportedISAs.reversed() {
            for threads in Set([1, all]).sorted() {
                guard let g = ComputeRuntime.peakGFLOPS(isa: isa, threads: threads, seconds: seconds) else { continue }
                rows.append(BenchRow(suite: "peak", caseName: "fma-12-chains", strategy: isa.rawValue,
                                     threads: threads, ms: nil, gflops: g, peakGFLOPS: g))
            }
        }
        BenchOutput.emit(rows, json: json)
    }
}
