import Foundation
import Testing
@testable import CNN

/// Filter and activation grids, layer outputs and image preparation.
@Suite struct VisualizationTests {
    @Test(arguments: [
        // (tiles, tile w, tile h, scale, separator, columns, expected columns, rows, width, height)
        (6, 5, 5, 8, 1, nil as Int?, 3, 2, 3 * 40 + 2, 2 * 40 + 1),
        (16, 10, 10, 5, 1, nil, 4, 4, 203, 203),
        (1, 3, 2, 1, 1, nil, 1, 1, 3, 2),
        (10, 1, 1, 8, 2, nil, 4, 3, 4 * 8 + 3 * 2, 3 * 8 + 2 * 2),
        (12, 5, 3, 2, 0, 6, 6, 2, 60, 12),
        (3, 4, 4, 1, 1, 10, 3, 1, 14, 4),
    ])
    func layoutFollowsTheFormula(_ c: (Int, Int, Int, Int, Int, Int?, Int, Int, Int, Int)) throws {
        let layout = try FeatureGrid.Layout(tileCount: c.0, tileWidth: c.1, tileHeight: c.2, scale: c.3, separator: c.4, columns: c.5)
        #expect(layout.columns == c.6 && layout.rows == c.7)
        #expect(layout.width == c.8 && layout.height == c.9)
        #expect(layout.width == layout.columns * c.1 * c.3 + (layout.columns - 1) * c.4)
        let last = layout.origin(ofTile: c.0 - 1)
        #expect(last.x + c.1 * c.3 <= layout.width && last.y + c.2 * c.3 <= layout.height)
    }

    @Test func layoutRejectsBadArguments() {
        #expect(throws: CNNError.self) { try FeatureGrid.Layout(tileCount: 0, tileWidth: 1, tileHeight: 1, scale: 1) }
        #expect(throws: CNNError.self) { try FeatureGrid.Layout(tileCount: 1, tileWidth: 1, tileHeight: 1, scale: 0) }
        #expect(throws: CNNError.self) { try FeatureGrid.Layout(tileCount: 1, tileWidth: 1, tileHeight: 1, scale: 1, separator: -1) }
        #expect(throws: CNNError.self) { try FeatureGrid.Layout(tileCount: 4, tileWidth: 1, tileHeight: 1, scale: 1, columns: 0) }
        #expect(throws: CNNError.self) { try FeatureGrid.Layout(tileCount: 1 << 20, tileWidth: 64, tileHeight: 64, scale: 8) }
    }

    @Test func grayLevelsMapTheRangeLinearly() {
        #expect(FeatureGrid.grayLevels([-1, 0, 1, 3], lower: -1, upper: 3) == [0, 64, 128, 255])
        #expect(FeatureGrid.grayLevels([5, 5], lower: 5, upper: 5) == [128, 128])
        #expect(FeatureGrid.grayLevels([5, 5], lower: 5, upper: 5, flat: 0) == [0, 0])
        #expect(FeatureGrid.grayLevels([-2, .nan, 9], lower: 0, upper: 4) == [0, 0, 255])
        #expect(FeatureGrid.defaultScale(forTileSize: 5) == 8)
        #expect(FeatureGrid.defaultScale(forTileSize: 28) == 2)
        #expect(FeatureGrid.defaultScale(forTileSize: 224) == 1)
    }

    @Test func grayFiltersAreNormalisedPerFilterAndScaled() throws {
        // Two 1-channel 2x2 filters; scale 2, separator 1: 2 tiles side by side, 9 x 4 pixels.
        let w = try Tensor(shape: [2, 1, 2, 2], scalars: [0, 1, 2, 4, -3, -3, -3, -3])
        let image = try FeatureGrid.filters(w, scale: 2)
        #expect(image.width == 9 && image.height == 4 && image.channels == 1)
        func pixel(_ x: Int, _ y: Int) -> UInt8 { image.pixels[y * 9 + x] }
        #expect(pixel(0, 0) == 0 && pixel(1, 1) == 0)        // weight 0, the filter's minimum
        #expect(pixel(2, 0) == 64 && pixel(3, 1) == 64)      // weight 1 of 0...4
        #expect(pixel(0, 2) == 128 && pixel(3, 3) == 255)    // weights 2 and 4
        #expect((0..<4).allSatisfy { pixel(4, $0) == FeatureGrid.separatorValue })
        #expect((5..<9).allSatisfy { x in (0..<4).allSatisfy { pixel(x, $0) == 128 } })  // a constant filter is mid-gray
    }

    @Test func rgbFiltersInterleaveTheInputChannels() throws {
        // One filter [1, 3, 1, 2]: R = (0, 1), G = (2, 3), B = (4, 5); normalised over 0...5.
        let w = try Tensor(shape: [1, 3, 1, 2], scalars: [0, 1, 2, 3, 4, 5])
        let image = try FeatureGrid.filters(w, scale: 1)
        #expect(image.channels == 3 && image.width == 2 && image.height == 1)
        #expect(image.pixels == [0, 102, 204, 51, 153, 255])
    }

    @Test func multiChannelFiltersGetOneRowPerFilter() throws {
        // [3, 2, 1, 1]: 3 rows of 2 tiles.
        let w = try Tensor(shape: [3, 2, 1, 1], scalars: [0, 1, 1, 0, 2, 2])
        let image = try FeatureGrid.filters(w, scale: 1, separator: 1)
        #expect(image.width == 3 && image.height == 5)
        #expect(image.pixels == [0, 255, 255,  255, 255, 255,  255, 255, 0,  255, 255, 255,  128, 255, 128])
        #expect(throws: CNNError.self) { try FeatureGrid.filters(try Tensor(zeros: [3, 3])) }
    }

