import CNNKernels

/// Synchronised batch norm, PyTorch's `SyncBatchNorm`: in training, every rank of a
/// ``Communicator`` normalises with the statistics of the *global* batch (the union of the ranks'
/// local batches) instead of its own, and the backward pass reduces the two per-channel gradient
/// sums the input gradient depends on. N ranks with local batch B then compute what one process
/// computes with batch N·B (up to float rounding), which matters when the local batch is small.
///
/// Forward (`torch.batch_norm_stats`, `all_gather`, `batch_norm_gather_stats_with_counts`): each
/// rank computes its per-channel count, mean and sum of squared deviations in double; these are
/// gathered from every rank and combined in rank order with Chan, Golub and LeVeque's pairwise
/// formula (stable, and the same bits on every rank), giving the global mean and biased variance;
/// the running statistics are updated with them (the variance unbiased with the global count).
///
/// Backward (`batch_norm_backward_reduce`, `all_reduce`, `batch_norm_backward_elemt`): with
/// xhat = (x - mean) · invstd over the global batch of M values per channel,
/// `dx = γ·invstd·(dy − Σdy/M − xhat·Σ(dy·xhat)/M)` where the two sums run over every rank; they
/// are allreduced in one message of 2C doubles. The weight and bias gradients stay local (Σdy·xhat
/// and Σdy over this rank's values); the data-parallel gradient average combines them.
///
/// Each rank's contribution to the reduced sums is weighted by its local batch size and the result
/// divided by it: the trainer's loss on a rank is the mean over its local batch and the gradients
/// are averaged weighted by examples (see ``Trainer``), so a rank's `dy` carries the factor
/// 1/B_r; the weighting makes ranks with unequal local batches (a short last global batch) exact
/// too. With equal local batches it is PyTorch's plain sum.
extension Functional {
    /// Batch normalisation in training mode with statistics over every rank of `communicator`
    /// (a collective: every rank must call it, in the same order, for the same layer).
    ///
    /// - Parameters:
    ///   - x: `[N, C, H, W]` or `[N, C]`; N may differ between ranks, and may be 0.
    ///   - weight: the per-channel scale γ, `[C]`.
    ///   - bias: the per-channel shift β, `[C]`.
    ///   - runningMean: `[C]`, updated with the global batch mean and `momentum`.
    ///   - runningVariance: `[C]`, updated with the global batch variance (unbiased) and `momentum`.
    ///   - momentum: the running statistics' update factor, as PyTorch's.
    ///   - epsilon: added to the variance before the square root.
    ///   - communicator: the ranks whose batches form the global batch.
    /// - Returns: the normalised, scaled and shifted input, recorded for the backward pass.
    /// - Throws: ``CNNError/shapeMismatch(_:)`` for shapes that do not fit;
    ///   ``CNNError/invalidArgument(_:)`` when the global batch has at most one value per channel;
    ///   the communicator's errors.
    public static func synchronizedBatchNorm(_ x: Variable, weight: Variable, bias: Variable, runningMean: Buffer,
                                             runningVariance: Buffer, momentum: Float = 0.1, epsilon: Float = 1e-5,
                                             communicator: any Communicator) throws -> Variable {
        let xv = x.value
        guard xv.rank == 4 || xv.rank == 2 else {
            throw CNNError.shapeMismatch("synchronizedBatchNorm: input must be [N, C, H, W] or [N, C], got \(xv.shape)")
        }
        let n = xv.shape[0], c = xv.shape[1], hw = xv.rank == 4 ? xv.shape[2] * xv.shape[3] : 1
        guard weight.shape == [c], bias.shape == [c], runningMean.value.shape == [c], runningVariance.value.shape == [c] else {
            throw CNNError.shapeMismatch("synchronizedBatchNorm: input \(xv.shape) has \(c) channels, but the layer has \(weight.shape.first ?? 0)")
        }
        // Local statistics, gathered as [count, mean (C), m2 (C)] per rank.
        var local = [Double](repeating: 0, count: 1 + 2 * c)
        local[0] = Double(n * hw)
        try local.withUnsafeMutableBufferPointer { buf in
            try check(cnn_batchnorm2d_moments(Int64(n), Int64(c), Int64(hw), xv.basePointer, buf.baseAddress! + 1,
                                              buf.baseAddress! + 1 + c), "synchronizedBatchNorm statistics on \(xv.shape)")
        }
        let parts = try communicator.allGather(local)
        // Chan et al.: merging (n_a, mean_a, M2_a) with (n_b, mean_b, M2_b), δ = mean_b − mean_a,
        // mean = mean_a + δ·n_b/n, M2 = M2_a + M2_b + δ²·n_a·n_b/n.
        var count = 0.0
        var mean = [Double](repeating: 0, count: c), m2 = [Double](repeating: 0, count: c)
        for part in parts where part[0] > 0 {
            let nb = part[0], total = count + nb
            for ch in 0..<c {
                let delta = part[1 + ch] - mean[ch]
                mean[ch] += delta * nb / total
                m2[ch] += part[1 + c + ch] + delta * delta * count * nb / total
            }
            count = total
        }
        guard count > 1 else {
            throw CNNError.invalidArgument("synchronizedBatchNorm: training needs more than one value per channel over all \(communicator.size) ranks, got \(Int(count)) (local input \(xv.shape))")
        }
        let saveMean = try Tensor(shape: [c], scalars: mean.map { Float($0) })
        let saveInvstd = try Tensor(shape: [c], scalars: m2.map { Float(1 / ($0 / count + Double(epsilon)).squareRoot()) })
        // The running statistics as the training kernel updates them (in double, variance unbiased).
        runningMean.value.makeUnique()
        runningVariance.value.makeUnique()
        let rm = runningMean.value.basePointer, rv = runningVariance.value.basePointer
        let mom = Double(momentum)
        for ch in 0..<c {
            rm[ch] = Float((1 - mom) * Double(rm[ch]) + mom * mean[ch])
            rv[ch] = Float((1 - mom) * Double(rv[ch]) + mom * (m2[ch] / count) * count / (count - 1))
        }
        let y = try Tensor(uninitializedShape: xv.shape)
        try check(cnn_batchnorm2d_normalize(Int64(n), Int64(c), Int64(hw), xv.basePointer, weight.value.basePointer, bias.value.basePointer,
                                            saveMean.basePointer, saveInvstd.basePointer, y.basePointer),
                  "synchronizedBatchNorm on \(xv.shape)")
        let gamma = weight.value
        return Variable.result(y, operation: "synchronizedBatchNorm", inputs: [x, weight, bias]) { dy in
            // [Σdy (C), Σdy·(x − mean) (C)] over this rank's values.
            var sums = [Double](repeating: 0, count: 2 * c)
            try sums.withUnsafeMutableBufferPointer { buf in
                try check(cnn_batchnorm2d_backward_reduce(Int64(n), Int64(c), Int64(hw), xv.basePointer, dy.basePointer, saveMean.basePointer,
                                                          buf.baseAddress!, buf.baseAddress! + c), "synchronizedBatchNorm backward")
            }
            let invstd = saveInvstd.scalars
            let dgamma = try Tensor(shape: [c], scalars: (0..<c).map { Float(sums[c + $0] * Double(invstd[$0])) })
            let dbeta = try Tensor(shape: [c], scalars: sums[0..<c].map { Float($0) })
            // Weighted by the local batch (see the type's notes), summed over the ranks, unweighted.
            let weightOfRank = Double(n)
            for i in sums.indices { sums[i] *= weightOfRank }
            try sums.withUnsafeMutableBufferPointer { try communicator.allReduceSum($0) }
            let dx = try Tensor(uninitializedShape: xv.shape)
            if n > 0 {
                for i in sums.indices { sums[i] /= weightOfRank }
                try sums.withUnsafeBufferPointer { buf in
                    try check(cnn_batchnorm2d_backward_elemt(Int64(n), Int64(c), Int64(hw), xv.basePointer, dy.basePointer, gamma.basePointer,
                                                             saveMean.basePointer, saveInvstd.basePointer, buf.baseAddress!,
                                                             buf.baseAddress! + c, count, dx.basePointer), "synchronizedBatchNorm backward")
                }
            }
            return [dx, dgamma, dbeta]
        }
    }
}

extension Module {
    /// Makes every ``BatchNorm2d`` in the tree normalise with statistics synchronised over the
    /// ranks of `communicator` while training (PyTorch's `SyncBatchNorm.convert_sync_batchnorm`),
    /// or, with `nil`, with each rank's own batch again. Names, parameters and buffers are
    /// unchanged, so weight files and checkpoints are the same either way.
    ///
    /// Every rank must convert its model the same way. Evaluation (running statistics) is
    /// unaffected, and a group of one rank normalises as plain batch norm.
    ///
    /// - Returns: the number of batch norm layers set.
    @discardableResult
    public func convertToSynchronizedBatchNorm(communicator: (any Communicator)?) -> Int {
        var count = 0
        for (_, m) in namedModules() {
            guard let bn = m as? BatchNorm2d else { continue }
            bn.synchronization = communicator
            count += 1
        }
        return count
    }

    /// Whether some batch norm layer of the tree synchronises its statistics over more than one rank.
    var hasSynchronizedBatchNorm: Bool {
        namedModules().contains { (($0.1 as? BatchNorm2d)?.synchronization?.size ?? 1) > 1 }
    }
}
