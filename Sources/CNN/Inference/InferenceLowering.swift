/// Lowers a module tree to an ``InferenceGraph`` by matching the module types it knows, mirroring
/// each one's evaluation-mode `forward(_:)` exactly: the containers (``Sequential``, ``Residual``,
/// ``Concat``), the layers (``Conv2d``, ``Linear``, ``BatchNorm2d``, ``ReLU``, ``LeakyReLU``,
/// ``MaxPool2d``, ``AvgPool2d``, ``AdaptiveAvgPool2d``, ``LocalResponseNorm``, ``Flatten``,
/// ``Dropout``, ``Identity``) and the zoo's models and blocks (``LeNet5``, ``AlexNet``, ``VGG``,
/// ``GoogLeNet`` with ``BasicConv2d``, ``Inception`` and ``InceptionAux``, ``ResNet`` with
/// ``BasicBlock`` and ``Bottleneck``).
///
/// Any other module — a user subclass whose `forward(_:)` the lowering cannot see into — is an
/// error naming its path and type: there is no silent fallback to the eager forward.
struct InferenceLowering {
    var graph: InferenceGraph
    /// The convolution algorithm asked of ``Module/compiled(inputShape:algorithm:)`` (`nil`: each
    /// layer's own, as the eager forward would use).
    let algorithm: ConvolutionAlgorithm?

    init(inputShape: [Int], algorithm: ConvolutionAlgorithm?) {
        graph = InferenceGraph(inputShape: inputShape)
        self.algorithm = algorithm
    }

    private static func path(_ prefix: String, _ name: String) -> String {
        prefix.isEmpty ? name : "\(prefix).\(name)"
    }

    private func shape(_ v: Int) -> [Int] { graph.values[v].shape }

    private func image(_ v: Int, _ name: String, _ module: Module) throws -> (n: Int, c: Int, h: Int, w: Int) {
        let s = shape(v)
        guard s.count == 4 else {
            throw CNNError.shapeMismatch("compiled model: '\(name)' (\(type(of: module))) needs an [N, C, H, W] input, got \(s)")
        }
        return (s[0], s[1], s[2], s[3])
    }

