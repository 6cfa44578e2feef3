/// `max(x, 0)`.
public final class ReLU: Module {
    /// Creates the layer.
    public override init() { super.init() }
    public override func forward(_ input: Variable) throws -> Variable { try Functional.relu(input) }
}

/// `x` where positive, `negativeSlope · x` elsewhere.
public final class LeakyReLU: Module {
    public let negativeSlope: Float
    /// Creates the layer (PyTorch's default slope 0.01).
    public init(negativeSlope: Float = 0.01) { self.negativeSlope = negativeSlope; super.init() }
    public override func forward(_ input: Variable) throws -> Variable { try Functional.leakyRelu(input, negativeSlope: negativeSlope) }
    public override var configurationDescription: String { "slope \(negativeSlope)" }
}

/// Inverted dropout (Srivastava et al., 2014): in training each element is zeroed with probability
/// `p` and the survivors scaled by `1/(1−p)`; identity in evaluation.
///
/// Each training call draws a fresh mask seed from the layer's own seeded sequence, so a run with
/// the same global seed is reproducible whatever the thread count.
public final class Dropout: Module {
    public let probability: Float
    /// The seed of this layer's mask sequence and the number of masks drawn so far (restored from
    /// checkpoints to resume exactly).
    public var seed: UInt64
    public var callCount: UInt64 = 0

    /// Creates the layer (PyTorch's default p = 0.5).
    public init(probability: Float = 0.5) throws {
        guard probability >= 0, probability <= 1 else {
            throw CNNError.invalidArgument("Dropout: probability \(probability) is outside [0, 1]")
        }
        self.probability = probability
        self.seed = GlobalGenerator.next()
        super.init()
    }

    public override func forward(_ input: Variable) throws -> Variable {
        guard isTraining, probability > 0 else { return input }
        callCount &+= 1
        var g = SeededGenerator(seed: seed ^ (callCount &* 0x9E37_79B9_7F4A_7C15))
        return try Functional.dropout(input, probability: probability, seed: g.next())
    }

    public override var configurationDescription: String { "p=\(probability)" }
}

/// `[N, d1, d2, ...]` to `[N, d1·d2·...]`.
public final class Flatten: Module {
    /// Creates the layer.
    public override init() { super.init() }
    public override func forward(_ input: Variable) throws -> Variable { try Functional.flatten(input) }
}

/// Passes its input through unchanged.
public final class Identity: Module {
    /// Creates the layer.
    public override init() { super.init() }
    public override func forward(_ input: Variable) throws -> Variable { input }
}
