import ArgumentParser
import CNN
import Foundation

/// `cnn visualize`: the first convolution's filters and, for an image, a layer's activation maps.
struct Visualize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw the first convolution's filters and, with --image, a layer's activation maps as PNG grids.",
        discussion: """
            Writes <output>/filters.png: one tile per filter of the first convolution, each normalised \
            from its smallest (black) to its largest weight (white) and enlarged --scale times; RGB \
            tiles for a filter over 3 input channels, otherwise one gray tile per input channel (a \
            row per filter). With --image, also <output>/activations-<layer>.png: one tile per \
            channel of the layer's output for that image (prepared as `cnn predict` does), black at 0 \
            and white at the largest value over all channels, so bright means the filter fires there.
            """)

    @OptionGroup var trained: TrainedModelOptions
    @Option(help: "Directory for the PNG files (created if needed).")
    var output: String
    @Option(help: "An image (PNG, PGM or PPM) whose activation maps to draw.")
    var image: String?
    @Option(help: "The layer whose output to draw, by dotted name (default: the first convolution).")
    var layer: String?
    @Option(help: "Magnification of each filter weight.")
    var scale: Int = 8
    @Option(help: "Magnification of each activation (default: enough for about 48 pixels per map).")
    var activationScale: Int?
    @Flag(help: "Scale each activation map to its own range instead of one range for all.")
    var perMap = false
    @Option(help: "automatic (invert gray images with a bright border), always or never.")
    var invert: String = "automatic"

    func validate() throws {
        guard scale >= 1 else { throw ValidationError("--scale must be at least 1, got \(scale)") }
        if let activationScale, activationScale < 1 { throw ValidationError("--activation-scale must be at least 1, got \(activationScale)") }
        if layer != nil && image == nil { throw ValidationError("--layer needs --image") }
        guard ImageInversion(rawValue: invert) != nil else {
            throw ValidationError("unknown --invert '\(invert)'; use automatic, always or never")
        }
    }

    func run() throws {
        let loaded = try trained.load()
        guard let (convName, conv) = loaded.module.firstConvolution else {
            throw ValidationError("\(loaded.name) has no convolution to draw")
        }
        if let layer, !loaded.module.namedModules().contains(where: { $0.0 == layer && !layer.isEmpty }) {
            let names = loaded.module.namedModules().map(\.0).filter { !$0.isEmpty }
            throw ValidationError("--layer '\(layer)' is not a layer of \(loaded.name); layers: \(names.joined(separator: ", "))")
        }
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        let weight = conv.weight.value
        let filters = try FeatureGrid.filters(weight, scale: scale)
        let filtersPath = (output as NSString).appendingPathComponent("filters.png")
        try filters.write(to: filtersPath)
        print("wrote \(filtersPath): \(convName) filters \(weight.shape), \(filters.width)x\(filters.height)")

        guard let image else { return }
        let target = layer ?? convName
        let (x, inverted) = try loaded.input(image: image, inversion: ImageInversion(rawValue: invert) ?? .automatic)
        let maps = try loaded.module.output(ofLayer: target, for: x)
        let picture = try FeatureGrid.activations(maps, scale: activationScale, scaling: perMap ? .perMap : .shared)
        let mapsPath = (output as NSString).appendingPathComponent("activations-\(target).png")
        try picture.write(to: mapsPath)
        print("wrote \(mapsPath): \(target) output \(maps.shape) for \(image)\(inverted ? " (inverted)" : ""), \(picture.width)x\(picture.height)")
    }
}
