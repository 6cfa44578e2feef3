import CNNKernels
import Testing
@testable import CNN

/// Winograd F(m x m, 3x3), m = 2, 4, 6, and F(2x2, 5x5): the transform tables re-derived
/// independently from the interpolation points, and the convolution compared with a float64 direct
/// correlation on every ISA variant.
@Suite(.serialized) struct WinogradTests {
    static let tileSizes: [Int32] = [2, 4, 6]

    /// Accuracy bounds, max |error| / max |output| against float64 (from the issue). Measured
    /// figures are 10-100x smaller; the bounds allow for the growth of the transforms' constants.
    static func bound(_ m: Int32) -> Double {
        switch m {
        case 2: return 2e-5   // ~170 Float.ulpOfOne
        case 4: return 1e-4   // ~840 Float.ulpOfOne
        default: return 1e-3  // ~8400 Float.ulpOfOne
        }
    }

    // MARK: Transform tables

    /// F(m x m, r x r) of every table: the three 3x3 tiles, F(2x2, 5x5) and F(4x4, 5x5).
    static let tableSizes: [(m: Int32, r: Int32)] = [(2, 3), (4, 3), (6, 3), (2, 5), (4, 5)]

    /// Interpolation points of each table, in the tables' row order (infinity last): alpha - 1 finite
    /// points, alpha = m + r - 1 (F(2x2, 5x5) shares F(4x4, 3x3)'s, F(4x4, 5x5) F(6x6, 3x3)'s).
    static func points(alpha: Int) -> [Double] {
        switch alpha {
        case 4: return [0, 1, -1]
        case 6: return [0, 1, -1, 2, -2]
        default: return [0, 1, -1, 2, -2, 0.5, -0.5]
        }
    }

