/// A benchmark case of a non-convolution layer kernel, as `cnn bench layers` runs it.
///
/// The shapes are the layers' places in real networks (ResNet's stem pool and batch norm at batch 8,
/// AlexNet's first LRN at batch 8 and 64, GoogLeNet's inception-3a branch pool and 7x7 global pool,
/// an ImageNet classifier's loss at batch 64 and a CIFAR-10 one at batch 256); ``peerMilliseconds`` is
/// PyTorch's time for the same call on the reference machine (2 cores of an AMD EPYC Zen 5, see
/// `shared/reference/ANCHORS.md`), where one was measured.
public struct LayerBenchCase: Sendable, Hashable {
    /// The kernel (or kernel pair) a case times.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// Max pooling forward without indices (inference).
        case maxPool
        /// Max pooling forward with argmax indices (training).
        case maxPoolWithIndices
        /// Batch norm inference forward from running statistics.
        case batchNormInference
        /// Batch norm training forward followed by its backward.
        case batchNormTraining
        /// Batch norm backward alone (dx, dgamma, dbeta) from saved statistics.
        case batchNormBackward
        /// ReLU forward, out of place.
        case relu
        /// Local response normalisation forward (with the saved scale).
        case lrn
        /// Local response normalisation forward followed by its backward (from the saved scale).
        case lrnTraining
        /// Average pooling forward (`count_include_pad` false, as GoogLeNet's branch pools).
        case avgPool
        /// Average pooling forward followed by its backward.
        case avgPoolTraining
        /// Global average pooling (adaptive to 1x1) forward followed by its backward.
        case globalAvgPool
        /// Cross-entropy from logits forward (with the softmax) followed by its backward.
        case softmaxCrossEntropy
    }

    /// Short name used by `--case`.
    public var name: String
    public var kind: Kind
    /// (N, C, H, W) for image layers, (rows, classes) for the loss.
    public var shape: [Int]
    /// Square window, stride and padding (pooling) or window size (LRN); 0 where unused.
    public var kernel = 0, stride = 0, padding = 0
    /// PyTorch on the reference machine, 2 threads, in milliseconds.
    public var peerMilliseconds: Double?
    /// The time this project aims for, as a fraction of the peer's.
    public var targetRatio: Double?

    /// Number of elements of the input.
    public var elementCount: Int { shape.reduce(1, *) }
}

/// The case list of `cnn bench layers`, also used by the `Benchmarks/` package.
public enum LayerCases {
    public static let all: [LayerBenchCase] = [
        LayerBenchCase(name: "maxpool3x3s2p1", kind: .maxPool, shape: [8, 64, 112, 112], kernel: 3, stride: 2,
                       padding: 1, peerMilliseconds: 19.24, targetRatio: 0.2),
        LayerBenchCase(name: "maxpool3x3s2p1.indices", kind: .maxPoolWithIndices, shape: [8, 64, 112, 112],
                       kernel: 3, stride: 2, padding: 1),
        LayerBenchCase(name: "maxpool2x2s2", kind: .maxPool, shape: [8, 64, 112, 112], kernel: 2, stride: 2),
        LayerBenchCase(name: "batchnorm.inference", kind: .batchNormInference, shape: [8, 64, 112, 112],
                       peerMilliseconds: 1.15, targetRatio: 1.0),
        LayerBenchCase(name: "batchnorm.train.fwd+bwd", kind: .batchNormTraining, shape: [8, 64, 112, 112]),
        LayerBenchCase(name: "batchnorm.bwd", kind: .batchNormBackward, shape: [8, 64, 112, 112]),
        LayerBenchCase(name: "relu", kind: .relu, shape: [8, 64, 112, 112]),
        LayerBenchCase(name: "lrn.alexnet", kind: .lrn, shape: [8, 96, 55, 55], kernel: 5),
        LayerBenchCase(name: "lrn.alexnet.b64", kind: .lrn, shape: [64, 96, 55, 55], kernel: 5),
        LayerBenchCase(name: "lrn.alexnet.fwd+bwd", kind: .lrnTraining, shape: [8, 96, 55, 55], kernel: 5),
        LayerBenchCase(name: "softmax-ce.fwd+bwd", kind: .softmaxCrossEntropy, shape: [64, 1000]),
        LayerBenchCase(name: "softmax-ce.256x10.fwd+bwd", kind: .softmaxCrossEntropy, shape: [256, 10]),
        // GoogLeNet's inception 3a pool branch: 3x3, stride 1, padding 1 on 192 x 28 x 28.
        LayerBenchCase(name: "avgpool3x3s1p1", kind: .avgPool, shape: [8, 192, 28, 28], kernel: 3, stride: 1,
                       padding: 1),
        LayerBenchCase(name: "avgpool3x3s1p1.fwd+bwd", kind: .avgPoolTraining, shape: [8, 192, 28, 28], kernel: 3,
                       stride: 1, padding: 1),
        // GoogLeNet's head: 1024 x 7 x 7 to 1 x 1.
        LayerBenchCase(name: "avgpool.global7x7.fwd+bwd", kind: .globalAvgPool, shape: [64, 1024, 7, 7]),
    ]
}
