import CNNKernels

/// A weight matrix packed once into the SGEMM microkernel's panel order (`cnn_sgemm_pack_b`), for
/// the right operand `Wᵀ` of a fully connected layer. Immutable after creation.
final class PackedMatrix: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    let bytes: Int

    /// Packs `op(B) = Wᵀ` (`K = inputs`, `N = outputs`) of a weight `W` `[outputs, inputs]`.
    init(transposing weight: Tensor, inputs: Int, outputs: Int, name: String) throws {
        bytes = cnn_sgemm_packed_b_size(inputs, outputs)
        guard let p = cnn_aligned_alloc(bytes) else {
            throw CNNError.outOfMemory("compiled model: '\(name)': cannot allocate \(bytes) bytes of packed weights")
        }
        pointer = p
        do {
            try check(cnn_sgemm_pack_b(CNN_TRANS, inputs, outputs, weight.basePointer, inputs, p), "compiled model: '\(name)': packing the weights")
        } catch {
            cnn_aligned_free(p)
            throw error
        }
    }

    deinit { cnn_aligned_free(pointer) }
}

/// One call's intermediate buffers: the planned arena, owned by one call at a time.
final class InferenceArena: @unchecked Sendable {
    let base: UnsafeMutablePointer<Float>?

    init(floats: Int) throws {
        guard floats > 0 else { base = nil; return }
        guard let raw = cnn_aligned_alloc(floats * MemoryLayout<Float>.stride) else {
            throw CNNError.outOfMemory("compiled model: cannot allocate an arena of \(floats) floats")
        }
        base = raw.bindMemory(to: Float.self, capacity: floats)
    }

    deinit { if let base { cnn_aligned_free(base) } }
}

/// Where a value lives during a call: in the caller's input, the caller's output, or the arena,
/// `offset` floats in.
struct InferenceLocation: Sendable, Equatable {
    enum Base: Sendable { case input, output, arena }
    var base: Base
    var offset: Int
}

/// One executable operation of a compiled model.
struct InferenceStep: Sendable {
    enum Work: Sendable {
        /// `y = relu?(conv(x) + bias + residual)`; the residual, if any, is input 1. With
        /// `maxPool2x2`, `y` is that output's 2x2, stride-2 max pool (no residual then).
        case convolution(ConvolutionPlan, bias: Tensor?, relu: Bool, maxPool2x2: Bool)
        /// `y = relu?(x Wᵀ + b)`, `x` `[batch, inputs]`: small batches read `W` in place (the GEMV
        /// and dot paths of `cnn_sgemm` stream it once), larger ones use the packed `Wᵀ`.
        case linear(weight: Tensor?, packed: PackedMatrix?, bias: Tensor?, relu: Bool, batch: Int, inputs: Int, outputs: Int)
        case batchNorm(weight: Tensor, bias: Tensor, mean: Tensor, variance: Tensor, epsilon: Float, n: Int, c: Int, plane: Int)
        case relu(count: Int)
        case leakyRelu(slope: Float, count: Int)
        case add(relu: Bool, count: Int)
        case maxPool(InferenceGraph.Pool, n: Int, c: Int, h: Int, w: Int)
        case avgPool(InferenceGraph.Pool, n: Int, c: Int, h: Int, w: Int)
        case adaptiveAvgPool(n: Int, c: Int, h: Int, w: Int, outH: Int, outW: Int)
        case localResponseNorm(size: Int, alpha: Float, beta: Float, k: Float, n: Int, c: Int, plane: Int)
        /// Channel concatenation of `[n, channels[i], plane]` inputs; `inPlace[i]` inputs were
        /// written into their slice by their producer and are skipped.
        case concat(n: Int, plane: Int, channels: [Int], inPlace: [Bool])
        case copy(count: Int)
    }

    var work: Work
    var inputs: [InferenceLocation]
    var output: InferenceLocation
}

/// The one place the inference code calls the C kernels.
enum InferenceKernels {
    static func now() -> Double { cnn_now() }

    static func foldBatchNorm(k: Int, perK: Int, weight: UnsafeMutablePointer<Float>, bias: UnsafeMutablePointer<Float>,
                              gamma: Tensor, beta: Tensor, mean: Tensor, variance: Tensor, epsilon: Float) throws {
        try check(cnn_batchnorm_fold(Int64(k), Int64(perK), weight, bias, gamma.basePointer, beta.basePointer,
                                     mean.basePointer, variance.basePointer, epsilon), "compiled model: folding batch norm")
    }

    private static func poolShape(_ p: InferenceGraph.Pool, n: Int, c: Int, h: Int, w: Int) -> cnn_pool_shape {
        cnn_pool_shape(N: Int64(n), C: Int64(c), H: Int64(h), W: Int64(w), kernel_h: Int64(p.kernel.0), kernel_w: Int64(p.kernel.1),
                       stride_h: Int64(p.stride.0), stride_w: Int64(p.stride.1), pad_h: Int64(p.padding.0), pad_w: Int64(p.padding.1),
                       ceil_mode: p.ceilMode ? 1 : 0, count_include_pad: p.countIncludePad ? 1 : 0)
    }

