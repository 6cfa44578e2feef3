import CNNKernels
import Synchronization

/// The storage behind a ``Tensor``: a 64-byte-aligned buffer of `Float`, shared between copies of a
/// tensor until one of them is mutated (copy on write).
///
/// Storage is only written while uniquely referenced, so sharing it across threads is safe.
final class TensorStorage: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int

    /// Allocates `count` uninitialised floats.
    init(uninitializedCount count: Int) throws {
        let bytes = count.multipliedReportingOverflow(by: MemoryLayout<Float>.stride)
        guard !bytes.overflow else { throw CNNError.outOfMemory("cannot allocate a tensor of \(count) floats") }
        let size = Swift.max(bytes.partialValue, 64)
        guard let raw = StoragePool.take(bytes: size) ?? cnn_aligned_alloc(size) else {
            throw CNNError.outOfMemory("cannot allocate a tensor of \(count) floats (\(size) bytes)")
        }
        self.pointer = raw.bindMemory(to: Float.self, capacity: Swift.max(count, 1))
        self.count = count
    }

    convenience init(copying other: TensorStorage) throws {
        try self.init(uninitializedCount: other.count)
        pointer.update(from: other.pointer, count: count)
    }

    deinit {
        let size = Swift.max(count * MemoryLayout<Float>.stride, 64)
        if !StoragePool.give(UnsafeMutableRawPointer(pointer), bytes: size) { cnn_aligned_free(pointer) }
    }
}


/// A dense, row-major array of `Float` with a shape: the value type every layer computes on.
///
/// Images are laid out NCHW (batch, channels, height, width), as in PyTorch. A tensor is a value:
/// copies share storage until one is mutated (copy on write). Operations that can fail on what a
/// user passes in — mismatched shapes, non-positive dimensions, an axis out of range — throw a
/// ``CNNError`` whose message names the operation and the shapes involved; nothing traps.
///
/// ```swift
/// let x = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
/// let y = try x + Tensor(shape: [3], scalars: [10, 20, 30])   // broadcasting
/// print(try y.sum(alongAxes: [1]))                            // [66, 75]
/// ```
public struct Tensor: Sendable {
    /// The size of each dimension, outermost first. A scalar has shape `[]`.
    public private(set) var shape: [Int]
    var storage: TensorStorage

    // MARK: Construction

    /// Checks a shape and returns its element count.
    static func elementCount(of shape: [Int], operation: String = "Tensor") throws -> Int {
        var count = 1
        for d in shape {
            guard d >= 0 else {
                throw CNNError.invalidArgument("\(operation): dimension \(d) in shape \(shape) is negative")
            }
            let (p, o) = count.multipliedReportingOverflow(by: d)
            guard !o, p <= Int(Int32.max) * 64 else {
                throw CNNError.outOfMemory("\(operation): shape \(shape) has too many elements")
            }
            count = p
        }
        return count
    }

    /// An uninitialised tensor (every element must be written before it is read).
    init(uninitializedShape shape: [Int]) throws {
        let n = try Tensor.elementCount(of: shape)
        self.shape = shape
        self.storage = try TensorStorage(uninitializedCount: n)
    }

    init(shape: [Int], storage: TensorStorage) {
        self.shape = shape
        self.storage = storage
    }

