import Foundation
import Testing
@testable import CNN

/// The backward pass's ready hook, and gradient synchronisation overlapped with backward: the same
/// gradients and weights as synchronising after backward, bit for bit.
@Suite(.serialized) struct DistributedOverlapTests {
    // MARK: Autograd ready hook

    @Test func readyHookFiresOncePerLeafAfterItsLastContribution() throws {
        /// loss = Σ (x·w·v·w + x·w): `w` is used twice (once early, once late), `unused` never.
        func graph() throws -> (loss: Variable, w: Variable, v: Variable, unused: Variable) {
            let w = Variable(Tensor([1, 2, 3]), requiresGradient: true)
            let v = Variable(Tensor([4, 5, 6]), requiresGradient: true)
            let unused = Variable(Tensor([7]), requiresGradient: true)
            let x = Variable(Tensor([0.5, -1, 2]))
            let a = try Functional.multiply(x, w)
            let c = try Functional.multiply(try Functional.multiply(a, v), w)
            return (try Functional.sum(try Functional.add(c, a)), w, v, unused)
        }
        let plain = try graph()
        try plain.loss.backward()

        let hooked = try graph()
        var fired: [(ObjectIdentifier, [Float]?)] = []
        try hooked.loss.backward(seed: nil) { leaf in fired.append((ObjectIdentifier(leaf), leaf.gradient?.scalars)) }
        #expect(fired.count == 2)
        #expect(fired.filter { $0.0 == ObjectIdentifier(hooked.w) }.count == 1)
        #expect(fired.filter { $0.0 == ObjectIdentifier(hooked.v) }.count == 1)
        #expect(!fired.contains { $0.0 == ObjectIdentifier(hooked.unused) })
        // What the hook saw is the final gradient, equal to an unhooked pass's.
        for (id, seen) in fired {
            let leaf = id == ObjectIdentifier(hooked.w) ? hooked.w : hooked.v
            #expect(seen == leaf.gradient?.scalars)
        }
        #expect(hooked.w.gradient?.scalars == plain.w.gradient?.scalars && hooked.w.gradient != nil)
        #expect(hooked.v.gradient?.scalars == plain.v.gradient?.scalars)
        // d/dw of Σ(x·v·w² + x·w) = 2·x·v·w + x.
        let expected: [Float] = [0.5 * 4 * 2 * 1 + 0.5, -1 * 5 * 2 * 2 - 1, 2 * 6 * 2 * 3 + 2]
        #expect(hooked.w.gradient?.scalars == expected)
        #expect(hooked.unused.gradient == nil)
    }

    @Test func readyHookReportsLeavesThatReceiveNoGradient() throws {
        // `stop` passes no gradient back, so the multiply before it is skipped by the walk: its
        // leaf `w2` is still reported (with no gradient), as is `w1`, to which `stop` returns none.
        let stop = CustomOperation(name: "stop", forward: { try $0[0] + $0[1] }, backward: { _, _, _ in [nil, nil] })
        let w1 = Variable(Tensor([1, 2]), requiresGradient: true)
        let w2 = Variable(Tensor([3, 4]), requiresGradient: true)
        let w3 = Variable(Tensor([5, 6]), requiresGradient: true)
        let x = Variable(Tensor([1, 1]))
        let blocked = try stop([try Functional.multiply(x, w2), w1])
        let loss = try Functional.sum(try Functional.add(blocked, try Functional.multiply(x, w3)))
        var fired: [ObjectIdentifier] = []
        try loss.backward(seed: nil) { fired.append(ObjectIdentifier($0)) }
        #expect(Set(fired) == Set([w1, w2, w3].map(ObjectIdentifier.init)) && fired.count == 3)
        #expect(w1.gradient == nil && w2.gradient == nil && w3.gradient?.scalars == [1, 1])

        // A leaf that is itself the root is reported once.
        let leaf = Variable(Tensor([2]), requiresGradient: true)
        var count = 0
        try leaf.backward(seed: nil) { _ in count += 1 }
        #expect(count == 1 && leaf.gradient?.scalars == [1])
    }

