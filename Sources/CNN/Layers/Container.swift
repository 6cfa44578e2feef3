/// Modules applied in order; children are named `0`, `1`, ... as in PyTorch's `nn.Sequential`.
public final class Sequential: Module {
    /// The layers, in order.
    public private(set) var layers: [Module]

    /// Creates a sequence.
    public init(_ layers: [Module]) {
        self.layers = layers
        super.init()
    }

    /// Creates a sequence.
    public convenience init(_ layers: Module...) { self.init(layers) }

    /// Appends a layer.
    public func append(_ layer: Module) { layers.append(layer) }

    public override func namedChildren() -> [(String, Module)] {
        layers.enumerated().map { ("\($0.offset)", $0.element) }
    }

    public override func forward(_ input: Variable) throws -> Variable {
        var x = input
        for layer in layers { x = try layer(x) }
        return x
    }
}

/// `relu?(body(x) + shortcut(x))`: the residual connection of ResNet (He et al., 2016), written with
/// ordinary modules. `shortcut` `nil` is the identity.
public final class Residual: Module {
    public let body: Module
    public let shortcut: Module?
    public let applyReLU: Bool

    /// Creates a residual connection.
    public init(body: Module, shortcut: Module? = nil, applyReLU: Bool = true) {
        self.body = body
        self.shortcut = shortcut
        self.applyReLU = applyReLU
        super.init()
    }

    public override func forward(_ input: Variable) throws -> Variable {
        let main = try body(input)
        let skip = try shortcut.map { try $0(input) } ?? input
        guard main.shape == skip.shape else {
            throw CNNError.shapeMismatch("Residual: body output \(main.shape) and shortcut output \(skip.shape) differ")
        }
        let sum = try Functional.add(main, skip)
        return applyReLU ? try Functional.relu(sum) : sum
    }
}

/// Runs several branches on the same input and concatenates their outputs along the channels:
/// the Inception module's structure (Szegedy et al., 2015).
public final class Concat: Module {
    public let branches: [Module]

    /// Creates the branches' concatenation; children are named `0`, `1`, ... unless a subclass names them.
    public init(_ branches: [Module]) {
        self.branches = branches
        super.init()
    }

    public override func namedChildren() -> [(String, Module)] {
        branches.enumerated().map { ("\($0.offset)", $0.element) }
    }

    public override func forward(_ input: Variable) throws -> Variable {
        try Functional.concatenate(try branches.map { try $0(input) }, alongAxis: 1)
    }
}
