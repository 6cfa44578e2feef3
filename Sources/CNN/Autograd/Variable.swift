/// A node of the autograd graph: a tensor value, and — when it was produced by a recorded
/// operation — the record of how to send gradients back to that operation's inputs.
///
/// Parameters (weights, biases) are leaf variables with `requiresGradient == true`; their
/// ``gradient`` accumulates over backward passes until cleared with ``zeroGradient()``.
/// Intermediate values carry their record only in training mode with gradients enabled
/// (see ``GradientMode``); in inference mode nothing is recorded and nothing is retained.
///
/// A `Variable` is a reference type and is not `Sendable`: a graph belongs to one task.
public final class Variable {
    /// The current value.
    public var value: Tensor
    /// The accumulated gradient of a leaf that requires one (`nil` until the first backward pass).
    public var gradient: Tensor?
    /// Whether gradients flow to (leaf) or through (recorded result) this variable.
    public let requiresGradient: Bool
    /// How this value was computed, for the backward pass; `nil` for leaves and unrecorded values.
    var record: GradientRecord?
    /// Incremented whenever ``value`` is replaced or updated in place through the API, so caches
    /// derived from the value (packed or Winograd-transformed weights) know when to rebuild.
    public private(set) var version: Int = 0

    /// A leaf variable.
    ///
    /// - Parameters:
    ///   - value: the tensor.
    ///   - requiresGradient: `true` for a trainable parameter.
    public init(_ value: Tensor, requiresGradient: Bool = false) {
        self.value = value
        self.requiresGradient = requiresGradient
    }

    init(value: Tensor, record: GradientRecord) {
        self.value = value
        self.requiresGradient = true
        self.record = record
    }

    /// The shape of the value.
    public var shape: [Int] { value.shape }

    /// Whether this variable is a leaf (not the result of a recorded operation).
    public var isLeaf: Bool { record == nil }

    /// Clears the accumulated gradient.
    public func zeroGradient() { gradient = nil }

    /// Replaces the value (e.g. when loading weights); bumps ``version``.
    public func assign(_ newValue: Tensor) throws {
        guard newValue.shape == value.shape else {
            throw CNNError.shapeMismatch("assign: new value of shape \(newValue.shape) does not match \(value.shape)")
        }
        value = newValue
        version &+= 1
    }

    /// Updates the value in place (optimizers); bumps ``version``.
    public func update(_ body: (inout Tensor) throws -> Void) rethrows {
        try body(&value)
        version &+= 1
    }

    /// Marks the value as changed after it was modified through `value` directly.
    public func markChanged() { version &+= 1 }

    /// The value, detached from the graph.
    public func detached() -> Variable { Variable(value) }

    func accumulate(_ g: Tensor) throws {
        if var existing = gradient {
            try existing.add(g)
            gradient = existing
        } else {
            gradient = g
        }
    }
}

/// The record one operation leaves for the backward pass.
final class GradientRecord {
    let operation: String
    let inputs: [Variable]
    /// Given the gradient of the output, returns the gradient of each input (`nil` where an input
    /// needs none). Set to `nil` once consumed, which frees what it captured.
    var backward: ((Tensor) throws -> [Tensor?])?

    init(operation: String, inputs: [Variable], backward: @escaping (Tensor) throws -> [Tensor?]) {
        self.operation = operation
        self.inputs = inputs
        self.backward = backward
    }
}

/// Whether operations record what their backward pass needs.
///
/// Recording is on by default. Inference code turns it off with ``withoutGradients(_:)-28obh``; a module
/// in eval mode still records if its inputs require gradients (as in PyTorch), so wrap inference in
/// `withoutGradients` to avoid retaining anything.
public enum GradientMode {
    @TaskLocal static var enabled = true

    /// Whether recording is enabled in the current task.
    public static var isEnabled: Bool { enabled }

    /// Runs `body` with recording disabled.
    public static func withoutGradients<R>(_ body: () throws -> R) rethrows -> R {
        try $enabled.withValue(false) { try body() }
    }

    /// Runs `body` with recording disabled (async).
    public static func withoutGradients<R>(_ body: () async throws -> R) async rethrows -> R {
        try await $enabled.withValue(false) { try await body() }
    }
}

extension Variable {
    /// Builds the result of an operation: recorded when gradients are enabled and any input needs one.
    static func result(_ value: Tensor, operation: String, inputs: [Variable],
                       backward: @escaping (Tensor) throws -> [Tensor?]) -> Variable {
        guard GradientMode.enabled, inputs.contains(where: { $0.requiresGradient }) else {
            return Variable(value)
        }
        return Variable(value: value, record: GradientRecord(operation: operation, inputs: inputs, backward: backward))
    }

    /// Runs the backward pass from this scalar: gradients flow to every leaf that requires one and
    /// accumulate (`+=`) into their ``gradient``.
    ///
    /// The record is consumed: what operations saved for the backward pass is released, and a
    /// second call through the same record throws.
    /// - Parameter seed: the gradient of the final output; defaults to 1 for a one-element value.
    /// - Throws: ``CNNError/autograd(_:)`` for a non-scalar without a seed, a seed of the wrong
    ///   shape, or a graph already consumed.
    public func backward(seed: Tensor? = nil) throws {
        try backward(seed: seed, onGradientReady: nil)
    }