    @Test func readyHookReportsLaterLayersFirst() throws {
        GlobalGenerator.seed(4)
        let l1 = try Linear(inputFeatures: 5, outputFeatures: 4), l2 = try Linear(inputFeatures: 4, outputFeatures: 3)
        let x = Variable(try Tensor(repeating: 0.5, shape: [2, 5]))
        let loss = try Functional.sum(try l2(try Functional.relu(try l1(x))))
        var order: [ObjectIdentifier] = []
        try loss.backward(seed: nil) { order.append(ObjectIdentifier($0)) }
        let position = { (v: Variable) in order.firstIndex(of: ObjectIdentifier(v))! }
        #expect(order.count == 4)
        #expect(max(position(l2.weight), position(l2.bias!)) < min(position(l1.weight), position(l1.bias!)))
    }

    // MARK: Overlapped synchronisation

    @Test func overlappedBucketsAndUnusedParameters() throws {
        // As DistributedTests.bucketsAndUnusedParameters, through the overlapped path with
        // gradients set by hand (no backward: every parameter is copied in at the end).
        let results = try InProcessCommunicator.run(ranks: 2) { comm in
            let vars = (0..<4).map { _ in Variable(try! Tensor(zeros: [5]), requiresGradient: true) }
            let r = Float(comm.rank)
            vars[0].gradient = Tensor([1 + r, 2, 3, 4, 5])
            if comm.rank == 0 { vars[1].gradient = Tensor([4, 4, 4, 4, 4]) } else { vars[2].gradient = Tensor([8, 8, 8, 8, 8]) }
            let sync = GradientSynchronizer(communicator: comm, parameters: vars, bucketElements: 7, firstBucketElements: 3)
            // Reverse order: [3], [2], [1], [0] (first bucket capped at 3 still takes one parameter).
            #expect(sync.buckets.map(\.parameters) == [[3], [2], [1], [0]])
            try sync.beginOverlappedStep(examples: comm.rank == 0 ? 1 : 3)
            let totals = try sync.finishOverlappedStep(lossSum: 1.5, correct: comm.rank)
            #expect(totals.examples == 4 && totals.lossSum == 3 && totals.correct == 1)
            return vars.map { $0.gradient?.scalars }
        }
        for g in results {
            #expect(g[0] == [1.75, 2, 3, 4, 5])
            #expect(g[1] == [1, 1, 1, 1, 1])
            #expect(g[2] == [6, 6, 6, 6, 6])
            #expect(g[3] == nil)
        }
    }

    @Test func bucketsStartDuringBackward() throws {
        // Three Linear layers, one bucket per parameter: by the end of backward every bucket but the
        // last has started, the last layer's first; the gradients equal the post-backward path's.
        let results = try InProcessCommunicator.run(ranks: 2) { comm in
            func run(overlapped: Bool) throws -> (started: [Int], gradients: [[Float]]) {
                let layers = try DistributedTests.generatorLock.withLock { _ in
                    GlobalGenerator.seed(9)
                    return try [Linear(inputFeatures: 6, outputFeatures: 5), Linear(inputFeatures: 5, outputFeatures: 4),
                                Linear(inputFeatures: 4, outputFeatures: 3)]
                }
                let parameters = layers.flatMap { [$0.weight, $0.bias!] }
                let sync = GradientSynchronizer(communicator: comm, parameters: parameters, bucketElements: 1, firstBucketElements: 1)
                var x = Variable(try Tensor(repeating: Float(comm.rank + 1), shape: [3, 6]))
                for l in layers { x = try Functional.relu(try l(x)) }
                let loss = try Functional.mean(x)
                var started: [Int] = []
                if overlapped {
                    try sync.beginOverlappedStep(examples: 3)
                    try loss.backward(seed: nil) { leaf in
                        try sync.gradientReady(leaf)
                        started.append(sync.startedBuckets)
                    }
                    _ = try sync.finishOverlappedStep(lossSum: 0, correct: 0)
                } else {
                    try loss.backward()
                    _ = try sync.synchronize(examples: 3, lossSum: 0, correct: 0)
                }
                return (started, parameters.map { $0.gradient!.scalars })
            }
            let overlapped = try run(overlapped: true), after = try run(overlapped: false)
            #expect(overlapped.gradients == after.gradients)
            return overlapped.started
        }
        for started in results {
            // Buckets of 1 element: one per parameter, the last layer's two first.
            #expect(started.count == 6)
            #expect(started[1] == 2, "the last layer's buckets start before the earlier layers' gradients exist: \(started)")
            #expect(started.last == 5, "every bucket but the last (which carries the header) started before backward returned: \(started)")
        }
    }

