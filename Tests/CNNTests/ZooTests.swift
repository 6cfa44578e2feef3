import CNN
import Foundation
import Testing

// Only the public API is used here, so these tests also run in a release build
// (`swift test -c release --filter Zoo`), where the full-size suite runs by default.

/// What the zoo must build, per name: the one table both the debug suite (``ZooEveryModelTests``:
/// parameter counts on the real models, forward at the smallest input) and the full-size suite
/// (``ZooFullSizeTests``: forward at the default input) run over.
struct ZooExpectation: Sendable, CustomTestStringConvertible {
    /// The zoo name.
    let name: String
    /// Parameters at 1000 classes: torchvision's count where torchvision has the model.
    let parameters: Int
    /// The smallest square input the network accepts; one pixel less is a thrown error.
    let smallestInput: Int

    var testDescription: String { name }

    /// Every zoo model, in ``ModelZoo/names`` order. The counts listed in
    /// `shared/reference/ANCHORS.md` (alexnet, vgg11, vgg16, vgg19, vgg16_bn, googlenet, resnet*)
    /// are torchvision's, as are those of vgg11_bn, vgg13, vgg13_bn and vgg19_bn. Not in torchvision:
    /// lenet5 (156 + 2,416 + 48,120 + 10,164 + 85,000 at 1000 classes); alexnet2012, the 2012 paper's
    /// grouped AlexNet (34,944 + 307,456 + 885,120 + 663,936 + 442,624 = 2,334,080 convolution and
    /// 58,631,144 classifier parameters: the 60,965,224 often quoted for it); zfnet (14,208 + 614,656
    /// + 1,180,160 + 4,719,616 + 4,719,104 convolution and 75,501,568 + 16,781,312 + 4,097,000
    /// classifier parameters).
    ///
    /// Smallest inputs: alexnet's 11x11/4 convolution must leave 15 pixels for three 3x3/2 pools
    /// (63, and 67 unpadded for alexnet2012; zfnet's 7x7/2 and 5x5/2 also reach 63); VGG's five 2x2/2
    /// pools need 32; GoogLeNet's ceil-mode pools need 15; ResNet's padded stem and strided
    /// convolutions take even a single pixel, as torchvision's do.
    static let all: [ZooExpectation] = [
        .init(name: "lenet5", parameters: 145_856, smallestInput: 28),
        .init(name: "alexnet", parameters: 61_100_840, smallestInput: 63),
        .init(name: "alexnet2012", parameters: 60_965_224, smallestInput: 67),
        .init(name: "zfnet", parameters: 107_627_624, smallestInput: 63),
        .init(name: "vgg11", parameters: 132_863_336, smallestInput: 32),
        .init(name: "vgg11_bn", parameters: 132_868_840, smallestInput: 32),
        .init(name: "vgg13", parameters: 133_047_848, smallestInput: 32),
        .init(name: "vgg13_bn", parameters: 133_053_736, smallestInput: 32),
        .init(name: "vgg16", parameters: 138_357_544, smallestInput: 32),
        .init(name: "vgg16_bn", parameters: 138_365_992, smallestInput: 32),
        .init(name: "vgg19", parameters: 143_667_240, smallestInput: 32),
        .init(name: "vgg19_bn", parameters: 143_678_248, smallestInput: 32),
        .init(name: "googlenet", parameters: 6_624_904, smallestInput: 15),
        .init(name: "resnet18", parameters: 11_689_512, smallestInput: 1),
        .init(name: "resnet34", parameters: 21_797_672, smallestInput: 1),
        .init(name: "resnet50", parameters: 25_557_032, smallestInput: 1),
        .init(name: "resnet101", parameters: 44_549_160, smallestInput: 1),
        .init(name: "resnet152", parameters: 60_192_808, smallestInput: 1),
    ]
}