    /// Creates a tensor of the given shape from its elements in row-major order.
    ///
    /// - Throws: ``CNNError/shapeMismatch(_:)`` when `scalars.count` is not the product of `shape`.
    public init(shape: [Int], scalars: [Float]) throws {
        let n = try Tensor.elementCount(of: shape)
        guard n == scalars.count else {
            throw CNNError.shapeMismatch("Tensor(shape:scalars:): shape \(shape) needs \(n) elements, got \(scalars.count)")
        }
        try self.init(uninitializedShape: shape)
        scalars.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { storage.pointer.update(from: base, count: n) }
        }
    }

    /// Creates a one-dimensional tensor from its elements.
    public init(_ scalars: [Float]) {
        // A one-dimensional shape of any length is always valid; allocation failure is the only
        // error, and for an array that already fits in memory it cannot be told apart from a crash.
        self = try! Tensor(shape: [scalars.count], scalars: scalars)
    }

    /// Creates a scalar (rank 0) tensor.
    public init(scalar: Float) {
        self = try! Tensor(shape: [], scalars: [scalar])
    }

    /// Creates a tensor with every element equal to `value`.
    public init(repeating value: Float, shape: [Int]) throws {
        try self.init(uninitializedShape: shape)
        storage.pointer.update(repeating: value, count: storage.count)
    }

    /// Creates a tensor of zeros.
    public init(zeros shape: [Int]) throws { try self.init(repeating: 0, shape: shape) }

    /// Creates a tensor of ones.
    public init(ones shape: [Int]) throws { try self.init(repeating: 1, shape: shape) }

    /// Creates a one-dimensional tensor `start, start + step, ...` up to but excluding `end`.
    ///
    /// - Throws: ``CNNError/invalidArgument(_:)`` when `step` is zero or points away from `end`.
    public init(rangeFrom start: Float, to end: Float, step: Float = 1) throws {
        guard step != 0, (end - start) / step >= 0 || start == end else {
            throw CNNError.invalidArgument("Tensor(rangeFrom:to:step:): step \(step) cannot go from \(start) to \(end)")
        }
        let n = Int(((end - start) / step).rounded(.up))
        try self.init(uninitializedShape: [n])
        for i in 0..<n { storage.pointer[i] = start + Float(i) * step }
    }

    // MARK: Properties

    /// The number of dimensions.
    public var rank: Int { shape.count }

    /// The number of elements.
    public var count: Int { storage.count }

    /// The elements in row-major order.
    public var scalars: [Float] {
        Array(UnsafeBufferPointer(start: storage.pointer, count: count))
    }

    /// The single element of a tensor with one element.
    ///
    /// - Throws: ``CNNError/shapeMismatch(_:)`` when the tensor has more or fewer than one element.
    public func item() throws -> Float {
        guard count == 1 else {
            throw CNNError.shapeMismatch("item(): tensor of shape \(shape) has \(count) elements, not 1")
        }
        return storage.pointer[0]
    }

    /// The element at a multi-dimensional index.
    ///
    /// - Throws: ``CNNError/invalidArgument(_:)`` when the index has the wrong rank or is out of range.
    public func scalar(at index: [Int]) throws -> Float {
        storage.pointer[try flatIndex(index)]
    }

    /// Sets the element at a multi-dimensional index.
    public mutating func setScalar(_ value: Float, at index: [Int]) throws {
        let i = try flatIndex(index)
        makeUnique()
        storage.pointer[i] = value
    }

    func flatIndex(_ index: [Int]) throws -> Int {
        guard index.count == shape.count else {
            throw CNNError.invalidArgument("index \(index) has rank \(index.count), tensor has shape \(shape)")
        }
        var flat = 0
        for (i, d) in zip(index, shape) {
            guard i >= 0, i < d else {
                throw CNNError.invalidArgument("index \(index) is out of range for shape \(shape)")
            }
            flat = flat * d + i
        }
        return flat
    }

    // MARK: Raw access

    /// Ensures the storage is not shared before a write.
    mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) {
            storage = try! TensorStorage(copying: storage)  // same size as an existing buffer
        }
    }

    /// Calls `body` with the elements, valid only for the duration of the call.
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.pointer, count: count))
    }

    /// Calls `body` with mutable access to the elements (copying shared storage first).
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        makeUnique()
        return try body(UnsafeMutableBufferPointer(start: storage.pointer, count: count))
    }

    /// The base pointer, for kernels (internal: valid while `self` is alive and unmodified).
    var basePointer: UnsafeMutablePointer<Float> { storage.pointer }

    /// Whether two tensors share the same storage (for tests of copy on write).
    func sharesStorage(with other: Tensor) -> Bool { storage === other.storage }

    /// A tensor with the same elements and a new shape of the same element count (no copy).
    func viewed(as newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, storage: storage)
    }
}

extension Tensor: Equatable {
    /// Tensors are equal when their shapes and all elements are equal (NaN is never equal).
    public static func == (lhs: Tensor, rhs: Tensor) -> Bool {
        guard lhs.shape == rhs.shape else { return false }
        if lhs.storage === rhs.storage { return !lhs.scalars.contains { $0.isNaN } }
        for i in 0..<lhs.count where lhs.storage.pointer[i] != rhs.storage.pointer[i] { return false }
        return true
    }
}
