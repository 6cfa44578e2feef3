/// The optimizers' element-wise rules run eight lanes at a time through `SIMD8<Float>`. The Swift
/// target is built without ISA flags and LLVM left the scalar loops mostly scalar (runtime alias
/// checks between four or five pointers defeat the loop vectoriser); explicit SIMD lowers to pairs
/// of SSE registers. (Square roots still come out as scalar `sqrtss`; divisions are vector.)
/// Measured with 10.6M parameters on the 2-core Zen 5 build machine while other jobs ran (load ≈ 7,
/// so only indicative), one thread: SGD with Nesterov momentum ≈ 25 → 11–20 ms a step, Adam
/// ≈ 100 → 43–67 ms, RMSprop centered with momentum ≈ 120 → 56 ms.
///
/// Every chunk, the last partial one included, goes through the same vector expression, so an
/// element's result never depends on where it falls; lanes past the end are zero-padded and never
/// stored.
typealias OptimizerVector = SIMD8<Float>

extension UnsafePointer where Pointee == Float {
    /// Lanes `i ..< i + n` (n ≤ 8), zero-padded.
    @inline(__always)
    func optimizerVector(at i: Int, count n: Int) -> OptimizerVector {
        if n == OptimizerVector.scalarCount {
            return UnsafeRawPointer(self + i).loadUnaligned(as: OptimizerVector.self)
        }
        var v = OptimizerVector()
        for k in 0..<n { v[k] = self[i + k] }
        return v
    }
}

extension UnsafeMutablePointer where Pointee == Float {
    /// Lanes `i ..< i + n` (n ≤ 8), zero-padded.
    @inline(__always)
    func optimizerVector(at i: Int, count n: Int) -> OptimizerVector {
        UnsafePointer(self).optimizerVector(at: i, count: n)
    }

    /// Stores the first `n` lanes of `v` at `i`.
    @inline(__always)
    func setOptimizerVector(_ v: OptimizerVector, at i: Int, count n: Int) {
        if n == OptimizerVector.scalarCount {
            UnsafeMutableRawPointer(self + i).storeBytes(of: v, as: OptimizerVector.self)
        } else {
            for k in 0..<n { self[i + k] = v[k] }
        }
    }
}

/// Calls `body(i, n)` for consecutive chunks of `n` ≤ 8 elements covering `0 ..< count`.
@inline(__always)
func forEachOptimizerChunk(_ count: Int, _ body: (_ start: Int, _ lanes: Int) -> Void) {
    var i = 0
    while i < count {
        let n = Swift.min(OptimizerVector.scalarCount, count - i)
        body(i, n)
        i += n
    }
}
