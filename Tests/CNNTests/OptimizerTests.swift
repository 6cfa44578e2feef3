import Testing
@testable import CNN

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Expected values are re-derived here in Double from the update rules as PyTorch documents them,
// independently of the Float kernels under test. Tolerance: a few Float ulps of accumulated rounding
// over a handful of steps, stated relative to max(1, |expected|).
private let optimizerTolerance = 1e-5

private func expectClose(_ actual: [Float], _ expected: [Double], _ comment: String = "",
                         tolerance: Double = optimizerTolerance,
                         sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(actual.count == expected.count, sourceLocation: sourceLocation)
    for (a, e) in zip(actual, expected) {
        #expect(abs(Double(a) - e) <= tolerance * max(1, abs(e)),
                "\(comment): got \(actual), expected \(expected)", sourceLocation: sourceLocation)
    }
}

private func parameter(_ values: [Float]) -> Variable {
    Variable(Tensor(values), requiresGradient: true)
}

/// Gradients for step t (1-based): fixed, of varying sign and magnitude.
private func optimizerGradient(step t: Int) -> [Float] {
    let base: [Float] = [0.5, -1.0, 2.0, 0.25]
    return base.enumerated().map { i, g in g * Float(t) * (i % 2 == 0 ? 1 : -0.5) + 0.1 * Float(i) }
}

private let initialValues: [Float] = [1.0, -2.0, 0.5, 3.0]

/// Runs `steps` steps of `optimizer` on one parameter with the fixed gradients; returns the values
/// after each step.
private func runSteps(_ optimizer: Optimizer, _ p: Variable, steps: Int,
                      gradient: (Int) -> [Float] = { optimizerGradient(step: $0) }) throws -> [[Float]] {
    var trace: [[Float]] = []
    for t in 1...steps {
        p.gradient = try Tensor(shape: p.shape, scalars: gradient(t))
        try optimizer.step()
        trace.append(p.value.scalars)
    }
    return trace
}

// MARK: References in Double

private func referenceSGD(steps: Int, initial: [Float] = initialValues,
                          gradient: (Int) -> [Float] = { optimizerGradient(step: $0) },
                          lr: Double, momentum: Double = 0, dampening: Double = 0,
                          nesterov: Bool = false, weightDecay: Double = 0) -> [[Double]] {
    var p = initial.map(Double.init)
    var buf: [Double]? = nil
    var trace: [[Double]] = []
    for t in 1...steps {
        let grad = gradient(t).map(Double.init)
        var g = zip(grad, p).map { $0 + weightDecay * $1 }
        if momentum != 0 {
            if let b = buf {
                buf = zip(b, g).map { momentum * $0 + (1 - dampening) * $1 }
            } else {
                buf = g
            }
            g = nesterov ? zip(g, buf!).map { $0 + momentum * $1 } : buf!
        }
        p = zip(p, g).map { $0 - lr * $1 }
        trace.append(p)
    }
    return trace
}

private func referenceAdam(steps: Int, initial: [Float] = initialValues,
                           gradient: (Int) -> [Float] = { optimizerGradient(step: $0) },
                           lr: Double, beta1: Double = 0.9, beta2: Double = 0.999,
                           eps: Double = 1e-8, weightDecay: Double = 0, decoupled: Bool = false,
                           amsgrad: Bool = false) -> [[Double]] {
    var p = initial.map(Double.init)
    var m = [Double](repeating: 0, count: p.count), v = m, vMax = m
    var trace: [[Double]] = []
    for t in 1...steps {
        let grad = gradient(t).map(Double.init)
        if decoupled { p = p.map { $0 * (1 - lr * weightDecay) } }
        let g = decoupled ? grad : zip(grad, p).map { $0 + weightDecay * $1 }
        for i in p.indices {
            m[i] = beta1 * m[i] + (1 - beta1) * g[i]
            v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i]
            vMax[i] = max(vMax[i], v[i])
            let mHat = m[i] / (1 - pow(beta1, Double(t)))
            let vHat = (amsgrad ? vMax[i] : v[i]) / (1 - pow(beta2, Double(t)))
            p[i] -= lr * mHat / (vHat.squareRoot() + eps)
        }
        trace.append(p)
    }
    return trace
}

private func referenceRMSprop(steps: Int, initial: [Float] = initialValues,
                              gradient: (Int) -> [Float] = { optimizerGradient(step: $0) },
                              lr: Double, alpha: Double = 0.99, eps: Double = 1e-8,
                              weightDecay: Double = 0, momentum: Double = 0, centered: Bool = false) -> [[Double]] {
    var p = initial.map(Double.init)
    var v = [Double](repeating: 0, count: p.count), gAvg = v, b = v
    var trace: [[Double]] = []
    for t in 1...steps {
        let grad = gradient(t).map(Double.init)
        for i in p.indices {
            let g = grad[i] + weightDecay * p[i]
            v[i] = alpha * v[i] + (1 - alpha) * g * g
            var avg = v[i]
            if centered {
                gAvg[i] = alpha * gAvg[i] + (1 - alpha) * g
                avg -= gAvg[i] * gAvg[i]
            }
            let d = avg.squareRoot() + eps
            if momentum > 0 {
                b[i] = momentum * b[i] + g / d
                p[i] -= lr * b[i]
            } else {
                p[i] -= lr * g / d
            }
        }
        trace.append(p)
    }
    return trace
}

@Suite("Optimizer updates against the documented rules")
struct OptimizerUpdateTests {
    @Test func plainSGDWithWeightDecay() throws {
        let p = parameter(initialValues)
        let sgd = try SGD(parameters: [("w", p)], learningRate: 0.1, weightDecay: 0.01)
        let trace = try runSteps(sgd, p, steps: 4)
        let expected = referenceSGD(steps: 4, lr: 0.1, weightDecay: 0.01)
        for (a, e) in zip(trace, expected) { expectClose(a, e, "plain SGD") }
        #expect(sgd.stateSlots.isEmpty)
        #expect(sgd.stepCount(for: "w") == 4)
    }

