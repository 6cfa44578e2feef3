/// Averages the parameter gradients of one training step over the ranks of a ``Communicator``,
/// weighting every rank by the number of examples it used, so that N ranks step exactly as one
/// process with the whole global batch would (up to float rounding).
///
/// The gradients are flattened (in parameter order, behind a header) into one logical vector and
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
final class GradientSynchronizer {
    let communicator: any Communicator
    let parameters: [Variable]
    let offsets: [Int]
    let totalElements: Int
    let bucketElements: Int
    private var bucket: [Float]

    static let headerFields = 3
    /// 4 Mi floats (16 MiB): a LeNet-5 or ResNet-20 step is one message; a ResNet-50 step (25.6 M
    /// parameters) is 7, near PyTorch DDP's 25 MB default bucket.
    static let defaultBucketElements = 4 << 20

    init(communicator: any Communicator, parameters: [Variable], bucketElements: Int = GradientSynchronizer.defaultBucketElements) {
        precondition(bucketElements >= 1)
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
        self.bucket = []
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

    /// Calls `body(k, range)` for every parameter `k` whose elements overlap `window`, with the
    /// overlap in flattened coordinates.
    private func forEachSegment(_ window: Range<Int>, _ body: (Int, Range<Int>) throws -> Void) rethrows {
        for k in parameters.indices {
            let lo = max(offsets[k], window.lowerBound), hi = min(offsets[k] + parameters[k].value.count, window.upperBound)
            if lo < hi { try body(k, lo..<hi) }
        }
    }
}
