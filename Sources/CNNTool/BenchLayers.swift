import ArgumentParser
import CNN
import CNNKernels
import Foundation

/// `cnn bench layers`: the non-convolution kernels on the shapes of `LayerCases.all`.
///
/// Every case reports the median time and the memory traffic it implies (these kernels are bound by
/// memory bandwidth, not by FMA throughput, so GB/s is the meaningful rate and the FMA peak is only
/// printed for reference), and, where PyTorch was measured on the reference machine, the ratio.
struct BenchLayers: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "layers",
        abstract: "Time pooling, batch norm, ReLU, LRN and softmax/cross-entropy kernels.")

    @Option(help: "Threads (default: all cores or OMP_NUM_THREADS).")
    var threads: Int?

    @Option(name: .customLong("repeat"), help: "Timed runs per case (the median is reported).")
    var repetitions = 20

    @Option(name: .customLong("case"), help: "Run only the cases whose name contains this text.")
    var caseFilter: String?

    @Flag(help: "One JSON object per line per case.")
    var json = false

    func run() throws {
        if let threads { try ComputeRuntime.setThreadCount(threads) }
        let nt = ComputeRuntime.threadCount
        let peak = ComputeRuntime.peakGFLOPS(isa: ComputeRuntime.activeISA, threads: nt, seconds: 0.2)
        var rows: [BenchRow] = []
        for c in LayerCases.all where caseFilter.map({ c.name.contains($0) }) ?? true {
            let (ms, minMs, bytes) = try LayerBenchRunner(c).time(repetitions: max(1, repetitions))
            var row = BenchRow(suite: "layers", caseName: c.name, strategy: ComputeRuntime.activeISA.rawValue,
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
            rows.append(row)
        }
        BenchOutput.emit(rows, json: json)
    }
}

/// Buffers for one case and the call that is timed.
private final class LayerBenchRunner {
    let c: LayerBenchCase
    var buffers: [UnsafeMutablePointer<Float>] = []
    var indices: UnsafeMutablePointer<Int32>?
    var labels: UnsafeMutablePointer<Int32>?

    init(_ c: LayerBenchCase) { self.c = c }

    deinit {
        buffers.forEach { $0.deallocate() }
        indices?.deallocate()
        labels?.deallocate()
    }

    /// A buffer of n floats, filled with a deterministic pattern in [-1, 1).
    func buffer(_ n: Int) -> UnsafeMutablePointer<Float> {
        let p = UnsafeMutablePointer<Float>.allocate(capacity: max(n, 1))
        var s: UInt32 = 12345
        for i in 0..<n {
            s = s &* 1_664_525 &+ 1_013_904_223
            p[i] = Float(s >> 8) * 0x1p-23 - 1
        }
        buffers.append(p)
        return p
    }

    /// Median and minimum milliseconds over `repetitions` runs after two warm-up runs, and the bytes
    /// each run moves to or from memory (every pass the kernels make over their arrays).
    func time(repetitions: Int) throws -> (Double, Double, Double) {
        let (body, bytes) = try prepare()
        body()
        body()
        var times: [Double] = []
        for _ in 0..<repetitions {
            let t0 = cnn_now()
            body()
            times.append((cnn_now() - t0) * 1e3)
        }
        times.sort()
        return (times[times.count / 2], times[0], bytes)
    }

    private func check(_ s: cnn_status) throws {
        guard s == CNN_OK else { throw ValidationError("case \(c.name): kernel returned \(s.rawValue)") }
    }

