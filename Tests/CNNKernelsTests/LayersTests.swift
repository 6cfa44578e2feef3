// Tests of the non-convolution layer kernels (cnn_layers.h): every kernel against a float64
// reference written here, on every ISA variant this machine runs; every backward against central
// finite differences of a float64 forward.
//
// Tolerances: float kernels accumulate in float over at most a few hundred terms (or in double), so
// results agree with the float64 reference to a small multiple of Float epsilon times the
// magnitude; finite differences of a float64 function with step 1e-5 are accurate to ~1e-9.

import CNNKernels
import Foundation
import Testing
@testable import CNN

// MARK: - Helpers

/// SplitMix64: a small seeded generator for reproducible inputs.
private struct LayersRNG {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    mutating func float(_ lo: Float = -1, _ hi: Float = 1) -> Float {
        lo + (hi - lo) * Float(next() >> 40) * 0x1p-24
    }
    mutating func floats(_ n: Int, _ lo: Float = -1, _ hi: Float = 1) -> [Float] {
        (0..<n).map { _ in float(lo, hi) }
    }
    mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    /// n distinct values spaced 0.01 apart, shuffled (no ties: finite differences of max are exact).
    mutating func distinct(_ n: Int) -> [Float] {
        var v = (0..<n).map { Float($0 - n / 2) * 0.01 }
        for i in stride(from: n - 1, to: 0, by: -1) { v.swapAt(i, int(i + 1)) }
        return v
    }
}

private let eps32 = Double(Float.ulpOfOne)

private func forEachISA(_ body: (ISA) throws -> Void) throws {
    for isa in ComputeRuntime.supportedISAs {
        try ComputeRuntime.withISA(isa) { try body(isa) }
    }
}

/// max |a - b| <= tol * max(1, |b|) elementwise.
private func expectClose(_ a: [Float], _ b: [Double], tol: Double, _ what: String,
                         sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(a.count == b.count, "\(what): count", sourceLocation: sourceLocation)
    var worst = 0.0
    var at = -1
    for i in 0..<min(a.count, b.count) {
        let err = abs(Double(a[i]) - b[i]) / max(1, abs(b[i]))
        if !(err <= worst) { worst = err; at = i }
    }
    #expect(worst <= tol, "\(what): worst relative error \(worst) at \(at) > \(tol)", sourceLocation: sourceLocation)
}

/// Central differences of f at x, step h.
private func numericGradient(_ x: [Double], h: Double = 1e-5, _ f: ([Double]) -> Double) -> [Double] {
    var g = [Double](repeating: 0, count: x.count)
    var xp = x
    for i in 0..<x.count {
        xp[i] = x[i] + h
        let fp = f(xp)
        xp[i] = x[i] - h
        let fm = f(xp)
        xp[i] = x[i]
        g[i] = (fp - fm) / (2 * h)
    }
    return g
}

private func dot(_ a: [Double], _ b: [Double]) -> Double {
    var s = 0.0
    for i in 0..<a.count { s += a[i] * b[i] }
    return s
}

private func dbl(_ a: [Float]) -> [Double] { a.map { Double($0) } }

// MARK: - Pooling references

private struct PoolCase: CustomStringConvertible {
    var N = 1, C = 1, H = 1, W = 1, kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0
    var ceil = false, includePad = true

    var shape: cnn_pool_shape {
        cnn_pool_shape(N: Int64(N), C: Int64(C), H: Int64(H), W: Int64(W), kernel_h: Int64(kh),
                       kernel_w: Int64(kw), stride_h: Int64(sh), stride_w: Int64(sw), pad_h: Int64(ph),
                       pad_w: Int64(pw), ceil_mode: ceil ? 1 : 0, count_include_pad: includePad ? 1 : 0)
    }
    var description: String {
        "N\(N) C\(C) \(H)x\(W) k\(kh)x\(kw) s\(sh)x\(sw) p\(ph)x\(pw) ceil \(ceil) incl \(includePad)"
    }

    func outputSize() -> (Int, Int)? {
        var s = shape
        var p: Int64 = 0, q: Int64 = 0
        guard cnn_pool_output_size(&s, &p, &q) == CNN_OK else { return nil }
        return (Int(p), Int(q))
    }

    /// Max pooling in double: the first element of the window that is strictly greater than all
    /// before it wins (first maximum on ties); as in PyTorch, every NaN replaces the maximum.
    func maxRef(_ x: [Double], P: Int, Q: Int) -> ([Double], [Int32]) {
        var y = [Double](), ix = [Int32]()
        for plane in 0..<(N * C) {
            for oh in 0..<P {
                for ow in 0..<Q {
                    var best = 0.0, bi = -1
                    for h in (oh * sh - ph)..<(oh * sh - ph + kh) where h >= 0 && h < H {
                        for w in (ow * sw - pw)..<(ow * sw - pw + kw) where w >= 0 && w < W {
                            let v = x[plane * H * W + h * W + w]
                            if bi < 0 || v > best || v.isNaN { best = v; bi = h * W + w } // NaN propagates
                        }
                    }
                    y.append(best)
                    ix.append(Int32(bi))
                }
            }
        }
        return (y, ix)
    }

    /// Average pooling in double with PyTorch's divisor: the window clipped to the padded input
    /// (count_include_pad) or to the input.
    func avgRef(_ x: [Double], P: Int, Q: Int) -> [Double] {
        var y = [Double]()
        for plane in 0..<(N * C) {
            for oh in 0..<P {
                for ow in 0..<Q {
                    let h0 = oh * sh - ph, w0 = ow * sw - pw
                    let h1p = min(h0 + kh, H + ph), w1p = min(w0 + kw, W + pw)
                    var sum = 0.0, count = 0
                    for h in max(h0, 0)..<min(h1p, H) {
                        for w in max(w0, 0)..<min(w1p, W) {
                            sum += x[plane * H * W + h * W + w]
                            count += 1
                        }
                    }
                    let div = includePad ? (h1p - h0) * (w1p - w0) : count
                    y.append(count == 0 ? 0 : sum / Double(div))
                }
            }
        }
        return y
    }
}

private func adaptiveRef(N: Int, C: Int, H: Int, W: Int, oH: Int, oW: Int, _ x: [Double]) -> [Double] {
    var y = [Double]()
    for plane in 0..<(N * C) {
        for i in 0..<oH {
            let h0 = (i * H) / oH, h1 = ((i + 1) * H + oH - 1) / oH
            for j in 0..<oW {
                let w0 = (j * W) / oW, w1 = ((j + 1) * W + oW - 1) / oW
                var s = 0.0
                for h in h0..<h1 { for w in w0..<w1 { s += x[plane * H * W + h * W + w] } }
                y.append(s / Double((h1 - h0) * (w1 - w0)))
            }
        }
    }
    return y
}

// MARK: - Other references

private func bnTrainRef(N: Int, C: Int, HW: Int, _ x: [Double], _ gamma: [Double], _ beta: [Double],
                        eps: Double) -> (y: [Double], mean: [Double], variance: [Double]) {
    var y = [Double](repeating: 0, count: x.count)
    var means = [Double](), vars = [Double]()
    let M = Double(N * HW)
    for c in 0..<C {
        var s = 0.0
        for n in 0..<N { for j in 0..<HW { s += x[(n * C + c) * HW + j] } }
        let mean = s / M
        var v = 0.0
        for n in 0..<N { for j in 0..<HW { let d = x[(n * C + c) * HW + j] - mean; v += d * d } }
        v /= M
        for n in 0..<N {
            for j in 0..<HW {
                let i = (n * C + c) * HW + j
                y[i] = (x[i] - mean) / (v + eps).squareRoot() * gamma[c] + beta[c]
            }
        }
        means.append(mean)
        vars.append(v)
    }
    return (y, means, vars)
}

private func lrnRef(N: Int, C: Int, HW: Int, size: Int, alpha: Double, beta: Double, k: Double,
                    _ x: [Double]) -> [Double] {
    var y = [Double](repeating: 0, count: x.count)
    for n in 0..<N {
        for c in 0..<C {
            for j in 0..<HW {
                var s = 0.0
                for cc in max(0, c - size / 2)...min(C - 1, c + (size - 1) / 2) {
                    let v = x[(n * C + cc) * HW + j]
                    s += v * v
                }
                let i = (n * C + c) * HW + j
                y[i] = x[i] / pow(k + alpha / Double(size) * s, beta)
            }
        }
    }
    return y
}

private func softmaxRef(rows: Int, classes: Int, _ x: [Double], log logOutput: Bool) -> [Double] {
    var y = [Double](repeating: 0, count: x.count)
    for r in 0..<rows {
        let row = x[(r * classes)..<((r + 1) * classes)]
        let m = row.max()!
        let s = row.reduce(0.0) { $0 + exp($1 - m) }
        for j in 0..<classes {
            let v = x[r * classes + j] - m
            y[r * classes + j] = logOutput ? v - Foundation.log(s) : exp(v) / s
        }
    }
    return y
}

