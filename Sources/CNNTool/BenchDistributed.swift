import ArgumentParser
import CNN
import CNNDistributedMPI
import Foundation

/// The communicator a distributed benchmark measures: MPI's when `cnn` runs under `mpirun` (Open
/// MPI sets `OMPI_COMM_WORLD_SIZE`, MPICH and others `PMI_SIZE`), otherwise `ranks` threads of
/// this process on the ``InProcessCommunicator``.
enum DistributedBench {
    static var launchedByMPI: Bool {
        let env = ProcessInfo.processInfo.environment
        return env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMI_SIZE"] != nil
    }

    /// Runs `body` once per rank (`strategy` is `mpi` or `in-process`, `ranksOnHost` the ranks
    /// sharing this host's cores) and prints rank 0's rows.
    static func run(ranks: Int, json: Bool,
                    _ body: @escaping @Sendable (_ communicator: any Communicator, _ strategy: String, _ ranksOnHost: Int) throws -> [BenchRow]) throws {
        if launchedByMPI {
            #if MPI
            // Generous: the other ranks wait in a barrier while rank 0 measures one rank alone.
            let communicator = try MPICommunicator(timeout: 3600)
            do {
                let rows = try body(communicator, "mpi", communicator.localSize)
                if communicator.isRoot { BenchOutput.emit(rows, json: json) }
            } catch {
                if communicator.size > 1 {
                    FileHandle.standardError.write(Data("cnn bench: rank \(communicator.rank) of \(communicator.size): \(error)\n".utf8))
                    MPICommunicator.abort(code: 1)
                }
                MPICommunicator.finalize()
                throw error
            }
            MPICommunicator.finalize()
            return
            #else
            throw ValidationError("cnn runs under mpirun but was built without MPI: swift build -c release --traits OpenMP,MPI (see the README, Distributed training)")
            #endif
        }
        guard ranks >= 1 else { throw ValidationError("--ranks must be at least 1, got \(ranks)") }
        let rows = try InProcessCommunicator.run(ranks: ranks, timeout: 600) { try body($0, "in-process", ranks) }
        BenchOutput.emit(rows[0], json: json)
    }

    /// The largest of every rank's `value` (the slowest rank sets the pace of a collective).
    static func maximum(_ value: Double, _ communicator: any Communicator) throws -> Double {
        try communicator.allGather([value]).map { $0[0] }.max()!
    }
}

/// `--overlap/--no-overlap` and `--bucket-mib`: how distributed training averages gradients
/// (``GradientSynchronization``), shared by `cnn train --distributed` and `cnn bench scaling`.
struct GradientSyncOptions: ParsableArguments {
    @Flag(inversion: .prefixedNo, help: "Distributed: reduce gradient buckets while the backward pass still runs (PyTorch DDP's overlap); --no-overlap reduces them after backward. Off for models with synchronised batch norm.")
    var overlap = true

    @Option(help: "Distributed: largest gradient bucket in MiB (one allreduce each; the overlapped path's first bucket is at most 1 MiB).")
    var bucketMib: Double = Double(GradientSynchronization.defaultBucketBytes) / Double(1 << 20)

    func validate() throws { _ = try synchronization() }

    /// The options as a ``GradientSynchronization``.
    func synchronization() throws -> GradientSynchronization {
        guard bucketMib.isFinite, bucketMib * Double(1 << 20) >= 4, bucketMib <= Double(1 << 20) else {
            throw ValidationError("--bucket-mib must be between 4 bytes (3.8e-6) and 1048576 MiB, got \(bucketMib)")
        }
        return try GradientSynchronization(overlapsBackward: overlap, bucketBytes: Int(bucketMib * Double(1 << 20)))
    }

    /// `overlapped with backward, buckets of 4 MiB` or `after backward, buckets of 4 MiB`.
    var description: String {
        (overlap ? "overlapped with backward" : "after backward") + String(format: ", buckets of %g MiB", bucketMib)
    }
}

