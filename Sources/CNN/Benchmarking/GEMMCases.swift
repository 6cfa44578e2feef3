/// One SGEMM benchmark shape: `C (m x n) = op(A) (m x k) * op(B) (k x n)`, row-major.
public struct GEMMBenchmarkCase: Sendable, Hashable {
    /// Short label, e.g. `"square-1024"` or `"conv-resnet.l1"`.
    public var name: String
    public var m: Int
    public var n: Int
    public var k: Int
    public var transposeA: Bool
    public var transposeB: Bool

    public init(name: String, m: Int, n: Int, k: Int, transposeA: Bool = false, transposeB: Bool = false) {
        self.name = name
        self.m = m
        self.n = n
        self.k = k
        self.transposeA = transposeA
        self.transposeB = transposeB
    }

    /// Multiply-adds counted as two floating-point operations.
    public var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
}

/// The SGEMM shapes `cnn bench gemm` and the Benchmarks package measure (the one list of them).
public enum GEMMCases {
    /// Square matrices, for comparison with BLAS figures.
    public static let square: [GEMMBenchmarkCase] = [256, 512, 1024, 2048].map {
        GEMMBenchmarkCase(name: "square-\($0)", m: $0, n: $0, k: $0)
    }

    /// Shapes of im2col convolution (M = output channels, N = output pixels, K = C*R*S) and of
    /// fully connected layers (M = outputs, N = batch, K = inputs), batch 1 at 224x224.
    public static let layers: [GEMMBenchmarkCase] = [
        GEMMBenchmarkCase(name: "conv-resnet.l1.3x3", m: 64, n: 3136, k: 576),
        GEMMBenchmarkCase(name: "conv-resnet.l3.3x3", m: 256, n: 196, k: 2304),
        GEMMBenchmarkCase(name: "conv-resnet.l4.3x3", m: 512, n: 49, k: 4608),
        GEMMBenchmarkCase(name: "fc-4096x1000-n1", m: 1000, n: 1, k: 4096),
        GEMMBenchmarkCase(name: "fc-4096x1000-n8", m: 1000, n: 8, k: 4096),
    ]

    public static let all: [GEMMBenchmarkCase] = square + layers
}
