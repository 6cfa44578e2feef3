// DigitClassifier: recognise handwritten digits with LeNet-5, from a plain Swift program.
//
//     swift run DigitClassifier                                   # train briefly, classify test digits
//     swift run DigitClassifier digit.png other.pgm               # ... and these files
//     swift run DigitClassifier --weights ../../runs/train/model.safetensors digit.png
//
// With `--weights`, the model is the one `cnn train` wrote (LeNet-5 on MNIST, 99% accurate after
// its 3 epochs on all 60,000 images); without, it trains LeNet-5 on the first `--train` (2,000)
// bundled MNIST images for three epochs with the lecture's recipe (SGD, momentum 0.9, lr 0.03
// divided by 10 after two epochs), which takes seconds and reaches about 90%. Images may
// be PNG, PGM or PPM of any size; dark digits on light paper are inverted to MNIST's light on dark.

import CNN
import Foundation

struct Options {
    var weights: String?
    var trainCount = 2000
    var images: [String] = []

    static func parse(_ arguments: [String]) throws -> Options {
        var options = Options()
        var rest = arguments[...]
        while let argument = rest.popFirst() {
            switch argument {
            case "--weights":
                guard let value = rest.popFirst() else { throw usage("--weights needs a file") }
                options.weights = value
            case "--train":
                guard let value = rest.popFirst(), let n = Int(value), n >= 1 else { throw usage("--train needs a positive count") }
                options.trainCount = n
            case "-h", "--help":
                throw usage(nil)
            default:
                if argument.hasPrefix("-") { throw usage("unknown option \(argument)") }
                options.images.append(argument)
            }
        }
        return options
    }

    static func usage(_ problem: String?) -> CNNError {
        let text = "usage: DigitClassifier [--weights model.safetensors] [--train N] [image.png|pgm|ppm ...]"
        return CNNError.invalidArgument(problem.map { "\($0)\n\(text)" } ?? text)
    }
}

/// Trains LeNet-5 for three epochs on the first `count` training images: SGD, momentum 0.9, lr 0.03
/// divided by 10 after two epochs.
func trainBriefly(on mnist: MNIST, count: Int) throws -> LeNet5 {
    let train = try LabeledDataset(images: mnist.train.images, labels: mnist.train.labels, classes: 10).prefix(count)
    let test = try LabeledDataset(images: mnist.test.images, labels: mnist.test.labels, classes: 10).prefix(1000)
    GlobalGenerator.seed(1)
    let model = try LeNet5(classes: 10)
    let optimizer = try SGD(parameters: model.namedParameters(), learningRate: 0.03, momentum: 0.9)
    let normalization = ChannelNormalization.mnist.pair
    let trainer = try Trainer(model: model, optimizer: optimizer,
                              trainLoader: try DataLoader(dataset: train, batchSize: 64, seed: 1, normalization: normalization),
                              testLoader: try DataLoader(dataset: test, batchSize: 500, shuffle: false, normalization: normalization),
                              schedule: .epochs(try StepLR(stepSize: 2, gamma: 0.1)))
    while trainer.epoch < 3 {
        let r = try trainer.trainEpoch()
        print(String(format: "epoch %d on %d images: train loss %.3f, accuracy on %d test images %.1f%% (%.1f s)",
                     r.epoch + 1, train.count, r.trainLoss, test.count, 100 * r.testAccuracy, r.seconds))
    }
    return model
}

/// The three most probable digits for a `[1, 1, 28, 28]` normalised input.
func topThree(_ model: Module, _ input: Tensor) throws -> [(digit: Int, probability: Float)] {
    let probabilities = try Functional.softmax(Variable(try model(input))).value.scalars
    return probabilities.enumerated().sorted { $0.element > $1.element }.prefix(3).map { ($0.offset, $0.element) }
}

func describe(_ top: [(digit: Int, probability: Float)]) -> String {
    top.map { String(format: "%d (%.1f%%)", $0.digit, 100 * $0.probability) }.joined(separator: ", ")
}

/// Reads a picture and makes it the network's input: gray, 28x28, inverted if it has a light
/// background, normalised with MNIST's statistics.
func input(fromFile path: String) throws -> (tensor: Tensor, inverted: Bool) {
    let image = try Image(contentsOf: path)
    return try image.networkInput(channels: 1, width: 28, height: 28, normalization: .mnist)
}

do {
    let options = try Options.parse(Array(CommandLine.arguments.dropFirst()))
    let model: Module
    if let weights = options.weights {
        let lenet = try LeNet5(classes: 10)
        try lenet.loadWeights(from: weights)   // strict: every name and shape must match
        print("loaded \(weights)")
        model = lenet
    } else {
        model = try trainBriefly(on: try MNIST(), count: options.trainCount)
    }
    model.eval()

    var files = options.images
    if files.isEmpty {
        // No files given: classify a few test digits, and one of them through a PGM file, the way
        // a user's picture would arrive.
        let test = try MNIST.load(.test, directory: try MNIST.defaultDirectory())
        let digits = try test.images.slice(batch: 0..<6)
        let predictions = try model(try ChannelNormalization.mnist.apply(to: digits)).argmaxIndices(alongAxis: 1)
        print("test digits \(Array(test.labels[0..<6])) -> predicted \(predictions)")
        let path = NSTemporaryDirectory() + "digit-classifier-example.pgm"
        try Image(tensor: try digits.slice(batch: 0..<1)).write(to: path)
        files = [path]
    }
    for path in files {
        let (tensor, inverted) = try input(fromFile: path)
        print("\(path)\(inverted ? " (inverted)" : ""): \(describe(try topThree(model, tensor)))")
    }
} catch {
    FileHandle.standardError.write(Data("DigitClassifier: \(error)\n".utf8))
    exit(1)
}
