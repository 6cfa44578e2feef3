/// The intermediate form of an inference model: a straight-line list of operations over values, each
/// value a window of one storage (a buffer). Built by lowering a module tree
/// (`InferenceLowering.swift`), rewritten by the fusion passes below, then laid out in one arena
/// (`InferenceMemoryPlan`) and executed by ``InferenceModel``.
///
/// Values alias storages: `Flatten`, `Dropout` and `Identity` make a new value over the same storage
/// with another shape (no copy); with batch 1 an Inception branch's output is a channel slice of the
/// concatenated output's storage (NCHW with N = 1: channels `[c0, c0 + C)` are the contiguous floats
/// `[c0·H·W, (c0 + C)·H·W)`).
struct InferenceGraph {
    /// One tensor flowing through the graph: `shape` elements at `offset` floats into `storage`.
    struct Value {
        var shape: [Int]
        var storage: Int
        var offset: Int
        var count: Int { shape.reduce(1, *) }
    }

    /// A buffer. Storage 0 is the caller's input; the storage of the final value is the caller's
    /// output; every other storage is placed in the arena.
    struct Storage {
        var floats: Int
    }

    /// A convolution with everything fused into it: folded batch norm in `weight`/`bias`, an optional
    /// residual (input 1 of the operation) and ReLU.
    struct Convolution {
        var geometry: ConvolutionGeometry
        var weight: Tensor
        var bias: Tensor?
        /// The algorithm the layer asks for (resolved when the plan is made).
        var requested: ConvolutionAlgorithm
        var relu = false
        var residual = false
        /// A following 2x2, stride-2 max pool computed in the output transform (Winograd only):
        /// the operation's output is the pooled tensor.
        var maxPool2x2 = false
        /// The prepared weights, when a fusion pass already needed the resolved algorithm.
        var plan: ConvolutionPlan?
        /// What was folded or fused in, for the operation's description (`bn`, `add`, `relu`,
        /// `maxpool`).
        var fused: [String] = []
    }

    /// A fully connected layer `y = relu?(x Wᵀ + b)`.
    struct Linear {
        var weight: Tensor
        var bias: Tensor?
        var relu = false
        var fused: [String] = []
    }

    /// Pooling window (max or average), in PyTorch's terms.
    struct Pool {
        var kernel: (Int, Int)
        var stride: (Int, Int)
        var padding: (Int, Int)
        var ceilMode: Bool
        var countIncludePad: Bool
    }

    enum Kind {
        case convolution(Convolution)
        case linear(Linear)
        case batchNorm(weight: Tensor, bias: Tensor, mean: Tensor, variance: Tensor, epsilon: Float)
        case relu
        case leakyRelu(Float)
        /// `relu?(a + b)`, when it could not be fused into a convolution.
        case add(relu: Bool)
        case maxPool(Pool)
        case avgPool(Pool)
        case adaptiveAvgPool(Int, Int)
        case localResponseNorm(size: Int, alpha: Float, beta: Float, k: Float)
        /// Concatenation along the channels; inputs already placed in their slice are skipped.
        case concat
        /// A plain copy (only when the graph's output would otherwise be its input).
        case copy
    }

    struct Operation {
        var kind: Kind
        var inputs: [Int]
        var output: Int
        /// The module path (`layer1.0.conv1`).
        var name: String
    }

    var values: [Value] = []
    var storages: [Storage] = []
    var operations: [Operation] = []
    /// The value the graph returns.
    var result = 0

    /// Creates a graph whose value 0 is the input, in storage 0.
    init(inputShape: [Int]) {
        storages = [Storage(floats: inputShape.reduce(1, *))]
        values = [Value(shape: inputShape, storage: 0, offset: 0)]
    }

    /// A value in a fresh storage.
    mutating func newValue(_ shape: [Int]) -> Int {
        storages.append(Storage(floats: shape.reduce(1, *)))
        values.append(Value(shape: shape, storage: storages.count - 1, offset: 0))
        return values.count - 1
    }

    /// A value over the same storage as `value`, with another shape of the same element count.
    mutating func alias(_ value: Int, shape: [Int]) -> Int {
        var v = values[value]
        v.shape = shape
        values.append(v)
        return values.count - 1
    }

    /// Appends an operation writing a fresh value of `shape`, and returns that value.
    mutating func append(_ kind: Kind, inputs: [Int], shape: [Int], name: String) -> Int {
        let out = newValue(shape)
        operations.append(Operation(kind: kind, inputs: inputs, output: out, name: name))
        return out
    }

    // MARK: Fusion

