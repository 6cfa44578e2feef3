import CNNKernels

/// Differentiable operations on ``Variable``s: the functional form of every layer.
///
/// Each function checks its arguments, runs the C kernel, and — when gradients are being recorded —
/// leaves a record whose backward pass calls the matching backward kernel. Layers (``Conv2d``,
/// ``BatchNorm2d``...) are thin modules over these.
public enum Functional {}

func check(_ status: cnn_status, _ operation: @autoclosure () -> String) throws {
    switch status {
    case CNN_OK: return
    case CNN_ERR_UNSUPPORTED: throw CNNError.unsupported(operation())
    case CNN_ERR_OUT_OF_MEMORY: throw CNNError.outOfMemory(operation())
    default: throw CNNError.invalidArgument(operation())
    }
}

extension Tensor {
    /// Sums a broadcast gradient back to `shape` (the inverse of broadcasting).
    func reduced(toShape target: [Int]) throws -> Tensor {
        if shape == target { return self }
        let lead = rank - target.count
        var axes: [Int] = Array(0..<lead)
        for (i, d) in target.enumerated() where d == 1 && shape[lead + i] != 1 { axes.append(lead + i) }
        let s = try sum(alongAxes: axes, keepingDimensions: true)
        return try s.reshaped(to: target)
    }
}

extension Functional {
    // MARK: Elementwise

    /// `a + b` with broadcasting.
    public static func add(_ a: Variable, _ b: Variable) throws -> Variable {
        let out = try a.value + b.value
        let sa = a.shape, sb = b.shape
        return Variable.result(out, operation: "add", inputs: [a, b]) { g in
            [try g.reduced(toShape: sa), try g.reduced(toShape: sb)]
        }
    }

    /// `a - b` with broadcasting.
    public static func subtract(_ a: Variable, _ b: Variable) throws -> Variable {
        let out = try a.value - b.value
        let sa = a.shape, sb = b.shape
        return Variable.result(out, operation: "subtract", inputs: [a, b]) { g in
            [try g.reduced(toShape: sa), try (-g).reduced(toShape: sb)]
        }
    }

    /// `a * b` element-wise with broadcasting.
    public static func multiply(_ a: Variable, _ b: Variable) throws -> Variable {
        let av = a.value, bv = b.value
        let out = try av * bv
        return Variable.result(out, operation: "multiply", inputs: [a, b]) { g in
            [try (g * bv).reduced(toShape: av.shape), try (g * av).reduced(toShape: bv.shape)]
        }
    }

    /// `x * scalar`.
    public static func scale(_ x: Variable, by s: Float) -> Variable {
        Variable.result(x.value * s, operation: "scale", inputs: [x]) { g in [g * s] }
    }

    /// Matrix product of rank-2 variables.
    public static func matmul(_ a: Variable, _ b: Variable) throws -> Variable {
        let av = a.value, bv = b.value
        let out = try av.matmul(bv)
        return Variable.result(out, operation: "matmul", inputs: [a, b]) { g in
            [try g.matmul(bv, transposeOther: true), try av.matmul(g, transposeSelf: true)]
        }
    }

    /// The sum of all elements, as a one-element variable.
    public static func sum(_ x: Variable) throws -> Variable {
        let shape = x.shape
        return Variable.result(Tensor(scalar: x.value.sum()), operation: "sum", inputs: [x]) { g in
            [try Tensor(repeating: try g.item(), shape: shape)]
        }
    }

    /// The mean of all elements.
    public static func mean(_ x: Variable) throws -> Variable {
        let shape = x.shape, n = Float(Swift.max(x.value.count, 1))
        return Variable.result(Tensor(scalar: x.value.mean()), operation: "mean", inputs: [x]) { g in
            [try Tensor(repeating: try g.item() / n, shape: shape)]
        }
    }

    /// The same elements in a new shape (one dimension may be -1).
    public static func reshape(_ x: Variable, to shape: [Int]) throws -> Variable {
        let out = try x.value.reshaped(to: shape)
        let original = x.shape
        return Variable.result(out, operation: "reshape", inputs: [x]) { g in [try g.reshaped(to: original)] }
    }

