/// The classic CNNs by name, as torchvision names them: `ModelZoo.make(name: "resnet18", classes: 10)`.
///
/// Every model has torchvision's module structure, so its parameter and buffer names
/// (``Module/stateDictionary()``) are torchvision's state-dict keys and weight files interchange.
public enum ModelZoo {
    /// One model of the zoo.
    public struct Entry: Sendable {
        /// The name (`resnet18`).
        public let name: String
        /// A one-line description with the paper.
        public let summary: String
        /// The input channels the model is usually built for.
        public let defaultInputChannels: Int
        /// The input height and width the architecture was designed for.
        public let defaultInputSize: Int
        let build: @Sendable (_ classes: Int, _ inputChannels: Int) throws -> Module

        /// The default input shape, `[batch, channels, size, size]`.
        public func defaultInputShape(batch: Int = 1) -> [Int] {
            [batch, defaultInputChannels, defaultInputSize, defaultInputSize]
        }
    }

    /// Every model, in the order of ``names``.
    public static let entries: [Entry] = {
        var list: [Entry] = [
            Entry(name: "lenet5", summary: "LeNet-5 (LeCun et al., 1998), ReLU and max pooling, 28x28 MNIST input",
                  defaultInputChannels: 1, defaultInputSize: 28) { try LeNet5(classes: $0, inputChannels: $1, inputSize: 28) },
            Entry(name: "alexnet", summary: "AlexNet, torchvision's 64-192-384-256-256 variant (Krizhevsky, 2014)",
                  defaultInputChannels: 3, defaultInputSize: 224) { try AlexNet(variant: .torchvision, classes: $0, inputChannels: $1) },
            Entry(name: "alexnet2012", summary: "AlexNet as in the 2012 paper: LRN, grouped convolutions, 227x227 input",
                  defaultInputChannels: 3, defaultInputSize: 227) { try AlexNet(variant: .original2012, classes: $0, inputChannels: $1) },
            Entry(name: "zfnet", summary: "ZFNet (Zeiler & Fergus, 2013): 7x7/2 conv1, 512-1024-512 conv3-5",
                  defaultInputChannels: 3, defaultInputSize: 224) { try AlexNet(variant: .zfNet, classes: $0, inputChannels: $1) },
        ]
        for configuration in VGG.Configuration.allCases {
            for batchNorm in [false, true] {
                let name = "vgg\(configuration.depth)" + (batchNorm ? "_bn" : "")
                list.append(Entry(name: name, summary: "VGG-\(configuration.depth) (configuration \(configuration.rawValue))" +
                                      (batchNorm ? " with batch norm" : "") + " (Simonyan & Zisserman, 2015)",
                                  defaultInputChannels: 3, defaultInputSize: 224) {
                    try VGG(configuration: configuration, batchNorm: batchNorm, classes: $0, inputChannels: $1)
                })
            }
        }
        list.append(Entry(name: "googlenet", summary: "GoogLeNet / Inception v1 (Szegedy et al., 2015), without auxiliary classifiers",
                          defaultInputChannels: 3, defaultInputSize: 224) {
            try GoogLeNet(classes: $0, inputChannels: $1, auxiliaryClassifiers: false)
        })
        for depth in ResNet.Depth.allCases {
            list.append(Entry(name: "resnet\(depth.rawValue)", summary: "ResNet-\(depth.rawValue) (He et al., 2016), torchvision v1.5",
                              defaultInputChannels: 3, defaultInputSize: 224) {
                try ResNet(depth: depth, classes: $0, inputChannels: $1)
            })
        }
        return list
    }()

    /// The models' names: lenet5, alexnet, alexnet2012, zfnet, vgg11, vgg11_bn, ..., vgg19_bn,
    /// googlenet, resnet18, resnet34, resnet50, resnet101, resnet152.
    public static var names: [String] { entries.map(\.name) }

    /// The entry of a name.
    ///
    /// - Throws: ``CNNError/invalidArgument(_:)`` naming the valid names for an unknown one.
    public static func entry(named name: String) throws -> Entry {
        guard let entry = entries.first(where: { $0.name == name.lowercased() }) else {
            throw CNNError.invalidArgument("unknown model '\(name)'; valid names: \(names.joined(separator: ", "))")
        }
        return entry
    }

