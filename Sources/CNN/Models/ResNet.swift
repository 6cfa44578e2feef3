/// ResNet (He, Zhang, Ren & Sun, 2016, "Deep residual learning for image recognition") as
/// torchvision builds it (v1.5): a 7x7/2 convolution stem with batch norm, ReLU and 3x3/2 max pooling
/// (`conv1`, `bn1`, `relu`, `maxpool`), four stages `layer1`...`layer4` (each a ``Sequential`` of
/// ``BasicBlock`` or ``Bottleneck``), global average pooling (`avgpool`) and `fc`.
///
/// Stages 2-4 halve the resolution in their first block and double the width; projection shortcuts
/// (1x1 convolution + batch norm, the paper's option B) are used exactly where the shape changes.
///
/// Initialisation as torchvision: convolutions Kaiming-normal with fan-out, batch norm weight 1 and
/// bias 0, `fc` PyTorch's default; optionally the last batch norm of each block starts at zero
/// (Goyal et al., 2017), so each block starts as the identity.
public final class ResNet: Module {
    /// The depths of the paper's Table 1.
    public enum Depth: Int, CaseIterable, Sendable {
        /// ResNet-18: basic blocks [2, 2, 2, 2].
        case resnet18 = 18
        /// ResNet-34: basic blocks [3, 4, 6, 3].
        case resnet34 = 34
        /// ResNet-50: bottlenecks [3, 4, 6, 3].
        case resnet50 = 50
        /// ResNet-101: bottlenecks [3, 4, 23, 3].
        case resnet101 = 101
        /// ResNet-152: bottlenecks [3, 8, 36, 3].
        case resnet152 = 152

        /// Whether the stages use ``Bottleneck`` blocks (50 layers and deeper) rather than ``BasicBlock``.
        public var usesBottleneck: Bool { rawValue >= 50 }

        /// Blocks per stage (Table 1).
        public var blocks: [Int] {
            switch self {
            case .resnet18: return [2, 2, 2, 2]
            case .resnet34, .resnet50: return [3, 4, 6, 3]
            case .resnet101: return [3, 4, 23, 3]
            case .resnet152: return [3, 8, 36, 3]
            }
        }

        /// A block's output channels over its width: 1 for basic blocks, 4 for bottlenecks.
        public var expansion: Int { usesBottleneck ? Bottleneck.expansion : BasicBlock.expansion }
    }

    /// 7x7/2 stem convolution, 64 filters, no bias (batch norm follows).
    public let conv1: Conv2d
    /// The stem's batch norm.
    public let bn1: BatchNorm2d
    /// The stem's ReLU.
    public let relu: ReLU
    /// 3x3/2 max pooling with padding 1.
    public let maxpool: MaxPool2d
    /// Stage 1: 64 wide, stride 1.
    public let layer1: Sequential
    /// Stage 2: 128 wide, first block stride 2.
    public let layer2: Sequential
    /// Stage 3: 256 wide, first block stride 2.
    public let layer3: Sequential
    /// Stage 4: 512 wide, first block stride 2.
    public let layer4: Sequential
    /// Global average pooling.
    public let avgpool: AdaptiveAvgPool2d
    /// The classifier, `512·expansion -> classes`.
    public let fc: Linear

    /// Creates a ResNet.
    ///
    /// - Parameters:
    ///   - depth: 18, 34, 50, 101 or 152 layers.
    ///   - classes: the number of outputs.
    ///   - inputChannels: 3 for colour images.
    ///   - zeroInitializeResidual: start each block's last batch norm weight at 0 (torchvision's
    ///     `zero_init_residual`, off by default).
    public init(depth: Depth, classes: Int = 1000, inputChannels: Int = 3, zeroInitializeResidual: Bool = false) throws {
        conv1 = try Conv2d(inputChannels: inputChannels, outputChannels: 64, kernelSize: 7, stride: 2, padding: 3, bias: false)
        bn1 = try BatchNorm2d(features: 64)
        relu = ReLU()
        maxpool = try MaxPool2d(kernelSize: 3, stride: 2, padding: 1)
        var inputWidth = 64
        func stage(_ width: Int, _ count: Int, _ stride: Int) throws -> Sequential {
            var blocks: [Module] = []
            for i in 0..<count {
                let s = i == 0 ? stride : 1
                let out = width * depth.expansion
                // Projection shortcut only where the shape changes (option B of section 3.3).
                let downsample = s != 1 || inputWidth != out
                    ? Sequential(try Conv2d(inputChannels: inputWidth, outputChannels: out, kernelSize: 1, stride: s, bias: false),
                                 try BatchNorm2d(features: out))
                    : nil
                blocks.append(depth.usesBottleneck
                    ? try Bottleneck(inputChannels: inputWidth, width: width, stride: s, downsample: downsample)
                    : try BasicBlock(inputChannels: inputWidth, width: width, stride: s, downsample: downsample))
                inputWidth = out
            }
            return Sequential(blocks)
        }
        layer1 = try stage(64, depth.blocks[0], 1)
        layer2 = try stage(128, depth.blocks[1], 2)
        layer3 = try stage(256, depth.blocks[2], 2)
        layer4 = try stage(512, depth.blocks[3], 2)
        avgpool = try AdaptiveAvgPool2d(outputSize: (1, 1))
        fc = try Linear(inputFeatures: 512 * depth.expansion, outputFeatures: classes)
        super.init()
        try ModelInitializer.initialize(self, convolutions: .kaimingNormalFanOut, linear: .keep, zeroBiases: false)
        if zeroInitializeResidual {
            for (_, module) in namedModules() {
                if let block = module as? Bottleneck { try block.bn3.weight.assign(try Tensor(zeros: block.bn3.weight.shape)) }
                if let block = module as? BasicBlock { try block.bn2.weight.assign(try Tensor(zeros: block.bn2.weight.shape)) }
            }
        }
    }