/// Building a model draws every weight from the seeded generator; the bulk fills of the C kernels
/// make that fast in debug builds too (VGG-16's 138M parameters in about 2 s), so the debug suite
/// builds every model at full size. Only the default-size forward passes (``ZooFullSizeTests``, about
/// 140 G multiply-accumulates in all) are left to release builds or `CNN_FULL_ZOO_TESTS=1`.
enum ZooTestSupport {
    static var fullSizeEnabled: Bool {
        #if DEBUG
        return ProcessInfo.processInfo.environment["CNN_FULL_ZOO_TESTS"] == "1"
        #else
        return true
        #endif
    }

    static func zeros(_ shape: [Int]) throws -> Variable { Variable(try Tensor(zeros: shape)) }

    /// Uniform values in [-1, 1) from a generator of its own (the global one stays untouched).
    static func random(_ shape: [Int], seed: UInt64 = 1) throws -> Variable {
        var g = SeededGenerator(seed: seed)
        return Variable(try Tensor.uniform(shape: shape, lower: -1, upper: 1, generator: &g))
    }

    /// The state dictionary as a name → shape map.
    static func shapes(_ model: Module) -> [String: [Int]] {
        Dictionary(model.stateDictionary().map { ($0.0, $0.1.shape) }, uniquingKeysWith: { a, _ in a })
    }

    /// Mean and standard deviation of a tensor's values.
    static func moments(_ t: Tensor) -> (mean: Double, std: Double) {
        let xs = t.scalars.map(Double.init)
        let mean = xs.reduce(0, +) / Double(xs.count)
        let variance = xs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(xs.count)
        return (mean, variance.squareRoot())
    }
}

@Suite("Zoo registry")
struct ZooRegistryTests {
    @Test func namesAreTorchvisionsInOrder() {
        #expect(ModelZoo.names == [
            "lenet5", "alexnet", "alexnet2012", "zfnet",
            "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
            "googlenet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
        ])
    }

    @Test func expectationsCoverEveryName() {
        #expect(ZooExpectation.all.map(\.name) == ModelZoo.names)
    }

    @Test func unknownNameListsTheValidOnes() {
        do {
            _ = try ModelZoo.make(name: "resnet20", classes: 10)
            Issue.record("an unknown name must throw")
        } catch let error as CNNError {
            guard case .invalidArgument(let message) = error else { Issue.record("wrong error \(error)"); return }
            #expect(message.contains("resnet20"))
            #expect(message.contains("lenet5, alexnet, alexnet2012, zfnet, vgg11"))
            #expect(message.contains("resnet152"))
        } catch {
            Issue.record("unexpected error \(error)")
        }
        #expect(throws: CNNError.self) { try ModelZoo.make(name: "lenet5", classes: 0) }
        #expect(throws: CNNError.self) { try ModelZoo.defaultInputShape(name: "nope") }
    }

    @Test func defaultInputShapes() throws {
        #expect(try ModelZoo.defaultInputShape(name: "lenet5") == [1, 1, 28, 28])
        #expect(try ModelZoo.defaultInputShape(name: "alexnet2012") == [1, 3, 227, 227])
        for name in ["alexnet", "zfnet", "vgg16_bn", "googlenet", "resnet50"] {
            #expect(try ModelZoo.defaultInputShape(name: name, batch: 4) == [4, 3, 224, 224])
        }
        #expect(try ModelZoo.defaultInputShape(name: "resnet18", inputChannels: 1) == [1, 1, 224, 224])
    }

    @Test func makeBuildsTheNamedModelWithItsChannels() throws {
        let lenet = try ModelZoo.make(name: "lenet5", classes: 10)
        #expect(lenet is LeNet5)
        #expect(ZooTestSupport.shapes(lenet)["features.0.weight"] == [6, 1, 5, 5])
        let rgb = try ModelZoo.make(name: "LeNet5", classes: 7, inputChannels: 3)
        #expect(ZooTestSupport.shapes(rgb)["features.0.weight"] == [6, 3, 5, 5])
        #expect(ZooTestSupport.shapes(rgb)["classifier.4.weight"] == [7, 84])
    }
}

