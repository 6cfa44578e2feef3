import CNNKernels

extension Tensor {
    /// The shape two shapes broadcast to (NumPy/PyTorch rules: align trailing dimensions; each pair
    /// must be equal or contain a 1).
    public static func broadcastShape(_ a: [Int], _ b: [Int], operation: String = "broadcast") throws -> [Int] {
        let r = Swift.max(a.count, b.count)
        var out = [Int](repeating: 1, count: r)
        for i in 0..<r {
            let da = i < r - a.count ? 1 : a[i - (r - a.count)]
            let db = i < r - b.count ? 1 : b[i - (r - b.count)]
            guard da == db || da == 1 || db == 1 else {
                throw CNNError.shapeMismatch("\(operation): shapes \(a) and \(b) cannot be broadcast")
            }
            out[i] = da == 1 ? db : da
        }
        return out
    }

    /// Strides of `shape` when read as `target` (0 along broadcast dimensions).
    static func broadcastStrides(_ shape: [Int], to target: [Int]) -> [Int] {
        var strides = [Int](repeating: 0, count: target.count)
        var s = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            let ti = i + target.count - shape.count
            strides[ti] = shape[i] == 1 ? 0 : s
            s *= shape[i]
        }
        return strides
    }

    /// Applies `op` element by element with broadcasting.
    static func elementwise(_ a: Tensor, _ b: Tensor, operation: String, _ op: (Float, Float) -> Float) throws -> Tensor {
        let shape = try broadcastShape(a.shape, b.shape, operation: operation)
        let out = try Tensor(uninitializedShape: shape)
        let dst = out.storage.pointer, pa = a.storage.pointer, pb = b.storage.pointer
        if a.shape == b.shape {
            for i in 0..<out.count { dst[i] = op(pa[i], pb[i]) }
            return out
        }
        let sa = broadcastStrides(a.shape, to: shape), sb = broadcastStrides(b.shape, to: shape)
        let r = shape.count
        if r == 0 { dst[0] = op(pa[0], pb[0]); return out }
        // Innermost dimension as a tight loop; the outer ones walked with an index counter.
        let inner = shape[r - 1], ia = sa[r - 1], ib = sb[r - 1]
        var index = [Int](repeating: 0, count: r)
        var oa = 0, ob = 0, o = 0
        let outerCount = inner == 0 ? 0 : out.count / inner
        for _ in 0..<outerCount {
            for j in 0..<inner { dst[o + j] = op(pa[oa + j * ia], pb[ob + j * ib]) }
            o += inner
            var d = r - 2
            while d >= 0 {
                index[d] += 1
                oa += sa[d]; ob += sb[d]
                if index[d] < shape[d] { break }
                oa -= sa[d] * shape[d]; ob -= sb[d] * shape[d]
                index[d] = 0
                d -= 1
            }
        }
        return out
    }

    /// Element-wise sum with broadcasting.
    public static func + (lhs: Tensor, rhs: Tensor) throws -> Tensor {
        if lhs.shape == rhs.shape {
            let out = try Tensor(uninitializedShape: lhs.shape)
            Kernels.add(lhs.count, lhs.basePointer, rhs.basePointer, out.basePointer)
            return out
        }
        return try elementwise(lhs, rhs, operation: "add", +)
    }

    /// Element-wise difference with broadcasting.
    public static func - (lhs: Tensor, rhs: Tensor) throws -> Tensor {
        try elementwise(lhs, rhs, operation: "subtract", -)
    }

    /// Element-wise product with broadcasting.
    public static func * (lhs: Tensor, rhs: Tensor) throws -> Tensor {
        if lhs.shape == rhs.shape {
            let out = try Tensor(uninitializedShape: lhs.shape)
            Kernels.mul(lhs.count, lhs.basePointer, rhs.basePointer, out.basePointer)
            return out
        }
        return try elementwise(lhs, rhs, operation: "multiply", *)
    }

    /// Element-wise quotient with broadcasting.
    public static func / (lhs: Tensor, rhs: Tensor) throws -> Tensor {
        try elementwise(lhs, rhs, operation: "divide", /)
    }

    /// Applies `transform` to every element.
    public func map(_ transform: (Float) -> Float) -> Tensor {
        let out = try! Tensor(uninitializedShape: shape)  // same shape as an existing tensor
        let src = storage.pointer, dst = out.storage.pointer
        for i in 0..<count { dst[i] = transform(src[i]) }
        return out
    }

    /// Every element plus a scalar.
    public static func + (lhs: Tensor, rhs: Float) -> Tensor { lhs.map { $0 + rhs } }
    /// Every element minus a scalar.
    public static func - (lhs: Tensor, rhs: Float) -> Tensor { lhs.map { $0 - rhs } }
    /// Every element times a scalar.
    public static func * (lhs: Tensor, rhs: Float) -> Tensor {
        let out = try! Tensor(uninitializedShape: lhs.shape)
        Kernels.scale(lhs.count, rhs, lhs.basePointer, out.basePointer)
        return out
    }
    /// A scalar times every element.
    public static func * (lhs: Float, rhs: Tensor) -> Tensor { rhs * lhs }
    /// Every element divided by a scalar.
    public static func / (lhs: Tensor, rhs: Float) -> Tensor { lhs.map { $0 / rhs } }
    /// Every element negated.
    public static prefix func - (x: Tensor) -> Tensor { x * -1 }

    /// Adds `other * alpha` in place (shapes must match exactly).
    public mutating func add(_ other: Tensor, scaledBy alpha: Float = 1) throws {
        guard other.shape == shape else {
            throw CNNError.shapeMismatch("add(_:scaledBy:): shapes \(shape) and \(other.shape) differ")
        }
        makeUnique()
        Kernels.axpy(count, alpha, other.basePointer, basePointer)
    }

    /// Sets every element to `value`.
    public mutating func fill(_ value: Float) {
        makeUnique()
        storage.pointer.update(repeating: value, count: count)
    }

    // MARK: Reductions

    /// The sum of all elements (accumulated in double precision).
    public func sum() -> Float { Float(Kernels.sum(count, basePointer)) }

    /// The mean of all elements (NaN for an empty tensor).
    public func mean() -> Float { count == 0 ? .nan : Float(Kernels.sum(count, basePointer) / Double(count)) }

    /// The largest element (NaN for an empty tensor).
    public func max() -> Float {
        guard count > 0 else { return .nan }
        var m = storage.pointer[0]
        for i in 1..<count where storage.pointer[i] > m || storage.pointer[i].isNaN { m = storage.pointer[i] }
        return m
    }

    /// The smallest element (NaN for an empty tensor).
    public func min() -> Float {
        guard count > 0 else { return .nan }
        var m = storage.pointer[0]
        for i in 1..<count where storage.pointer[i] < m || storage.pointer[i].isNaN { m = storage.pointer[i] }
        return m
    }

    func reduce(alongAxes axes: [Int], operation: String, keepingDimensions keep: Bool,
                _ initial: Double, _ combine: (Double, Float) -> Double, finish: (Double, Int) -> Float) throws -> Tensor {
        let normalized = Set(try axes.map { try normalizedAxis($0, operation: operation) })
        var outShape: [Int] = []
        for (i, d) in shape.enumerated() {
            if normalized.contains(i) { if keep { outShape.append(1) } } else { outShape.append(d) }
        }
        let keptShape = shape.enumerated().map { normalized.contains($0.offset) ? 1 : $0.element }
        var acc = [Double](repeating: initial, count: keptShape.reduce(1, *))
        let strides = Tensor.broadcastStrides(keptShape, to: shape)
        var index = [Int](repeating: 0, count: rank)
        var o = 0
        let src = storage.pointer
        for i in 0..<count {
            acc[o] = combine(acc[o], src[i])
            var d = rank - 1
            while d >= 0 {
                index[d] += 1
                o += strides[d]
                if index[d] < shape[d] { break }
                o -= strides[d] * shape[d]
                index[d] = 0
                d -= 1
            }
        }
        let reducedCount = normalized.reduce(1) { $0 * shape[$1] }
        return try Tensor(shape: outShape, scalars: acc.map { finish($0, reducedCount) })
    }

    /// Sums along the given axes (removed from the shape unless `keepingDimensions`).
    public func sum(alongAxes axes: [Int], keepingDimensions keep: Bool = false) throws -> Tensor {
        try reduce(alongAxes: axes, operation: "sum", keepingDimensions: keep, 0, { $0 + Double($1) }, finish: { v, _ in Float(v) })
    }

    /// Means along the given axes.
    public func mean(alongAxes axes: [Int], keepingDimensions keep: Bool = false) throws -> Tensor {
        try reduce(alongAxes: axes, operation: "mean", keepingDimensions: keep, 0, { $0 + Double($1) },
                   finish: { v, n in n == 0 ? .nan : Float(v / Double(n)) })
    }

    /// Maximum along one axis.
    public func max(alongAxis axis: Int, keepingDimensions keep: Bool = false) throws -> Tensor {
        try reduce(alongAxes: [axis], operation: "max", keepingDimensions: keep, -.infinity,
                   { Swift.max($0, Double($1)) }, finish: { v, _ in Float(v) })
    }

    /// Index of the largest element along one axis (first on ties), as a tensor of integers stored
    /// as floats; see ``argmaxIndices(alongAxis:)`` for `[Int]`.
    public func argmax(alongAxis axis: Int) throws -> Tensor {
        let idx = try argmaxIndices(alongAxis: axis)
        var outShape = shape
        outShape.remove(at: try normalizedAxis(axis, operation: "argmax"))
        return try Tensor(shape: outShape, scalars: idx.map(Float.init))
    }

    /// Index of the largest element along one axis, first on ties, in row-major order of the other axes.
    public func argmaxIndices(alongAxis axis: Int) throws -> [Int] {
        let a = try normalizedAxis(axis, operation: "argmax")
        let outer = shape[..<a].reduce(1, *), n = shape[a], inner = shape[(a + 1)...].reduce(1, *)
        guard n > 0 else { throw CNNError.invalidArgument("argmax: axis \(axis) of shape \(shape) is empty") }
        var result = [Int](repeating: 0, count: outer * inner)
        let p = storage.pointer
        for o in 0..<outer {
            for i in 0..<inner {
                var best = 0
                var bestValue = p[o * n * inner + i]
                for k in 1..<n {
                    let v = p[(o * n + k) * inner + i]
                    if v > bestValue { best = k; bestValue = v }
                }
                result[o * inner + i] = best
            }
        }
        return result
    }

    /// Whether every element is within `absoluteTolerance + relativeTolerance * |other|` of `other`'s
    /// (shapes must be equal; NaN never matches).
    public func allClose(_ other: Tensor, relativeTolerance: Float = 1e-5, absoluteTolerance: Float = 1e-8) -> Bool {
        guard shape == other.shape else { return false }
        let a = storage.pointer, b = other.storage.pointer
        for i in 0..<count {
            let d = abs(a[i] - b[i])
            if !(d <= absoluteTolerance + relativeTolerance * abs(b[i])) { return false }
        }
        return true
    }

    /// The largest absolute element-wise difference (infinity if the shapes differ or NaN appears).
    public func maxAbsoluteDifference(_ other: Tensor) -> Float {
        guard shape == other.shape else { return .infinity }
        var m: Float = 0
        for i in 0..<count {
            let d = abs(storage.pointer[i] - other.storage.pointer[i])
            if d.isNaN { return .infinity }
            m = Swift.max(m, d)
        }
        return m
    }

    /// Whether every element is finite.
    public var isFinite: Bool {
        for i in 0..<count where !storage.pointer[i].isFinite { return false }
        return true
    }
}
