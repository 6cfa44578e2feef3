#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#elseif canImport(Musl)
import Musl
#endif

/// A learning rate as a function of the epoch: the closed forms of PyTorch's `torch.optim.lr_scheduler`.
///
/// A schedule is a pure value; a ``LearningRateScheduler`` applies it to an ``Optimizer``, counting
/// epochs (or iterations — a schedule does not care which unit its steps are, the caller decides how
/// often to call ``LearningRateScheduler/step()``). Schedules compose: ``SequentialLR`` runs one
/// schedule after another and ``LinearWarmup`` is a linear ramp followed by any schedule. Because the
/// rate is a closed form of the epoch, a resumed run needs only the epoch to continue identically.
public protocol LearningRateSchedule: Sendable {
    /// The learning rate at `epoch` (0 for the first epoch), for a run that started at `initial`.
    func learningRate(atEpoch epoch: Int, initial: Double) -> Double
}

private func requireSchedule(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    if !condition { throw CNNError.invalidArgument(message()) }
}

/// Decays the rate by γ every `stepSize` epochs — PyTorch's `StepLR`:
///
///     η(e) = η₀ · γ^⌊e / stepSize⌋
///
/// With η₀ = 0.1, stepSize 30 and γ = 0.1 (the ResNet recipe): 0.1 for epochs 0–29, 0.01 for
/// 30–59, 0.001 for 60–89.
public struct StepLR: LearningRateSchedule {
    /// The number of epochs between decays.
    public let stepSize: Int
    /// The factor γ applied at each decay.
    public let gamma: Double

    /// Creates the schedule.
    /// - Throws: ``CNNError/invalidArgument(_:)`` when `stepSize` < 1 or γ is not finite and > 0.
    public init(stepSize: Int, gamma: Double = 0.1) throws {
        try requireSchedule(stepSize >= 1, "StepLR: step size must be >= 1, got \(stepSize)")
        try requireSchedule(gamma.isFinite && gamma > 0, "StepLR: gamma must be finite and > 0, got \(gamma)")
        self.stepSize = stepSize
        self.gamma = gamma
    }

    /// η₀ · γ^⌊e / stepSize⌋.
    public func learningRate(atEpoch epoch: Int, initial: Double) -> Double {
        initial * pow(gamma, Double(epoch / stepSize))
    }
}

/// Decays the rate by γ at each milestone epoch — PyTorch's `MultiStepLR`:
///
///     η(e) = η₀ · γ^k,   k = the number of milestones ≤ e
///
/// A milestone listed twice decays twice. With η₀ = 0.1, milestones [30, 80] and γ = 0.1: 0.1 for
/// epochs 0–29, 0.01 for 30–79, 0.001 from 80.
public struct MultiStepLR: LearningRateSchedule {
    /// The epochs at which the rate decays, sorted.
    public let milestones: [Int]
    /// The factor γ applied at each milestone.
    public let gamma: Double

    /// Creates the schedule.
    /// - Throws: ``CNNError/invalidArgument(_:)`` for a negative milestone or γ not finite and > 0.
    public init(milestones: [Int], gamma: Double = 0.1) throws {
        for m in milestones { try requireSchedule(m >= 0, "MultiStepLR: milestone \(m) is negative") }
        try requireSchedule(gamma.isFinite && gamma > 0, "MultiStepLR: gamma must be finite and > 0, got \(gamma)")
        self.milestones = milestones.sorted()
        self.gamma = gamma
    }

    /// η₀ · γ^(number of milestones ≤ e).
    public func learningRate(atEpoch epoch: Int, initial: Double) -> Double {
        initial * pow(gamma, Double(milestones.lazy.filter { $0 <= epoch }.count))
    }
}

/// Decays the rate by γ every epoch — PyTorch's `ExponentialLR`:
///
///     η(e) = η₀ · γ^e
public struct ExponentialLR: LearningRateSchedule {
    /// The factor γ applied every epoch.
    public let gamma: Double

