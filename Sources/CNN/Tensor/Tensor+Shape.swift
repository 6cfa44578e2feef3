import CNNKernels

extension Tensor {
    func normalizedAxis(_ axis: Int, rank r: Int? = nil, operation: String) throws -> Int {
        let r = r ?? rank
        let a = axis < 0 ? axis + r : axis
        guard a >= 0, a < r else {
            throw CNNError.invalidArgument("\(operation): axis \(axis) is out of range for a tensor of shape \(shape)")
        }
        return a
    }

    /// The same elements with a new shape. One dimension may be `-1`, inferred from the rest.
    ///
    /// - Throws: ``CNNError/shapeMismatch(_:)`` when the element counts differ.
    public func reshaped(to newShape: [Int]) throws -> Tensor {
        var target = newShape
        let inferred = target.indices.filter { target[$0] == -1 }
        guard inferred.count <= 1 else {
            throw CNNError.invalidArgument("reshape: more than one -1 in \(newShape)")
        }
        if let i = inferred.first {
            var known = 1
            for (j, d) in target.enumerated() where j != i {
                guard d > 0 else { throw CNNError.invalidArgument("reshape: dimension \(d) in \(newShape) must be positive when -1 is used") }
                known *= d
            }
            guard count % known == 0 else {
                throw CNNError.shapeMismatch("reshape: cannot reshape \(shape) (\(count) elements) to \(newShape)")
            }
            target[i] = count / known
        }
        let n = try Tensor.elementCount(of: target, operation: "reshape")
        guard n == count else {
            throw CNNError.shapeMismatch("reshape: cannot reshape \(shape) (\(count) elements) to \(newShape) (\(n) elements)")
        }
        return viewed(as: target)
    }

    /// Collapses the dimensions from `startAxis` on into one: `[N, C, H, W]` becomes `[N, C*H*W]`
    /// with the default `startAxis` of 1.
    public func flattened(startAxis: Int = 1) throws -> Tensor {
        if rank == 0 { return viewed(as: [1]) }
        let a = try normalizedAxis(startAxis, operation: "flatten")
        let head = Array(shape[..<a])
        let tail = shape[a...].reduce(1, *)
        return viewed(as: head + [tail])
    }

    /// The transpose of a matrix.
    ///
    /// - Throws: ``CNNError/shapeMismatch(_:)`` unless the tensor has rank 2.
    public func transposed() throws -> Tensor {
        guard rank == 2 else {
            throw CNNError.shapeMismatch("transposed: needs a rank-2 tensor, got shape \(shape)")
        }
        return try permuted([1, 0])
    }

    /// The dimensions reordered: result dimension `i` is this tensor's dimension `axes[i]`.
    ///
    /// - Throws: ``CNNError/invalidArgument(_:)`` unless `axes` is a permutation of `0..<rank`.
    public func permuted(_ axes: [Int]) throws -> Tensor {
        guard axes.count == rank, Set(axes) == Set(0..<rank) else {
            throw CNNError.invalidArgument("permute: \(axes) is not a permutation of the axes of shape \(shape)")
        }
        let newShape = axes.map { shape[$0] }
        let out = try Tensor(uninitializedShape: newShape)
        var srcStrides = [Int](repeating: 1, count: rank)
        for i in stride(from: rank - 2, through: 0, by: -1) { srcStrides[i] = srcStrides[i + 1] * shape[i + 1] }
        let strides = axes.map { srcStrides[$0] }
        let src = storage.pointer, dst = out.storage.pointer
        var index = [Int](repeating: 0, count: rank)
        var offset = 0
        for o in 0..<count {
            dst[o] = src[offset]
            var d = rank - 1
            while d >= 0 {
                index[d] += 1
                offset += strides[d]
                if index[d] < newShape[d] { break }
                offset -= strides[d] * newShape[d]
                index[d] = 0
                d -= 1
            }
        }
        return out
    }

    /// The items `range` along the first (batch) axis.
    ///
    /// - Throws: ``CNNError/invalidArgument(_:)`` when the range is outside `0..<shape[0]`.
    public func slice(batch range: Range<Int>) throws -> Tensor {
        guard rank >= 1 else { throw CNNError.invalidArgument("slice(batch:): scalar tensor has no batch axis") }
        guard range.lowerBound >= 0, range.upperBound <= shape[0] else {
            throw CNNError.invalidArgument("slice(batch:): range \(range) is outside 0..<\(shape[0]) for shape \(shape)")
        }
        let inner = count / Swift.max(shape[0], 1)
        var newShape = shape
        newShape[0] = range.count
        let out = try Tensor(uninitializedShape: newShape)
        out.storage.pointer.update(from: storage.pointer + range.lowerBound * inner, count: range.count * inner)
        return out
    }

    /// Joins tensors along `axis`; all other dimensions must agree.
    ///
    /// - Throws: ``CNNError/shapeMismatch(_:)`` naming the first shape that does not fit.
    public static func concatenate(_ tensors: [Tensor], alongAxis axis: Int = 0) throws -> Tensor {
        guard let first = tensors.first else {
            throw CNNError.invalidArgument("concatenate: needs at least one tensor")
        }
        let a = try first.normalizedAxis(axis, operation: "concatenate")
        var total = 0
        for t in tensors {
            guard t.rank == first.rank,
                  zip(t.shape, first.shape).enumerated().allSatisfy({ $0.offset == a || $0.element.0 == $0.element.1 }) else {
                throw CNNError.shapeMismatch("concatenate along axis \(a): shape \(t.shape) does not match \(first.shape)")
            }
            total += t.shape[a]
        }
        var newShape = first.shape
        newShape[a] = total
        let out = try Tensor(uninitializedShape: newShape)
        let outer = first.shape[..<a].reduce(1, *)
        let inner = first.shape[(a + 1)...].reduce(1, *)
        var offset = 0
        for t in tensors {
            let chunk = t.shape[a] * inner
            for o in 0..<outer {
                (out.storage.pointer + o * total * inner + offset).update(from: t.storage.pointer + o * chunk, count: chunk)
            }
            offset += chunk
        }
        return out
    }
}