    /// Lowers `module` (at `name` in the tree) applied to value `x`; returns the output value.
    mutating func lower(_ module: Module, _ x: Int, name: String) throws -> Int {
        func sub(_ child: Module, _ childName: String, _ input: Int) throws -> Int {
            try lower(child, input, name: Self.path(name, childName))
        }
        switch module {
        case let m as Sequential:
            var v = x
            for (i, layer) in m.layers.enumerated() { v = try sub(layer, "\(i)", v) }
            return v
        case let m as Conv2d:
            return try convolution(m, x, name: name)
        case let m as Linear:
            let s = shape(x)
            guard s.count == 2, s[1] == m.inputFeatures else {
                throw CNNError.shapeMismatch("compiled model: '\(name)' Linear(\(m.inputFeatures)->\(m.outputFeatures)) input shape \(s) is not [N, \(m.inputFeatures)]")
            }
            let node = InferenceGraph.Linear(weight: m.weight.value, bias: m.bias?.value)
            return graph.append(.linear(node), inputs: [x], shape: [s[0], m.outputFeatures], name: name)
        case let m as BatchNorm2d:
            let s = shape(x)
            guard s.count >= 2, s[1] == m.features else {
                throw CNNError.shapeMismatch("compiled model: '\(name)' BatchNorm2d(\(m.features)) input shape \(s) does not have \(m.features) channels")
            }
            return graph.append(.batchNorm(weight: m.weight.value, bias: m.bias.value, mean: m.runningMean.value,
                                           variance: m.runningVar.value, epsilon: m.epsilon),
                                inputs: [x], shape: s, name: name)
        case is ReLU:
            return graph.append(.relu, inputs: [x], shape: shape(x), name: name)
        case let m as LeakyReLU:
            return graph.append(.leakyRelu(m.negativeSlope), inputs: [x], shape: shape(x), name: name)
        case is Dropout, is Identity:
            return x  // identity in evaluation mode
        case is Flatten:
            let s = shape(x)
            guard s.count >= 1 else { throw CNNError.shapeMismatch("compiled model: '\(name)' Flatten of a scalar") }
            return graph.alias(x, shape: [s[0], s.dropFirst().reduce(1, *)])
        case let m as MaxPool2d:
            return try pool(.maxPool(.init(kernel: m.kernelSize, stride: m.stride, padding: m.padding, ceilMode: m.ceilMode,
                                           countIncludePad: false)), x, name: name, module: m)
        case let m as AvgPool2d:
            return try pool(.avgPool(.init(kernel: m.kernelSize, stride: m.stride, padding: m.padding, ceilMode: m.ceilMode,
                                           countIncludePad: m.countIncludePad)), x, name: name, module: m)
        case let m as AdaptiveAvgPool2d:
            return try adaptiveAvgPool(m.outputSize, x, name: name, module: m)
        case let m as LocalResponseNorm:
            _ = try image(x, name, m)
            return graph.append(.localResponseNorm(size: m.size, alpha: m.alpha, beta: m.beta, k: m.k), inputs: [x],
                                shape: shape(x), name: name)
        case let m as Residual:
            let main = try sub(m.body, "body", x)
            let skip = try m.shortcut.map { try sub($0, "shortcut", x) } ?? x
            return try add(main, skip, relu: m.applyReLU, name: name)
        case let m as Concat:
            let outs = try m.namedChildren().map { try sub($0.1, $0.0, x) }
            return try concat(outs, name: name)
        case let m as BasicConv2d:
            let c = try sub(m.conv, "conv", x)
            let b = try sub(m.bn, "bn", c)
            return graph.append(.relu, inputs: [b], shape: shape(b), name: Self.path(name, "relu"))
        case let m as Inception:
            let outs = [try sub(m.branch1, "branch1", x), try sub(m.branch2, "branch2", x),
                        try sub(m.branch3, "branch3", x), try sub(m.branch4, "branch4", x)]
            return try concat(outs, name: name)
        case let m as InceptionAux:
            var v = try adaptiveAvgPool((4, 4), x, name: Self.path(name, "avgpool"), module: m)
            v = try sub(m.conv, "conv", v)
            v = graph.alias(v, shape: [shape(v)[0], shape(v).dropFirst().reduce(1, *)])
            v = try sub(m.fc1, "fc1", v)
            v = graph.append(.relu, inputs: [v], shape: shape(v), name: Self.path(name, "relu"))
            return try sub(m.fc2, "fc2", v)
        case let m as BasicBlock:
            var main = try sub(m.conv1, "conv1", x)
            main = try sub(m.bn1, "bn1", main)
            main = graph.append(.relu, inputs: [main], shape: shape(main), name: Self.path(name, "relu1"))
            main = try sub(m.bn2, "bn2", try sub(m.conv2, "conv2", main))
            let skip = try m.downsample.map { try sub($0, "downsample", x) } ?? x
            return try add(main, skip, relu: true, name: name)
        case let m as Bottleneck:
            var main = try sub(m.bn1, "bn1", try sub(m.conv1, "conv1", x))
            main = graph.append(.relu, inputs: [main], shape: shape(main), name: Self.path(name, "relu1"))
            main = try sub(m.bn2, "bn2", try sub(m.conv2, "conv2", main))
            main = graph.append(.relu, inputs: [main], shape: shape(main), name: Self.path(name, "relu2"))
            main = try sub(m.bn3, "bn3", try sub(m.conv3, "conv3", main))
            let skip = try m.downsample.map { try sub($0, "downsample", x) } ?? x
            return try add(main, skip, relu: true, name: name)
        case let m as ResNet:
            var v = try sub(m.relu, "relu", try sub(m.bn1, "bn1", try sub(m.conv1, "conv1", x)))
            v = try sub(m.maxpool, "maxpool", v)
            for (n, stage) in [("layer1", m.layer1), ("layer2", m.layer2), ("layer3", m.layer3), ("layer4", m.layer4)] {
                v = try sub(stage, n, v)
            }
            v = try sub(m.avgpool, "avgpool", v)
            v = try lower(Flatten(), v, name: Self.path(name, "flatten"))
            return try sub(m.fc, "fc", v)
        case let m as GoogLeNet:
            // The evaluation-mode forward: the auxiliary classifiers are not evaluated.
            var v = x
            let trunk: [(String, Module)] = [
                ("conv1", m.conv1), ("maxpool1", m.maxpool1), ("conv2", m.conv2), ("conv3", m.conv3), ("maxpool2", m.maxpool2),
                ("inception3a", m.inception3a), ("inception3b", m.inception3b), ("maxpool3", m.maxpool3),
                ("inception4a", m.inception4a), ("inception4b", m.inception4b), ("inception4c", m.inception4c),
                ("inception4d", m.inception4d), ("inception4e", m.inception4e), ("maxpool4", m.maxpool4),
                ("inception5a", m.inception5a), ("inception5b", m.inception5b), ("avgpool", m.avgpool),
            ]
            for (n, layer) in trunk { v = try sub(layer, n, v) }
            v = try lower(Flatten(), v, name: Self.path(name, "flatten"))
            return try sub(m.fc, "fc", try sub(m.dropout, "dropout", v))
        case let m as AlexNet:
            var v = try sub(m.avgpool, "avgpool", try sub(m.features, "features", x))
            v = try lower(Flatten(), v, name: Self.path(name, "flatten"))
            return try sub(m.classifier, "classifier", v)
        case let m as VGG:
            var v = try sub(m.avgpool, "avgpool", try sub(m.features, "features", x))
            v = try lower(Flatten(), v, name: Self.path(name, "flatten"))
            return try sub(m.classifier, "classifier", v)
        case let m as LeNet5:
            var v = try sub(m.features, "features", x)
            v = try lower(Flatten(), v, name: Self.path(name, "flatten"))
            return try sub(m.classifier, "classifier", v)
        default:
            throw CNNError.unsupported("compiled model: cannot lower '\(name.isEmpty ? "<root>" : name)' of type \(type(of: module)); supported: Sequential, Residual, Concat, Conv2d, Linear, BatchNorm2d, ReLU, LeakyReLU, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, LocalResponseNorm, Flatten, Dropout, Identity and the zoo's models and blocks")
        }
    }

