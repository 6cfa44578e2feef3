/// Every error the library throws on input a user can get wrong.
///
/// Each case carries a message that names the operation and the values involved, for example
/// `"add: shapes [2, 3] and [4] cannot be broadcast"`.
public enum CNNError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Shapes that do not fit the operation.
    case shapeMismatch(String)
    /// An argument out of its range (a non-positive size, a stride of 0, an axis out of range).
    case invalidArgument(String)
    /// An operation or algorithm that does not apply (Winograd on a 7x7 kernel, an ISA the CPU lacks).
    case unsupported(String)
    /// A file that cannot be read or does not have the expected format.
    case invalidFile(String)
    /// An input/output failure from the system.
    case io(String)
    /// An allocation that failed or would exceed a stated limit.
    case outOfMemory(String)
    /// Autograd used in a way it does not allow (backward twice through one record, a non-scalar loss).
    case autograd(String)
    /// Training stopped because the loss stopped being finite.
    case diverged(String)

    /// The message alone.
    public var message: String {
        switch self {
        case .shapeMismatch(let m), .invalidArgument(let m), .unsupported(let m), .invalidFile(let m),
             .io(let m), .outOfMemory(let m), .autograd(let m), .diverged(let m):
            return m
        }
    }

    /// The kind of error and its message.
    public var description: String {
        switch self {
        case .shapeMismatch(let m): return "shape mismatch: \(m)"
        case .invalidArgument(let m): return "invalid argument: \(m)"
        case .unsupported(let m): return "unsupported: \(m)"
        case .invalidFile(let m): return "invalid file: \(m)"
        case .io(let m): return "I/O error: \(m)"
        case .outOfMemory(let m): return "out of memory: \(m)"
        case .autograd(let m): return "autograd: \(m)"
        case .diverged(let m): return "diverged: \(m)"
        }
    }
}
