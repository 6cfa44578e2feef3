/// AlexNet (Krizhevsky, Sutskever & Hinton, 2012, "ImageNet classification with deep
/// convolutional neural networks") and its descendant ZFNet (Zeiler & Fergus, 2013, "Visualizing and
/// understanding convolutional networks"), with torchvision's module structure: `features`
/// (a ``Sequential`` of convolutions, ReLUs, normalisations and pools), `avgpool` (adaptive average
/// pooling to 6x6, an identity at each variant's native input size) and `classifier`
/// (Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear).
///
/// Initialisation is PyTorch's default, as in torchvision's AlexNet.
public final class AlexNet: Module {
    /// Which network.
    public enum Variant: String, CaseIterable, Sendable {
        /// torchvision's `alexnet` (from the "one weird trick" paper, Krizhevsky 2014): 64-192-384-256-256
        /// filters, no normalisation, 224x224 input. 61,100,840 parameters at 1000 classes.
        case torchvision
        /// The 2012 paper's network on 227x227 input: 96 11x11/4 filters (55x55x96 out), local response
        /// normalisation after conv1 and conv2, overlapping 3x3/2 max pooling, 96-256-384-384-256 filters,
        /// the two-GPU split kept as `groups = 2` in conv2, conv4 and conv5.
        case original2012
        /// ZFNet: conv1 7x7/2 (96 filters), conv2 5x5/2, and the larger conv3/4/5 of 512, 1024, 512 filters
        /// the paper found better (section 5.1), on 224x224 input.
        case zfNet
    }

    /// The convolutional part.
    public let features: Sequential
    /// Adaptive average pooling to 6x6, so that other input sizes reach the classifier.
    public let avgpool: AdaptiveAvgPool2d
    /// The fully connected part.
    public let classifier: Sequential

    /// Creates the network.
    ///
    /// - Parameters:
    ///   - variant: which network (torchvision's by default).
    ///   - classes: the number of outputs (1000 for ImageNet).
    ///   - inputChannels: 3 for colour images.
    ///   - hiddenFeatures: the width of the two hidden fully connected layers: 4096 in every paper;
    ///     smaller values make a cheap network for experiments and tests.
    ///   - dropout: the dropout probability before the two hidden fully connected layers (0.5 in the paper).
    public init(variant: Variant = .torchvision, classes: Int = 1000, inputChannels: Int = 3,
                hiddenFeatures: Int = 4096, dropout: Float = 0.5) throws {
        let lastChannels: Int
        switch variant {
        case .torchvision:
            lastChannels = 256
            features = Sequential(
                try Conv2d(inputChannels: inputChannels, outputChannels: 64, kernelSize: 11, stride: 4, padding: 2), ReLU(),
                try MaxPool2d(kernelSize: 3, stride: 2),
                try Conv2d(inputChannels: 64, outputChannels: 192, kernelSize: 5, padding: 2), ReLU(),
                try MaxPool2d(kernelSize: 3, stride: 2),
                try Conv2d(inputChannels: 192, outputChannels: 384, kernelSize: 3, padding: 1), ReLU(),
                try Conv2d(inputChannels: 384, outputChannels: 256, kernelSize: 3, padding: 1), ReLU(),
                try Conv2d(inputChannels: 256, outputChannels: 256, kernelSize: 3, padding: 1), ReLU(),
                try MaxPool2d(kernelSize: 3, stride: 2))
        case .original2012:
            // Section 3.3: LRN with k = 2, n = 5, α = 1e-4, β = 0.75 after the ReLU of conv1 and conv2;
            // section 3.4: overlapping pooling, z = 3, s = 2. The paper's figure says 224x224, but
            // (224 − 11)/4 + 1 is not an integer; 227x227 gives its 55x55.
            // Section 3.2: conv2, conv4 and conv5 see only the kernels on their own GPU (groups = 2);
            // conv3 connects to all of conv2's maps.
            lastChannels = 256
            features = Sequential(
                try Conv2d(inputChannels: inputChannels, outputChannels: 96, kernelSize: 11, stride: 4), ReLU(),
                try LocalResponseNorm(size: 5, alpha: 1e-4, beta: 0.75, k: 2),
                try MaxPool2d(kernelSize: 3, stride: 2),
                try Conv2d(inputChannels: 96, outputChannels: 256, kernelSize: 5, padding: 2, groups: 2), ReLU(),
                try LocalResponseNorm(size: 5, alpha: 1e-4, beta: 0.75, k: 2),
                try MaxPool2d(kernelSize: 3, stride: 2),
                try Conv2d(inputChannels: 256, outputChannels: 384, kernelSize: 3, padding: 1), ReLU(),
                try Conv2d(inputChannels: 384, outputChannels: 384, kernelSize: 3, padding: 1, groups: 2), ReLU(),
                try Conv2d(inputChannels: 384, outputChannels: 256, kernelSize: 3, padding: 1, groups: 2), ReLU(),
                try MaxPool2d(kernelSize: 3, stride: 2))
        case .zfNet:
            // Figure 3 of the paper: 224 → 110 (7x7/2) → 55 (3x3/2 pool) → 26 (5x5/2) → 13 (pool) → 13 → 6.
            // Padding 1 on conv1 and ceil-mode pooling reproduce exactly those sizes. Its "contrast
            // normalisation across feature maps" is AlexNet's LRN.
            lastChannels = 512
            features = Sequential(
                try Conv2d(inputChannels: inputChannels, outputChannels: 96, kernelSize: 7, stride: 2, padding: 1), ReLU(),
                try LocalResponseNorm(size: 5, alpha: 1e-4, beta: 0.75, k: 2),
                try MaxPool2d(kernelSize: 3, stride: 2, ceilMode: true),
                try Conv2d(inputChannels: 96, outputChannels: 256, kernelSize: 5, stride: 2), ReLU(),
                try LocalResponseNorm(size: 5, alpha: 1e-4, beta: 0.75, k: 2),
                try MaxPool2d(kernelSize: 3, stride: 2, ceilMode: true),
                try Conv2d(inputChannels: 256, outputChannels: 512, kernelSize: 3, padding: 1), ReLU(),
                try Conv2d(inputChannels: 512, outputChannels: 1024, kernelSize: 3, padding: 1), ReLU(),
                try Conv2d(inputChannels: 1024, outputChannels: 512, kernelSize: 3, padding: 1), ReLU(),
                try MaxPool2d(kernelSize: 3, stride: 2))
        }
        avgpool = try AdaptiveAvgPool2d(outputSize: (6, 6))
        // Section 4.2 of the 2012 paper: dropout in the first two fully connected layers.
        classifier = Sequential(
            try Dropout(probability: dropout),
            try Linear(inputFeatures: lastChannels * 6 * 6, outputFeatures: hiddenFeatures), ReLU(),
            try Dropout(probability: dropout),
            try Linear(inputFeatures: hiddenFeatures, outputFeatures: hiddenFeatures), ReLU(),
            try Linear(inputFeatures: hiddenFeatures, outputFeatures: classes))
        super.init()
    }

    /// `[N, C, H, W]` (224x224, or 227x227 for ``Variant/original2012``) to `[N, classes]` logits.
    public override func forward(_ input: Variable) throws -> Variable {
        try classifier(try Functional.flatten(try avgpool(try features(input))))
    }
}