    @Test func momentumFirstStepCopiesTheGradientWithoutDampening() throws {
        let p = parameter(initialValues)
        let sgd = try SGD(parameters: [("w", p)], learningRate: 0.1, momentum: 0.9, dampening: 0.5)
        p.gradient = Tensor(optimizerGradient(step: 1))
        try sgd.step()
        // b₁ = g₁ exactly (no (1 − τ) factor on the first step).
        #expect(sgd.stateBuffer("momentum_buffer", for: "w")?.scalars == optimizerGradient(step: 1))
        p.gradient = Tensor(optimizerGradient(step: 2))
        try sgd.step()
        let g1 = optimizerGradient(step: 1).map(Double.init), g2 = optimizerGradient(step: 2).map(Double.init)
        expectClose(sgd.stateBuffer("momentum_buffer", for: "w")!.scalars,
                    zip(g1, g2).map { 0.9 * $0 + 0.5 * $1 }, "b₂ = μ b₁ + (1 − τ) g₂")
    }

    @Test(arguments: [(0.9, 0.0, false, 0.0), (0.9, 0.0, true, 0.0), (0.5, 0.3, false, 0.0),
                      (0.9, 0.0, true, 0.05), (0.8, 0.1, false, 0.02)])
    func sgdWithMomentum(momentum: Double, dampening: Double, nesterov: Bool, weightDecay: Double) throws {
        let p = parameter(initialValues)
        let sgd = try SGD(parameters: [("w", p)], learningRate: 0.05, momentum: Float(momentum),
                          dampening: Float(dampening), nesterov: nesterov, weightDecay: Float(weightDecay))
        let trace = try runSteps(sgd, p, steps: 5)
        let expected = referenceSGD(steps: 5, lr: 0.05, momentum: momentum, dampening: dampening,
                                    nesterov: nesterov, weightDecay: weightDecay)
        for (a, e) in zip(trace, expected) { expectClose(a, e, "SGD μ=\(momentum) τ=\(dampening) nesterov=\(nesterov)") }
    }

    @Test func nesterovDiffersFromClassicalMomentum() throws {
        let a = parameter(initialValues), b = parameter(initialValues)
        let classical = try SGD(parameters: [("w", a)], learningRate: 0.05, momentum: 0.9)
        let nesterov = try SGD(parameters: [("w", b)], learningRate: 0.05, momentum: 0.9, nesterov: true)
        _ = try runSteps(classical, a, steps: 2)
        _ = try runSteps(nesterov, b, steps: 2)
        #expect(a.value != b.value)
    }

    @Test func weightDecayExclusionByNameAndRank() throws {
        let w = Variable(try Tensor(shape: [2, 2], scalars: [1, 2, 3, 4]), requiresGradient: true)
        let bias = parameter([1, -1])
        let bnWeight = parameter([2, 2])
        let params: [(String, Variable)] = [("fc.weight", w), ("fc.bias", bias), ("bn1.weight", bnWeight)]
        let sgd = try SGD(parameters: params, learningRate: 0.1, weightDecay: 0.5,
                          weightDecayExclusion: .biasesAndNormalization)
        #expect(sgd.excludedFromWeightDecay == ["fc.bias", "bn1.weight"])
        for (_, p) in params { p.gradient = try Tensor(zeros: p.shape) }
        try sgd.step()
        // Zero gradient: only decay moves a parameter, p ← p − γλp = 0.95 p.
        expectClose(w.value.scalars, [0.95, 1.9, 2.85, 3.8], "decayed weight")
        #expect(bias.value.scalars == [1, -1])
        #expect(bnWeight.value.scalars == [2, 2])

        let bySuffix = try SGD(parameters: params, learningRate: 0.1, weightDecay: 0.5,
                               weightDecayExclusion: .namesEnding(with: [".bias"]))
        #expect(bySuffix.excludedFromWeightDecay == ["fc.bias"])
        let bySubstring = try SGD(parameters: params, learningRate: 0.1, weightDecay: 0.5,
                                  weightDecayExclusion: .namesContaining(["bn"]).union(.namesEnding(with: ["fc.weight"])))
        #expect(bySubstring.excludedFromWeightDecay == ["bn1.weight", "fc.weight"])
        let custom = try SGD(parameters: params, learningRate: 0.1, weightDecay: 0.5,
                             weightDecayExclusion: WeightDecayExclusion { _, shape in shape.count == 2 })
        #expect(custom.excludedFromWeightDecay == ["fc.weight"])
    }

