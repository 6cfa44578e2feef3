import ArgumentParser
import CNN
import Foundation

/// `cnn predict`: the most probable classes of images under a trained model.
struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify PNG, PGM or PPM images with trained weights and print the top classes with probabilities.",
        discussion: """
            Each image is converted as in training: to gray for a one-channel model (RGB for a \
            three-channel one), resized to the model's input size (28x28 for MNIST models; area \
            averaging when shrinking), scaled to [0, 1] and normalised with the training statistics \
            recorded in the weights file (MNIST: mean 0.1307, std 0.3081). MNIST digits are white on \
            black: with --invert automatic (the default) a gray image whose border is bright, such as \
            a dark digit on white paper, is inverted first.

            Output per image: a line `<path>: <class>` (with `[inverted]` when it was inverted), \
            then one line per class, `  <rank>. <class> <probability>`.
            """)

    @Argument(help: "PNG, PGM or PPM files.")
    var images: [String]
    @OptionGroup var trained: TrainedModelOptions
    @Option(help: "How many classes to print per image.")
    var top: Int = 5
    @Option(help: "automatic (invert gray images with a bright border), always or never.")
    var invert: String = "automatic"

    func validate() throws {
        guard !images.isEmpty else { throw ValidationError("give at least one image") }
        guard top >= 1 else { throw ValidationError("--top must be at least 1, got \(top)") }
        guard ImageInversion(rawValue: invert) != nil else {
            throw ValidationError("unknown --invert '\(invert)'; use automatic, always or never")
        }
    }

    func run() throws {
        let loaded = try trained.load()
        let inversion = ImageInversion(rawValue: invert) ?? .automatic
        let width = loaded.classNames.map(\.count).max() ?? 1
        for path in images {
            let (x, inverted) = try loaded.input(image: path, inversion: inversion)
            let logits: Tensor = try loaded.module(x)
            let probabilities = try Functional.softmax(Variable(logits)).value.scalars
            let ranked = probabilities.indices.sorted { probabilities[$0] > probabilities[$1] || (probabilities[$0] == probabilities[$1] && $0 < $1) }
            print("\(path): \(loaded.classNames[ranked[0]])" + (inverted ? " [inverted]" : ""))
            for (rank, c) in ranked.prefix(top).enumerated() {
                let name = loaded.classNames[c]
                print("  \(rank + 1). \(name)\(String(repeating: " ", count: width - name.count)) \(String(format: "%.6f", probabilities[c]))")
            }
        }
    }
}
