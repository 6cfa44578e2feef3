import Foundation
import Testing
@testable import CNN

private func scheduleOptimizer(learningRate: Float = 0.1) throws -> SGD {
    try SGD(parameters: [("w", Variable(Tensor([1]), requiresGradient: true))], learningRate: learningRate)
}

/// The optimizer's rate at epochs 0..<epochs under `schedule` (set at creation, then after each step).
private func rates(_ schedule: any LearningRateSchedule, epochs: Int, initial: Float = 0.1) throws -> [Float] {
    let sgd = try scheduleOptimizer(learningRate: initial)
    let scheduler = try LearningRateScheduler(optimizer: sgd, schedule: schedule)
    var result = [sgd.learningRate]
    for _ in 1..<epochs {
        try scheduler.step()
        result.append(sgd.learningRate)
    }
    return result
}

/// Rates match when they agree to Float precision (the schedule computes in Double, the optimizer
/// holds Float): relative 2 ulps.
private func expectRates(_ actual: [Float], _ expected: [Double], sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(actual.count == expected.count, sourceLocation: sourceLocation)
    for (e, (a, x)) in zip(actual, expected).enumerated() {
        #expect(abs(Double(a) - x) <= 2 * Double(Float.ulpOfOne) * abs(x), "epoch \(e): got \(a), expected \(x)",
                sourceLocation: sourceLocation)
    }
}

@Suite("Learning-rate schedules")
struct ScheduleTests {
    @Test func stepLRTheResNetRecipe() throws {
        // PyTorch's StepLR docs: lr = 0.05 for epoch < 30, 0.005 for 30 <= epoch < 60, ...; here from 0.1.
        let r = try rates(StepLR(stepSize: 30, gamma: 0.1), epochs: 90)
        expectRates(r, (0..<90).map { $0 < 30 ? 0.1 : $0 < 60 ? 0.01 : 0.001 })
    }

    @Test func multiStepLR() throws {
        // PyTorch's MultiStepLR docs: milestones [30, 80], gamma 0.1.
        let r = try rates(MultiStepLR(milestones: [80, 30], gamma: 0.1), epochs: 100, initial: 0.05)
        expectRates(r, (0..<100).map { $0 < 30 ? 0.05 : $0 < 80 ? 0.005 : 0.0005 })
        let doubled = try rates(MultiStepLR(milestones: [2, 2], gamma: 0.5), epochs: 4, initial: 1)
        expectRates(doubled, [1, 1, 0.25, 0.25])
    }

    @Test func exponentialLR() throws {
        let r = try rates(ExponentialLR(gamma: 0.9), epochs: 20)
        expectRates(r, (0..<20).map { 0.1 * pow(0.9, Double($0)) })
    }

    @Test func cosineAnnealing() throws {
        // T_max 4 from 1 to 0: 1, (1 + cos(π/4))/2, 1/2, (1 − cos(π/4))/2, 0.
        let c = 0.5 * 2.0.squareRoot() / 2
        let r = try rates(CosineAnnealingLR(maximumEpochs: 4), epochs: 5, initial: 1)
        expectRates(Array(r.prefix(4)), [1, 0.5 + c, 0.5, 0.5 - c])
        #expect(abs(r[4]) < 1e-7)
        let withMinimum = try rates(CosineAnnealingLR(maximumEpochs: 10, minimumLearningRate: 0.001), epochs: 11)
        expectRates(withMinimum, (0...10).map { 0.001 + (0.1 - 0.001) * (1 + cos(Double.pi * Double($0) / 10)) / 2 })
        expectRates([withMinimum[10]], [0.001])
    }

    @Test func linearWarmupThenCosine() throws {
        let schedule = try LinearWarmup(epochs: 5, startFactor: 0.1, then: CosineAnnealingLR(maximumEpochs: 10))
        let r = try rates(schedule, epochs: 16)
        let warm: [Double] = [0.01, 0.028, 0.046, 0.064, 0.082]
        let cosine = (0...10).map { 0.1 * (1 + cos(Double.pi * Double($0) / 10)) / 2 }
        expectRates(Array(r.prefix(15)), warm + Array(cosine.prefix(10)))
        #expect(abs(r[15]) < 1e-8)
        // LinearLR on its own holds the end factor after the ramp (PyTorch's LinearLR docs example).
        let linear = try rates(LinearLR(startFactor: 0.5, endFactor: 1, totalEpochs: 4), epochs: 6, initial: 0.05)
        expectRates(linear, [0.025, 0.03125, 0.0375, 0.04375, 0.05, 0.05])
    }

