import CNNKernels
import Foundation

/// Progress within an epoch, reported after every batch.
public struct TrainingProgress: Sendable {
    /// The epoch (from 0).
    public var epoch: Int
    /// Batches finished in this epoch, and the epoch's total.
    public var batch: Int, batchCount: Int
    /// Running mean loss and accuracy over the epoch so far.
    public var loss: Double, accuracy: Double
    /// Training throughput so far.
    public var imagesPerSecond: Double
    /// Seconds since the epoch began.
    public var elapsed: Double
}

/// One epoch's results, as the CSV log records them.
public struct EpochRecord: Sendable, Equatable, Codable {
    public var epoch: Int
    public var trainLoss: Double, trainAccuracy: Double
    public var testLoss: Double, testAccuracy: Double
    public var learningRate: Double
    public var seconds: Double

    /// `epoch,train_loss,train_acc,test_loss,test_acc,lr,seconds`.
    public static let csvHeader = "epoch,train_loss,train_acc,test_loss,test_acc,lr,seconds"

    /// One CSV row (accuracies as fractions in 0...1).
    public var csvRow: String {
        String(format: "%d,%.6f,%.6f,%.6f,%.6f,%.6g,%.3f", epoch + 1, trainLoss, trainAccuracy, testLoss, testAccuracy, learningRate, seconds)
    }
}

/// How the learning rate changes between epochs.
public enum ScheduleChoice: Sendable {
    /// Constant.
    case constant
    /// A closed-form schedule over epochs (step, multi-step, cosine, warm-up...).
    case epochs(any LearningRateSchedule)
    /// Divide by `factor` when the test loss stops improving for `patience` epochs (the classic
    /// ResNet recipe).
    case plateau(factor: Double, patience: Int)
}

/// Trains a classifier with mini-batch gradient descent: forward, cross-entropy, backward,
/// optimizer step; evaluation after each epoch; atomic checkpoints; exact resume.
///
/// With a ``Communicator`` the trainer is one rank of data-parallel training:
/// `trainLoader.batchSize` is the *global* batch, which every rank
/// splits (``DataShard``); gradients are averaged over the ranks before every optimizer step;
/// records hold global metrics; only rank 0 writes checkpoints. With synchronised batch norm
/// (``Module/convertToSynchronizedBatchNorm(communicator:)``) a last global batch with fewer
/// examples than ranks is skipped, since every rank must take part in every layer's statistics.
public final class Trainer {
    public let model: Module
    public let optimizer: Optimizer
    public let trainLoader: DataLoader
    public let testLoader: DataLoader?
    public let labelSmoothing: Float
    /// The next epoch to run (from 0).
    public private(set) var epoch = 0
    /// Results of the finished epochs.
    public private(set) var history: [EpochRecord] = []
    /// The group this trainer is one rank of, or `nil` for training in one process.
    public let communicator: (any Communicator)?
    let scheduler: LearningRateScheduler?
    let plateau: ReduceLROnPlateau?
    var synchronizer: GradientSynchronizer?
    /// How gradients are averaged over the ranks (with a communicator).
    public let gradientSynchronization: GradientSynchronization

    /// Creates a trainer.
    ///
    /// With a `communicator`, every rank must create its trainer the same way (same model
    /// architecture, optimizer, loaders and schedule); rank 0's weights and optimizer state are then
    /// broadcast to the others, so their initial weights may differ. `gradientSynchronization`
    /// says how the gradients are averaged (by default overlapped with the backward pass, in
    /// buckets of 4 MiB).
    public init(model: Module, optimizer: Optimizer, trainLoader: DataLoader, testLoader: DataLoader?,
                schedule: ScheduleChoice = .constant, labelSmoothing: Float = 0,
                communicator: (any Communicator)? = nil,
                gradientSynchronization: GradientSynchronization? = nil) throws {
        self.model = model
        self.optimizer = optimizer
        self.trainLoader = trainLoader
        self.testLoader = testLoader
        self.labelSmoothing = labelSmoothing
        switch schedule {
        case .constant: scheduler = nil; plateau = nil
        case .epochs(let s): scheduler = try LearningRateScheduler(optimizer: optimizer, schedule: s); plateau = nil
        case .plateau(let factor, let patience):
            scheduler = nil
            plateau = try ReduceLROnPlateau(optimizer: optimizer, mode: .min, factor: factor, patience: patience)
        }
        self.communicator = communicator
        self.gradientSynchronization = try gradientSynchronization ?? GradientSynchronization()
        if let communicator {
            synchronizer = GradientSynchronizer(communicator: communicator, parameters: optimizer.parameters.map(\.variable),
                                                bucketElements: max(1, self.gradientSynchronization.bucketBytes / 4))
            try broadcastState()
        }
    }

