import Synchronization

/// One operation of a compiled model, as ``InferenceModel/operations`` lists it.
public struct InferenceOperation: Sendable, CustomStringConvertible {
    /// The module path of the layer (`layer1.0.conv2`); fused layers are named after the first.
    public let name: String
    /// The operation: `conv2d`, `linear`, `maxpool`, `avgpool`, `adaptive-avgpool`, `batchnorm`,
    /// `relu`, `leaky-relu`, `add`, `lrn`, `concat` or `copy`.
    public let kind: String
    /// The algorithm and what was fused in, e.g. `3x3 s1 winograd4x4 +bn +add +relu`.
    public let detail: String
    /// The shape the operation writes.
    public let outputShape: [Int]
    /// Multiply-accumulates of the direct computation (convolutions and fully connected layers; 0
    /// for the others).
    public let multiplyAccumulates: Int

    /// `layer1.0.conv2  conv2d  3x3 s1 winograd4x4 +bn +add +relu  -> [1, 64, 56, 56]`.
    public var description: String { "\(name)  \(kind)  \(detail)  -> \(outputShape)" }
}

/// The time one operation took in ``InferenceModel/profile(_:)``.
public struct InferenceLayerTiming: Sendable {
    /// The operation.
    public let operation: InferenceOperation
    /// Its wall-clock time in milliseconds.
    public let milliseconds: Double
}

/// A model compiled for fast inference at one input shape, made by
/// ``Module/compiled(inputShape:algorithm:)``.
///
/// What compiling does, once: the module tree is lowered to a straight list of operations; every
/// batch norm following a convolution is folded into the convolution's weights and bias; ReLUs and
/// residual additions become the convolution's fused epilogue (`relu(conv(x) + bias + residual)`);
/// each convolution's weights are prepared for its algorithm (GEMM panels, Winograd transforms) in a
/// ``ConvolutionPlan``; fully connected weights are packed for batches above 8; dropout and identity
/// pooling disappear; with batch 1, each Inception branch writes straight into its channel slice of
/// the concatenated output. Every intermediate buffer is then given an offset in one arena by a
/// liveness plan (buffers whose lifetimes do not overlap share bytes), so a call allocates nothing
/// but its result tensor (and nothing at all through ``predict(_:into:)``).
///
/// The weights are a snapshot: changing the module afterwards does not change the compiled model.
/// The results equal the module's evaluation-mode forward within float rounding (about 1e-6
/// relative; Winograd algorithms add their own error, see ``ConvolutionAlgorithm``).
///
/// Concurrency: the type is `Sendable` and may be called from many tasks at once. Everything a call
/// writes lives in an arena that the call takes from a pool for its duration, so concurrent calls
/// never share buffers; the pool grows to the largest number of simultaneous calls and keeps its
/// arenas for reuse. Each call gives the same result as the same call made alone.
///
/// The prepared weights are laid out for the instruction-set variant active when compiling; a call
/// made after ``ComputeRuntime/setISA(_:)`` switched to another throws (compile again).
public final class InferenceModel: Sendable {
    /// The input shape the model was compiled for.
    public let inputShape: [Int]
    /// The shape of every result.
    public let outputShape: [Int]
    /// The operations, in the order they run.
    public let operations: [InferenceOperation]
    /// Bytes of one call's arena (every intermediate buffer, after reuse).
    public let arenaByteCount: Int
    /// Bytes of the prepared weights: convolution plans (packed or transformed) and fully connected
    /// weights.
    public let weightByteCount: Int
    /// The instruction-set variant the weights were prepared for.
    public let isa: ISA

    let steps: [InferenceStep]
    private let arenaFloats: Int
    private let idleArenas = Mutex<[InferenceArena]>([])
    private let arenasCreated = Atomic<Int>(0)

    /// How many arenas the model has allocated so far (one per simultaneous call at the peak).
    var arenaAllocationCount: Int { arenasCreated.load(ordering: .relaxed) }

