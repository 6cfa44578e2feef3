import Foundation

/// A ``Communicator`` whose ranks are threads of one process: what the tests use to check
/// data-parallel training without `mpirun`.
///
/// Start a group with ``run(ranks:timeout:_:)``: it runs the body once per rank, each on its own
/// thread with its own communicator, and returns the results in rank order. Sums are taken in rank
/// order, so results are deterministic.
///
/// A rank that throws or returns while the others still wait in a collective makes them throw
/// ``CNNError/io(_:)`` naming it; so does a rank that does not arrive within `timeout` seconds, or
/// ranks that call different collectives.
///
/// Non-blocking allreduces (``Communicator/startAllReduceSum(_:)``) complete when they start (the
/// protocol's default): the call waits there for the other ranks, with the same timeout, and the
/// sums are the blocking ones bit for bit. Overlapped gradient synchronisation therefore computes
/// the same results here as under MPI, only without the overlap.
public final class InProcessCommunicator: Communicator {
    /// This rank.
    public let rank: Int
    /// The number of ranks.
    public var size: Int { group.size }
    let group: InProcessGroup

    init(rank: Int, group: InProcessGroup) {
        self.rank = rank
        self.group = group
    }

    /// Runs `body` on `ranks` threads, one communicator each, and returns the results in rank order.
    ///
    /// - Parameters:
    ///   - ranks: the number of ranks (threads).
    ///   - timeout: seconds a rank waits in a collective for the others before it throws.
    ///   - body: the work of one rank, given that rank's communicator.
    /// - Throws: the error of the lowest rank that failed (the others' errors, caused by it,
    ///   are dropped); ``CNNError/invalidArgument(_:)`` for fewer than 1 rank or a timeout that is
    ///   not positive.
    public static func run<Result: Sendable>(ranks: Int, timeout: Double = 60,
                                             _ body: @escaping @Sendable (InProcessCommunicator) throws -> Result) throws -> [Result] {
        guard ranks >= 1 else { throw CNNError.invalidArgument("InProcessCommunicator.run: \(ranks) ranks; need at least 1") }
        guard timeout > 0, timeout.isFinite else {
            throw CNNError.invalidArgument("InProcessCommunicator.run: timeout \(timeout) s must be positive")
        }
        let group = InProcessGroup(size: ranks, timeout: timeout)
        let results = ResultSlots<Result>(count: ranks)
        let done = DispatchGroup()
        for r in 0..<ranks {
            done.enter()
            let thread = Thread {
                let outcome = Swift.Result { try body(InProcessCommunicator(rank: r, group: group)) }
                switch outcome {
                case .success: group.leave(rank: r, error: nil)
                case .failure(let e): group.leave(rank: r, error: e)
                }
                results.set(r, outcome)
                done.leave()
            }
            // Autograd's backward pass recurses through the graph; give it room.
            thread.stackSize = 16 << 20
            thread.start()
        }
        done.wait()
        return try results.values()
    }

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        try group.collective(rank: rank, operation: .sumFloat, bytes: UnsafeMutableRawBufferPointer(buffer))
    }

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
        try group.collective(rank: rank, operation: .sumDouble, bytes: UnsafeMutableRawBufferPointer(buffer))
    }

    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {
        guard root >= 0, root < size else { throw CNNError.invalidArgument("broadcast: root \(root) is outside 0..<\(size)") }
        try group.collective(rank: rank, operation: .broadcast(root: root), bytes: buffer)
    }

    public func barrier() throws {
        try group.collective(rank: rank, operation: .barrier, bytes: UnsafeMutableRawBufferPointer(start: nil, count: 0))
    }
}

/// Per-rank results of ``InProcessCommunicator/run(ranks:timeout:_:)``.
final class ResultSlots<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Result<Value, any Error>?]

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ i: Int, _ r: Result<Value, any Error>) { lock.withLock { slots[i] = r } }

    /// The values in rank order, or the first failure: a rank's own error before the errors other
    /// ranks raised because of it.
    func values() throws -> [Value] {
        let all = lock.withLock { slots.map { $0! } }
        let errors = all.compactMap { r -> (any Error)? in if case .failure(let e) = r { return e } else { return nil } }
        if let own = errors.first(where: { !InProcessGroup.isPeerFailure($0) }) ?? errors.first { throw own }
        return all.map { try! $0.get() }
    }
}

