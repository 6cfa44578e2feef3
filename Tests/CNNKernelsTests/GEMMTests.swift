import CNNKernels
import Testing
@testable import CNN

// SGEMM against cnn_sgemm_reference (double accumulation), on every ISA variant this machine runs.
// Error bound per element: |c - ref| <= 2 (K + 4) eps * |alpha| sum_k |a_ik| |b_kj|
//                                       + 4 eps (|beta c| + |bias| + |residual|) + tiny,
// the standard forward-error bound of a K-term float dot product (with FMA-or-not rounding and
// any summation order), plus one rounding per epilogue term. sum |a||b| comes from the reference
// run on |A| and |B|.

fileprivate struct GEMMRng {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func float() -> Float { Float(next() >> 40) / Float(1 << 24) * 2 - 1 }
    mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func fill(_ n: Int) -> [Float] { (0..<n).map { _ in float() } }
}

fileprivate enum GEMMPath: CaseIterable { case plain, packedA, packedB }

/// One SGEMM case: shapes, transposes, scalars, leading-dimension padding, epilogue and path.
fileprivate struct GEMMCase: CustomStringConvertible {
    var m: Int, n: Int, k: Int
    var transA = false, transB = false
    var alpha: Float = 1, beta: Float = 0
    var pad = 3                 // added to every leading dimension
    var bias = 0                // 0 none, 1 per row, 2 per column
    var residual = false
    var relu = false
    var path = GEMMPath.plain

    var description: String {
        "M=\(m) N=\(n) K=\(k) tA=\(transA) tB=\(transB) alpha=\(alpha) beta=\(beta) pad=\(pad) bias=\(bias) res=\(residual) relu=\(relu) \(path)"
    }

    var lda: Int { (transA ? m : k) + pad }
    var ldb: Int { (transB ? k : n) + pad }
    var ldc: Int { n + pad }
    var ldr: Int { n + pad + 1 }
}

fileprivate func gemmStatus(_ c: GEMMCase, _ a: UnsafePointer<Float>?, _ b: UnsafePointer<Float>?,
                            _ cOut: UnsafeMutablePointer<Float>?, _ ep: UnsafePointer<cnn_epilogue>?,
                            reference: Bool = false, alpha: Float? = nil, beta: Float? = nil) -> cnn_status {
    let ta = c.transA ? CNN_TRANS : CNN_NO_TRANS, tb = c.transB ? CNN_TRANS : CNN_NO_TRANS
    let al = alpha ?? c.alpha, be = beta ?? c.beta
    if reference {
        return cnn_sgemm_reference(ta, tb, c.m, c.n, c.k, al, a, c.lda, b, c.ldb, be, cOut, c.ldc, ep)
    }
    switch c.path {
    case .plain:
        return cnn_sgemm(ta, tb, c.m, c.n, c.k, al, a, c.lda, b, c.ldb, be, cOut, c.ldc, ep)
    case .packedA:
        var packed = [UInt8](repeating: 0, count: cnn_sgemm_packed_a_size(c.m, c.k))
        return packed.withUnsafeMutableBytes { p in
            let s = cnn_sgemm_pack_a(ta, c.m, c.k, a, c.lda, p.baseAddress)
            guard s == CNN_OK else { return s }
            return cnn_sgemm_packed_a(p.baseAddress, tb, c.m, c.n, c.k, al, b, c.ldb, be, cOut, c.ldc, ep)
        }
    case .packedB:
        var packed = [UInt8](repeating: 0, count: cnn_sgemm_packed_b_size(c.k, c.n))
        return packed.withUnsafeMutableBytes { p in
            let s = cnn_sgemm_pack_b(tb, c.k, c.n, b, c.ldb, p.baseAddress)
            guard s == CNN_OK else { return s }
            return cnn_sgemm_packed_b(ta, c.m, c.n, c.k, al, a, c.lda, p.baseAddress, be, cOut, c.ldc, ep)
        }
    }
}