@Suite("Zoo models")
struct ZooModelTests {
    @Test(arguments: [28, 32])
    func leNet5(inputSize: Int) throws {
        let model = try LeNet5(classes: 10, inputSize: inputSize)
        // 156 + 2,416 + 48,120 + 10,164 + 850.
        #expect(model.parameterCount == 61_706)
        let y = try model(ZooTestSupport.zeros([2, 1, inputSize, inputSize]))
        #expect(y.shape == [2, 10])
        #expect(throws: CNNError.self) { try LeNet5(inputSize: 30) }
    }

    @Test func alexNetTorchvisionNamesAndForward() throws {
        let model = try AlexNet(variant: .torchvision, classes: 10, hiddenFeatures: 64)
        let y = try model(ZooTestSupport.zeros([1, 3, 64, 64]))
        #expect(y.shape == [1, 10])
        let names = ZooTestSupport.shapes(model)
        #expect(names["features.0.weight"] == [64, 3, 11, 11])
        #expect(names["features.10.bias"] == [256])
        #expect(names["classifier.1.weight"] == [64, 9216])
        #expect(names["classifier.6.weight"] == [10, 64])
    }

    @Test func alexNet2012GroupsAndNormalisation() throws {
        let model = try AlexNet(variant: .original2012, classes: 10, hiddenFeatures: 32)
        let names = ZooTestSupport.shapes(model)
        #expect(names["features.0.weight"] == [96, 3, 11, 11])
        // The two-GPU split: each half of conv2 sees 48 of conv1's maps, conv3 all 256.
        #expect(names["features.4.weight"] == [256, 48, 5, 5])
        #expect(names["features.8.weight"] == [384, 256, 3, 3])
        #expect(names["features.10.weight"] == [384, 192, 3, 3])
        #expect(names["features.12.weight"] == [256, 192, 3, 3])
        #expect(model.features.layers[2] is LocalResponseNorm)
        #expect(model.features.layers[6] is LocalResponseNorm)
        let lrn = try #require(model.features.layers[2] as? LocalResponseNorm)
        #expect(lrn.size == 5 && lrn.k == 2 && lrn.alpha == 1e-4 && lrn.beta == 0.75)
        let y = try model(ZooTestSupport.zeros([1, 3, 227, 227]))
        #expect(y.shape == [1, 10])
    }

    @Test func zfNetSizesFollowThePaper() throws {
        let model = try AlexNet(variant: .zfNet, classes: 10, hiddenFeatures: 32)
        let summary = try model.summary(inputShape: [1, 3, 224, 224])
        let outputs = Dictionary(summary.layers.map { ($0.name, $0.outputShape) }, uniquingKeysWith: { a, _ in a })
        // Figure 3 of Zeiler & Fergus: 110, 55, 26, 13, 13, 13, 13, 6.
        #expect(outputs["features.0"] == [1, 96, 110, 110])
        #expect(outputs["features.3"] == [1, 96, 55, 55])
        #expect(outputs["features.4"] == [1, 256, 26, 26])
        #expect(outputs["features.7"] == [1, 256, 13, 13])
        #expect(outputs["features.8"] == [1, 512, 13, 13])
        #expect(outputs["features.10"] == [1, 1024, 13, 13])
        #expect(outputs["features.12"] == [1, 512, 13, 13])
        #expect(outputs["features.14"] == [1, 512, 6, 6])
        #expect(summary.outputShape == [1, 10])
        #expect(ZooTestSupport.shapes(model)["classifier.1.weight"] == [32, 512 * 36])
    }