    /// Runs one epoch of training, then evaluation; returns its record.
    ///
    /// - Throws: ``CNNError/diverged(_:)`` naming the epoch and batch when the loss stops being
    ///   finite (the parameters are not updated with that batch).
    public func trainEpoch(progress: ((TrainingProgress) -> Void)? = nil) throws -> EpochRecord {
        model.train()
        let start = cnn_now()
        var seen = 0, correct = 0
        var lossSum = 0.0
        let lr = Double(optimizer.learningRate)
        let shard = try communicator.map { try DataShard(rank: $0.rank, of: $0.size) }
        let it = trainLoader.batches(epoch: epoch, shard: shard).makeIterator()
        // Synchronised batch norm needs every rank in every layer's statistics, so a short last
        // global batch with fewer examples than ranks (leaving some rank nothing) is skipped by all.
        let synchronizedBatchNorm = model.hasSynchronizedBatchNorm
        let minimumGlobalBatch = synchronizedBatchNorm ? communicator?.size ?? 1 : 1
        // Synchronised batch norm communicates inside backward; the order of its collectives and
        // the buckets' would depend on which parameters each rank's graph reaches, so its models
        // are synchronised after backward.
        let overlapped = synchronizer != nil && gradientSynchronization.overlapsBackward && !synchronizedBatchNorm
        var b = 0
        while let batch = it.next() {
            let globalBatch = Swift.min(trainLoader.batchSize, trainLoader.dataset.count - b * trainLoader.batchSize)
            if globalBatch < minimumGlobalBatch {
                b += 1
                continue
            }
            optimizer.zeroGradients()
            // A rank's part of a short last global batch may be empty; it still synchronises.
            var step = (examples: batch.labels.count, lossSum: 0.0, correct: 0)
            if overlapped { try synchronizer!.beginOverlappedStep(examples: step.examples) }
            if step.examples > 0 {
                let logits = try model(Variable(batch.images))
                let loss = try Functional.crossEntropy(logits: logits, labels: batch.labels, labelSmoothing: labelSmoothing)
                let value = try loss.value.item()
                step.lossSum = Double(value) * Double(step.examples)
                // Distributed ranks check the global loss after synchronising, so all stop together.
                if synchronizer == nil, !value.isFinite { throw diverged(value, batch: b) }
                if overlapped {
                    try loss.backward(seed: nil, onGradientReady: synchronizer!.gradientReady)
                } else {
                    try loss.backward()
                }
                let predictions = try logits.value.argmaxIndices(alongAxis: 1)
                step.correct = zip(predictions, batch.labels).filter { $0 == Int($1) }.count
            }
            if let synchronizer {
                step = overlapped ? try synchronizer.finishOverlappedStep(lossSum: step.lossSum, correct: step.correct)
                    : try synchronizer.synchronize(examples: step.examples, lossSum: step.lossSum, correct: step.correct)
                let mean = step.lossSum / Double(max(step.examples, 1))
                if !mean.isFinite { throw diverged(Float(mean), batch: b) }
            }
            try optimizer.step()
            correct += step.correct
            seen += step.examples
            lossSum += step.lossSum
            b += 1
            if let progress {
                let elapsed = cnn_now() - start
                progress(TrainingProgress(epoch: epoch, batch: b, batchCount: trainLoader.batchCount, loss: lossSum / Double(seen),
                                          accuracy: Double(correct) / Double(seen), imagesPerSecond: Double(seen) / max(elapsed, 1e-9),
                                          elapsed: elapsed))
            }
        }
        if let e = it.error { throw e }
        let trainSeconds = cnn_now() - start
        if let communicator { try averageBuffers(communicator) }
        let test = try testLoader.map { try model.evaluate(on: $0, communicator: communicator) }
        let record = EpochRecord(epoch: epoch, trainLoss: lossSum / Double(max(seen, 1)), trainAccuracy: Double(correct) / Double(max(seen, 1)),
                                 testLoss: test?.loss ?? .nan, testAccuracy: test?.accuracy ?? .nan, learningRate: lr,
                                 seconds: trainSeconds)
        history.append(record)
        epoch += 1
        if let scheduler { try scheduler.step() }
        if let plateau, let test { _ = plateau.step(metric: test.loss) }
        return record
    }

    private func diverged(_ value: Float, batch b: Int) -> CNNError {
        CNNError.diverged("loss is \(value) at epoch \(epoch + 1), batch \(b + 1) of \(trainLoader.batchCount); the last checkpoint is intact — lower the learning rate")
    }

    // MARK: Checkpoints

