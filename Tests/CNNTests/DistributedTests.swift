import Foundation
import Synchronization
import Testing
@testable import CNN

/// Data-parallel training on the in-process communicator (threads as ranks): N ranks step as one
/// process with the whole global batch would, failures stop every rank, resume across rank counts.
@Suite(.serialized) struct DistributedTests {
    /// Weights of N-rank and 1-process runs may differ by float rounding: the N-rank gradient is
    /// `(Σ_r B_r · mean_r) / B` rather than one mean over the batch, and convolution backward sums
    /// in another order. Measured: ~3e-8 after 14 steps; the bound is 1e-6 absolute, weights being
    /// O(0.1).
    static let tolerance: Float = 1e-6

    static func data() throws -> (train: LabeledDataset, test: LabeledDataset) {
        try TrainingTests.subset(200, test: 90)
    }

    /// LeNet-5 (no batch norm, no dropout) with momentum SGD, weight decay and a step schedule;
    /// weights from `weightSeed`, global batch 32 (the 200 images give 6 full batches and one of 8).
    ///
    /// The weights are drawn under a lock: the global generator is shared by the in-process ranks.
    static func trainer(_ data: (train: LabeledDataset, test: LabeledDataset), weightSeed: UInt64,
                        communicator: (any Communicator)?) throws -> Trainer {
        let model = try lenet(seed: weightSeed)
        let optimizer = try SGD(parameters: model.namedParameters(), learningRate: 0.05, momentum: 0.9, weightDecay: 1e-4,
                                weightDecayExclusion: .biasesAndNormalization)
        let norm = ChannelNormalization.mnist.pair
        return try Trainer(model: model, optimizer: optimizer,
                           trainLoader: try DataLoader(dataset: data.train, batchSize: 32, shuffle: true, seed: 3, normalization: norm),
                           testLoader: try DataLoader(dataset: data.test, batchSize: 40, shuffle: false, normalization: norm),
                           schedule: .epochs(try StepLR(stepSize: 1, gamma: 0.5)), communicator: communicator)
    }

    static let generatorLock = Mutex(())

    static func lenet(seed: UInt64) throws -> LeNet5 {
        try generatorLock.withLock { _ in
            GlobalGenerator.seed(seed)
            return try LeNet5(classes: 10)
        }
    }

    static func weights(_ model: Module) -> [Float] { model.stateDictionary().flatMap { $0.1.scalars } }

    static func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    /// Runs `epochs` epochs on `ranks` in-process ranks; every rank returns its weights and history.
    static func distributed(ranks: Int, epochs: Int, weightSeed: (Int) -> UInt64 = { UInt64(100 + $0) }) throws -> [([Float], [EpochRecord])] {
        let data = try data()
        let seeds = (0..<ranks).map(weightSeed)
        return try InProcessCommunicator.run(ranks: ranks) { comm in
            let trainer = try trainer(data, weightSeed: seeds[comm.rank], communicator: comm)
            for _ in 0..<epochs { _ = try trainer.trainEpoch() }
            return (weights(trainer.model), trainer.history)
        }
    }

