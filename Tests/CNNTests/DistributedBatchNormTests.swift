import Foundation
import Testing
@testable import CNN

/// Synchronised batch norm on the in-process communicator (threads as ranks): N ranks with local
/// batches that make up one global batch compute what one process computes with that batch —
/// outputs, running statistics, gradients and, through the trainer, the weights after several
/// steps — and the backward pass matches finite differences of the global loss.
@Suite(.serialized) struct DistributedBatchNormTests {
    /// Outputs, statistics and gradients of one layer: the global statistics are combined from the
    /// ranks' (count, mean, M2) in double, so they differ from the one-process sums only by
    /// rounding. Measured: at most 2.4e-7 (dγ, a sum over 7-8 images), on values O(1); bound 2e-6.
    static let layerTolerance: Float = 2e-6
    /// Weights and running statistics after two epochs (14 steps) of training. Measured: 1.2e-7
    /// (2 ranks) and 3.6e-7 (3 ranks, uneven last batch); bound 4e-6. Per-rank statistics differ
    /// by 0.06-0.1.
    static let trainingTolerance: Float = 4e-6

    /// Deterministic values in about [-2, 3): a shifted, scaled sine, so the channel means are far
    /// from 0 (exercising the shifted statistics).
    static func values(_ count: Int, seed: Int) -> [Float] {
        (0..<count).map { Float(sin(Double($0 * 7 + seed * 13) * 0.37)) * 2 + 0.5 + Float(($0 + seed) % 3) * 0.1 }
    }

    static func layer(channels: Int) throws -> BatchNorm2d {
        let bn = try BatchNorm2d(features: channels, momentum: 0.3)
        bn.weight.value = try Tensor(shape: [channels], scalars: (0..<channels).map { 0.5 + Float($0) * 0.25 })
        bn.bias.value = try Tensor(shape: [channels], scalars: (0..<channels).map { Float($0) * 0.1 - 0.2 })
        bn.runningMean.value = try Tensor(shape: [channels], scalars: (0..<channels).map { Float($0) * 0.05 })
        return bn
    }

