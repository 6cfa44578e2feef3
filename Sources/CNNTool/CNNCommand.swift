import ArgumentParser
import CNN

@main
struct CNNCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cnn",
        abstract: "Convolutional neural networks on the CPU: train, evaluate, inspect and benchmark.",
        subcommands: [Train.self, Eval.self, Predict.self, Visualize.self, Summary.self, Run.self, Bench.self]
    )
}