    @Test(arguments: [(0.0, false), (0.01, false), (0.0, true), (0.05, true)])
    func adam(weightDecay: Double, amsgrad: Bool) throws {
        let p = parameter(initialValues)
        let adam = try Adam(parameters: [("w", p)], learningRate: 0.01, weightDecay: Float(weightDecay), amsgrad: amsgrad)
        // Gradients grow then shrink so that AMSGrad's running maximum matters.
        var trace: [[Float]] = []
        let order = [1, 3, 5, 2, 1, 1]
        for t in order {
            p.gradient = Tensor(optimizerGradient(step: t))
            try adam.step()
            trace.append(p.value.scalars)
        }
        // Re-run the reference with the same gradient order.
        var ref = initialValues.map(Double.init)
        var m = [Double](repeating: 0, count: 4), v = m, vMax = m
        for (k, t) in order.enumerated() {
            let g = zip(optimizerGradient(step: t), ref).map { Double($0) + weightDecay * $1 }
            let step = Double(k + 1)
            for i in 0..<4 {
                m[i] = 0.9 * m[i] + 0.1 * g[i]
                v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i]
                vMax[i] = max(vMax[i], v[i])
                ref[i] -= 0.01 * (m[i] / (1 - pow(0.9, step))) / (((amsgrad ? vMax[i] : v[i]) / (1 - pow(0.999, step))).squareRoot() + 1e-8)
            }
            expectClose(trace[k], ref, "Adam λ=\(weightDecay) amsgrad=\(amsgrad) step \(k + 1)")
        }
        #expect(adam.stateSlots == (amsgrad ? ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"] : ["exp_avg", "exp_avg_sq"]))
    }

    @Test func adamBiasCorrectionMakesTheFirstStepTheLearningRate() throws {
        // With bias correction, m̂₁ = g and v̂₁ = g², so the first step is γ·g/(|g| + ε) ≈ γ·sign(g)
        // whatever the betas and the gradient's scale.
        let p = parameter(initialValues)
        let adam = try Adam(parameters: [("w", p)], learningRate: 0.01, beta1: 0.8, beta2: 0.99)
        p.gradient = Tensor([1e-3, -50, 7, -0.2])
        try adam.step()
        expectClose(p.value.scalars, [0.99, -1.99, 0.49, 3.01], "first Adam step", tolerance: 1e-6)
        let trace = referenceAdam(steps: 5, lr: 0.01)
        let q = parameter(initialValues)
        let plain = try Adam(parameters: [("w", q)], learningRate: 0.01)
        for (a, e) in zip(try runSteps(plain, q, steps: 5), trace) { expectClose(a, e, "Adam") }
    }

    @Test func adamWDecouplesWeightDecay() throws {
        // Zero gradient: Adam's moments stay 0, so AdamW moves p only by the decay p ← (1 − γλ) p,
        // while Adam's L2 decay goes through the adaptive denominator (a step of ≈ γ).
        let p = parameter(initialValues), q = parameter(initialValues)
        let adamW = try AdamW(parameters: [("w", p)], learningRate: 0.1, weightDecay: 0.01)
        let adam = try Adam(parameters: [("w", q)], learningRate: 0.1, weightDecay: 0.01)
        for t in 1...3 {
            p.gradient = try Tensor(zeros: [4]); q.gradient = try Tensor(zeros: [4])
            try adamW.step(); try adam.step()
            if t == 1 {
                // Adam's first step is γ·sign(λp) (bias-corrected m̂/√v̂ = ±1), whatever λ's size.
                expectClose(q.value.scalars, initialValues.map { Double($0) - 0.1 * (Double($0) > 0 ? 1 : -1) },
                            "Adam L2", tolerance: 1e-6)
            }
        }
        expectClose(p.value.scalars, initialValues.map { Double($0) * pow(0.999, 3) }, "AdamW shrink")

        for amsgrad in [false, true] {
            let r = parameter(initialValues)
            let w = try AdamW(parameters: [("w", r)], learningRate: 0.02, weightDecay: 0.1, amsgrad: amsgrad)
            let trace = try runSteps(w, r, steps: 5)
            let expected = referenceAdam(steps: 5, lr: 0.02, weightDecay: 0.1, decoupled: true, amsgrad: amsgrad)
            for (a, e) in zip(trace, expected) { expectClose(a, e, "AdamW amsgrad=\(amsgrad)") }
        }
        #expect(adamW.algorithmName == "AdamW" && adamW.weightDecay == 0.01)
    }

    @Test(arguments: [(0.0, false, 0.0), (0.0, true, 0.0), (0.9, false, 0.0), (0.9, true, 0.0), (0.5, true, 0.1)])
    func rmsprop(momentum: Double, centered: Bool, weightDecay: Double) throws {
        let p = parameter(initialValues)
        let opt = try RMSprop(parameters: [("w", p)], learningRate: 0.01, alpha: 0.9, epsilon: 1e-6,
                              weightDecay: Float(weightDecay), momentum: Float(momentum), centered: centered)
        let trace = try runSteps(opt, p, steps: 5)
        let expected = referenceRMSprop(steps: 5, lr: 0.01, alpha: 0.9, eps: 1e-6, weightDecay: weightDecay,
                                        momentum: momentum, centered: centered)
        for (a, e) in zip(trace, expected) { expectClose(a, e, "RMSprop μ=\(momentum) centered=\(centered)") }
        var slots = ["square_avg"]
        if momentum > 0 { slots.append("momentum_buffer") }
        if centered { slots.append("grad_avg") }
        #expect(opt.stateSlots == slots)
    }

    /// 19 elements: full iterations of the kernels' vector loops and a scalar tail, against the
    /// element-wise references.
    @Test func longParametersCoverFullAndPartialVectorChunks() throws {
        let initial = (0..<19).map { Float($0) * 0.37 - 3 }
        let gradient: (Int) -> [Float] = { t in (0..<19).map { i in Float((i * 7 + t * 3) % 11) * 0.2 - 1 + 0.05 * Float(t) } }
        func check(_ make: ([(String, Variable)]) throws -> Optimizer, _ expected: [[Double]], _ label: String) throws {
            let p = Variable(Tensor(initial), requiresGradient: true)
            let trace = try runSteps(try make([("w", p)]), p, steps: 4, gradient: gradient)
            for (a, e) in zip(trace, expected) { expectClose(a, e, label) }
        }
        try check({ try SGD(parameters: $0, learningRate: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.01) },
                  referenceSGD(steps: 4, initial: initial, gradient: gradient, lr: 0.05, momentum: 0.9, nesterov: true,
                               weightDecay: 0.01), "SGD")
        try check({ try Adam(parameters: $0, learningRate: 0.01, weightDecay: 0.01, amsgrad: true) },
                  referenceAdam(steps: 4, initial: initial, gradient: gradient, lr: 0.01, weightDecay: 0.01,
                                amsgrad: true), "Adam")
        try check({ try AdamW(parameters: $0, learningRate: 0.01, weightDecay: 0.1) },
                  referenceAdam(steps: 4, initial: initial, gradient: gradient, lr: 0.01, weightDecay: 0.1,
                                decoupled: true), "AdamW")
        try check({ try RMSprop(parameters: $0, learningRate: 0.01, momentum: 0.5, centered: true) },
                  referenceRMSprop(steps: 4, initial: initial, gradient: gradient, lr: 0.01, momentum: 0.5,
                                   centered: true), "RMSprop")
    }

    @Test func parametersWithoutGradientAreSkipped() throws {
        let used = parameter([1, 2]), unused = parameter([3, 4])
        let frozen = Variable(Tensor([5, 6]), requiresGradient: false)
        let adam = try Adam(parameters: [("used", used), ("unused", unused), ("frozen", frozen)], learningRate: 0.1)
        used.gradient = Tensor([1, 1])
        frozen.gradient = Tensor([1, 1])  // does not require a gradient: never updated
        let versions = (used.version, unused.version, frozen.version)
        try adam.step()
        #expect(used.value.scalars != [1, 2])
        #expect(used.version == versions.0 + 1)
        #expect(unused.value.scalars == [3, 4] && unused.version == versions.1)
        #expect(frozen.value.scalars == [5, 6] && frozen.version == versions.2)
        #expect(adam.stepCount(for: "used") == 1 && adam.stepCount(for: "unused") == 0)
        #expect(adam.state["unused"] == nil)
        adam.zeroGradients()
        #expect(used.gradient == nil && frozen.gradient == nil)
        try adam.step()
        #expect(adam.stepCount(for: "used") == 1)
    }

    @Test func gradientShapeMismatchThrowsBeforeAnyUpdate() throws {
        let a = parameter([1, 2]), b = parameter([3, 4])
        let sgd = try SGD(parameters: [("a", a), ("b", b)], learningRate: 0.1)
        a.gradient = Tensor([1, 1])
        b.gradient = Tensor([1, 1, 1])
        #expect(throws: CNNError.shapeMismatch("SGD: gradient of \"b\" has shape [3], the parameter has [2]")) {
            try sgd.step()
        }
        #expect(a.value.scalars == [1, 2])
    }
}

