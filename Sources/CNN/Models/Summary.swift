import Synchronization

/// What one model does to one input: per leaf layer, its output shape, parameters and
/// multiply-accumulates, and the totals — the layer-by-layer walk of a CNN lecture
/// (AlexNet's conv1 turns `[1, 3, 227, 227]` into `[1, 96, 55, 55]` with 34,848 weights and 96
/// biases; VGG-16's ~138M parameters sit mostly in its first fully connected layer).
///
/// Made by ``Module/summary(inputShape:name:)``. ``description`` renders a table; ``json`` a compact
/// machine-readable form.
public struct ModelSummary: Sendable, CustomStringConvertible {
    /// One call of a leaf layer (a module without submodules) during the forward pass.
    public struct Layer: Sendable, Equatable {
        /// The dotted PyTorch name of the layer (`features.0`, `layer1.0.conv1`).
        public var name: String
        /// The layer's type (`Conv2d`, `ReLU`).
        public var type: String
        /// The layer's configuration (`3->96, 11x11, stride 4`), possibly empty.
        public var configuration: String
        /// The shape of the layer's input.
        public var inputShape: [Int]
        /// The shape of the layer's output.
        public var outputShape: [Int]
        /// Trainable scalars the layer owns (weights and biases).
        public var parameters: Int
        /// Multiply-accumulates of the forward pass: `N·K·P·Q·(C/groups)·R·S` for a convolution,
        /// `N·in·out` for a fully connected layer, 0 for every other layer (pooling, normalisation
        /// and activations do a few operations per element, negligible beside these and not
        /// multiply-accumulates).
        public var multiplyAccumulates: Int

        /// The output's size in bytes (32-bit floats).
        public var activationBytes: Int { outputShape.reduce(1, *) * MemoryLayout<Float>.size }
    }

    /// The model's name.
    public var model: String
    /// The input shape the summary ran on.
    public var inputShape: [Int]
    /// The model's output shape.
    public var outputShape: [Int]
    /// The leaf layers in call order (a layer called twice appears twice).
    public var layers: [Layer]
    /// Every parameter of the model (each shared parameter once).
    public var totalParameters: Int
    /// The parameters that receive gradients. Every registered parameter is trainable in this
    /// library (frozen tensors are buffers), so this equals ``totalParameters``; it is kept apart
    /// as summaries conventionally show both.
    public var trainableParameters: Int
    /// Scalars in buffers (batch norm's running statistics), saved with the weights but not trained.
    public var bufferScalars: Int

    /// The sum of the layers' multiply-accumulates.
    public var totalMultiplyAccumulates: Int { layers.reduce(0) { $0 + $1.multiplyAccumulates } }
    /// Bytes of parameters and buffers (32-bit floats).
    public var weightBytes: Int { (totalParameters + bufferScalars) * MemoryLayout<Float>.size }
    /// Bytes of every leaf layer's output: what a training step keeps for the backward pass, roughly
    /// (an upper bound for inference, which frees outputs as it goes).
    public var activationBytes: Int { layers.reduce(0) { $0 + $1.activationBytes } }