    /// Creates the schedule.
    /// - Throws: ``CNNError/invalidArgument(_:)`` when γ is not finite and > 0.
    public init(gamma: Double) throws {
        try requireSchedule(gamma.isFinite && gamma > 0, "ExponentialLR: gamma must be finite and > 0, got \(gamma)")
        self.gamma = gamma
    }

    /// η₀ · γ^e.
    public func learningRate(atEpoch epoch: Int, initial: Double) -> Double {
        initial * pow(gamma, Double(epoch))
    }
}

/// Cosine annealing from η₀ to η_min over T_max epochs (Loshchilov & Hutter 2017, without
/// restarts) — the closed form PyTorch's `CosineAnnealingLR` documents:
///
///     η(e) = η_min + (η₀ − η_min) · (1 + cos(π · e / T_max)) / 2
///
/// η(0) = η₀ and η(T_max) = η_min. Past T_max the formula continues (the rate rises again along the
/// cosine), as PyTorch's closed form does; size T_max to the run.
public struct CosineAnnealingLR: LearningRateSchedule {
    /// T_max, the number of epochs of the half cosine.
    public let maximumEpochs: Int
    /// η_min, the rate reached at T_max.
    public let minimumLearningRate: Double

    /// Creates the schedule.
    /// - Throws: ``CNNError/invalidArgument(_:)`` when T_max < 1 or η_min is negative or not finite.
    public init(maximumEpochs: Int, minimumLearningRate: Double = 0) throws {
        try requireSchedule(maximumEpochs >= 1, "CosineAnnealingLR: maximum epochs (T_max) must be >= 1, got \(maximumEpochs)")
        try requireSchedule(minimumLearningRate.isFinite && minimumLearningRate >= 0,
                            "CosineAnnealingLR: minimum learning rate must be finite and >= 0, got \(minimumLearningRate)")
        self.maximumEpochs = maximumEpochs
        self.minimumLearningRate = minimumLearningRate
    }

    /// η_min + (η₀ − η_min) · (1 + cos(π e / T_max)) / 2.
    public func learningRate(atEpoch epoch: Int, initial: Double) -> Double {
        minimumLearningRate + (initial - minimumLearningRate)
            * (1 + cos(Double.pi * Double(epoch) / Double(maximumEpochs))) / 2
    }
}

/// Scales the rate by a factor that moves linearly from `startFactor` to `endFactor` over
/// `totalEpochs`, then stays at `endFactor` — PyTorch's `LinearLR`, the usual warm-up:
///
///     η(e) = η₀ · (s + (f − s) · min(e, n) / n)
///
/// With s = 0.1, f = 1 and n = 5 from η₀ = 0.1: 0.01, 0.028, 0.046, 0.064, 0.082, then 0.1.
public struct LinearLR: LearningRateSchedule {
    /// s, the factor at epoch 0.
    public let startFactor: Double
    /// f, the factor from epoch n on.
    public let endFactor: Double
    /// n, the number of epochs of the ramp.
    public let totalEpochs: Int

    /// Creates the schedule.
    /// - Throws: ``CNNError/invalidArgument(_:)`` when s is not in (0, 1], f not in [0, 1] or n < 1
    ///   (PyTorch's bounds).
    public init(startFactor: Double = 1.0 / 3, endFactor: Double = 1, totalEpochs: Int = 5) throws {
        try requireSchedule(startFactor > 0 && startFactor <= 1, "LinearLR: start factor must be in (0, 1], got \(startFactor)")
        try requireSchedule(endFactor >= 0 && endFactor <= 1, "LinearLR: end factor must be in [0, 1], got \(endFactor)")
        try requireSchedule(totalEpochs >= 1, "LinearLR: total epochs must be >= 1, got \(totalEpochs)")
        self.startFactor = startFactor
        self.endFactor = endFactor
        self.totalEpochs = totalEpochs
    }

    /// η₀ · (s + (f − s) · min(e, n) / n).
    public func learningRate(atEpoch epoch: Int, initial: Double) -> Double {
        initial * (startFactor + (endFactor - startFactor) * Double(Swift.min(epoch, totalEpochs)) / Double(totalEpochs))
    }
}