// MARK: Long and tiny parameters (the CNNKernels update)

/// `n` values uniform in [-scale, scale) from the shared seeded test generator.
private extension IOTestRNG {
    mutating func floats(_ n: Int, scale: Float) -> [Float] {
        (0..<n).map { _ in scale * (Float(next() >> 40) * 0x1p-23 - 1) }
    }
}

/// One optimizer configuration: how to make it and its float64 reference on given values and gradients.
struct OptimizerKernelCase: Sendable, CustomStringConvertible {
    let description: String
    let make: @Sendable ([(String, Variable)]) throws -> Optimizer
    let reference: @Sendable (_ steps: Int, _ initial: [Float], _ gradient: @escaping (Int) -> [Float]) -> [[Double]]
}

/// Every option combination of the three rules: momentum, dampening, Nesterov and weight decay;
/// Adam, AdamW and AMSGrad; RMSprop plain, centered and with momentum.
let optimizerKernelCases: [OptimizerKernelCase] = [
    OptimizerKernelCase(description: "SGD λ=0.01",
                  make: { try SGD(parameters: $0, learningRate: 0.1, weightDecay: 0.01) },
                  reference: { referenceSGD(steps: $0, initial: $1, gradient: $2, lr: 0.1, weightDecay: 0.01) }),
    OptimizerKernelCase(description: "SGD μ=0.9",
                  make: { try SGD(parameters: $0, learningRate: 0.1, momentum: 0.9) },
                  reference: { referenceSGD(steps: $0, initial: $1, gradient: $2, lr: 0.1, momentum: 0.9) }),
    OptimizerKernelCase(description: "SGD μ=0.9 τ=0.1",
                  make: { try SGD(parameters: $0, learningRate: 0.1, momentum: 0.9, dampening: 0.1) },
                  reference: { referenceSGD(steps: $0, initial: $1, gradient: $2, lr: 0.1, momentum: 0.9, dampening: 0.1) }),
    OptimizerKernelCase(description: "SGD μ=0.5 τ=0.3 λ=0.02",
                  make: { try SGD(parameters: $0, learningRate: 0.05, momentum: 0.5, dampening: 0.3, weightDecay: 0.02) },
                  reference: { referenceSGD(steps: $0, initial: $1, gradient: $2, lr: 0.05, momentum: 0.5, dampening: 0.3,
                                            weightDecay: 0.02) }),
    OptimizerKernelCase(description: "SGD μ=0.9 Nesterov λ=1e-3",
                  make: { try SGD(parameters: $0, learningRate: 0.1, momentum: 0.9, nesterov: true, weightDecay: 1e-3) },
                  reference: { referenceSGD(steps: $0, initial: $1, gradient: $2, lr: 0.1, momentum: 0.9, nesterov: true,
                                            weightDecay: 1e-3) }),
    OptimizerKernelCase(description: "Adam",
                  make: { try Adam(parameters: $0, learningRate: 0.01) },
                  reference: { referenceAdam(steps: $0, initial: $1, gradient: $2, lr: 0.01) }),
    OptimizerKernelCase(description: "Adam λ=0.01",
                  make: { try Adam(parameters: $0, learningRate: 0.01, weightDecay: 0.01) },
                  reference: { referenceAdam(steps: $0, initial: $1, gradient: $2, lr: 0.01, weightDecay: 0.01) }),
    OptimizerKernelCase(description: "Adam AMSGrad λ=0.01 β=(0.8, 0.99)",
                  make: { try Adam(parameters: $0, learningRate: 0.01, beta1: 0.8, beta2: 0.99, weightDecay: 0.01, amsgrad: true) },
                  reference: { referenceAdam(steps: $0, initial: $1, gradient: $2, lr: 0.01, beta1: 0.8, beta2: 0.99,
                                             weightDecay: 0.01, amsgrad: true) }),
    OptimizerKernelCase(description: "AdamW λ=0.1",
                  make: { try AdamW(parameters: $0, learningRate: 0.01, weightDecay: 0.1) },
                  reference: { referenceAdam(steps: $0, initial: $1, gradient: $2, lr: 0.01, weightDecay: 0.1, decoupled: true) }),
    OptimizerKernelCase(description: "AdamW AMSGrad λ=0.1 ε=1e-3",
                  make: { try AdamW(parameters: $0, learningRate: 0.01, epsilon: 1e-3, weightDecay: 0.1, amsgrad: true) },
                  reference: { referenceAdam(steps: $0, initial: $1, gradient: $2, lr: 0.01, eps: 1e-3, weightDecay: 0.1,
                                             decoupled: true, amsgrad: true) }),
    OptimizerKernelCase(description: "RMSprop",
                  make: { try RMSprop(parameters: $0, learningRate: 0.01) },
                  reference: { referenceRMSprop(steps: $0, initial: $1, gradient: $2, lr: 0.01) }),
    OptimizerKernelCase(description: "RMSprop λ=0.01 α=0.9",
                  make: { try RMSprop(parameters: $0, learningRate: 0.01, alpha: 0.9, weightDecay: 0.01) },
                  reference: { referenceRMSprop(steps: $0, initial: $1, gradient: $2, lr: 0.01, alpha: 0.9, weightDecay: 0.01) }),
    OptimizerKernelCase(description: "RMSprop centered",
                  make: { try RMSprop(parameters: $0, learningRate: 0.01, centered: true) },
                  reference: { referenceRMSprop(steps: $0, initial: $1, gradient: $2, lr: 0.01, centered: true) }),
    OptimizerKernelCase(description: "RMSprop μ=0.9",
                  make: { try RMSprop(parameters: $0, learningRate: 0.01, momentum: 0.9) },
                  reference: { referenceRMSprop(steps: $0, initial: $1, gradient: $2, lr: 0.01, momentum: 0.9) }),
    OptimizerKernelCase(description: "RMSprop centered μ=0.5 λ=0.1",
                  make: { try RMSprop(parameters: $0, learningRate: 0.01, weightDecay: 0.1, momentum: 0.5, centered: true) },
                  reference: { referenceRMSprop(steps: $0, initial: $1, gradient: $2, lr: 0.01, weightDecay: 0.1,
                                                momentum: 0.5, centered: true) }),
]

