import Foundation

/// Images and integer labels held in memory: `images` is `[N, C, H, W]`, `labels` has N entries
/// in `0..<classes`.
public struct LabeledDataset: Sendable {
    /// `[N, C, H, W]`, typically scaled to `[0, 1]`.
    public var images: Tensor
    /// One label per image.
    public var labels: [Int32]
    /// The number of classes.
    public var classes: Int
    /// Class names for display (e.g. `"airplane"`), or digits.
    public var classNames: [String]

    /// Creates a data set, checking that images and labels agree.
    ///
    /// - Throws: ``CNNError/shapeMismatch(_:)`` when the counts differ or the images are not 4-D;
    ///   ``CNNError/invalidArgument(_:)`` naming the first label outside `0..<classes`.
    public init(images: Tensor, labels: [Int32], classes: Int, classNames: [String]? = nil) throws {
        guard images.rank == 4 else {
            throw CNNError.shapeMismatch("LabeledDataset: images must be [N, C, H, W], got \(images.shape)")
        }
        guard images.shape[0] == labels.count else {
            throw CNNError.shapeMismatch("LabeledDataset: \(images.shape[0]) images but \(labels.count) labels")
        }
        guard classes >= 1 else { throw CNNError.invalidArgument("LabeledDataset: classes \(classes) must be positive") }
        if let bad = labels.firstIndex(where: { $0 < 0 || Int($0) >= classes }) {
            throw CNNError.invalidArgument("LabeledDataset: label \(labels[bad]) at index \(bad) is outside 0..<\(classes)")
        }
        self.images = images
        self.labels = labels
        self.classes = classes
        self.classNames = classNames ?? (0..<classes).map(String.init)
    }

    /// The number of examples.
    public var count: Int { labels.count }

    /// The shape of one example, `[C, H, W]`.
    public var exampleShape: [Int] { Array(images.shape.dropFirst()) }

    /// The first `n` examples (all if fewer).
    public func prefix(_ n: Int) throws -> LabeledDataset {
        let m = Swift.max(0, Swift.min(n, count))
        return try LabeledDataset(images: images.slice(batch: 0..<m), labels: Array(labels[0..<m]), classes: classes, classNames: classNames)
    }

    /// Per-channel mean and standard deviation over the whole set (for normalisation).
    public func channelStatistics() -> (mean: [Float], standardDeviation: [Float]) {
        let c = images.shape[1], hw = images.shape[2] * images.shape[3], n = images.shape[0]
        var sum = [Double](repeating: 0, count: c), sq = [Double](repeating: 0, count: c)
        images.withUnsafeBufferPointer { p in
            for i in 0..<n {
                for ch in 0..<c {
                    let base = (i * c + ch) * hw
                    var s = 0.0, s2 = 0.0
                    for j in 0..<hw { let v = Double(p[base + j]); s += v; s2 += v * v }
                    sum[ch] += s; sq[ch] += s2
                }
            }
        }
        let total = Double(Swift.max(n * hw, 1))
        let mean = sum.map { $0 / total }
        let std = zip(sq, mean).map { Swift.max($0 / total - $1 * $1, 0).squareRoot() }
        return (mean.map(Float.init), std.map { Float(Swift.max($0, 1e-12)) })
    }
}

/// One mini-batch: `images` `[B, C, H, W]` and their labels.
public struct Batch: Sendable {
    /// `[B, C, H, W]`.
    public var images: Tensor
    /// B labels.
    public var labels: [Int32]
}

/// Data augmentations of the lecture: random crops with zero padding and horizontal flips.
public struct Augmentation: Sendable, Equatable {
    /// Pixels of zero padding before a random crop back to the original size (0: none).
    public var cropPadding: Int
    /// Whether to flip each image horizontally with probability 1/2.
    public var horizontalFlip: Bool

    /// Creates an augmentation.
    public init(cropPadding: Int = 0, horizontalFlip: Bool = false) {
        self.cropPadding = cropPadding
        self.horizontalFlip = horizontalFlip
    }

    /// No augmentation.
    public static let none = Augmentation()
    /// CIFAR-10's standard: 4-pixel padded random crops and flips.
    public static let cifar = Augmentation(cropPadding: 4, horizontalFlip: true)
}

