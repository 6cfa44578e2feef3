import CNNKernels
import Synchronization

/// Keeps recently freed large tensor buffers for reuse by exact size.
///
/// A training step allocates the same activation and gradient sizes every iteration; fresh
/// allocations of that size come from `mmap` and cost a page fault per 4 KiB on first touch
/// (measured: 12% of a LeNet-5 step in the kernel's page clearing). Buffers of at least 64 KiB are
/// kept, at most 8 per size and 256 MiB in all; smaller ones go back to `malloc`, which already
/// recycles them.
enum StoragePool {
    struct State {
        var free: [Int: [UnsafeMutableRawPointer]] = [:]
        var bytes = 0
    }
    nonisolated(unsafe) private static var unsafeState = State()
    private static let lock = Mutex<Void>(())
    static let minimumBytes = 64 << 10
    static let maximumBytes = 256 << 20
    static let maximumPerSize = 8

    static func take(bytes: Int) -> UnsafeMutableRawPointer? {
        guard bytes >= minimumBytes else { return nil }
        return lock.withLock { _ in
            guard var list = unsafeState.free[bytes], let p = list.popLast() else { return nil }
            unsafeState.free[bytes] = list
            unsafeState.bytes -= bytes
            return p
        }
    }

    static func give(_ p: UnsafeMutableRawPointer, bytes: Int) -> Bool {
        guard bytes >= minimumBytes else { return false }
        return lock.withLock { _ in
            guard unsafeState.bytes + bytes <= maximumBytes, unsafeState.free[bytes, default: []].count < maximumPerSize else { return false }
            unsafeState.free[bytes, default: []].append(p)
            unsafeState.bytes += bytes
            return true
        }
    }

    /// Returns every kept buffer to the system.
    static func drain() {
        lock.withLock { _ in
            for (_, list) in unsafeState.free { for p in list { cnn_aligned_free(p) } }
            unsafeState = State()
        }
    }
}
