import CNNKernels

extension Functional {
    static func poolShape(_ x: Tensor, kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int),
                          ceilMode: Bool, countIncludePad: Bool, operation: String) throws -> (cnn_pool_shape, [Int]) {
        guard x.rank == 4 else { throw CNNError.shapeMismatch("\(operation): input must be [N, C, H, W], got \(x.shape)") }
        guard kernel.0 >= 1, kernel.1 >= 1 else {
            throw CNNError.invalidArgument("\(operation): kernel size \(kernel.0)x\(kernel.1) must be positive")
        }
        guard stride.0 >= 1, stride.1 >= 1 else {
            throw CNNError.invalidArgument("\(operation): stride (\(stride.0), \(stride.1)) must be at least 1")
        }
        guard padding.0 >= 0, padding.1 >= 0, padding.0 <= kernel.0 / 2, padding.1 <= kernel.1 / 2 else {
            throw CNNError.invalidArgument("\(operation): padding (\(padding.0), \(padding.1)) must be between 0 and half the kernel size \(kernel.0)x\(kernel.1)")
        }
        var s = cnn_pool_shape(N: Int64(x.shape[0]), C: Int64(x.shape[1]), H: Int64(x.shape[2]), W: Int64(x.shape[3]),
                               kernel_h: Int64(kernel.0), kernel_w: Int64(kernel.1), stride_h: Int64(stride.0), stride_w: Int64(stride.1),
                               pad_h: Int64(padding.0), pad_w: Int64(padding.1), ceil_mode: ceilMode ? 1 : 0,
                               count_include_pad: countIncludePad ? 1 : 0)
        var p: Int64 = 0, q: Int64 = 0
        guard cnn_pool_output_size(&s, &p, &q) == CNN_OK, p >= 1, q >= 1 else {
            throw CNNError.shapeMismatch("\(operation): kernel \(kernel.0)x\(kernel.1) with padding (\(padding.0), \(padding.1)) does not fit input \(x.shape)")
        }
        return (s, [x.shape[0], x.shape[1], Int(p), Int(q)])
    }

    /// Max pooling over `kernel` windows; padding never wins; `ceilMode` rounds the output size up
    /// (PyTorch's rule: the last window must start inside the input or the left padding).
    public static func maxPool2d(_ x: Variable, kernel: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0),
                                 ceilMode: Bool = false) throws -> Variable {
        var (s, outShape) = try poolShape(x.value, kernel: kernel, stride: stride ?? kernel, padding: padding,
                                          ceilMode: ceilMode, countIncludePad: false, operation: "maxPool2d")
        let y = try Tensor(uninitializedShape: outShape)
        let record = GradientMode.enabled && x.requiresGradient
        var indices = [Int32](repeating: 0, count: record ? y.count : 0)
        try indices.withUnsafeMutableBufferPointer { ip in
            try check(cnn_maxpool2d_forward(&s, x.value.basePointer, y.basePointer, record ? ip.baseAddress : nil), "maxPool2d on \(x.shape)")
        }
        let inShape = x.shape
        return Variable.result(y, operation: "maxPool2d", inputs: [x]) { dy in
            let dx = try Tensor(uninitializedShape: inShape)
            try indices.withUnsafeBufferPointer { ip in
                try check(cnn_maxpool2d_backward(&s, dy.basePointer, ip.baseAddress, dx.basePointer), "maxPool2d backward")
            }
            return [dx]
        }
    }

    /// Average pooling; `countIncludePad` chooses whether padded zeros count in the divisor.
    public static func avgPool2d(_ x: Variable, kernel: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0),
                                 ceilMode: Bool = false, countIncludePad: Bool = true) throws -> Variable {
        var (s, outShape) = try poolShape(x.value, kernel: kernel, stride: stride ?? kernel, padding: padding,
                                          ceilMode: ceilMode, countIncludePad: countIncludePad, operation: "avgPool2d")
        let y = try Tensor(uninitializedShape: outShape)
        try check(cnn_avgpool2d_forward(&s, x.value.basePointer, y.basePointer), "avgPool2d on \(x.shape)")
        let inShape = x.shape
        return Variable.result(y, operation: "avgPool2d", inputs: [x]) { dy in
            let dx = try Tensor(uninitializedShape: inShape)
            try check(cnn_avgpool2d_backward(&s, dy.basePointer, dx.basePointer), "avgPool2d backward")
            return [dx]
        }
    }

    /// Adaptive average pooling to a fixed output size (PyTorch's bins); `(1, 1)` is global pooling.
    public static func adaptiveAvgPool2d(_ x: Variable, outputSize: (Int, Int)) throws -> Variable {
        guard x.value.rank == 4 else { throw CNNError.shapeMismatch("adaptiveAvgPool2d: input must be [N, C, H, W], got \(x.shape)") }
        guard outputSize.0 >= 1, outputSize.1 >= 1 else {
            throw CNNError.invalidArgument("adaptiveAvgPool2d: output size \(outputSize.0)x\(outputSize.1) must be positive")
        }
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let y = try Tensor(uninitializedShape: [n, c, outputSize.0, outputSize.1])
        try check(cnn_adaptive_avgpool2d_forward(Int64(n), Int64(c), Int64(h), Int64(w), Int64(outputSize.0), Int64(outputSize.1),
                                                 x.value.basePointer, y.basePointer), "adaptiveAvgPool2d on \(x.shape)")
        let inShape = x.shape
        return Variable.result(y, operation: "adaptiveAvgPool2d", inputs: [x]) { dy in
            let dx = try Tensor(uninitializedShape: inShape)
            try check(cnn_adaptive_avgpool2d_backward(Int64(n), Int64(c), Int64(h), Int64(w), Int64(outputSize.0), Int64(outputSize.1),
                                                      dy.basePointer, dx.basePointer), "adaptiveAvgPool2d backward")
            return [dx]
        }
    }

    /// Batch normalisation over `[N, C, H, W]` (or `[N, C]`). In training, batch statistics are used
    /// and the running statistics (buffers) updated with `momentum`; otherwise the running ones.
    public static func batchNorm(_ x: Variable, weight: Variable, bias: Variable, runningMean: Buffer, runningVariance: Buffer,
                                 training: Bool, momentum: Float = 0.1, epsilon: Float = 1e-5) throws -> Variable {
        let xv = x.value
        guard xv.rank == 4 || xv.rank == 2 else {
            throw CNNError.shapeMismatch("batchNorm: input must be [N, C, H, W] or [N, C], got \(xv.shape)")
        }
        let n = xv.shape[0], c = xv.shape[1], hw = xv.rank == 4 ? xv.shape[2] * xv.shape[3] : 1
        guard weight.shape == [c], bias.shape == [c], runningMean.value.shape == [c], runningVariance.value.shape == [c] else {
            throw CNNError.shapeMismatch("batchNorm: input \(xv.shape) has \(c) channels, but the layer has \(weight.shape.first ?? 0)")
        }
        let y = try Tensor(uninitializedShape: xv.shape)
        if !training {
            try check(cnn_batchnorm2d_forward_inference(Int64(n), Int64(c), Int64(hw), xv.basePointer, weight.value.basePointer,
                                                        bias.value.basePointer, runningMean.value.basePointer, runningVariance.value.basePointer,
                                                        epsilon, y.basePointer), "batchNorm inference on \(xv.shape)")
            let gamma = weight.value, invstd = runningVariance.value.map { 1 / ($0 + epsilon).squareRoot() }
            let mean = runningMean.value
            return Variable.result(y, operation: "batchNorm(eval)", inputs: [x, weight, bias]) { dy in
                // y = (x - mean) * invstd * gamma + beta with constant statistics.
                let scale = try (gamma * invstd).reshaped(to: xv.rank == 4 ? [1, c, 1, 1] : [1, c])
                let dx = try dy * scale
                let xhat = try (xv - mean.reshaped(to: scale.shape)) * invstd.reshaped(to: scale.shape)
                let axes = xv.rank == 4 ? [0, 2, 3] : [0]
                return [dx, try (dy * xhat).sum(alongAxes: axes), try dy.sum(alongAxes: axes)]
            }
        }
        guard n * hw > 1 else {
            throw CNNError.invalidArgument("batchNorm: training needs more than one value per channel, got input \(xv.shape)")
        }
        let saveMean = try Tensor(uninitializedShape: [c]), saveInvstd = try Tensor(uninitializedShape: [c])
        runningMean.value.makeUnique()
        runningVariance.value.makeUnique()
        try check(cnn_batchnorm2d_forward_train(Int64(n), Int64(c), Int64(hw), xv.basePointer, weight.value.basePointer, bias.value.basePointer,
                                                epsilon, momentum, runningMean.value.basePointer, runningVariance.value.basePointer,
                                                saveMean.basePointer, saveInvstd.basePointer, y.basePointer), "batchNorm training on \(xv.shape)")
        let gamma = weight.value
        return Variable.result(y, operation: "batchNorm", inputs: [x, weight, bias]) { dy in
            let dx = try Tensor(uninitializedShape: xv.shape)
            let dgamma = try Tensor(zeros: [c]), dbeta = try Tensor(zeros: [c])
            try check(cnn_batchnorm2d_backward(Int64(n), Int64(c), Int64(hw), xv.basePointer, dy.basePointer, gamma.basePointer,
                                               saveMean.basePointer, saveInvstd.basePointer, dx.basePointer, dgamma.basePointer,
                                               dbeta.basePointer), "batchNorm backward")
            return [dx, dgamma, dbeta]
        }
    }

    /// Local response normalisation across channels (AlexNet): PyTorch's formula
    /// `y = x / (k + α/n · Σ x²)^β` over a window of `size` channels.
    public static func localResponseNorm(_ x: Variable, size: Int, alpha: Float = 1e-4, beta: Float = 0.75, k: Float = 1) throws -> Variable {
        let xv = x.value
        guard xv.rank == 4 else { throw CNNError.shapeMismatch("localResponseNorm: input must be [N, C, H, W], got \(xv.shape)") }
        guard size >= 1 else { throw CNNError.invalidArgument("localResponseNorm: size \(size) must be at least 1") }
        let n = xv.shape[0], c = xv.shape[1], hw = xv.shape[2] * xv.shape[3]
        let y = try Tensor(uninitializedShape: xv.shape), scale = try Tensor(uninitializedShape: xv.shape)
        try check(cnn_lrn_forward(Int64(n), Int64(c), Int64(hw), Int64(size), alpha, beta, k, xv.basePointer, y.basePointer, scale.basePointer),
                  "localResponseNorm on \(xv.shape)")
        return Variable.result(y, operation: "localResponseNorm", inputs: [x]) { dy in
            let dx = try Tensor(uninitializedShape: xv.shape)
            try check(cnn_lrn_backward(Int64(n), Int64(c), Int64(hw), Int64(size), alpha, beta, k, xv.basePointer, y.basePointer,
                                       scale.basePointer, dy.basePointer, dx.basePointer), "localResponseNorm backward")
            return [dx]
        }
    }

    /// Inverted dropout: each element is zeroed with probability `p` and the rest scaled by
    /// `1/(1-p)`; the mask is a pure function of `seed` and the element index.
    public static func dropout(_ x: Variable, probability p: Float, seed: UInt64) throws -> Variable {
        guard p >= 0, p <= 1 else { throw CNNError.invalidArgument("dropout: probability \(p) is outside [0, 1]") }
        let n = x.value.count
        let y = try Tensor(uninitializedShape: x.shape)
        var mask = [UInt8](repeating: 0, count: n)
        try mask.withUnsafeMutableBufferPointer { mp in
            try check(cnn_dropout_forward(Int64(n), p, seed, x.value.basePointer, y.basePointer, mp.baseAddress), "dropout")
        }
        return Variable.result(y, operation: "dropout", inputs: [x]) { dy in
            let dx = try Tensor(uninitializedShape: dy.shape)
            try mask.withUnsafeBufferPointer { mp in
                try check(cnn_dropout_backward(Int64(n), p, mp.baseAddress, dy.basePointer, dx.basePointer), "dropout backward")
            }
            return [dx]
        }
    }
}