    /// The index of the operation writing `value`, if any.
    func producer(of value: Int) -> Int? { operations.firstIndex { $0.output == value } }

    /// Operation `p`, now of `kind`, takes over operation `i`'s output, and `i` (which follows `p`)
    /// is removed: `i` was fused into `p`.
    mutating func absorb(_ i: Int, into p: Int, as kind: Kind) {
        operations[p].kind = kind
        operations[p].output = operations[i].output
        operations.remove(at: i)
    }

    /// Whether `value` may be rewritten away: it owns its storage alone, no other operation than
    /// `reader` reads it, and it is not the result.
    func isPrivate(_ value: Int, readBy reader: Int) -> Bool {
        guard value != result, value != 0 else { return false }
        let s = values[value].storage
        guard values.indices.filter({ values[$0].storage == s }).count == 1 else { return false }
        for (i, op) in operations.enumerated() where i != reader {
            if op.inputs.contains(where: { values[$0].storage == s }) { return false }
        }
        return operations[reader].inputs.filter { $0 == value }.count == 1
    }

    /// Folds every inference batch norm that directly follows a convolution into the convolution's
    /// weights and bias (`cnn_batchnorm_fold`): `w' = w·γ/√(σ²+ε)`, `b' = (b − μ)·γ/√(σ²+ε) + β`.
    mutating func foldBatchNorms() throws {
        var i = 0
        while i < operations.count {
            defer { i += 1 }
            guard case .batchNorm(let gamma, let beta, let mean, let variance, let eps) = operations[i].kind,
                  let p = producer(of: operations[i].inputs[0]), isPrivate(operations[i].inputs[0], readBy: i),
                  case .convolution(var conv) = operations[p].kind, !conv.relu, !conv.residual else { continue }
            let k = conv.geometry.outputChannels
            var bias = try conv.bias ?? Tensor(zeros: [k])
            let perK = conv.weight.count / k
            try conv.weight.withUnsafeMutableBufferPointer { w in
                try bias.withUnsafeMutableBufferPointer { b in
                    try InferenceKernels.foldBatchNorm(k: k, perK: perK, weight: w.baseAddress!, bias: b.baseAddress!,
                                                       gamma: gamma, beta: beta, mean: mean, variance: variance, epsilon: eps)
                }
            }
            conv.bias = bias
            conv.fused.append("bn")
            absorb(i, into: p, as: .convolution(conv))
            i -= 1
        }
    }

    /// Fuses each ReLU into the convolution, fully connected layer or addition writing its input.
    mutating func fuseReLUs() {
        var i = 0
        while i < operations.count {
            defer { i += 1 }
            guard case .relu = operations[i].kind, let p = producer(of: operations[i].inputs[0]),
                  isPrivate(operations[i].inputs[0], readBy: i) else { continue }
            switch operations[p].kind {
            case .convolution(var c) where !c.relu:
                c.relu = true; c.fused.append("relu"); absorb(i, into: p, as: .convolution(c))
            case .linear(var l) where !l.relu:
                l.relu = true; l.fused.append("relu"); absorb(i, into: p, as: .linear(l))
            case .add(relu: false):
                absorb(i, into: p, as: .add(relu: true))
            default:
                continue
            }
            i -= 1
        }
    }

    /// Fuses each addition `relu?(a + b)` into the convolution writing `a` (or `b`): the other operand
    /// becomes the convolution's residual, added in its epilogue. The convolution moves to the
    /// addition's place, where both operands exist; moving an operation later is always valid.
    mutating func fuseResidualAdditions() {
        var i = 0
        while i < operations.count {
            defer { i += 1 }
            guard case .add(let relu) = operations[i].kind else { continue }
            let (a, b) = (operations[i].inputs[0], operations[i].inputs[1])
            guard a != b else { continue }
            for (main, skip) in [(a, b), (b, a)] {
                guard let p = producer(of: main), isPrivate(main, readBy: i),
                      case .convolution(var c) = operations[p].kind, !c.relu, !c.residual else { continue }
                c.residual = true
                c.relu = relu
                c.fused += relu ? ["add", "relu"] : ["add"]
                var op = operations[p]
                op.kind = .convolution(c)
                op.inputs = [op.inputs[0], skip]
                op.output = operations[i].output
                operations[i] = op
                operations.remove(at: p)
                i -= 1
                break
            }
        }
    }

