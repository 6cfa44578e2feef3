// Built only with the package trait `MPI` (`swift build --traits MPI`); without it this module is
// empty and nothing needs an MPI installation.
#if MPI
import CNN
import CNNMPI
import Foundation

/// A ``Communicator`` over MPI's `MPI_COMM_WORLD`: one rank per process, started by `mpirun`
/// (on one host or many).
///
/// Collectives are MPI's non-blocking ones (`MPI_Iallreduce` with `MPI_IN_PLACE`, `MPI_Ibcast`,
/// `MPI_Ibarrier`) completed by polling `MPI_Test` until ``timeout``; ``startAllReduceSum(_:)``
/// returns with its `MPI_Iallreduce` in flight, for ``test(_:)`` to progress and ``wait(_:)``
/// to complete (what overlapped gradient synchronisation uses). A rank that stops
/// answering makes the others throw ``CNNError/io(_:)`` instead of hanging forever. MPI errors are
/// returned (`MPI_ERRORS_RETURN`) and thrown with MPI's text. A rank that *exits* is noticed by
/// `mpirun`, which ends the whole job. After a rank throws, call ``abort(code:)`` to end the
/// others at once: MPI cannot cancel a collective the others are in.
///
/// MPI is initialised once per process (funneled: only the thread that created the communicator
/// may use it); call ``finalize()`` before the process exits.
public final class MPICommunicator: Communicator {
    /// This process's rank in `MPI_COMM_WORLD`.
    public let rank: Int
    /// The number of processes in `MPI_COMM_WORLD`.
    public let size: Int
    /// Processes of this job on this host (they share its cores).
    public let localSize: Int
    /// This host's name.
    public let hostName: String
    /// Seconds a collective may wait for the other ranks before it throws.
    public var timeout: Double
    /// Seconds spent in ``allReduceSum(_:)-(UnsafeMutableBufferPointer<Float>)``, or starting and
    /// waiting for ``startAllReduceSum(_:)`` (waiting for slower ranks included; a non-blocking
    /// allreduce that completes while the caller computes costs nothing here), and the bytes both
    /// reduced, since creation.
    public private(set) var allReduceSeconds = 0.0, allReduceBytes = 0

    /// Initialises MPI (if it is not yet) and describes this process's place in `MPI_COMM_WORLD`.
    ///
    /// - Throws: ``CNNError/io(_:)`` with MPI's message when MPI cannot start;
    ///   ``CNNError/invalidArgument(_:)`` for a timeout that is not positive.
    public init(timeout: Double = 300) throws {
        guard timeout > 0, timeout.isFinite else { throw CNNError.invalidArgument("MPICommunicator: timeout \(timeout) s must be positive") }
        try MPICommunicator.check(cnn_mpi_init(), "MPI_Init_thread")
        rank = Int(cnn_mpi_rank())
        size = Int(cnn_mpi_size())
        localSize = Int(cnn_mpi_local_size())
        var name = [CChar](repeating: 0, count: Int(cnn_mpi_max_processor_name()) + 1)
        cnn_mpi_processor_name(&name)
        hostName = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        self.timeout = timeout
    }

    /// Ends MPI (every rank must call it once it is done communicating).
    public static func finalize() { _ = cnn_mpi_finalize() }