    @Test func vgg11ForwardNamesAndInitialisation() throws {
        let model = try VGG(configuration: .a, classes: 10, hiddenFeatures: 16)
        let y = try model(ZooTestSupport.zeros([1, 3, 32, 32]))
        #expect(y.shape == [1, 10])
        let names = ZooTestSupport.shapes(model)
        #expect(names["features.0.bias"] == [64])
        #expect(names["features.18.weight"] == [512, 512, 3, 3])
        #expect(names["classifier.0.weight"] == [16, 25088])
        #expect(names["classifier.6.weight"] == [10, 16])
        // Kaiming normal, fan-out: features.3 is [128, 64, 3, 3], σ = sqrt(2 / (128·9)).
        let conv = try #require(model.features.layers[3] as? Conv2d)
        let (mean, std) = ZooTestSupport.moments(conv.weight.value)
        let expected = (2.0 / (128.0 * 9)).squareRoot()
        #expect(abs(std / expected - 1) < 0.02, "σ \(std) vs \(expected) over 73,728 samples")
        #expect(abs(mean) < 0.05 * expected)
        #expect(try #require(conv.bias).value.scalars.allSatisfy { $0 == 0 })
        let fc = try #require(model.classifier.layers[0] as? Linear)
        #expect(abs(ZooTestSupport.moments(fc.weight.value).std / 0.01 - 1) < 0.02)
        #expect(try #require(fc.bias).value.scalars.allSatisfy { $0 == 0 })
    }

    @Test func vgg11BatchNormLayout() throws {
        let model = try VGG(configuration: .a, batchNorm: true, classes: 3, hiddenFeatures: 8)
        let names = ZooTestSupport.shapes(model)
        // conv, bn, relu per convolution: torchvision's vgg11_bn indices.
        #expect(names["features.0.weight"] == [64, 3, 3, 3])
        #expect(names["features.1.running_mean"] == [64])
        #expect(names["features.4.weight"] == [128, 64, 3, 3])
        #expect(names["features.26.running_var"] == [512])
        #expect(model.features.layers.count == 29)
        model.eval()
        let y = try model(ZooTestSupport.zeros([2, 3, 32, 32]))
        #expect(y.shape == [2, 3])
    }

    @Test func vggTableDepths() {
        #expect(VGG.Configuration.allCases.map(\.depth) == [11, 13, 16, 19])
        #expect(VGG.Configuration(depth: 16) == .d)
        #expect(VGG.Configuration(depth: 12) == nil)
    }

    @Test func resNet18NamesForwardAndInitialisation() throws {
        let model = try ResNet(depth: .resnet18, classes: 1000)
        let names = ZooTestSupport.shapes(model)
        #expect(names["conv1.weight"] == [64, 3, 7, 7])
        #expect(names["bn1.running_mean"] == [64])
        #expect(names["bn1.num_batches_tracked"] != nil)
        #expect(names["layer1.0.conv1.weight"] == [64, 64, 3, 3])
        #expect(names["layer1.0.downsample.0.weight"] == nil)
        #expect(names["layer2.0.downsample.0.weight"] == [128, 64, 1, 1])
        #expect(names["layer2.0.downsample.1.running_var"] == [128])
        #expect(names["layer4.1.bn2.bias"] == [512])
        #expect(names["fc.weight"] == [1000, 512])
        #expect(model.stateDictionary().first?.0 == "conv1.weight")

        let block = try #require(model.layer1.layers.first as? BasicBlock)
        let (mean, std) = ZooTestSupport.moments(block.conv1.weight.value)
        let expected = (2.0 / (64.0 * 9)).squareRoot()
        #expect(abs(std / expected - 1) < 0.03, "σ \(std) vs \(expected) over 36,864 samples")
        #expect(abs(mean) < 0.05 * expected)

        model.eval()
        let y = try model(ZooTestSupport.zeros([1, 3, 64, 64]))
        #expect(y.shape == [1, 1000])
        // 32x32 (CIFAR) works too: adaptive pooling absorbs the 1x1 final map.
        #expect(try model(ZooTestSupport.zeros([1, 3, 32, 32])).shape == [1, 1000])
    }