private func crossEntropyRef(rows: Int, classes: Int, _ x: [Double], _ labels: [Int32], smoothing: Double,
                             sum: Bool) -> Double {
    let lp = softmaxRef(rows: rows, classes: classes, x, log: true)
    var total = 0.0
    for r in 0..<rows {
        for j in 0..<classes {
            let t = (j == Int(labels[r]) ? 1 - smoothing : 0) + smoothing / Double(classes)
            total -= t * lp[r * classes + j]
        }
    }
    return sum ? total : total / Double(rows)
}

// MARK: - Tests

@Suite(.serialized) struct LayersTests {

    // MARK: pooling

    @Test func poolOutputSizesMatchPyTorch() {
        func size(_ h: Int, _ k: Int, _ s: Int, _ p: Int, _ ceil: Bool) -> Int? {
            PoolCase(N: 1, C: 1, H: h, W: h, kh: k, kw: k, sh: s, sw: s, ph: p, pw: p, ceil: ceil)
                .outputSize()?.0
        }
        // Values from torch.nn.MaxPool2d on these sizes.
        #expect(size(112, 3, 2, 0, true) == 56)  // GoogLeNet's pool1
        #expect(size(112, 3, 2, 0, false) == 55)
        #expect(size(5, 2, 2, 0, true) == 3)
        #expect(size(5, 2, 2, 0, false) == 2)
        #expect(size(112, 3, 2, 1, false) == 56) // ResNet's stem pool
        #expect(size(55, 3, 2, 0, false) == 27)  // AlexNet
        #expect(size(3, 2, 2, 1, true) == 2)     // last window would start in the right padding
        #expect(size(4, 2, 2, 1, true) == 3)
        #expect(size(14, 3, 1, 1, true) == 14)
        #expect(size(6, 3, 3, 1, true) == 3)
        // padding > kernel/2 rejected, as PyTorch does.
        #expect(size(10, 3, 2, 2, false) == nil)
        #expect(size(10, 2, 2, 2, false) == nil)
        #expect(size(1, 3, 1, 0, false) == nil) // output too small
    }

    @Test func maxPoolRejectsBadArguments() {
        var s = PoolCase(N: 1, C: 1, H: 8, W: 8, kh: 3, kw: 3, sh: 2, sw: 2, ph: 2, pw: 1).shape
        var x = [Float](repeating: 0, count: 64), y = [Float](repeating: 0, count: 64)
        #expect(cnn_maxpool2d_forward(&s, &x, &y, nil) == CNN_ERR_INVALID_ARGUMENT)
        #expect(cnn_avgpool2d_forward(&s, &x, &y) == CNN_ERR_INVALID_ARGUMENT)
        s = PoolCase(N: 1, C: 1, H: 8, W: 8, kh: 3, kw: 3, sh: 0, sw: 2).shape
        #expect(cnn_maxpool2d_forward(&s, &x, &y, nil) == CNN_ERR_INVALID_ARGUMENT)
        s = PoolCase(N: 0, C: 3, H: 8, W: 8, kh: 3, kw: 3, sh: 2, sw: 2).shape
        #expect(cnn_maxpool2d_forward(&s, nil, nil, nil) == CNN_OK) // empty batch
    }

    /// Random shapes, biased to the 3x3/2 and 2x2/2 pools that have vectorised variants, with
    /// widths that exercise the vector tails; integer inputs in a small range give many ties.
    private func poolCases(_ rng: inout LayersRNG, count: Int, small: Bool = false) -> [PoolCase] {
        var cases = [PoolCase]()
        while cases.count < count {
            var c = PoolCase()
            c.N = small ? 1 : 1 + rng.int(2); c.C = 1 + rng.int(small ? 2 : 3)
            c.H = 1 + rng.int(small ? 9 : 20); c.W = 1 + rng.int(small ? 20 : 45)
            let fast = rng.int(3) != 0
            c.kh = fast ? 2 + rng.int(2) : 1 + rng.int(4)
            c.kw = fast ? c.kh : 1 + rng.int(4)
            c.sh = fast ? 2 : 1 + rng.int(3)
            c.sw = fast ? 2 : 1 + rng.int(3)
            c.ph = rng.int(c.kh / 2 + 1); c.pw = rng.int(c.kw / 2 + 1)
            c.ceil = rng.int(2) == 0
            c.includePad = rng.int(2) == 0
            if c.outputSize() != nil { cases.append(c) }
        }
        if small { return cases }
        cases.append(PoolCase(N: 2, C: 3, H: 112, W: 112, kh: 3, kw: 3, sh: 2, sw: 2, ph: 0, pw: 0, ceil: true))
        cases.append(PoolCase(N: 1, C: 2, H: 56, W: 56, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1))
        cases.append(PoolCase(N: 1, C: 2, H: 37, W: 37, kh: 2, kw: 2, sh: 2, sw: 2, ceil: true))
        // Column stride 1 (GoogLeNet's branch pools): one and several vectors, odd kernel widths.
        cases.append(PoolCase(N: 1, C: 3, H: 28, W: 28, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1))
        cases.append(PoolCase(N: 1, C: 2, H: 9, W: 45, kh: 2, kw: 5, sh: 2, sw: 1, ph: 1, pw: 2, ceil: true))
        cases.append(PoolCase(N: 2, C: 1, H: 7, W: 19, kh: 3, kw: 2, sh: 1, sw: 1))
        // GoogLeNet's 14x14 (a last vector overlapping the one before) and 7x7 (one partial
        // vector with both border columns) branch pools.
        cases.append(PoolCase(N: 1, C: 2, H: 14, W: 14, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1))
        cases.append(PoolCase(N: 1, C: 3, H: 7, W: 7, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1))
        return cases
    }

    @Test func maxPoolForwardMatchesReferenceOnEveryISA() throws {
        var rng = LayersRNG(seed: 1)
        for c in poolCases(&rng, count: 40) {
            let (P, Q) = c.outputSize()!
            let ties = rng.int(2) == 0, nans = rng.int(4) == 0
            var x: [Float] = (0..<(c.N * c.C * c.H * c.W)).map { _ in ties ? Float(rng.int(4)) : rng.float() }
            if nans { for _ in 0..<(1 + x.count / 50) { x[rng.int(x.count)] = .nan } }
            let (yRef, iRef) = c.maxRef(dbl(x), P: P, Q: Q)
            try forEachISA { isa in
                var s = c.shape
                var y = [Float](repeating: .nan, count: yRef.count)
                var ix = [Int32](repeating: -7, count: yRef.count)
                #expect(cnn_maxpool2d_forward(&s, x, &y, &ix) == CNN_OK)
                let badValue = (0..<y.count).first { !(Double(y[$0]) == yRef[$0] || (y[$0].isNaN && yRef[$0].isNaN)) }
                let badIndex = (0..<ix.count).first { ix[$0] != iRef[$0] }
                #expect(badValue == nil, "\(isa) \(c) value at \(badValue ?? -1)")
                #expect(badIndex == nil, "\(isa) \(c) index at \(badIndex ?? -1)")
                var y2 = [Float](repeating: .nan, count: yRef.count)
                #expect(cnn_maxpool2d_forward(&s, x, &y2, nil) == CNN_OK)
                #expect(y2.elementsEqual(y) { $0 == $1 || ($0.isNaN && $1.isNaN) }, "\(isa) \(c) without indices")
            }
        }
    }

    @Test func maxPoolTiesPickTheFirstMaximum() throws {
        let c = PoolCase(N: 1, C: 2, H: 9, W: 40, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1)
        let (P, Q) = c.outputSize()!
        let x = [Float](repeating: 2.5, count: c.N * c.C * c.H * c.W)
        try forEachISA { isa in
            var s = c.shape
            var y = [Float](repeating: 0, count: c.N * c.C * P * Q)
            var ix = [Int32](repeating: 0, count: y.count)
            #expect(cnn_maxpool2d_forward(&s, x, &y, &ix) == CNN_OK)
            #expect(y.allSatisfy { $0 == 2.5 })
            for i in 0..<y.count {
                let oh = (i / Q) % P, ow = i % Q
                let first = Int32(max(oh * 2 - 1, 0) * c.W + max(ow * 2 - 1, 0)) // window's top-left valid cell
                #expect(ix[i] == first, "\(isa) output \(i)")
            }
        }
    }

