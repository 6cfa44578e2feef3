import CNNKernels

extension Tensor {
    /// Matrix product `self * other` of rank-2 tensors on the package GEMM, optionally with either
    /// operand transposed: `[m, k] x [k, n] -> [m, n]`.
    ///
    /// - Throws: ``CNNError/shapeMismatch(_:)`` naming both shapes when they do not fit.
    public func matmul(_ other: Tensor, transposeSelf: Bool = false, transposeOther: Bool = false) throws -> Tensor {
        guard rank == 2, other.rank == 2 else {
            throw CNNError.shapeMismatch("matmul: needs rank-2 tensors, got \(shape) and \(other.shape)")
        }
        let m = transposeSelf ? shape[1] : shape[0], k = transposeSelf ? shape[0] : shape[1]
        let k2 = transposeOther ? other.shape[1] : other.shape[0], n = transposeOther ? other.shape[0] : other.shape[1]
        guard k == k2 else {
            throw CNNError.shapeMismatch("matmul: inner dimensions differ: \(shape)\(transposeSelf ? "ᵀ" : "") x \(other.shape)\(transposeOther ? "ᵀ" : "")")
        }
        let out = try Tensor(uninitializedShape: [m, n])
        let status = cnn_sgemm(transposeSelf ? CNN_TRANS : CNN_NO_TRANS, transposeOther ? CNN_TRANS : CNN_NO_TRANS,
                               m, n, k, 1, basePointer, shape[1], other.basePointer, other.shape[1],
                               0, out.basePointer, n, nil)
        guard status == CNN_OK else { throw CNNError.outOfMemory("matmul: GEMM of \(m)x\(k) by \(k)x\(n) failed (\(status))") }
        return out
    }
}