    init(module: Module, inputShape: [Int], algorithm: ConvolutionAlgorithm?) throws {
        guard !inputShape.isEmpty, inputShape.allSatisfy({ $0 >= 1 }) else {
            throw CNNError.invalidArgument("compiled(inputShape:): input shape \(inputShape) must have positive dimensions")
        }
        _ = try Tensor.elementCount(of: inputShape, operation: "compiled(inputShape:)")
        if let (name, m) = module.namedModules().first(where: { $0.1.isTraining }) {
            throw CNNError.invalidArgument("compiled(inputShape:): module '\(name.isEmpty ? "<root>" : name)' (\(type(of: m))) is in training mode; call eval() first: the compiled model computes the evaluation-mode forward")
        }
        var lowering = InferenceLowering(inputShape: inputShape, algorithm: algorithm)
        let result = try lowering.lower(module, 0, name: "")
        var graph = lowering.graph
        graph.result = result
        try graph.optimize()
        // The result must fill a storage of its own, which becomes the caller's output buffer.
        let r = graph.values[graph.result]
        if r.storage == 0 || r.offset != 0 || r.count != graph.storages[r.storage].floats {
            graph.result = graph.append(.copy, inputs: [graph.result], shape: r.shape, name: "output")
        }
        let outputStorage = graph.values[graph.result].storage
        let memory = InferenceMemoryPlan(graph: graph, inputStorage: 0, outputStorage: outputStorage)

        func location(_ v: Int) -> InferenceLocation {
            let value = graph.values[v]
            if value.storage == 0 { return InferenceLocation(base: .input, offset: value.offset) }
            if value.storage == outputStorage { return InferenceLocation(base: .output, offset: value.offset) }
            return InferenceLocation(base: .arena, offset: memory.offsets[value.storage]! + value.offset)
        }

        var steps: [InferenceStep] = []
        var infos: [InferenceOperation] = []
        var weightBytes = 0
        for op in graph.operations {
            let inShape = graph.values[op.inputs[0]].shape
            let outShape = graph.values[op.output].shape
            let count = outShape.reduce(1, *)
            let work: InferenceStep.Work
            var kind: String, detail = "", macs = 0
            switch op.kind {
            case .convolution(let c):
                let plan: ConvolutionPlan
                do { plan = try c.plan ?? ConvolutionPlan(algorithm: c.requested, geometry: c.geometry, weight: c.weight) } catch let e as CNNError {
                    throw CNNError.unsupported("compiled model: '\(op.name)': \(e.message)")
                }
                weightBytes += plan.weightBytes + (c.bias?.count ?? 0) * 4
                work = .convolution(plan, bias: c.bias, relu: c.relu, maxPool2x2: c.maxPool2x2)
                kind = "conv2d"
                let g = c.geometry
                detail = "\(g.kernelHeight)x\(g.kernelWidth) s\(g.strideHeight)" + (g.groups > 1 ? " g\(g.groups)" : "") +
                    " \(plan.algorithm.rawValue)" + c.fused.map { " +\($0)" }.joined()
                macs = g.multiplyAccumulates
            case .linear(let l):
                let (batch, inputs, outputs) = (inShape[0], inShape[1], outShape[1])
                // Up to 8 rows, cnn_sgemm streams W in place (GEMV / dot form): packing gains nothing
                // and would double the memory of VGG's 400 MB classifier while the module lives.
                let packed = batch > 8 ? try PackedMatrix(transposing: l.weight, inputs: inputs, outputs: outputs, name: op.name) : nil
                weightBytes += (packed?.bytes ?? l.weight.count * 4) + (l.bias?.count ?? 0) * 4
                work = .linear(weight: packed == nil ? l.weight : nil, packed: packed, bias: l.bias, relu: l.relu,
                               batch: batch, inputs: inputs, outputs: outputs)
                kind = "linear"
                detail = "\(inputs)->\(outputs)" + (packed != nil ? " packed" : "") + l.fused.map { " +\($0)" }.joined()
                macs = batch * inputs * outputs
            case .batchNorm(let w, let b, let m, let v, let eps):
                work = .batchNorm(weight: w, bias: b, mean: m, variance: v, epsilon: eps, n: inShape[0], c: inShape[1],
                                  plane: inShape.dropFirst(2).reduce(1, *))
                kind = "batchnorm"
            case .relu:
                work = .relu(count: count); kind = "relu"
            case .leakyRelu(let slope):
                work = .leakyRelu(slope: slope, count: count); kind = "leaky-relu"
            case .add(let relu):
                work = .add(relu: relu, count: count); kind = "add"; detail = relu ? "+relu" : ""
            case .maxPool(let p):
                work = .maxPool(p, n: inShape[0], c: inShape[1], h: inShape[2], w: inShape[3]); kind = "maxpool"
                detail = "\(p.kernel.0)x\(p.kernel.1) s\(p.stride.0)"
            case .avgPool(let p):
                work = .avgPool(p, n: inShape[0], c: inShape[1], h: inShape[2], w: inShape[3]); kind = "avgpool"
                detail = "\(p.kernel.0)x\(p.kernel.1) s\(p.stride.0)"
            case .adaptiveAvgPool(let oh, let ow):
                work = .adaptiveAvgPool(n: inShape[0], c: inShape[1], h: inShape[2], w: inShape[3], outH: oh, outW: ow)
                kind = "adaptive-avgpool"; detail = "-> \(oh)x\(ow)"
            case .localResponseNorm(let size, let alpha, let beta, let k):
                work = .localResponseNorm(size: size, alpha: alpha, beta: beta, k: k, n: inShape[0], c: inShape[1],
                                          plane: inShape.dropFirst(2).reduce(1, *))
                kind = "lrn"
            case .concat:
                let out = location(op.output)
                let plane = outShape.dropFirst(2).reduce(1, *)
                var channel = 0
                var inPlace: [Bool] = []
                for input in op.inputs {
                    inPlace.append(location(input) == InferenceLocation(base: out.base, offset: out.offset + channel * plane) && outShape[0] == 1)
                    channel += graph.values[input].shape[1]
                }
                work = .concat(n: outShape[0], plane: plane, channels: op.inputs.map { graph.values[$0].shape[1] }, inPlace: inPlace)
                kind = "concat"; detail = "\(inPlace.filter { !$0 }.count) of \(inPlace.count) copied"
            case .copy:
                work = .copy(count: count); kind = "copy"
            }
            steps.append(InferenceStep(work: work, inputs: op.inputs.map(location), output: location(op.output)))
            infos.append(InferenceOperation(name: op.name, kind: kind, detail: detail, outputShape: outShape, multiplyAccumulates: macs))
        }
        self.inputShape = inputShape
        self.outputShape = graph.values[graph.result].shape
        self.steps = steps
        self.operations = infos
        self.arenaFloats = memory.floats
        self.arenaByteCount = memory.floats * MemoryLayout<Float>.stride
        self.weightByteCount = weightBytes
        self.isa = ComputeRuntime.activeISA
    }