    @Test func basicBlockComputesReluOfBodyPlusShortcut() throws {
        let block = try BasicBlock(inputChannels: 2, width: 2)
        block.eval()
        // Zero weights: body(x) = bn2(0) = bias 0, so the output is relu(x).
        for conv in [block.conv1, block.conv2] { try conv.weight.assign(try Tensor(zeros: conv.weight.shape)) }
        let x = Variable(try Tensor(shape: [1, 2, 2, 2], scalars: [1, -2, 3, -4, 5, -6, 7, -8]))
        #expect(try block(x).value.scalars == [1, 0, 3, 0, 5, 0, 7, 0])
        // A bias on bn2 is added before the final ReLU.
        try block.bn2.bias.assign(Tensor([10, 10]))
        #expect(try block(x).value.scalars == [11, 8, 13, 6, 15, 4, 17, 2])
    }

    @Test func bottleneckStrideOnTheThreeByThree() throws {
        let down = Sequential(try Conv2d(inputChannels: 64, outputChannels: 256, kernelSize: 1, stride: 2, bias: false),
                              try BatchNorm2d(features: 256))
        let block = try Bottleneck(inputChannels: 64, width: 64, stride: 2, downsample: down)
        #expect(block.conv1.stride == (1, 1) && block.conv2.stride == (2, 2) && block.conv3.stride == (1, 1))
        let names = ZooTestSupport.shapes(block)
        #expect(names["conv3.weight"] == [256, 64, 1, 1])
        #expect(names["downsample.0.weight"] == [256, 64, 1, 1])
        block.eval()
        #expect(try block(ZooTestSupport.zeros([1, 64, 8, 8])).shape == [1, 256, 4, 4])
    }

    @Test func resNetDepthTable() {
        #expect(ResNet.Depth.allCases.map { $0.blocks.reduce(0, +) } == [8, 16, 16, 33, 50])
        // Weight layers: stem + blocks · convolutions per block + fc.
        for depth in ResNet.Depth.allCases {
            #expect(1 + depth.blocks.reduce(0, +) * (depth.usesBottleneck ? 3 : 2) + 1 == depth.rawValue)
        }
    }

    @Test func googLeNetNamesAndForward() throws {
        let model = try GoogLeNet(classes: 1000)
        let names = ZooTestSupport.shapes(model)
        #expect(names["conv1.conv.weight"] == [64, 3, 7, 7])
        #expect(names["conv1.conv.bias"] == nil)
        #expect(names["conv1.bn.running_mean"] == [64])
        #expect(names["inception3a.branch1.conv.weight"] == [64, 192, 1, 1])
        #expect(names["inception3a.branch2.1.conv.weight"] == [128, 96, 3, 3])
        // torchvision's 3x3 where the paper has 5x5.
        #expect(names["inception3a.branch3.1.conv.weight"] == [32, 16, 3, 3])
        #expect(names["inception3a.branch4.1.conv.weight"] == [32, 192, 1, 1])
        #expect(names["inception5b.branch4.1.bn.running_var"] == [128])
        #expect(names["fc.weight"] == [1000, 1024])
        #expect(names.keys.contains { $0.hasPrefix("aux") } == false)
        #expect(model.conv1.bn.epsilon == 0.001)
        // Truncated normal, σ = 0.01, nothing beyond 2σ.
        let w = model.inception4a.branch2.layers[1] as? BasicConv2d
        let values = try #require(w).conv.weight.value
        #expect(values.scalars.allSatisfy { abs($0) <= 0.02 })
        #expect(abs(ZooTestSupport.moments(values).std / (0.01 * 0.8796) - 1) < 0.03)

        model.eval()
        #expect(try model(ZooTestSupport.zeros([1, 3, 64, 64])).shape == [1, 1000])
        #expect(try model(ZooTestSupport.zeros([1, 3, 32, 32])).shape == [1, 1000])
    }