/// Serves a data set in mini-batches: seeded shuffling per epoch, optional drop-last, per-channel
/// normalisation, augmentation, and the next batch prepared in the background while the current
/// one is being used.
///
/// The order and the augmentation of epoch `e` depend only on `(seed, e)`, so a resumed run sees
/// exactly the batches an uninterrupted one would.
public struct DataLoader: Sendable {
    public let dataset: LabeledDataset
    public let batchSize: Int
    public let shuffle: Bool
    public let dropLast: Bool
    public let seed: UInt64
    /// Per-channel `(x − mean) / std`; `nil` leaves the values as stored.
    public let normalization: (mean: [Float], standardDeviation: [Float])?
    public let augmentation: Augmentation
    /// Whether to prepare the next batch on a background thread.
    public let prefetch: Bool

    /// Creates a loader.
    ///
    /// - Throws: ``CNNError/invalidArgument(_:)`` for a batch size below 1, an empty data set,
    ///   normalisation vectors of the wrong length or a zero standard deviation.
    public init(dataset: LabeledDataset, batchSize: Int, shuffle: Bool = true, dropLast: Bool = false, seed: UInt64 = 0,
                normalization: (mean: [Float], standardDeviation: [Float])? = nil, augmentation: Augmentation = .none,
                prefetch: Bool = true) throws {
        guard batchSize >= 1 else { throw CNNError.invalidArgument("DataLoader: batch size \(batchSize) must be at least 1") }
        guard dataset.count >= 1 else { throw CNNError.invalidArgument("DataLoader: the data set is empty") }
        let c = dataset.images.shape[1]
        if let n = normalization {
            guard n.mean.count == c, n.standardDeviation.count == c else {
                throw CNNError.shapeMismatch("DataLoader: normalisation has \(n.mean.count) means and \(n.standardDeviation.count) deviations for \(c) channels")
            }
            guard n.standardDeviation.allSatisfy({ $0 > 0 }) else {
                throw CNNError.invalidArgument("DataLoader: standard deviations \(n.standardDeviation) must be positive")
            }
        }
        guard augmentation.cropPadding >= 0 else {
            throw CNNError.invalidArgument("DataLoader: crop padding \(augmentation.cropPadding) must not be negative")
        }
        self.dataset = dataset; self.batchSize = batchSize; self.shuffle = shuffle; self.dropLast = dropLast
        self.seed = seed; self.normalization = normalization; self.augmentation = augmentation; self.prefetch = prefetch
    }

    /// Batches per epoch.
    public var batchCount: Int {
        dropLast ? dataset.count / batchSize : (dataset.count + batchSize - 1) / batchSize
    }

    /// The example order of an epoch.
    public func order(epoch: Int) -> [Int] {
        var idx = Array(0..<dataset.count)
        guard shuffle else { return idx }
        var g = SeededGenerator(seed: seed &+ UInt64(truncatingIfNeeded: epoch) &* 0x9E37_79B9_7F4A_7C15)
        // Fisher–Yates with the package's generator (reproducible across platforms).
        for i in stride(from: idx.count - 1, to: 0, by: -1) {
            let j = Int(g.next() % UInt64(i + 1))
            idx.swapAt(i, j)
        }
        return idx
    }