/// Random operands shared by all cases (generated once: filling fresh arrays per case dominates a
/// debug-build run). A case reads its operands at a seed-dependent offset.
fileprivate final class GEMMPool: Sendable {
    static let shared = GEMMPool()
    static let count = 1 << 21
    let values: [Float]
    let absValues: [Float]
    private init() {
        var rng = GEMMRng(state: 42)
        values = rng.fill(GEMMPool.count)
        absValues = values.map { abs($0) }
    }
}

/// Runs `c` and the reference; returns a failure message or nil. The padding columns of C must
/// be left untouched.
fileprivate func gemmCheck(_ c: GEMMCase, seed: UInt64) -> String? {
    let pool = GEMMPool.shared
    let aCount = (c.transA ? c.k : c.m) * c.lda, bCount = (c.transB ? c.n : c.k) * c.ldb
    let cCount = c.m * c.ldc, extra = max(c.m, c.n) + c.m * c.ldr
    precondition(aCount + bCount + cCount + extra + 4096 < GEMMPool.count, "case too large for the pool")
    let aOff = Int(seed % 1024), bOff = aOff + aCount + Int(seed % 7), cOff = bOff + bCount + 3
    let biasOff = cOff + cCount + 5, resOff = biasOff + max(c.m, c.n)
    var c0 = Array(pool.values[cOff..<(cOff + cCount)])
    if c.beta == 0 { for i in c0.indices where i % c.ldc < c.n { c0[i] = .nan } }
    var got = c0, want = c0, bound = [Float](repeating: 0, count: cCount)
    var status = CNN_OK, refStatus = CNN_OK
    pool.values.withUnsafeBufferPointer { v in
        let base = v.baseAddress!
        var ep = cnn_epilogue(bias: c.bias == 0 ? nil : base + biasOff, bias_per_column: c.bias == 2 ? 1 : 0,
                              residual: c.residual ? base + resOff : nil, residual_ld: c.ldr, relu: c.relu ? 1 : 0)
        status = got.withUnsafeMutableBufferPointer { gemmStatus(c, base + aOff, base + bOff, $0.baseAddress, &ep) }
        refStatus = want.withUnsafeMutableBufferPointer {
            gemmStatus(c, base + aOff, base + bOff, $0.baseAddress, &ep, reference: true)
        }
    }
    pool.absValues.withUnsafeBufferPointer { v in
        let base = v.baseAddress!
        _ = bound.withUnsafeMutableBufferPointer {
            gemmStatus(c, base + aOff, base + bOff, $0.baseAddress, nil, reference: true, alpha: abs(c.alpha), beta: 0)
        }
    }
    guard status == CNN_OK, refStatus == CNN_OK else { return "\(c): status \(status) reference \(refStatus)" }
    let eps = Float.ulpOfOne
    for i in 0..<c.m {
        for j in 0..<c.ldc {
            let idx = i * c.ldc + j
            if j >= c.n {
                if got[idx] != c0[idx] { return "\(c): padding C[\(i),\(j)] overwritten" }
                continue
            }
            var other: Float = c.beta == 0 ? 0 : abs(c.beta * c0[idx])
            if c.bias == 1 { other += abs(pool.values[biasOff + i]) }
            if c.bias == 2 { other += abs(pool.values[biasOff + j]) }
            if c.residual { other += abs(pool.values[resOff + i * c.ldr + j]) }
            let tol = 2 * Float(c.k + 4) * eps * bound[idx] + 4 * eps * other + 1e-30
            if got[idx].isNaN || !(abs(got[idx] - want[idx]) <= tol) {
                return "\(c): C[\(i),\(j)] = \(got[idx]), reference \(want[idx]), tolerance \(tol)"
            }
        }
    }
    return nil
}

