/// VGG (Simonyan & Zisserman, 2015, "Very deep convolutional networks for large-scale image
/// recognition"), built from one configuration table exactly as torchvision: `features` (3x3
/// convolutions with padding 1, each followed by an optional batch norm and a ReLU, and 2x2/2 max
/// pools), `avgpool` (adaptive average pooling to 7x7) and `classifier` (Linear 25088-4096, ReLU,
/// Dropout, Linear 4096-4096, ReLU, Dropout, Linear 4096-classes).
///
/// Most of the parameters sit in `classifier.0`: 102,764,544 weights of VGG-16's 138,357,544.
///
/// Initialisation as torchvision: convolutions Kaiming-normal with fan-out (He et al., 2015) and
/// zero bias, batch norm weight 1 and bias 0, fully connected layers normal(0, 0.01) with zero bias.
public final class VGG: Module {
    /// One entry of a configuration: a convolution's output channels, or a max pool.
    public enum Layer: Equatable, Sendable {
        /// A 3x3 convolution with padding 1 and this many output channels (then [BN,] ReLU).
        case convolution(Int)
        /// A 2x2 max pool with stride 2.
        case maxPool
    }

    /// The four networks of the paper's Table 1, with torchvision's configuration letters.
    public enum Configuration: String, CaseIterable, Sendable {
        /// VGG-11 (8 convolutions, 3 fully connected).
        case a = "A"
        /// VGG-13.
        case b = "B"
        /// VGG-16.
        case d = "D"
        /// VGG-19.
        case e = "E"

        /// The network's depth in weight layers (11, 13, 16, 19).
        public var depth: Int { layers.filter { $0 != .maxPool }.count + 3 }

        /// The configuration of the given depth, or `nil` for a depth other than 11, 13, 16, 19.
        public init?(depth: Int) {
            guard let c = Configuration.allCases.first(where: { $0.depth == depth }) else { return nil }
            self = c
        }

        /// The layers of `features` (torchvision's `cfgs`; Table 1 of the paper without the LRN of A-LRN
        /// and the 1x1 convolutions of C).
        public var layers: [Layer] {
            let m = Layer.maxPool
            func c(_ k: Int) -> Layer { .convolution(k) }
            switch self {
            case .a: return [c(64), m, c(128), m, c(256), c(256), m, c(512), c(512), m, c(512), c(512), m]
            case .b: return [c(64), c(64), m, c(128), c(128), m, c(256), c(256), m, c(512), c(512), m, c(512), c(512), m]
            case .d: return [c(64), c(64), m, c(128), c(128), m, c(256), c(256), c(256), m,
                             c(512), c(512), c(512), m, c(512), c(512), c(512), m]
            case .e: return [c(64), c(64), m, c(128), c(128), m, c(256), c(256), c(256), c(256), m,
                             c(512), c(512), c(512), c(512), m, c(512), c(512), c(512), c(512), m]
            }
        }
    }

    /// Convolutions, [batch norms,] ReLUs and pools.
    public let features: Sequential
    /// Adaptive average pooling to 7x7 (an identity at 224x224 input).
    public let avgpool: AdaptiveAvgPool2d
    /// The fully connected part.
    public let classifier: Sequential

    /// Creates a VGG network.
    ///
    /// - Parameters:
    ///   - configuration: A (VGG-11), B (VGG-13), D (VGG-16) or E (VGG-19).
    ///   - batchNorm: a batch norm after every convolution (torchvision's `vgg16_bn`; not in the paper,
    ///     which predates batch norm). The convolutions keep their bias either way, as in torchvision.
    ///   - classes: the number of outputs.
    ///   - inputChannels: 3 for colour images.
    ///   - hiddenFeatures: the hidden fully connected width, 4096 in the paper; smaller values make a
    ///     cheap network for experiments and tests.
    ///   - dropout: the dropout probability in the classifier (0.5 in the paper).
    public init(configuration: Configuration, batchNorm: Bool = false, classes: Int = 1000, inputChannels: Int = 3,
                hiddenFeatures: Int = 4096, dropout: Float = 0.5) throws {
        var layers: [Module] = []
        var channels = inputChannels
        for layer in configuration.layers {
            switch layer {
            case .maxPool:
                layers.append(try MaxPool2d(kernelSize: 2, stride: 2))
            case .convolution(let k):
                layers.append(try Conv2d(inputChannels: channels, outputChannels: k, kernelSize: 3, padding: 1))
                if batchNorm { layers.append(try BatchNorm2d(features: k)) }
                layers.append(ReLU())
                channels = k
            }
        }
        features = Sequential(layers)
        avgpool = try AdaptiveAvgPool2d(outputSize: (7, 7))
        classifier = Sequential(
            try Linear(inputFeatures: channels * 7 * 7, outputFeatures: hiddenFeatures), ReLU(), try Dropout(probability: dropout),
            try Linear(inputFeatures: hiddenFeatures, outputFeatures: hiddenFeatures), ReLU(), try Dropout(probability: dropout),
            try Linear(inputFeatures: hiddenFeatures, outputFeatures: classes))
        super.init()
        try ModelInitializer.initialize(self, convolutions: .kaimingNormalFanOut, linear: .normal(standardDeviation: 0.01),
                                        zeroBiases: true)
    }

    /// `[N, C, H, W]` (224x224 in the paper; at least 32x32) to `[N, classes]` logits.
    public override func forward(_ input: Variable) throws -> Variable {
        try classifier(try Functional.flatten(try avgpool(try features(input))))
    }
}