    private mutating func convolution(_ m: Conv2d, _ x: Int, name: String) throws -> Int {
        let g: ConvolutionGeometry
        do { g = try m.geometry(forInput: shape(x)) } catch let e as CNNError {
            throw CNNError.shapeMismatch("compiled model: '\(name)': \(e.message)")
        }
        let (p, q) = try g.outputSize()
        let requested: ConvolutionAlgorithm
        switch algorithm {
        case nil: requested = m.algorithm ?? ConvolutionAlgorithm.defaultAlgorithm
        case .some(let a) where a == .auto || a == .autotune || g.applicableAlgorithms.contains(a): requested = a
        case .some: requested = .auto  // a concrete algorithm is used where it applies, the heuristic elsewhere
        }
        let node = InferenceGraph.Convolution(geometry: g, weight: m.weight.value, bias: m.bias?.value, requested: requested)
        return graph.append(.convolution(node), inputs: [x], shape: [g.batch, g.outputChannels, p, q], name: name)
    }

    private mutating func pool(_ kind: InferenceGraph.Kind, _ x: Int, name: String, module: Module) throws -> Int {
        let (n, c, h, w) = try image(x, name, module)
        let window: InferenceGraph.Pool
        switch kind {
        case .maxPool(let p), .avgPool(let p): window = p
        default: preconditionFailure("pool(_:) takes a pooling kind")
        }
        let (oh, ow) = try InferenceKernels.poolOutputSize(window, n: n, c: c, h: h, w: w, name: name)
        return graph.append(kind, inputs: [x], shape: [n, c, oh, ow], name: name)
    }

    private mutating func adaptiveAvgPool(_ size: (Int, Int), _ x: Int, name: String, module: Module) throws -> Int {
        let (n, c, h, w) = try image(x, name, module)
        // PyTorch's bins with H == outH are [i, i + 1): the identity, skipped (VGG and AlexNet at
        // their native sizes).
        if (h, w) == size { return x }
        return graph.append(.adaptiveAvgPool(size.0, size.1), inputs: [x], shape: [n, c, size.0, size.1], name: name)
    }

    private mutating func add(_ a: Int, _ b: Int, relu: Bool, name: String) throws -> Int {
        guard shape(a) == shape(b) else {
            throw CNNError.shapeMismatch("compiled model: '\(name)': main path output \(shape(a)) and shortcut output \(shape(b)) differ")
        }
        return graph.append(.add(relu: relu), inputs: [a, b], shape: shape(a), name: name)
    }

    private mutating func concat(_ inputs: [Int], name: String) throws -> Int {
        let first = shape(inputs[0])
        for v in inputs {
            let s = shape(v)
            guard s.count == 4, s[0] == first[0], s[2] == first[2], s[3] == first[3] else {
                throw CNNError.shapeMismatch("compiled model: '\(name)': cannot concatenate \(inputs.map { shape($0) }) along the channels")
            }
        }
        let channels = inputs.reduce(0) { $0 + shape($1)[1] }
        return graph.append(.concat, inputs: inputs, shape: [first[0], channels, first[2], first[3]], name: name)
    }
}