    /// `[N, d1, d2, ...]` to `[N, d1*d2*...]`.
    public static func flatten(_ x: Variable, startAxis: Int = 1) throws -> Variable {
        let out = try x.value.flattened(startAxis: startAxis)
        let original = x.shape
        return Variable.result(out, operation: "flatten", inputs: [x]) { g in [try g.reshaped(to: original)] }
    }

    /// Concatenation along an axis (channels, axis 1, for inception branches).
    public static func concatenate(_ xs: [Variable], alongAxis axis: Int = 1) throws -> Variable {
        let out = try Tensor.concatenate(xs.map(\.value), alongAxis: axis)
        let a = try out.normalizedAxis(axis, operation: "concatenate")
        let sizes = xs.map { $0.shape[a] }
        return Variable.result(out, operation: "concatenate", inputs: xs) { g in
            let outer = g.shape[..<a].reduce(1, *), inner = g.shape[(a + 1)...].reduce(1, *)
            let total = g.shape[a]
            var offset = 0
            var grads: [Tensor?] = []
            for (i, size) in sizes.enumerated() {
                let part = try Tensor(uninitializedShape: xs[i].shape)
                for o in 0..<outer {
                    (part.storage.pointer + o * size * inner).update(from: g.storage.pointer + (o * total + offset) * inner, count: size * inner)
                }
                offset += size
                grads.append(part)
            }
            return grads
        }
    }

    // MARK: Activations

    /// `max(x, 0)`.
    public static func relu(_ x: Variable) throws -> Variable {
        let out = try Tensor(uninitializedShape: x.shape)
        try check(cnn_relu_forward(Int64(out.count), x.value.basePointer, out.basePointer), "relu")
        return Variable.result(out, operation: "relu", inputs: [x]) { g in
            let dx = try Tensor(uninitializedShape: g.shape)
            try check(cnn_relu_backward(Int64(g.count), out.basePointer, g.basePointer, dx.basePointer), "relu backward")
            return [dx]
        }
    }

    /// `x` where positive, `slope * x` elsewhere.
    public static func leakyRelu(_ x: Variable, negativeSlope: Float = 0.01) throws -> Variable {
        let xv = x.value
        let out = try Tensor(uninitializedShape: x.shape)
        try check(cnn_leaky_relu_forward(Int64(out.count), negativeSlope, xv.basePointer, out.basePointer), "leaky relu")
        return Variable.result(out, operation: "leakyRelu", inputs: [x]) { g in
            let dx = try Tensor(uninitializedShape: g.shape)
            try check(cnn_leaky_relu_backward(Int64(g.count), negativeSlope, xv.basePointer, g.basePointer, dx.basePointer), "leaky relu backward")
            return [dx]
        }
    }

    static func rowsAndClasses(_ x: Tensor, _ operation: String) throws -> (Int, Int) {
        guard x.rank >= 1, let classes = x.shape.last, classes > 0 else {
            throw CNNError.shapeMismatch("\(operation): needs a tensor whose last axis holds the classes, got shape \(x.shape)")
        }
        return (x.count / classes, classes)
    }

    /// Softmax over the last axis.
    public static func softmax(_ x: Variable) throws -> Variable {
        let (rows, classes) = try rowsAndClasses(x.value, "softmax")
        let out = try Tensor(uninitializedShape: x.shape)
        try check(cnn_softmax_forward(Int64(rows), Int64(classes), x.value.basePointer, out.basePointer), "softmax")
        return Variable.result(out, operation: "softmax", inputs: [x]) { g in
            let dx = try Tensor(uninitializedShape: g.shape)
            try check(cnn_softmax_backward(Int64(rows), Int64(classes), out.basePointer, g.basePointer, dx.basePointer), "softmax backward")
            return [dx]
        }
    }