    @Test func googLeNetAuxiliaryHeadsOnlyInTraining() throws {
        let model = try GoogLeNet(classes: 5, auxiliaryClassifiers: true)
        let names = ZooTestSupport.shapes(model)
        #expect(names["aux1.conv.conv.weight"] == [128, 512, 1, 1])
        #expect(names["aux2.conv.conv.weight"] == [128, 528, 1, 1])
        #expect(names["aux1.fc1.weight"] == [1024, 2048])
        #expect(names["aux2.fc2.weight"] == [5, 1024])
        let x = try ZooTestSupport.zeros([2, 3, 64, 64])
        let training = try model.forwardWithAuxiliary(x)
        #expect(training.main.shape == [2, 5])
        #expect(training.aux1?.shape == [2, 5])
        #expect(training.aux2?.shape == [2, 5])
        #expect(try model(x).shape == [2, 5])
        model.eval()
        let evaluation = try model.forwardWithAuxiliary(x)
        #expect(evaluation.main.shape == [2, 5])
        #expect(evaluation.aux1 == nil && evaluation.aux2 == nil)
    }
}

/// Every zoo model at full size, 1000 classes, through the debug build: torchvision's exact
/// parameter counts measured on the constructed model, an eval-mode forward pass at the smallest
/// input the architecture accepts, and the thrown error one pixel below it.
@Suite("Zoo every model", .serialized)
struct ZooEveryModelTests {
    @Test(arguments: ZooExpectation.all)
    func parameterCountAndSmallestInput(_ expected: ZooExpectation) throws {
        let model = try ModelZoo.make(name: expected.name, classes: 1000)
        #expect(model.parameterCount == expected.parameters)
        model.eval()
        let channels = try ModelZoo.defaultInputShape(name: expected.name)[1]
        let size = expected.smallestInput
        let y = try model(ZooTestSupport.random([2, channels, size, size])).value
        #expect(y.shape == [2, 1000])
        #expect(y.isFinite)
        // The two samples differ, so must their logits. Not for GoogLeNet: with its initial weights
        // (σ = 0.01) and batch norm's initial running statistics, each layer scales eval-mode
        // activations by about 0.01·sqrt(fan-in) < 1, so twenty layers on the logits leave only the
        // fc bias (in torchvision too); its training-mode pass is checked below.
        if expected.name != "googlenet" {
            #expect(y.scalars[0..<1000] != y.scalars[1000..<2000])
        }
        if size > 1 {
            #expect(throws: CNNError.self) { try model(ZooTestSupport.random([2, channels, size - 1, size - 1])) }
        }
    }

    @Test func googLeNetWithAuxiliaryClassifiersCount() throws {
        // torchvision's googlenet(aux_logits=True): two heads of 128·512 (528) + 128 + 128 (BN) and
        // 2048·1024 + 1024 + 1024·1000 + 1000 on top of the 6,624,904.
        #expect(try GoogLeNet(classes: 1000, auxiliaryClassifiers: true).parameterCount == 13_004_888)
    }

    @Test func vgg16SummaryTotals() throws {
        let summary = try ModelZoo.make(name: "vgg16").summary(inputShape: [1, 3, 224, 224], name: "vgg16")
        #expect(summary.totalParameters == 138_357_544)
        let fc1 = try #require(summary.layers.first { $0.name == "classifier.0" })
        // 102,760,448 weights and 4,096 biases.
        #expect(fc1.parameters == 25088 * 4096 + 4096)
        #expect(fc1.parameters == 102_764_544)
        #expect(fc1.outputShape == [1, 4096])
        // 15.35 G convolution MACs (the paper's "15.5 GFLOPs" counts MACs) plus the classifier's.
        #expect(summary.totalMultiplyAccumulates == 15_346_630_656 + 102_760_448 + 16_777_216 + 4_096_000)
    }

    /// One network of each family with few classes (and narrow classifiers where they dominate),
    /// in training mode at its smallest input, batch 2.
    static let trainingCases = ["lenet5-32", "alexnet", "alexnet2012", "zfnet", "vgg11_bn", "googlenet-aux", "resnet18",
                                "resnet50"]

