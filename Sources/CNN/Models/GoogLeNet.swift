/// GoogLeNet, Inception v1 (Szegedy et al., 2015, "Going deeper with convolutions"), with
/// torchvision's structure: `conv1`...`conv3` (``BasicConv2d``), `maxpool1`...`maxpool4` (ceil mode),
/// `inception3a`...`inception5b` (``Inception``), the optional auxiliary classifiers `aux1`, `aux2`
/// (``InceptionAux``), `avgpool`, `dropout` (0.2) and `fc`. 6,624,904 parameters at 1000 classes
/// without the auxiliary classifiers.
///
/// Like torchvision, it adds batch norm to every convolution (the paper predates it) and the
/// "5x5" branch uses a 3x3 convolution (a long-standing torchvision deviation kept for weight
/// compatibility). Initialisation as torchvision: convolution and linear weights truncated normal
/// with σ = 0.01, batch norm weight 1 and bias 0, linear biases PyTorch's default.
public final class GoogLeNet: Module {
    /// 7x7/2, 64 filters.
    public let conv1: BasicConv2d
    /// 3x3/2 max pool.
    public let maxpool1: MaxPool2d
    /// 1x1, 64 filters.
    public let conv2: BasicConv2d
    /// 3x3, 192 filters.
    public let conv3: BasicConv2d
    /// 3x3/2 max pool.
    public let maxpool2: MaxPool2d
    /// Inception 3a: 256 channels out.
    public let inception3a: Inception
    /// Inception 3b: 480 channels out.
    public let inception3b: Inception
    /// 3x3/2 max pool.
    public let maxpool3: MaxPool2d
    /// Inception 4a: 512 channels out.
    public let inception4a: Inception
    /// Inception 4b: 512 channels out.
    public let inception4b: Inception
    /// Inception 4c: 512 channels out.
    public let inception4c: Inception
    /// Inception 4d: 528 channels out.
    public let inception4d: Inception
    /// Inception 4e: 832 channels out.
    public let inception4e: Inception
    /// 2x2/2 max pool.
    public let maxpool4: MaxPool2d
    /// Inception 5a: 832 channels out.
    public let inception5a: Inception
    /// Inception 5b: 1024 channels out.
    public let inception5b: Inception
    /// The auxiliary classifier on inception 4a's output, or `nil`.
    public let aux1: InceptionAux?
    /// The auxiliary classifier on inception 4d's output, or `nil`.
    public let aux2: InceptionAux?
    /// Global average pooling.
    public let avgpool: AdaptiveAvgPool2d
    /// Dropout before the classifier.
    public let dropout: Dropout
    /// The classifier, `1024 -> classes`.
    public let fc: Linear