/// Runs schedules one after another — PyTorch's `SequentialLR`: schedule i + 1 takes over at
/// milestone i and sees its own epochs counted from 0 there:
///
///     η(e) = schedule_k(e − m_k),   k = the number of milestones ≤ e,  m_0 = 0
///
/// Every schedule is evaluated with the same initial rate η₀.
public struct SequentialLR: LearningRateSchedule {
    /// The schedules, in order.
    public let schedules: [any LearningRateSchedule]
    /// The epochs at which each schedule after the first takes over, strictly increasing.
    public let milestones: [Int]

    /// Creates the sequence.
    /// - Throws: ``CNNError/invalidArgument(_:)`` unless there is one milestone fewer than schedules,
    ///   at least one schedule, and the milestones are positive and strictly increasing.
    public init(_ schedules: [any LearningRateSchedule], milestones: [Int]) throws {
        try requireSchedule(!schedules.isEmpty, "SequentialLR: needs at least one schedule")
        try requireSchedule(milestones.count == schedules.count - 1,
                            "SequentialLR: \(schedules.count) schedules need \(schedules.count - 1) milestones, got \(milestones.count)")
        for (i, m) in milestones.enumerated() {
            try requireSchedule(m >= 1 && (i == 0 || m > milestones[i - 1]),
                                "SequentialLR: milestones must be positive and strictly increasing, got \(milestones)")
        }
        self.schedules = schedules
        self.milestones = milestones
    }

    /// schedule_k(e − m_k).
    public func learningRate(atEpoch epoch: Int, initial: Double) -> Double {
        let k = milestones.lastIndex { $0 <= epoch }.map { $0 + 1 } ?? 0
        let start = k == 0 ? 0 : milestones[k - 1]
        return schedules[k].learningRate(atEpoch: epoch - start, initial: initial)
    }
}

/// A linear warm-up for `epochs` epochs from `startFactor`·η₀ towards η₀, then `schedule` with its
/// epochs counted from the end of the warm-up (Goyal et al. 2017):
///
///     η(e) = η₀ · (s + (1 − s) · e / n)    for e < n
///     η(e) = schedule(e − n)               for e ≥ n
///
/// It is ``SequentialLR`` of ``LinearLR``(s, 1, n) and `schedule` with milestone n.
///
/// ```swift
/// let schedule = try LinearWarmup(epochs: 5, startFactor: 0.1,
///                                 then: CosineAnnealingLR(maximumEpochs: 85))
/// ```
public struct LinearWarmup: LearningRateSchedule {
    /// n, the number of warm-up epochs.
    public let epochs: Int
    /// s, the fraction of η₀ at epoch 0.
    public let startFactor: Double
    /// The schedule that follows the warm-up.
    public let schedule: any LearningRateSchedule
    private let sequence: SequentialLR

    /// Creates the warm-up.
    /// - Throws: ``CNNError/invalidArgument(_:)`` when `epochs` < 1 or s is not in (0, 1].
    public init(epochs: Int, startFactor: Double = 0.1, then schedule: any LearningRateSchedule) throws {
        try requireSchedule(epochs >= 1, "LinearWarmup: epochs must be >= 1, got \(epochs)")
        try requireSchedule(startFactor > 0 && startFactor <= 1, "LinearWarmup: start factor must be in (0, 1], got \(startFactor)")
        self.epochs = epochs
        self.startFactor = startFactor
        self.schedule = schedule
        self.sequence = try SequentialLR([LinearLR(startFactor: startFactor, endFactor: 1, totalEpochs: epochs), schedule],
                                         milestones: [epochs])
    }

    /// The warm-up ramp, then the wrapped schedule.
    public func learningRate(atEpoch epoch: Int, initial: Double) -> Double {
        sequence.learningRate(atEpoch: epoch, initial: initial)
    }
}

