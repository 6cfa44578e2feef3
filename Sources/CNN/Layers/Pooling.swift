/// Max pooling: the largest value of each `kernel` window. `ceilMode` rounds the output size up
/// (GoogLeNet's pools need it).
public final class MaxPool2d: Module {
    public let kernelSize: (Int, Int)
    public let stride: (Int, Int)
    public let padding: (Int, Int)
    public let ceilMode: Bool

    /// Creates a max pooling layer; `stride` defaults to the kernel size.
    public init(kernelSize: Int, stride: Int? = nil, padding: Int = 0, ceilMode: Bool = false) throws {
        guard kernelSize >= 1, (stride ?? kernelSize) >= 1, padding >= 0, padding <= kernelSize / 2 else {
            throw CNNError.invalidArgument("MaxPool2d: kernel \(kernelSize), stride \(stride ?? kernelSize), padding \(padding): kernel and stride must be positive and padding at most half the kernel")
        }
        self.kernelSize = (kernelSize, kernelSize)
        self.stride = (stride ?? kernelSize, stride ?? kernelSize)
        self.padding = (padding, padding)
        self.ceilMode = ceilMode
        super.init()
    }

    public override func forward(_ input: Variable) throws -> Variable {
        try Functional.maxPool2d(input, kernel: kernelSize, stride: stride, padding: padding, ceilMode: ceilMode)
    }

    public override var configurationDescription: String {
        "\(kernelSize.0)x\(kernelSize.1), stride \(stride.0)" + (padding.0 > 0 ? ", pad \(padding.0)" : "") + (ceilMode ? ", ceil" : "")
    }
}

/// Average pooling over `kernel` windows.
public final class AvgPool2d: Module {
    public let kernelSize: (Int, Int)
    public let stride: (Int, Int)
    public let padding: (Int, Int)
    public let ceilMode: Bool
    public let countIncludePad: Bool

    /// Creates an average pooling layer; `stride` defaults to the kernel size.
    public init(kernelSize: Int, stride: Int? = nil, padding: Int = 0, ceilMode: Bool = false, countIncludePad: Bool = true) throws {
        guard kernelSize >= 1, (stride ?? kernelSize) >= 1, padding >= 0, padding <= kernelSize / 2 else {
            throw CNNError.invalidArgument("AvgPool2d: kernel \(kernelSize), stride \(stride ?? kernelSize), padding \(padding): kernel and stride must be positive and padding at most half the kernel")
        }
        self.kernelSize = (kernelSize, kernelSize)
        self.stride = (stride ?? kernelSize, stride ?? kernelSize)
        self.padding = (padding, padding)
        self.ceilMode = ceilMode
        self.countIncludePad = countIncludePad
        super.init()
    }

    public override func forward(_ input: Variable) throws -> Variable {
        try Functional.avgPool2d(input, kernel: kernelSize, stride: stride, padding: padding, ceilMode: ceilMode,
                                 countIncludePad: countIncludePad)
    }

    public override var configurationDescription: String { "\(kernelSize.0)x\(kernelSize.1), stride \(stride.0)" }
}

/// Adaptive average pooling to a fixed output size; `(1, 1)` is global average pooling.
public final class AdaptiveAvgPool2d: Module {
    public let outputSize: (Int, Int)

    /// Creates an adaptive average pooling layer.
    public init(outputSize: (Int, Int)) throws {
        guard outputSize.0 >= 1, outputSize.1 >= 1 else {
            throw CNNError.invalidArgument("AdaptiveAvgPool2d: output size \(outputSize.0)x\(outputSize.1) must be positive")
        }
        self.outputSize = outputSize
        super.init()
    }

    public override func forward(_ input: Variable) throws -> Variable {
        try Functional.adaptiveAvgPool2d(input, outputSize: outputSize)
    }

    public override var configurationDescription: String { "-> \(outputSize.0)x\(outputSize.1)" }
}