    /// Ends every rank of the job with `code` (`MPI_Abort`): what a rank calls after an error, so
    /// that the others do not wait for it. Does not return.
    public static func abort(code: Int32 = 1) -> Never {
        cnn_mpi_abort(code)
        exit(code)
    }

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        let start = Date()
        try chunks(buffer.count, elementBytes: 4) { offset, n, request in
            cnn_mpi_iallreduce_sum_f32(buffer.baseAddress! + offset, Int32(n), request)
        }
        allReduceSeconds += Date().timeIntervalSince(start)
        allReduceBytes += buffer.count * 4
    }

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
        try chunks(buffer.count, elementBytes: 8) { offset, n, request in
            cnn_mpi_iallreduce_sum_f64(buffer.baseAddress! + offset, Int32(n), request)
        }
    }

    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {
        guard root >= 0, root < size else { throw CNNError.invalidArgument("broadcast: root \(root) is outside 0..<\(size)") }
        try chunks(buffer.count, elementBytes: 1) { offset, n, request in
            cnn_mpi_ibcast(buffer.baseAddress! + offset, Int32(n), Int32(root), request)
        }
    }

    public func barrier() throws {
        var request = cnn_mpi_request()
        try MPICommunicator.check(cnn_mpi_ibarrier(&request), "MPI_Ibarrier")
        try complete(&request, "barrier")
    }

    /// Runs a collective over `count` elements in pieces that fit MPI's `int` counts (1 GiB each).
    private func chunks(_ count: Int, elementBytes: Int,
                        _ start: (_ offset: Int, _ count: Int, UnsafeMutablePointer<cnn_mpi_request>) -> Int32) throws {
        guard count > 0 else { return }
        let piece = (1 << 30) / elementBytes
        var offset = 0
        while offset < count {
            let n = min(piece, count - offset)
            var request = cnn_mpi_request()
            try MPICommunicator.check(start(offset, n, &request), "starting a collective on \(n) elements")
            try complete(&request, "collective on \(n) elements")
            offset += n
        }
    }

    /// Polls the request until it completes or ``timeout`` passes: spinning for the first
    /// millisecond (gradient buckets usually finish within it), then sleeping 50 µs between polls
    /// so a waiting rank leaves the cores to ranks still computing.
    private func complete(_ request: inout cnn_mpi_request, _ what: String) throws {
        let start = Date()
        while true {
            if try poll(&request, what) { return }
            let elapsed = Date().timeIntervalSince(start)
            if elapsed > timeout {
                throw CNNError.io("distributed: rank \(rank) of \(size) on \(hostName) timed out after \(timeout) s in \(what): another rank stopped or is stuck")
            }
            if elapsed > 0.001 { usleep(50) }
        }
    }

    /// One `MPI_Test`: whether the request has completed.
    private func poll(_ request: inout cnn_mpi_request, _ what: String) throws -> Bool {
        var done: Int32 = 0
        try MPICommunicator.check(cnn_mpi_test(&request, &done), "MPI_Test in \(what)")
        return done != 0
    }

    // MARK: Non-blocking allreduce

    /// An `MPI_Iallreduce` in flight: its pieces (one per 1 GiB) still to complete.
    private struct Pending {
        var requests: [cnn_mpi_request]
        let what: String
    }
    private var pending: [Int: Pending] = [:]
    private var nextRequest = 0

    /// Starts `MPI_Iallreduce` (in place) on `buffer`, in pieces of at most 1 GiB; complete it with
    /// ``wait(_:)`` (which applies ``timeout``) and progress it meanwhile with ``test(_:)``.
    public func startAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> CollectiveRequest {
        guard buffer.count > 0 else { return .completed }
        let start = Date()
        defer { allReduceSeconds += Date().timeIntervalSince(start) }
        let piece = (1 << 30) / 4
        var requests: [cnn_mpi_request] = []
        var offset = 0
        while offset < buffer.count {
            let n = min(piece, buffer.count - offset)
            var request = cnn_mpi_request()
            try MPICommunicator.check(cnn_mpi_iallreduce_sum_f32(buffer.baseAddress! + offset, Int32(n), &request),
                                      "starting a non-blocking allreduce on \(n) elements")
            requests.append(request)
            offset += n
        }
        allReduceBytes += buffer.count * 4
        let id = nextRequest
        nextRequest += 1
        pending[id] = Pending(requests: requests, what: "non-blocking allreduce #\(id) on \(buffer.count) elements")
        return CollectiveRequest(id: id)
    }

    /// Tests (`MPI_Test`) the pieces of `request` not yet complete; `true` once all are.
    public func test(_ request: CollectiveRequest) throws -> Bool {
        guard var p = pending[request.id] else { return true }
        while let first = p.requests.first {
            var r = first
            guard try poll(&r, p.what) else {
                p.requests[0] = r
                pending[request.id] = p
                return false
            }
            p.requests.removeFirst()
        }
        pending[request.id] = nil
        return true
    }

    /// Polls `request` until it completes; throws ``CNNError/io(_:)`` naming this rank and the
    /// operation when that takes longer than ``timeout`` from this call.
    public func wait(_ request: CollectiveRequest) throws {
        guard var p = pending[request.id] else { return }
        let start = Date()
        defer { allReduceSeconds += Date().timeIntervalSince(start) }
        pending[request.id] = nil
        for i in p.requests.indices { try complete(&p.requests[i], p.what) }
    }

    static func check(_ code: Int32, _ what: String) throws {
        guard code != cnn_mpi_success() else { return }
        var text = [CChar](repeating: 0, count: Int(cnn_mpi_max_error_string()) + 1)
        cnn_mpi_error_string(code, &text)
        throw CNNError.io("distributed: \(what) failed: \(String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)) (MPI error \(code))")
    }
}
#endif