/// `cnn bench allreduce`: the sum-allreduce of float32 buffers from 4 KiB to 64 MiB, with the
/// NCCL-tests figures: algorithm bandwidth `bytes / time` and bus bandwidth
/// `algbw · 2(n−1)/n` (what each link carries in a ring allreduce, comparable across rank counts).
struct BenchAllreduce: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allreduce",
        abstract: "Allreduce bandwidth of the communicator in use (MPI under mpirun, in-process threads otherwise).",
        discussion: """
            Under mpirun (cnn built with --traits OpenMP,MPI) every process is a rank: \
            mpirun -np 2 cnn bench allreduce. Without mpirun, --ranks threads of this process exchange through memory.
            Each size is checked once (every element must equal the rank count), then --iterations back-to-back \
            allreduces follow a barrier; ms is the mean per allreduce on the slowest rank.
            """)

    @Flag(help: "One JSON object per line per case.")
    var json = false

    @Option(help: "Smallest message in bytes (suffixes K and M are powers of 1024).")
    var minBytes: String = "4K"

    @Option(help: "Largest message in bytes (suffixes K and M are powers of 1024).")
    var maxBytes: String = "64M"

    @Option(help: "Timed allreduces per size (default: enough for about 512 MiB, between 5 and 200).")
    var iterations: Int?

    @Option(help: "Ranks (threads) of the in-process communicator when not under mpirun.")
    var ranks: Int = 2

    static func bytes(_ text: String, _ option: String) throws -> Int {
        let t = text.uppercased().trimmingCharacters(in: .whitespaces)
        let (digits, scale) = t.hasSuffix("M") ? (t.dropLast(), 1 << 20) : t.hasSuffix("K") ? (t.dropLast(), 1 << 10) : (Substring(t), 1)
        guard let n = Int(digits), n >= 1, n <= (1 << 40) / scale else {
            throw ValidationError("\(option) '\(text)' is not a positive byte count (like 4096, 4K or 64M)")
        }
        return n * scale
    }

    func validate() throws {
        let lo = try Self.bytes(minBytes, "--min-bytes"), hi = try Self.bytes(maxBytes, "--max-bytes")
        guard lo % 4 == 0, hi % 4 == 0 else { throw ValidationError("message sizes must be whole float32 counts (multiples of 4 bytes), got \(lo) and \(hi)") }
        guard lo <= hi else { throw ValidationError("--min-bytes \(lo) is larger than --max-bytes \(hi)") }
        if let iterations, iterations < 1 { throw ValidationError("--iterations must be at least 1, got \(iterations)") }
    }

    func run() throws {
        let lo = try Self.bytes(minBytes, "--min-bytes"), hi = try Self.bytes(maxBytes, "--max-bytes")
        let sizes = Array(sequence(first: lo) { $0 * 2 }.prefix { $0 <= hi })
        let fixedIterations = iterations
        try DistributedBench.run(ranks: ranks, json: json) { comm, strategy, _ in
            var rows: [BenchRow] = []
            let n = comm.size
            for size in sizes {
                let count = size / 4
                var buffer = [Float](repeating: 1, count: count)
                try buffer.withUnsafeMutableBufferPointer { try comm.allReduceSum($0) }
                guard buffer.allSatisfy({ $0 == Float(n) }) else {
                    throw CNNError.io("allreduce of \(size) bytes over \(n) ranks: not every element is \(n)")
                }
                // Zeros from here on: the sums stay finite however many iterations run.
                buffer = [Float](repeating: 0, count: count)
                let reps = fixedIterations ?? min(200, max(5, (512 << 20) / size))
                try buffer.withUnsafeMutableBufferPointer { try comm.allReduceSum($0) }  // warm-up
                try comm.barrier()
                let start = benchmarkClock()
                try buffer.withUnsafeMutableBufferPointer { buf in
                    for _ in 0..<reps { try comm.allReduceSum(buf) }
                }
                let seconds = try DistributedBench.maximum((benchmarkClock() - start) / Double(reps), comm)
                let algbw = Double(size) / seconds / 1e9
                let busbw = algbw * 2 * Double(n - 1) / Double(n)
                var row = BenchRow(suite: "allreduce", caseName: "\(size)B", strategy: strategy, threads: ComputeRuntime.threadCount,
                                   ms: seconds * 1e3, gflops: nil, peakGFLOPS: nil)
                row.extra = [("bytes", "\(size)"), ("ranks", "\(n)"), ("iterations", "\(reps)"),
                             ("algbw_gbps", String(format: "%.3f", algbw)), ("busbw_gbps", String(format: "%.3f", busbw))]
                rows.append(row)
            }
            return rows
        }
    }
}