    /// `[N, C, H, W]` (224x224 in the paper; any size from 32x32 works) to `[N, classes]` logits.
    public override func forward(_ input: Variable) throws -> Variable {
        var x = try maxpool(try relu(try bn1(try conv1(input))))
        x = try layer4(try layer3(try layer2(try layer1(x))))
        return try fc(try Functional.flatten(try avgpool(x)))
    }
}

/// ResNet-18/34's block: two 3x3 convolutions with batch norm,
/// `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`; the first convolution carries the stride.
public final class BasicBlock: Module {
    /// Output channels over the block's width.
    public static let expansion = 1

    /// 3x3 convolution with the block's stride.
    public let conv1: Conv2d
    /// Batch norm after conv1.
    public let bn1: BatchNorm2d
    /// 3x3 convolution.
    public let conv2: Conv2d
    /// Batch norm after conv2.
    public let bn2: BatchNorm2d
    /// The projection shortcut (`0`: 1x1 convolution, `1`: batch norm), or `nil` for the identity.
    public let downsample: Sequential?

    /// Creates a block mapping `inputChannels` to `width` channels.
    public init(inputChannels: Int, width: Int, stride: Int = 1, downsample: Sequential? = nil) throws {
        conv1 = try Conv2d(inputChannels: inputChannels, outputChannels: width, kernelSize: 3, stride: stride, padding: 1, bias: false)
        bn1 = try BatchNorm2d(features: width)
        conv2 = try Conv2d(inputChannels: width, outputChannels: width, kernelSize: 3, padding: 1, bias: false)
        bn2 = try BatchNorm2d(features: width)
        self.downsample = downsample
        super.init()
    }

    /// `[N, C, H, W]` to `[N, width, H/stride, W/stride]`.
    public override func forward(_ input: Variable) throws -> Variable {
        let main = try bn2(try conv2(try Functional.relu(try bn1(try conv1(input)))))
        let shortcut = try downsample.map { try $0(input) } ?? input
        return try Functional.relu(try Functional.add(main, shortcut))
    }
}

/// ResNet-50/101/152's block: 1x1 reduce, 3x3, 1x1 expand (×4), each with batch norm,
/// `relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x))`.
///
/// The stride sits on the 3x3 convolution (torchvision's "v1.5", after Goyal et al., 2017) rather than
/// on the first 1x1 as in the paper, which costs a little compute and gains accuracy.
public final class Bottleneck: Module {
    /// Output channels over the block's width.
    public static let expansion = 4

    /// 1x1 reduction to the block's width.
    public let conv1: Conv2d
    /// Batch norm after conv1.
    public let bn1: BatchNorm2d
    /// 3x3 convolution with the block's stride.
    public let conv2: Conv2d
    /// Batch norm after conv2.
    public let bn2: BatchNorm2d
    /// 1x1 expansion to `4·width` channels.
    public let conv3: Conv2d
    /// Batch norm after conv3.
    public let bn3: BatchNorm2d
    /// The projection shortcut (`0`: 1x1 convolution, `1`: batch norm), or `nil` for the identity.
    public let downsample: Sequential?

    /// Creates a block mapping `inputChannels` to `4·width` channels.
    public init(inputChannels: Int, width: Int, stride: Int = 1, downsample: Sequential? = nil) throws {
        conv1 = try Conv2d(inputChannels: inputChannels, outputChannels: width, kernelSize: 1, bias: false)
        bn1 = try BatchNorm2d(features: width)
        conv2 = try Conv2d(inputChannels: width, outputChannels: width, kernelSize: 3, stride: stride, padding: 1, bias: false)
        bn2 = try BatchNorm2d(features: width)
        conv3 = try Conv2d(inputChannels: width, outputChannels: width * Bottleneck.expansion, kernelSize: 1, bias: false)
        bn3 = try BatchNorm2d(features: width * Bottleneck.expansion)
        self.downsample = downsample
        super.init()
    }

    /// `[N, C, H, W]` to `[N, 4·width, H/stride, W/stride]`.
    public override func forward(_ input: Variable) throws -> Variable {
        var main = try Functional.relu(try bn1(try conv1(input)))
        main = try Functional.relu(try bn2(try conv2(main)))
        main = try bn3(try conv3(main))
        let shortcut = try downsample.map { try $0(input) } ?? input
        return try Functional.relu(try Functional.add(main, shortcut))
    }
}
