/// A group of processes (or threads) that train one model together: the collective operations
/// data-parallel training needs, in the style of MPI.
///
/// Every member of the group (a *rank*, `0..<size`) must call the same collectives in the same
/// order with the same element counts; a collective returns on a rank once that rank's part is
/// done. Implementations do not hang forever: when a member fails, leaves, or does not arrive
/// within the implementation's timeout, the others throw ``CNNError/io(_:)`` naming the rank and
/// the operation.
///
/// Two implementations ship: ``InProcessCommunicator`` (threads of one process, used by the tests)
/// and, with the package trait `MPI`, `MPICommunicator` in the `CNNDistributedMPI` module.
///
/// A communicator belongs to the thread of its rank; it is not `Sendable`.
public protocol Communicator: AnyObject {
    /// This member's index in `0..<size`.
    var rank: Int { get }
    /// The number of members.
    var size: Int { get }
    /// Replaces `buffer` on every rank by the element-wise sum of every rank's `buffer`.
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws
    /// Replaces `buffer` on every rank by the element-wise sum of every rank's `buffer`.
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws
    /// Copies `root`'s `buffer` into every other rank's `buffer` (all of the same byte count).
    func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws
    /// Returns once every rank has called it.
    func barrier() throws
    /// Starts replacing `buffer` on every rank by the element-wise sum of every rank's `buffer`
    /// and returns before that is done (MPI's `MPI_Iallreduce`); ``wait(_:)`` completes it.
    ///
    /// `buffer` must stay allocated and untouched until the request has completed. Every rank
    /// starts the same collectives in the same order (blocking and non-blocking ones alike); several
    /// may be outstanding at once. The default implementation runs
    /// ``allReduceSum(_:)-(UnsafeMutableBufferPointer<Float>)`` at once and returns a completed request.
    func startAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> CollectiveRequest
    /// Whether `request` has completed; lets the communicator progress it (MPI progresses
    /// non-blocking collectives only inside MPI calls). A completed request is forgotten: test or
    /// wait on it again and it reads as completed.
    func test(_ request: CollectiveRequest) throws -> Bool
    /// Returns once `request` has completed, or throws ``CNNError/io(_:)`` after the
    /// implementation's timeout, naming the rank and the operation.
    func wait(_ request: CollectiveRequest) throws
}

/// A non-blocking collective started with ``Communicator/startAllReduceSum(_:)``, named by its
/// communicator.
public struct CollectiveRequest: Hashable, Sendable {
    /// The communicator's number for it; ``completed``'s is -1.
    public let id: Int

    /// A request named `id` by its communicator.
    public init(id: Int) { self.id = id }

    /// A request that completed when it was started.
    public static let completed = CollectiveRequest(id: -1)
}

extension Communicator {
    /// Whether this is rank 0, the rank that writes logs, plots and checkpoints.
    public var isRoot: Bool { rank == 0 }

    /// Runs the allreduce at once (blocking) and returns ``CollectiveRequest/completed``.
    public func startAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> CollectiveRequest {
        try allReduceSum(buffer)
        return .completed
    }

    /// `true`: the default ``startAllReduceSum(_:)`` completes every request at once.
    public func test(_ request: CollectiveRequest) throws -> Bool { true }

    /// Returns at once: the default ``startAllReduceSum(_:)`` completes every request at once.
    public func wait(_ request: CollectiveRequest) throws {}

    /// The element-wise sum of `values` over every rank.
    public func allReduceSum(_ values: [Double]) throws -> [Double] {
        var result = values
        try result.withUnsafeMutableBufferPointer { try allReduceSum($0) }
        return result
    }

    /// Every rank's `values`, in rank order, on every rank (all ranks pass the same count).
    ///
    /// An allreduce of a `size × count` buffer in which each rank fills only its own row: adding
    /// zeros is exact, so the rows arrive bit for bit.
    public func allGather(_ values: [Double]) throws -> [[Double]] {
        let n = values.count
        var all = [Double](repeating: 0, count: n * size)
        all.replaceSubrange((rank * n)..<((rank + 1) * n), with: values)
        try all.withUnsafeMutableBufferPointer { try allReduceSum($0) }
        return (0..<size).map { Array(all[($0 * n)..<(($0 + 1) * n)]) }
    }

    /// `root`'s `bytes` on every rank; the other ranks' `bytes` are ignored (their length may differ).
    ///
    /// Sends the length first, then the bytes.
    public func broadcast(_ bytes: [UInt8], root: Int) throws -> [UInt8] {
        var length = [Double(bytes.count)]
        try length.withUnsafeMutableBytes { try broadcast($0, root: root) }
        var result = rank == root ? bytes : [UInt8](repeating: 0, count: Int(length[0]))
        try result.withUnsafeMutableBytes { try broadcast($0, root: root) }
        return result
    }

    /// Copies `root`'s tensor values into every rank's tensors (same shapes on every rank).
    func broadcast(_ tensors: [Tensor], root: Int) throws -> [Tensor] {
        var result: [Tensor] = []
        for var t in tensors {
            t.makeUnique()
            try broadcast(UnsafeMutableRawBufferPointer(start: t.basePointer, count: t.count * MemoryLayout<Float>.stride), root: root)
            result.append(t)
        }
        return result
    }
}

/// The part of an epoch's data one rank uses: every global batch is split into `count` nearly
/// equal consecutive parts (sizes differ by at most one) and rank `rank` takes part `rank`.
public struct DataShard: Sendable, Equatable {
    /// This rank, in `0..<count`.
    public let rank: Int
    /// The number of ranks.
    public let count: Int

    /// Creates a shard.
    ///
    /// - Throws: ``CNNError/invalidArgument(_:)`` unless `0 <= rank < count`.
    public init(rank: Int, of count: Int) throws {
        guard count >= 1, rank >= 0, rank < count else {
            throw CNNError.invalidArgument("DataShard: rank \(rank) is outside 0..<\(count)")
        }
        self.rank = rank
        self.count = count
    }

    /// This rank's part of the positions `range` (a global batch in the epoch's order).
    public func part(of range: Range<Int>) -> Range<Int> {
        let m = range.count
        return (range.lowerBound + rank * m / count)..<(range.lowerBound + (rank + 1) * m / count)
    }
}
