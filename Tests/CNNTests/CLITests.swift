import Foundation
import Testing
@testable import CNN

/// The `cnn` command line, run as a subprocess.
@Suite(.serialized) struct CLITests {
    // MARK: train and resume

    @Test func trainWritesCheckpointModelLogAndPlotThenResumes() throws {
        let dir = try CLI.trainedDirectory()
        let (_, first) = try CLI.trained.get()
        #expect(first.stdout.contains("epoch 1/1: train loss"))
        for name in ["checkpoint.safetensors", "model.safetensors", "log.csv", "log.svg"] {
            #expect(FileManager.default.fileExists(atPath: dir + "/" + name), "missing \(name)")
        }
        let log = try String(contentsOfFile: dir + "/log.csv", encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(log.first == "epoch,train_loss,train_acc,test_loss,test_acc,lr,seconds")
        #expect(log.count == 2)
        #expect(log.dropFirst().first?.hasPrefix("1,") == true)
        let svg = try String(contentsOfFile: dir + "/log.svg", encoding: .utf8)
        #expect(svg.hasPrefix("<svg") && svg.contains("</svg>"))
        let model = try SafeTensors(contentsOf: dir + "/model.safetensors")
        #expect(model.metadata["model"] == "lenet5")
        #expect(model.metadata["classes"] == "10")
        #expect(model.metadata["mean"] == "0.1307" && model.metadata["std"] == "0.3081")
        #expect(model.names.contains("features.0.weight"))
        #expect(try SafeTensors(contentsOf: dir + "/checkpoint.safetensors").metadata["epoch"] == "1")

        // Resume a copy to epoch 2: the first epoch's row is kept and a second follows.
        let copy = try CLI.temporaryDirectory("resume")
        defer { CLI.remove(copy) }
        for name in ["checkpoint.safetensors", "model.safetensors", "log.csv", "log.svg"] {
            try FileManager.default.copyItem(atPath: dir + "/" + name, toPath: copy + "/" + name)
        }
        var args = CLI.trainArguments
        args[args.firstIndex(of: "--epochs")! + 1] = "2"
        let resumed = try CLI.run(args + ["--checkpoint-dir", copy, "--resume"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stdout.contains("after epoch 1"))
        #expect(resumed.stdout.contains("epoch 2/2: train loss"))
        #expect(!resumed.stdout.contains("epoch 1/2"))
        let log2 = try String(contentsOfFile: copy + "/log.csv", encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(log2.count == 3)
        #expect(log2[1] == log[1])
        #expect(log2[2].hasPrefix("2,"))
        #expect(try SafeTensors(contentsOf: copy + "/checkpoint.safetensors").metadata["epoch"] == "2")
    }

    // MARK: invalid arguments

    /// Each bad argument exits non-zero with an `Error:` line naming the value.
    @Test(arguments: [
        (["train", "--epochs", "0"], "0"),
        (["train", "--model", "lenet99"], "lenet99"),
        (["train", "--optimizer", "adagrad9"], "adagrad9"),
        (["train", "--batch-size=-3"], "-3"),
        (["train", "--schedule", "zigzag"], "zigzag"),
        (["eval", "--weights", "/nonexistent/w1.safetensors"], "/nonexistent/w1.safetensors"),
        (["predict", "a.png", "--weights", "/nonexistent/w2.safetensors"], "/nonexistent/w2.safetensors"),
        (["visualize", "--weights", "/nonexistent/w3.safetensors", "--output", "/tmp/x"], "/nonexistent/w3.safetensors"),
        (["run", "--weights", "/nonexistent/w4.safetensors", "--input", "/nonexistent/i.safetensors", "--output", "/tmp/o.safetensors"],
         "/nonexistent/i.safetensors"),
        (["summary", "resnet7"], "resnet7"),
        (["summary", "lenet5", "--input", "1,1,28"], "1,1,28"),
    ])
    func invalidArgumentsExitNonZeroNamingTheValue(arguments: [String], value: String) throws {
        let result = try CLI.run(arguments)
        #expect(result.status != 0)
        #expect(result.errorLine.hasPrefix("Error:"), "stderr: \(result.stderr)")
        #expect(result.errorLine.contains(value), "stderr: \(result.stderr)")
    }

    @Test func badFilesGiveOneLineErrors() throws {
        let dir = try CLI.trainedDirectory()
        let tmp = try CLI.temporaryDirectory("bad")
        defer { CLI.remove(tmp) }
        // A weights file that is not safetensors.
        try Data("not a weights file".utf8).write(to: URL(fileURLWithPath: tmp + "/junk.safetensors"))
        let junk = try CLI.run(["eval", "--weights", tmp + "/junk.safetensors", "--limit-test", "10"])
        #expect(junk.status != 0)
        #expect(junk.errorLine.contains("junk.safetensors"), "\(junk.stderr)")
        // Weights that do not fit the model asked for (a small model: building a big one in a
        // debug build takes seconds).
        let mismatch = try CLI.run(["predict", tmp + "/junk.safetensors", "--weights", dir + "/model.safetensors", "--classes", "7"])
        #expect(mismatch.status != 0)
        #expect(mismatch.errorLine.contains("7 classes") && mismatch.errorLine.contains("classifier.4.weight: file [10, 84] vs model [7, 84]"),
                "\(mismatch.stderr)")
        // An input of the wrong shape, and one without the `input` key.
        try SafeTensors.write([("input", try Tensor(zeros: [1, 3, 28, 28]))], to: tmp + "/rgb.safetensors")
        let shape = try CLI.run(["run", "--weights", dir + "/model.safetensors", "--input", tmp + "/rgb.safetensors", "--output", tmp + "/o.safetensors"])
        #expect(shape.status != 0)
        #expect(shape.errorLine.contains("[1, 3, 28, 28]"), "\(shape.stderr)")
        try SafeTensors.write([("x", try Tensor(zeros: [1, 1, 28, 28]))], to: tmp + "/nokey.safetensors")
        let key = try CLI.run(["run", "--weights", dir + "/model.safetensors", "--input", tmp + "/nokey.safetensors", "--output", tmp + "/o.safetensors"])
        #expect(key.status != 0)
        #expect(key.errorLine.contains("'input'"), "\(key.stderr)")
        #expect(!FileManager.default.fileExists(atPath: tmp + "/o.safetensors"))
        // An image that is not an image.
        try Data("P7 what".utf8).write(to: URL(fileURLWithPath: tmp + "/bad.png"))
        let image = try CLI.run(["predict", tmp + "/bad.png", "--weights", dir + "/model.safetensors"])
        #expect(image.status != 0)
        #expect(image.errorLine.contains("bad.png"), "\(image.stderr)")
        // A layer that does not exist.
        let layer = try CLI.run(["visualize", "--weights", dir + "/model.safetensors", "--output", tmp, "--image", tmp + "/bad.png",
                                 "--layer", "features.9"])
        #expect(layer.status != 0)
        #expect(layer.errorLine.contains("features.9") && layer.errorLine.contains("features.0"), "\(layer.stderr)")
    }

    // MARK: eval, predict, visualize, run, summary on the trained model

    @Test func evalPrintsAccuracyAndConfusionMatrix() throws {
        let dir = try CLI.trainedDirectory()
        let result = try CLI.run(["eval", "--weights", dir + "/model.safetensors", "--limit-test", "200"])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.lines
        try #require(lines.count == 1 + 1 + 11, "\(result.stdout)")
        #expect(lines[0].hasPrefix("lenet5 on mnist test (200 images): accuracy "))
        // The confusion matrix: a header and one row per digit, counts summing to 200, and the
        // diagonal sum matching the printed count of correct predictions.
        var total = 0, diagonal = 0
        for (i, line) in lines.suffix(10).enumerated() {
            let cells = line.split(separator: " ").map(String.init)
            #expect(cells.first == "\(i)")
            let counts = cells.dropFirst().compactMap { Int($0) }
            try #require(counts.count == 10, "row \(line)")
            total += counts.reduce(0, +)
            diagonal += counts[i]
        }
        #expect(total == 200)
        #expect(lines[0].contains("(\(diagonal)/200)"), "\(lines[0])")
    }

    /// Writes a few MNIST test digits as PNGs (one as a dark digit on white RGB at 56x56), predicts
    /// them with the CLI and checks the output against the same model run in this process.
    @Test func predictPrintsTopFiveMatchingTheLibrary() throws {
        let dir = try CLI.trainedDirectory()
        let tmp = try CLI.temporaryDirectory("predict")
        defer { CLI.remove(tmp) }
        let test = try MNIST.load(.test, directory: MNIST.defaultDirectory())
        var paths: [String] = []
        for i in 0..<3 {
            let digit = try Image(tensor: test.images.slice(batch: i..<(i + 1)))
            paths.append(tmp + "/digit\(i).png")
            try PNG.write(digit, to: paths[i])
        }
        // The first digit dark on white, each pixel doubled both ways (so that area averaging back to
        // 28x28 restores it exactly), as RGB.
        let negative = try Image(tensor: test.images.slice(batch: 0..<1)).inverted()
        var doubled = [UInt8]()
        for y in 0..<56 { for x in 0..<56 { let v = negative.pixels[(y / 2) * 28 + x / 2]; doubled += [v, v, v] } }
        let rgb = try Image(width: 56, height: 56, channels: 3, pixels: doubled)
        paths.append(tmp + "/paper.png")
        try PNG.write(rgb, to: paths[3])

        let result = try CLI.run(["predict"] + paths + ["--weights", dir + "/model.safetensors"])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.lines
        try #require(lines.count == 4 * 6, "\(result.stdout)")

        let model = try LeNet5(classes: 10)
        try model.loadWeights(from: dir + "/model.safetensors")
        model.eval()
        for (k, path) in paths.enumerated() {
            let block = Array(lines[(k * 6)..<(k * 6 + 6)])
            let image = try Image(contentsOf: path)
            let (x, inverted) = try image.networkInput(channels: 1, width: 28, height: 28, normalization: .mnist)
            #expect(inverted == (k == 3))
            let probabilities = try Functional.softmax(Variable(try model(x))).value.scalars
            let best = probabilities.indices.max { probabilities[$0] < probabilities[$1] }!
            #expect(block[0] == "\(path): \(best)" + (inverted ? " [inverted]" : ""))
            var previous = Float.infinity
            for (rank, line) in block.dropFirst().enumerated() {
                let cells = line.split(separator: " ").map(String.init)
                try #require(cells.count == 3, "\(line)")
                #expect(cells[0] == "\(rank + 1).")
                let c = try #require(Int(cells[1])), p = try #require(Float(cells[2]))
                #expect(abs(p - probabilities[c]) <= 1e-6, "\(line) vs \(probabilities[c])")
                #expect(p <= previous)
                previous = p
            }
        }
        // The dark-on-white 56x56 RGB digit is prepared into exactly the input of the original, so
        // it gets the same prediction.
        let a = try Image(contentsOf: paths[0]).networkInput(channels: 1, width: 28, height: 28, normalization: .mnist).tensor
        let b = try Image(contentsOf: paths[3]).networkInput(channels: 1, width: 28, height: 28, normalization: .mnist).tensor
        #expect(a == b)
        #expect(lines[18].dropFirst(paths[3].count) == lines[0].dropFirst(paths[0].count) + " [inverted]")
    }

    @Test func visualizeWritesFilterAndActivationGrids() throws {
        let dir = try CLI.trainedDirectory()
        let tmp = try CLI.temporaryDirectory("visualize")
        defer { CLI.remove(tmp) }
        let test = try MNIST.load(.test, directory: MNIST.defaultDirectory())
        try PNG.write(try Image(tensor: test.images.slice(batch: 0..<1)), to: tmp + "/digit.png")

        let first = try CLI.run(["visualize", "--weights", dir + "/model.safetensors", "--output", tmp + "/out", "--image", tmp + "/digit.png"])
        #expect(first.status == 0, "\(first.stderr)")
        // conv1 is [6, 1, 5, 5]: 3 x 2 tiles of 40 x 40 pixels with 1-pixel separators.
        let filters = try PNG.read(contentsOf: tmp + "/out/filters.png")
        #expect(filters.width == 3 * 40 + 2 && filters.height == 2 * 40 + 1 && filters.channels == 1)
        let model = try LeNet5(classes: 10)
        try model.loadWeights(from: dir + "/model.safetensors")
        #expect(filters == (try FeatureGrid.filters(model.features.layers[0].parametersTensor())))
        // features.0's output is [1, 6, 28, 28]: scale 2, 3 x 2 tiles of 56 x 56.
        let maps = try PNG.read(contentsOf: tmp + "/out/activations-features.0.png")
        #expect(maps.width == 3 * 56 + 2 && maps.height == 2 * 56 + 1)

        let second = try CLI.run(["visualize", "--weights", dir + "/model.safetensors", "--output", tmp + "/out", "--image", tmp + "/digit.png",
                                  "--layer", "features.3", "--scale", "4"])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(try PNG.read(contentsOf: tmp + "/out/filters.png").width == 3 * 20 + 2)
        // features.3's output is [1, 16, 10, 10]: scale 5, 4 x 4 tiles of 50 x 50.
        let deep = try PNG.read(contentsOf: tmp + "/out/activations-features.3.png")
        #expect(deep.width == 4 * 50 + 3 && deep.height == 4 * 50 + 3)
        let (x, _) = try Image(contentsOf: tmp + "/digit.png").networkInput(channels: 1, width: 28, height: 28, normalization: .mnist)
        #expect(deep == (try FeatureGrid.activations(try model.output(ofLayer: "features.3", for: x))))
    }

    @Test func runWritesTheForwardOutput() throws {
        let dir = try CLI.trainedDirectory()
        let tmp = try CLI.temporaryDirectory("run")
        defer { CLI.remove(tmp) }
        var g = SeededGenerator(seed: 11)
        let x = try Tensor.normal(shape: [3, 1, 28, 28], standardDeviation: 1, generator: &g)
        try SafeTensors.write([("input", x)], to: tmp + "/in.safetensors")
        let result = try CLI.run(["run", "--model", "lenet5", "--weights", dir + "/model.safetensors",
                                  "--input", tmp + "/in.safetensors", "--output", tmp + "/out.safetensors"])
        #expect(result.status == 0, "\(result.stderr)")
        let y = try SafeTensors(contentsOf: tmp + "/out.safetensors").tensor(named: "output")
        let model = try LeNet5(classes: 10)
        try model.loadWeights(from: dir + "/model.safetensors")
        model.eval()
        let expected: Tensor = try model(x)
        #expect(y.shape == [3, 10])
        #expect(y.maxAbsoluteDifference(expected) <= 1e-5)
    }

    @Test func summaryTableJSONAndList() throws {
        let table = try CLI.run(["summary", "lenet5", "--input", "2,3,32,32", "--classes", "7"])
        #expect(table.status == 0, "\(table.stderr)")
        #expect(table.lines.first == "lenet5: input [2, 3, 32, 32] -> output [2, 7]")
        let expected = try LeNet5(classes: 7, inputChannels: 3, inputSize: 32).summary(inputShape: [2, 3, 32, 32], name: "lenet5")
        #expect(table.stdout == expected.description + "\n")

        let json = try CLI.run(["summary", "lenet5", "--json"])
        #expect(json.status == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["total_params"] as? Int == 61_706)
        #expect(object["model"] as? String == "lenet5")

        let list = try CLI.run(["summary", "--list"])
        #expect(list.status == 0)
        #expect(list.lines.map { String($0.split(separator: " ")[0]) } == ModelZoo.names)
    }
}

private extension Module {
    /// The weight of a convolution layer.
    func parametersTensor() throws -> Tensor {
        try #require(self as? Conv2d).weight.value
    }
}
