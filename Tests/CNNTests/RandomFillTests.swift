@testable import CNN
import Testing

/// `Tensor.uniform` and `Tensor.normal` draw through the C kernels' bulk fills; these must give
/// exactly what drawing one sample at a time gives (the committed seeded expectations and saved
/// generator states depend on it), whatever the thread count.
@Suite("Seeded bulk fills", .serialized)
struct RandomFillTests {
    /// Sizes below one block, exactly one, and several blocks with a tail (threaded).
    static let sizes = [0, 1, 7, 8192, 3 * 8192 + 17]

    @Test(arguments: [1, 2])
    func uniformMatchesOneAtATime(threads: Int) throws {
        try ComputeRuntime.setThreadCount(threads)
        defer { try? ComputeRuntime.setThreadCount(nil) }
        for n in Self.sizes {
            var bulk = SeededGenerator(seed: 11), single = bulk
            let t = try Tensor.uniform(shape: [n], lower: -0.3, upper: 0.7, generator: &bulk)
            let expected = (0..<n).map { _ in Float(-0.3) + (Float(0.7) - Float(-0.3)) * single.nextUniform() }
            #expect(t.scalars.map(\.bitPattern) == expected.map(\.bitPattern), "n = \(n)")
            #expect(bulk == single, "state after \(n) draws")
        }
    }

    @Test(arguments: [1, 2])
    func normalMatchesOneAtATime(threads: Int) throws {
        try ComputeRuntime.setThreadCount(threads)
        defer { try? ComputeRuntime.setThreadCount(nil) }
        for n in Self.sizes {
            var bulk = SeededGenerator(seed: 12), single = bulk
            let t = try Tensor.normal(shape: [n], mean: 0.25, standardDeviation: 0.0125, generator: &bulk)
            let expected = (0..<n).map { _ in Float(0.25) + Float(0.0125) * single.nextNormal() }
            #expect(t.scalars.map(\.bitPattern) == expected.map(\.bitPattern), "n = \(n)")
            #expect(bulk == single, "state after \(n) draws")
            // A draw after the fill continues the same sequence.
            #expect(bulk.next() == single.next())
        }
    }
}
