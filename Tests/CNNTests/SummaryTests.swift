import CNN
import Foundation
import Testing

@Suite("Model summary")
struct SummaryTests {
    @Test func alexNet2012FirstLayerAsInTheLecture() throws {
        let model = try AlexNet(variant: .original2012, classes: 10, hiddenFeatures: 32)
        let summary = try model.summary(inputShape: [1, 3, 227, 227], name: "alexnet2012")
        let conv1 = try #require(summary.layers.first)
        #expect(conv1.name == "features.0")
        #expect(conv1.type == "Conv2d")
        #expect(conv1.inputShape == [1, 3, 227, 227])
        #expect(conv1.outputShape == [1, 96, 55, 55])
        // 96 filters of 11·11·3 = 34,848 weights, plus 96 biases.
        #expect(conv1.parameters == 34_848 + 96)
        #expect(conv1.multiplyAccumulates == 96 * 55 * 55 * 3 * 11 * 11)
        #expect(conv1.activationBytes == 96 * 55 * 55 * 4)
        let byName = Dictionary(summary.layers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(byName["features.2"]?.type == "LocalResponseNorm")
        #expect(byName["features.3"]?.outputShape == [1, 96, 27, 27])
        // Grouped conv2: 256 filters of 5·5·48.
        #expect(byName["features.4"]?.outputShape == [1, 256, 27, 27])
        #expect(byName["features.4"]?.multiplyAccumulates == 256 * 27 * 27 * 48 * 25)
        #expect(byName["features.7"]?.outputShape == [1, 256, 13, 13])
        #expect(byName["features.14"]?.outputShape == [1, 256, 6, 6])
        #expect(byName["classifier.1"]?.multiplyAccumulates == 9216 * 32)
        #expect(summary.outputShape == [1, 10])
        #expect(summary.totalParameters == model.parameterCount)
        #expect(summary.totalParameters == summary.layers.reduce(0) { $0 + $1.parameters })
        let text = summary.description
        #expect(text.contains("alexnet2012: input [1, 3, 227, 227] -> output [1, 10]"))
        #expect(text.contains("Conv2d(3->96, 11x11, stride 4)"))
        #expect(text.contains("[1, 96, 55, 55]"))
        #expect(text.contains("34,944"))
    }

    @Test func vgg16TotalsWithANarrowClassifier() throws {
        // The full VGG-16 (138,357,544 parameters, 102,764,544 of them in classifier.0) is checked by
        // ZooFullSizeTests; here the classifier is 64 wide so the debug build stays fast.
        let model = try VGG(configuration: .d, classes: 10, hiddenFeatures: 64)
        let summary = try model.summary(inputShape: [1, 3, 32, 32])
        #expect(summary.model == "VGG")
        let convolutionParameters = 138_357_544 - (25088 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000)
        #expect(convolutionParameters == 14_714_688)
        #expect(summary.totalParameters == convolutionParameters + 25088 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10)
        let fc1 = try #require(summary.layers.first { $0.name == "classifier.0" })
        #expect(fc1.parameters == 25088 * 64 + 64)
        #expect(fc1.inputShape == [1, 25088])
        // Every VGG convolution sees a 224/32 = 7 times smaller map on each side: 1/49 of the
        // 15,346,630,656 convolution MACs at 224x224.
        let convolutionMACs = summary.layers.filter { $0.type == "Conv2d" }.reduce(0) { $0 + $1.multiplyAccumulates }
        #expect(convolutionMACs == 15_346_630_656 / 49)
        #expect(summary.totalMultiplyAccumulates == convolutionMACs + 25088 * 64 + 64 * 64 + 64 * 10)
        #expect(summary.layers.filter { $0.type == "Conv2d" }.count == 13)
        #expect(summary.layers.filter { $0.type == "Linear" }.count == 3)
        #expect(summary.weightBytes == summary.totalParameters * 4)
        #expect(summary.activationBytes == summary.layers.reduce(0) { $0 + $1.outputShape.reduce(1, *) * 4 })
        #expect(summary.trainableParameters == summary.totalParameters)
    }

    @Test func jsonIsExactlyTheContract() throws {
        let summary = try LeNet5(classes: 10, inputSize: 28).summary(inputShape: [1, 1, 28, 28], name: "lenet5")
        func layer(_ name: String, _ type: String, _ output: [Int], _ params: Int, _ macs: Int) -> String {
            "{\"name\":\"\(name)\",\"type\":\"\(type)\",\"output\":[\(output.map(String.init).joined(separator: ","))],\"params\":\(params),\"macs\":\(macs)}"
        }
        let layers = [
            layer("features.0", "Conv2d", [1, 6, 28, 28], 156, 6 * 28 * 28 * 25),
            layer("features.1", "ReLU", [1, 6, 28, 28], 0, 0),
            layer("features.2", "MaxPool2d", [1, 6, 14, 14], 0, 0),
            layer("features.3", "Conv2d", [1, 16, 10, 10], 2416, 16 * 10 * 10 * 6 * 25),
            layer("features.4", "ReLU", [1, 16, 10, 10], 0, 0),
            layer("features.5", "MaxPool2d", [1, 16, 5, 5], 0, 0),
            layer("classifier.0", "Linear", [1, 120], 48_120, 48_000),
            layer("classifier.1", "ReLU", [1, 120], 0, 0),
            layer("classifier.2", "Linear", [1, 84], 10_164, 10_080),
            layer("classifier.3", "ReLU", [1, 84], 0, 0),
            layer("classifier.4", "Linear", [1, 10], 850, 840),
        ]
        let expected = "{\"model\":\"lenet5\",\"input\":[1,1,28,28],\"layers\":[\(layers.joined(separator: ","))],\"total_params\":61706,\"total_macs\":416520}"
        #expect(summary.json == expected)
        // And it parses, with the keys in the contract.
        let object = try #require(try JSONSerialization.jsonObject(with: Data(summary.json.utf8)) as? [String: Any])
        #expect(Set(object.keys) == ["model", "input", "layers", "total_params", "total_macs"])
        let first = try #require((object["layers"] as? [[String: Any]])?.first)
        #expect(Set(first.keys) == ["name", "type", "output", "params", "macs"])
    }

    @Test func jsonEscapesNames() throws {
        let summary = try Sequential(ReLU()).summary(inputShape: [1, 2], name: "a \"quoted\"\\name\n")
        #expect(summary.json.hasPrefix("{\"model\":\"a \\\"quoted\\\"\\\\name\\n\",\"input\":[1,2],"))
        #expect(try JSONSerialization.jsonObject(with: Data(summary.json.utf8)) is [String: Any])
    }

    @Test func shapeErrorsNameTheLayer() throws {
        let model = try LeNet5(classes: 10, inputSize: 28)
        do {
            _ = try model.summary(inputShape: [1, 3, 28, 28])
            Issue.record("three channels into a one-channel LeNet must throw")
        } catch let error as CNNError {
            guard case .shapeMismatch(let message) = error else { Issue.record("wrong error \(error)"); return }
            #expect(message.hasPrefix("features.0 (Conv2d): "), "\(message)")
        }
        // 20x20 reaches the classifier with 16·3·3 = 144 features instead of 400.
        do {
            _ = try model.summary(inputShape: [1, 1, 20, 20])
            Issue.record("a 20x20 input must throw in the classifier")
        } catch let error as CNNError {
            guard case .shapeMismatch(let message) = error else { Issue.record("wrong error \(error)"); return }
            #expect(message.hasPrefix("classifier.0 (Linear): "), "\(message)")
            #expect(!message.contains("(LeNet5)"))
        }
        #expect(throws: CNNError.self) { try model.summary(inputShape: [1, 0, 28, 28]) }
    }

    @Test func summaryLeavesTheModelAsItWas() throws {
        let bn = try BatchNorm2d(features: 2)
        let model = Sequential(try Conv2d(inputChannels: 1, outputChannels: 2, kernelSize: 1), bn, try Dropout(probability: 0.5))
        model.eval()
        bn.train()
        let before = bn.runningMean.value
        let summary = try model.summary(inputShape: [2, 1, 3, 3])
        #expect(summary.layers.map(\.type) == ["Conv2d", "BatchNorm2d", "Dropout"])
        #expect(summary.layers.map(\.name) == ["0", "1", "2"])
        #expect(summary.bufferScalars == 2 + 2 + 1)
        #expect(!model.isTraining && bn.isTraining)
        #expect(!(model.layers[2]).isTraining)
        #expect(bn.runningMean.value == before)
        #expect(try bn.numBatchesTracked.value.item() == 0)
    }

    @Test func aSharedLayerAppearsOncePerCall() throws {
        let relu = ReLU()
        let model = Sequential(relu, try Linear(inputFeatures: 3, outputFeatures: 2), relu)
        let summary = try model.summary(inputShape: [4, 3])
        #expect(summary.layers.map(\.name) == ["0", "1", "0"])
        #expect(summary.layers[1].multiplyAccumulates == 4 * 3 * 2)
        #expect(summary.totalParameters == 8)
    }

    @Test func blocksAreWalkedToTheirLeaves() throws {
        let down = Sequential(try Conv2d(inputChannels: 4, outputChannels: 8, kernelSize: 1, stride: 2, bias: false),
                              try BatchNorm2d(features: 8))
        let block = try BasicBlock(inputChannels: 4, width: 8, stride: 2, downsample: down)
        let summary = try block.summary(inputShape: [1, 4, 8, 8])
        #expect(summary.layers.map(\.name) == ["conv1", "bn1", "conv2", "bn2", "downsample.0", "downsample.1"])
        #expect(summary.outputShape == [1, 8, 4, 4])
        // No recording outside a summary: the hook is off again.
        #expect(try block(Variable(try Tensor(zeros: [1, 4, 8, 8]))).shape == [1, 8, 4, 4])
    }
}