    /// Inference pooling (no indices) on negative planes, which the separable AVX2 path and the
    /// padded AVX-512 one take: windows clipped by ceil mode or padding at the right border must
    /// not see the zeros a masked load leaves past the row. Against the reference, on every variant.
    @Test func maxPoolWithoutIndicesOnNegativeInputsAtTheBorders() throws {
        let cases = [PoolCase(N: 1, C: 2, H: 9, W: 21, kh: 3, kw: 3, sh: 2, sw: 2, ph: 0, pw: 0, ceil: true),
                     PoolCase(N: 1, C: 2, H: 8, W: 19, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1),
                     PoolCase(N: 1, C: 1, H: 6, W: 30, kh: 2, kw: 5, sh: 1, sw: 1, ph: 1, pw: 2, ceil: true),
                     PoolCase(N: 1, C: 1, H: 11, W: 17, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1, ceil: true)]
        var rng = LayersRNG(seed: 9)
        for c in cases {
            let (P, Q) = c.outputSize()!
            let x: [Float] = (0..<(c.N * c.C * c.H * c.W)).map { _ in -rng.float(1, 2) }
            let (yRef, _) = c.maxRef(dbl(x), P: P, Q: Q)
            try forEachISA { isa in
                var s = c.shape
                var y = [Float](repeating: .nan, count: yRef.count)
                #expect(cnn_maxpool2d_forward(&s, x, &y, nil) == CNN_OK)
                let bad = (0..<y.count).first { Double(y[$0]) != yRef[$0] }
                #expect(bad == nil, "\(isa) \(c) value at \(bad ?? -1)")
            }
        }
    }

    /// Windows of -inf (and -inf beside padding) never take a value, so the index stays at the
    /// window's first in-plane cell, as in the reference, on every variant and both column strides.
    @Test func maxPoolAllNegativeInfinityKeepsTheFirstCell() throws {
        let cases = [PoolCase(N: 1, C: 2, H: 7, W: 7, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1),
                     PoolCase(N: 1, C: 1, H: 9, W: 21, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1),
                     PoolCase(N: 1, C: 1, H: 9, W: 40, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1)]
        var rng = LayersRNG(seed: 5)
        for c in cases {
            let (P, Q) = c.outputSize()!
            // Mostly -inf, with a few finite values so that some windows do take one.
            let x: [Float] = (0..<(c.N * c.C * c.H * c.W)).map { _ in rng.int(6) == 0 ? Float(rng.int(3)) : -.infinity }
            let (yRef, iRef) = c.maxRef(dbl(x), P: P, Q: Q)
            try forEachISA { isa in
                var s = c.shape
                var y = [Float](repeating: 0, count: yRef.count)
                var ix = [Int32](repeating: -7, count: yRef.count)
                #expect(cnn_maxpool2d_forward(&s, x, &y, &ix) == CNN_OK)
                #expect((0..<y.count).first { Double(y[$0]) != yRef[$0] } == nil, "\(isa) \(c) values")
                #expect((0..<ix.count).first { ix[$0] != iRef[$0] } == nil, "\(isa) \(c) indices")
            }
        }
    }

    @Test func maxPoolBackwardMatchesFiniteDifferences() throws {
        var rng = LayersRNG(seed: 2)
        for c in poolCases(&rng, count: 10, small: true) {
            let (P, Q) = c.outputSize()!
            let x = rng.distinct(c.N * c.C * c.H * c.W)
            let dy = rng.floats(c.N * c.C * P * Q)
            let g = numericGradient(dbl(x)) { dot(c.maxRef($0, P: P, Q: Q).0, dbl(dy)) }
            try forEachISA { isa in
                var s = c.shape
                var y = [Float](repeating: 0, count: dy.count)
                var ix = [Int32](repeating: 0, count: dy.count)
                #expect(cnn_maxpool2d_forward(&s, x, &y, &ix) == CNN_OK)
                var dx = [Float](repeating: .nan, count: x.count) // written, not accumulated
                #expect(cnn_maxpool2d_backward(&s, dy, ix, &dx) == CNN_OK)
                expectClose(dx, g, tol: 1e-6, "\(isa) \(c)")
            }
        }
        // An out-of-range index is rejected, not written.
        var s = PoolCase(N: 1, C: 1, H: 2, W: 2, kh: 2, kw: 2, sh: 2, sw: 2).shape
        var dx = [Float](repeating: 0, count: 4)
        #expect(cnn_maxpool2d_backward(&s, [1], [4], &dx) == CNN_ERR_INVALID_ARGUMENT)
    }

    @Test func avgPoolForwardAndBackward() throws {
        var rng = LayersRNG(seed: 3)
        for (n, c) in (poolCases(&rng, count: 10, small: true) + poolCases(&rng, count: 20)).enumerated() {
            let (P, Q) = c.outputSize()!
            let x = rng.floats(c.N * c.C * c.H * c.W)
            let yRef = c.avgRef(dbl(x), P: P, Q: Q)
            let dy = rng.floats(yRef.count)
            let g = n < 10 ? numericGradient(dbl(x)) { dot(c.avgRef($0, P: P, Q: Q), dbl(dy)) } : nil
            try forEachISA { isa in
                var s = c.shape
                var y = [Float](repeating: .nan, count: yRef.count)
                #expect(cnn_avgpool2d_forward(&s, x, &y) == CNN_OK)
                expectClose(y, yRef, tol: 16 * eps32, "\(isa) \(c)")
                if let g {
                    var dx = [Float](repeating: .nan, count: x.count)
                    #expect(cnn_avgpool2d_backward(&s, dy, &dx) == CNN_OK)
                    expectClose(dx, g, tol: 1e-6, "\(isa) \(c) backward")
                }
            }
        }
        // ceil_mode with count_include_pad: the divisor stops at the padded border, as PyTorch's
        // AvgPool2d(3, 2, 1, ceil_mode=True) on a 4x4 of ones.
        let c = PoolCase(N: 1, C: 1, H: 4, W: 4, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1, ceil: true, includePad: true)
        var s = c.shape
        var y = [Float](repeating: 0, count: 9)
        #expect(cnn_avgpool2d_forward(&s, [Float](repeating: 1, count: 16), &y) == CNN_OK)
        // Windows per axis: [-1, 2), [1, 4), [3, 5) (the last clipped to the padded end 5), i.e.
        // 2, 3, 1 input cells and divisor factors 3, 3, 2.
        #expect(abs(y[0] - 4.0 / 9.0) < 1e-6)
        #expect(abs(y[1] - 6.0 / 9.0) < 1e-6)
        #expect(abs(y[2] - 2.0 / 6.0) < 1e-6)
        #expect(abs(y[8] - 1.0 / 4.0) < 1e-6)
    }

    @Test func adaptiveAvgPoolForwardAndBackward() throws {
        var rng = LayersRNG(seed: 4)
        for (H, W, oH, oW) in [(7, 7, 1, 1), (10, 9, 3, 4), (5, 5, 7, 7), (13, 6, 6, 6)] {
            let (N, C) = (2, 3)
            let x = rng.floats(N * C * H * W)
            let yRef = adaptiveRef(N: N, C: C, H: H, W: W, oH: oH, oW: oW, dbl(x))
            let dy = rng.floats(yRef.count)
            let g = numericGradient(dbl(x)) { dot(adaptiveRef(N: N, C: C, H: H, W: W, oH: oH, oW: oW, $0), dbl(dy)) }
            try forEachISA { isa in
                var y = [Float](repeating: .nan, count: yRef.count)
                #expect(cnn_adaptive_avgpool2d_forward(2, 3, Int64(H), Int64(W), Int64(oH), Int64(oW), x, &y) == CNN_OK)
                expectClose(y, yRef, tol: 16 * eps32, "\(isa) \(H)x\(W)->\(oH)x\(oW)")
                var dx = [Float](repeating: .nan, count: x.count)
                #expect(cnn_adaptive_avgpool2d_backward(2, 3, Int64(H), Int64(W), Int64(oH), Int64(oW), dy, &dx) == CNN_OK)
                expectClose(dx, g, tol: 1e-6, "\(isa) backward")
            }
        }
    }

    // MARK: batch norm

