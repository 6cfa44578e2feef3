import Synchronization

/// The process-wide generator layers draw their initial weights from, like PyTorch's
/// `torch.manual_seed`. Seed it before building a model for reproducible weights.
public enum GlobalGenerator {
    private static let generator = Mutex(SeededGenerator(seed: 0))

    /// Restarts the sequence from `seed`.
    public static func seed(_ seed: UInt64) { generator.withLock { $0 = SeededGenerator(seed: seed) } }

    /// Runs `body` with exclusive use of the generator.
    public static func with<R>(_ body: (inout SeededGenerator) throws -> R) rethrows -> R {
        try generator.withLock { try body(&$0) }
    }

    /// The next 64 random bits.
    public static func next() -> UInt64 { generator.withLock { $0.next() } }
}