    @Test func activationsSharedAndPerMap() throws {
        // Two 1x2 maps: (-1, 2) and (1, 4).
        let y = try Tensor(shape: [1, 2, 1, 2], scalars: [-1, 2, 1, 4])
        let shared = try FeatureGrid.activations(y, scale: 1, separator: 1)
        #expect(shared.width == 5 && shared.height == 1)
        #expect(shared.pixels == [0, 128, 255, 64, 255])
        let perMap = try FeatureGrid.activations(y, scale: 1, separator: 1, scaling: .perMap)
        #expect(perMap.pixels == [0, 255, 255, 0, 255])
        // A fully connected output: one 1x1 tile per unit.
        let fc = try FeatureGrid.activations(try Tensor(shape: [1, 4], scalars: [0, 1, 2, 4]), scale: 2, separator: 0)
        #expect(fc.width == 4 && fc.height == 4)
        #expect(throws: CNNError.self) { try FeatureGrid.activations(try Tensor(zeros: [2, 3, 4, 4])) }
        // Silent maps stay black.
        #expect(try FeatureGrid.activations(try Tensor(zeros: [1, 4, 2, 2]), scale: 1, separator: 0).pixels.allSatisfy { $0 == 0 })
    }

    @Test func layerOutputsMatchTheLayersRunDirectly() throws {
        GlobalGenerator.seed(4)
        let model = try LeNet5(classes: 10)
        var g = SeededGenerator(seed: 2)
        let x = try Tensor.normal(shape: [1, 1, 28, 28], generator: &g)
        #expect(model.firstConvolution?.name == "features.0")
        #expect(model.isTraining)
        let conv: Tensor = try model.features.layers[0](x)
        #expect(try model.output(ofLayer: "features.0", for: x) == conv)
        let features: Tensor = try model.features(x)
        #expect(try model.output(ofLayer: "features", for: x) == features)
        let logits: Tensor = try model(x)
        #expect(try model.output(ofLayer: "classifier.4", for: x) == logits)
        #expect(model.isTraining, "training mode restored")
        do {
            _ = try model.output(ofLayer: "features.7", for: x)
            Issue.record("no error for an unknown layer")
        } catch let error as CNNError {
            #expect(error.message.contains("features.7") && error.message.contains("classifier.4"))
        }
        // Inside a residual network: a stem and a block with a projection shortcut.
        let net = Sequential(try Conv2d(inputChannels: 3, outputChannels: 4, kernelSize: 3, padding: 1),
                             try BasicBlock(inputChannels: 4, width: 8, stride: 2,
                                            downsample: Sequential(try Conv2d(inputChannels: 4, outputChannels: 8, kernelSize: 1, stride: 2, bias: false),
                                                                   try BatchNorm2d(features: 8))))
        #expect(try BasicBlock(inputChannels: 2, width: 2).firstConvolution?.name == "conv1")
        net.eval()
        let image = try Tensor.normal(shape: [1, 3, 8, 8], generator: &g)
        let stem: Tensor = try net.layers[0](image)
        let block: Tensor = try net.layers[1](stem)
        #expect(try net.output(ofLayer: "1", for: image) == block)
        let shortcut: Tensor = try (net.layers[1] as! BasicBlock).downsample!(stem)
        #expect(try net.output(ofLayer: "1.downsample", for: image) == shortcut)
        #expect(try net.output(ofLayer: "1.conv1", for: image).shape == [1, 8, 4, 4])
    }

    @Test func networkInputInvertsBrightBackgroundsAndNormalises() throws {
        // A dark stroke on white paper, 4x4 RGB, becomes a bright stroke on black at 2x2.
        var pixels = [UInt8](repeating: 255, count: 4 * 4 * 3)
        for i in [5, 6, 9, 10] { pixels[i * 3] = 0; pixels[i * 3 + 1] = 0; pixels[i * 3 + 2] = 0 }
        let paper = try Image(width: 4, height: 4, channels: 3, pixels: pixels)
        #expect(paper.borderMean == 255)
        let (x, inverted) = try paper.networkInput(channels: 1, width: 2, height: 2, normalization: nil)
        #expect(inverted)
        #expect(x.shape == [1, 1, 2, 2])
        #expect(x.scalars == [Float](repeating: 64 / 255, count: 4))  // each 2x2 area holds one stroke pixel of four: 255 / 4 rounds to 64
        let (kept, notInverted) = try paper.networkInput(channels: 1, width: 4, height: 4, normalization: nil, inversion: .never)
        #expect(!notInverted && kept.scalars[0] == 1)
        // A white digit on black (MNIST's convention) is left alone and normalised with MNIST's statistics.
        let digit = try Image(width: 2, height: 2, channels: 1, pixels: [0, 255, 0, 0])
        let (d, dInverted) = try digit.networkInput(channels: 1, width: 2, height: 2, normalization: .mnist)
        #expect(!dInverted)
        #expect(abs(d.scalars[1] - (1 - 0.1307) / 0.3081) < 1e-5 && abs(d.scalars[0] - (-0.1307 / 0.3081)) < 1e-5)
        // Gray to RGB, and colour images are never inverted automatically.
        let (rgb, rgbInverted) = try paper.grayscale().networkInput(channels: 3, width: 4, height: 4, normalization: nil)
        #expect(rgb.shape == [1, 3, 4, 4] && !rgbInverted)
        #expect(throws: CNNError.self) { try digit.networkInput(channels: 2, width: 2, height: 2, normalization: nil) }
    }
}