    @Test func batchNormTrainingForwardMatchesReference() throws {
        var rng = LayersRNG(seed: 5)
        // The last case has mean 1000 and spread 1: a one-pass sum of squares in float would cancel.
        for (N, C, HW, offset) in [(2, 3, 10, Float(0)), (4, 5, 49, 0), (1, 2, 1000, 0), (3, 4, 37, 1000)] {
            let x = rng.floats(N * C * HW).map { $0 + offset }
            let gamma = rng.floats(C, 0.5, 1.5), beta = rng.floats(C)
            let ref = bnTrainRef(N: N, C: C, HW: HW, dbl(x), dbl(gamma), dbl(beta), eps: 1e-5)
            try forEachISA { isa in
                var y = [Float](repeating: .nan, count: x.count)
                var rm = [Float](repeating: 0.5, count: C), rv = [Float](repeating: 2, count: C)
                var sm = [Float](repeating: 0, count: C), si = [Float](repeating: 0, count: C)
                #expect(cnn_batchnorm2d_forward_train(Int64(N), Int64(C), Int64(HW), x, gamma, beta, 1e-5, 0.1,
                                                      &rm, &rv, &sm, &si, &y) == CNN_OK)
                let M = Double(N * HW)
                // Output error: |x - mean| ~ 1 plus the rounding of x itself (1000 * eps) over sigma ~ 0.6.
                expectClose(y, ref.y, tol: Double(offset + 1) * 64 * eps32, "\(isa) y \(N),\(C),\(HW)")
                expectClose(sm, ref.mean, tol: 8 * eps32, "\(isa) mean")
                expectClose(si, ref.variance.map { 1 / ($0 + 1e-5).squareRoot() }, tol: 64 * eps32, "\(isa) invstd")
                expectClose(rm, ref.mean.map { 0.9 * 0.5 + 0.1 * $0 }, tol: 8 * eps32, "\(isa) running mean")
                expectClose(rv, ref.variance.map { 0.9 * 2 + 0.1 * $0 * M / (M - 1) }, tol: 64 * eps32, "\(isa) running var")
            }
        }
        // One value per channel cannot be normalised in training (PyTorch raises).
        var y = [Float](repeating: 0, count: 2), m = y, s = y
        #expect(cnn_batchnorm2d_forward_train(1, 2, 1, [1, 2], nil, nil, 1e-5, 0.1, nil, nil, &m, &s, &y)
                == CNN_ERR_INVALID_ARGUMENT)
    }

    @Test func batchNormInferenceAndFold() throws {
        var rng = LayersRNG(seed: 6)
        let (N, C, HW) = (3, 5, 67)
        let x = rng.floats(N * C * HW)
        let gamma = rng.floats(C, 0.5, 1.5), beta = rng.floats(C), rm = rng.floats(C), rv = rng.floats(C, 0.2, 2)
        var ref = [Double](repeating: 0, count: x.count)
        for i in 0..<x.count {
            let c = (i / HW) % C
            ref[i] = (Double(x[i]) - Double(rm[c])) / (Double(rv[c]) + 1e-5).squareRoot() * Double(gamma[c]) + Double(beta[c])
        }
        try forEachISA { isa in
            var y = [Float](repeating: .nan, count: x.count)
            #expect(cnn_batchnorm2d_forward_inference(Int64(N), Int64(C), Int64(HW), x, gamma, beta, rm, rv, 1e-5, &y) == CNN_OK)
            expectClose(y, ref, tol: 16 * eps32, "\(isa) inference")
        }
        // Fold: a 1x1 "convolution" w (C x C) then batch norm equals the folded convolution.
        let w = rng.floats(C * C)
        var wf = w, bf = [Float](repeating: 0, count: C)
        #expect(cnn_batchnorm_fold(Int64(C), Int64(C), &wf, &bf, gamma, beta, rm, rv, 1e-5) == CNN_OK)
        let v = rng.floats(C)
        for k in 0..<C {
            var conv = 0.0, folded = Double(bf[k])
            for j in 0..<C { conv += Double(w[k * C + j]) * Double(v[j]); folded += Double(wf[k * C + j]) * Double(v[j]) }
            let bn = (conv - Double(rm[k])) / (Double(rv[k]) + 1e-5).squareRoot() * Double(gamma[k]) + Double(beta[k])
            #expect(abs(folded - bn) <= 64 * eps32 * max(1, abs(bn)), "fold channel \(k)")
        }
    }

    @Test func batchNormBackwardMatchesFiniteDifferences() throws {
        var rng = LayersRNG(seed: 7)
        // Plane sizes 1, 7, 17, 33 too: the vector variants' tails (HW = 1 with N = 2 has two values
        // per channel, a small and ill-conditioned gradient, still within the tolerance).
        for (N, C, HW) in [(2, 3, 5), (3, 2, 8)] + LayerISAVariantTests.tails.map({ (2, 3, $0) }) {
            let x = rng.floats(N * C * HW), dy = rng.floats(N * C * HW)
            let gamma = rng.floats(C, 0.5, 1.5), beta = rng.floats(C)
            let loss = { (x: [Double], g: [Double], b: [Double]) -> Double in
                dot(bnTrainRef(N: N, C: C, HW: HW, x, g, b, eps: 1e-5).y, dbl(dy))
            }
            let gx = numericGradient(dbl(x)) { loss($0, dbl(gamma), dbl(beta)) }
            let gg = numericGradient(dbl(gamma)) { loss(dbl(x), $0, dbl(beta)) }
            let gb = numericGradient(dbl(beta)) { loss(dbl(x), dbl(gamma), $0) }
            try forEachISA { isa in
                var y = [Float](repeating: 0, count: x.count)
                var sm = [Float](repeating: 0, count: C), si = sm
                #expect(cnn_batchnorm2d_forward_train(Int64(N), Int64(C), Int64(HW), x, gamma, beta, 1e-5, 0.1,
                                                      nil, nil, &sm, &si, &y) == CNN_OK)
                // Convention: dx written (start from garbage), dgamma/dbeta accumulate (start at 1).
                var dx = [Float](repeating: .nan, count: x.count)
                var dg = [Float](repeating: 1, count: C), db = [Float](repeating: 1, count: C)
                #expect(cnn_batchnorm2d_backward(Int64(N), Int64(C), Int64(HW), x, dy, gamma, sm, si, &dx, &dg, &db) == CNN_OK)
                expectClose(dx, gx, tol: 1e-4, "\(isa) dx HW \(HW)")
                expectClose(dg, gg.map { $0 + 1 }, tol: 1e-5, "\(isa) dgamma HW \(HW)")
                expectClose(db, gb.map { $0 + 1 }, tol: 1e-5, "\(isa) dbeta HW \(HW)")
            }
        }
    }

    /// The split kernels of synchronised batch norm, used by one process (the sums it would reduce
    /// are its own): moments against the float64 reference (also with mean 1000 and spread 1),
    /// normalize with those statistics, and backward_reduce + backward_elemt against finite
    /// differences, on every ISA variant.
    @Test func synchronizedBatchNormKernelsMatchReferences() throws {
        var rng = LayersRNG(seed: 8)
        for (N, C, HW, offset) in [(2, 3, 5, Float(0)), (3, 2, 8, 0), (3, 4, 37, 1000)] {
            let x = rng.floats(N * C * HW).map { $0 + offset }, dy = rng.floats(N * C * HW)
            let gamma = rng.floats(C, 0.5, 1.5), beta = rng.floats(C)
            let ref = bnTrainRef(N: N, C: C, HW: HW, dbl(x), dbl(gamma), dbl(beta), eps: 1e-5)
            let M = Double(N * HW)
            let loss = { (x: [Double]) -> Double in dot(bnTrainRef(N: N, C: C, HW: HW, x, dbl(gamma), dbl(beta), eps: 1e-5).y, dbl(dy)) }
            let gx = offset == 0 ? numericGradient(dbl(x), loss) : nil
            try forEachISA { isa in
                var mean = [Double](repeating: .nan, count: C), m2 = mean
                #expect(cnn_batchnorm2d_moments(Int64(N), Int64(C), Int64(HW), x, &mean, &m2) == CNN_OK)
                for c in 0..<C {
                    #expect(abs(mean[c] - ref.mean[c]) <= 1e-12 * max(1, abs(ref.mean[c])), "\(isa) mean \(c)")
                    #expect(abs(m2[c] / M - ref.variance[c]) <= 1e-9 * ref.variance[c], "\(isa) variance \(c)")
                }
                let sm = mean.map { Float($0) }, si = m2.map { Float(1 / ($0 / M + 1e-5).squareRoot()) }
                var y = [Float](repeating: .nan, count: x.count)
                #expect(cnn_batchnorm2d_normalize(Int64(N), Int64(C), Int64(HW), x, gamma, beta, sm, si, &y) == CNN_OK)
                expectClose(y, ref.y, tol: Double(offset + 1) * 64 * eps32, "\(isa) y \(N),\(C),\(HW)")
                guard let gx else { return }
                var sdy = [Double](repeating: .nan, count: C), sdyx = sdy
                #expect(cnn_batchnorm2d_backward_reduce(Int64(N), Int64(C), Int64(HW), x, dy, sm, &sdy, &sdyx) == CNN_OK)
                var dx = [Float](repeating: .nan, count: x.count)
                #expect(cnn_batchnorm2d_backward_elemt(Int64(N), Int64(C), Int64(HW), x, dy, gamma, sm, si, sdy, sdyx, M, &dx) == CNN_OK)
                expectClose(dx, gx, tol: 1e-4, "\(isa) dx")
            }
        }
        // Empty local batches (a rank with no images) give zero sums; a count of 0 is invalid.
        var a = [Double](repeating: 7, count: 3), b = a
        #expect(cnn_batchnorm2d_moments(0, 3, 5, nil, &a, &b) == CNN_OK && a == [0, 0, 0] && b == [0, 0, 0])
        a = [7, 7, 7]; b = a
        #expect(cnn_batchnorm2d_backward_reduce(0, 3, 5, nil, nil, nil, &a, &b) == CNN_OK && a == [0, 0, 0] && b == [0, 0, 0])
        #expect(cnn_batchnorm2d_backward_elemt(1, 1, 2, [1, 2], [1, 1], nil, [1.5], [2], [2], [0], 0, nil) == CNN_ERR_INVALID_ARGUMENT)
    }

    @Test func emptyInputsAreAccepted() {
        var out = [Float](repeating: 7, count: 4), out2 = out
        #expect(cnn_batchnorm2d_forward_train(0, 3, 5, nil, nil, nil, 1e-5, 0.1, nil, nil, &out, &out2, nil) == CNN_OK)
        #expect(cnn_batchnorm2d_forward_inference(0, 3, 5, nil, nil, nil, nil, nil, 1e-5, nil) == CNN_OK)
        #expect(cnn_batchnorm2d_backward(0, 3, 5, nil, nil, nil, nil, nil, nil, nil, nil) == CNN_OK)
        #expect(cnn_relu_forward(0, nil, nil) == CNN_OK)
        #expect(cnn_lrn_forward(0, 3, 5, 5, 1e-4, 0.75, 2, nil, nil, nil) == CNN_OK)
        #expect(cnn_softmax_forward(0, 10, nil, nil) == CNN_OK)
        #expect(cnn_adaptive_avgpool2d_forward(0, 3, 4, 4, 1, 1, nil, nil) == CNN_OK)
        #expect(cnn_dropout_forward(0, 0.5, 1, nil, nil, nil) == CNN_OK)
        var loss: Float = 0
        #expect(cnn_cross_entropy_forward(0, 10, nil, nil, 0, 1, &loss, nil) == CNN_OK && loss == 0)
        #expect(out == [7, 7, 7, 7])
        // Negative sizes are invalid.
        #expect(cnn_relu_forward(-1, nil, nil) == CNN_ERR_INVALID_ARGUMENT)
        #expect(cnn_batchnorm2d_forward_inference(-1, 3, 5, nil, nil, nil, nil, nil, 1e-5, nil) == CNN_ERR_INVALID_ARGUMENT)
        #expect(cnn_softmax_forward(1, 0, nil, nil) == CNN_ERR_INVALID_ARGUMENT)
    }

    // MARK: activations

    @Test func reluAndLeakyReluForwardAndBackward() throws {
        var rng = LayersRNG(seed: 8)
        for n in [1, 15, 16, 17, 1000, 40_003] { // 40_003 spans three chunks
            let x = rng.floats(n), dy = rng.floats(n)
            try forEachISA { isa in
                var y = [Float](repeating: .nan, count: n)
                #expect(cnn_relu_forward(Int64(n), x, &y) == CNN_OK)
                #expect(y == x.map { max($0, 0) }, "\(isa) relu \(n)")
                var dx = [Float](repeating: .nan, count: n)
                #expect(cnn_relu_backward(Int64(n), y, dy, &dx) == CNN_OK)
                #expect(dx == (0..<n).map { y[$0] > 0 ? dy[$0] : 0 }, "\(isa) relu backward \(n)")
                #expect(cnn_leaky_relu_forward(Int64(n), 0.1, x, &y) == CNN_OK)
                #expect(y == x.map { $0 > 0 ? $0 : 0.1 * $0 }, "\(isa) leaky \(n)")
                #expect(cnn_leaky_relu_backward(Int64(n), 0.1, x, dy, &dx) == CNN_OK)
                #expect(dx == (0..<n).map { x[$0] > 0 ? dy[$0] : 0.1 * dy[$0] }, "\(isa) leaky backward \(n)")
            }
        }
        var nanIn: [Float] = [.nan, -1, 2]
        #expect(cnn_relu_forward(3, nanIn, &nanIn) == CNN_OK) // in place
        #expect(nanIn[0].isNaN && nanIn[1] == 0 && nanIn[2] == 2)
    }

    @Test func lrnForwardAndBackward() throws {
        var rng = LayersRNG(seed: 9)
        let (alpha, beta, k) = (Float(1e-4), Float(0.75), Float(2))
        // AlexNet's parameters, plus a large alpha and another beta so the window sums matter.
        for (N, C, HW, size, a, b) in [(2, 7, 6, 5, alpha, beta), (1, 4, 5, 3, Float(0.5), Float(0.6)),
                                       (1, 6, 3, 4, Float(2), beta)] {
            let x = rng.floats(N * C * HW, -2, 2), dy = rng.floats(N * C * HW)
            let ref = lrnRef(N: N, C: C, HW: HW, size: size, alpha: Double(a), beta: Double(b), k: Double(k), dbl(x))
            let g = numericGradient(dbl(x)) {
                dot(lrnRef(N: N, C: C, HW: HW, size: size, alpha: Double(a), beta: Double(b), k: Double(k), $0), dbl(dy))
            }
            try forEachISA { isa in
                var y = [Float](repeating: .nan, count: x.count), sc = y
                #expect(cnn_lrn_forward(Int64(N), Int64(C), Int64(HW), Int64(size), a, b, k, x, &y, &sc) == CNN_OK)
                expectClose(y, ref, tol: 16 * eps32, "\(isa) lrn size \(size)")
                var y2 = [Float](repeating: .nan, count: x.count)
                #expect(cnn_lrn_forward(Int64(N), Int64(C), Int64(HW), Int64(size), a, b, k, x, &y2, nil) == CNN_OK)
                #expect(y2 == y)
                var dx = [Float](repeating: .nan, count: x.count)
                #expect(cnn_lrn_backward(Int64(N), Int64(C), Int64(HW), Int64(size), a, b, k, x, y, sc, dy, &dx) == CNN_OK)
                expectClose(dx, g, tol: 1e-5, "\(isa) lrn backward size \(size)")
                var dx2 = [Float](repeating: .nan, count: x.count)
                #expect(cnn_lrn_backward(Int64(N), Int64(C), Int64(HW), Int64(size), a, b, k, x, y, nil, dy, &dx2) == CNN_OK)
                expectClose(dx2, g, tol: 1e-5, "\(isa) lrn backward, scale recomputed")
            }
        }
    }

    @Test func dropoutIsDeterministicAcrossThreadCountsAndKeepsTheRightRate() throws {
        let n = 200_000
        let x = [Float](repeating: 1.5, count: n)
        for p in [Float(0.1), 0.3, 0.5, 0.9] {
            var y1 = [Float](repeating: 0, count: n), y2 = y1
            var m1 = [UInt8](repeating: 9, count: n), m2 = m1
            cnn_set_num_threads(1)
            #expect(cnn_dropout_forward(Int64(n), p, 42, x, &y1, &m1) == CNN_OK)
            cnn_set_num_threads(2)
            #expect(cnn_dropout_forward(Int64(n), p, 42, x, &y2, &m2) == CNN_OK)
            cnn_set_num_threads(0)
            #expect(m1 == m2 && y1 == y2, "p \(p): same mask for 1 and 2 threads")
            let kept = m1.reduce(0) { $0 + Int($1) }
            let rate = Double(kept) / Double(n)
            let sigma = (Double(p) * (1 - Double(p)) / Double(n)).squareRoot()
            #expect(abs(rate - (1 - Double(p))) < 5 * sigma, "p \(p): kept \(rate)")
            let scaled = Float(1.5) * (1 / (1 - p))
            #expect((0..<n).allSatisfy { m1[$0] == 1 ? y1[$0] == scaled : (m1[$0] == 0 && y1[$0] == 0) })
            var m3 = m1, y3 = y1
            #expect(cnn_dropout_forward(Int64(n), p, 43, x, &y3, &m3) == CNN_OK)
            #expect(m3 != m1, "another seed, another mask")
            var dx = [Float](repeating: .nan, count: n)
            #expect(cnn_dropout_backward(Int64(n), p, m1, x, &dx) == CNN_OK)
            #expect(dx == y1)
        }
        var y = [Float](repeating: .nan, count: 100)
        var m = [UInt8](repeating: 0, count: 100)
        let x100 = Array(x.prefix(100))
        #expect(cnn_dropout_forward(100, 0, 1, x100, &y, &m) == CNN_OK)
        #expect(y == x100 && m.allSatisfy { $0 == 1 })
        #expect(cnn_dropout_forward(100, 1, 1, x100, &y, &m) == CNN_OK)
        #expect(y.allSatisfy { $0 == 0 } && m.allSatisfy { $0 == 0 })
        #expect(cnn_dropout_forward(100, -0.1, 1, x100, &y, &m) == CNN_ERR_INVALID_ARGUMENT)
        #expect(cnn_dropout_forward(100, 1.5, 1, x100, &y, &m) == CNN_ERR_INVALID_ARGUMENT)
    }

    // MARK: softmax and losses

    @Test func softmaxAndLogSoftmaxForwardAndBackward() throws {
        var rng = LayersRNG(seed: 10)
        for (rows, classes) in [(3, 10), (2, 1), (4, 37)] {
            let x = rng.floats(rows * classes, -30, 30), dy = rng.floats(rows * classes)
            for log in [false, true] {
                let ref = softmaxRef(rows: rows, classes: classes, dbl(x), log: log)
                let g = numericGradient(dbl(x), h: 1e-6) { dot(softmaxRef(rows: rows, classes: classes, $0, log: log), dbl(dy)) }
                try forEachISA { isa in
                    var y = [Float](repeating: .nan, count: x.count)
                    let st = log ? cnn_log_softmax_forward(Int64(rows), Int64(classes), x, &y)
                                 : cnn_softmax_forward(Int64(rows), Int64(classes), x, &y)
                    #expect(st == CNN_OK)
                    expectClose(y, ref, tol: 64 * eps32, "\(isa) log \(log) \(rows)x\(classes)")
                    var dx = [Float](repeating: .nan, count: x.count)
                    let bt = log ? cnn_log_softmax_backward(Int64(rows), Int64(classes), y, dy, &dx)
                                 : cnn_softmax_backward(Int64(rows), Int64(classes), y, dy, &dx)
                    #expect(bt == CNN_OK)
                    expectClose(dx, g, tol: 1e-5, "\(isa) log \(log) backward")
                }
            }
        }
    }

    @Test func crossEntropyForwardAndBackward() throws {
        var rng = LayersRNG(seed: 11)
        for (rows, classes) in [(4, 10), (1, 3), (5, 50)] {
            let x = rng.floats(rows * classes, -5, 5)
            let labels = (0..<rows).map { _ in Int32(rng.int(classes)) }
            for smoothing in [Float(0), 0.1] {
                for sum in [false, true] {
                    let ref = crossEntropyRef(rows: rows, classes: classes, dbl(x), labels, smoothing: Double(smoothing), sum: sum)
                    let g = numericGradient(dbl(x)) {
                        crossEntropyRef(rows: rows, classes: classes, $0, labels, smoothing: Double(smoothing), sum: sum)
                    }
                    try forEachISA { isa in
                        var loss: Float = .nan
                        var probs = [Float](repeating: .nan, count: x.count)
                        #expect(cnn_cross_entropy_forward(Int64(rows), Int64(classes), x, labels, smoothing,
                                                          sum ? 1 : 0, &loss, &probs) == CNN_OK)
                        expectClose([loss], [ref], tol: 64 * eps32, "\(isa) loss smoothing \(smoothing) sum \(sum)")
                        expectClose(probs, softmaxRef(rows: rows, classes: classes, dbl(x), log: false), tol: 16 * eps32, "\(isa) probs")
                        var dx = [Float](repeating: .nan, count: x.count)
                        #expect(cnn_cross_entropy_backward(Int64(rows), Int64(classes), probs, labels, smoothing,
                                                           sum ? 1 : 0, 2.0, &dx) == CNN_OK)
                        expectClose(dx, g.map { 2 * $0 }, tol: 1e-5, "\(isa) backward")
                    }
                }
            }
        }
        // A label out of range is rejected before anything is written.
        var loss: Float = 7
        var probs = [Float](repeating: 7, count: 6)
        for bad: Int32 in [3, -1] {
            #expect(cnn_cross_entropy_forward(2, 3, [1, 2, 3, 4, 5, 6], [0, bad], 0, 0, &loss, &probs) == CNN_ERR_INVALID_ARGUMENT)
            #expect(loss == 7 && probs.allSatisfy { $0 == 7 })
            #expect(cnn_cross_entropy_backward(2, 3, probs, [bad, 0], 0, 0, 1, &probs) == CNN_ERR_INVALID_ARGUMENT)
            #expect(probs.allSatisfy { $0 == 7 })
        }
    }

    @Test func mseForwardAndBackward() throws {
        var rng = LayersRNG(seed: 12)
        let n = 50_001
        let x = rng.floats(n), t = rng.floats(n)
        var ss = 0.0
        for i in 0..<n { ss += (Double(x[i]) - Double(t[i])) * (Double(x[i]) - Double(t[i])) }
        for sum in [false, true] {
            var loss: Float = .nan
            #expect(cnn_mse_forward(Int64(n), x, t, sum ? 1 : 0, &loss) == CNN_OK)
            expectClose([loss], [sum ? ss : ss / Double(n)], tol: 4 * eps32, "mse sum \(sum)")
            var dx = [Float](repeating: .nan, count: n)
            #expect(cnn_mse_backward(Int64(n), x, t, sum ? 1 : 0, 3, &dx) == CNN_OK)
            let div: Double = sum ? 1 : Double(n)
            let ref: [Double] = (0..<n).map { (i: Int) -> Double in 6 * (Double(x[i]) - Double(t[i])) / div }
            expectClose(dx, ref, tol: 4 * eps32, "mse backward sum \(sum)")
        }
        // Finite differences on a small case.
        let xs = rng.floats(7), ts = rng.floats(7)
        let g = numericGradient(dbl(xs)) { (v: [Double]) -> Double in
            var total = 0.0
            for i in 0..<7 {
                let d: Double = v[i] - Double(ts[i])
                total += d * d
            }
            return total / 7
        }
        var dx = [Float](repeating: 0, count: 7)
        #expect(cnn_mse_backward(7, xs, ts, 0, 1, &dx) == CNN_OK)
        expectClose(dx, g, tol: 1e-6, "mse finite differences")
    }

    // MARK: concat and elementwise

    @Test func concatAndSplitChannels() {
        var rng = LayersRNG(seed: 13)
        let (N, HW) = (3, 5)
        let channels: [Int64] = [2, 0, 3, 1]
        let parts = channels.map { rng.floats(N * Int($0) * HW) }
        let total = Int(channels.reduce(0, +))
        var y = [Float](repeating: .nan, count: N * total * HW)
        let st = parts[0].withUnsafeBufferPointer { p0 in
            parts[1].withUnsafeBufferPointer { p1 in
                parts[2].withUnsafeBufferPointer { p2 in
                    parts[3].withUnsafeBufferPointer { p3 in
                        let ptrs: [UnsafePointer<Float>?] = [p0.baseAddress, p1.baseAddress, p2.baseAddress, p3.baseAddress]
                        return cnn_concat_channels(Int64(N), Int64(HW), 4, channels, ptrs, &y)
                    }
                }
            }
        }
        #expect(st == CNN_OK)
        var expected = [Float]()
        for n in 0..<N {
            for (i, c) in channels.enumerated() { expected += parts[i][(n * Int(c) * HW)..<((n + 1) * Int(c) * HW)] }
        }
        #expect(y == expected)
        var o0 = [Float](repeating: .nan, count: N * 2 * HW), o1 = [Float]()
        var o2 = [Float](repeating: .nan, count: N * 3 * HW), o3 = [Float](repeating: .nan, count: N * 1 * HW)
        let st2 = o0.withUnsafeMutableBufferPointer { p0 in
            o1.withUnsafeMutableBufferPointer { p1 in
                o2.withUnsafeMutableBufferPointer { p2 in
                    o3.withUnsafeMutableBufferPointer { p3 in
                        let ptrs: [UnsafeMutablePointer<Float>?] = [p0.baseAddress, p1.baseAddress, p2.baseAddress, p3.baseAddress]
                        return cnn_split_channels(Int64(N), Int64(HW), 4, channels, y, ptrs)
                    }
                }
            }
        }
        #expect(st2 == CNN_OK)
        let outs = [o0, o1, o2, o3]
        #expect(outs == parts)
        #expect(cnn_concat_channels(1, 1, 1, [-1], nil, &y) == CNN_ERR_INVALID_ARGUMENT)
    }

    @Test func elementwiseOpsMatchReferenceOnEveryISA() throws {
        var rng = LayersRNG(seed: 14)
        for n in [1, 7, 16, 33, 1000, 40_001] {
            let a = rng.floats(n), b = rng.floats(n)
            try forEachISA { isa in
                var y = [Float](repeating: .nan, count: n)
                #expect(cnn_add(Int64(n), a, b, &y) == CNN_OK)
                #expect(y == (0..<n).map { a[$0] + b[$0] }, "\(isa) add \(n)")
                #expect(cnn_mul(Int64(n), a, b, &y) == CNN_OK)
                #expect(y == (0..<n).map { a[$0] * b[$0] }, "\(isa) mul \(n)")
                #expect(cnn_scale(Int64(n), 0.75, a, &y) == CNN_OK)
                #expect(y == a.map { 0.75 * $0 }, "\(isa) scale \(n)")
                var z = b
                #expect(cnn_axpy(Int64(n), -1.25, a, &z) == CNN_OK)
                // axpy may fuse the multiply-add: compare to the double result within one rounding.
                expectClose(z, (0..<n).map { Double(b[$0]) - 1.25 * Double(a[$0]) }, tol: 2 * eps32, "\(isa) axpy \(n)")
                let s = cnn_sum(Int64(n), a)
                let ref = a.reduce(0.0) { $0 + Double($1) }
                #expect(abs(s - ref) <= 1e-12 * Double(n), "\(isa) sum \(n)")
            }
        }
        #expect(cnn_add(-1, nil, nil, nil) == CNN_ERR_INVALID_ARGUMENT)
        #expect(cnn_add(0, nil, nil, nil) == CNN_OK)
        #expect(cnn_sum(0, nil) == 0)
    }
}