    /// A table: one row per leaf layer, then the totals.
    public var description: String {
        let header = ["Layer", "Type", "Output shape", "Params", "MACs"]
        var rows: [[String]] = layers.map { layer in
            [layer.name,
             layer.configuration.isEmpty ? layer.type : "\(layer.type)(\(layer.configuration))",
             ModelSummary.shape(layer.outputShape),
             ModelSummary.grouped(layer.parameters),
             ModelSummary.grouped(layer.multiplyAccumulates)]
        }
        rows.insert(header, at: 0)
        let widths = (0..<header.count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        // Names and types align left, numbers right.
        func render(_ row: [String]) -> String {
            row.enumerated().map { column, cell in
                let pad = String(repeating: " ", count: widths[column] - cell.count)
                return column < 3 ? cell + pad : pad + cell
            }.joined(separator: "  ")
        }
        let rule = String(repeating: "-", count: widths.reduce(0, +) + 2 * (widths.count - 1))
        var lines = ["\(model): input \(ModelSummary.shape(inputShape)) -> output \(ModelSummary.shape(outputShape))", rule,
                     render(rows[0]), rule]
        lines += rows.dropFirst().map(render)
        lines.append(rule)
        lines.append("Total parameters:      \(ModelSummary.grouped(totalParameters))")
        lines.append("Trainable parameters:  \(ModelSummary.grouped(trainableParameters))")
        lines.append("Buffer scalars:        \(ModelSummary.grouped(bufferScalars))")
        lines.append("Multiply-accumulates:  \(ModelSummary.grouped(totalMultiplyAccumulates))")
        lines.append("Weights and buffers:   \(ModelSummary.megabytes(weightBytes))")
        lines.append("Activations (outputs): \(ModelSummary.megabytes(activationBytes))")
        return lines.joined(separator: "\n")
    }

    /// `{"model":..,"input":[..],"layers":[{"name":..,"type":..,"output":[..],"params":..,"macs":..}],"total_params":..,"total_macs":..}`,
    /// compact, keys in this order.
    public var json: String {
        func list(_ xs: [Int]) -> String { "[" + xs.map(String.init).joined(separator: ",") + "]" }
        let layerObjects = layers.map { layer in
            "{\"name\":\(ModelSummary.quoted(layer.name)),\"type\":\(ModelSummary.quoted(layer.type)),\"output\":\(list(layer.outputShape)),\"params\":\(layer.parameters),\"macs\":\(layer.multiplyAccumulates)}"
        }
        return "{\"model\":\(ModelSummary.quoted(model)),\"input\":\(list(inputShape)),\"layers\":[\(layerObjects.joined(separator: ","))],\"total_params\":\(totalParameters),\"total_macs\":\(totalMultiplyAccumulates)}"
    }

    static func shape(_ s: [Int]) -> String { "[" + s.map(String.init).joined(separator: ", ") + "]" }

    /// `138357544` as `138,357,544`.
    static func grouped(_ n: Int) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (i, ch) in digits.enumerated() {
            if i > 0, (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(ch)
        }
        return n < 0 ? "-" + out : out
    }

    static func megabytes(_ bytes: Int) -> String {
        let tenths = (bytes * 10 + 524_288) / 1_048_576
        return "\(tenths / 10).\(tenths % 10) MiB"
    }

    /// A JSON string literal (the one escaping routine, shared with the file readers).
    static func quoted(_ s: String) -> String { IOJSON.quote(s) }
}

extension Module {
    /// Runs one forward pass on a zero tensor of `inputShape`, in evaluation mode and without
    /// gradients, and records every leaf layer's output shape, parameters and multiply-accumulates.
    ///
    /// The model's training flags are restored afterwards and nothing else changes (evaluation mode
    /// leaves batch norm's running statistics and dropout's mask sequence untouched). Because it runs
    /// in evaluation mode, heads used only in training (GoogLeNet's auxiliary classifiers) are not
    /// shown.
    ///
    /// - Parameters:
    ///   - inputShape: the input, usually `[1, C, H, W]`.
    ///   - name: the model's name in the summary; defaults to the type's name.
    /// - Throws: the forward pass's error, its message prefixed with the innermost layer that threw,
    ///   e.g. `features.3 (Conv2d): ...`; ``CNNError/invalidArgument(_:)`` for an invalid shape.
    public func summary(inputShape: [Int], name: String? = nil) throws -> ModelSummary {
        let input = try Tensor(zeros: inputShape)
        let modes = namedModules().map { ($0.1, $0.1.isTraining) }
        eval()
        // Pre-order restore: a parent's setTraining sets its subtree, its children then set themselves.
        defer { for (module, training) in modes { module.setTraining(training) } }

        let recorder = SummaryRecorder(root: self)
        SummaryRecorder.activeCount.add(1, ordering: .relaxed)
        defer { SummaryRecorder.activeCount.subtract(1, ordering: .relaxed) }
        let output = try SummaryRecorder.$current.withValue(recorder) {
            try GradientMode.withoutGradients { try self(Variable(input)) }
        }
        let parameters = parameterCount
        return ModelSummary(model: name ?? String(describing: type(of: self)), inputShape: inputShape, outputShape: output.shape,
                            layers: recorder.layers, totalParameters: parameters, trainableParameters: parameters,
                            bufferScalars: namedBuffers().reduce(0) { $0 + $1.1.value.count })
    }
}

/// Records leaf-layer calls for ``Module/summary(inputShape:name:)``.
///
/// `Module.callAsFunction(_:)` consults it only while some summary runs (``isActive``, one relaxed
/// atomic load) and only in the task that runs it (``current`` is task-local), so ordinary forward
/// passes, including concurrent ones, are unaffected.
final class SummaryRecorder: Sendable {
    /// How many summaries are running in the process.
    static let activeCount = Atomic<Int>(0)
    /// The recorder of the summary running in this task.
    @TaskLocal static var current: SummaryRecorder?