    /// Fuses each 2x2, stride-2, unpadded, floor-mode max pool into the convolution writing its input,
    /// where that convolution runs a Winograd algorithm (`cnn_conv_plan_fuses_maxpool2x2`): the
    /// output transform pools each tile, so the full-size output (VGG-16's 224x224x64: 12.8 MB) is
    /// neither written nor read back. The convolution's plan is made here (after batch-norm folding)
    /// to learn the algorithm it resolves to, and kept for the model.
    mutating func fuseMaxPools() throws {
        var i = 0
        while i < operations.count {
            defer { i += 1 }
            guard case .maxPool(let pool) = operations[i].kind, pool.kernel == (2, 2), pool.stride == (2, 2),
                  pool.padding == (0, 0), !pool.ceilMode, let p = producer(of: operations[i].inputs[0]),
                  isPrivate(operations[i].inputs[0], readBy: i),
                  case .convolution(var c) = operations[p].kind, !c.residual, !c.maxPool2x2 else { continue }
            let plan = try c.plan ?? ConvolutionPlan(algorithm: c.requested, geometry: c.geometry, weight: c.weight)
            c.plan = plan
            guard plan.fusesMaxPool2x2 else {
                operations[p].kind = .convolution(c)
                continue
            }
            c.maxPool2x2 = true
            c.fused.append("maxpool")
            absorb(i, into: p, as: .convolution(c))
            i -= 1
        }
    }

    /// With batch 1, lets each concatenated input be written straight into its channel slice of the
    /// concatenation's storage, so the copy disappears; a concatenation whose inputs are all in place
    /// is removed.
    mutating func placeConcatenationsInPlace() {
        var i = 0
        while i < operations.count {
            defer { i += 1 }
            guard case .concat = operations[i].kind else { continue }
            let out = values[operations[i].output]
            guard out.shape.first == 1 else { continue }
            let plane = out.shape.dropFirst(2).reduce(1, *)
            var channel = 0
            var allInPlace = true
            for input in operations[i].inputs {
                let channels = values[input].shape[1]
                defer { channel += channels }
                guard producer(of: input) != nil, values[input].offset == 0, isPrivate(input, readBy: i) else {
                    allInPlace = false
                    continue
                }
                values[input].storage = out.storage
                values[input].offset = out.offset + channel * plane
            }
            if allInPlace {
                // The output value now only names the filled storage: nothing to run.
                operations.remove(at: i)
                i -= 1
            }
        }
    }

    /// Operation `i` as a convolution that ``mergeSiblingPointwiseConvolutions()`` may merge: 1x1,
    /// stride 1, no padding, one group, batch 1, no residual or fused pool, no plan made yet.
    private func mergeablePointwise(_ i: Int) -> Convolution? {
        guard case .convolution(let c) = operations[i].kind, operations[i].inputs.count == 1,
              operations[i].output != result else { return nil }
        let g = c.geometry
        guard g.batch == 1, g.kernelHeight == 1, g.kernelWidth == 1, g.strideHeight == 1, g.strideWidth == 1,
              g.paddingHeight == 0, g.paddingWidth == 0, g.groups == 1, !c.residual, !c.maxPool2x2,
              c.plan == nil else { return nil }
        return c
    }

