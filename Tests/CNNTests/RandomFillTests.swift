@testable import CNN
import Testing

/// `Tensor.uniform` and `Tensor.normal` draw through the C kernels' bulk fills; these must give
/// exactly what drawing one sample at a time gives (the committed seeded expectations and saved
/// generator states depend on it), on every instruction-set variant of the normal's fast transform.
@Suite("Seeded bulk fills", .serialized)
struct RandomFillTests {
    /// Sizes below one block, exactly one, several blocks with a tail, and enough samples (400,000
    /// draws) that the normal's rounding-test fallback to libm is taken a few times.
    static let sizes = [0, 1, 7, 1024, 3 * 1024 + 17, 200_000]

    /// The first index where two arrays differ in bits (or in length), with both values.
    func firstDifference(_ a: [Float], _ b: [Float]) -> String? {
        guard a.count == b.count else { return "counts \(a.count) and \(b.count)" }
        guard let i = a.indices.first(where: { a[$0].bitPattern != b[$0].bitPattern }) else { return nil }
        return "index \(i): \(a[i]) vs \(b[i])"
    }

    @Test(arguments: ComputeRuntime.supportedISAs)
    func uniformMatchesOneAtATime(isa: ISA) throws { try ComputeRuntime.withISA(isa) { try uniformMatchesOneAtATime() } }

    func uniformMatchesOneAtATime() throws {
        for n in Self.sizes {
            var bulk = SeededGenerator(seed: 11), single = bulk
            let t = try Tensor.uniform(shape: [n], lower: -0.3, upper: 0.7, generator: &bulk)
            let expected = (0..<n).map { _ in Float(-0.3) + (Float(0.7) - Float(-0.3)) * single.nextUniform() }
            #expect(firstDifference(t.scalars, expected) == nil, "n = \(n)")
            #expect(bulk == single, "state after \(n) draws")
        }
    }

    @Test(arguments: ComputeRuntime.supportedISAs)
    func normalMatchesOneAtATime(isa: ISA) throws { try ComputeRuntime.withISA(isa) { try normalMatchesOneAtATime() } }

    func normalMatchesOneAtATime() throws {
        for n in Self.sizes {
            var bulk = SeededGenerator(seed: 12), single = bulk
            let t = try Tensor.normal(shape: [n], mean: 0.25, standardDeviation: 0.0125, generator: &bulk)
            let expected = (0..<n).map { _ in Float(0.25) + Float(0.0125) * single.nextNormal() }
            #expect(firstDifference(t.scalars, expected) == nil, "n = \(n)")
            #expect(bulk == single, "state after \(n) draws")
            // A draw after the fill continues the same sequence.
            #expect(bulk.next() == single.next())
        }
    }
}