    @Test func sequentialLR() throws {
        let schedule = try SequentialLR([LinearLR(startFactor: 0.5, totalEpochs: 2), ExponentialLR(gamma: 0.5),
                                         StepLR(stepSize: 2, gamma: 0.1)], milestones: [2, 4])
        let r = try rates(schedule, epochs: 8, initial: 1)
        expectRates(r, [0.5, 0.75, 1, 0.5, 1, 1, 0.1, 0.1])
    }

    @Test func schedulerStateRoundTripsThroughCodable() throws {
        let schedule = try LinearWarmup(epochs: 3, then: MultiStepLR(milestones: [4, 6]))
        let a = try scheduleOptimizer()
        let scheduler = try LearningRateScheduler(optimizer: a, schedule: schedule)
        for _ in 0..<5 { try scheduler.step() }
        let data = try JSONEncoder().encode(scheduler.state)

        let b = try scheduleOptimizer(learningRate: 123)
        let resumed = try LearningRateScheduler(optimizer: b, schedule: schedule)
        try resumed.load(try JSONDecoder().decode(LearningRateScheduler.State.self, from: data))
        #expect(b.learningRate == a.learningRate && resumed.epoch == 5)
        for _ in 0..<6 {
            try scheduler.step(); try resumed.step()
            #expect(a.learningRate == b.learningRate)
        }
        #expect(throws: CNNError.invalidArgument("LearningRateScheduler.load: epoch -1 is negative")) {
            try resumed.load(.init(epoch: -1, initialLearningRate: 0.1))
        }
        #expect(resumed.epoch == 11)
    }

    @Test func invalidSchedulesThrow() throws {
        #expect(throws: CNNError.invalidArgument("StepLR: step size must be >= 1, got 0")) { try StepLR(stepSize: 0) }
        #expect(throws: CNNError.invalidArgument("StepLR: gamma must be finite and > 0, got -0.1")) {
            try StepLR(stepSize: 3, gamma: -0.1)
        }
        #expect(throws: CNNError.invalidArgument("MultiStepLR: milestone -3 is negative")) {
            try MultiStepLR(milestones: [-3])
        }
        #expect(throws: CNNError.invalidArgument("ExponentialLR: gamma must be finite and > 0, got 0.0")) {
            try ExponentialLR(gamma: 0)
        }
        #expect(throws: CNNError.invalidArgument("CosineAnnealingLR: maximum epochs (T_max) must be >= 1, got 0")) {
            try CosineAnnealingLR(maximumEpochs: 0)
        }
        #expect(throws: CNNError.invalidArgument("LinearLR: start factor must be in (0, 1], got 0.0")) {
            try LinearLR(startFactor: 0)
        }
        #expect(throws: CNNError.invalidArgument("SequentialLR: 2 schedules need 1 milestones, got 0")) {
            try SequentialLR([ExponentialLR(gamma: 0.9), ExponentialLR(gamma: 0.5)], milestones: [])
        }
        #expect(throws: CNNError.invalidArgument("SequentialLR: milestones must be positive and strictly increasing, got [3, 3]")) {
            try SequentialLR([ExponentialLR(gamma: 0.9), ExponentialLR(gamma: 0.5), ExponentialLR(gamma: 0.5)],
                             milestones: [3, 3])
        }
        #expect(throws: CNNError.invalidArgument("LinearWarmup: epochs must be >= 1, got 0")) {
            try LinearWarmup(epochs: 0, then: ExponentialLR(gamma: 0.9))
        }
        let sgd = try scheduleOptimizer()
        #expect(throws: CNNError.invalidArgument("ReduceLROnPlateau: factor must be in (0, 1), got 1.0")) {
            try ReduceLROnPlateau(optimizer: sgd, factor: 1)
        }
        #expect(throws: CNNError.invalidArgument("ReduceLROnPlateau: patience must be >= 0, got -1")) {
            try ReduceLROnPlateau(optimizer: sgd, patience: -1)
        }
    }
}