    static func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
        #expect(a.count == b.count)
        return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    /// One training forward and backward of a batch norm layer over a global batch of `globalBatch`
    /// images `[C=3, 4, 5]` with loss `Σ w·y / B` (the mean over the batch, as a classifier loss
    /// is), once in one process and once split over `ranks` ranks (each with the mean over its own
    /// part, gradients averaged weighted by examples as the trainer does).
    @Test(arguments: [(2, 8), (3, 7), (4, 6)])
    func oneLayerMatchesTheGlobalBatch(ranks: Int, globalBatch: Int) throws {
        let c = 3, item = c * 20
        // Later images are brighter, so the parts' statistics differ from the global ones.
        let xs = Self.values(globalBatch * item, seed: 1).enumerated().map { $1 + Float($0 / item) * 0.5 }
        let ws = Self.values(globalBatch * item, seed: 2)
        // One process.
        let bn = try Self.layer(channels: c)
        let x = Variable(try Tensor(shape: [globalBatch, c, 4, 5], scalars: xs), requiresGradient: true)
        let y = try bn(x)
        try y.backward(seed: try Tensor(shape: y.shape, scalars: ws.map { $0 / Float(globalBatch) }))
        let reference = (y: y.value.scalars, dx: x.gradient!.scalars, dgamma: bn.weight.gradient!.scalars, dbeta: bn.bias.gradient!.scalars,
                         mean: bn.runningMean.value.scalars, variance: bn.runningVar.value.scalars)

        let results = try InProcessCommunicator.run(ranks: ranks) { comm in
            let part = try DataShard(rank: comm.rank, of: comm.size).part(of: 0..<globalBatch)
            let n = part.count
            let bn = try Self.layer(channels: c)
            #expect(bn.convertToSynchronizedBatchNorm(communicator: comm) == 1)
            let x = Variable(try Tensor(shape: [n, c, 4, 5], scalars: Array(xs[(part.lowerBound * item)..<(part.upperBound * item)])),
                             requiresGradient: true)
            let y = try bn(x)
            let w = ws[(part.lowerBound * item)..<(part.upperBound * item)].map { $0 / Float(n) }
            try y.backward(seed: try Tensor(shape: y.shape, scalars: w))
            let sync = GradientSynchronizer(communicator: comm, parameters: [bn.weight, bn.bias])
            _ = try sync.synchronize(examples: n, lossSum: 0, correct: 0)
            // The rank's input gradient carries its loss's 1/n instead of 1/B.
            let dx = x.gradient!.scalars.map { $0 * Float(n) / Float(globalBatch) }
            return (part, y.value.scalars, dx, bn.weight.gradient!.scalars, bn.bias.gradient!.scalars,
                    bn.runningMean.value.scalars, bn.runningVar.value.scalars)
        }
        for (part, y, dx, dgamma, dbeta, mean, variance) in results {
            let slice = (part.lowerBound * item)..<(part.upperBound * item)
            #expect(Self.maxDifference(y, Array(reference.y[slice])) <= Self.layerTolerance)
            #expect(Self.maxDifference(dx, Array(reference.dx[slice])) <= Self.layerTolerance)
            #expect(Self.maxDifference(dgamma, reference.dgamma) <= Self.layerTolerance)
            #expect(Self.maxDifference(dbeta, reference.dbeta) <= Self.layerTolerance)
            #expect(Self.maxDifference(mean, reference.mean) <= Self.layerTolerance)
            #expect(Self.maxDifference(variance, reference.variance) <= Self.layerTolerance)
            #expect(mean == results[0].5 && variance == results[0].6, "ranks must hold bit-identical running statistics")
        }

        // Per-rank statistics (plain batch norm on each part) give other outputs: the check can fail.
        let unsynchronized = try Self.layer(channels: c)
        let part0 = try DataShard(rank: 0, of: ranks).part(of: 0..<globalBatch)
        let y0 = try unsynchronized(Variable(try Tensor(shape: [part0.count, c, 4, 5], scalars: Array(xs[0..<(part0.upperBound * item)]))))
        #expect(Self.maxDifference(y0.value.scalars, Array(reference.y[0..<(part0.upperBound * item)])) > 100 * Self.layerTolerance)
    }

