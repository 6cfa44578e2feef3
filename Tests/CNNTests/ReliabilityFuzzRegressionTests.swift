import Foundation
import Testing
@testable import CNN

/// Inputs that crashed a fuzz target (Fuzz/), each now a thrown error. The files are in
/// Fixtures/fuzz/ exactly as the fuzzer (or its reduction) produced them.
@Suite("Reliability: fuzz regressions")
struct ReliabilityFuzzRegressionTests {
    static func fixture(_ name: String) throws -> Data {
        let url = try #require(Bundle.module.url(forResource: "Fixtures/fuzz/" + name, withExtension: nil))
        return try Data(contentsOf: url)
    }

    /// FuzzAutotune: a padding of Int.max in an autotune table trapped on arithmetic overflow in
    /// `ConvolutionGeometry.outputSize()` (`height + 2 * padding`).
    @Test("autotune table with a padding of Int.max")
    func autotunePaddingOverflow() throws {
        let tuner = ConvolutionAutotuner()
        #expect(throws: CNNError.invalidArgument("conv2d: sizes, strides, paddings and dilations must be at most 2147483647: N=1 C=3 H=8 W=8 K=4 3x3 s1 p9223372036854775807x1 d1 g1")) {
            try tuner.load(json: try Self.fixture("autotune-padding-overflow.json"), source: "t.json")
        }
        #expect(tuner.entries.isEmpty)
    }

    /// The same overflow reached from a layer: a huge padding or dilation is refused when the
    /// layer is applied.
    @Test("Conv2d with a huge padding or dilation throws instead of overflowing",
          arguments: [(Int.max / 2, 1), (0, Int.max / 2), (Int(Int32.max) + 1, 1)])
    func hugeLayerGeometry(padding: Int, dilation: Int) throws {
        let conv = try Conv2d(inputChannels: 1, outputChannels: 1, kernelSize: 3, padding: padding, dilation: dilation)
        #expect(throws: CNNError.self) { try conv(try Tensor(zeros: [1, 1, 4, 4])) }
        do { _ = try conv(try Tensor(zeros: [1, 1, 4, 4])) } catch let error as CNNError {
            guard case .invalidArgument(let message) = error else { Issue.record("got \(error)"); return }
            #expect(message.hasPrefix("conv2d: sizes, strides, paddings and dilations must be at most 2147483647"))
        }
    }
}