    /// Builds a freshly initialised model (weights drawn from ``GlobalGenerator``).
    ///
    /// - Parameters:
    ///   - name: one of ``names``.
    ///   - classes: the number of outputs.
    ///   - inputChannels: the input's channels; `nil` for the model's default (1 for lenet5, else 3).
    /// - Throws: ``CNNError/invalidArgument(_:)`` for an unknown name (listing the valid ones) or
    ///   non-positive counts.
    public static func make(name: String, classes: Int = 1000, inputChannels: Int? = nil) throws -> Module {
        let entry = try entry(named: name)
        guard classes >= 1 else { throw CNNError.invalidArgument("\(name): classes \(classes) must be positive") }
        let channels = inputChannels ?? entry.defaultInputChannels
        guard channels >= 1 else { throw CNNError.invalidArgument("\(name): input channels \(channels) must be positive") }
        return try entry.build(classes, channels)
    }

    /// The default input shape of a model, `[batch, channels, size, size]`: `[1, 1, 28, 28]` for
    /// lenet5, `[1, 3, 227, 227]` for alexnet2012, `[1, 3, 224, 224]` for the others.
    ///
    /// - Throws: ``CNNError/invalidArgument(_:)`` for an unknown name.
    public static func defaultInputShape(name: String, batch: Int = 1, inputChannels: Int? = nil) throws -> [Int] {
        let entry = try entry(named: name)
        return [batch, inputChannels ?? entry.defaultInputChannels, entry.defaultInputSize, entry.defaultInputSize]
    }
}

/// The initialisation schemes torchvision's models apply after construction.
enum ModelInitializer {
    enum Scheme {
        /// PyTorch's default (Kaiming-uniform with a = √5), as constructed.
        case keep
        /// `kaiming_normal_(mode="fan_out", nonlinearity="relu")`: N(0, 2 / fan-out), fan-out =
        /// `K·R·S` (He et al., 2015; fan-out preserves the backward pass's variance).
        case kaimingNormalFanOut
        /// N(0, σ²).
        case normal(standardDeviation: Float)
        /// N(0, σ²) redrawn outside ±2σ (GoogLeNet; torchvision's `trunc_normal_` bounds are ±2 absolute,
        /// which at σ = 0.01 never bind, so both are the normal in practice).
        case truncatedNormal(standardDeviation: Float)
    }

    /// Re-initialises every convolution and fully connected weight of `model` per scheme, sets batch
    /// norm to weight 1 and bias 0, and zeroes convolution and linear biases when `zeroBiases`.
    static func initialize(_ model: Module, convolutions: Scheme, linear: Scheme, zeroBiases: Bool) throws {
        for (_, module) in model.namedModules() {
            switch module {
            case let conv as Conv2d:
                try apply(convolutions, to: conv.weight)
                if zeroBiases, let bias = conv.bias { try bias.assign(try Tensor(zeros: bias.shape)) }
            case let fc as Linear:
                try apply(linear, to: fc.weight)
                if zeroBiases, let bias = fc.bias { try bias.assign(try Tensor(zeros: bias.shape)) }
            case let bn as BatchNorm2d:
                try bn.weight.assign(try Tensor(ones: bn.weight.shape))
                try bn.bias.assign(try Tensor(zeros: bn.bias.shape))
            default:
                break
            }
        }
    }

    static func apply(_ scheme: Scheme, to weight: Variable) throws {
        let shape = weight.shape
        switch scheme {
        case .keep:
            return
        case .kaimingNormalFanOut:
            let fanOut = shape[0] * shape.dropFirst(2).reduce(1, *)
            let std = (2 / Float(fanOut)).squareRoot()
            try weight.assign(try GlobalGenerator.with { g in try Tensor.normal(shape: shape, standardDeviation: std, generator: &g) })
        case .normal(let std):
            try weight.assign(try GlobalGenerator.with { g in try Tensor.normal(shape: shape, standardDeviation: std, generator: &g) })
        case .truncatedNormal(let std):
            try weight.assign(try GlobalGenerator.with { g in
                var t = try Tensor.normal(shape: shape, standardDeviation: std, generator: &g)
                t.withUnsafeMutableBufferPointer { values in
                    for i in values.indices where abs(values[i]) > 2 * std {
                        repeat { values[i] = std * g.nextNormal() } while abs(values[i]) > 2 * std
                    }
                }
                return t
            })
        }
    }
}