    private func prepare() throws -> (() -> Void, Double) {
        let n = c.elementCount
        let f = Double(MemoryLayout<Float>.size)
        switch c.kind {
        case .maxPool, .maxPoolWithIndices:
            var s = cnn_pool_shape(N: Int64(c.shape[0]), C: Int64(c.shape[1]), H: Int64(c.shape[2]),
                                   W: Int64(c.shape[3]), kernel_h: Int64(c.kernel), kernel_w: Int64(c.kernel),
                                   stride_h: Int64(c.stride), stride_w: Int64(c.stride), pad_h: Int64(c.padding),
                                   pad_w: Int64(c.padding), ceil_mode: 0, count_include_pad: 1)
            var P: Int64 = 0, Q: Int64 = 0
            try check(cnn_pool_output_size(&s, &P, &Q))
            let out = c.shape[0] * c.shape[1] * Int(P * Q)
            let x = buffer(n), y = buffer(out)
            let withIndices = c.kind == .maxPoolWithIndices
            if withIndices { indices = .allocate(capacity: out) }
            let ix = indices
            try check(cnn_maxpool2d_forward(&s, x, y, ix))
            return ({ _ = cnn_maxpool2d_forward(&s, x, y, ix) },
                    f * Double(n + out + (withIndices ? out : 0)))
        case .batchNormInference:
            let C = c.shape[1], HW = c.shape[2] * c.shape[3]
            let x = buffer(n), y = buffer(n), g = buffer(C), b = buffer(C), m = buffer(C), v = buffer(C)
            for i in 0..<C { v[i] = 1 + abs(v[i]) }
            try check(cnn_batchnorm2d_forward_inference(Int64(c.shape[0]), Int64(C), Int64(HW), x, g, b, m, v, 1e-5, y))
            return ({ _ = cnn_batchnorm2d_forward_inference(Int64(self.c.shape[0]), Int64(C), Int64(HW), x, g, b, m, v, 1e-5, y) },
                    f * Double(2 * n))
        case .batchNormTraining:
            let N = Int64(c.shape[0]), C = c.shape[1], HW = Int64(c.shape[2] * c.shape[3])
            let x = buffer(n), y = buffer(n), dy = buffer(n), dx = buffer(n)
            let g = buffer(C), b = buffer(C), rm = buffer(C), rv = buffer(C), sm = buffer(C), si = buffer(C)
            let dg = buffer(C), db = buffer(C)
            for i in 0..<C { rv[i] = 1 }
            let body = {
                _ = cnn_batchnorm2d_forward_train(N, Int64(C), HW, x, g, b, 1e-5, 0.1, rm, rv, sm, si, y)
                _ = cnn_batchnorm2d_backward(N, Int64(C), HW, x, dy, g, sm, si, dx, dg, db)
            }
            try check(cnn_batchnorm2d_forward_train(N, Int64(C), HW, x, g, b, 1e-5, 0.1, rm, rv, sm, si, y))
            // Forward: statistics pass over x, normalisation pass (read x, write y).
            // Backward: sums pass (x, dy), gradient pass (read x, dy, write dx).
            return (body, f * Double(8 * n))
        case .relu:
            let x = buffer(n), y = buffer(n)
            return ({ _ = cnn_relu_forward(Int64(n), x, y) }, f * Double(2 * n))
        case .lrn:
            let N = Int64(c.shape[0]), C = Int64(c.shape[1]), HW = Int64(c.shape[2] * c.shape[3])
            let x = buffer(n), y = buffer(n), sc = buffer(n)
            try check(cnn_lrn_forward(N, C, HW, Int64(c.kernel), 1e-4, 0.75, 2, x, y, sc))
            return ({ _ = cnn_lrn_forward(N, C, HW, Int64(self.c.kernel), 1e-4, 0.75, 2, x, y, sc) },
                    f * Double(3 * n))
        case .softmaxCrossEntropy:
            let rows = c.shape[0], classes = c.shape[1]
            let x = buffer(n), probs = buffer(n), dx = buffer(n)
            labels = .allocate(capacity: rows)
            for r in 0..<rows { labels![r] = Int32((r * 37) % classes) }
            let lab = labels
            var loss: Float = 0
            try check(cnn_cross_entropy_forward(Int64(rows), Int64(classes), x, lab, 0.1, 0, &loss, probs))
            let body = {
                var l: Float = 0
                _ = cnn_cross_entropy_forward(Int64(rows), Int64(classes), x, lab, 0.1, 0, &l, probs)
                _ = cnn_cross_entropy_backward(Int64(rows), Int64(classes), probs, lab, 0.1, 0, 1, dx)
            }
            return (body, f * Double(4 * n))
        }
    }
}
