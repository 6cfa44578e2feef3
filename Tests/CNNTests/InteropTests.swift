import Foundation
import Testing
@testable import CNN

/// The ResNet-style network of Fixtures/interop/make_fixture.py, with the same attribute names:
/// conv1, bn1, relu, maxpool, layer1 (one BasicBlock with a projection shortcut), avgpool, fc.
private final class InteropResNet: Module {
    let conv1: Conv2d
    let bn1: BatchNorm2d
    let relu = ReLU()
    let maxpool: MaxPool2d
    let layer1: Sequential
    let avgpool: AdaptiveAvgPool2d
    let fc: Linear

    init(classes: Int) throws {
        conv1 = try Conv2d(inputChannels: 3, outputChannels: 8, kernelSize: 3, padding: 1, bias: false)
        bn1 = try BatchNorm2d(features: 8)
        maxpool = try MaxPool2d(kernelSize: 3, stride: 2, padding: 1)
        let downsample = Sequential(try Conv2d(inputChannels: 8, outputChannels: 16, kernelSize: 1, stride: 2, bias: false),
                                    try BatchNorm2d(features: 16))
        layer1 = Sequential(try BasicBlock(inputChannels: 8, width: 16, stride: 2, downsample: downsample))
        avgpool = try AdaptiveAvgPool2d(outputSize: (1, 1))
        fc = try Linear(inputFeatures: 16, outputFeatures: classes)
        super.init()
    }

    override func forward(_ input: Variable) throws -> Variable {
        let x = try layer1(try maxpool(try relu(try bn1(try conv1(input)))))
        return try fc(try Functional.flatten(try avgpool(x)))
    }
}

/// The GoogLeNet-style network of make_fixture.py: conv1 (BasicConv2d), maxpool1, inception3a,
/// avgpool, dropout, fc.
private final class InteropInceptionNet: Module {
    let conv1: BasicConv2d
    let maxpool1: MaxPool2d
    let inception3a: Inception
    let avgpool: AdaptiveAvgPool2d
    let dropout: Dropout
    let fc: Linear

    init(classes: Int) throws {
        conv1 = try BasicConv2d(inputChannels: 3, outputChannels: 8, kernelSize: 3, padding: 1)
        maxpool1 = try MaxPool2d(kernelSize: 3, stride: 2, ceilMode: true)
        inception3a = try Inception(8, 4, 4, 8, 2, 4, 4)
        avgpool = try AdaptiveAvgPool2d(outputSize: (1, 1))
        dropout = try Dropout(probability: 0.2)
        fc = try Linear(inputFeatures: 20, outputFeatures: classes)
        super.init()
    }

    override func forward(_ input: Variable) throws -> Variable {
        let x = try inception3a(try maxpool1(try conv1(input)))
        return try fc(try dropout(try Functional.flatten(try avgpool(x))))
    }
}

/// Weights interchange with PyTorch: state dicts saved by PyTorch load by name into the same
/// architecture built from this library's layers and give PyTorch's logits; the library's own
/// files load back identically (and, per make_fixture.py --check, into PyTorch).
@Suite struct InteropTests {
    static func fixture(_ name: String) throws -> String {
        try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil)).path + "/interop/" + name
    }

    @Test(arguments: ["resnet", "inception"])
    func pytorchStateDictGivesPyTorchLogits(network: String) throws {
        let model: Module = network == "resnet" ? try InteropResNet(classes: 5) : try InteropInceptionNet(classes: 5)
        let report = try model.loadWeights(from: try Self.fixture("\(network)_state.safetensors"))
        #expect(report.isComplete)
        model.eval()
        let io = try SafeTensors(contentsOf: try Self.fixture("\(network)_io.safetensors"))
        let x = try io.tensor(named: "input"), expected = try io.tensor(named: "logits")
        let logits: Tensor = try model(x)
        #expect(logits.shape == expected.shape)
        // Relative to the largest logit (near-zero logits make an element-wise ratio meaningless).
        let scale = expected.scalars.map(abs).max() ?? 1
        let relative = logits.maxAbsoluteDifference(expected) / scale
        #expect(relative <= 1e-4, "\(network): max difference \(relative) of the largest logit \(scale)")

        // Saving writes PyTorch's names, dtypes (int64 num_batches_tracked) and values back.
        let pytorchFile = try SafeTensors(contentsOf: try Self.fixture("\(network)_state.safetensors"))
        let dir = try CLI.temporaryDirectory("interop")
        defer { CLI.remove(dir) }
        let saved = dir + "/\(network)_swift.safetensors"
        try model.saveWeights(to: saved)
        if let export = ProcessInfo.processInfo.environment["CNN_INTEROP_EXPORT"] {
            try model.saveWeights(to: export + "/\(network)_swift.safetensors")
        }
        let ours = try SafeTensors(contentsOf: saved)
        #expect(Set(ours.names) == Set(pytorchFile.names))
        for name in pytorchFile.names {
            let a = try pytorchFile.info(named: name), b = try ours.info(named: name)
            #expect(a.dtype == b.dtype && a.shape == b.shape, "\(name): \(a.dtype) \(a.shape) vs \(b.dtype) \(b.shape)")
            if a.dtype.isInteger {
                #expect(try pytorchFile.integers(named: name) == ours.integers(named: name))
            } else {
                #expect(try pytorchFile.tensor(named: name).scalars.map(\.bitPattern) == ours.tensor(named: name).scalars.map(\.bitPattern), "\(name)")
            }
        }

        // Loading our file into a fresh model gives the same logits bit for bit.
        let again: Module = network == "resnet" ? try InteropResNet(classes: 5) : try InteropInceptionNet(classes: 5)
        try again.loadWeights(from: saved)
        again.eval()
        let logitsAgain: Tensor = try again(x)
        #expect(logitsAgain.scalars.map(\.bitPattern) == logits.scalars.map(\.bitPattern))
    }
}