    @Test(arguments: [2, 3])
    func nRanksMatchOneProcessWithTheGlobalBatch(ranks: Int) throws {
        try ComputeRuntime.setThreadCount(1)
        defer { try? ComputeRuntime.setThreadCount(nil) }
        let single = try Self.trainer(try Self.data(), weightSeed: 100, communicator: nil)
        _ = try single.trainEpoch()
        _ = try single.trainEpoch()
        let reference = Self.weights(single.model)

        // Rank 0's seed is 100; the others start from other weights and must receive rank 0's.
        let results = try Self.distributed(ranks: ranks, epochs: 2)
        for (w, history) in results {
            #expect(w == results[0].0, "ranks must hold bit-identical weights")
            let d = Self.maxDifference(w, reference)
            #expect(d <= Self.tolerance, "max weight difference \(d) to the 1-process run")
            for (a, b) in zip(history, single.history) {
                #expect(abs(a.trainLoss - b.trainLoss) < 1e-4 && a.trainAccuracy == b.trainAccuracy)
                #expect(abs(a.testLoss - b.testLoss) < 1e-4 && a.testAccuracy == b.testAccuracy)
                #expect(a.learningRate == b.learningRate)
            }
        }
        #expect(reference != (try Self.trainer(try Self.data(), weightSeed: 100, communicator: nil).model).stateDictionary().flatMap { $0.1.scalars },
                "training must change the weights")
    }

    @Test func resumeWithAnotherNumberOfRanks() throws {
        try ComputeRuntime.setThreadCount(1)
        defer { try? ComputeRuntime.setThreadCount(nil) }
        let data = try Self.data()
        let single = try Self.trainer(data, weightSeed: 100, communicator: nil)
        _ = try single.trainEpoch()
        _ = try single.trainEpoch()

        let dir = try CLI.temporaryDirectory("distributed-resume")
        defer { CLI.remove(dir) }
        let path = dir + "/checkpoint.safetensors"
        _ = try InProcessCommunicator.run(ranks: 2) { comm in
            let trainer = try Self.trainer(data, weightSeed: 100, communicator: comm)
            _ = try trainer.trainEpoch()
            try trainer.saveCheckpoint(to: path)  // rank 0 only
        }
        let resumed = try InProcessCommunicator.run(ranks: 3) { comm in
            let trainer = try Self.trainer(data, weightSeed: 7, communicator: comm)
            try trainer.loadCheckpoint(from: path)
            #expect(trainer.epoch == 1 && trainer.history.count == 1)
            _ = try trainer.trainEpoch()
            return Self.weights(trainer.model)
        }
        for w in resumed {
            let d = Self.maxDifference(w, Self.weights(single.model))
            #expect(d <= Self.tolerance, "max weight difference \(d) after resuming 2 ranks' checkpoint on 3")
        }

        // A missing checkpoint is the same error on every rank, not a hang.
        let errors = try InProcessCommunicator.run(ranks: 2) { comm in
            let trainer = try Self.trainer(data, weightSeed: 1, communicator: comm)
            do { try trainer.loadCheckpoint(from: dir + "/missing.safetensors"); return "" } catch { return "\(error)" }
        }
        #expect(errors[0] == errors[1] && errors[0].contains("missing.safetensors"))
    }

    @Test func distributedEvaluationEqualsTheWholeSet() throws {
        let data = try Self.data()
        let loader = try DataLoader(dataset: data.test, batchSize: 40, shuffle: false, normalization: ChannelNormalization.mnist.pair)
        let whole = try Self.lenet(seed: 5).evaluate(on: loader)
        let parts = try InProcessCommunicator.run(ranks: 4) { comm in
            try Self.lenet(seed: 5).evaluate(on: loader, communicator: comm)
        }
        for p in parts {
            #expect(p.count == 90 && p.confusion == whole.confusion && p.accuracy == whole.accuracy)
            #expect(abs(p.loss - whole.loss) < 1e-5)
        }
    }

    @Test func bucketsAndUnusedParameters() throws {
        // Rank 0 has gradients for a and b, rank 1 for a and c (with 3 examples against 1); d has none.
        let results = try InProcessCommunicator.run(ranks: 2) { comm in
            let vars = (0..<4).map { _ in Variable(try! Tensor(zeros: [5]), requiresGradient: true) }
            let r = Float(comm.rank)
            vars[0].gradient = Tensor([1 + r, 2, 3, 4, 5])
            if comm.rank == 0 { vars[1].gradient = Tensor([4, 4, 4, 4, 4]) } else { vars[2].gradient = Tensor([8, 8, 8, 8, 8]) }
            let sync = GradientSynchronizer(communicator: comm, parameters: vars, bucketElements: 3)
            #expect(sync.bucketCount == 9)  // (3 + 4 + 20) / 3
            let totals = try sync.synchronize(examples: comm.rank == 0 ? 1 : 3, lossSum: 1.5, correct: comm.rank)
            #expect(totals.examples == 4 && totals.lossSum == 3 && totals.correct == 1)
            return vars.map { $0.gradient?.scalars }
        }
        for g in results {
            #expect(g[0] == [1.75, 2, 3, 4, 5])  // (1·1 + 3·2) / 4
            #expect(g[1] == [1, 1, 1, 1, 1])
            #expect(g[2] == [6, 6, 6, 6, 6])
            #expect(g[3] == nil)
        }
    }

    @Test func shardsSplitEveryBatchExactly() throws {
        for count in 1...5 {
            for m in [0, 1, 4, 7, 32] {
                let parts = try (0..<count).map { try DataShard(rank: $0, of: count).part(of: 10..<(10 + m)) }
                #expect(parts.first!.lowerBound == 10 && parts.last!.upperBound == 10 + m)
                for (a, b) in zip(parts, parts.dropFirst()) { #expect(a.upperBound == b.lowerBound) }
                let sizes = parts.map(\.count)
                #expect(sizes.max()! - sizes.min()! <= 1)
            }
        }
        #expect(throws: CNNError.self) { try DataShard(rank: 2, of: 2) }
    }

    @Test func aFailingRankStopsTheOthers() throws {
        let data = try Self.data()
        let messages = try InProcessCommunicator.run(ranks: 3) { comm -> String in
            let trainer = try Self.trainer(data, weightSeed: 1, communicator: comm)
            if comm.rank == 1 { return "left" }  // leaves while the others train
            do { _ = try trainer.trainEpoch(); return "finished" } catch { return "\(error)" }
        }
        #expect(messages[0].contains("rank 1 finished") || messages[0].contains("rank 1 has already finished"), "\(messages[0])")
        #expect(messages[2].contains("rank 1"), "\(messages[2])")

        struct Injected: Error {}
        #expect(throws: Injected.self) {
            _ = try InProcessCommunicator.run(ranks: 2) { comm in
                let trainer = try Self.trainer(data, weightSeed: 1, communicator: comm)
                if comm.rank == 1 { throw Injected() }
                _ = try trainer.trainEpoch()
            }
        }
    }

    @Test func aRankThatNeverArrivesTimesOut() throws {
        let release = Mutex(false)
        let messages = try InProcessCommunicator.run(ranks: 2, timeout: 0.2) { comm -> String in
            if comm.rank == 1 {
                // Stuck (not gone) until rank 0 has given up.
                while !release.withLock({ $0 }) { usleep(1000) }
                return ""
            }
            defer { release.withLock { $0 = true } }
            var x = [Float](repeating: 1, count: 4)
            do { try x.withUnsafeMutableBufferPointer { try comm.allReduceSum($0) }; return "" } catch { return "\(error)" }
        }
        #expect(messages[0].contains("timed out") && messages[0].contains("rank(s) 1 did not arrive"), "\(messages[0])")
    }

    @Test func mismatchedCollectivesAreReported() throws {
        let messages = try InProcessCommunicator.run(ranks: 2) { comm -> String in
            var x = [Float](repeating: 1, count: 4 + comm.rank)
            do { try x.withUnsafeMutableBufferPointer { try comm.allReduceSum($0) }; return "" } catch { return "\(error)" }
        }
        #expect(messages.allSatisfy { $0.contains("bytes while other ranks are in") }, "\(messages)")
    }
}