    /// Creates GoogLeNet.
    ///
    /// - Parameters:
    ///   - classes: the number of outputs.
    ///   - inputChannels: 3 for colour images.
    ///   - auxiliaryClassifiers: add `aux1` and `aux2` (section 5 of the paper: their losses, weighted
    ///     0.3, help the gradient reach the lower layers in training; discarded at inference).
    ///   - dropout: before `fc`; torchvision's 0.2 (the paper used 0.4).
    ///   - auxiliaryDropout: in the auxiliary classifiers, 0.7 as in the paper.
    public init(classes: Int = 1000, inputChannels: Int = 3, auxiliaryClassifiers: Bool = false,
                dropout: Float = 0.2, auxiliaryDropout: Float = 0.7) throws {
        conv1 = try BasicConv2d(inputChannels: inputChannels, outputChannels: 64, kernelSize: 7, stride: 2, padding: 3)
        maxpool1 = try MaxPool2d(kernelSize: 3, stride: 2, ceilMode: true)
        conv2 = try BasicConv2d(inputChannels: 64, outputChannels: 64, kernelSize: 1)
        conv3 = try BasicConv2d(inputChannels: 64, outputChannels: 192, kernelSize: 3, padding: 1)
        maxpool2 = try MaxPool2d(kernelSize: 3, stride: 2, ceilMode: true)
        // Table 1 of the paper: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
        inception3a = try Inception(192, 64, 96, 128, 16, 32, 32)
        inception3b = try Inception(256, 128, 128, 192, 32, 96, 64)
        maxpool3 = try MaxPool2d(kernelSize: 3, stride: 2, ceilMode: true)
        inception4a = try Inception(480, 192, 96, 208, 16, 48, 64)
        inception4b = try Inception(512, 160, 112, 224, 24, 64, 64)
        inception4c = try Inception(512, 128, 128, 256, 24, 64, 64)
        inception4d = try Inception(512, 112, 144, 288, 32, 64, 64)
        inception4e = try Inception(528, 256, 160, 320, 32, 128, 128)
        maxpool4 = try MaxPool2d(kernelSize: 2, stride: 2, ceilMode: true)
        inception5a = try Inception(832, 256, 160, 320, 32, 128, 128)
        inception5b = try Inception(832, 384, 192, 384, 48, 128, 128)
        aux1 = auxiliaryClassifiers ? try InceptionAux(inputChannels: 512, classes: classes, dropout: auxiliaryDropout) : nil
        aux2 = auxiliaryClassifiers ? try InceptionAux(inputChannels: 528, classes: classes, dropout: auxiliaryDropout) : nil
        avgpool = try AdaptiveAvgPool2d(outputSize: (1, 1))
        self.dropout = try Dropout(probability: dropout)
        fc = try Linear(inputFeatures: 1024, outputFeatures: classes)
        super.init()
        try ModelInitializer.initialize(self, convolutions: .truncatedNormal(standardDeviation: 0.01),
                                        linear: .truncatedNormal(standardDeviation: 0.01), zeroBiases: false)
    }

    /// The main classifier's logits, `[N, C, H, W]` (224x224 in the paper; at least 32x32) to
    /// `[N, classes]`. The auxiliary classifiers are not evaluated; see ``forwardWithAuxiliary(_:)``.
    public override func forward(_ input: Variable) throws -> Variable {
        try forwardWithAuxiliary(input, evaluateAuxiliary: false).main
    }

    /// The main logits and, in training mode with auxiliary classifiers, the two auxiliary logits
    /// (`nil` otherwise), for the paper's training loss `main + 0.3·(aux1 + aux2)`.
    public func forwardWithAuxiliary(_ input: Variable) throws -> (main: Variable, aux1: Variable?, aux2: Variable?) {
        try forwardWithAuxiliary(input, evaluateAuxiliary: isTraining)
    }

    private func forwardWithAuxiliary(_ input: Variable, evaluateAuxiliary: Bool)
        throws -> (main: Variable, aux1: Variable?, aux2: Variable?) {
        var x = try maxpool1(try conv1(input))
        x = try maxpool2(try conv3(try conv2(x)))
        x = try maxpool3(try inception3b(try inception3a(x)))
        x = try inception4a(x)
        let a1 = evaluateAuxiliary ? try aux1.map { try $0(x) } : nil
        x = try inception4d(try inception4c(try inception4b(x)))
        let a2 = evaluateAuxiliary ? try aux2.map { try $0(x) } : nil
        x = try maxpool4(try inception4e(x))
        x = try inception5b(try inception5a(x))
        let main = try fc(try dropout(try Functional.flatten(try avgpool(x))))
        return (main, a1, a2)
    }
}

/// Convolution without bias, batch norm with ε = 0.001, ReLU: torchvision's `BasicConv2d`
/// (`conv`, `bn`).
public final class BasicConv2d: Module {
    /// The convolution (no bias: the batch norm's shift replaces it).
    public let conv: Conv2d
    /// The batch norm (ε = 0.001, as in TensorFlow's Inception models).
    public let bn: BatchNorm2d

    /// Creates the unit.
    public init(inputChannels: Int, outputChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0) throws {
        conv = try Conv2d(inputChannels: inputChannels, outputChannels: outputChannels, kernelSize: kernelSize,
                          stride: stride, padding: padding, bias: false)
        bn = try BatchNorm2d(features: outputChannels, epsilon: 0.001)
        super.init()
    }