    @Test(arguments: tableSizes)
    func tablesMatchToomCookConstruction(m: Int32, r: Int32) throws {
        let t = try WinogradTables(m: m, r: r)
        let mm = Int(m), rr = Int(r), alpha = mm + rr - 1
        let d = WinogradDerivedTables(points: Self.points(alpha: alpha), m: mm, r: rr)
        // A^T is fixed by the points: column j holds the powers of p_j (infinity: e_{m-1}).
        for i in 0..<(mm * alpha) { #expect(t.at[i] == d.at[i], "A^T entry \(i)") }
        // Row j of B^T and row j of G may carry reciprocal scale factors s_j.
        for j in 0..<alpha {
            let row = d.bt[(j * alpha)..<((j + 1) * alpha)]
            let pivot = row.indices.max { abs(row[$0]) < abs(row[$1]) }!
            let s = t.bt[pivot] / row[pivot]
            #expect(s != 0 && s.isFinite, "row \(j) scale")
            for k in 0..<alpha {
                #expect(abs(t.bt[j * alpha + k] - s * d.bt[j * alpha + k]) <= 1e-12, "B^T[\(j)][\(k)]")
            }
            for k in 0..<rr {
                #expect(abs(t.g[j * rr + k] - d.g[j * rr + k] / s) <= 1e-12, "G[\(j)][\(k)]")
            }
        }
        if r == 5 { #expect(t.bt == (try WinogradTables(m: m + 2)).bt, "F(\(m)x\(m), 5x5) shares F(\(m + 2)x\(m + 2))'s B^T") }
    }

    @Test(arguments: tableSizes)
    func tablesComputeCorrelationExactly(m: Int32, r: Int32) throws {
        // A^T [(G g G^T) (.) (B^T d B)] A == sum_{r,s} d[i+r][j+s] g[r][s], in double.
        let t = try WinogradTables(m: m, r: r)
        let mm = Int(m), rr = Int(r), alpha = mm + rr - 1
        var rng = WinogradRNG(seed: 7 + UInt64(m) + UInt64(r))
        for _ in 0..<20 {
            let g = (0..<(rr * rr)).map { _ in Double(rng.uniform()) }
            let d = (0..<(alpha * alpha)).map { _ in Double(rng.uniform()) }
            let u = matmul(matmul(t.g, g, alpha, rr, rr), transpose(t.g, alpha, rr), alpha, rr, alpha)
            let v = matmul(matmul(t.bt, d, alpha, alpha, alpha), transpose(t.bt, alpha, alpha),
                           alpha, alpha, alpha)
            let prod = zip(u, v).map { $0 * $1 }
            let y = matmul(matmul(t.at, prod, mm, alpha, alpha), transpose(t.at, mm, alpha),
                           mm, alpha, mm)
            for i in 0..<mm {
                for j in 0..<mm {
                    var direct = 0.0
                    for p in 0..<rr { for q in 0..<rr { direct += d[(i + p) * alpha + j + q] * g[p * rr + q] } }
                    #expect(abs(y[i * mm + j] - direct) <= 1e-12 * 64, "y[\(i)][\(j)]")
                }
            }
        }
    }

    @Test func otherTablesAreUnsupported() {
        var at = [Double](repeating: 0, count: 64), g = at, bt = at
        #expect(cnn_winograd_matrices(3, nil, nil, nil) == CNN_ERR_UNSUPPORTED)
        #expect(cnn_winograd_tables(6, 5, &at, &g, &bt) == CNN_ERR_UNSUPPORTED)
        #expect(cnn_winograd_tables(2, 7, &at, &g, &bt) == CNN_ERR_UNSUPPORTED)
        #expect(cnn_winograd_tables(2, 5, nil, &g, &bt) == CNN_ERR_INVALID_ARGUMENT)
    }

    // MARK: Convolution against the float64 reference, every ISA

    /// (N, C, H, W, K, pad_h, pad_w): odd/even, H != W, pads 0/1/2, batch > 1, C and K not multiples
    /// of 16, inputs smaller than one tile, rows of tiles shorter and longer than the 16 tiles
    /// transformed at once (the AVX-512 gather and scatter work on runs of adjacent tiles), and one
    /// layer large enough for several tile groups.
    static let shapes: [(Int, Int, Int, Int, Int, Int, Int)] = [
        (1, 3, 5, 7, 5, 1, 1),
        (2, 17, 9, 6, 19, 0, 0),
        (1, 4, 1, 1, 3, 1, 1),
        (1, 5, 8, 8, 9, 2, 2),
        (1, 2, 3, 3, 2, 0, 0),
        (3, 20, 13, 11, 33, 1, 1),
        (1, 33, 16, 16, 8, 1, 1),
        (1, 7, 30, 4, 9, 1, 1),
        (2, 3, 6, 9, 4, 0, 2),
        (2, 3, 7, 101, 4, 1, 2),  // tile rows longer than 16 lanes, clipped right edge
        (1, 4, 20, 70, 5, 2, 1),
        (2, 3, 13, 1, 4, 1, 1),   // one column narrower than a tile: consecutive tiles are m apart in y
        (1, 5, 18, 18, 6, 1, 1),  // 81 / 25 / 9 tiles: the AVX-512 GEMM's narrow tail kernel, 1 and 9 wide
        (1, 3, 14, 8, 4, 1, 1),   // 28 F(2x2) tiles: a 12-wide tail
        (1, 3, 9, 236, 4, 1, 1),  // 40 F(6x6) tiles per row: tiles 16-31 are a run of 16 inside the image
    ]

    @Test func matchesReferenceOnEveryISA() throws {
        var rng = WinogradRNG(seed: 42)
        for isa in ComputeRuntime.supportedISAs {
            try ComputeRuntime.withISA(isa) {
                for m in Self.tileSizes {
                    for (index, s) in Self.shapes.enumerated() {
                        let shape = WinogradTestShape(N: s.0, C: s.1, H: s.2, W: s.3, K: s.4, padH: s.5, padW: s.6)
                        let epilogue = index % 8 // cycles through bias / residual / ReLU combinations
                        let err = try shape.relativeError(m: m, bias: epilogue & 1 != 0,
                                                          residual: epilogue & 2 != 0,
                                                          relu: epilogue & 4 != 0, rng: &rng)
                        #expect(err <= Self.bound(m), "F(\(m)) \(isa) \(s): \(err)")
                    }
                }
            }
        }
    }

    @Test func everyEpilogueCombinationOnEveryISA() throws {
        var rng = WinogradRNG(seed: 5)
        let shape = WinogradTestShape(N: 2, C: 9, H: 7, W: 10, K: 11, padH: 1, padW: 1)
        for isa in ComputeRuntime.supportedISAs {
            try ComputeRuntime.withISA(isa) {
                for m in Self.tileSizes {
                    for e in 0..<8 {
                        let err = try shape.relativeError(m: m, bias: e & 1 != 0, residual: e & 2 != 0,
                                                          relu: e & 4 != 0, rng: &rng)
                        #expect(err <= Self.bound(m), "F(\(m)) \(isa) epilogue \(e): \(err)")
                    }
                }
            }
        }
    }

    @Test func severalTileGroupsOnEveryISA() throws {
        // F(2x2), C = K = 64: 1024 tiles fit one group; 2 x 46 x 46 has 1058 tiles, so two groups.
        // One image gets half the budget (480 tiles a group): its 529 tiles are two groups as well.
        var rng = WinogradRNG(seed: 9)
        for shape in [WinogradTestShape(N: 2, C: 64, H: 46, W: 46, K: 64, padH: 1, padW: 1),
                      WinogradTestShape(N: 1, C: 64, H: 46, W: 46, K: 64, padH: 1, padW: 1)] {
            for isa in ComputeRuntime.supportedISAs {
                try ComputeRuntime.withISA(isa) {
                    let err = try shape.relativeError(m: 2, bias: true, residual: true, relu: true, rng: &rng)
                    #expect(err <= Self.bound(2), "\(isa), N \(shape.N): \(err)")
                }
            }
        }
    }

    @Test func largeInputOnEveryISA() throws {
        // 32 x 130 x 130 floats are 2.16 MB, past WINO_PREFETCH_MIN_BYTES (2 MiB): the forward fetches
        // each channel's rows one channel ahead of the gather, over edge tiles, runs split across tile
        // rows and the last channel (nothing past it is fetched).
        var rng = WinogradRNG(seed: 13)
        let shape = WinogradTestShape(N: 1, C: 32, H: 130, W: 130, K: 4, padH: 1, padW: 1)
        #expect(shape.N * shape.C * shape.H * shape.W * MemoryLayout<Float>.size > 2 << 20)
        for isa in ComputeRuntime.supportedISAs {
            try ComputeRuntime.withISA(isa) {
                for m in Self.tileSizes {
                    let err = try shape.relativeError(m: m, bias: true, residual: m == 4, relu: true, rng: &rng)
                    #expect(err <= Self.bound(m), "F(\(m)) \(isa): \(err)")
                }
            }
        }
    }

    /// The accuracy figures on layer-like shapes (C = 64..256, uniform data), printed for the record.
    @Test func accuracyOnRealisticShapes() throws {
        var rng = WinogradRNG(seed: 11)
        let shapes = [
            WinogradTestShape(N: 1, C: 64, H: 24, W: 24, K: 16, padH: 1, padW: 1),
            WinogradTestShape(N: 1, C: 128, H: 14, W: 14, K: 16, padH: 1, padW: 1),
            WinogradTestShape(N: 1, C: 256, H: 12, W: 12, K: 16, padH: 1, padW: 1),
        ]
        for m in Self.tileSizes {
            for shape in shapes {
                let err = try shape.relativeError(m: m, bias: false, residual: false, relu: false, rng: &rng)
                print("winograd F(\(m)x\(m),3x3) C=\(shape.C) \(shape.H)x\(shape.W) K=\(shape.K) "
                      + "[\(ComputeRuntime.activeISA)]: max|err|/max|y| = \(err)")
                #expect(err <= Self.bound(m), "F(\(m)) C=\(shape.C): \(err)")
            }
        }
    }

    @Test func resultDoesNotDependOnThreadCount() throws {
        var rng = WinogradRNG(seed: 3)
        let shape = WinogradTestShape(N: 2, C: 24, H: 15, W: 17, K: 20, padH: 1, padW: 1)
        let x = rng.array(shape.N * shape.C * shape.H * shape.W)
        let w = rng.array(shape.K * shape.C * 9)
        for m in Self.tileSizes {
            cnn_set_num_threads(1)
            let one = try shape.run(m: m, x: x, w: w, bias: nil, residual: nil, relu: false)
            cnn_set_num_threads(0)
            let all = try shape.run(m: m, x: x, w: w, bias: nil, residual: nil, relu: false)
            #expect(one == all, "F(\(m))")
        }
    }

    // MARK: Unsupported and invalid shapes

    @Test func unsupportedShapesAreRejected() {
        let ok = WinogradTestShape(N: 1, C: 2, H: 6, W: 6, K: 2, padH: 1, padW: 1).cShape
        var variants: [(String, cnn_conv_shape)] = []
        var s = ok; s.R = 5; s.S = 5; variants.append(("5x5", s))
        s = ok; s.R = 1; s.S = 1; variants.append(("1x1", s))
        s = ok; s.S = 1; variants.append(("3x1", s))
        s = ok; s.stride_h = 2; s.stride_w = 2; variants.append(("stride 2", s))
        s = ok; s.stride_w = 2; variants.append(("stride 1x2", s))
        s = ok; s.dilation_h = 2; s.dilation_w = 2; variants.append(("dilation 2", s))
        s = ok; s.groups = 2; variants.append(("groups 2", s))
        let x = [Float](repeating: 1, count: 1 * 2 * 6 * 6)
        let w = [Float](repeating: 1, count: 2 * 2 * 25)
        var y = [Float](repeating: 0, count: 2 * 6 * 6 * 4)
        for (name, shape) in variants {
            var shape = shape
            let st = cnn_winograd_conv2d(6, &shape, x, w, nil, nil, 0, &y)
            #expect(st == CNN_ERR_UNSUPPORTED, "\(name)")
            #expect(cnn_winograd_conv2d_workspace_bytes(6, &shape) == 0, "\(name)")
        }
        var shape = ok
        for m: Int32 in [0, 1, 3, 5, 8] {
            #expect(cnn_winograd_conv2d(m, &shape, x, w, nil, nil, 0, &y) == CNN_ERR_UNSUPPORTED, "m=\(m)")
        }
    }

    @Test func invalidArgumentsAreRejected() {
        let ok = WinogradTestShape(N: 1, C: 2, H: 6, W: 6, K: 2, padH: 1, padW: 1).cShape
        let x = [Float](repeating: 1, count: 72)
        let w = [Float](repeating: 1, count: 36)
        var y = [Float](repeating: 0, count: 72)
        var s = ok; s.pad_h = -1
        #expect(cnn_winograd_conv2d(2, &s, x, w, nil, nil, 0, &y) == CNN_ERR_INVALID_ARGUMENT)
        s = ok; s.N = 0
        #expect(cnn_winograd_conv2d(2, &s, x, w, nil, nil, 0, &y) == CNN_ERR_INVALID_ARGUMENT)
        s = ok; s.H = 2; s.pad_h = 0 // empty output: P = 0
        #expect(cnn_winograd_conv2d(2, &s, x, w, nil, nil, 0, &y) == CNN_ERR_INVALID_ARGUMENT)
        s = ok
        #expect(cnn_winograd_conv2d(2, &s, x, nil, nil, nil, 0, &y) == CNN_ERR_INVALID_ARGUMENT)
        #expect(cnn_winograd_conv2d(2, &s, nil, w, nil, nil, 0, &y) == CNN_ERR_INVALID_ARGUMENT)
        #expect(cnn_winograd_conv2d(2, &s, x, w, nil, nil, 0, nil) == CNN_ERR_INVALID_ARGUMENT)
        #expect(cnn_winograd_conv2d(2, nil, x, w, nil, nil, 0, &y) == CNN_ERR_INVALID_ARGUMENT)
    }

    // MARK: F(2x2, 5x5)

    /// 5x5 shapes: pads 0 to 4, planes smaller than a tile, odd sizes, batches, C and K not multiples
    /// of 16, tile rows longer than 16 lanes, AlexNet's conv2 plane (64 channels at 27x27, pad 2), and an
    /// input past the gather's prefetch threshold.
    static let shapes5x5: [(Int, Int, Int, Int, Int, Int, Int)] = [
        (1, 3, 5, 5, 4, 0, 0),
        (1, 3, 5, 5, 4, 2, 2),
        (2, 17, 9, 6, 19, 2, 1),
        (1, 5, 11, 10, 6, 2, 2),
        (1, 4, 3, 3, 3, 4, 4),
        (3, 20, 13, 11, 33, 1, 2),
        (2, 3, 7, 101, 4, 2, 2),
        (1, 64, 27, 27, 24, 2, 2),
        (1, 32, 130, 130, 4, 2, 2),
    ]

    /// F(2x2, 5x5) and F(4x4, 5x5): bounds as F(4x4, 3x3) and F(6x6, 3x3), whose points they share.
    @Test(arguments: [Int32(2), 4])
    func fiveByFiveMatchesReferenceOnEveryISA(m: Int32) throws {
        var rng = WinogradRNG(seed: 55 + UInt64(m))
        for isa in ComputeRuntime.supportedISAs {
            try ComputeRuntime.withISA(isa) {
                for (index, s) in Self.shapes5x5.enumerated() {
                    let shape = WinogradTestShape(N: s.0, C: s.1, H: s.2, W: s.3, K: s.4, padH: s.5, padW: s.6, kernel: 5)
                    let epilogue = index % 8
                    let err = try shape.relativeError(m: m, bias: epilogue & 1 != 0, residual: epilogue & 2 != 0,
                                                      relu: epilogue & 4 != 0, rng: &rng)
                    #expect(err <= Self.bound(m + 2), "F(\(m)x\(m), 5x5) \(isa) \(s): \(err)")
                }
            }
        }
    }

    @Test(arguments: [Int32(2), 4])
    func fiveByFiveAccuracyOnRealisticShapes(m: Int32) throws {
        var rng = WinogradRNG(seed: 56)
        for shape in [WinogradTestShape(N: 1, C: 64, H: 27, W: 27, K: 16, padH: 2, padW: 2, kernel: 5),
                      WinogradTestShape(N: 1, C: 256, H: 14, W: 14, K: 16, padH: 2, padW: 2, kernel: 5)] {
            let err = try shape.relativeError(m: m, bias: false, residual: false, relu: false, rng: &rng)
            print("winograd F(\(m)x\(m),5x5) C=\(shape.C) \(shape.H)x\(shape.W) K=\(shape.K) "
                  + "[\(ComputeRuntime.activeISA)]: max|err|/max|y| = \(err)")
            #expect(err <= Self.bound(m + 2), "C=\(shape.C): \(err)")
        }
    }

    @Test func fiveByFiveTilesApply() {
        // F(2x2, 5x5) and F(4x4, 5x5) apply; the 6x6 tile and 7x7 kernels do not.
        var s5 = WinogradTestShape(N: 1, C: 2, H: 6, W: 6, K: 2, padH: 2, padW: 2, kernel: 5).cShape
        #expect(cnn_conv_algorithm_applies(CNN_CONV_WINOGRAD_2X2, &s5) != 0)
        #expect(cnn_conv_algorithm_applies(CNN_CONV_WINOGRAD_4X4, &s5) != 0)
        #expect(cnn_conv_algorithm_applies(CNN_CONV_WINOGRAD_6X6, &s5) == 0)
        #expect(cnn_winograd_conv2d_workspace_bytes(2, &s5) > 0)
        #expect(cnn_winograd_conv2d_workspace_bytes(4, &s5) > 0)
        #expect(cnn_winograd_conv2d_workspace_bytes(6, &s5) == 0)
        var s7 = WinogradTestShape(N: 1, C: 2, H: 8, W: 8, K: 2, padH: 3, padW: 3, kernel: 7).cShape
        #expect(cnn_conv_algorithm_applies(CNN_CONV_WINOGRAD_2X2, &s7) == 0)
        #expect(cnn_winograd_conv2d_workspace_bytes(2, &s7) == 0)
    }

    @Test func workspaceStaysUnder64MiB() {
        // The largest 3x3 layers of VGG-16 and ResNet, at batch 1 and 32.
        let layers: [(Int, Int, Int, Int)] = [(64, 224, 64, 1), (128, 112, 128, 32), (256, 56, 256, 32),
                                              (512, 28, 512, 32), (512, 14, 512, 32), (2048, 7, 2048, 8)]
        for m in Self.tileSizes {
            for (c, hw, k, n) in layers {
                var s = WinogradTestShape(N: n, C: c, H: hw, W: hw, K: k, padH: 1, padW: 1).cShape
                let bytes = cnn_winograd_conv2d_workspace_bytes(m, &s)
                #expect(bytes > 0 && bytes <= 64 << 20, "F(\(m)) C=\(c) \(hw)x\(hw) K=\(k) N=\(n): \(bytes)")
            }
        }
    }
}

// MARK: - Helpers

/// The literal tables of the C kernels, as doubles: F(m x m, r x r).
private struct WinogradTables {
    var at: [Double], g: [Double], bt: [Double]

    init(m: Int32, r: Int32 = 3) throws {
        let alpha = Int(m + r) - 1
        at = [Double](repeating: 0, count: Int(m) * alpha)
        g = [Double](repeating: 0, count: alpha * Int(r))
        bt = [Double](repeating: 0, count: alpha * alpha)
        let st = r == 3 ? cnn_winograd_matrices(m, &at, &g, &bt) : cnn_winograd_tables(m, r, &at, &g, &bt)
        try #require(st == CNN_OK)
    }
}

/// Toom-Cook tables built from the points alone (Lavin & Gray, section 4): the point at infinity
/// is added last. A^T[i][j] = p_j^i; G[j][k] = p_j^k / prod_{l != j}(p_j - p_l); row j of B^T holds
/// the coefficients of prod_{l != j}(x - p_l), and its last row those of prod_l (x - p_l).
private struct WinogradDerivedTables {
    var at: [Double] = [], g: [Double] = [], bt: [Double] = []

    init(points p: [Double], m: Int, r: Int = 3) {
        let alpha = p.count + 1
        for i in 0..<m {
            for j in 0..<alpha {
                at.append(j < p.count ? pow(p[j], i) : (i == m - 1 ? 1 : 0))
            }
        }
        for j in 0..<alpha {
            if j == p.count {
                g += [Double](repeating: 0, count: r - 1) + [1]
                bt += p.reduce([1.0]) { polyTimesRoot($0, $1) }
                continue
            }
            var f = 1.0
            var poly = [1.0]
            for l in 0..<p.count where l != j {
                f *= p[j] - p[l]
                poly = polyTimesRoot(poly, p[l])
            }
            g += (0..<r).map { pow(p[j], $0) / f }
            bt += poly + [Double](repeating: 0, count: alpha - poly.count)
        }
    }

    private func pow(_ x: Double, _ n: Int) -> Double { (0..<n).reduce(1.0) { r, _ in r * x } }
}

/// Coefficients (lowest degree first) of poly(x) * (x - root).
private func polyTimesRoot(_ poly: [Double], _ root: Double) -> [Double] {
    var r = [Double](repeating: 0, count: poly.count + 1)
    for (i, c) in poly.enumerated() {
        r[i + 1] += c
        r[i] -= root * c
    }
    return r
}

/// Row-major (r x n) = (r x k) * (k x n).
private func matmul(_ a: [Double], _ b: [Double], _ r: Int, _ k: Int, _ n: Int) -> [Double] {
    var c = [Double](repeating: 0, count: r * n)
    for i in 0..<r { for j in 0..<n { for l in 0..<k { c[i * n + j] += a[i * k + l] * b[l * n + j] } } }
    return c
}

private func transpose(_ a: [Double], _ r: Int, _ c: Int) -> [Double] {
    var t = [Double](repeating: 0, count: r * c)
    for i in 0..<r { for j in 0..<c { t[j * r + i] = a[i * c + j] } }
    return t
}

/// One 3x3 (or `kernel` x `kernel`), stride-1 convolution shape and its float64 reference.
private struct WinogradTestShape {
    var N, C, H, W, K, padH, padW: Int
    var kernel = 3
    var P: Int { H + 2 * padH - (kernel - 1) }
    var Q: Int { W + 2 * padW - (kernel - 1) }

    var cShape: cnn_conv_shape {
        cnn_conv_shape(N: Int64(N), C: Int64(C), H: Int64(H), W: Int64(W), K: Int64(K), R: Int64(kernel), S: Int64(kernel),
                       stride_h: 1, stride_w: 1, pad_h: Int64(padH), pad_w: Int64(padW),
                       dilation_h: 1, dilation_w: 1, groups: 1)
    }

    func run(m: Int32, x: [Float], w: [Float], bias: [Float]?, residual: [Float]?, relu: Bool) throws -> [Float] {
        var y = [Float](repeating: .nan, count: N * K * P * Q)
        var s = cShape
        let bias = bias ?? [], residual = residual ?? []
        let st = bias.withUnsafeBufferPointer { b in
            residual.withUnsafeBufferPointer { r in
                cnn_winograd_conv2d(m, &s, x, w, b.isEmpty ? nil : b.baseAddress,
                                    r.isEmpty ? nil : r.baseAddress, relu ? 1 : 0, &y)
            }
        }
        try #require(st == CNN_OK)
        return y
    }

    /// y = relu?(correlation + bias + residual), accumulated in double.
    func reference(x: [Float], w: [Float], bias: [Float]?, residual: [Float]?, relu: Bool) -> [Double] {
        var y = [Double](repeating: 0, count: N * K * P * Q)
        x.withUnsafeBufferPointer { x in
            w.withUnsafeBufferPointer { w in
                y.withUnsafeMutableBufferPointer { y in
                    for n in 0..<N {
                        for k in 0..<K {
                            let out = (n * K + k) * P * Q
                            for c in 0..<C {
                                let xin = (n * C + c) * H * W
                                let wk = (k * C + c) * kernel * kernel
                                for r in 0..<kernel {
                                    for s in 0..<kernel {
                                        let wv = Double(w[wk + r * kernel + s])
                                        for p in 0..<P {
                                            let iy = p + r - padH
                                            if iy < 0 || iy >= H { continue }
                                            for q in 0..<Q {
                                                let ix = q + s - padW
                                                if ix < 0 || ix >= W { continue }
                                                y[out + p * Q + q] += wv * Double(x[xin + iy * W + ix])
                                            }
                                        }
                                    }
                                }
                            }
                            for i in out..<(out + P * Q) {
                                var v = y[i]
                                if let bias { v += Double(bias[k]) }
                                if let residual { v += Double(residual[i]) }
                                if relu && v < 0 { v = 0 }
                                y[i] = v
                            }
                        }
                    }
                }
            }
        }
        return y
    }

    /// max |winograd - reference| / max |reference| on uniform(-1, 1) data.
    func relativeError(m: Int32, bias: Bool, residual: Bool, relu: Bool, rng: inout WinogradRNG) throws -> Double {
        let x = rng.array(N * C * H * W)
        let w = rng.array(K * C * kernel * kernel)
        let b = bias ? rng.array(K) : nil
        let r = residual ? rng.array(N * K * P * Q) : nil
        let y = try run(m: m, x: x, w: w, bias: b, residual: r, relu: relu)
        let ref = reference(x: x, w: w, bias: b, residual: r, relu: relu)
        var err = 0.0, scale = 0.0
        for i in 0..<y.count {
            let e = abs(Double(y[i]) - ref[i])
            err = e.isNaN || e > err ? e : err // a NaN (an unwritten output) fails the bound
            scale = max(scale, abs(ref[i]))
        }
        return err / max(scale, 1e-30)
    }
}

/// SplitMix64, uniform floats in [-1, 1).
private struct WinogradRNG {
    var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 24) * 2 - 1 }
    mutating func array(_ n: Int) -> [Float] { (0..<n).map { _ in uniform() } }
}