// MARK: - ISA variants with vector tails

/// Backward of average pooling in double: each output's gradient divided by its window's divisor,
/// added to every input cell of the window (the adjoint of ``PoolCase/avgRef(_:P:Q:)``).
private func avgBackwardRef(_ c: PoolCase, _ dy: [Double], P: Int, Q: Int) -> [Double] {
    var dx = [Double](repeating: 0, count: c.N * c.C * c.H * c.W)
    for plane in 0..<(c.N * c.C) {
        for oh in 0..<P {
            for ow in 0..<Q {
                let h0 = oh * c.sh - c.ph, w0 = ow * c.sw - c.pw
                let h1p = min(h0 + c.kh, c.H + c.ph), w1p = min(w0 + c.kw, c.W + c.pw)
                let hs = max(h0, 0), he = min(h1p, c.H), ws = max(w0, 0), we = min(w1p, c.W)
                guard hs < he && ws < we else { continue }
                let div = c.includePad ? (h1p - h0) * (w1p - w0) : (he - hs) * (we - ws)
                let v = dy[plane * P * Q + oh * Q + ow] / Double(div)
                for h in hs..<he { for w in ws..<we { dx[plane * c.H * c.W + h * c.W + w] += v } }
            }
        }
    }
    return dx
}

/// The per-ISA variants of the layer kernels (LRN, softmax family, cross-entropy, MSE, average and
/// global pooling, batch-norm backward) on lengths that are not multiples of the 16- and 8-lane
/// vectors (1, 7, 17, 33 and larger), against the float64 references and finite differences, and
/// bit-identical for 1 and 2 threads on every ISA.
///
/// Tolerances (relative to max(1, |reference|)): the AVX variants compute exp with a polynomial
/// within 0.7 * 2^-23 of exp, so softmax outputs stay within 16 Float epsilons and losses within 64,
/// as for the generic libm path; pooling and LRN reorder no float sum beyond what 16 epsilons cover.
@Suite(.serialized) struct LayerISAVariantTests {
    static let tails = [1, 7, 17, 33]