/// Run by `.ci/mpi.sh` after `mpirun -np 2 cnn train --distributed` and a 1-rank run of the same
/// training: their weights must agree within ``DistributedTests/tolerance`` (or
/// `CNN_MPI_TOLERANCE`). Skipped unless `CNN_MPI_WEIGHTS_A` and `CNN_MPI_WEIGHTS_B` name the two
/// weight files.
@Suite struct DistributedMPIComparison {
    static let paths = (ProcessInfo.processInfo.environment["CNN_MPI_WEIGHTS_A"], ProcessInfo.processInfo.environment["CNN_MPI_WEIGHTS_B"])

    @Test(.enabled(if: paths.0 != nil && paths.1 != nil))
    func mpirunWeightsMatchOneRank() throws {
        let a = try SafeTensors(contentsOf: Self.paths.0!), b = try SafeTensors(contentsOf: Self.paths.1!)
        #expect(a.names == b.names)
        var worst: Float = 0
        for name in a.names where a.contains(name) && b.contains(name) && !name.hasSuffix("num_batches_tracked") {
            worst = max(worst, DistributedTests.maxDifference(try a.tensor(named: name).scalars, try b.tensor(named: name).scalars))
        }
        print("max weight difference between \(Self.paths.0!) and \(Self.paths.1!): \(worst)")
        let tolerance = ProcessInfo.processInfo.environment["CNN_MPI_TOLERANCE"].flatMap(Float.init) ?? DistributedTests.tolerance
        #expect(worst <= tolerance)
        #expect(try a.tensor(named: a.names[0]).scalars != (try LeNet5(classes: 10).stateDictionary()[0].1.scalars))
    }
}
