// PyTorchInterop: weights move between PyTorch and swift-cnn as safetensors files under PyTorch's
// state-dict names (`layer1.0.conv1.weight`) and layouts (OIHW, [out, in]); nothing is converted.
//
//     swift run PyTorchInterop
//         loads the committed fixture Tests/CNNTests/Fixtures/interop: state dicts saved by
//         PyTorch from a small ResNet and a small Inception network (make_fixture.py), runs
//         PyTorch's input through the same networks built here, compares with PyTorch's logits,
//         and writes the weights back for `make_fixture.py --check`.
//     swift run PyTorchInterop --zoo resnet18 --weights resnet18.safetensors [--image photo.png]
//         a torchvision model exported by Scripts/export_torchvision.py, loaded into the zoo's
//         model of that name; prints the top-5 ImageNet class indices for the image.
//
// The other half, in Python (torch and safetensors from PyPI):
//     from safetensors.torch import save_file, load_file
//     save_file({k: v.contiguous() for k, v in model.state_dict().items()}, "model.safetensors")
//     model.load_state_dict(load_file("model_swift.safetensors"))

import CNN
import Foundation

/// The ResNet-style network of make_fixture.py with the same attribute names, hence the same
/// state-dict keys: conv1, bn1, maxpool, layer1 (one basic block with a projection shortcut),
/// avgpool, fc. Built from the library's layers; `BasicBlock` is torchvision's block.
final class SmallResNet: Module {
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

/// The GoogLeNet-style network of make_fixture.py: conv1 (torchvision's BasicConv2d: convolution
/// without bias, batch norm with epsilon 0.001, ReLU), maxpool1, inception3a (four branches
/// concatenated), avgpool, dropout, fc.
final class SmallInceptionNet: Module {
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

/// This file is Examples/PyTorchInterop/Sources/PyTorchInterop/main.swift; the repository is five
/// folders up.
let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

func makeNetwork(_ name: String) throws -> Module {
    name == "resnet" ? try SmallResNet(classes: 5) : try SmallInceptionNet(classes: 5)
}

func fixtureRoundTrip(directory: String, network: String, output: String) throws {
    let model = try makeNetwork(network)
    let report = try model.loadWeights(from: directory + "/\(network)_state.safetensors")   // strict
    print("\(network): loaded \(model.stateDictionary().count) tensors from PyTorch's state dict (complete: \(report.isComplete))")
    model.eval()   // runs eagerly: `compiled(inputShape:)` only knows the library's own modules and containers

    let io = try SafeTensors(contentsOf: directory + "/\(network)_io.safetensors")
    let input = try io.tensor(named: "input"), pytorchLogits = try io.tensor(named: "logits")
    let logits: Tensor = try model(input)
    let scale = pytorchLogits.scalars.map(abs).max() ?? 1
    print("input \(input.shape) -> logits \(logits.shape)")
    for row in 0..<logits.shape[0] {
        let values = logits.scalars[(row * 5)..<((row + 1) * 5)].map { String(format: "%8.4f", $0) }.joined(separator: " ")
        print("  swift-cnn  \(values)")
        let expected = pytorchLogits.scalars[(row * 5)..<((row + 1) * 5)].map { String(format: "%8.4f", $0) }.joined(separator: " ")
        print("  PyTorch    \(expected)")
    }
    let error = logits.maxAbsoluteDifference(pytorchLogits) / scale
    print(String(format: "max difference relative to the largest logit: %.1e", error))
    guard error <= 1e-4 else {
        throw CNNError.invalidArgument("the logits differ from PyTorch's beyond 1e-4")
    }

    // Back to PyTorch: the same names, dtypes (num_batches_tracked as int64) and values.
    let file = output + "/\(network)_swift.safetensors"
    try model.saveWeights(to: file)
    let again = try makeNetwork(network)
    try again.loadWeights(from: file)
    again.eval()
    let same = (try again(input) as Tensor) == logits
    print("wrote \(file) (reloads to identical logits: \(same))\n")
    guard same else { throw CNNError.invalidFile("\(file): reloaded logits differ") }
}

func zooModel(name: String, weights: String, image: String?) throws {
    let model = try ModelZoo.make(name: name, classes: 1000)
    try model.loadWeights(from: weights)
    model.eval()
    let size = try ModelZoo.entry(named: name).defaultInputSize
    let input: Tensor
    if let image {
        input = try Image(contentsOf: image).networkInput(channels: 3, width: size, height: size, normalization: .imageNet).tensor
    } else {
        var generator = SeededGenerator(seed: 1)
        input = try Tensor.uniform(shape: [1, 3, size, size], lower: -1, upper: 1, generator: &generator)
        print("no --image: a random input")
    }
    let compiled = try model.compiled(inputShape: input.shape)   // batch norm folded, ReLU fused
    let probabilities = try Functional.softmax(Variable(try compiled(input))).value.scalars
    for (index, p) in probabilities.enumerated().sorted(by: { $0.element > $1.element }).prefix(5) {
        print(String(format: "  class %4d  %.4f", index, p))
    }
}

do {
    var arguments = Array(CommandLine.arguments.dropFirst())[...]
    var zoo: String?, weights: String?, image: String?, fixtures = repository + "/Tests/CNNTests/Fixtures/interop"
    while let name = arguments.popFirst() {
        guard let value = arguments.popFirst() else { throw CNNError.invalidArgument("\(name) needs a value") }
        switch name {
        case "--zoo": zoo = value
        case "--weights": weights = value
        case "--image": image = value
        case "--fixtures": fixtures = value
        default:
            throw CNNError.invalidArgument("unknown option \(name)\nusage: PyTorchInterop [--fixtures DIR] | --zoo NAME --weights FILE [--image FILE]")
        }
    }
    if let zoo {
        guard let weights else { throw CNNError.invalidArgument("--zoo needs --weights (see Scripts/export_torchvision.py)") }
        try zooModel(name: zoo, weights: weights, image: image)
    } else {
        let output = NSTemporaryDirectory() + "pytorch-interop-example"
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        for network in ["resnet", "inception"] {
            try fixtureRoundTrip(directory: fixtures, network: network, output: output)
        }
        print("check both in PyTorch: python3 Tests/CNNTests/Fixtures/interop/make_fixture.py --check \(output)")
    }
} catch {
    FileHandle.standardError.write(Data("PyTorchInterop: \(error)\n".utf8))
    exit(1)
}
