import CNNKernels
import Testing
@testable import CNN

@Suite struct RuntimeTests {
    @Test func detectedISAIsActiveOrHigher() {
        #expect(ComputeRuntime.activeISA <= ComputeRuntime.detectedISA)
        #expect(ComputeRuntime.supportedISAs.contains(.generic))
    }

    @Test func threadCountRejectsZero() {
        #expect(throws: CNNError.invalidArgument("thread count must be at least 1, got 0")) {
            try ComputeRuntime.setThreadCount(0)
        }
    }

    @Test func workspaceIsAlignedAndReused() {
        let a = cnn_workspace(0, 1000)
        #expect(a != nil)
        #expect(Int(bitPattern: a) % 64 == 0)
        let b = cnn_workspace(0, 10)
        #expect(a == b)
        #expect(cnn_workspace(-1, 10) == nil)
    }

    /// Buffers of 4 MiB or more start on a 2 MiB boundary while huge pages are on (Linux), and on
    /// 64 bytes otherwise; every byte is usable either way.
    @Test func largeAllocationsFollowTheHugePageSetting() throws {
        let before = ComputeRuntime.usesHugePages
        defer { ComputeRuntime.setHugePages(before) }
        let huge = 2 << 20
        for on in [true, false] {
            ComputeRuntime.setHugePages(on)
            #if os(Linux)
            #expect(ComputeRuntime.usesHugePages == on)
            #else
            #expect(!ComputeRuntime.usesHugePages)
            #endif
            for bytes in [64, (4 << 20) - 64, 4 << 20, (9 << 20) + 12] {
                let raw = try #require(cnn_aligned_alloc(bytes))
                defer { cnn_aligned_free(raw) }
                let address = Int(bitPattern: raw)
                #expect(address % 64 == 0)
                if ComputeRuntime.usesHugePages && bytes >= 4 << 20 {
                    #expect(address % huge == 0, "\(bytes) bytes at \(address)")
                }
                let p = raw.bindMemory(to: UInt8.self, capacity: bytes)
                p[0] = 1
                p[bytes - 1] = 2
                #expect(p[0] == 1 && p[bytes - 1] == 2)
            }
        }
        #expect(cnn_aligned_alloc(0) == nil)
    }

    @Test func peakProbeIsPositiveForEverySupportedISA() {
        for isa in ComputeRuntime.supportedISAs {
            let g = ComputeRuntime.peakGFLOPS(isa: isa, threads: 1, seconds: 0.02)
            #expect((g ?? 0) > 0.5, "peak for \(isa)")
        }
    }
}
