import Foundation
import Testing
@testable import CNN

/// Resident memory of this process in KiB (`VmRSS` in /proc/self/status), or `nil` off Linux.
func residentKiB() -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])
    }
    return nil
}

@Suite("Reliability: memory", .serialized)
struct ReliabilityMemoryTests {
    /// 200 training steps of LeNet-5 on batches of 16 after 20 warm-up steps: the resident size may
    /// grow by at most 12 MiB (allocator arenas and caches settle). A leaked batch of activations per
    /// step would be ~0.5 MiB a step (100 MiB in all); leaked parameter gradients 0.24 MiB a step.
    /// Whether AddressSanitizer or ThreadSanitizer is in the process: their allocators hold freed
    /// memory back (ASan's quarantine is 256 MiB), so resident size says nothing about leaks there;
    /// LeakSanitizer checks leaks in the ASan run instead.
    static var isSanitized: Bool { dlsym(nil, "__asan_init") != nil || dlsym(nil, "__tsan_init") != nil }

    @Test("a long training loop does not grow resident memory")
    func noGrowth() throws {
        guard residentKiB() != nil, !Self.isSanitized else { return }
        GlobalGenerator.seed(4)
        let model = try LeNet5()
        let optimizer = try Adam(parameters: model.namedParameters(), learningRate: 1e-3)
        var g = SeededGenerator(seed: 5)
        let images = try Tensor.uniform(shape: [16, 1, 28, 28], lower: 0, upper: 1, generator: &g)
        let labels = (0..<16).map { Int32($0 % 10) }
        func step() throws {
            optimizer.zeroGradients()
            let loss = try Functional.crossEntropy(logits: try model(Variable(images)), labels: labels)
            try loss.backward()
            try optimizer.step()
        }
        for _ in 0..<20 { try step() }
        let before = residentKiB()!
        for _ in 0..<200 { try step() }
        let after = residentKiB()!
        #expect(after - before < 12 * 1024, "resident memory grew from \(before) KiB to \(after) KiB over 200 steps")
    }

    @Test("sizes known to be too large fail with outOfMemory before allocating", arguments: [
        [1 << 40], [1 << 20, 1 << 20, 1 << 20], [Int.max, 2], [1 << 62, 1 << 62],
    ])
    func hugeTensor(shape: [Int]) {
        #expect(throws: CNNError.outOfMemory("Tensor: shape \(shape) has too many elements")) { try Tensor(zeros: shape) }
    }

    @Test("a convolution layer with an absurd weight fails cleanly")
    func hugeConvolution() {
        #expect(throws: CNNError.outOfMemory("Tensor: shape [1048576, 1048576, 1024, 1024] has too many elements")) {
            try Conv2d(inputChannels: 1 << 20, outputChannels: 1 << 20, kernelSize: 1 << 10)
        }
    }

    @Test("a linear layer with an absurd weight fails cleanly")
    func hugeLinear() {
        #expect(throws: CNNError.outOfMemory("Tensor: shape [4294967296, 4294967296] has too many elements")) {
            try Linear(inputFeatures: 1 << 32, outputFeatures: 1 << 32)
        }
    }
}