/// Applies a ``LearningRateSchedule`` to an optimizer, PyTorch-style: creating the scheduler sets
/// the rate for epoch 0, and each ``step()`` (call it once at the end of each epoch — or iteration,
/// for per-iteration schedules) advances the epoch and sets the optimizer's rate to the schedule's.
///
/// The initial rate η₀ is the optimizer's learning rate when the scheduler is created. The
/// scheduler's whole state is ``State`` (the epoch and η₀), a `Codable` value: save it beside the
/// optimizer's ``Optimizer/stateDictionary()`` and restore it with ``load(_:)``.
///
/// ```swift
/// let scheduler = try LearningRateScheduler(optimizer: sgd, schedule: StepLR(stepSize: 30))
/// for epoch in 0..<90 { try train(epoch); scheduler.step() }
/// ```
public final class LearningRateScheduler {
    /// What a scheduler needs to resume.
    public struct State: Codable, Equatable, Sendable {
        /// The number of ``LearningRateScheduler/step()`` calls so far.
        public var epoch: Int
        /// η₀, the rate the schedule scales.
        public var initialLearningRate: Double

        /// Creates a state.
        public init(epoch: Int, initialLearningRate: Double) {
            self.epoch = epoch
            self.initialLearningRate = initialLearningRate
        }
    }

    /// The optimizer whose ``Optimizer/learningRate`` this scheduler sets.
    public let optimizer: Optimizer
    /// The schedule.
    public let schedule: any LearningRateSchedule
    /// The current epoch and initial rate.
    public private(set) var state: State

    /// Creates a scheduler and sets the optimizer's rate for epoch 0.
    /// - Throws: ``CNNError/invalidArgument(_:)`` when the schedule's rate at epoch 0 is negative or
    ///   not finite.
    public init(optimizer: Optimizer, schedule: any LearningRateSchedule) throws {
        self.optimizer = optimizer
        self.schedule = schedule
        self.state = State(epoch: 0, initialLearningRate: Double(optimizer.learningRate))
        try apply()
    }

    /// The current epoch (the number of ``step()`` calls).
    public var epoch: Int { state.epoch }

    /// The schedule's rate at the current epoch, in double precision.
    public var learningRate: Double { schedule.learningRate(atEpoch: state.epoch, initial: state.initialLearningRate) }

    /// Advances one epoch and sets the optimizer's rate.
    /// - Throws: ``CNNError/invalidArgument(_:)`` when the schedule's rate is negative or not finite;
    ///   the epoch then does not advance.
    public func step() throws {
        let rate = schedule.learningRate(atEpoch: state.epoch + 1, initial: state.initialLearningRate)
        try requireSchedule(rate.isFinite && rate >= 0,
                            "LearningRateScheduler: the schedule gives learning rate \(rate) at epoch \(state.epoch + 1)")
        state.epoch += 1
        optimizer.learningRate = Float(rate)
    }

    /// Restores a saved state and sets the optimizer's rate for its epoch.
    /// - Throws: ``CNNError/invalidArgument(_:)`` for a negative epoch or an initial rate that is
    ///   negative or not finite; the scheduler is then unchanged.
    public func load(_ saved: State) throws {
        try requireSchedule(saved.epoch >= 0, "LearningRateScheduler.load: epoch \(saved.epoch) is negative")
        try requireSchedule(saved.initialLearningRate.isFinite && saved.initialLearningRate >= 0,
                            "LearningRateScheduler.load: initial learning rate \(saved.initialLearningRate) must be finite and >= 0")
        let rate = schedule.learningRate(atEpoch: saved.epoch, initial: saved.initialLearningRate)
        try requireSchedule(rate.isFinite && rate >= 0, "LearningRateScheduler.load: the schedule gives learning rate \(rate) at epoch \(saved.epoch)")
        state = saved
        optimizer.learningRate = Float(rate)
    }

    private func apply() throws {
        let rate = learningRate
        try requireSchedule(rate.isFinite && rate >= 0,
                            "LearningRateScheduler: the schedule gives learning rate \(rate) at epoch \(state.epoch)")
        optimizer.learningRate = Float(rate)
    }
}
