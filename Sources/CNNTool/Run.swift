import ArgumentParser
import CNN
import Foundation

/// `cnn run`: one evaluation-mode forward pass on a tensor from a safetensors file.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a model forward (evaluation mode) on the tensor `input` of a safetensors file; write `output`.",
        discussion: "The input is float32 NCHW, already normalised as the model expects; the output file holds the logits as `output`.")

    @Option(help: "Model name (default: the weights file's metadata, else lenet5).")
    var model: String?
    @Option(help: "Number of classes (default: the weights file's metadata or shapes).")
    var classes: Int?
    @Option(help: "The weights (safetensors, PyTorch state-dict names).")
    var weights: String
    @Option(help: "A safetensors file with a float32 tensor `input` of shape [N, C, H, W].")
    var input: String
    @Option(help: "Where to write the safetensors file with `output`.")
    var output: String
    @Option(help: "Threads for the kernels (default: all cores).")
    var threads: Int?

    func validate() throws {
        if let classes, classes < 1 { throw ValidationError("--classes must be at least 1, got \(classes)") }
    }

    func run() throws {
        try setThreads(threads)
        guard FileManager.default.fileExists(atPath: input) else { throw ValidationError("--input \(input): no such file") }
        let loaded = try LoadedModel.load(weights: weights, model: model, classes: classes)
        let file = try SafeTensors(contentsOf: input)
        guard file.contains("input") else {
            throw ValidationError("--input \(input): no tensor named 'input' (has: \(file.names.joined(separator: ", ")))")
        }
        let info = try file.info(named: "input")
        guard info.dtype == .float32 else {
            throw ValidationError("--input \(input): 'input' is \(info.dtype.rawValue), expected F32")
        }
        guard info.shape.count == 4, info.shape[1] == loaded.inputChannels, info.shape.allSatisfy({ $0 >= 1 }) else {
            throw ValidationError("--input \(input): 'input' has shape \(info.shape), expected [N, \(loaded.inputChannels), H, W] for \(loaded.name)")
        }
        let x = try file.tensor(named: "input")
        let y: Tensor = try loaded.module(x)
        try SafeTensors.write([("output", y)], metadata: ["model": loaded.name], to: output)
        print("wrote \(output): output \(y.shape) from input \(x.shape) through \(loaded.name)")
    }
}
