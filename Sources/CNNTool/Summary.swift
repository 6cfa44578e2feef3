import ArgumentParser
import CNN
import Foundation

/// `cnn summary`: a model's layers, output shapes, parameters and multiply-accumulates.
struct Summary: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a zoo model's layers with output shapes, parameters and multiply-accumulates, or list the zoo.")

    @Argument(help: "Model name (see --list).")
    var model: String?
    @Option(help: "Input shape N,C,H,W (default: the model's, e.g. 1,3,224,224).")
    var input: String?
    @Option(help: "Number of classes (default: 10 for lenet5, 1000 for the others).")
    var classes: Int?
    @Flag(help: "One JSON object instead of the table.")
    var json = false
    @Flag(help: "List the models of the zoo.")
    var list = false

    /// The parsed --input.
    func inputShape() throws -> [Int]? {
        guard let input else { return nil }
        let parts = input.split(separator: ",", omittingEmptySubsequences: false)
        let shape = parts.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 4, shape.count == 4, shape.allSatisfy({ $0 >= 1 }) else {
            throw ValidationError("--input '\(input)' must be four positive integers N,C,H,W, e.g. 1,3,224,224")
        }
        return shape
    }

    func validate() throws {
        if let classes, classes < 1 { throw ValidationError("--classes must be at least 1, got \(classes)") }
        _ = try inputShape()
        if !list {
            guard let model else { throw ValidationError("give a model name, or --list") }
            do { _ = try ModelZoo.entry(named: model) } catch let e as CNNError { throw ValidationError(e.message) }
        }
    }

    func run() throws {
        if list {
            let shapes = ModelZoo.entries.map { $0.defaultInputShape().map(String.init).joined(separator: ",") }
            let width = ModelZoo.names.map(\.count).max() ?? 0, shapeWidth = shapes.map(\.count).max() ?? 0
            for (entry, shape) in zip(ModelZoo.entries, shapes) {
                print(entry.name + String(repeating: " ", count: width - entry.name.count) + "  input " + shape
                      + String(repeating: " ", count: shapeWidth - shape.count) + "  " + entry.summary)
            }
            return
        }
        guard let model else { return }
        let entry = try ModelZoo.entry(named: model)
        let shape = try inputShape() ?? entry.defaultInputShape()
        let net = try makeModel(name: entry.name, classes: classes ?? (entry.name == "lenet5" ? 10 : 1000),
                                inputChannels: shape[1], inputSize: entry.name == "lenet5" ? shape[2] : entry.defaultInputSize)
        let summary = try net.summary(inputShape: shape, name: entry.name)
        print(json ? summary.json : summary.description)
    }
}