@Suite("ReduceLROnPlateau")
struct PlateauScheduleTests {
    private func run(_ plateau: ReduceLROnPlateau, _ metrics: [Double]) -> [Float] {
        metrics.map { plateau.step(metric: $0); return plateau.optimizer.learningRate }
    }

    @Test func defaultsDivideByTenAfterElevenBadEpochs() throws {
        let sgd = try scheduleOptimizer()
        let plateau = try ReduceLROnPlateau(optimizer: sgd)
        // Epoch 1 sets best; epochs 2–12 do not improve: the 11th of them (> patience 10) reduces.
        let r = run(plateau, [1.0] + Array(repeating: 1.0, count: 11) + [0.5])
        expectRates(Array(r.prefix(11)), Array(repeating: 0.1, count: 11))
        expectRates(Array(r.suffix(2)), [0.01, 0.01])
        #expect(plateau.state.best == 0.5 && plateau.state.epoch == 13)
    }

    @Test func relativeThresholdCooldownAndPatience() throws {
        // Traced by hand from PyTorch's step(): patience 2, relative threshold 0.1 (better means
        // < 0.9·best), cooldown 1. 9.5, 9.2 and 9.1 are not 10% better than 10: bad epochs 1, 2, 3 →
        // reduce at epoch 4; 8 is better; cooldown swallows epoch 5's count; 8 repeated: bad 1, 2, 3 →
        // reduce at epoch 8; epoch 9 in cooldown; bad 1, 2, 3 at epochs 10–12 → reduce.
        let sgd = try scheduleOptimizer(learningRate: 1)
        let plateau = try ReduceLROnPlateau(optimizer: sgd, patience: 2, threshold: 0.1, cooldown: 1)
        let r = run(plateau, [10, 9.5, 9.2, 9.1, 8, 8, 8, 8, 8, 8, 8, 8])
        expectRates(r, [1, 1, 1, 0.1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01, 0.001])
    }

    @Test func absoluteThresholdMaxModeAndMinimum() throws {
        // Max mode, absolute threshold 0.5: 80.4 is not > 80 + 0.5; 81 is.
        let sgd = try scheduleOptimizer(learningRate: 1)
        let plateau = try ReduceLROnPlateau(optimizer: sgd, mode: .max, factor: 0.5, patience: 1, threshold: 0.5,
                                            thresholdMode: .absolute, minimumLearningRate: 0.3)
        let r = run(plateau, [80, 80.4, 81, 81.2, 81.4, 90, 89, 88, 87, 86])
        // epoch 2 bad 1; 3 better; 4 bad 1; 5 bad 2 → 0.5; 6 better; 7 bad 1; 8 bad 2 → max(0.25, 0.3) = 0.3;
        // 9 bad 1; 10 bad 2 → max(0.15, 0.3) = 0.3, a change below ε: unchanged.
        expectRates(r, [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.3, 0.3, 0.3])
        #expect(plateau.isBetter(.nan, than: 1) == false)
    }

    @Test func stateRoundTrips() throws {
        let a = try scheduleOptimizer(learningRate: 1), b = try scheduleOptimizer(learningRate: 1)
        let first = try ReduceLROnPlateau(optimizer: a, patience: 1, cooldown: 2)
        let metrics: [Double] = [5, 5, 5, 4, 4, 4, 4, 4, 3, 3, 3, 3]
        for m in metrics.prefix(5) { first.step(metric: m) }
        let encoder = JSONEncoder()
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let data = try encoder.encode(first.state)
        let second = try ReduceLROnPlateau(optimizer: b, patience: 1, cooldown: 2)
        try second.load(try JSONDecoder().decode(ReduceLROnPlateau.State.self, from: data))
        b.learningRate = a.learningRate
        for m in metrics.dropFirst(5) {
            #expect(first.step(metric: m) == second.step(metric: m))
            #expect(a.learningRate == b.learningRate)
        }
        #expect(first.state == second.state)
        #expect(throws: CNNError.self) { try second.load(.init(best: 1, badEpochs: -1, cooldownCounter: 0, epoch: 0)) }
    }
}
