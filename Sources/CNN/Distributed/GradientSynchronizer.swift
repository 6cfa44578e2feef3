/// How a distributed ``Trainer`` averages gradients over its ranks.
public struct GradientSynchronization: Sendable, Equatable {
    /// Whether gradient buckets are reduced while the backward pass still runs (PyTorch DDP's
    /// overlap): a bucket's non-blocking allreduce starts as soon as backward has produced all its
    /// gradients. Otherwise every bucket is reduced after backward, one after another. Both give the
    /// same gradients. A model with synchronised batch norm (whose backward pass itself communicates)
    /// is always synchronised after backward.
    public var overlapsBackward: Bool
    /// The largest bucket, in bytes of float32 gradients (a parameter larger than that gets a
    /// bucket of its own). Smaller buckets start earlier and overlap more; larger ones make fewer
    /// messages. The overlapped path's first bucket is at most 1 MiB, as in PyTorch DDP.
    public var bucketBytes: Int

    /// The default bucket: 4 MiB (1 Mi floats). Measured with ResNet-18 on 2 MPI ranks, overlapped
    /// steps were faster with 4 MiB buckets than with 16 MiB, whose last bucket (sent after
    /// backward) holds most of the first layers; the README gives the figures.
    public static let defaultBucketBytes = GradientSynchronizer.defaultBucketElements * 4

    /// Creates options.
    ///
    /// - Throws: ``CNNError/invalidArgument(_:)`` for a bucket smaller than one float (4 bytes).
    public init(overlapsBackward: Bool = true, bucketBytes: Int = GradientSynchronization.defaultBucketBytes) throws {
        guard bucketBytes >= 4 else {
            throw CNNError.invalidArgument("GradientSynchronization: bucket of \(bucketBytes) bytes is smaller than one float32 gradient (4 bytes)")
        }
        self.overlapsBackward = overlapsBackward
        self.bucketBytes = bucketBytes
    }
}

/// Averages the parameter gradients of one training step over the ranks of a ``Communicator``,
/// weighting every rank by the number of examples it used, so that N ranks step exactly as one
/// process with the whole global batch would (up to float rounding).
///
/// **After backward** (``synchronize(examples:lossSum:correct:)``): the gradients are flattened
/// (in parameter order, behind a header) into one logical vector and
/// reduced in buckets of at most ``bucketElements`` floats: a few large messages, through one
/// reusable buffer of that size, rather than one message per parameter.
///
/// The header, in the first bucket, is `[examples, loss sum, correct predictions, one flag per
/// parameter]`: the totals give the step's global metrics and the weight `1 / examples`; a
/// parameter's flag counts the ranks that produced a gradient for it, so a parameter unused
/// everywhere keeps a `nil` gradient (and its optimizer state does not advance) while one used on
/// some rank gets the average with zeros from the others — a rank with an empty part of a short
/// last batch still takes part with zeros.
///
/// Layout of the flattened vector (F = 3 + parameter count):
/// `[0, F)` header · then each parameter's `count` elements at its offset.
///
/// **Overlapped** (``beginOverlappedStep(examples:)``, ``gradientReady(_:)`` as the backward
/// pass's ready hook, ``finishOverlappedStep(lossSum:correct:)``), as PyTorch DDP: the parameters
/// are assigned once to buckets in *reverse* registration order (the order backward mostly
/// produces their gradients; the same on every rank, so no rank needs to ask another), the
/// first bucket holding at most ``firstBucketElements`` so that communication starts early. A
/// parameter's weighted gradient is copied into its bucket as soon as backward reports it final; a
/// bucket whose parameters are all in starts its non-blocking allreduce once every earlier bucket
/// has started (so all ranks start the same collectives in the same order whatever their graphs),
/// and every later report polls the requests in flight (MPI progresses them only inside MPI
/// calls). At the end, parameters backward did not reach are copied (zeros where there is no
/// gradient) and the remaining buckets start. The last bucket (the first layers' gradients, final
/// only at the very end of backward anyway) starts only then, carrying the header
/// `[examples, loss sum, correct, flags]` behind its gradients — the flags are known only now — so
/// a model of one bucket still sends one message per step. The sums are the same element-wise
/// sums as the other path's, so both give the same gradients bit for bit (with sums taken in a
/// fixed order, as the in-process communicator does and MPI does for 2 ranks).
final class GradientSynchronizer {
    let communicator: any Communicator
    let parameters: [Variable]
    let offsets: [Int]
    let totalElements: Int
    let bucketElements: Int
    private var bucket: [Float]

