/// One convolution layer to benchmark: batch, input channels, image size, output channels, kernel
/// size, stride, padding and groups (square kernels, equal stride and padding in both axes).
public struct ConvBenchmarkCase: Sendable, Hashable {
    /// A stable name, as in the reference table (`vgg16.conv2_2`, `resnet50.1x1.256-64`).
    public var name: String
    public var batch: Int
    public var inputChannels: Int
    public var height: Int
    public var width: Int
    public var outputChannels: Int
    public var kernelSize: Int
    public var stride: Int
    public var padding: Int
    public var groups: Int

    public init(_ name: String, batch: Int, inputChannels: Int, height: Int, width: Int,
                outputChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0, groups: Int = 1) {
        self.name = name
        self.batch = batch
        self.inputChannels = inputChannels
        self.height = height
        self.width = width
        self.outputChannels = outputChannels
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding
        self.groups = groups
    }

    /// Output height and width: `(size + 2 * padding - kernelSize) / stride + 1`.
    public var outputHeight: Int { (height + 2 * padding - kernelSize) / stride + 1 }
    public var outputWidth: Int { (width + 2 * padding - kernelSize) / stride + 1 }

    /// Floating-point operations of the direct convolution, `2 * N * K * P * Q * C * R * S / groups`,
    /// whatever algorithm runs: the figure GFLOP/s are counted in, as in the peers' tables.
    public var directFLOPs: Double {
        2 * Double(batch) * Double(outputChannels) * Double(outputHeight) * Double(outputWidth)
            * Double(inputChannels / groups) * Double(kernelSize * kernelSize)
    }
}

/// The convolution layers of the reference table (/work/shared/reference/ANCHORS.md): VGG-16,
/// ResNet and AlexNet layers at batch 1, batched 3x3 and 1x1 cases, and the training benchmarks' layers.
/// One source for `cnn bench conv` and the Benchmarks package.
public enum ConvBenchmarkCases {
    public static let all: [ConvBenchmarkCase] = [
        ConvBenchmarkCase("vgg16.conv1_2", batch: 1, inputChannels: 64, height: 224, width: 224, outputChannels: 64, kernelSize: 3, padding: 1),
        ConvBenchmarkCase("vgg16.conv2_2", batch: 1, inputChannels: 128, height: 112, width: 112, outputChannels: 128, kernelSize: 3, padding: 1),
        ConvBenchmarkCase("vgg16.conv3_2", batch: 1, inputChannels: 256, height: 56, width: 56, outputChannels: 256, kernelSize: 3, padding: 1),
        ConvBenchmarkCase("vgg16.conv4_2", batch: 1, inputChannels: 512, height: 28, width: 28, outputChannels: 512, kernelSize: 3, padding: 1),
        ConvBenchmarkCase("vgg16.conv5_2", batch: 1, inputChannels: 512, height: 14, width: 14, outputChannels: 512, kernelSize: 3, padding: 1),
        ConvBenchmarkCase("resnet.l1.3x3", batch: 1, inputChannels: 64, height: 56, width: 56, outputChannels: 64, kernelSize: 3, padding: 1),
        ConvBenchmarkCase("resnet.l2.3x3", batch: 1, inputChannels: 128, height: 28, width: 28, outputChannels: 128, kernelSize: 3, padding: 1),
        ConvBenchmarkCase("resnet.l3.3x3", batch: 1, inputChannels: 256, height: 14, width: 14, outputChannels: 256, kernelSize: 3, padding: 1),
        ConvBenchmarkCase("resnet.l4.3x3", batch: 1, inputChannels: 512, height: 7, width: 7, outputChannels: 512, kernelSize: 3, padding: 1),
        ConvBenchmarkCase("resnet.conv1.7x7s2", batch: 1, inputChannels: 3, height: 224, width: 224, outputChannels: 64, kernelSize: 7, stride: 2, padding: 3),
        ConvBenchmarkCase("resnet50.1x1.256-64", batch: 1, inputChannels: 256, height: 56, width: 56, outputChannels: 64, kernelSize: 1),
        ConvBenchmarkCase("resnet50.1x1.1024-256", batch: 1, inputChannels: 1024, height: 14, width: 14, outputChannels: 256, kernelSize: 1),
        ConvBenchmarkCase("alexnet.conv1", batch: 1, inputChannels: 3, height: 227, width: 227, outputChannels: 96, kernelSize: 11, stride: 4),
        // torchvision AlexNet's conv2: 5x5, stride 1, where auto takes F(2x2, 5x5).
        ConvBenchmarkCase("alexnet.conv2", batch: 1, inputChannels: 64, height: 27, width: 27, outputChannels: 192, kernelSize: 5, padding: 2),
        ConvBenchmarkCase("resnet.l3.3x3.batch32", batch: 32, inputChannels: 256, height: 14, width: 14, outputChannels: 256, kernelSize: 3, padding: 1),
        // The 1x1 pairs at batch 32: the backward target (issue 5) names ResNet's 1x1 cases at batch 32.
        ConvBenchmarkCase("resnet50.1x1.256-64.batch32", batch: 32, inputChannels: 256, height: 56, width: 56, outputChannels: 64, kernelSize: 1),
        ConvBenchmarkCase("resnet50.1x1.1024-256.batch32", batch: 32, inputChannels: 1024, height: 14, width: 14, outputChannels: 256, kernelSize: 1),
        ConvBenchmarkCase("cifar.3x3.batch64", batch: 64, inputChannels: 64, height: 32, width: 32, outputChannels: 64, kernelSize: 3, padding: 1),
        // The training benchmarks' layers (`cnn bench train`): LeNet-5 on MNIST and ResNet-18 at
        // CIFAR size (32x32 through the 7x7/2 stem and max pool: 8x8 in layer1, 1x1 in layer4).
        ConvBenchmarkCase("lenet5.conv1.batch64", batch: 64, inputChannels: 1, height: 28, width: 28, outputChannels: 6, kernelSize: 5, padding: 2),
        ConvBenchmarkCase("lenet5.conv2.batch64", batch: 64, inputChannels: 6, height: 14, width: 14, outputChannels: 16, kernelSize: 5),
        ConvBenchmarkCase("resnet18.cifar.l1.batch64", batch: 64, inputChannels: 64, height: 8, width: 8, outputChannels: 64, kernelSize: 3, padding: 1),
        ConvBenchmarkCase("resnet18.cifar.l2.batch64", batch: 64, inputChannels: 128, height: 4, width: 4, outputChannels: 128, kernelSize: 3, padding: 1),
        ConvBenchmarkCase("resnet18.cifar.l3.batch64", batch: 64, inputChannels: 256, height: 2, width: 2, outputChannels: 256, kernelSize: 3, padding: 1),
        ConvBenchmarkCase("resnet18.cifar.l4.batch64", batch: 64, inputChannels: 512, height: 1, width: 1, outputChannels: 512, kernelSize: 3, padding: 1),
        // layer4's first convolution, 3x3/2 from 2x2 to 1x1, and a squeeze-and-excitation block's
        // 1x1 squeeze on a pooled 1x1 map: like layer4's 3x3 at 1x1, dense layers (one GEMM each way).
        ConvBenchmarkCase("resnet18.cifar.l4.3x3s2.batch64", batch: 64, inputChannels: 256, height: 2, width: 2, outputChannels: 512, kernelSize: 3, stride: 2, padding: 1),
        ConvBenchmarkCase("se.1x1.256-64.batch64", batch: 64, inputChannels: 256, height: 1, width: 1, outputChannels: 64, kernelSize: 1),
    ]
}