/// Runs the cases on every supported ISA (1 failure message per ISA at most, to keep logs short).
fileprivate func gemmRunOnEveryISA(_ cases: [GEMMCase], seed: UInt64 = 1) throws {
    for isa in ComputeRuntime.supportedISAs {
        try ComputeRuntime.withISA(isa) {
            var failures = 0, first: String?
            for (n, c) in cases.enumerated() {
                if let msg = gemmCheck(c, seed: seed &+ UInt64(n)) {
                    failures += 1
                    if first == nil { first = msg }
                }
            }
            #expect(failures == 0, "\(isa): \(failures)/\(cases.count) cases failed; first: \(first ?? "")")
        }
    }
}

@Suite(.serialized) struct GEMMTests {
    @Test func allSmallMAndNWithRotatingK() throws {
        var cases: [GEMMCase] = []
        var rng = GEMMRng(state: 7)
        let ks = [1, 5, 16, 64, 67]
        for m in 0...67 {
            for n in 0...67 {
                var c = GEMMCase(m: m, n: n, k: ks[(m * 7 + n) % ks.count])
                c.transA = rng.int(2) == 1
                c.transB = rng.int(2) == 1
                c.pad = rng.int(3)
                cases.append(c)
            }
        }
        try gemmRunOnEveryISA(cases, seed: 100)
    }

    @Test func allSmallKWithSeveralShapes() throws {
        var cases: [GEMMCase] = []
        for k in 0...67 {
            for (m, n) in [(1, 1), (3, 50), (9, 49), (17, 33), (8, 48), (13, 97)] {
                for t in 0..<4 {
                    cases.append(GEMMCase(m: m, n: n, k: k, transA: t & 1 != 0, transB: t & 2 != 0, pad: (k + t) % 3))
                }
            }
        }
        try gemmRunOnEveryISA(cases, seed: 200)
    }

    @Test func primesAndPowersOfTwo() throws {
        // Each case stays under ~40 M multiply-adds so the reference is quick.
        let shapes = [(1031, 67, 257), (67, 1031, 127), (127, 129, 1031), (256, 512, 128), (1024, 32, 509),
                      (2, 1031, 512), (509, 257, 64), (64, 3136 / 4, 576 / 4), (1000, 8, 4096 / 4), (1, 1031, 257),
                      (1031, 1, 509)]
        var cases: [GEMMCase] = []
        for (i, (m, n, k)) in shapes.enumerated() {
            cases.append(GEMMCase(m: m, n: n, k: k, transA: i % 2 == 1, transB: i % 3 == 1, pad: i % 4))
        }
        try gemmRunOnEveryISA(cases, seed: 300)
    }

    @Test func transposesAlphaBetaAndNaNInC() throws {
        var cases: [GEMMCase] = []
        for t in 0..<4 {
            for (alpha, beta) in [(Float(1), Float(0)), (1, 1), (-0.5, 0.25), (2, -1), (0, 0.5)] {
                for (m, n, k) in [(37, 53, 29), (8, 96, 300), (50, 7, 70), (1, 40, 33), (40, 1, 33)] {
                    cases.append(GEMMCase(m: m, n: n, k: k, transA: t & 1 != 0, transB: t & 2 != 0,
                                          alpha: alpha, beta: beta, pad: t))
                }
            }
        }
        try gemmRunOnEveryISA(cases, seed: 400)
    }

    @Test func epilogueVariants() throws {
        var cases: [GEMMCase] = []
        for e in 0..<12 {
            for (m, n, k) in [(29, 61, 300), (64, 100, 16), (5, 3, 7), (100, 5, 40), (1, 77, 20), (77, 1, 20), (9, 9, 0)] {
                for beta in [Float(0), 0.5] {
                    cases.append(GEMMCase(m: m, n: n, k: k, transA: e % 2 == 0, transB: e % 3 == 0, beta: beta,
                                          pad: e % 3, bias: e % 3, residual: e & 4 != 0, relu: e & 8 != 0 || e % 5 == 0))
                }
            }
        }
        try gemmRunOnEveryISA(cases, seed: 500)
    }