/// Odd, and past the kernels' parallel threshold (32768 elements): seven 16384-float chunks, the
/// last partial.
private let longParameterCount = 100_003

/// Values in [-3, 3) and per-step gradients in [-1, 1) for a parameter of `count` elements.
private func longProblem(count: Int, steps: Int) -> (initial: [Float], gradients: [[Float]]) {
    var rng = IOTestRNG(seed: 0x5EED_0000 &+ UInt64(count))
    let initial = rng.floats(count, scale: 3)
    return (initial, (0..<steps).map { _ in rng.floats(count, scale: 1) })
}

/// Worst |actual − expected| / max(1, |expected|) over all elements, with one expectation (not one
/// per element) so that long parameters report compactly.
private func expectCloseEverywhere(_ actual: [Float], _ expected: [Double], _ comment: String,
                                   sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(actual.count == expected.count, sourceLocation: sourceLocation)
    var worst = 0.0, worstIndex = -1
    for i in 0..<min(actual.count, expected.count) {
        let e = expected[i], error = abs(Double(actual[i]) - e) / max(1, abs(e))
        if !(error <= worst) { worst = error; worstIndex = i }  // NaN counts as the worst
    }
    #expect(worst <= optimizerTolerance,
            "\(comment): element \(worstIndex) is \(worstIndex >= 0 ? actual[worstIndex] : .nan), expected \(worstIndex >= 0 ? expected[worstIndex] : .nan) (relative error \(worst))",
            sourceLocation: sourceLocation)
}

/// Runs `steps` steps on one parameter named "w" of `initial`'s length; returns the value after each
/// step and the optimizer.
private func runCase(_ c: OptimizerKernelCase, initial: [Float], gradients: [[Float]]) throws -> ([[Float]], Optimizer) {
    let p = Variable(try Tensor(shape: [initial.count], scalars: initial), requiresGradient: true)
    let optimizer = try c.make([("w", p)])
    let trace = try runSteps(optimizer, p, steps: gradients.count, gradient: { gradients[$0 - 1] })
    return (trace, optimizer)
}

@Suite("Optimizer updates on long and tiny parameters (CNNKernels, parallel)", .serialized)
struct OptimizerKernelUpdateTests {
    /// 100 003 elements, four steps, every option combination, against the float64 reference.
    @Test(arguments: optimizerKernelCases)
    func longParameterMatchesTheReference(_ c: OptimizerKernelCase) throws {
        let steps = 4
        let (initial, gradients) = longProblem(count: longParameterCount, steps: steps)
        let (trace, _) = try runCase(c, initial: initial, gradients: gradients)
        let expected = c.reference(steps, initial) { gradients[$0 - 1] }
        for (t, (a, e)) in zip(trace, expected).enumerated() { expectCloseEverywhere(a, e, "\(c) step \(t + 1)") }
    }

