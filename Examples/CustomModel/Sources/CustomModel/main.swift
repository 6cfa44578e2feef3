// CustomModel: a network written from scratch — a residual block and an Inception-style module
// as Module subclasses — trained on synthetic data, saved and reloaded.
//
//     swift run CustomModel                 # 3 epochs on 512 generated images
//     swift run CustomModel --epochs 5
//
// The task: a 16x16 image of noise with a bright 4x4 square somewhere in it; the label is the
// quadrant the square is in. Position matters, so the network keeps spatial detail until its
// fully connected classifier.

import CNN
import Foundation

/// `relu(bn2(conv2(relu(bn1(conv1(x))))) + x)`: the residual connection of He et al. (2016).
/// Parameters are found by reflection and named after the properties (`conv1.weight`, `bn1.running_mean`).
final class ResidualBlock: Module {
    let conv1: Conv2d
    let bn1: BatchNorm2d
    let conv2: Conv2d
    let bn2: BatchNorm2d

    init(channels: Int) throws {
        conv1 = try Conv2d(inputChannels: channels, outputChannels: channels, kernelSize: 3, padding: 1, bias: false)
        bn1 = try BatchNorm2d(features: channels)
        conv2 = try Conv2d(inputChannels: channels, outputChannels: channels, kernelSize: 3, padding: 1, bias: false)
        bn2 = try BatchNorm2d(features: channels)
        super.init()
    }

    override func forward(_ x: Variable) throws -> Variable {
        let h = try Functional.relu(try bn1(try conv1(x)))
        return try Functional.relu(try Functional.add(try bn2(try conv2(h)), x))
    }
}

/// Three branches on the same input, concatenated along the channels (Szegedy et al., 2015):
/// a 1x1 convolution, a 1x1 reduction followed by a 3x3, and 3x3 max pooling followed by a 1x1.
final class MixedBranches: Module {
    let branch1: Conv2d
    let branch2: Sequential
    let branch3: Sequential

    init(inputChannels: Int, width: Int) throws {
        branch1 = try Conv2d(inputChannels: inputChannels, outputChannels: width, kernelSize: 1)
        branch2 = Sequential(try Conv2d(inputChannels: inputChannels, outputChannels: width / 2, kernelSize: 1), ReLU(),
                             try Conv2d(inputChannels: width / 2, outputChannels: width, kernelSize: 3, padding: 1))
        branch3 = Sequential(try MaxPool2d(kernelSize: 3, stride: 1, padding: 1),
                             try Conv2d(inputChannels: inputChannels, outputChannels: width, kernelSize: 1))
        super.init()
    }

    /// `[N, C, H, W]` to `[N, 3·width, H, W]`.
    override func forward(_ x: Variable) throws -> Variable {
        try Functional.relu(try Functional.concatenate([try branch1(x), try branch2(x), try branch3(x)], alongAxis: 1))
    }
}

/// 1x16x16 -> stem 3x3 (8) -> residual block -> pool -> mixed (3x8) -> pool -> fully connected.
final class QuadrantNet: Module {
    let stem: Conv2d
    let block: ResidualBlock
    let mixed: MixedBranches
    let pool: MaxPool2d
    let classifier: Linear

    init(classes: Int) throws {
        stem = try Conv2d(inputChannels: 1, outputChannels: 8, kernelSize: 3, padding: 1)
        block = try ResidualBlock(channels: 8)
        mixed = try MixedBranches(inputChannels: 8, width: 8)
        pool = try MaxPool2d(kernelSize: 2)
        classifier = try Linear(inputFeatures: 24 * 4 * 4, outputFeatures: classes)
        super.init()
    }

    override func forward(_ x: Variable) throws -> Variable {
        var h = try block(try Functional.relu(try stem(x)))       // [N, 8, 16, 16]
        h = try pool(try mixed(try pool(h)))                       // [N, 24, 4, 4]
        return try classifier(try Functional.flatten(h))
    }
}

/// `count` images of noise with a bright 4x4 square; the label is its quadrant (0 top left,
/// 1 top right, 2 bottom left, 3 bottom right).
func quadrantImages(count: Int, seed: UInt64) throws -> LabeledDataset {
    var generator = SeededGenerator(seed: seed)
    var pixels = try Tensor.normal(shape: [count, 1, 16, 16], standardDeviation: 0.8, generator: &generator).scalars
    var labels: [Int32] = []
    for i in 0..<count {
        let quadrant = Int(generator.next() % 4)
        let top = (quadrant / 2) * 8 + Int(generator.next() % 5), left = (quadrant % 2) * 8 + Int(generator.next() % 5)
        for y in top..<(top + 4) { for x in left..<(left + 4) { pixels[i * 256 + y * 16 + x] += 0.8 } }
        labels.append(Int32(quadrant))
    }
    return try LabeledDataset(images: try Tensor(shape: [count, 1, 16, 16], scalars: pixels), labels: labels, classes: 4,
                              classNames: ["top left", "top right", "bottom left", "bottom right"])
}

do {
    var epochs = 3
    let arguments = Array(CommandLine.arguments.dropFirst())
    if arguments.count == 2, arguments[0] == "--epochs", let n = Int(arguments[1]), n >= 1 {
        epochs = n
    } else if !arguments.isEmpty {
        throw CNNError.invalidArgument("usage: CustomModel [--epochs N]")
    }

    GlobalGenerator.seed(1)
    let model = try QuadrantNet(classes: 4)
    print(try model.summary(inputShape: [1, 1, 16, 16], name: "QuadrantNet"))
    print("parameter names: " + model.namedParameters().prefix(6).map(\.0).joined(separator: ", ") + ", ...")

    let train = try quadrantImages(count: 512, seed: 2), test = try quadrantImages(count: 256, seed: 3)
    let optimizer = try Adam(parameters: model.namedParameters(), learningRate: 0.01)
    let trainer = try Trainer(model: model, optimizer: optimizer,
                              trainLoader: try DataLoader(dataset: train, batchSize: 32, seed: 4),
                              testLoader: try DataLoader(dataset: test, batchSize: 128, shuffle: false))
    while trainer.epoch < epochs {
        let r = try trainer.trainEpoch()
        print(String(format: "epoch %d: train loss %.3f accuracy %.1f%% | test loss %.3f accuracy %.1f%%",
                     r.epoch + 1, r.trainLoss, 100 * r.trainAccuracy, r.testLoss, 100 * r.testAccuracy))
    }

    // Save the weights (and batch norm's running statistics) and load them into a fresh model.
    let path = NSTemporaryDirectory() + "custom-model-example.safetensors"
    try model.saveWeights(to: path)
    GlobalGenerator.seed(99)
    let reloaded = try QuadrantNet(classes: 4)
    try reloaded.loadWeights(from: path)   // strict: every name and shape
    model.eval()
    reloaded.eval()
    let batch = try test.images.slice(batch: 0..<8)
    let before: Tensor = try model(batch), after: Tensor = try reloaded(batch)
    print("saved \(path); the reloaded model gives identical outputs: \(before == after)")
    print("predicted \(try after.argmaxIndices(alongAxis: 1)) for labels \(Array(test.labels[0..<8]))")
    guard before == after else { throw CNNError.invalidFile("\(path): reloaded outputs differ") }
} catch {
    FileHandle.standardError.write(Data("CustomModel: \(error)\n".utf8))
    exit(1)
}