    static let headerFields = 3
    /// 1 Mi floats (4 MiB): a LeNet-5 or ResNet-20 step is still one message, ResNet-18 (11.2 M
    /// parameters) about 12. Measured with `cnn bench scaling --case resnet18` under
    /// `mpirun -np 2` (Open MPI 4.1.4, TCP loopback, 2-core AMD EPYC VM, one thread per rank, 4
    /// alternating runs, load 1.7-2.6, noisy): median step 398 ms overlapped with 4 MiB buckets,
    /// 459 ms overlapped with 16 MiB (its last bucket, sent only after backward, holds most of
    /// layers 1-3), 468 / 493 ms after backward with 4 / 16 MiB.
    static let defaultBucketElements = 1 << 20

    /// PyTorch DDP's `first_bucket_bytes_cap` (1 MiB): the overlapped path's first bucket (the last
    /// layers' gradients, ready first) is small so that its allreduce starts early.
    static let defaultFirstBucketElements = 1 << 18

    /// The overlapped path's buckets: parameter indices in reverse order, each bucket's
    /// parameters packed back to back in `buffer`.
    struct Bucket {
        var parameters: [Int] = []
        var elements = 0
        var buffer = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
        /// Parameters not yet copied in during the current step.
        var waiting = 0
        var request: CollectiveRequest?
    }
    private(set) var buckets: [Bucket] = []
    /// Parameter k's bucket and its offset there.
    private var bucketOf: [Int] = [], offsetInBucket: [Int] = []
    private let index: [ObjectIdentifier: Int]
    let firstBucketElements: Int
    private var stepOpen = false
    private var stepWeight: Float = 0
    private var ready: [Bool] = [], present: [Bool] = []
    /// The next bucket to start, and the oldest started one not known to be complete.
    private var nextStart = 0, oldestInFlight = 0
    /// The header's place, behind the last bucket's gradients.
    private var header = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)

    init(communicator: any Communicator, parameters: [Variable], bucketElements: Int = GradientSynchronizer.defaultBucketElements,
         firstBucketElements: Int = GradientSynchronizer.defaultFirstBucketElements) {
        precondition(bucketElements >= 1 && firstBucketElements >= 1)
        self.communicator = communicator
        self.parameters = parameters.filter(\.requiresGradient)
        var offset = Self.headerFields + self.parameters.count
        var offsets: [Int] = []
        for p in self.parameters {
            offsets.append(offset)
            offset += p.value.count
        }
        self.offsets = offsets
        self.totalElements = offset
        self.bucketElements = bucketElements
        self.firstBucketElements = min(firstBucketElements, bucketElements)
        self.bucket = []
        var index: [ObjectIdentifier: Int] = [:]
        for (k, p) in self.parameters.enumerated() { index[ObjectIdentifier(p)] = k }
        self.index = index
        // Buckets in reverse parameter order; a bucket takes the next parameter while it fits (a
        // parameter larger than a bucket gets one of its own).
        bucketOf = Array(repeating: 0, count: self.parameters.count)
        offsetInBucket = Array(repeating: 0, count: self.parameters.count)
        for k in self.parameters.indices.reversed() {
            let n = self.parameters[k].value.count
            let capacity = buckets.count <= 1 ? self.firstBucketElements : bucketElements
            if buckets.isEmpty || (buckets[buckets.count - 1].elements > 0 && buckets[buckets.count - 1].elements + n > capacity) {
                buckets.append(Bucket())
            }
            bucketOf[k] = buckets.count - 1
            offsetInBucket[k] = buckets[buckets.count - 1].elements
            buckets[buckets.count - 1].parameters.append(k)
            buckets[buckets.count - 1].elements += n
        }
        if buckets.isEmpty { buckets.append(Bucket()) }  // carries the header alone
    }

    deinit {
        // A bucket still in flight (a step abandoned by an error) may yet be written by the
        // communicator: leave its memory alone.
        guard oldestInFlight >= nextStart else { return }
        for b in buckets { b.buffer.deallocate() }
    }

    /// The number of messages one step sends.
    var bucketCount: Int { (totalElements + bucketElements - 1) / bucketElements }

    /// Replaces every gradient by the example-weighted average over the ranks and returns the
    /// step's global totals.
    ///
    /// - Parameters:
    ///   - examples: the examples this rank's gradients are the mean over (0 when it had none).
    ///   - lossSum: this rank's loss times `examples`.
    ///   - correct: this rank's correct predictions.
    func synchronize(examples: Int, lossSum: Double, correct: Int) throws -> (examples: Int, lossSum: Double, correct: Int) {
        let weight = Float(examples)
        var totals = (examples: 0, lossSum: 0.0, correct: 0)
        var scale: Float = 0
        var present = [Bool](repeating: false, count: parameters.count)
        // Gradients taken out of their variables so they are uniquely referenced and written in place.
        var gradients: [Tensor?] = parameters.map { $0.gradient }
        for p in parameters { p.gradient = nil }
        let header = Self.headerFields + parameters.count
        var start = 0
        while start < totalElements {
            let end = min(start + bucketElements, totalElements)
            if bucket.count != end - start { bucket = [Float](repeating: 0, count: end - start) }
            // Pack: header fields and `weight ×` each gradient (zeros where there is none).
            bucket.withUnsafeMutableBufferPointer { buf in
                for i in start..<max(start, min(end, header)) {
                    switch i {
                    case 0: buf[i - start] = weight
                    case 1: buf[i - start] = Float(lossSum)
                    case 2: buf[i - start] = Float(correct)
                    default: buf[i - start] = gradients[i - Self.headerFields] == nil ? 0 : 1
                    }
                }
                forEachSegment(start..<end) { k, range in
                    let dst = buf.baseAddress! + (range.lowerBound - start)
                    if let g = gradients[k] {
                        let src = g.basePointer + (range.lowerBound - offsets[k])
                        for j in 0..<range.count { dst[j] = weight * src[j] }
                    } else {
                        dst.update(repeating: 0, count: range.count)
                    }
                }
            }
            try bucket.withUnsafeMutableBufferPointer { try communicator.allReduceSum($0) }
            // Unpack: the header first (it is in the first bucket), then `sum / examples`.
            for i in start..<max(start, min(end, header)) {
                let v = bucket[i - start]
                switch i {
                case 0:
                    totals.examples = Int(v.rounded())
                    scale = totals.examples > 0 ? 1 / Float(totals.examples) : 0
                case 1: totals.lossSum = Double(v)
                case 2: totals.correct = Int(v.rounded())
                default: present[i - Self.headerFields] = v > 0
                }
            }
            try bucket.withUnsafeBufferPointer { buf in
                try forEachSegment(start..<end) { k, range in
                    guard present[k] else { gradients[k] = nil; return }
                    if gradients[k] == nil { gradients[k] = try Tensor(zeros: parameters[k].value.shape) }
                    gradients[k]!.makeUnique()
                    let dst = gradients[k]!.basePointer + (range.lowerBound - offsets[k])
                    let src = buf.baseAddress! + (range.lowerBound - start)
                    for j in 0..<range.count { dst[j] = src[j] * scale }
                }
            }
            start = end
        }
        for (p, g) in zip(parameters, gradients) { p.gradient = g }
        return totals
    }

    // MARK: Overlapped with the backward pass

    /// Buckets started so far in the current (or last) overlapped step.
    var startedBuckets: Int { nextStart }

    /// Opens a step of the overlapped path: call before the backward pass (also on a rank with no
    /// examples, which runs none).
    ///
    /// A step abandoned by an error before any bucket started (a failed forward pass) is
    /// discarded.
    ///
    /// - Parameter examples: the examples this rank's gradients will be the mean over.
    /// - Throws: ``CNNError/io(_:)`` when an abandoned step still has allreduces in flight (its
    ///   buffers cannot be reused; the ranks no longer agree on the collectives).
    func beginOverlappedStep(examples: Int) throws {
        guard oldestInFlight >= nextStart else {
            throw CNNError.io("distributed: rank \(communicator.rank): the previous step ended with \(nextStart - oldestInFlight) gradient allreduce(s) in flight; the ranks are out of step")
        }
        if header.count == 0 {
            let headerCount = Self.headerFields + parameters.count, last = buckets.count - 1
            for b in buckets.indices { buckets[b].buffer = .allocate(capacity: buckets[b].elements + (b == last ? headerCount : 0)) }
            header = UnsafeMutableBufferPointer(start: buckets[last].buffer.baseAddress! + buckets[last].elements, count: headerCount)
        }
        stepOpen = true
        stepWeight = Float(examples)
        ready = Array(repeating: false, count: parameters.count)
        present = Array(repeating: false, count: parameters.count)
        for b in buckets.indices { buckets[b].waiting = buckets[b].parameters.count; buckets[b].request = nil }
        nextStart = 0
        oldestInFlight = 0
    }

    /// The backward pass's ready hook (``Variable/backward(seed:onGradientReady:)``): copies a
    /// parameter's final gradient into its bucket, starts the buckets that are complete, and polls
    /// those in flight. Leaves that are not among ``parameters`` are ignored.
    func gradientReady(_ leaf: Variable) throws {
        precondition(stepOpen, "GradientSynchronizer: gradientReady outside an overlapped step")
        guard let k = index[ObjectIdentifier(leaf)] else { return }
        precondition(!ready[k], "GradientSynchronizer: parameter \(k) reported ready twice in one step")
        pack(k)
        try startCompleteBuckets()
        try poll()
    }

    /// Ends the overlapped step: copies the parameters backward did not report, starts the
    /// remaining buckets (the last with the header), waits for all of them, then replaces every gradient by
    /// the example-weighted average over the ranks (as ``synchronize(examples:lossSum:correct:)``)
    /// and returns the step's global totals.
    ///
    /// - Parameters:
    ///   - lossSum: this rank's loss times its examples.
    ///   - correct: this rank's correct predictions.
    func finishOverlappedStep(lossSum: Double, correct: Int) throws -> (examples: Int, lossSum: Double, correct: Int) {
        precondition(stepOpen, "GradientSynchronizer: finishOverlappedStep without beginOverlappedStep")
        stepOpen = false
        for k in parameters.indices where !ready[k] { pack(k) }
        header[0] = stepWeight
        header[1] = Float(lossSum)
        header[2] = Float(correct)
        for k in parameters.indices { header[Self.headerFields + k] = present[k] ? 1 : 0 }
        try startCompleteBuckets(finishing: true)
        while oldestInFlight < nextStart {
            try communicator.wait(buckets[oldestInFlight].request!)
            oldestInFlight += 1
        }
        let examples = Int(header[0].rounded())
        let totals = (examples: examples, lossSum: Double(header[1]), correct: Int(header[2].rounded()))
        let scale: Float = examples > 0 ? 1 / Float(examples) : 0
        for k in parameters.indices {
            let p = parameters[k]
            guard header[Self.headerFields + k] > 0 else { p.gradient = nil; continue }
            var g = try p.gradient ?? Tensor(zeros: p.value.shape)
            p.gradient = nil
            g.makeUnique()
            let src = buckets[bucketOf[k]].buffer.baseAddress! + offsetInBucket[k]
            let dst = g.basePointer
            for j in 0..<g.count { dst[j] = src[j] * scale }
            p.gradient = g
        }
        return totals
    }

    /// Copies `weight ×` parameter k's gradient (zeros where it has none) into its bucket.
    private func pack(_ k: Int) {
        ready[k] = true
        let b = bucketOf[k]
        let dst = buckets[b].buffer.baseAddress! + offsetInBucket[k]
        let n = parameters[k].value.count
        if let g = parameters[k].gradient {
            present[k] = true
            let src = g.basePointer, weight = stepWeight
            for j in 0..<n { dst[j] = weight * src[j] }
        } else {
            dst.update(repeating: 0, count: n)
        }
        buckets[b].waiting -= 1
    }

    /// Starts, in bucket order, every bucket whose parameters are all copied in; the last bucket
    /// (with the header) only when `finishing`.
    private func startCompleteBuckets(finishing: Bool = false) throws {
        while nextStart < buckets.count - (finishing ? 0 : 1), buckets[nextStart].waiting == 0 {
            buckets[nextStart].request = try communicator.startAllReduceSum(buckets[nextStart].buffer)
            nextStart += 1
        }
    }

    /// Tests the buckets in flight, oldest first, up to the first that is not complete.
    private func poll() throws {
        while oldestInFlight < nextStart, try communicator.test(buckets[oldestInFlight].request!) {
            oldestInFlight += 1
        }
    }

    /// Calls `body(k, range)` for every parameter `k` whose elements overlap `window`, with the
    /// overlap in flattened coordinates.
    private func forEachSegment(_ window: Range<Int>, _ body: (Int, Range<Int>) throws -> Void) rethrows {
        for k in parameters.indices {
            let lo = max(offsets[k], window.lowerBound), hi = min(offsets[k] + parameters[k].value.count, window.upperBound)
            if lo < hi { try body(k, lo..<hi) }
        }
    }
}