/// `cnn bench scaling`: data-parallel training throughput of the `cnn bench train` cases (LeNet-5
/// on MNIST-size input, ResNet-18 on CIFAR-size input, 64 images per rank: weak scaling, as
/// PyTorch DDP runs) through ``Trainer`` with the communicator in use, and the efficiency against
/// one rank training alone with the same threads.
struct BenchScaling: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scaling",
        abstract: "Data-parallel training images/s and scaling efficiency (MPI under mpirun, in-process threads otherwise).",
        discussion: """
            Run once per rank count: mpirun -np N cnn bench scaling (cnn built with --traits OpenMP,MPI). Every rank \
            trains on its local batch of the case's size (the global batch is N times it) through Trainer: shard, \
            forward, backward, gradient allreduce, optimizer step. First rank 0 trains alone while the others wait \
            (the one-rank figure, same threads per rank), then all ranks together. \
            efficiency = images/s of N ranks / (N x images/s of one rank). ms is the median global step. \
            --no-overlap reduces the gradients after backward instead of during it (compare the two); --bucket-mib sets \
            the bucket size.
            """)

    @Flag(help: "One JSON object per line per case.")
    var json = false

    @Option(name: .customLong("case"), help: "Only cases whose name contains this text.")
    var caseFilter: String?

    @Option(help: "Timed steps per case, after two warm-up steps.")
    var steps: Int = 10

    @Option(help: "Threads per rank (default: the host's cores divided by the ranks on it).")
    var threads: Int?

    @Option(help: "Ranks (threads) of the in-process communicator when not under mpirun.")
    var ranks: Int = 2

    @Flag(help: "Synchronised batch norm (ResNet-18's 20 batch norm layers).")
    var syncBatchnorm = false

    @OptionGroup var gradients: GradientSyncOptions

    func validate() throws {
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1, got \(steps)") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
        if let caseFilter, !TrainCases.all.contains(where: { $0.name.contains(caseFilter) }) {
            throw ValidationError("no training case matches '\(caseFilter)' (cases: \(TrainCases.all.map(\.name).joined(separator: ", ")))")
        }
    }

    static let warmupSteps = 2

    /// A data set of `images` normal random images and uniform labels for `c`.
    static func data(_ c: TrainBenchmarkCase, images: Int) throws -> LabeledDataset {
        var g = SeededGenerator(seed: 7)
        let x = try Tensor.normal(shape: [images, c.inputChannels, c.imageSize, c.imageSize], generator: &g)
        return try LabeledDataset(images: x, labels: (0..<images).map { _ in Int32(g.next() % UInt64(c.classes)) }, classes: c.classes)
    }

    /// Trains one epoch of warm-up plus `steps` global batches; returns the median step seconds
    /// after the warm-up (steps end together on every rank: each waits in the gradient allreduce).
    static func medianStep(_ c: TrainBenchmarkCase, communicator: (any Communicator)?, steps: Int, syncBatchnorm: Bool,
                           synchronization: GradientSynchronization? = nil) throws -> Double {
        let ranks = communicator?.size ?? 1
        let global = c.batch * ranks
        GlobalGenerator.seed(1)
        let model = try c.makeModel()
        if syncBatchnorm, let communicator { model.convertToSynchronizedBatchNorm(communicator: communicator) }
        let optimizer = try SGD(parameters: model.namedParameters(), learningRate: c.learningRate, momentum: c.momentum, weightDecay: c.weightDecay)
        let loader = try DataLoader(dataset: try data(c, images: global * (warmupSteps + steps)), batchSize: global, shuffle: true, seed: 1)
        let trainer = try Trainer(model: model, optimizer: optimizer, trainLoader: loader, testLoader: nil, communicator: communicator,
                                  gradientSynchronization: synchronization)
        var ends: [Double] = []
        _ = try trainer.trainEpoch { ends.append($0.elapsed) }
        let durations = zip(ends.dropFirst(warmupSteps), ends.dropFirst(warmupSteps - 1)).map { $0 - $1 }.sorted()
        return durations[durations.count / 2]
    }

    func run() throws {
        let cases = TrainCases.all.filter { caseFilter == nil || $0.name.contains(caseFilter!) }
        let (steps, threads, sync) = (self.steps, self.threads, syncBatchnorm)
        let synchronization = try gradients.synchronization()
        let overlapped = synchronization.overlapsBackward && !sync
        if !DistributedBench.launchedByMPI {
            // One process: the ranks share its kernel threads.
            try ComputeRuntime.setThreadCount(threads ?? max(1, ComputeRuntime.processorCount / max(ranks, 1)))
        }
        try DistributedBench.run(ranks: ranks, json: json) { comm, strategy, ranksOnHost in
            if strategy == "mpi" { try ComputeRuntime.setThreadCount(threads ?? max(1, ComputeRuntime.processorCount / ranksOnHost)) }
            let nt = ComputeRuntime.threadCount
            var rows: [BenchRow] = []
            for c in cases {
                // Rank 0 alone (the others wait), then every rank.
                var alone = 0.0
                if comm.size > 1 {
                    if comm.isRoot { alone = try Self.medianStep(c, communicator: nil, steps: steps, syncBatchnorm: false) }
                    try comm.barrier()
                }
                let step = try DistributedBench.maximum(try Self.medianStep(c, communicator: comm, steps: steps, syncBatchnorm: sync,
                                                                                    synchronization: synchronization), comm)
                if comm.size == 1 { alone = step }
                let imagesPerSecond = Double(c.batch * comm.size) / step, oneRank = Double(c.batch) / alone
                var row = BenchRow(suite: "scaling", caseName: c.name, strategy: strategy + (sync ? "+syncbn" : "") + (synchronization.overlapsBackward ? "" : "+no-overlap"), threads: nt,
                                   ms: step * 1e3, gflops: nil, peakGFLOPS: nil)
                row.extra = [("ranks", "\(comm.size)"), ("ranks_on_host", "\(ranksOnHost)"), ("local_batch", "\(c.batch)"),
                             ("global_batch", "\(c.batch * comm.size)"),
                             ("images_per_s", String(format: "%.1f", imagesPerSecond)),
                             ("one_rank_images_per_s", String(format: "%.1f", oneRank)),
                             ("efficiency", String(format: "%.3f", imagesPerSecond / (Double(comm.size) * oneRank))),
                             ("overlap", "\(overlapped)"), ("bucket_bytes", "\(synchronization.bucketBytes)")]
                rows.append(row)
            }
            return rows
        }
    }
}
