import ArgumentParser
import CNN
import Foundation

/// `cnn eval`: accuracy, loss and the confusion matrix of a trained model on a test set.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate trained weights on a data set's test split: accuracy, loss and the confusion matrix.",
        discussion: "The model and class count come from the weights file's metadata (written by `cnn train`) unless given.")

    @OptionGroup var trained: TrainedModelOptions
    @OptionGroup var data: DataOptions
    @Option(help: "Use only the first N test images.")
    var limitTest: Int?
    @Option(help: "Images per forward pass.")
    var batchSize: Int = 500
    @Option(help: "Threads for the kernels (default: all cores).")
    var threads: Int?

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1, got \(batchSize)") }
        if let limitTest, limitTest < 1 { throw ValidationError("--limit-test must be at least 1, got \(limitTest)") }
    }

    func run() throws {
        try setThreads(threads)
        let loaded = try trained.load()
        var (test, normalization) = try data.loadTest()
        if let limitTest { test = try test.prefix(limitTest) }
        guard loaded.classes == test.classes else {
            throw ValidationError("\(trained.weights): the model has \(loaded.classes) classes but --dataset \(data.dataset) has \(test.classes)")
        }
        guard test.images.shape[1] == loaded.inputChannels else {
            throw ValidationError("\(trained.weights): the model takes \(loaded.inputChannels) input channels but --dataset \(data.dataset) has \(test.images.shape[1])")
        }
        let loader = try DataLoader(dataset: test, batchSize: batchSize, shuffle: false, normalization: normalization.pair)
        let result = try loaded.module.evaluate(on: loader)
        let correct = Int((result.accuracy * Double(result.count)).rounded())
        print(String(format: "%@ on %@ test (%d images): accuracy %.4f (%d/%d), loss %.4f", loaded.name, data.dataset.lowercased(),
                     result.count, result.accuracy, correct, result.count, result.loss))
        print("confusion matrix (rows: true class, columns: predicted class):")
        print(result.confusionTable(classNames: test.classNames), terminator: "")
    }
}
