/// Loss, accuracy and confusion matrix of a model on a data set.
public struct Evaluation: Sendable, Equatable {
    /// Mean cross-entropy per example.
    public var loss: Double
    /// Fraction of examples whose top prediction is the label (0...1).
    public var accuracy: Double
    /// `confusion[label][prediction]` counts.
    public var confusion: [[Int]]
    /// Examples seen.
    public var count: Int

    /// Accumulates one batch.
    mutating func add(logits: Tensor, labels: [Int32], batchLoss: Double) throws {
        let predictions = try logits.argmaxIndices(alongAxis: 1)
        for (p, l) in zip(predictions, labels) {
            confusion[Int(l)][p] += 1
        }
        let correctBefore = accuracy * Double(count)
        let correct = correctBefore + Double(zip(predictions, labels).filter { $0 == Int($1) }.count)
        loss = (loss * Double(count) + batchLoss * Double(labels.count)) / Double(count + labels.count)
        count += labels.count
        accuracy = correct / Double(count)
    }

    init(classes: Int) {
        loss = 0; accuracy = 0; count = 0
        confusion = Array(repeating: Array(repeating: 0, count: classes), count: classes)
    }

    /// The confusion matrix as an aligned text table with class names.
    public func confusionTable(classNames: [String]) -> String {
        let width = max(6, (classNames.map(\.count).max() ?? 1) + 1)
        func pad(_ s: String) -> String { String(repeating: " ", count: max(0, width - s.count)) + s }
        var out = pad("true\\pred") + classNames.map(pad).joined() + "\n"
        for (i, row) in confusion.enumerated() {
            out += pad(i < classNames.count ? classNames[i] : "\(i)") + row.map { pad("\($0)") }.joined() + "\n"
        }
        return out
    }
}

extension Module {
    /// Evaluates the model in eval mode (restoring the previous mode afterwards) on every batch of
    /// `loader`'s epoch 0 order, without recording gradients.
    public func evaluate(on loader: DataLoader) throws -> Evaluation {
        let wasTraining = isTraining
        eval()
        defer { setTraining(wasTraining) }
        var result = Evaluation(classes: loader.dataset.classes)
        try GradientMode.withoutGradients {
            let batches = loader.batches(epoch: 0)
            let it = batches.makeIterator()
            while let batch = it.next() {
                let logits = try forward(Variable(batch.images))
                let loss = try Functional.crossEntropy(logits: logits, labels: batch.labels)
                try result.add(logits: logits.value, labels: batch.labels, batchLoss: Double(try loss.value.item()))
            }
            if let e = it.error { throw e }
        }
        return result
    }
}