/// The shared state of an in-process group: one collective at a time, completed by the last rank
/// to arrive (the earlier ones wait on the condition).
///
/// Each rank copies its bytes in on arrival and the result out after completion. A collective
/// cannot complete before every rank has arrived, and a rank arrives only after copying out the
/// previous result, so one contribution slot per rank and one result suffice.
final class InProcessGroup: @unchecked Sendable {
    enum Operation: Equatable, CustomStringConvertible {
        case sumFloat, sumDouble, broadcast(root: Int), barrier
        var description: String {
            switch self {
            case .sumFloat: return "allReduceSum(Float)"
            case .sumDouble: return "allReduceSum(Double)"
            case .broadcast(let root): return "broadcast(root: \(root))"
            case .barrier: return "barrier"
            }
        }
    }

    let size: Int
    let timeout: Double
    private let condition = NSCondition()
    private var contributions: [[UInt8]]
    private var result: [UInt8] = []
    private var arrived: [Bool]
    private var arrivedCount = 0
    private var operation: (Operation, Int)?
    private var generation = 0
    private var failure: String?
    private var left: [Bool]

    static let peerFailurePrefix = "distributed: "

    static func isPeerFailure(_ e: any Error) -> Bool {
        if case .io(let m) = e as? CNNError { return m.hasPrefix(peerFailurePrefix) }
        return false
    }

    init(size: Int, timeout: Double) {
        self.size = size
        self.timeout = timeout
        contributions = Array(repeating: [], count: size)
        arrived = Array(repeating: false, count: size)
        left = Array(repeating: false, count: size)
    }

    private func fail(_ message: String) -> CNNError {
        if failure == nil { failure = message }
        condition.broadcast()
        return CNNError.io(InProcessGroup.peerFailurePrefix + failure!)
    }

    /// Marks `rank` as gone; ranks waiting for it (now or later) throw.
    func leave(rank: Int, error: (any Error)?) {
        condition.lock()
        defer { condition.unlock() }
        left[rank] = true
        if let error, !InProcessGroup.isPeerFailure(error) {
            _ = fail("rank \(rank) failed: \(error)")
        } else if arrivedCount > 0, !arrived[rank] {
            _ = fail("rank \(rank) finished while rank(s) \(waitingRanks()) wait in \(operation!.0)")
        }
    }

    private func waitingRanks() -> String {
        (0..<size).filter { arrived[$0] }.map(String.init).joined(separator: ", ")
    }

    func collective(rank: Int, operation op: Operation, bytes: UnsafeMutableRawBufferPointer) throws {
        condition.lock()
        defer { condition.unlock() }
        if let failure { throw CNNError.io(InProcessGroup.peerFailurePrefix + failure) }
        if let gone = left.firstIndex(of: true) {
            throw fail("rank \(rank) entered \(op) but rank \(gone) has already finished")
        }
        if let (current, count) = operation {
            guard current == op, count == bytes.count else {
                throw fail("rank \(rank) called \(op) on \(bytes.count) bytes while other ranks are in \(current) on \(count) bytes")
            }
        } else {
            operation = (op, bytes.count)
        }
        arrived[rank] = true
        arrivedCount += 1
        contributions[rank] = bytes.isEmpty ? [] : Array(bytes)
        let myGeneration = generation
        if arrivedCount == size {
            complete()
        } else {
            let deadline = Date(timeIntervalSinceNow: timeout)
            while generation == myGeneration && failure == nil {
                if !condition.wait(until: deadline) && generation == myGeneration && failure == nil {
                    let missing = (0..<size).filter { !arrived[$0] }.map(String.init).joined(separator: ", ")
                    throw fail("rank \(rank) timed out after \(timeout) s in \(op): rank(s) \(missing) did not arrive")
                }
            }
            if generation == myGeneration, let failure { throw CNNError.io(InProcessGroup.peerFailurePrefix + failure) }
        }
        if !bytes.isEmpty {
            result.withUnsafeBytes { bytes.copyMemory(from: $0) }
        }
    }

    /// Combines the contributions (sums in rank order), then releases the waiting ranks.
    private func complete() {
        let (op, count) = operation!
        switch op {
        case .barrier: result = []
        case .broadcast(let root): result = contributions[root]
        case .sumFloat: result = InProcessGroup.sum(contributions, as: Float.self, count: count)
        case .sumDouble: result = InProcessGroup.sum(contributions, as: Double.self, count: count)
        }
        for r in 0..<size { arrived[r] = false; contributions[r] = [] }
        arrivedCount = 0
        operation = nil
        generation += 1
        condition.broadcast()
    }

    private static func sum<T: BinaryFloatingPoint>(_ parts: [[UInt8]], as: T.Type, count: Int) -> [UInt8] {
        var out = parts[0]
        out.withUnsafeMutableBytes { o in
            let dst = o.bindMemory(to: T.self)
            for part in parts.dropFirst() {
                part.withUnsafeBytes { p in
                    let src = p.bindMemory(to: T.self)
                    for i in 0..<dst.count { dst[i] += src[i] }
                }
            }
        }
        return out
    }
}
