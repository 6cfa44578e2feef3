import CNNKernels
import Foundation
import Synchronization

/// Measures every applicable convolution algorithm for a geometry once and remembers the fastest.
///
/// The table lives in memory for the process and can be saved to and loaded from JSON, so later
/// runs start tuned:
///
/// ```json
/// {"version":1,"isa":"avx512","threads":2,"entries":[{"geometry":{...},"algorithm":"winograd4x4","milliseconds":0.41}]}
/// ```
/// Entries are only valid for the ISA and thread count they were measured with; loading a table
/// measured with others keeps it but the lookup ignores mismatching entries.
public final class ConvolutionAutotuner: Sendable {
    /// One measured winner.
    public struct Entry: Codable, Sendable, Equatable {
        /// The geometry measured.
        public var geometry: ConvolutionGeometry
        /// The fastest algorithm.
        public var algorithm: ConvolutionAlgorithm
        /// Its median time in milliseconds.
        public var milliseconds: Double
        /// The ISA variant active during the measurement.
        public var isa: String
        /// The thread count during the measurement.
        public var threads: Int
    }

    struct Table: Codable {
        var version: Int
        var entries: [Entry]
    }

    /// The process-wide autotuner used by ``ConvolutionAlgorithm/autotune``.
    public static let shared = ConvolutionAutotuner()

    private let table = Mutex<[String: Entry]>([:])

    /// Creates an empty autotuner.
    public init() {}

    private static func key(_ g: ConvolutionGeometry, isa: String, threads: Int) -> String {
        "\(g)|\(isa)|\(threads)"
    }

    /// The remembered winners.
    public var entries: [Entry] { table.withLock { Array($0.values) }.sorted { "\($0.geometry)" < "\($1.geometry)" } }

    /// The fastest algorithm for `geometry` on this machine's current ISA and thread count,
    /// measured on first use with `weight` and a random input (3 timed runs after a warm-up each).
    public func best(for geometry: ConvolutionGeometry, weight: Tensor) throws -> ConvolutionAlgorithm {
        let isa = ComputeRuntime.activeISA.rawValue, threads = ComputeRuntime.threadCount
        let k = Self.key(geometry, isa: isa, threads: threads)
        if let e = table.withLock({ $0[k] }) { return e.algorithm }
        var rng = SeededGenerator(seed: 0xA170)
        let x = try Tensor.uniform(shape: [geometry.batch, geometry.inputChannels, geometry.height, geometry.width],
                                   lower: -1, upper: 1, generator: &rng)
        var best: (ConvolutionAlgorithm, Double)? = nil
        for alg in geometry.applicableAlgorithms {
            let plan = try ConvolutionPlan(algorithm: alg, geometry: geometry, weight: weight)
            _ = try plan.forward(x)
            var times: [Double] = []
            for _ in 0..<3 {
                let t0 = cnn_now()
                _ = try plan.forward(x)
                times.append((cnn_now() - t0) * 1000)
            }
            let median = times.sorted()[1]
            if best == nil || median < best!.1 { best = (alg, median) }
        }
        guard let (alg, ms) = best else {
            throw CNNError.unsupported("autotune: no algorithm applies to \(geometry)")
        }
        table.withLock { $0[k] = Entry(geometry: geometry, algorithm: alg, milliseconds: ms, isa: isa, threads: threads) }
        return alg
    }

    /// Forgets every measurement.
    public func reset() { table.withLock { $0.removeAll() } }

    /// Writes the table as JSON.
    public func save(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(Table(version: 1, entries: entries))
        do { try data.write(to: url, options: .atomic) } catch {
            throw CNNError.io("autotune table \(url.path): \(error.localizedDescription)")
        }
    }

    /// Merges a table written by ``save(to:)``.
    ///
    /// - Throws: ``CNNError/invalidFile(_:)`` naming the file when it is not such a table
    ///   (nothing is merged then).
    public func load(from url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw CNNError.io("autotune table \(url.path): \(error.localizedDescription)")
        }
        try load(json: data, source: url.path)
    }

    /// Merges a table from JSON bytes.
    public func load(json data: Data, source: String = "autotune table") throws {
        let decoded: Table
        do { decoded = try JSONDecoder().decode(Table.self, from: data) } catch {
            throw CNNError.invalidFile("\(source): not an autotune table (\(error))")
        }
        guard decoded.version == 1 else {
            throw CNNError.invalidFile("\(source): table version \(decoded.version), expected 1")
        }
        for e in decoded.entries {
            _ = try e.geometry.outputSize()
            guard e.algorithm != .auto, e.algorithm != .autotune, e.geometry.applicableAlgorithms.contains(e.algorithm) else {
                throw CNNError.invalidFile("\(source): algorithm \(e.algorithm.rawValue) does not apply to \(e.geometry)")
            }
        }
        table.withLock { t in
            for e in decoded.entries { t[Self.key(e.geometry, isa: e.isa, threads: e.threads)] = e }
        }
    }
}