    /// Merges the 1x1 convolutions that read one value (an Inception module's three branch heads)
    /// into one convolution over their concatenated weights, at batch 1: one GEMM of `ΣK` rows
    /// instead of several thin ones (a 16-row head ran at 30-40 % of the peak), the input packed
    /// once. Each head's output becomes a channel slice of the merged output. A head already placed
    /// at the start of a concatenation's storage (branch 1) keeps its place: the other heads' slices
    /// go just before it, in room added at the front of that storage, so no copy comes back.
    /// Heads must agree on ReLU and on the requested algorithm. C harness, 2 threads, minimum of
    /// 100 calls (Zen 3 class AVX2, twelfth session): inception3a's heads 192 -> 64 + 96 + 16 at
    /// 28x28 0.48 -> 0.40 ms, inception4a's 480 -> 192 + 96 + 16 at 14x14 0.52 -> 0.42 ms.
    mutating func mergeSiblingPointwiseConvolutions() throws {
        let resultStorage = values[result].storage
        var i = 0
        while i < operations.count {
            defer { i += 1 }
            guard let first = mergeablePointwise(i) else { continue }
            let input = operations[i].inputs[0]
            var free: [(op: Int, conv: Convolution)] = [], anchored: (op: Int, conv: Convolution)?
            for j in i..<operations.count {
                guard operations[j].inputs == [input], let c = mergeablePointwise(j), c.relu == first.relu,
                      c.requested == first.requested else { continue }
                let out = values[operations[j].output]
                guard out.storage != 0, out.storage != resultStorage else { continue }
                if values.indices.filter({ values[$0].storage == out.storage }).count == 1 {
                    free.append((j, c))
                } else if anchored == nil, out.offset == 0 {
                    anchored = (j, c)
                }
            }
            let chosen = free + (anchored.map { [$0] } ?? [])
            let members = chosen.map(\.op), convs = chosen.map(\.conv)
            // The merged convolution takes the first member's place, where its input exists.
            guard members.count > 1, members.contains(i) else { continue }
            let g = first.geometry
            let plane = g.height * g.width
            let channels = convs.map(\.geometry.outputChannels)
            let total = channels.reduce(0, +)
            var weights: [Float] = [], biases: [Float] = []
            for c in convs {
                weights += c.weight.scalars
                biases += c.bias?.scalars ?? [Float](repeating: 0, count: c.geometry.outputChannels)
            }
            var merged = first
            merged.geometry.outputChannels = total
            merged.weight = try Tensor(shape: [total, g.inputChannels, 1, 1], scalars: weights)
            merged.bias = convs.contains { $0.bias != nil } ? try Tensor(shape: [total], scalars: biases) : nil
            merged.fused.append("merge\(members.count)")
            // Where the merged output lives: in front of the anchored head, or in a storage of its own.
            let outShape = [1, total, values[operations[i].output].shape[2], values[operations[i].output].shape[3]]
            let mergedValue: Int
            if let a = anchored?.op {
                let storage = values[operations[a].output].storage
                let room = (total - channels.last!) * plane
                for v in values.indices where values[v].storage == storage { values[v].offset += room }
                storages[storage].floats += room
                values.append(Value(shape: outShape, storage: storage, offset: 0))
                mergedValue = values.count - 1
            } else {
                mergedValue = newValue(outShape)
            }
            var channel = 0
            for (j, k) in zip(members, channels) {
                let out = operations[j].output
                values[out].storage = values[mergedValue].storage
                values[out].offset = values[mergedValue].offset + channel * plane
                channel += k
            }
            operations[i] = Operation(kind: .convolution(merged), inputs: [input], output: mergedValue,
                                      name: members.map { operations[$0].name }.joined(separator: " + "))
            for j in members.sorted(by: >) where j != i { operations.remove(at: j) }
        }
    }

    /// Runs every rewrite, in the order they depend on each other.
    mutating func optimize() throws {
        try foldBatchNorms()
        fuseReLUs()
        fuseResidualAdditions()
        try fuseMaxPools()
        placeConcatenationsInPlace()
        try mergeSiblingPointwiseConvolutions()
    }
}

/// Where each storage lives in one arena: storages whose lifetimes (first write to last read, in
/// operation order) overlap never share bytes; the others reuse them. Greedy by size, largest first,
/// each at the lowest offset free over its lifetime (the "greedy by size" strategy of TensorFlow
/// Lite's arena planner), 64-byte aligned.
struct InferenceMemoryPlan {
    /// Float offset of each storage in the arena; `nil` for the input, the output and unused ones.
    var offsets: [Int?]
    /// Arena size in floats.
    var floats: Int

    init(graph: InferenceGraph, inputStorage: Int, outputStorage: Int) {
        let n = graph.storages.count
        var first = [Int](repeating: Int.max, count: n), last = [Int](repeating: -1, count: n)
        for (i, op) in graph.operations.enumerated() {
            let w = graph.values[op.output].storage
            first[w] = min(first[w], i); last[w] = max(last[w], i)
            for input in op.inputs {
                let r = graph.values[input].storage
                first[r] = min(first[r], i); last[r] = max(last[r], i)
            }
        }
        let align = 16
        let candidates = (0..<n).filter { $0 != inputStorage && $0 != outputStorage && last[$0] >= 0 }
            .sorted { (graph.storages[$0].floats, $1) > (graph.storages[$1].floats, $0) }
        var placed: [(storage: Int, offset: Int, size: Int)] = []
        var offsets = [Int?](repeating: nil, count: n)
        var total = 0
        for s in candidates {
            let size = (graph.storages[s].floats + align - 1) / align * align
            let conflicts = placed.filter { first[$0.storage] <= last[s] && first[s] <= last[$0.storage] }
                .sorted { $0.offset < $1.offset }
            var offset = 0
            for c in conflicts where offset + size > c.offset {
                offset = max(offset, c.offset + c.size)
            }
            placed.append((s, offset, size))
            offsets[s] = offset
            total = max(total, offset + size)
        }
        self.offsets = offsets
        self.floats = total
    }
}
