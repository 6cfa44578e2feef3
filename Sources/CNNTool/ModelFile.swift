import ArgumentParser
import CNN
import Foundation

/// Builds a zoo model for an input of `inputChannels x inputSize x inputSize`. LeNet-5 is built for
/// its input size (28: first convolution padded; 32: the paper's unpadded input, e.g. CIFAR-10);
/// the other models adapt to the size through their pooling.
func makeModel(name: String, classes: Int, inputChannels: Int, inputSize: Int) throws -> Module {
    if name.lowercased() == "lenet5" {
        return try LeNet5(classes: classes, inputChannels: inputChannels, inputSize: inputSize)
    }
    return try ModelZoo.make(name: name, classes: classes, inputChannels: inputChannels)
}

/// The metadata `cnn train` writes into model.safetensors, read back by eval, predict, visualize
/// and run, so that the weights file alone says how to rebuild and feed the model.
enum ModelMetadata {
    static let model = "model", classes = "classes", dataset = "dataset", inputChannels = "input_channels"
    static let inputSize = "input_size", mean = "mean", standardDeviation = "std", classNames = "class_names"

    static func make(model: String, classes: Int, dataset: String, inputShape: [Int],
                     normalization: ChannelNormalization, classNames: [String]) -> [String: String] {
        [Self.model: model, Self.classes: "\(classes)", Self.dataset: dataset.lowercased(),
         Self.inputChannels: "\(inputShape[1])", Self.inputSize: "\(inputShape[2])",
         Self.mean: normalization.mean.map { "\($0)" }.joined(separator: ","),
         Self.standardDeviation: normalization.standardDeviation.map { "\($0)" }.joined(separator: ","),
         Self.classNames: classNames.joined(separator: ",")]
    }
}

/// A model rebuilt from a weights file: its name, the module with the weights loaded (in evaluation
/// mode), and how to feed it.
struct LoadedModel {
    let name: String
    let module: Module
    let classes: Int
    let inputChannels: Int
    let inputSize: Int
    let normalization: ChannelNormalization?
    let classNames: [String]
    let metadata: [String: String]

    /// Reads `weights`, rebuilds the model (`model` and `classes` override the file's metadata;
    /// without either, the name defaults to lenet5 and the class count and input channels are read
    /// from the weights' shapes) and loads the weights strictly.
    static func load(weights: String, model: String?, classes: Int?) throws -> LoadedModel {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: weights, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw ValidationError("--weights \(weights): no such file")
        }
        let file = try SafeTensors(contentsOf: weights)
        let meta = file.metadata
        let name = model ?? meta[ModelMetadata.model] ?? "lenet5"
        let entry: ModelZoo.Entry
        do { entry = try ModelZoo.entry(named: name) } catch let e as CNNError { throw ValidationError("--model: \(e.message)") }
        let inputSize = meta[ModelMetadata.inputSize].flatMap(Int.init) ?? entry.defaultInputSize

        // A 1-class probe of the architecture names the first convolution and the last linear layer,
        // whose shapes in the file give the input channels and the class count.
        let probe = try makeModel(name: name, classes: 1, inputChannels: entry.defaultInputChannels, inputSize: inputSize)
        var channels = entry.defaultInputChannels
        if let (convName, _) = probe.firstConvolution, let info = try? file.info(named: convName + ".weight"), info.shape.count == 4 {
            channels = info.shape[1]
        }
        var classCount = classes ?? meta[ModelMetadata.classes].flatMap(Int.init)
        if classCount == nil, let last = probe.namedModules().last(where: { $0.1 is Linear })?.0,
           let info = try? file.info(named: last + ".weight"), info.shape.count == 2 {
            classCount = info.shape[0]
        }
        guard let classCount, classCount >= 1 else {
            throw ValidationError("\(weights): cannot tell the number of classes (no 'classes' metadata); pass --classes")
        }
        let module = try makeModel(name: name, classes: classCount, inputChannels: channels, inputSize: inputSize)
        do {
            try module.loadWeights(from: weights)
        } catch let e as CNNError {
            throw CNNError.invalidFile("\(weights) does not fit \(name) with \(classCount) classes and \(channels) input channels: \(e.message)")
        }
        module.eval()

        var normalization: ChannelNormalization?
        if let m = meta[ModelMetadata.mean], let s = meta[ModelMetadata.standardDeviation] {
            let mean = m.split(separator: ",").compactMap { Float($0) }, std = s.split(separator: ",").compactMap { Float($0) }
            normalization = try? ChannelNormalization(mean: mean, standardDeviation: std)
        }
        if normalization == nil, let d = meta[ModelMetadata.dataset] { normalization = ChannelNormalization.dataset(named: d) }
        if normalization == nil {
            // No record of the training data: MNIST for gray models, CIFAR-10 for 32x32 colour
            // models, ImageNet for the others (torchvision's pretrained weights).
            normalization = channels == 1 ? .mnist : channels == 3 ? (inputSize <= 32 ? .cifar10 : .imageNet) : nil
        }
        if let n = normalization, n.channels != channels { normalization = nil }
        var names = (meta[ModelMetadata.classNames] ?? "").split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        if names.count != classCount { names = (0..<classCount).map(String.init) }
        return LoadedModel(name: name, module: module, classes: classCount, inputChannels: channels, inputSize: inputSize,
                           normalization: normalization, classNames: names, metadata: meta)
    }

    /// Reads an image file and converts it to this model's input (see `Image.networkInput`).
    func input(image path: String, inversion: ImageInversion) throws -> (tensor: Tensor, inverted: Bool) {
        guard FileManager.default.fileExists(atPath: path) else { throw ValidationError("image \(path): no such file") }
        let image = try Image(contentsOf: path)
        return try image.networkInput(channels: inputChannels, width: inputSize, height: inputSize,
                                      normalization: normalization, inversion: inversion)
    }
}



/// The options that name a trained model: shared by `eval`, `predict` and `visualize`.
struct TrainedModelOptions: ParsableArguments {
    @Option(help: "The weights (model.safetensors from `cnn train`).")
    var weights: String
    @Option(help: "Model name (default: the weights file's metadata, else lenet5).")
    var model: String?
    @Option(help: "Number of classes (default: the weights file's metadata or shapes).")
    var classes: Int?

    func validate() throws {
        if let classes, classes < 1 { throw ValidationError("--classes must be at least 1, got \(classes)") }
    }

    /// Rebuilds the model and loads the weights (see ``LoadedModel/load(weights:model:classes:)``).
    func load() throws -> LoadedModel { try LoadedModel.load(weights: weights, model: model, classes: classes) }
}