    /// The pooled height and width, or a thrown error naming the layer.
    static func poolOutputSize(_ p: InferenceGraph.Pool, n: Int, c: Int, h: Int, w: Int, name: String) throws -> (Int, Int) {
        var s = poolShape(p, n: n, c: c, h: h, w: w)
        var oh: Int64 = 0, ow: Int64 = 0
        guard cnn_pool_output_size(&s, &oh, &ow) == CNN_OK, oh >= 1, ow >= 1 else {
            throw CNNError.shapeMismatch("compiled model: '\(name)': pooling window \(p.kernel.0)x\(p.kernel.1), stride \(p.stride.0), padding \(p.padding.0) does not fit input [\(n), \(c), \(h), \(w)]")
        }
        return (Int(oh), Int(ow))
    }

    /// Runs one step. `input`, `output` and `arena` are the call's three base pointers.
    static func run(_ step: InferenceStep, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                    arena: UnsafeMutablePointer<Float>?) throws {
        func at(_ l: InferenceLocation) -> UnsafeMutablePointer<Float> {
            switch l.base {
            case .input: return UnsafeMutablePointer(mutating: input) + l.offset  // only ever read
            case .output: return output + l.offset
            case .arena: return arena! + l.offset
            }
        }
        let x = at(step.inputs[0]), y = at(step.output)
        switch step.work {
        case .convolution(let plan, let bias, let relu, let maxPool2x2):
            if maxPool2x2 {
                try check(cnn_conv_plan_forward_maxpool2x2(plan.pointer, x, bias?.basePointer, relu ? 1 : 0, y),
                          "compiled model: conv2d \(plan.algorithm.rawValue) + maxpool 2x2 on \(plan.geometry)")
            } else {
                let residual = step.inputs.count > 1 ? at(step.inputs[1]) : nil
                try check(cnn_conv_plan_forward(plan.pointer, x, bias?.basePointer, residual, relu ? 1 : 0, y),
                          "compiled model: conv2d \(plan.algorithm.rawValue) on \(plan.geometry)")
            }
        case .linear(let weight, let packed, let bias, let relu, let batch, let inputs, let outputs):
            var ep = cnn_epilogue(bias: bias?.basePointer, bias_per_column: 1, residual: nil, residual_ld: 0, relu: relu ? 1 : 0)
            if let packed {
                try check(cnn_sgemm_packed_b(CNN_NO_TRANS, batch, outputs, inputs, 1, x, inputs, packed.pointer, 0, y, outputs, &ep),
                          "compiled model: linear \(inputs)->\(outputs)")
            } else if let weight {
                try check(cnn_sgemm(CNN_NO_TRANS, CNN_TRANS, batch, outputs, inputs, 1, x, inputs, weight.basePointer, inputs, 0,
                                    y, outputs, &ep), "compiled model: linear \(inputs)->\(outputs)")
            }
        case .batchNorm(let gamma, let beta, let mean, let variance, let eps, let n, let c, let plane):
            try check(cnn_batchnorm2d_forward_inference(Int64(n), Int64(c), Int64(plane), x, gamma.basePointer, beta.basePointer,
                                                        mean.basePointer, variance.basePointer, eps, y), "compiled model: batch norm")
        case .relu(let count):
            try check(cnn_relu_forward(Int64(count), x, y), "compiled model: relu")
        case .leakyRelu(let slope, let count):
            try check(cnn_leaky_relu_forward(Int64(count), slope, x, y), "compiled model: leaky relu")
        case .add(let relu, let count):
            try check(cnn_add(Int64(count), x, at(step.inputs[1]), y), "compiled model: add")
            if relu { try check(cnn_relu_forward(Int64(count), y, y), "compiled model: relu") }
        case .maxPool(let p, let n, let c, let h, let w):
            var s = poolShape(p, n: n, c: c, h: h, w: w)
            try check(cnn_maxpool2d_forward(&s, x, y, nil), "compiled model: max pool")
        case .avgPool(let p, let n, let c, let h, let w):
            var s = poolShape(p, n: n, c: c, h: h, w: w)
            try check(cnn_avgpool2d_forward(&s, x, y), "compiled model: average pool")
        case .adaptiveAvgPool(let n, let c, let h, let w, let oh, let ow):
            try check(cnn_adaptive_avgpool2d_forward(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oh), Int64(ow), x, y),
                      "compiled model: adaptive average pool")
        case .localResponseNorm(let size, let alpha, let beta, let k, let n, let c, let plane):
            try check(cnn_lrn_forward(Int64(n), Int64(c), Int64(plane), Int64(size), alpha, beta, k, x, y, nil),
                      "compiled model: local response norm")
        case .concat(let n, let plane, let channels, let inPlace):
            let total = channels.reduce(0, +)
            var offset = 0
            for (i, ch) in channels.enumerated() {
                defer { offset += ch }
                if inPlace[i] { continue }
                let src = at(step.inputs[i])
                for b in 0..<n {
                    (y + (b * total + offset) * plane).update(from: src + b * ch * plane, count: ch * plane)
                }
            }
        case .copy(let count):
            y.update(from: x, count: count)
        }
    }
}