    /// `relu(bn(conv(x)))`.
    public override func forward(_ input: Variable) throws -> Variable {
        try Functional.relu(try bn(try conv(input)))
    }
}

/// The Inception module (section 4 of the paper): 1x1, 1x1→3x3, 1x1→3x3 (the paper's 5x5; see
/// ``GoogLeNet``) and 3x3 max pool→1x1 branches, concatenated along the channels.
public final class Inception: Module {
    /// 1x1 convolution.
    public let branch1: BasicConv2d
    /// 1x1 reduction, then 3x3.
    public let branch2: Sequential
    /// 1x1 reduction, then 3x3 (torchvision's stand-in for the paper's 5x5).
    public let branch3: Sequential
    /// 3x3/1 max pool (padding 1, ceil mode), then 1x1 projection.
    public let branch4: Sequential

    /// Creates the module with the paper's Table 1 columns.
    ///
    /// Output channels: `ch1x1 + ch3x3 + ch5x5 + poolProjection`.
    public init(_ inputChannels: Int, _ ch1x1: Int, _ ch3x3Reduce: Int, _ ch3x3: Int, _ ch5x5Reduce: Int, _ ch5x5: Int,
                _ poolProjection: Int) throws {
        branch1 = try BasicConv2d(inputChannels: inputChannels, outputChannels: ch1x1, kernelSize: 1)
        branch2 = Sequential(try BasicConv2d(inputChannels: inputChannels, outputChannels: ch3x3Reduce, kernelSize: 1),
                             try BasicConv2d(inputChannels: ch3x3Reduce, outputChannels: ch3x3, kernelSize: 3, padding: 1))
        branch3 = Sequential(try BasicConv2d(inputChannels: inputChannels, outputChannels: ch5x5Reduce, kernelSize: 1),
                             try BasicConv2d(inputChannels: ch5x5Reduce, outputChannels: ch5x5, kernelSize: 3, padding: 1))
        branch4 = Sequential(try MaxPool2d(kernelSize: 3, stride: 1, padding: 1, ceilMode: true),
                             try BasicConv2d(inputChannels: inputChannels, outputChannels: poolProjection, kernelSize: 1))
        super.init()
    }

    /// `[N, C, H, W]` to `[N, ch1x1 + ch3x3 + ch5x5 + poolProjection, H, W]`.
    public override func forward(_ input: Variable) throws -> Variable {
        try Functional.concatenate([try branch1(input), try branch2(input), try branch3(input), try branch4(input)], alongAxis: 1)
    }
}

/// An auxiliary classifier (section 5 of the paper): 4x4 adaptive average pooling, 1x1 convolution
/// to 128 channels (`conv`), `fc1` 2048→1024 with ReLU, dropout 0.7, `fc2` 1024→classes.
public final class InceptionAux: Module {
    /// 1x1 convolution to 128 channels.
    public let conv: BasicConv2d
    /// 2048 → 1024.
    public let fc1: Linear
    /// 1024 → classes.
    public let fc2: Linear
    /// Dropout between fc1 and fc2.
    public let dropout: Dropout

    /// Creates the classifier.
    public init(inputChannels: Int, classes: Int, dropout: Float = 0.7) throws {
        conv = try BasicConv2d(inputChannels: inputChannels, outputChannels: 128, kernelSize: 1)
        fc1 = try Linear(inputFeatures: 2048, outputFeatures: 1024)
        fc2 = try Linear(inputFeatures: 1024, outputFeatures: classes)
        self.dropout = try Dropout(probability: dropout)
        super.init()
    }

    /// `[N, C, H, W]` to `[N, classes]` logits.
    public override func forward(_ input: Variable) throws -> Variable {
        var x = try conv(try Functional.adaptiveAvgPool2d(input, outputSize: (4, 4)))
        x = try Functional.relu(try fc1(try Functional.flatten(x)))
        return try fc2(try dropout(x))
    }
}