    static func smallModel(_ name: String) throws -> (model: Module, inputShape: [Int]) {
        switch name {
        case "lenet5-32": return (try LeNet5(classes: 5, inputSize: 32), [2, 1, 32, 32])
        case "alexnet": return (try AlexNet(variant: .torchvision, classes: 5, hiddenFeatures: 16), [2, 3, 63, 63])
        case "alexnet2012": return (try AlexNet(variant: .original2012, classes: 5, hiddenFeatures: 16), [2, 3, 67, 67])
        case "zfnet": return (try AlexNet(variant: .zfNet, classes: 5, hiddenFeatures: 16), [2, 3, 63, 63])
        case "vgg11_bn": return (try VGG(configuration: .a, batchNorm: true, classes: 5, hiddenFeatures: 16), [2, 3, 32, 32])
        case "googlenet-aux": return (try GoogLeNet(classes: 5, auxiliaryClassifiers: true), [2, 3, 15, 15])
        case "resnet18": return (try ResNet(depth: .resnet18, classes: 5), [2, 3, 32, 32])
        case "resnet50": return (try ResNet(depth: .resnet50, classes: 5), [2, 3, 32, 32])
        default: throw CNNError.invalidArgument("no training case \(name)")
        }
    }

    /// A training-mode forward and backward pass: every parameter gets a finite gradient of its own
    /// shape that is not all zero (GoogLeNet's through the auxiliary heads' loss as well), and batch
    /// norm's running statistics move.
    @Test(arguments: trainingCases)
    func trainingForwardBackward(_ name: String) throws {
        GlobalGenerator.seed(7)
        let (model, shape) = try Self.smallModel(name)
        model.train()
        let x = try ZooTestSupport.random(shape)
        let labels: [Int32] = [1, 3]
        let loss: Variable
        if let googLeNet = model as? GoogLeNet {
            let out = try googLeNet.forwardWithAuxiliary(x)
            let aux1 = try #require(out.aux1), aux2 = try #require(out.aux2)
            loss = try Functional.add(try Functional.crossEntropy(logits: out.main, labels: labels),
                                      Functional.scale(try Functional.add(try Functional.crossEntropy(logits: aux1, labels: labels),
                                                                          try Functional.crossEntropy(logits: aux2, labels: labels)), by: 0.3))
        } else {
            let logits = try model(x)
            #expect(logits.shape == [2, 5])
            loss = try Functional.crossEntropy(logits: logits, labels: labels)
        }
        #expect(loss.value.isFinite)
        try loss.backward()
        let parameters = model.namedParameters()
        #expect(!parameters.isEmpty)
        for (parameter, variable) in parameters {
            guard let gradient = variable.gradient else { Issue.record("\(name): \(parameter) has no gradient"); continue }
            #expect(gradient.shape == variable.shape, "\(name): \(parameter)")
            #expect(gradient.isFinite, "\(name): \(parameter)")
            #expect(gradient.scalars.contains { $0 != 0 }, "\(name): \(parameter) has an all-zero gradient")
        }
        for (buffer, value) in model.namedBuffers() where buffer.hasSuffix("running_mean") {
            #expect(value.value.scalars.contains { $0 != 0 }, "\(name): \(buffer) did not move")
        }
    }
}

/// Every zoo model at its default input size (224x224, 227x227 for alexnet2012, 28x28 for lenet5):
/// an eval-mode forward pass at 1000 classes. Runs in release builds, or in debug with
/// `CNN_FULL_ZOO_TESTS=1` (see ``ZooTestSupport``).
@Suite("Zoo full-size models", .serialized, .enabled(if: ZooTestSupport.fullSizeEnabled))
struct ZooFullSizeTests {
    @Test(arguments: ZooExpectation.all)
    func defaultSizeForward(_ expected: ZooExpectation) throws {
        let model = try ModelZoo.make(name: expected.name, classes: 1000)
        model.eval()
        let y = try model(ZooTestSupport.random(try ModelZoo.defaultInputShape(name: expected.name))).value
        #expect(y.shape == [1, 1000])
        #expect(y.isFinite)
    }
}
