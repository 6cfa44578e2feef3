import CNNKernels

/// An instruction-set variant of the kernels.
///
/// Hot kernels are compiled three times — for AVX-512, for AVX2 with FMA, and as portable C — and the
/// best variant the processor supports is chosen once, at run time, from `cpuid`. Tests and
/// benchmarks can force a lower variant with ``ComputeRuntime/setISA(_:)`` or the environment
/// variable `CNN_ISA=avx512|avx2|generic`.
public enum ISA: String, CaseIterable, Sendable, Comparable, CustomStringConvertible {
    /// Portable C, written so the compiler vectorises it; also the variant used on arm64.
    case generic
    /// x86-64 AVX2 with fused multiply-add.
    case avx2
    /// x86-64 AVX-512 (F, BW, DQ, VL).
    case avx512

    var cValue: cnn_isa {
        switch self {
        case .generic: return CNN_ISA_GENERIC
        case .avx2: return CNN_ISA_AVX2
        case .avx512: return CNN_ISA_AVX512
        }
    }

    init(_ c: cnn_isa) {
        switch c {
        case CNN_ISA_AVX512: self = .avx512
        case CNN_ISA_AVX2: self = .avx2
        default: self = .generic
        }
    }

    private var rank: Int { Int(cValue.rawValue) }

    /// Variants are ordered: a processor that runs one runs every lower one.
    public static func < (lhs: ISA, rhs: ISA) -> Bool { lhs.rank < rhs.rank }

    /// The variant's name as `CNN_ISA` spells it.
    public var description: String { rawValue }
}

/// Process-wide settings of the compute kernels: instruction-set variant, thread count and huge
/// pages.
///
/// These settings are global to the process, as are OpenMP's; change them between, not during,
/// computations.
public enum ComputeRuntime {
    /// The best instruction-set variant this processor supports.
    public static var detectedISA: ISA { ISA(cnn_isa_detected()) }

    /// The variant the kernels use now.
    public static var activeISA: ISA { ISA(cnn_isa_active()) }

    /// Every variant this processor can run, lowest first.
    public static var supportedISAs: [ISA] { ISA.allCases.filter { $0 <= detectedISA } }

    /// Selects the kernels' instruction-set variant for the whole process.
    ///
    /// - Throws: ``CNNError/unsupported(_:)`` when the processor lacks the variant.
    public static func setISA(_ isa: ISA) throws {
        let status = cnn_isa_set(isa.cValue)
        guard status == CNN_OK else {
            throw CNNError.unsupported(
                "instruction set \(isa) is not supported by this processor (it supports up to \(detectedISA))")
        }
    }

    /// Runs `body` with the kernels forced to `isa`, then restores the previous variant.
    public static func withISA<R>(_ isa: ISA, _ body: () throws -> R) throws -> R {
        let previous = activeISA
        try setISA(isa)
        defer { _ = cnn_isa_set(previous.cValue) }
        return try body()
    }

    /// Whether the library was built with OpenMP (the default `OpenMP` package trait).
    public static var isOpenMPEnabled: Bool { cnn_openmp_enabled() != 0 }

    /// The number of threads the kernels use. Defaults to all cores, or `OMP_NUM_THREADS` when set.
    /// Without OpenMP it is always 1.
    public static var threadCount: Int { Int(cnn_num_threads()) }

    /// Sets the number of threads the kernels use; `nil` restores the default.
    ///
    /// - Throws: ``CNNError/invalidArgument(_:)`` when `count` is less than 1.
    public static func setThreadCount(_ count: Int?) throws {
        if let count {
            guard count >= 1 else {
                throw CNNError.invalidArgument("thread count must be at least 1, got \(count)")
            }
            cnn_set_num_threads(Int32(clamping: count))
        } else {
            cnn_set_num_threads(0)
        }
    }

    /// Online processors.
    public static var processorCount: Int { Int(cnn_num_processors()) }

    /// Whether large buffers ask the operating system for transparent huge pages.
    ///
    /// On Linux every buffer of 4 MiB or more that the library allocates (tensor storage, packed
    /// and Winograd-transformed weights, workspaces) starts on a 2 MiB boundary and is advised as
    /// huge pages (`madvise(MADV_HUGEPAGE)`), so streaming a large weight matrix needs one TLB
    /// entry per 2 MiB instead of 512. It is on by default there, off when the environment has
    /// `CNN_HUGE_PAGES=0`, and always off on other systems. The kernel's own setting still
    /// decides (`/sys/kernel/mm/transparent_hugepage/enabled`: `always` or `madvise` honours the
    /// advice, `never` ignores it).
    public static var usesHugePages: Bool { cnn_huge_pages() != 0 }

    /// Turns huge pages on or off for buffers allocated from now on (see ``usesHugePages``);
    /// buffers that already exist keep their pages. Has no effect where huge pages are not
    /// supported.
    public static func setHugePages(_ on: Bool) {
        _ = cnn_set_huge_pages(on ? 1 : 0)
    }

    /// Probes the float32 fused-multiply-add peak of one variant, in GFLOP/s.
    ///
    /// Each thread runs 12 independent multiply-add chains held in registers for about `seconds`;
    /// the best of three runs is returned.
    /// - Returns: `nil` when the processor lacks the variant.
    public static func peakGFLOPS(isa: ISA, threads: Int, seconds: Double = 0.2) -> Double? {
        let value = cnn_peak_gflops(isa.cValue, Int32(clamping: threads), seconds)
        return value < 0 ? nil : value
    }
}