    /// The parameter and every state buffer are bit-identical whether the update runs on one thread
    /// or two (chunk boundaries do not depend on the thread count). Without OpenMP both runs use one.
    @Test(arguments: optimizerKernelCases)
    func oneAndTwoThreadsAreBitIdentical(_ c: OptimizerKernelCase) throws {
        let (initial, gradients) = longProblem(count: longParameterCount, steps: 3)
        defer { try? ComputeRuntime.setThreadCount(nil) }
        var results: [[[UInt32]]] = [], names: [String] = []
        for threads in [1, 2] {
            try ComputeRuntime.setThreadCount(threads)
            let (trace, optimizer) = try runCase(c, initial: initial, gradients: gradients)
            let buffers = optimizer.stateSlots.map { optimizer.stateBuffer($0, for: "w")?.scalars ?? [] }
            results.append(([trace.last!] + buffers).map { $0.map(\.bitPattern) })
            names = ["parameter"] + optimizer.stateSlots
        }
        #expect(results[0].count == results[1].count)
        for (k, (one, two)) in zip(results[0], results[1]).enumerated() {
            let what = names[k]
            #expect(one.count == longParameterCount && one == two,
                    "\(c): \(what) differs between 1 and 2 threads at \(zip(one, two).filter { $0 != $1 }.count) elements")
        }
    }

    /// Empty and tiny parameters (shorter than a vector, and an odd tail): same rule, nothing out of
    /// bounds; an empty parameter still counts its steps and gets empty state buffers.
    @Test(arguments: optimizerKernelCases)
    func emptyAndTinyParameters(_ c: OptimizerKernelCase) throws {
        for count in [0, 1, 7, 17] {
            let (initial, gradients) = longProblem(count: count, steps: 3)
            let (trace, optimizer) = try runCase(c, initial: initial, gradients: gradients)
            let expected = c.reference(3, initial) { gradients[$0 - 1] }
            for (t, (a, e)) in zip(trace, expected).enumerated() { expectCloseEverywhere(a, e, "\(c) n=\(count) step \(t + 1)") }
            #expect(optimizer.stepCount(for: "w") == 3)
            for slot in optimizer.stateSlots {
                #expect(optimizer.stateBuffer(slot, for: "w")?.shape == [count], "\(c) n=\(count) \(slot)")
            }
        }
    }
}

@Suite("Optimizer hyper-parameter validation")
struct OptimizerValidationTests {
    private let p = Variable(Tensor([1, 2]), requiresGradient: true)

    @Test func invalidHyperparametersThrowNamingTheValue() throws {
        let params: [(String, Variable)] = [("w", p)]
        #expect(throws: CNNError.invalidArgument("SGD: learning rate must be finite and >= 0, got -0.1")) {
            try SGD(parameters: params, learningRate: -0.1)
        }
        #expect(throws: CNNError.invalidArgument("SGD: momentum must be finite and >= 0, got -0.5")) {
            try SGD(parameters: params, learningRate: 0.1, momentum: -0.5)
        }
        #expect(throws: CNNError.invalidArgument("SGD: weight decay must be finite and >= 0, got -0.001")) {
            try SGD(parameters: params, learningRate: 0.1, weightDecay: -0.001)
        }
        #expect(throws: CNNError.invalidArgument("SGD: Nesterov momentum requires momentum > 0 and dampening 0, got momentum 0.0 and dampening 0.0")) {
            try SGD(parameters: params, learningRate: 0.1, nesterov: true)
        }
        #expect(throws: CNNError.invalidArgument("SGD: Nesterov momentum requires momentum > 0 and dampening 0, got momentum 0.9 and dampening 0.1")) {
            try SGD(parameters: params, learningRate: 0.1, momentum: 0.9, dampening: 0.1, nesterov: true)
        }
        #expect(throws: CNNError.invalidArgument("SGD: dampening must be in [0, 1], got 1.5")) {
            try SGD(parameters: params, learningRate: 0.1, momentum: 0.9, dampening: 1.5)
        }
        #expect(throws: CNNError.invalidArgument("Adam: beta1 must be in [0, 1), got 1.0")) {
            try Adam(parameters: params, beta1: 1)
        }
        #expect(throws: CNNError.invalidArgument("Adam: beta2 must be in [0, 1), got -0.1")) {
            try Adam(parameters: params, beta2: -0.1)
        }
        #expect(throws: CNNError.invalidArgument("Adam: epsilon must be finite and > 0, got 0.0")) {
            try Adam(parameters: params, epsilon: 0)
        }
        #expect(throws: CNNError.invalidArgument("AdamW: learning rate must be finite and >= 0, got nan")) {
            try AdamW(parameters: params, learningRate: .nan)
        }
        #expect(throws: CNNError.invalidArgument("RMSprop: alpha must be in [0, 1), got 1.0")) {
            try RMSprop(parameters: params, alpha: 1)
        }
        #expect(throws: CNNError.invalidArgument("RMSprop: epsilon must be finite and > 0, got -1e-08")) {
            try RMSprop(parameters: params, epsilon: -1e-8)
        }
        #expect(throws: CNNError.invalidArgument("RMSprop: momentum must be finite and >= 0, got -0.9")) {
            try RMSprop(parameters: params, momentum: -0.9)
        }
    }

    @Test func parameterListsAreChecked() throws {
        #expect(throws: CNNError.invalidArgument("SGD: parameter name \"w\" is given twice")) {
            try SGD(parameters: [("w", p), ("w", Variable(Tensor([1]), requiresGradient: true))], learningRate: 0.1)
        }
        #expect(throws: CNNError.invalidArgument("Adam: parameter \"v\" is a variable already given under another name")) {
            try Adam(parameters: [("w", p), ("v", p)])
        }
    }

    @Test func aNegativeLearningRateSetLaterThrowsAtStep() throws {
        let sgd = try SGD(parameters: [("w", p)], learningRate: 0.1)
        sgd.learningRate = -1
        p.gradient = Tensor([1, 1])
        #expect(throws: CNNError.invalidArgument("SGD: learning rate must be finite and >= 0, got -1.0")) {
            try sgd.step()
        }
        #expect(p.value.scalars == [1, 2])
    }
}

