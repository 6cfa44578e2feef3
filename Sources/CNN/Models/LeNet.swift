/// LeNet-5 (LeCun et al., 1998, "Gradient-based learning applied to document recognition"):
/// convolution 5x5 x6 – pool – convolution 5x5 x16 – pool – fully connected 120 – 84 – classes.
///
/// This is the modern recipe, not the 1998 original: ReLU instead of scaled tanh, 2x2 max pooling
/// instead of trainable subsampling, full connections between the two convolutions instead of
/// the original's partial C3 table, and a plain linear output instead of RBF units.
///
/// The paper's input is 32x32 (MNIST's 28x28 digits padded by 2); for 28x28 input the first
/// convolution pads by 2 instead, so both reach `16 x 5 x 5 = 400` features.
///
/// Names (for weight files): `features` is a ``Sequential`` of conv1 (`features.0`), ReLU,
/// pool, conv2 (`features.3`), ReLU, pool; `classifier` a ``Sequential`` of fc1 (`classifier.0`),
/// ReLU, fc2 (`classifier.2`), ReLU, fc3 (`classifier.4`) — so `features.0.weight` is `[6, C, 5, 5]`.
/// Initialisation is PyTorch's default. 61,706 parameters for one input channel and 10 classes.
public final class LeNet5: Module {
    /// Convolutions, activations and pooling.
    public let features: Sequential
    /// The three fully connected layers.
    public let classifier: Sequential

    /// Creates LeNet-5.
    ///
    /// - Parameters:
    ///   - classes: the number of outputs.
    ///   - inputChannels: 1 for MNIST.
    ///   - inputSize: 28 (MNIST, first convolution padded by 2) or 32 (the paper's size).
    /// - Throws: ``CNNError/invalidArgument(_:)`` for another input size or non-positive counts.
    public init(classes: Int = 10, inputChannels: Int = 1, inputSize: Int = 28) throws {
        guard inputSize == 28 || inputSize == 32 else {
            throw CNNError.invalidArgument("LeNet5: input size \(inputSize) must be 28 (MNIST) or 32 (the paper's padded input)")
        }
        features = Sequential(
            try Conv2d(inputChannels: inputChannels, outputChannels: 6, kernelSize: 5, padding: inputSize == 28 ? 2 : 0),
            ReLU(),
            try MaxPool2d(kernelSize: 2),
            try Conv2d(inputChannels: 6, outputChannels: 16, kernelSize: 5),
            ReLU(),
            try MaxPool2d(kernelSize: 2))
        classifier = Sequential(
            try Linear(inputFeatures: 16 * 5 * 5, outputFeatures: 120),
            ReLU(),
            try Linear(inputFeatures: 120, outputFeatures: 84),
            ReLU(),
            try Linear(inputFeatures: 84, outputFeatures: classes))
        super.init()
    }

    /// `[N, C, 28 or 32, 28 or 32]` to `[N, classes]` logits.
    public override func forward(_ input: Variable) throws -> Variable {
        try classifier(try Functional.flatten(try features(input)))
    }
}