    /// ``backward(seed:)`` that also reports, during the walk, each leaf whose gradient is final:
    /// `onGradientReady(leaf)` is called once per leaf that requires a gradient and is reached by
    /// the graph, right after its last contribution has been accumulated (a leaf used by several
    /// operations, like a shared weight, after the last of them). Leaves outside the graph are not
    /// reported. What data-parallel training uses to start reducing gradients while the rest of
    /// the backward pass runs (PyTorch DDP's autograd hooks).
    ///
    /// Before the walk, the edges from recorded operations to each leaf are counted; each edge
    /// counts down when its operation has run (or was skipped because no gradient reached it), so
    /// a leaf is reported even where an operation returned no gradient for it (its ``gradient``
    /// may then be `nil`).
    func backward(seed: Tensor?, onGradientReady: ((Variable) throws -> Void)?) throws {
        let start: Tensor
        if let seed {
            guard seed.shape == value.shape else {
                throw CNNError.autograd("backward: seed of shape \(seed.shape) does not match the value's shape \(value.shape)")
            }
            start = seed
        } else {
            guard value.count == 1 else {
                throw CNNError.autograd("backward: value of shape \(value.shape) is not a scalar; pass a seed gradient")
            }
            start = try Tensor(repeating: 1, shape: value.shape)
        }
        guard requiresGradient else {
            throw CNNError.autograd("backward: the value does not depend on anything that requires a gradient")
        }
        guard let rootRecord = record else {
            try accumulate(start)
            try onGradientReady?(self)
            return
        }
        guard rootRecord.backward != nil else {
            throw CNNError.autograd("backward: this graph was already used by an earlier backward pass (operation \(rootRecord.operation)); run the forward pass again")
        }
        // Reverse topological order by depth-first post-order over records.
        var order: [Variable] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Variable, Bool)] = [(self, false)]
        while let (v, expanded) = stack.popLast() {
            if expanded { order.append(v); continue }
            guard v.record != nil, !visited.contains(ObjectIdentifier(v)) else { continue }
            visited.insert(ObjectIdentifier(v))
            stack.append((v, true))
            for input in v.record!.inputs where input.record != nil && !visited.contains(ObjectIdentifier(input)) {
                stack.append((input, false))
            }
        }
        for v in order where v.record?.backward == nil {
            throw CNNError.autograd("backward: part of this graph (operation \(v.record!.operation)) was already used by an earlier backward pass")
        }
        // Edges still to run into each leaf that requires a gradient (only when reporting).
        var leafEdges: [ObjectIdentifier: Int] = [:]
        if onGradientReady != nil {
            for v in order {
                for input in v.record!.inputs where input.record == nil && input.requiresGradient {
                    leafEdges[ObjectIdentifier(input), default: 0] += 1
                }
            }
        }
        /// Counts down `rec`'s edges into leaves and reports the leaves that have no edge left.
        func edgesDone(_ rec: GradientRecord) throws {
            guard let onGradientReady else { return }
            for input in rec.inputs where input.record == nil && input.requiresGradient {
                let key = ObjectIdentifier(input)
                let left = leafEdges[key]! - 1
                leafEdges[key] = left
                if left == 0 { try onGradientReady(input) }
            }
        }
        var pending: [ObjectIdentifier: Tensor] = [ObjectIdentifier(self): start]
        for v in order.reversed() {
            let id = ObjectIdentifier(v)
            guard let g = pending.removeValue(forKey: id), let rec = v.record, let fn = rec.backward else {
                // No gradient reached this operation: its leaves get nothing from it.
                if let rec = v.record { try edgesDone(rec) }
                continue
            }
            let grads = try fn(g)
            rec.backward = nil
            for (input, grad) in zip(rec.inputs, grads) {
                guard let grad, input.requiresGradient else { continue }
                guard grad.shape == input.value.shape else {
                    throw CNNError.autograd("backward of \(rec.operation): gradient shape \(grad.shape) does not match input shape \(input.value.shape)")
                }
                if input.record != nil {
                    let key = ObjectIdentifier(input)
                    if var existing = pending[key] {
                        try existing.add(grad)
                        pending[key] = existing
                    } else {
                        pending[key] = grad
                    }
                } else {
                    try input.accumulate(grad)
                }
            }
            try edgesDone(rec)
        }
    }
}

/// A custom differentiable operation defined outside the package: a forward function on tensors
/// and a backward function that maps the output gradient to one gradient per input.
///
/// ```swift
/// let square = CustomOperation(name: "square",
///     forward: { inputs in inputs[0].map { $0 * $0 } },
///     backward: { inputs, output, gradient in [try gradient * (inputs[0] * 2)] })
/// let y = try square([x])
/// ```
public struct CustomOperation {
    /// A name used in error messages.
    public let name: String
    let forward: ([Tensor]) throws -> Tensor
    let backward: ([Tensor], Tensor, Tensor) throws -> [Tensor?]

    /// Creates an operation.
    /// - Parameters:
    ///   - name: the name used in error messages.
    ///   - forward: computes the output from the inputs' values.
    ///   - backward: given the inputs' values, the output and the output's gradient, returns the
    ///     gradient for each input (`nil` where none is needed), each of its input's shape.
    public init(name: String, forward: @escaping ([Tensor]) throws -> Tensor,
                backward: @escaping (_ inputs: [Tensor], _ output: Tensor, _ outputGradient: Tensor) throws -> [Tensor?]) {
        self.name = name
        self.forward = forward
        self.backward = backward
    }

    /// Applies the operation, recording it for the backward pass when needed.
    public func callAsFunction(_ inputs: [Variable]) throws -> Variable {
        let values = inputs.map(\.value)
        let out = try forward(values)
        let bw = backward
        let name = self.name
        return Variable.result(out, operation: name, inputs: inputs) { g in
            let grads = try bw(values, out, g)
            guard grads.count == inputs.count else {
                throw CNNError.autograd("custom operation \(name): backward returned \(grads.count) gradients for \(inputs.count) inputs")
            }
            return grads
        }
    }
}