// MARK: State save and restore

/// A deterministic gradient that depends on the current values (so a wrong restore shows), with
/// parameter "b" given no gradient on every third step (so per-parameter step counts differ).
private func stateTestGradients(_ params: [(String, Variable)], step: Int) {
    for (k, (name, p)) in params.enumerated() {
        if name == "b", step % 3 == 0 { p.gradient = nil; continue }
        p.gradient = p.value.map { $0 * 0.3 - Float(k + 1) * 0.1 + Float(step % 5) * 0.05 }
    }
}

private func stateTestParameters() throws -> [(String, Variable)] {
    [("conv.weight", Variable(try Tensor(shape: [2, 3], scalars: [0.5, -1, 2, 0.1, 0.7, -0.3]), requiresGradient: true)),
     ("b", Variable(Tensor([0.2, -0.4]), requiresGradient: true))]
}

@Suite("Optimizer state dictionaries")
struct OptimizerStateTests {
    private static let makers: [(String, @Sendable ([(String, Variable)]) throws -> Optimizer)] = [
        ("SGD", { try SGD(parameters: $0, learningRate: 0.1, momentum: 0.9, nesterov: true, weightDecay: 1e-2,
                          weightDecayExclusion: .biasesAndNormalization) }),
        ("Adam", { try Adam(parameters: $0, learningRate: 0.01, weightDecay: 1e-3, amsgrad: true) }),
        ("AdamW", { try AdamW(parameters: $0, learningRate: 0.01) }),
        ("RMSprop", { try RMSprop(parameters: $0, learningRate: 0.01, momentum: 0.5, centered: true) }),
    ]

    @Test(arguments: 0..<4)
    func saveRestoreContinueIsBitIdentical(maker index: Int) throws {
        let make = Self.makers[index].1
        let total = 11, interruption = 5
        let schedule = try LinearWarmup(epochs: 3, startFactor: 0.2, then: StepLR(stepSize: 4, gamma: 0.5))

        // Uninterrupted run.
        let full = try stateTestParameters()
        let fullOptimizer = try make(full)
        let fullScheduler = try LearningRateScheduler(optimizer: fullOptimizer, schedule: schedule)
        for t in 0..<total {
            stateTestGradients(full, step: t)
            try fullOptimizer.step()
            try fullScheduler.step()
        }

        // Interrupted run: stop, keep only weights, optimizer and scheduler state, resume fresh objects.
        let first = try stateTestParameters()
        let firstOptimizer = try make(first)
        let firstScheduler = try LearningRateScheduler(optimizer: firstOptimizer, schedule: schedule)
        for t in 0..<interruption {
            stateTestGradients(first, step: t)
            try firstOptimizer.step()
            try firstScheduler.step()
        }
        let savedWeights = first.map { $0.1.value }
        let savedOptimizer = firstOptimizer.stateDictionary()
        let savedScheduler = firstScheduler.state

        let resumed = try stateTestParameters()
        for ((_, p), w) in zip(resumed, savedWeights) { try p.assign(w) }
        let resumedOptimizer = try make(resumed)
        let resumedScheduler = try LearningRateScheduler(optimizer: resumedOptimizer, schedule: schedule)
        try resumedOptimizer.loadStateDictionary(savedOptimizer)
        try resumedScheduler.load(savedScheduler)
        for t in interruption..<total {
            stateTestGradients(resumed, step: t)
            try resumedOptimizer.step()
            try resumedScheduler.step()
        }

        for ((name, a), (_, b)) in zip(full, resumed) {
            #expect(a.value.scalars.map(\.bitPattern) == b.value.scalars.map(\.bitPattern), "\(name)")
        }
        let fullState = fullOptimizer.stateDictionary(), resumedState = resumedOptimizer.stateDictionary()
        #expect(fullState.map(\.0) == resumedState.map(\.0))
        for ((key, a), (_, b)) in zip(fullState, resumedState) {
            #expect(a.scalars.map(\.bitPattern) == b.scalars.map(\.bitPattern), "\(key)")
        }
        #expect(fullOptimizer.learningRate == resumedOptimizer.learningRate)
        #expect(resumedOptimizer.stepCount(for: "b") < resumedOptimizer.stepCount(for: "conv.weight"))
    }