    /// Multiply-accumulates of one call (convolutions and fully connected layers, direct counting).
    public var multiplyAccumulates: Int { operations.reduce(0) { $0 + $1.multiplyAccumulates } }

    /// Runs the model on `input` (of ``inputShape``) and returns a new tensor of ``outputShape``.
    ///
    /// - Throws: ``CNNError/shapeMismatch(_:)`` for an input of another shape;
    ///   ``CNNError/invalidArgument(_:)`` when the active instruction-set variant is not ``isa``.
    public func callAsFunction(_ input: Tensor) throws -> Tensor {
        var output = try Tensor(uninitializedShape: outputShape)
        try predict(input, into: &output)
        return output
    }

    /// Runs the model on `input`, writing the result into `output` (of ``outputShape``): the
    /// allocation-free form.
    ///
    /// - Throws: ``CNNError/shapeMismatch(_:)`` when a shape differs from the compiled ones;
    ///   ``CNNError/invalidArgument(_:)`` when the active instruction-set variant is not ``isa``.
    public func predict(_ input: Tensor, into output: inout Tensor) throws {
        guard output.shape == outputShape else {
            throw CNNError.shapeMismatch("compiled model: output shape \(output.shape) is not the model's \(outputShape)")
        }
        try output.withUnsafeMutableBufferPointer { out in
            try execute(input, output: out.baseAddress!, timings: nil)
        }
    }