    /// Writes model, optimizer, schedule, data order and dropout state to `path` atomically
    /// (temporary file, fsync, rename): an interrupted save never leaves a broken checkpoint.
    ///
    /// In distributed training only rank 0 writes (the ranks hold the same state); on the other
    /// ranks this does nothing.
    public func saveCheckpoint(to path: String) throws {
        guard communicator?.isRoot ?? true else { return }
        let (values, meta) = checkpointContents()
        try SafeTensors.write(values, metadata: meta, to: path)
    }

    /// The tensors and metadata of a checkpoint.
    func checkpointContents() -> ([(String, SafeTensors.Value)], [String: String]) {
        var values = model.stateValues(prefix: "model.")
        values += optimizer.stateDictionary().map { ("optimizer.\($0.0)", SafeTensors.Value.float32($0.1)) }
        var meta: [String: String] = ["format": "swift-cnn checkpoint 1", "epoch": "\(epoch)"]
        let encoder = JSONEncoder()
        if let scheduler, let data = try? encoder.encode(scheduler.state) { meta["schedule"] = String(decoding: data, as: UTF8.self) }
        if let plateau, let data = try? encoder.encode(plateau.state) { meta["plateau"] = String(decoding: data, as: UTF8.self) }
        if let data = try? encoder.encode(history) { meta["history"] = String(decoding: data, as: UTF8.self) }
        let dropouts = model.namedModules().compactMap { name, m in (m as? Dropout).map { "\(name)=\($0.seed):\($0.callCount)" } }
        meta["dropout"] = dropouts.joined(separator: ",")
        meta["learning_rate"] = "\(optimizer.learningRate)"
        return (values, meta)
    }

    /// Restores everything ``saveCheckpoint(to:)`` wrote. All of it is validated before anything
    /// changes: a checkpoint for another model throws and leaves this trainer untouched.
    ///
    /// In distributed training this is a collective: rank 0 reads `path` and sends it to the other
    /// ranks (which need no access to the file), and every rank throws the same error if it cannot
    /// be read. The number of ranks may differ from the run that wrote it.
    public func loadCheckpoint(from path: String) throws {
        if let communicator {
            try loadCheckpoint(try receiveCheckpoint(path: path, communicator: communicator), path: path)
        } else {
            try loadCheckpoint(try SafeTensors(contentsOf: path), path: path)
        }
    }

    func loadCheckpoint(_ file: SafeTensors, path: String) throws {
        guard file.metadata["format"] == "swift-cnn checkpoint 1", let e = file.metadata["epoch"].flatMap(Int.init) else {
            throw CNNError.invalidFile("\(path): not a swift-cnn checkpoint (metadata format \(file.metadata["format"] ?? "missing"))")
        }
        var modelEntries: [String: Tensor] = [:], optimizerEntries: [(String, Tensor)] = []
        for name in file.names {
            if name.hasPrefix("model.") { modelEntries[String(name.dropFirst(6))] = try file.tensor(named: name) }
            else if name.hasPrefix("optimizer.") { optimizerEntries.append((String(name.dropFirst(10)), try file.tensor(named: name))) }
        }
        let decoder = JSONDecoder()
        let schedState = try file.metadata["schedule"].map { try decoder.decode(LearningRateScheduler.State.self, from: Data($0.utf8)) }
        let plateauState = try file.metadata["plateau"].map { try decoder.decode(ReduceLROnPlateau.State.self, from: Data($0.utf8)) }
        let hist = try file.metadata["history"].map { try decoder.decode([EpochRecord].self, from: Data($0.utf8)) } ?? []
        // Validate the model part first without applying (a dry run on the same checks).
        let snapshot = model.stateDictionary()
        try model.loadStateDictionary(modelEntries, strict: true)
        do {
            try optimizer.loadStateDictionary(optimizerEntries)
        } catch {
            try model.loadStateDictionary(Dictionary(uniqueKeysWithValues: snapshot), strict: true)
            throw error
        }
        if let s = schedState, let scheduler { try scheduler.load(s) }
        if let s = plateauState, let plateau { try plateau.load(s) }
        if let lr = file.metadata["learning_rate"].flatMap(Float.init) { optimizer.learningRate = lr }
        var dropoutState: [String: (UInt64, UInt64)] = [:]
        for item in (file.metadata["dropout"] ?? "").split(separator: ",") {
            let parts = item.split(separator: "=")
            guard parts.count == 2 else { continue }
            let nums = parts[1].split(separator: ":").compactMap { UInt64($0) }
            if nums.count == 2 { dropoutState[String(parts[0])] = (nums[0], nums[1]) }
        }
        for (name, m) in model.namedModules() {
            if let d = m as? Dropout, let s = dropoutState[name] { d.seed = s.0; d.callCount = s.1 }
        }
        epoch = e
        history = hist
    }
}