    @Test func stateDictionaryKeys() throws {
        let params = try stateTestParameters()
        let adam = try Adam(parameters: params, learningRate: 0.01)
        stateTestGradients(params, step: 1)
        try adam.step()
        try adam.step()
        let keys = adam.stateDictionary().map(\.0)
        #expect(keys == ["hyperparameters.lr", "hyperparameters.weight_decay", "hyperparameters.beta1",
                         "hyperparameters.beta2", "hyperparameters.eps", "hyperparameters.amsgrad",
                         "state.conv.weight.step", "state.conv.weight.exp_avg", "state.conv.weight.exp_avg_sq",
                         "state.b.step", "state.b.exp_avg", "state.b.exp_avg_sq"])
        let dict = Dictionary(uniqueKeysWithValues: adam.stateDictionary())
        #expect(dict["state.b.step"]?.scalars == [2])
        #expect(dict["state.conv.weight.exp_avg"]?.shape == [2, 3])
        // Taking a checkpoint does not alias the live state: a later step leaves it unchanged.
        let snapshot = dict["state.b.exp_avg"]!.scalars
        try adam.step()
        #expect(dict["state.b.exp_avg"]!.scalars == snapshot)
    }

    @Test func loadingABadDictionaryListsEveryProblemAndChangesNothing() throws {
        let params = try stateTestParameters()
        let sgd = try SGD(parameters: params, learningRate: 0.1, momentum: 0.9)
        stateTestGradients(params, step: 1)
        try sgd.step()
        let before = sgd.stateDictionary()

        var bad = before.filter { $0.0 != "state.b.momentum_buffer" }          // missing
        bad.append(("state.fc.weight.momentum_buffer", Tensor([1])))            // unknown parameter
        bad.append(("optimizer.junk", Tensor([1])))                             // unknown key
        bad = bad.map { key, t in
            switch key {
            case "state.conv.weight.momentum_buffer": return (key, Tensor([1, 2, 3]))  // wrong shape
            case "hyperparameters.momentum": return (key, Tensor([0.5]))            // differs
            case "hyperparameters.lr": return (key, Tensor([0.001]))
            default: return (key, t)
            }
        }
        let expected = CNNError.invalidArgument(
            "SGD.loadStateDictionary: 5 problems: hyperparameters.momentum is 0.5, this optimizer has 0.9; "
            + "unexpected key optimizer.junk; unexpected key state.fc.weight.momentum_buffer; "
            + "state.conv.weight.momentum_buffer has shape [3], the parameter has [2, 3]; "
            + "missing key state.b.momentum_buffer")
        #expect(throws: expected) { try sgd.loadStateDictionary(bad) }
        #expect(sgd.learningRate == 0.1)
        let after = sgd.stateDictionary()
        #expect(after.map(\.0) == before.map(\.0))
        for ((_, a), (_, b)) in zip(before, after) { #expect(a == b) }

        #expect(throws: CNNError.invalidArgument("SGD.loadStateDictionary: 2 problems: missing key hyperparameters.lr; state.b.step is 1.5, expected a non-negative integer below 2^24")) {
            try sgd.loadStateDictionary(before.compactMap { key, t in
                key == "hyperparameters.lr" ? nil : (key, key == "state.b.step" ? Tensor([1.5]) : t)
            })
        }
        // A dictionary without any parameter state is valid: it clears the state.
        try sgd.loadStateDictionary(Array(before.prefix(5)))
        #expect(sgd.state.isEmpty)
    }
}

// MARK: A real fit

/// y = W x + b with W (2×3), b (2), 64 samples: minimises the mean squared error over all outputs
/// with the gradient computed by hand: ∂L/∂W = (2/(N·2)) Σ r xᵀ, ∂L/∂b = (2/(N·2)) Σ r, r = Wx + b − y.
private struct LinearRegressionProblem {
    let inputs: [[Float]]
    let targets: [[Float]]

    init() {
        var generator = SeededGenerator(seed: 2024)
        let trueW: [[Float]] = [[1.5, -2.0, 0.5], [0.3, 0.8, -1.2]]
        let trueB: [Float] = [0.7, -0.4]
        inputs = (0..<64).map { _ in (0..<3).map { _ in generator.nextUniform() * 2 - 1 } }
        targets = inputs.map { x in (0..<2).map { o in trueB[o] + (0..<3).reduce(0) { $0 + trueW[o][$1] * x[$1] } } }
    }

    /// The loss, and the gradients stored into the variables.
    func lossAndGradients(weight: Variable, bias: Variable) throws -> Float {
        let w = weight.value.scalars, b = bias.value.scalars
        var gw = [Float](repeating: 0, count: 6), gb = [Float](repeating: 0, count: 2)
        var loss: Float = 0
        let scale = 2 / Float(inputs.count * 2)
        for (x, y) in zip(inputs, targets) {
            for o in 0..<2 {
                let r = b[o] + (0..<3).reduce(0) { $0 + w[o * 3 + $1] * x[$1] } - y[o]
                loss += r * r
                gb[o] += scale * r
                for i in 0..<3 { gw[o * 3 + i] += scale * r * x[i] }
            }
        }
        weight.gradient = try Tensor(shape: [2, 3], scalars: gw)
        bias.gradient = Tensor(gb)
        return loss / Float(inputs.count * 2)
    }
}

@Suite("Optimizers fit a linear regression")
struct OptimizerLearningTests {
    private func fit(steps: Int, _ make: ([(String, Variable)]) throws -> Optimizer) throws -> Float {
        let problem = LinearRegressionProblem()
        let weight = Variable(try Tensor(zeros: [2, 3]), requiresGradient: true)
        let bias = Variable(try Tensor(zeros: [2]), requiresGradient: true)
        let optimizer = try make([("fc.weight", weight), ("fc.bias", bias)])
        var loss: Float = .infinity
        for _ in 0..<steps {
            optimizer.zeroGradients()
            loss = try problem.lossAndGradients(weight: weight, bias: bias)
            try optimizer.step()
        }
        return loss
    }

    @Test func sgdWithMomentumFitsWithin150Steps() throws {
        let loss = try fit(steps: 150) { try SGD(parameters: $0, learningRate: 0.1, momentum: 0.9) }
        #expect(loss < 1e-6, "loss \(loss)")
    }

    @Test func adamFitsWithin200Steps() throws {
        let loss = try fit(steps: 200) { try Adam(parameters: $0, learningRate: 0.05) }
        #expect(loss < 1e-6, "loss \(loss)")
    }
}