    /// Builds batch `b` of `epoch` (normalised and augmented), or with `shard` only that rank's
    /// part of it (see ``DataShard/part(of:)``; it may be empty in a short last batch).
    public func batch(_ b: Int, epoch: Int, order: [Int]? = nil, shard: DataShard? = nil) throws -> Batch {
        guard b >= 0, b < batchCount else {
            throw CNNError.invalidArgument("DataLoader: batch \(b) is outside 0..<\(batchCount)")
        }
        let ord = order ?? self.order(epoch: epoch)
        var range = (b * batchSize)..<Swift.min(b * batchSize + batchSize, ord.count)
        if let shard { range = shard.part(of: range) }
        let start = range.lowerBound, end = range.upperBound
        let shape = dataset.images.shape
        let c = shape[1], h = shape[2], w = shape[3], plane = h * w, item = c * plane
        let n = end - start
        var images = try Tensor(uninitializedShape: [n, c, h, w])
        var labels = [Int32](repeating: 0, count: n)
        // Ranks other than 0 draw their augmentation from their own stream.
        let rankSalt = UInt64(shard?.rank ?? 0) &* 0xD1B5_4A32_D192_ED03
        var g = SeededGenerator(seed: seed ^ 0xA5A5_5A5A ^ (UInt64(truncatingIfNeeded: epoch) << 32) ^ UInt64(b) ^ rankSalt)
        let pad = augmentation.cropPadding
        dataset.images.withUnsafeBufferPointer { src in
            images.withUnsafeMutableBufferPointer { dst in
                for i in 0..<n {
                    let s = ord[start + i]
                    labels[i] = dataset.labels[s]
                    let dy = pad > 0 ? Int(g.next() % UInt64(2 * pad + 1)) - pad : 0
                    let dx = pad > 0 ? Int(g.next() % UInt64(2 * pad + 1)) - pad : 0
                    let flip = augmentation.horizontalFlip && (g.next() & 1) == 1
                    for ch in 0..<c {
                        let mean = normalization?.mean[ch] ?? 0
                        let inv = 1 / (normalization?.standardDeviation[ch] ?? 1)
                        let sBase = s * item + ch * plane, dBase = i * item + ch * plane
                        for y in 0..<h {
                            let sy = y + dy
                            for x in 0..<w {
                                let sxBase = flip ? (w - 1 - x) : x
                                let sx = sxBase + dx
                                // Zero padding is applied before normalisation, as torchvision's
                                // RandomCrop(padding) on the unnormalised image does.
                                let v: Float = (sy >= 0 && sy < h && sx >= 0 && sx < w) ? src[sBase + sy * w + sx] : 0
                                dst[dBase + y * w + x] = (v - mean) * inv
                            }
                        }
                    }
                }
            }
        }
        return Batch(images: images, labels: labels)
    }

    /// The batches of one epoch, in order, the next one prepared in the background while the
    /// caller works on the current one.
    ///
    /// With `shard`, each batch is only that rank's part of the global batch (the global batches,
    /// and so ``batchCount``, are the same for every rank count).
    public func batches(epoch: Int, shard: DataShard? = nil) -> BatchSequence { BatchSequence(loader: self, epoch: epoch, shard: shard) }
}

/// The batches of one epoch of a ``DataLoader``.
public struct BatchSequence: Sequence {
    let loader: DataLoader
    let epoch: Int
    let shard: DataShard?

    /// Iterates the epoch.
    public func makeIterator() -> Iterator { Iterator(loader: loader, epoch: epoch, shard: shard) }

    /// Yields batches; a failure to build a batch (only possible when out of memory) ends the epoch
    /// and is reported by ``error``.
    public final class Iterator: IteratorProtocol {
        let loader: DataLoader
        let epoch: Int
        let order: [Int]
        let shard: DataShard?
        var nextIndex = 0
        var pending: PrefetchSlot?
        /// The error that ended the epoch early, if any.
        public private(set) var error: Error?

        init(loader: DataLoader, epoch: Int, shard: DataShard?) {
            self.loader = loader
            self.epoch = epoch
            self.shard = shard
            self.order = loader.order(epoch: epoch)
            if loader.prefetch { pending = schedule(0) }
        }

        private func schedule(_ b: Int) -> PrefetchSlot? {
            guard b < loader.batchCount else { return nil }
            let slot = PrefetchSlot()
            let loader = self.loader, epoch = self.epoch, order = self.order, shard = self.shard
            let thread = Thread {
                slot.fill(Result { try loader.batch(b, epoch: epoch, order: order, shard: shard) })
            }
            thread.stackSize = 1 << 20
            thread.start()
            return slot
        }

        /// The next batch, or `nil` at the end of the epoch.
        public func next() -> Batch? {
            guard error == nil, nextIndex < loader.batchCount else { return nil }
            let b = nextIndex
            nextIndex += 1
            let result: Result<Batch, Error>
            if let slot = pending {
                result = slot.wait()
                pending = schedule(b + 1)
            } else {
                result = Result { try loader.batch(b, epoch: epoch, order: order, shard: shard) }
            }
            switch result {
            case .success(let batch): return batch
            case .failure(let e): error = e; return nil
            }
        }
    }
}

/// A one-shot handoff from the prefetching thread.
final class PrefetchSlot: @unchecked Sendable {
    private let condition = NSCondition()
    private var value: Result<Batch, Error>?

    func fill(_ v: Result<Batch, Error>) {
        condition.lock()
        value = v
        condition.signal()
        condition.unlock()
    }

    func wait() -> Result<Batch, Error> {
        condition.lock()
        while value == nil { condition.wait() }
        let v = value!
        condition.unlock()
        return v
    }
}
