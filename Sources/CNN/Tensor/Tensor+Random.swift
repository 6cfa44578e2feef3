import CNNKernels

/// A small, fast, reproducible pseudo-random generator: xoshiro256** seeded through SplitMix64.
///
/// The same seed gives the same sequence on every machine and Swift version, which is what makes
/// initial weights, data shuffling and augmentation reproducible. Not for cryptography.
public struct SeededGenerator: RandomNumberGenerator, Sendable, Equatable, Codable {
    // Four words of state as separate fields: no array bounds checks on the hot path (an array
    // made weight initialisation of VGG-16 take about a minute in debug builds).
    private var s0, s1, s2, s3: UInt64

    /// The generator's four words of state (saved in checkpoints to resume a run exactly).
    public var state: [UInt64] { [s0, s1, s2, s3] }

    /// A generator continuing from a saved ``state``.
    ///
    /// - Throws: ``CNNError/invalidArgument(_:)`` unless `state` has four words, not all zero.
    public init(state: [UInt64]) throws {
        guard state.count == 4, state.contains(where: { $0 != 0 }) else {
            throw CNNError.invalidArgument("SeededGenerator(state:): needs 4 words, not all zero, got \(state)")
        }
        (s0, s1, s2, s3) = (state[0], state[1], state[2], state[3])
    }

    /// A generator whose sequence is fully determined by `seed`.
    public init(seed: UInt64) {
        var s = seed
        func splitmix() -> UInt64 {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitmix(); s1 = splitmix(); s2 = splitmix(); s3 = splitmix()
    }

    /// The next 64 random bits (xoshiro256**).
    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// A uniform float in [0, 1) with 24 random bits.
    public mutating func nextUniform() -> Float {
        Float(next() >> 40) * (1.0 / 16_777_216.0)
    }

    /// A standard normal sample (Box–Muller, in double precision).
    public mutating func nextNormal() -> Float {
        var u1 = Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        if u1 < 1e-300 { u1 = 1e-300 }
        let u2 = Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        return Float((-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2))
    }

    /// Fills `buffer` with `lower + width * nextUniform()`, element by element: the same values and
    /// final state as that loop, drawn by the C kernels (fast also in debug builds).
    mutating func fillUniform(_ buffer: UnsafeMutableBufferPointer<Float>, lower: Float, width: Float) {
        withState { state in _ = cnn_random_uniform_fill(state, Int64(buffer.count), lower, width, buffer.baseAddress) }
    }

    /// Fills `buffer` with `mean + standardDeviation * nextNormal()`, element by element: the same
    /// values and final state as that loop, drawn by the C kernels (vectorised, fast also in debug builds).
    mutating func fillNormal(_ buffer: UnsafeMutableBufferPointer<Float>, mean: Float, standardDeviation: Float) {
        withState { state in
            _ = cnn_random_normal_fill(state, Int64(buffer.count), mean, standardDeviation, buffer.baseAddress)
        }
    }

    /// Runs `body` on the four state words as a C array, then takes them back.
    private mutating func withState(_ body: (UnsafeMutablePointer<UInt64>) -> Void) {
        var words = (s0, s1, s2, s3)
        withUnsafeMutableBytes(of: &words) { raw in body(raw.baseAddress!.assumingMemoryBound(to: UInt64.self)) }
        (s0, s1, s2, s3) = words
    }
}

@inline(__always) func _log(_ x: Double) -> Double { Double.log(x) }
@inline(__always) func _cos(_ x: Double) -> Double { Double.cos(x) }

extension Double {
    static func log(_ x: Double) -> Double { _math_log(x) }
    static func cos(_ x: Double) -> Double { _math_cos(x) }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func _math_log(_ x: Double) -> Double { Glibc.log(x) }
@inline(__always) func _math_cos(_ x: Double) -> Double { Glibc.cos(x) }
#elseif canImport(Darwin)
import Darwin
@inline(__always) func _math_log(_ x: Double) -> Double { Darwin.log(x) }
@inline(__always) func _math_cos(_ x: Double) -> Double { Darwin.cos(x) }
#elseif canImport(Musl)
import Musl
@inline(__always) func _math_log(_ x: Double) -> Double { Musl.log(x) }
@inline(__always) func _math_cos(_ x: Double) -> Double { Musl.cos(x) }
#endif

extension Tensor {
    /// Uniform samples in `[lower, upper)`.
    public static func uniform(shape: [Int], lower: Float = 0, upper: Float = 1,
                               generator: inout SeededGenerator) throws -> Tensor {
        guard lower <= upper else {
            throw CNNError.invalidArgument("uniform: lower bound \(lower) is above upper bound \(upper)")
        }
        let t = try Tensor(uninitializedShape: shape)
        generator.fillUniform(UnsafeMutableBufferPointer(start: t.storage.pointer, count: t.count),
                              lower: lower, width: upper - lower)
        return t
    }

    /// Normal samples with the given mean and standard deviation.
    public static func normal(shape: [Int], mean: Float = 0, standardDeviation: Float = 1,
                              generator: inout SeededGenerator) throws -> Tensor {
        guard standardDeviation >= 0 else {
            throw CNNError.invalidArgument("normal: standard deviation \(standardDeviation) is negative")
        }
        let t = try Tensor(uninitializedShape: shape)
        generator.fillNormal(UnsafeMutableBufferPointer(start: t.storage.pointer, count: t.count),
                             mean: mean, standardDeviation: standardDeviation)
        return t
    }

    /// Fan-in and fan-out of a weight shape as PyTorch computes them: for `[out, in, k...]`,
    /// fan-in = in * prod(k), fan-out = out * prod(k).
    static func fans(_ shape: [Int]) throws -> (fanIn: Int, fanOut: Int) {
        guard shape.count >= 2 else {
            throw CNNError.invalidArgument("fan-in/fan-out needs a shape of rank >= 2, got \(shape)")
        }
        let receptive = shape.dropFirst(2).reduce(1, *)
        return (shape[1] * receptive, shape[0] * receptive)
    }

    /// He (Kaiming) normal initialisation for ReLU networks: N(0, 2 / fan-in) (He et al., 2015).
    public static func heNormal(shape: [Int], generator: inout SeededGenerator) throws -> Tensor {
        let (fanIn, _) = try fans(shape)
        return try normal(shape: shape, standardDeviation: (2 / Float(Swift.max(fanIn, 1))).squareRoot(), generator: &generator)
    }

    /// He (Kaiming) uniform initialisation with PyTorch's `a` parameter: bound = gain * sqrt(3 / fan-in),
    /// gain = sqrt(2 / (1 + a^2)). With a = sqrt(5) this is PyTorch's default for `Conv2d` and
    /// `Linear` weights (bound = 1 / sqrt(fan-in)).
    public static func heUniform(shape: [Int], a: Float = 0, generator: inout SeededGenerator) throws -> Tensor {
        let (fanIn, _) = try fans(shape)
        let gain = (2 / (1 + a * a)).squareRoot()
        let bound = gain * (3 / Float(Swift.max(fanIn, 1))).squareRoot()
        return try uniform(shape: shape, lower: -bound, upper: bound, generator: &generator)
    }

    /// Xavier (Glorot) uniform initialisation: bound = sqrt(6 / (fan-in + fan-out)) (Glorot & Bengio, 2010).
    public static func xavierUniform(shape: [Int], generator: inout SeededGenerator) throws -> Tensor {
        let (fanIn, fanOut) = try fans(shape)
        let bound = (6 / Float(Swift.max(fanIn + fanOut, 1))).squareRoot()
        return try uniform(shape: shape, lower: -bound, upper: bound, generator: &generator)
    }
}