    /// Runs the model once, timing every operation (the first call of a model includes one-off
    /// costs such as allocating its arena: profile after a warm-up call).
    public func profile(_ input: Tensor) throws -> [InferenceLayerTiming] {
        let output = try Tensor(uninitializedShape: outputShape)
        var times = [Double](repeating: 0, count: steps.count)
        try times.withUnsafeMutableBufferPointer { t in
            try execute(input, output: output.basePointer, timings: t.baseAddress!)
        }
        return zip(operations, times).map { InferenceLayerTiming(operation: $0, milliseconds: $1 * 1000) }
    }

    private func execute(_ input: Tensor, output: UnsafeMutablePointer<Float>, timings: UnsafeMutablePointer<Double>?) throws {
        guard input.shape == inputShape else {
            throw CNNError.shapeMismatch("compiled model: input shape \(input.shape) is not the compiled \(inputShape)")
        }
        let active = ComputeRuntime.activeISA
        guard active == isa else {
            throw CNNError.invalidArgument("compiled model: prepared for instruction set \(isa) but \(active) is active; compile the model again")
        }
        let arena = try idleArenas.withLock { $0.popLast() } ?? makeArena()
        defer { idleArenas.withLock { $0.append(arena) } }
        try withExtendedLifetime(input) {
            let x = UnsafePointer(input.basePointer)
            for (i, step) in steps.enumerated() {
                let t0 = timings == nil ? 0 : InferenceKernels.now()
                try InferenceKernels.run(step, input: x, output: output, arena: arena.base)
                if let timings { timings[i] = InferenceKernels.now() - t0 }
            }
        }
    }

    private func makeArena() throws -> InferenceArena {
        let arena = try InferenceArena(floats: arenaFloats)
        arenasCreated.add(1, ordering: .relaxed)
        return arena
    }
}

extension Module {
    /// Compiles this module's evaluation-mode forward pass for inputs of `inputShape` into an
    /// ``InferenceModel``: batch norm folded, ReLU and residual additions fused into the
    /// convolutions, weights prepared once, every intermediate buffer planned in one reused arena.
    ///
    /// ```swift
    /// let model = try ModelZoo.make(name: "resnet50")
    /// model.eval()
    /// let fast = try model.compiled(inputShape: [1, 3, 224, 224])
    /// let logits = try fast(image)            // [1, 1000]
    /// ```
    ///
    /// - Parameters:
    ///   - inputShape: the shape every call's input will have (batch included).
    ///   - algorithm: the convolution algorithm: `nil` uses each layer's own choice as the eager
    ///     forward would (``Conv2d/algorithm``, else ``ConvolutionAlgorithm/defaultAlgorithm``);
    ///     `.auto` the shape heuristic for every layer; `.autotune` the fastest measured per layer
    ///     (``ConvolutionAutotuner``); a concrete algorithm is used wherever it applies and the
    ///     heuristic elsewhere (`.winograd4x4` runs every 3x3 stride-1 layer with Winograd).
    /// - Throws: ``CNNError/invalidArgument(_:)`` when a module is in training mode (call
    ///   ``eval()`` first) or the shape is not positive; ``CNNError/unsupported(_:)`` naming the
    ///   path and type of a module the compiler does not know (it never falls back to the eager
    ///   forward); ``CNNError/shapeMismatch(_:)`` naming the layer whose input does not fit.
    public func compiled(inputShape: [Int], algorithm: ConvolutionAlgorithm? = nil) throws -> InferenceModel {
        try InferenceModel(module: self, inputShape: inputShape, algorithm: algorithm)
    }
}
