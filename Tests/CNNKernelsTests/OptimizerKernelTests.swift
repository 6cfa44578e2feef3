// The optimizer-update kernels' argument checks (cnn_sgd_update, cnn_adam_update,
// cnn_rmsprop_update). Their arithmetic is tested through the CNN module's optimizers against
// float64 references in Tests/CNNTests/OptimizerTests.swift.

import CNNKernels
import Testing

@Suite struct OptimizerKernelArgumentTests {
    /// n == 0 succeeds without touching memory (every pointer NULL); n < 0 is invalid.
    @Test func emptyAndNegativeCounts() {
        #expect(cnn_sgd_update(0, nil, nil, nil, 0.1, 0.9, 0, 0, 0, 1) == CNN_OK)
        #expect(cnn_adam_update(0, nil, nil, nil, nil, nil, 0.1, 0.9, 0.999, 1e-8, 0, 0, 1) == CNN_OK)
        #expect(cnn_rmsprop_update(0, nil, nil, nil, nil, nil, 0.1, 0.99, 1e-8, 0, 0.9) == CNN_OK)
        var p: [Float] = [1], g: [Float] = [1], a: [Float] = [0], b: [Float] = [0]
        #expect(cnn_sgd_update(-1, &p, g, nil, 0.1, 0, 0, 0, 0, 1) == CNN_ERR_INVALID_ARGUMENT)
        #expect(cnn_adam_update(-1, &p, g, &a, &b, nil, 0.1, 0.9, 0.999, 1e-8, 0, 0, 1) == CNN_ERR_INVALID_ARGUMENT)
        #expect(cnn_rmsprop_update(-1, &p, g, &a, nil, nil, 0.1, 0.99, 1e-8, 0, 0) == CNN_ERR_INVALID_ARGUMENT)
        #expect(p == [1] && a == [0] && b == [0])
    }

    /// Buffers the options require, a step before the first, Nesterov without momentum and a
    /// negative or NaN momentum are invalid, and nothing is written.
    @Test func missingBuffersAndBadOptionsAreInvalid() {
        var p: [Float] = [1, 2, 3], g: [Float] = [0.5, -0.5, 1], a = [Float](repeating: 0, count: 3)
        var b = a
        let invalid = CNN_ERR_INVALID_ARGUMENT
        #expect(cnn_sgd_update(3, nil, g, nil, 0.1, 0, 0, 0, 0, 1) == invalid)
        #expect(cnn_sgd_update(3, &p, nil, nil, 0.1, 0, 0, 0, 0, 1) == invalid)
        #expect(cnn_sgd_update(3, &p, g, nil, 0.1, 0.9, 0, 0, 0, 1) == invalid)   // momentum needs its buffer
        #expect(cnn_sgd_update(3, &p, g, &a, 0.1, 0, 0, 1, 0, 1) == invalid)      // Nesterov needs momentum
        #expect(cnn_sgd_update(3, &p, g, &a, 0.1, -0.5, 0, 0, 0, 1) == invalid)
        #expect(cnn_sgd_update(3, &p, g, &a, 0.1, .nan, 0, 0, 0, 1) == invalid)
        #expect(cnn_adam_update(3, &p, g, nil, &b, nil, 0.1, 0.9, 0.999, 1e-8, 0, 0, 1) == invalid)
        #expect(cnn_adam_update(3, &p, g, &a, nil, nil, 0.1, 0.9, 0.999, 1e-8, 0, 0, 1) == invalid)
        #expect(cnn_adam_update(3, &p, g, &a, &b, nil, 0.1, 0.9, 0.999, 1e-8, 0, 0, 0) == invalid)  // step 0
        #expect(cnn_rmsprop_update(3, &p, g, nil, nil, nil, 0.1, 0.99, 1e-8, 0, 0) == invalid)
        #expect(cnn_rmsprop_update(3, &p, g, &a, nil, nil, 0.1, 0.99, 1e-8, 0, 0.9) == invalid)  // momentum needs its buffer
        #expect(cnn_rmsprop_update(3, &p, g, &a, &b, nil, 0.1, 0.99, 1e-8, 0, -1) == invalid)
        #expect(p == [1, 2, 3] && a == [0, 0, 0] && b == [0, 0, 0])
    }

    /// Without momentum the momentum buffer is ignored (may be NULL): plain SGD p − lr·(g + λp),
    /// exact in float for these values.
    @Test func bufferIsOptionalWithoutMomentum() {
        var p: [Float] = [1, 2, -4], g: [Float] = [0.5, -0.5, 1]
        #expect(cnn_sgd_update(3, &p, g, nil, 0.5, 0, 0, 0, 0.5, 1) == CNN_OK)
        let expected: [Float] = [0.5, 1.75, -3.5]  // 1 − 0.5·(0.5 + 0.5), 2 − 0.5·(−0.5 + 1), −4 − 0.5·(1 − 2)
        #expect(p == expected)
    }
}