    /// Trains ``TiedNet`` (a shared weight used twice, a weight only some ranks' batches use, one
    /// never used) on `ranks` in-process ranks for 2 epochs of 17 images, global batch 8 (the last
    /// batch has one image: the other ranks have an empty part); returns rank 0's weights after
    /// checking that every rank holds the same.
    static func trainTied(ranks: Int, synchronization: GradientSynchronization) throws -> [Float] {
        var g = SeededGenerator(seed: 11)
        let images = try Tensor.normal(shape: [17, 1, 1, 6], generator: &g)
        let data = try LabeledDataset(images: images, labels: (0..<17).map { _ in Int32(g.next() % 3) }, classes: 3)
        let weights = try InProcessCommunicator.run(ranks: ranks) { comm in
            let model = try TiedNet(seed: UInt64(20 + comm.rank))
            let optimizer = try SGD(parameters: model.namedParameters(), learningRate: 0.1, momentum: 0.9)
            let trainer = try Trainer(model: model, optimizer: optimizer,
                                      trainLoader: try DataLoader(dataset: data, batchSize: 8, shuffle: true, seed: 5),
                                      testLoader: nil, communicator: comm, gradientSynchronization: synchronization)
            for _ in 0..<2 { _ = try trainer.trainEpoch() }
            #expect(model.unused.value.scalars == [1, 2, 3], "a parameter no rank uses does not move")
            return DistributedTests.weights(model)
        }
        for w in weights { #expect(w == weights[0], "ranks must hold bit-identical weights") }
        return weights[0]
    }

    @Test(arguments: [2, 3])
    func overlappedTrainingEqualsSynchronisingAfterBackward(ranks: Int) throws {
        try ComputeRuntime.setThreadCount(1)
        defer { try? ComputeRuntime.setThreadCount(nil) }
        let after = try Self.trainTied(ranks: ranks, synchronization: try GradientSynchronization(overlapsBackward: false))
        let overlappedSmall = try Self.trainTied(ranks: ranks, synchronization: try GradientSynchronization(overlapsBackward: true, bucketBytes: 64))
        let overlappedDefault = try Self.trainTied(ranks: ranks, synchronization: try GradientSynchronization())
        let (small, byDefault) = (overlappedSmall == after, overlappedDefault == after)
        #expect(small, "bit-identical weights; max difference \(DistributedTests.maxDifference(overlappedSmall, after))")
        #expect(byDefault, "bit-identical weights; max difference \(DistributedTests.maxDifference(overlappedDefault, after))")
        let untrained = DistributedTests.weights(try TiedNet(seed: 20))
        #expect(after != untrained, "training must change the weights")
    }

    @Test func bucketSizeIsValidated() throws {
        #expect(throws: CNNError.self) { try GradientSynchronization(bucketBytes: 3) }
        #expect(try GradientSynchronization(bucketBytes: 4).bucketBytes == 4)
    }
}

/// `[N, 1, 1, 6]` → 3 classes: `h = relu(x S) S` with one shared matrix `S` used twice; `rare` is
/// added only for batches whose first value is positive (so some ranks' graphs skip it); `unused`
/// never takes part.
final class TiedNet: Module {
    let shared: Variable
    let rare: Variable
    let unused: Variable
    let head: Variable

    init(seed: UInt64) throws {
        var g = SeededGenerator(seed: seed)
        shared = Variable(try Tensor.normal(shape: [6, 6], standardDeviation: 0.4, generator: &g), requiresGradient: true)
        rare = Variable(try Tensor.normal(shape: [6, 6], standardDeviation: 0.4, generator: &g), requiresGradient: true)
        unused = Variable(Tensor([1, 2, 3]), requiresGradient: true)
        head = Variable(try Tensor.normal(shape: [6, 3], standardDeviation: 0.4, generator: &g), requiresGradient: true)
        super.init()
    }

    override func forward(_ input: Variable) throws -> Variable {
        let x = try Functional.flatten(input)
        var h = try Functional.matmul(try Functional.relu(try Functional.matmul(x, shared)), shared)
        if x.value.scalars[0] > 0 { h = try Functional.add(h, try Functional.matmul(x, rare)) }
        return try Functional.matmul(h, head)
    }
}
