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

    @Test func peakProbeIsPositiveForEverySupportedISA() {
        for isa in ComputeRuntime.supportedISAs {
            let g = ComputeRuntime.peakGFLOPS(isa: isa, threads: 1, seconds: 0.02)
            #expect((g ?? 0) > 0.5, "peak for \(isa)")
        }
    }
}
