import Foundation

extension Trainer {
    /// Makes every rank's trainer equal to rank 0's: weights, buffers, optimizer state, schedule,
    /// epoch and history travel as one in-memory checkpoint.
    func broadcastState() throws {
        guard let communicator, communicator.size > 1 else { return }
        var bytes: [UInt8] = []
        if communicator.isRoot {
            let (values, meta) = checkpointContents()
            bytes = try SafeTensors.encode(values, metadata: meta)
        }
        bytes = try communicator.broadcast(bytes, root: 0)
        if !communicator.isRoot {
            try loadCheckpoint(try SafeTensors(bytes: bytes, name: "rank 0's state"), path: "rank 0's state")
        }
    }

    /// Rank 0 reads the checkpoint at `path` and sends it, or the reason it could not, to every rank.
    ///
    /// The message starts with one byte: 1 and the file, or 0 and the error text.
    func receiveCheckpoint(path: String, communicator: any Communicator) throws -> SafeTensors {
        var message: [UInt8] = []
        if communicator.isRoot {
            if let data = FileManager.default.contents(atPath: path) {
                message = [1] + [UInt8](data)
            } else {
                message = [0] + Array("cannot read the checkpoint \(path) on rank 0".utf8)
            }
        }
        message = try communicator.broadcast(message, root: 0)
        guard message.first == 1 else { throw CNNError.io(String(decoding: message.dropFirst(), as: UTF8.self)) }
        return try SafeTensors(bytes: message.dropFirst(), name: path)
    }

    /// Replaces every floating-point buffer (batch norm's running mean and variance) by its mean
    /// over the ranks. Each rank normalises with its own batch statistics while training, so their
    /// running estimates drift apart; averaging them at the end of every epoch keeps the ranks'
    /// models, their evaluation and rank 0's checkpoint one model. `num_batches_tracked` is the same
    /// on every rank and is left alone, and so are the running statistics of synchronised batch
    /// norm layers (already the same on every rank).
    func averageBuffers(_ communicator: any Communicator) throws {
        guard communicator.size > 1 else { return }
        var synchronized = Set<ObjectIdentifier>()
        for case let (_, bn as BatchNorm2d) in model.namedModules() where (bn.synchronization?.size ?? 1) > 1 {
            synchronized.insert(ObjectIdentifier(bn.runningMean))
            synchronized.insert(ObjectIdentifier(bn.runningVar))
        }
        let buffers = model.namedBuffers().filter { !$0.0.hasSuffix("num_batches_tracked") && !synchronized.contains(ObjectIdentifier($0.1)) }
            .map(\.1)
        guard !buffers.isEmpty else { return }
        var flat = [Float]()
        flat.reserveCapacity(buffers.reduce(0) { $0 + $1.value.count })
        for b in buffers { flat += b.value.scalars }
        try flat.withUnsafeMutableBufferPointer { try communicator.allReduceSum($0) }
        let inverse = 1 / Float(communicator.size)
        var offset = 0
        for b in buffers {
            let n = b.value.count
            b.value = try Tensor(shape: b.value.shape, scalars: flat[offset..<(offset + n)].map { $0 * inverse })
            offset += n
        }
    }
}

extension Module {
    /// Evaluates the model on `loader` (as ``evaluate(on:)``) with the work split over the ranks of
    /// `communicator`: each rank evaluates its ``DataShard`` of every batch and the sums are reduced,
    /// so every rank returns the evaluation of the whole set. A `nil` communicator evaluates here.
    public func evaluate(on loader: DataLoader, communicator: (any Communicator)?) throws -> Evaluation {
        guard let communicator, communicator.size > 1 else { return try evaluate(on: loader) }
        let wasTraining = isTraining
        eval()
        defer { setTraining(wasTraining) }
        var local = Evaluation(classes: loader.dataset.classes)
        try GradientMode.withoutGradients {
            let it = loader.batches(epoch: 0, shard: try DataShard(rank: communicator.rank, of: communicator.size)).makeIterator()
            while let batch = it.next() {
                guard !batch.labels.isEmpty else { continue }
                let logits = try forward(Variable(batch.images))
                let loss = try Functional.crossEntropy(logits: logits, labels: batch.labels)
                try local.add(logits: logits.value, labels: batch.labels, batchLoss: Double(try loss.value.item()))
            }
            if let e = it.error { throw e }
        }
        // [loss sum, correct, count, confusion row by row]
        let classes = loader.dataset.classes
        var sums = [local.loss * Double(local.count), (local.accuracy * Double(local.count)).rounded(), Double(local.count)]
        sums += local.confusion.flatMap { $0.map(Double.init) }
        sums = try communicator.allReduceSum(sums)
        var total = Evaluation(classes: classes)
        total.count = Int(sums[2])
        total.loss = sums[0] / Double(max(total.count, 1))
        total.accuracy = sums[1] / Double(max(total.count, 1))
        for i in 0..<classes { total.confusion[i] = sums[(3 + i * classes)..<(3 + (i + 1) * classes)].map { Int($0) } }
        return total
    }
}