    static var isActive: Bool { activeCount.load(ordering: .relaxed) > 0 }

    private struct State {
        /// Each module's dotted name and whether it is a leaf, from the root's tree.
        var modules: [ObjectIdentifier: (name: String, isLeaf: Bool)] = [:]
        var layers: [ModelSummary.Layer] = []
        /// Set once the innermost layer has named itself in an error, so enclosing modules pass it on.
        var errorAnnotated = false
        /// The first output of the module ``captureTarget`` names (``Module/output(ofLayer:for:)``).
        var captured: Tensor?
    }

    /// The module whose output to keep, if any.
    private let captureTarget: ObjectIdentifier?

    /// Locked only between calls, never across a forward pass (calls nest).
    private let state = Mutex(State())

    init(root: Module, capturing target: Module? = nil) {
        captureTarget = target.map(ObjectIdentifier.init)
        var modules: [ObjectIdentifier: (name: String, isLeaf: Bool)] = [:]
        for (name, module) in root.namedModules() where modules[ObjectIdentifier(module)] == nil {
            modules[ObjectIdentifier(module)] = (name.isEmpty ? "(model)" : name, module.namedChildren().isEmpty)
        }
        state.withLock { $0.modules = modules }
    }

    /// The leaf layers recorded so far, in call order.
    var layers: [ModelSummary.Layer] { state.withLock { $0.layers } }

    /// The captured output of the target module, once it has run.
    var captured: Tensor? { state.withLock { $0.captured } }

    func call(_ module: Module, _ input: Variable) throws -> Variable {
        let type = String(describing: Swift.type(of: module))
        let entry: (name: String, isLeaf: Bool) = state.withLock { $0.modules[ObjectIdentifier(module)] }
            ?? ("(\(type) outside the model's tree)", module.namedChildren().isEmpty)
        do {
            let output = try module.forward(input)
            if let captureTarget, captureTarget == ObjectIdentifier(module) {
                state.withLock { if $0.captured == nil { $0.captured = output.value } }
            }
            if entry.isLeaf {
                let layer = ModelSummary.Layer(
                    name: entry.name, type: type, configuration: module.configurationDescription,
                    inputShape: input.shape, outputShape: output.shape,
                    parameters: module.localParameters().reduce(0) { $0 + $1.1.value.count },
                    multiplyAccumulates: try SummaryRecorder.multiplyAccumulates(module, input.shape, output.shape))
                state.withLock { $0.layers.append(layer) }
            }
            return output
        } catch let error as CNNError {
            let first = state.withLock { state in
                defer { state.errorAnnotated = true }
                return !state.errorAnnotated
            }
            throw first ? SummaryRecorder.prefixed(error, "\(entry.name) (\(type)): ") : error
        }
    }

    static func multiplyAccumulates(_ module: Module, _ input: [Int], _ output: [Int]) throws -> Int {
        switch module {
        case let conv as Conv2d: return try conv.geometry(forInput: input).multiplyAccumulates
        case let linear as Linear: return input[0] * linear.inputFeatures * linear.outputFeatures
        default: return 0
        }
    }

    static func prefixed(_ error: CNNError, _ prefix: String) -> CNNError {
        switch error {
        case .shapeMismatch(let m): return .shapeMismatch(prefix + m)
        case .invalidArgument(let m): return .invalidArgument(prefix + m)
        case .unsupported(let m): return .unsupported(prefix + m)
        case .invalidFile(let m): return .invalidFile(prefix + m)
        case .io(let m): return .io(prefix + m)
        case .outOfMemory(let m): return .outOfMemory(prefix + m)
        case .autograd(let m): return .autograd(prefix + m)
        case .diverged(let m): return .diverged(prefix + m)
        }
    }
}