    @Test func packedPaths() throws {
        var cases: [GEMMCase] = []
        var rng = GEMMRng(state: 9)
        for path in [GEMMPath.packedA, .packedB] {
            for (m, n, k) in [(64, 200, 300), (7, 9, 11), (33, 1, 600), (1, 50, 40), (300, 49, 257), (16, 16, 0),
                              (100, 100, 1)] {
                for t in 0..<4 {
                    cases.append(GEMMCase(m: m, n: n, k: k, transA: t & 1 != 0, transB: t & 2 != 0,
                                          alpha: 0.5, beta: t == 3 ? 1 : 0, pad: t, bias: rng.int(3),
                                          residual: rng.int(2) == 1, relu: rng.int(2) == 1, path: path))
                }
            }
        }
        try gemmRunOnEveryISA(cases, seed: 600)
    }

    /// Edge tiles of 1-4 columns after full tiles (AVX-512 runs them on the narrow kernel: vectors
    /// along the rows, two k steps per register; AVX2 runs 1-2 columns with four k steps in three
    /// registers): every column count, K tails of every residue mod 4, several K blocks, every
    /// epilogue, plain and pre-packed paths.
    @Test func narrowEdgeTiles() throws {
        var cases: [GEMMCase] = []
        var rng = GEMMRng(state: 11)
        for n in [49, 50, 51, 52, 97, 100, 148] {
            for k in [1, 2, 3, 5, 300, 601] {
                let m = [8, 13, 24, 3][(n + k) % 4]
                cases.append(GEMMCase(m: m, n: n, k: k, transA: rng.int(2) == 1, transB: rng.int(2) == 1,
                                      alpha: 0.75, beta: rng.int(2) == 1 ? 0.5 : 0, pad: rng.int(3), bias: rng.int(3),
                                      residual: rng.int(2) == 1, relu: rng.int(2) == 1,
                                      path: [GEMMPath.plain, .packedA, .packedB][rng.int(3)]))
            }
        }
        cases.append(GEMMCase(m: 512, n: 49, k: 1031))
        try gemmRunOnEveryISA(cases, seed: 700)
    }

    /// Up to 64 columns, an A contiguous along k is read in place (AVX2), full panels of six rows
    /// only: row counts with and without an edge panel, column counts with and without a narrow
    /// tail (1-2 columns as dot products along k, 3-8 on the narrow kernel), K blocks with and
    /// without a k % 8 tail (A's k offset), leading dimensions past K, the swapped orientation (a
    /// transposed B becomes the in-place operand) and every epilogue.
    @Test func aReadInPlace() throws {
        var cases: [GEMMCase] = []
        var rng = GEMMRng(state: 13)
        for (m, n) in [(6, 16), (12, 64), (13, 49), (97, 33), (300, 56), (512, 49), (36, 64), (64, 20), (30, 50),
                       (64, 34), (18, 18)] {
            for k in [7, 256, 777] {
                cases.append(GEMMCase(m: m, n: n, k: k, transB: rng.int(2) == 1, alpha: 0.75,
                                      beta: rng.int(2) == 1 ? 0.5 : 0, pad: rng.int(3), bias: rng.int(3),
                                      residual: rng.int(2) == 1, relu: rng.int(2) == 1))
            }
        }
        // Nine or eleven columns run as C^T = B^T A^T (less padding): 9 or 11 rows of B^T in place.
        for (m, n, k) in [(64, 9, 300), (62, 11, 50), (64, 9, 600)] {
            cases.append(GEMMCase(m: m, n: n, k: k, transA: k == 600, transB: true, pad: 1, bias: 2, relu: true))
        }
        try gemmRunOnEveryISA(cases, seed: 800)
    }