    /// Log-softmax over the last axis.
    public static func logSoftmax(_ x: Variable) throws -> Variable {
        let (rows, classes) = try rowsAndClasses(x.value, "logSoftmax")
        let out = try Tensor(uninitializedShape: x.shape)
        try check(cnn_log_softmax_forward(Int64(rows), Int64(classes), x.value.basePointer, out.basePointer), "log softmax")
        return Variable.result(out, operation: "logSoftmax", inputs: [x]) { g in
            let dx = try Tensor(uninitializedShape: g.shape)
            try check(cnn_log_softmax_backward(Int64(rows), Int64(classes), out.basePointer, g.basePointer, dx.basePointer), "log softmax backward")
            return [dx]
        }
    }

    // MARK: Losses

    /// How a loss combines the per-example values.
    public enum Reduction: Int32, Sendable {
        /// The mean over examples.
        case mean = 0
        /// The sum over examples.
        case sum = 1
    }

    /// Cross-entropy between logits `[N, classes]` and integer labels in `0..<classes`, optionally with
    /// label smoothing ε (targets `(1-ε)·onehot + ε/classes`, as PyTorch defines it).
    ///
    /// - Throws: ``CNNError/shapeMismatch(_:)`` when the label count differs from the batch;
    ///   ``CNNError/invalidArgument(_:)`` naming the first label out of range.
    public static func crossEntropy(logits: Variable, labels: [Int32], labelSmoothing: Float = 0,
                                    reduction: Reduction = .mean) throws -> Variable {
        guard logits.value.rank == 2 else {
            throw CNNError.shapeMismatch("crossEntropy: logits must be [batch, classes], got \(logits.shape)")
        }
        let rows = logits.shape[0], classes = logits.shape[1]
        guard labels.count == rows else {
            throw CNNError.shapeMismatch("crossEntropy: \(labels.count) labels for a batch of \(rows) (logits \(logits.shape))")
        }
        guard rows > 0 else { throw CNNError.invalidArgument("crossEntropy: batch size is 0") }
        if let bad = labels.firstIndex(where: { $0 < 0 || Int($0) >= classes }) {
            throw CNNError.invalidArgument("crossEntropy: label \(labels[bad]) at index \(bad) is outside 0..<\(classes)")
        }
        guard labelSmoothing >= 0, labelSmoothing <= 1 else {
            throw CNNError.invalidArgument("crossEntropy: label smoothing \(labelSmoothing) is outside [0, 1]")
        }
        let probs = try Tensor(uninitializedShape: logits.shape)
        var loss: Float = 0
        try labels.withUnsafeBufferPointer { lp in
            try check(cnn_cross_entropy_forward(Int64(rows), Int64(classes), logits.value.basePointer, lp.baseAddress,
                                                labelSmoothing, reduction.rawValue, &loss, probs.basePointer), "cross entropy")
        }
        return Variable.result(Tensor(scalar: loss), operation: "crossEntropy", inputs: [logits]) { g in
            let dx = try Tensor(uninitializedShape: probs.shape)
            let dloss = try g.item()
            try labels.withUnsafeBufferPointer { lp in
                try check(cnn_cross_entropy_backward(Int64(rows), Int64(classes), probs.basePointer, lp.baseAddress,
                                                     labelSmoothing, reduction.rawValue, dloss, dx.basePointer), "cross entropy backward")
            }
            return [dx]
        }
    }

    /// Mean (or summed) squared error.
    public static func meanSquaredError(_ x: Variable, target: Tensor, reduction: Reduction = .mean) throws -> Variable {
        guard x.shape == target.shape else {
            throw CNNError.shapeMismatch("meanSquaredError: prediction \(x.shape) and target \(target.shape) differ")
        }
        var loss: Float = 0
        let xv = x.value
        try check(cnn_mse_forward(Int64(xv.count), xv.basePointer, target.basePointer, reduction.rawValue, &loss), "mse")
        return Variable.result(Tensor(scalar: loss), operation: "meanSquaredError", inputs: [x]) { g in
            let dx = try Tensor(uninitializedShape: xv.shape)
            try check(cnn_mse_backward(Int64(xv.count), xv.basePointer, target.basePointer, reduction.rawValue, try g.item(), dx.basePointer), "mse backward")
            return [dx]
        }
    }
}