    /// The gradients of `L = Σ_r Σ w_r·y_r` (every rank's output through the shared statistics)
    /// against central differences (h = 0.01, float forward, loss summed in double): input
    /// elements on both ranks, and γ, β. Measured: worst relative difference 2.3e-4; bound 2e-3.
    @Test func backwardMatchesFiniteDifferences() throws {
        let c = 2, n = 3, item = c * 9
        let results = try InProcessCommunicator.run(ranks: 2) { comm -> [(analytic: Float, numeric: Float)] in
            let bn = try Self.layer(channels: c)
            bn.convertToSynchronizedBatchNorm(communicator: comm)
            var xs = Self.values(n * item, seed: 5 + comm.rank)
            let w = try Tensor(shape: [n, c, 3, 3], scalars: Self.values(n * item, seed: 9 + comm.rank))
            // The global loss, in double over the ranks.
            func loss() throws -> Double {
                let y = try bn(Variable(try Tensor(shape: [n, c, 3, 3], scalars: xs)))
                let local = zip(y.value.scalars, w.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                return try comm.allReduceSum([local])[0]
            }
            let x = Variable(try Tensor(shape: [n, c, 3, 3], scalars: xs), requiresGradient: true)
            try bn(x).backward(seed: w)
            let dx = x.gradient!.scalars
            // dγ and dβ of the global loss: the sum of the ranks' local gradients.
            let dgamma = try comm.allReduceSum(bn.weight.gradient!.scalars.map(Double.init))
            let dbeta = try comm.allReduceSum(bn.bias.gradient!.scalars.map(Double.init))
            let h: Float = 1e-2
            var pairs: [(Float, Float)] = []
            // Every rank perturbs the same positions in turn: (rank, index); both ranks run each loss.
            for owner in 0..<2 {
                for i in [0, 5, 13, 26, 40, 53] {
                    let saved = xs[i]
                    if comm.rank == owner { xs[i] = saved + h }
                    let plus = try loss()
                    if comm.rank == owner { xs[i] = saved - h }
                    let minus = try loss()
                    xs[i] = saved
                    if comm.rank == owner { pairs.append((dx[i], Float((plus - minus) / Double(2 * h)))) }
                }
            }
            for ch in 0..<c {
                for (parameter, analytic) in [(bn.weight, dgamma[ch]), (bn.bias, dbeta[ch])] {
                    let saved = parameter.value.scalars
                    var p = saved; p[ch] += h
                    parameter.value = try Tensor(shape: [c], scalars: p)
                    let plus = try loss()
                    p[ch] = saved[ch] - h
                    parameter.value = try Tensor(shape: [c], scalars: p)
                    let minus = try loss()
                    parameter.value = try Tensor(shape: [c], scalars: saved)
                    pairs.append((Float(analytic), Float((plus - minus) / Double(2 * h))))
                }
            }
            return pairs
        }
        var worst: Float = 0
        for pairs in results {
            #expect(pairs.count == 6 + 4)
            for (analytic, numeric) in pairs {
                worst = max(worst, abs(analytic - numeric) / max(1, abs(numeric)))
            }
        }
        #expect(worst <= 2e-3, "worst relative difference to finite differences \(worst)")
        // The input gradients are not those of per-rank batch norm: some are far from zero.
        #expect(results.flatMap { $0.prefix(12) }.contains { abs($0.numeric) > 0.05 })
    }

    /// A small convolutional network with batch norm.
    static func network(seed: UInt64) throws -> Module {
        try DistributedTests.generatorLock.withLock { _ in
            GlobalGenerator.seed(seed)
            return Sequential([try Conv2d(inputChannels: 1, outputChannels: 4, kernelSize: (5, 5), stride: (2, 2)),
                               try BatchNorm2d(features: 4), ReLU(), try MaxPool2d(kernelSize: 2), Flatten(),
                               try Linear(inputFeatures: 4 * 6 * 6, outputFeatures: 10)])
        }
    }

    static func trainer(_ data: (train: LabeledDataset, test: LabeledDataset), communicator: (any Communicator)?,
                        synchronized: Bool = true, batchSize: Int = 32) throws -> Trainer {
        let model = try network(seed: 100 + UInt64(communicator?.rank ?? 0))
        if synchronized, let communicator { model.convertToSynchronizedBatchNorm(communicator: communicator) }
        let optimizer = try SGD(parameters: model.namedParameters(), learningRate: 0.05, momentum: 0.9, weightDecay: 1e-4,
                                weightDecayExclusion: .biasesAndNormalization)
        let norm = ChannelNormalization.mnist.pair
        return try Trainer(model: model, optimizer: optimizer,
                           trainLoader: try DataLoader(dataset: data.train, batchSize: batchSize, shuffle: true, seed: 3, normalization: norm),
                           testLoader: try DataLoader(dataset: data.test, batchSize: 40, shuffle: false, normalization: norm),
                           communicator: communicator)
    }

    static func state(_ model: Module) -> [Float] {
        model.stateDictionary().filter { !$0.0.hasSuffix("num_batches_tracked") }.flatMap { $0.1.scalars }
    }

    /// Two epochs of 200 images in global batches of 32 (six of 32 and one of 8: with 3 ranks the
    /// last one splits 3, 3, 2): weights and running statistics as one process with the global batch.
    @Test(arguments: [2, 3])
    func trainingMatchesOneProcessWithTheGlobalBatch(ranks: Int) throws {
        try ComputeRuntime.setThreadCount(1)
        defer { try? ComputeRuntime.setThreadCount(nil) }
        let data = try DistributedTests.data()
        let single = try Self.trainer(data, communicator: nil)
        _ = try single.trainEpoch()
        _ = try single.trainEpoch()
        let reference = Self.state(single.model)

        let results = try InProcessCommunicator.run(ranks: ranks) { comm in
            let trainer = try Self.trainer(data, communicator: comm)
            _ = try trainer.trainEpoch()
            _ = try trainer.trainEpoch()
            return (Self.state(trainer.model), trainer.history)
        }
        for (state, history) in results {
            #expect(state == results[0].0, "ranks must hold bit-identical weights and statistics")
            let d = Self.maxDifference(state, reference)
            #expect(d <= Self.trainingTolerance, "max difference \(d) to the 1-process run")
            for (a, b) in zip(history, single.history) {
                #expect(abs(a.trainLoss - b.trainLoss) < 1e-4 && abs(a.testLoss - b.testLoss) < 1e-4)
            }
        }
        // Per-rank statistics train another model.
        let unsynchronized = try InProcessCommunicator.run(ranks: ranks) { comm in
            let trainer = try Self.trainer(data, communicator: comm, synchronized: false)
            _ = try trainer.trainEpoch()
            _ = try trainer.trainEpoch()
            return Self.state(trainer.model)
        }
        #expect(Self.maxDifference(unsynchronized[0], reference) > 100 * Self.trainingTolerance)
    }

    /// A last global batch smaller than the number of ranks (65 images in batches of 32: the last
    /// has 1 image for 3 ranks) is skipped by every rank instead of leaving a rank out of a
    /// collective; the other batches train.
    @Test func aLastBatchSmallerThanTheRanksIsSkipped() throws {
        try ComputeRuntime.setThreadCount(1)
        defer { try? ComputeRuntime.setThreadCount(nil) }
        let data = try TrainingTests.subset(65, test: 10)
        let before = Self.state(try Self.network(seed: 100))
        let results = try InProcessCommunicator.run(ranks: 3, timeout: 30) { comm in
            let trainer = try Self.trainer(data, communicator: comm)
            var reported: [Int] = []
            _ = try trainer.trainEpoch { reported.append($0.batch) }
            return (Self.state(trainer.model), reported)
        }
        #expect(results.allSatisfy { $0.0 == results[0].0 })
        #expect(results[0].0 != before)
        // Only the two full batches were trained.
        #expect(results.allSatisfy { $0.1 == [1, 2] }, "\(results.map(\.1))")
    }

    @Test func allGatherDeliversEveryRankExactly() throws {
        let results = try InProcessCommunicator.run(ranks: 3) { comm in
            try comm.allGather([Double(comm.rank) + 0.1, -0.0, .pi * Double(comm.rank + 1)])
        }
        for rows in results {
            #expect(rows.count == 3)
            for r in 0..<3 { #expect(rows[r] == [Double(r) + 0.1, 0, .pi * Double(r + 1)]) }
        }
    }

    @Test func convertingBackAndEvaluationUseNoCollectives() throws {
        let results = try InProcessCommunicator.run(ranks: 2) { comm in
            let model = try Self.network(seed: 4)
            #expect(model.convertToSynchronizedBatchNorm(communicator: comm) == 1)
            model.eval()
            // Rank 1 evaluates a batch twice as large: no collective, so no mismatch.
            let y = try model(Variable(try Tensor(shape: [1 + comm.rank, 1, 28, 28], scalars: Self.values((1 + comm.rank) * 784, seed: 3))))
            model.train()
            #expect(model.convertToSynchronizedBatchNorm(communicator: nil) == 1)
            _ = try model(Variable(try Tensor(shape: [2 + comm.rank, 1, 28, 28], scalars: Self.values((2 + comm.rank) * 784, seed: 3))))
            return y.value.scalars.count
        }
        #expect(results == [10, 20])
    }
}