    /// A few columns (1-8, a fully connected layer on a small batch) against many rows contiguous
    /// along k run in dot form: row counts that leave 1 or 2 rows of a 3-row group and of a 32-row
    /// chunk, K below one vector, with and without a k % 8 tail, and past one k block (2048 on
    /// AVX2) so partial sums carry over; the mirror form (a few rows of A against a transposed B),
    /// and every epilogue.
    @Test func fewColumnsInDotForm() throws {
        var cases: [GEMMCase] = []
        var rng = GEMMRng(state: 17)
        for (m, n) in [(32, 8), (33, 1), (34, 8), (64, 5), (97, 8), (40, 3)] {
            for k in [5, 8, 300, 2048, 2059, 4100] {
                cases.append(GEMMCase(m: m, n: n, k: k, transB: rng.int(2) == 1, alpha: 0.75,
                                      beta: rng.int(2) == 1 ? 0.5 : 0, pad: rng.int(3), bias: rng.int(3),
                                      residual: rng.int(2) == 1, relu: rng.int(2) == 1))
            }
        }
        for (m, n, k) in [(8, 40, 2059), (2, 97, 4100), (6, 31, 13)] {
            cases.append(GEMMCase(m: m, n: n, k: k, transA: rng.int(2) == 1, transB: true, pad: 2, bias: 2,
                                  relu: true))
        }
        try gemmRunOnEveryISA(cases, seed: 900)
    }

    @Test func multiThreadMatchesOneThreadBitForBit() throws {
        let shapes = [(64, 3136, 64), (256, 196, 300), (512, 49, 200), (300, 300, 300), (1000, 8, 512), (1000, 1, 1024),
                      (1, 900, 700), (40, 97, 301), (96, 50, 203)]
        let all = ComputeRuntime.threadCount
        defer { try? ComputeRuntime.setThreadCount(nil) }
        for isa in ComputeRuntime.supportedISAs {
            try ComputeRuntime.withISA(isa) {
                for (s, (m, n, k)) in shapes.enumerated() {
                    var rng = GEMMRng(state: UInt64(s))
                    let a = rng.fill(m * k), b = rng.fill(k * n)
                    func run(_ threads: Int) throws -> [Float] {
                        try ComputeRuntime.setThreadCount(threads)
                        var c = [Float](repeating: 0, count: m * n)
                        let st = c.withUnsafeMutableBufferPointer { cP in
                            cnn_sgemm(CNN_NO_TRANS, CNN_NO_TRANS, m, n, k, 1, a, k, b, n, 0, cP.baseAddress, n, nil)
                        }
                        #expect(st == CNN_OK)
                        return c
                    }
                    let one = try run(1), many = try run(max(all, 2))
                    #expect(one == many, "\(isa) M=\(m) N=\(n) K=\(k)")
                }
            }
        }
    }

    @Test func emptyShapesTouchNoMemory() {
        #expect(cnn_sgemm(CNN_NO_TRANS, CNN_NO_TRANS, 0, 5, 5, 1, nil, 0, nil, 0, 0, nil, 0, nil) == CNN_OK)
        #expect(cnn_sgemm(CNN_TRANS, CNN_TRANS, 5, 0, 5, 1, nil, 0, nil, 0, 0, nil, 0, nil) == CNN_OK)
        #expect(cnn_sgemm_packed_a(nil, CNN_NO_TRANS, 0, 3, 3, 1, nil, 0, 0, nil, 0, nil) == CNN_OK)
        #expect(cnn_sgemm_packed_b(CNN_NO_TRANS, 3, 0, 3, 1, nil, 0, nil, 0, nil, 0, nil) == CNN_OK)
        // K == 0 reads neither A nor B: C = beta * C.
        var c: [Float] = [1, 2, 3, 4]
        #expect(cnn_sgemm(CNN_NO_TRANS, CNN_NO_TRANS, 2, 2, 0, 1, nil, 0, nil, 0, 0.5, &c, 2, nil) == CNN_OK)
        #expect(c == [0.5, 1, 1.5, 2])
    }