    @Test func lrnVariantsMatchReferenceOnVectorTails() throws {
        var rng = LayersRNG(seed: 21)
        for HW in Self.tails + [169] {
            for (C, size, a, b) in [(7, 5, Float(1e-4), Float(0.75)), (5, 3, Float(0.5), Float(0.6)), (6, 5, Float(2), Float(0.75))] {
                let N = 2, k = Float(2)
                let x = rng.floats(N * C * HW, -2, 2), dy = rng.floats(N * C * HW)
                let f = { (v: [Double]) in lrnRef(N: N, C: C, HW: HW, size: size, alpha: Double(a), beta: Double(b), k: Double(k), v) }
                let ref = f(dbl(x))
                let g = HW <= 33 ? numericGradient(dbl(x)) { dot(f($0), dbl(dy)) } : nil
                try forEachISA { isa in
                    var y = [Float](repeating: .nan, count: x.count), sc = y
                    #expect(cnn_lrn_forward(Int64(N), Int64(C), Int64(HW), Int64(size), a, b, k, x, &y, &sc) == CNN_OK)
                    expectClose(y, ref, tol: 16 * eps32, "\(isa) lrn HW \(HW) C \(C) beta \(b)")
                    guard let g else { return }
                    for saved in [true, false] {
                        var dx = [Float](repeating: .nan, count: x.count)
                        let st = sc.withUnsafeBufferPointer { scp in
                            cnn_lrn_backward(Int64(N), Int64(C), Int64(HW), Int64(size), a, b, k, x, y,
                                             saved ? scp.baseAddress : nil, dy, &dx)
                        }
                        #expect(st == CNN_OK)
                        expectClose(dx, g, tol: 1e-5, "\(isa) lrn backward HW \(HW) C \(C) saved scale \(saved)")
                    }
                }
            }
        }
    }

