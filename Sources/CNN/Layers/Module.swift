/// A non-trainable tensor a module keeps as state, such as batch norm's running statistics.
/// Buffers are saved and loaded with the weights under their PyTorch names.
public final class Buffer {
    /// The current value.
    public var value: Tensor
    /// Creates a buffer.
    public init(_ value: Tensor) { self.value = value }
}

/// The base class of every layer and model: named parameters, buffers and submodules, found by
/// reflection on stored properties, with PyTorch's dotted names.
///
/// A subclass declares its parameters (`Variable` with `requiresGradient`), buffers (``Buffer``) and
/// submodules (`Module`, `[Module]`, optionals of these) as stored properties and overrides
/// ``forward(_:)``. Property names are converted from camelCase to PyTorch's snake_case
/// (`runningMean` → `running_mean`), so a ResNet's first block's first convolution weight is named
/// `layer1.0.conv1.weight` exactly as in torchvision, and weight files interchange with PyTorch.
/// Arrays of modules are numbered (`features.0`, `features.1`, ...). A subclass may instead
/// override ``namedChildren()``, ``localParameters()`` or ``localBuffers()`` to control names.
open class Module {
    /// Whether the module (and, after ``train()`` or ``eval()``, all its submodules) is in training
    /// mode: batch norm uses batch statistics and dropout is active.
    public private(set) var isTraining = true

    /// Creates a module in training mode.
    public init() {}

    /// The forward pass. Subclasses override it.
    open func forward(_ input: Variable) throws -> Variable {
        throw CNNError.unsupported("\(type(of: self)) does not implement forward(_:)")
    }

    /// Calls ``forward(_:)``; while ``summary(inputShape:name:)`` runs in this task, the call goes
    /// through the summary's recorder (one relaxed atomic load otherwise).
    public func callAsFunction(_ input: Variable) throws -> Variable {
        if SummaryRecorder.isActive, let recorder = SummaryRecorder.current {
            return try recorder.call(self, input)
        }
        return try forward(input)
    }

    /// Runs the forward pass on a tensor without recording gradients and returns the output value.
    public func callAsFunction(_ input: Tensor) throws -> Tensor {
        try GradientMode.withoutGradients { try forward(Variable(input)).value }
    }

    /// A short description of this layer's configuration for summaries, e.g. `"3->64, 3x3, s1, p1"`.
    open var configurationDescription: String { "" }

    // MARK: Traversal

    static func snakeCase(_ s: String) -> String {
        var out = ""
        for ch in s {
            if ch.isUppercase {
                if !out.isEmpty { out.append("_") }
                out.append(contentsOf: ch.lowercased())
            } else {
                out.append(ch)
            }
        }
        return out
    }

    private func reflectedProperties() -> [(String, Any)] {
        var result: [(String, Any)] = []
        var mirror: Mirror? = Mirror(reflecting: self)
        var chain: [Mirror] = []
        while let m = mirror { chain.append(m); mirror = m.superclassMirror }
        for m in chain.reversed() {
            for child in m.children {
                guard var label = child.label else { continue }
                if label.hasPrefix("$__lazy_storage_$_") { label.removeFirst("$__lazy_storage_$_".count) }
                if label.hasPrefix("_") { continue }
                result.append((Module.snakeCase(label), child.value))
            }
        }
        return result
    }

    private static func unwrap(_ value: Any) -> Any? {
        let m = Mirror(reflecting: value)
        if m.displayStyle == .optional { return m.children.first?.value }
        return value
    }

    /// The direct submodules with their names.
    open func namedChildren() -> [(String, Module)] {
        var result: [(String, Module)] = []
        for (name, raw) in reflectedProperties() {
            guard let value = Module.unwrap(raw) else { continue }
            if let m = value as? Module {
                result.append((name, m))
            } else if let list = value as? [Module] {
                for (i, m) in list.enumerated() { result.append(("\(name).\(i)", m)) }
            }
        }
        return result
    }

    /// This module's own parameters (not its submodules'), with their names.
    open func localParameters() -> [(String, Variable)] {
        reflectedProperties().compactMap { name, raw in
            guard let v = Module.unwrap(raw) as? Variable, v.requiresGradient else { return nil }
            return (name, v)
        }
    }

    /// This module's own buffers, with their names.
    open func localBuffers() -> [(String, Buffer)] {
        reflectedProperties().compactMap { name, raw in
            guard let b = Module.unwrap(raw) as? Buffer else { return nil }
            return (name, b)
        }
    }

    /// Every module in the tree, depth first, this one first with the name `""`.
    public func namedModules(prefix: String = "") -> [(String, Module)] {
        var result: [(String, Module)] = [(prefix, self)]
        for (name, child) in namedChildren() {
            result += child.namedModules(prefix: prefix.isEmpty ? name : "\(prefix).\(name)")
        }
        return result
    }

    /// Every parameter in the tree with its dotted name (`layer1.0.conv1.weight`), in definition order.
    public func namedParameters() -> [(String, Variable)] {
        var result: [(String, Variable)] = []
        var seen = Set<ObjectIdentifier>()
        for (prefix, m) in namedModules() {
            for (name, p) in m.localParameters() where seen.insert(ObjectIdentifier(p)).inserted {
                result.append((prefix.isEmpty ? name : "\(prefix).\(name)", p))
            }
        }
        return result
    }

    /// Every parameter in the tree.
    public func parameters() -> [Variable] { namedParameters().map(\.1) }

    /// Every buffer in the tree with its dotted name (`bn1.running_mean`).
    public func namedBuffers() -> [(String, Buffer)] {
        var result: [(String, Buffer)] = []
        for (prefix, m) in namedModules() {
            for (name, b) in m.localBuffers() {
                result.append((prefix.isEmpty ? name : "\(prefix).\(name)", b))
            }
        }
        return result
    }

    /// The number of scalar parameters (trainable weights and biases).
    public var parameterCount: Int { parameters().reduce(0) { $0 + $1.value.count } }

    /// Switches this module and every submodule to training mode.
    public func train() { setTraining(true) }

    /// Switches this module and every submodule to evaluation mode.
    public func eval() { setTraining(false) }

    /// Sets the mode of this module and every submodule.
    public func setTraining(_ training: Bool) {
        for (_, m) in namedModules() { m.isTraining = training }
    }

    /// Clears the gradients of every parameter.
    public func zeroGradients() {
        for p in parameters() { p.zeroGradient() }
    }

    /// The parameters and buffers by name, as a weight file stores them.
    public func stateDictionary() -> [(String, Tensor)] {
        namedParameters().map { ($0.0, $0.1.value) } + namedBuffers().map { ($0.0, $0.1.value) }
    }
}