    @Test func invalidArgumentsAreRejected() {
        let a = [Float](repeating: 1, count: 64), b = a
        var c = [Float](repeating: 0, count: 64)
        let bad = cnn_transpose(rawValue: 7)
        #expect(cnn_sgemm(bad, CNN_NO_TRANS, 4, 4, 4, 1, a, 4, b, 4, 0, &c, 4, nil) == CNN_ERR_INVALID_ARGUMENT)
        #expect(cnn_sgemm(CNN_NO_TRANS, CNN_NO_TRANS, 4, 4, 4, 1, a, 3, b, 4, 0, &c, 4, nil) == CNN_ERR_INVALID_ARGUMENT)
        #expect(cnn_sgemm(CNN_NO_TRANS, CNN_TRANS, 4, 4, 5, 1, a, 5, b, 4, 0, &c, 4, nil) == CNN_ERR_INVALID_ARGUMENT)
        #expect(cnn_sgemm(CNN_NO_TRANS, CNN_NO_TRANS, 4, 4, 4, 1, a, 4, b, 4, 0, &c, 3, nil) == CNN_ERR_INVALID_ARGUMENT)
        #expect(cnn_sgemm(CNN_NO_TRANS, CNN_NO_TRANS, 4, 4, 4, 1, nil, 4, b, 4, 0, &c, 4, nil) == CNN_ERR_INVALID_ARGUMENT)
        #expect(cnn_sgemm(CNN_NO_TRANS, CNN_NO_TRANS, 4, 4, 4, 1, a, 4, b, 4, 0, nil, 4, nil) == CNN_ERR_INVALID_ARGUMENT)
        a.withUnsafeBufferPointer { res in
            var ep = cnn_epilogue(bias: nil, bias_per_column: 0, residual: res.baseAddress, residual_ld: 3, relu: 0)
            #expect(cnn_sgemm(CNN_NO_TRANS, CNN_NO_TRANS, 4, 4, 4, 1, a, 4, b, 4, 0, &c, 4, &ep) == CNN_ERR_INVALID_ARGUMENT)
        }
    }

    @Test func packedHeaderMismatchIsRejected() throws {
        let a = [Float](repeating: 1, count: 8 * 16), b = a
        var c = [Float](repeating: 0, count: 8 * 16)
        var pa = [UInt8](repeating: 0, count: cnn_sgemm_packed_a_size(8, 16))
        var pb = [UInt8](repeating: 0, count: cnn_sgemm_packed_b_size(16, 8))
        #expect(cnn_sgemm_pack_a(CNN_NO_TRANS, 8, 16, a, 16, &pa) == CNN_OK)
        #expect(cnn_sgemm_pack_b(CNN_NO_TRANS, 16, 8, b, 8, &pb) == CNN_OK)
        // Right shapes work; a different M, N or K is rejected.
        #expect(cnn_sgemm_packed_a(pa, CNN_NO_TRANS, 8, 8, 16, 1, b, 8, 0, &c, 8, nil) == CNN_OK)
        #expect(cnn_sgemm_packed_a(pa, CNN_NO_TRANS, 7, 8, 16, 1, b, 8, 0, &c, 8, nil) == CNN_ERR_INVALID_ARGUMENT)
        #expect(cnn_sgemm_packed_a(pa, CNN_NO_TRANS, 8, 8, 15, 1, b, 8, 0, &c, 8, nil) == CNN_ERR_INVALID_ARGUMENT)
        #expect(cnn_sgemm_packed_b(CNN_NO_TRANS, 8, 8, 16, 1, a, 16, pb, 0, &c, 8, nil) == CNN_OK)
        #expect(cnn_sgemm_packed_b(CNN_NO_TRANS, 8, 9, 16, 1, a, 16, pb, 0, &c, 9, nil) == CNN_ERR_INVALID_ARGUMENT)
        // A packed A is not a packed B.
        #expect(cnn_sgemm_packed_b(CNN_NO_TRANS, 8, 8, 16, 1, a, 16, pa, 0, &c, 8, nil) == CNN_ERR_INVALID_ARGUMENT)
        // Packed under one ISA, used under another: rejected (repack).
        let isas = ComputeRuntime.supportedISAs
        if isas.count > 1 {
            try ComputeRuntime.withISA(isas[0]) {
                #expect(cnn_sgemm_packed_a(pa, CNN_NO_TRANS, 8, 8, 16, 1, b, 8, 0, &c, 8, nil) == CNN_ERR_INVALID_ARGUMENT)
            }
        }
    }
}