    @Test func softmaxFamilyVariantsMatchReferenceOnVectorTails() throws {
        var rng = LayersRNG(seed: 22)
        for classes in Self.tails + [1000] {
            let rows = 3
            // A wide range puts some exps below expf's normal range (x - max < -87).
            let x = rng.floats(rows * classes, -60, 60), dy = rng.floats(rows * classes)
            for log in [false, true] {
                let ref = softmaxRef(rows: rows, classes: classes, dbl(x), log: log)
                let g = classes <= 33 ? numericGradient(dbl(x), h: 1e-6) { dot(softmaxRef(rows: rows, classes: classes, $0, log: log), dbl(dy)) } : nil
                try forEachISA { isa in
                    var y = [Float](repeating: .nan, count: x.count)
                    #expect((log ? cnn_log_softmax_forward(Int64(rows), Int64(classes), x, &y)
                                 : cnn_softmax_forward(Int64(rows), Int64(classes), x, &y)) == CNN_OK)
                    expectClose(y, ref, tol: 64 * eps32, "\(isa) log \(log) classes \(classes)")
                    var dx = [Float](repeating: .nan, count: x.count)
                    #expect((log ? cnn_log_softmax_backward(Int64(rows), Int64(classes), y, dy, &dx)
                                 : cnn_softmax_backward(Int64(rows), Int64(classes), y, dy, &dx)) == CNN_OK)
                    if let g {
                        expectClose(dx, g, tol: 1e-5, "\(isa) log \(log) backward classes \(classes)")
                    } else { // the analytic backward in double from the kernel's own output
                        var want = [Double](repeating: 0, count: x.count)
                        for r in 0..<rows {
                            let range = (r * classes)..<((r + 1) * classes)
                            let s = range.reduce(0.0) { $0 + Double(dy[$1]) * (log ? 1 : Double(y[$1])) }
                            for j in range { want[j] = log ? Double(dy[j]) - exp(Double(y[j])) * s : Double(y[j]) * (Double(dy[j]) - s) }
                        }
                        expectClose(dx, want, tol: 16 * eps32, "\(isa) log \(log) backward classes \(classes)")
                    }
                }
            }
        }
    }

    /// Elementwise relative error of softmax probabilities (here x - max is at most 8, so its own
    /// rounding costs at most 4 epsilons): a few epsilons on every ISA, which a polynomial exp off
    /// by ten epsilons would fail.
    @Test func softmaxVariantsAreAccurateElementwise() throws {
        var rng = LayersRNG(seed: 29)
        for classes in Self.tails + [1000] {
            let rows = 3
            let x = rng.floats(rows * classes, -4, 4)
            let ref = softmaxRef(rows: rows, classes: classes, dbl(x), log: false)
            let labels = (0..<rows).map { _ in Int32(rng.int(classes)) }
            try forEachISA { isa in
                var y = [Float](repeating: .nan, count: x.count), probs = y
                var loss: Float = 0
                #expect(cnn_softmax_forward(Int64(rows), Int64(classes), x, &y) == CNN_OK)
                #expect(cnn_cross_entropy_forward(Int64(rows), Int64(classes), x, labels, 0, 0, &loss, &probs) == CNN_OK)
                for (name, out) in [("softmax", y), ("cross-entropy probs", probs)] {
                    let worst = (0..<x.count).map { abs(Double(out[$0]) - ref[$0]) / ref[$0] }.max()!
                    #expect(worst <= 8 * eps32, "\(isa) \(name) classes \(classes): relative error \(worst / eps32) epsilons")
                }
            }
        }
    }

    @Test func crossEntropyVariantsMatchReferenceOnVectorTails() throws {
        var rng = LayersRNG(seed: 23)
        for classes in Self.tails + [1000] {
            let rows = 4
            let x = rng.floats(rows * classes, -8, 8)
            let labels = (0..<rows).map { _ in Int32(rng.int(classes)) }
            let probsRef = softmaxRef(rows: rows, classes: classes, dbl(x), log: false)
            for smoothing in [Float(0), 0.1] {
                for sum in [false, true] {
                    let ref = crossEntropyRef(rows: rows, classes: classes, dbl(x), labels, smoothing: Double(smoothing), sum: sum)
                    // The gradient in closed form: scale * (softmax - target).
                    let scale = 2.0 / (sum ? 1 : Double(rows))
                    var g = [Double](repeating: 0, count: x.count)
                    for r in 0..<rows {
                        for j in 0..<classes {
                            let t = (j == Int(labels[r]) ? 1 - Double(smoothing) : 0) + Double(smoothing) / Double(classes)
                            g[r * classes + j] = scale * (probsRef[r * classes + j] - t)
                        }
                    }
                    try forEachISA { isa in
                        var loss: Float = .nan
                        var probs = [Float](repeating: .nan, count: x.count)
                        #expect(cnn_cross_entropy_forward(Int64(rows), Int64(classes), x, labels, smoothing, sum ? 1 : 0, &loss, &probs) == CNN_OK)
                        expectClose([loss], [ref], tol: 64 * eps32, "\(isa) loss classes \(classes) smoothing \(smoothing) sum \(sum)")
                        expectClose(probs, probsRef, tol: 16 * eps32, "\(isa) probs classes \(classes)")
                        var lossOnly: Float = .nan
                        #expect(cnn_cross_entropy_forward(Int64(rows), Int64(classes), x, labels, smoothing, sum ? 1 : 0, &lossOnly, nil) == CNN_OK)
                        #expect(lossOnly == loss, "\(isa) loss without probabilities")
                        var dx = [Float](repeating: .nan, count: x.count)
                        #expect(cnn_cross_entropy_backward(Int64(rows), Int64(classes), probs, labels, smoothing, sum ? 1 : 0, 2, &dx) == CNN_OK)
                        expectClose(dx, g, tol: 16 * eps32, "\(isa) backward classes \(classes)")
                    }
                }
            }
        }
    }

    @Test func mseVariantsMatchReferenceOnVectorTails() throws {
        var rng = LayersRNG(seed: 24)
        for n in Self.tails + [50_001] {
            let x = rng.floats(n), t = rng.floats(n)
            var ss = 0.0
            for i in 0..<n { ss += (Double(x[i]) - Double(t[i])) * (Double(x[i]) - Double(t[i])) }
            try forEachISA { isa in
                for sum in [false, true] {
                    var loss: Float = .nan
                    #expect(cnn_mse_forward(Int64(n), x, t, sum ? 1 : 0, &loss) == CNN_OK)
                    expectClose([loss], [sum ? ss : ss / Double(n)], tol: 4 * eps32, "\(isa) mse \(n) sum \(sum)")
                    var dx = [Float](repeating: .nan, count: n)
                    #expect(cnn_mse_backward(Int64(n), x, t, sum ? 1 : 0, 3, &dx) == CNN_OK)
                    let div = sum ? 1 : Double(n)
                    expectClose(dx, (0..<n).map { 6 * (Double(x[$0]) - Double(t[$0])) / div }, tol: 4 * eps32, "\(isa) mse backward \(n)")
                }
            }
        }
    }

    /// Stride 1 (GoogLeNet's 3x3/1 pad 1 inception pool), stride 2 and an asymmetric window, on
    /// widths 1, 7, 17, 33, both divisor conventions and ceil mode; backward against the adjoint
    /// in double and, on the small planes, finite differences.
    @Test func avgPoolVariantsMatchReferenceOnVectorTails() throws {
        var rng = LayersRNG(seed: 25)
        for W in Self.tails {
            for (kh, kw, sh, sw, ph, pw) in [(3, 3, 1, 1, 1, 1), (2, 2, 2, 2, 0, 0), (3, 3, 2, 2, 1, 1), (2, 5, 1, 1, 1, 2)] {
                for includePad in [true, false] {
                    for ceil in [false, true] {
                        let c = PoolCase(N: 1, C: 2, H: 1 + W % 9 + kh, W: W, kh: kh, kw: kw, sh: sh, sw: sw, ph: ph, pw: pw,
                                         ceil: ceil, includePad: includePad)
                        guard let (P, Q) = c.outputSize() else { continue }
                        let x = rng.floats(c.N * c.C * c.H * c.W)
                        let yRef = c.avgRef(dbl(x), P: P, Q: Q)
                        let dy = rng.floats(yRef.count)
                        let dxRef = avgBackwardRef(c, dbl(dy), P: P, Q: Q)
                        let g = W <= 7 ? numericGradient(dbl(x)) { dot(c.avgRef($0, P: P, Q: Q), dbl(dy)) } : nil
                        try forEachISA { isa in
                            var s = c.shape
                            var y = [Float](repeating: .nan, count: yRef.count)
                            #expect(cnn_avgpool2d_forward(&s, x, &y) == CNN_OK)
                            expectClose(y, yRef, tol: 16 * eps32, "\(isa) \(c)")
                            var dx = [Float](repeating: .nan, count: x.count)
                            #expect(cnn_avgpool2d_backward(&s, dy, &dx) == CNN_OK)
                            expectClose(dx, dxRef, tol: 16 * eps32, "\(isa) \(c) backward")
                            if let g { expectClose(dx, g, tol: 1e-6, "\(isa) \(c) finite differences") }
                        }
                    }
                }
            }
        }
    }

    /// Global average pooling (adaptive to 1x1: GoogLeNet's 7x7 head) on planes of 1, 7, 17, 33, 49
    /// and 3025 cells.
    @Test func globalAvgPoolVariantsMatchReferenceOnVectorTails() throws {
        var rng = LayersRNG(seed: 26)
        for (H, W) in [(1, 1), (1, 7), (17, 1), (3, 11), (7, 7), (55, 55)] {
            let (N, C) = (2, 3)
            let x = rng.floats(N * C * H * W), dy = rng.floats(N * C)
            let yRef = adaptiveRef(N: N, C: C, H: H, W: W, oH: 1, oW: 1, dbl(x))
            let dxRef = (0..<x.count).map { Double(dy[$0 / (H * W)]) / Double(H * W) }
            try forEachISA { isa in
                var y = [Float](repeating: .nan, count: N * C)
                #expect(cnn_adaptive_avgpool2d_forward(Int64(N), Int64(C), Int64(H), Int64(W), 1, 1, x, &y) == CNN_OK)
                expectClose(y, yRef, tol: 16 * eps32, "\(isa) global \(H)x\(W)")
                var dx = [Float](repeating: .nan, count: x.count)
                #expect(cnn_adaptive_avgpool2d_backward(Int64(N), Int64(C), Int64(H), Int64(W), 1, 1, dy, &dx) == CNN_OK)
                expectClose(dx, dxRef, tol: 2 * eps32, "\(isa) global backward \(H)x\(W)")
            }
        }
    }

    /// Every kernel of this suite gives the same bits with 1 and 2 threads on every ISA (reductions
    /// are per row, plane or fixed-size chunk and combined in a fixed order).
    @Test func variantsDoNotDependOnTheThreadCount() throws {
        var rng = LayersRNG(seed: 28)
        let (N, C, H, W) = (2, 6, 9, 17)
        let n = N * C * H * W
        let x = rng.floats(n), dy = rng.floats(n), t = rng.floats(70_001), u = rng.floats(70_001)
        let labels = (0..<(N * C * H)).map { _ in Int32(rng.int(W)) }
        let gamma = rng.floats(C, 0.5, 1.5), beta = rng.floats(C)
        func runAll() -> [[Float]] {
            var out = [[Float]]()
            var y = [Float](repeating: 0, count: n), y2 = y, sc = y
            _ = cnn_lrn_forward(Int64(N), Int64(C), Int64(H * W), 5, 1e-4, 0.75, 2, x, &y, &sc)
            _ = cnn_lrn_backward(Int64(N), Int64(C), Int64(H * W), 5, 1e-4, 0.75, 2, x, y, nil, dy, &y2)
            out += [y, y2]
            let rows = Int64(N * C * H), cls = Int64(W)
            _ = cnn_softmax_forward(rows, cls, x, &y); _ = cnn_softmax_backward(rows, cls, y, dy, &y2); out += [y, y2]
            _ = cnn_log_softmax_forward(rows, cls, x, &y); _ = cnn_log_softmax_backward(rows, cls, y, dy, &y2); out += [y, y2]
            var loss: Float = 0
            _ = cnn_cross_entropy_forward(rows, cls, x, labels, 0.1, 0, &loss, &y)
            _ = cnn_cross_entropy_backward(rows, cls, y, labels, 0.1, 0, 1, &y2)
            out += [[loss], y, y2]
            _ = cnn_mse_forward(Int64(t.count), t, u, 0, &loss)
            out.append([loss])
            var s = PoolCase(N: N, C: C, H: H, W: W, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1, includePad: false).shape
            _ = cnn_avgpool2d_forward(&s, x, &y); _ = cnn_avgpool2d_backward(&s, dy, &y2); out += [y, y2]
            var gp = [Float](repeating: 0, count: N * C)
            _ = cnn_adaptive_avgpool2d_forward(Int64(N), Int64(C), Int64(H), Int64(W), 1, 1, x, &gp); out.append(gp)
            var sm = [Float](repeating: 0, count: C), si = sm, dg = sm, db = sm
            _ = cnn_batchnorm2d_forward_train(Int64(N), Int64(C), Int64(H * W), x, gamma, beta, 1e-5, 0.1, nil, nil, &sm, &si, &y)
            _ = cnn_batchnorm2d_backward(Int64(N), Int64(C), Int64(H * W), x, dy, gamma, sm, si, &y2, &dg, &db)
            out += [y, y2, dg, db]
            return out
        }
        defer { cnn_set_num_threads(0) }
        try forEachISA { isa in
            cnn_set_num_threads(1)
            let one = runAll()
            cnn_set_num_threads(2)
            let two = runAll()
            #expect(one == two, "\(isa): 1 and 2 threads differ")
        }
    }
}
