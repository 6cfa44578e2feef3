import Foundation
import Testing
@testable import CNN

/// A LeNet-5 with an SGD optimizer that has taken one step (so it has momentum state), a trainer
/// over 8 synthetic images, and a scratch directory: what every bad-input case may touch.
final class ReliabilityFixture {
    let model: LeNet5
    let optimizer: SGD
    let trainer: Trainer
    let directory: String

    init() throws {
        GlobalGenerator.seed(11)
        model = try LeNet5()
        optimizer = try SGD(parameters: model.namedParameters(), learningRate: 0.05, momentum: 0.9)
        var g = SeededGenerator(seed: 3)
        let images = try Tensor.uniform(shape: [8, 1, 28, 28], lower: 0, upper: 1, generator: &g)
        let data = try LabeledDataset(images: images, labels: (0..<8).map { Int32($0 % 10) }, classes: 10)
        let loader = try DataLoader(dataset: data, batchSize: 4, shuffle: false, prefetch: false)
        trainer = try Trainer(model: model, optimizer: optimizer, trainLoader: loader, testLoader: nil)
        optimizer.zeroGradients()
        let loss = try Functional.crossEntropy(logits: try model(Variable(try images.slice(batch: 0..<4))), labels: [0, 1, 2, 3])
        try loss.backward()
        try optimizer.step()
        directory = try IOTestSupport.temporaryDirectory("reliability")
    }

    deinit { IOTestSupport.remove(directory) }

    /// Model and optimizer state as (name, bit patterns) pairs, for exact before/after comparison.
    func state() -> [String: [UInt32]] {
        var result: [String: [UInt32]] = [:]
        for (name, t) in model.stateDictionary() { result["model.\(name)"] = t.scalars.map(\.bitPattern) }
        for (name, t) in optimizer.stateDictionary() { result["optimizer.\(name)"] = t.scalars.map(\.bitPattern) }
        result["trainer.epoch"] = [UInt32(trainer.epoch)]
        return result
    }

    func file(_ name: String, _ bytes: [UInt8]) throws -> String {
        let path = directory + "/" + name
        try IOTestSupport.write(bytes, to: path)
        return path
    }
}

/// Builders for malformed files, each a small valid file with one thing wrong.
enum BadFiles {
    /// A safetensors file from a raw JSON header and data section.
    static func safetensors(header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
        var h = Array(header.utf8)
        while h.count % 8 != 0 { h.append(0x20) }
        let n = declaredLength ?? UInt64(h.count)
        return (0..<8).map { UInt8(truncatingIfNeeded: n >> (8 * UInt64($0))) } + h + data
    }

    static func be32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * UInt32($0))) } }

    static let idxImages = be32(0x803) + be32(2) + be32(2) + be32(2) + [UInt8](repeating: 7, count: 8)
    static let validSafeTensors = safetensors(header: #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8))
}

/// One row of the bad-input table: what is done, and the exact error it must throw.
struct BadInputCase: Sendable, CustomTestStringConvertible {
    let name: String
    /// The error, given the fixture's scratch directory (for messages that name a file in it).
    let expected: @Sendable (String) -> CNNError
    let run: @Sendable (ReliabilityFixture) throws -> Void
    var testDescription: String { name }

    init(_ name: String, _ expected: CNNError, _ run: @escaping @Sendable (ReliabilityFixture) throws -> Void) {
        self.name = name; self.expected = { _ in expected }; self.run = run
    }

    init(_ name: String, _ expected: @escaping @Sendable (String) -> CNNError, _ run: @escaping @Sendable (ReliabilityFixture) throws -> Void) {
        self.name = name; self.expected = expected; self.run = run
    }
}

/// The table: one row per way a user can get an input wrong. Every row asserts the precise error
/// (case and message), and that the model, the optimizer and the trainer are bit-for-bit as they were.
let badInputCases: [BadInputCase] = [
    // Shapes and layer configuration.
    BadInputCase("negative tensor dimension", .invalidArgument("Tensor: dimension -3 in shape [2, -3] is negative")) { _ in
        _ = try Tensor(zeros: [2, -3])
    },
    BadInputCase("zero channels in Conv2d", .invalidArgument("Conv2d: channels 0->4 and kernel 3x3 must be positive")) { _ in
        _ = try Conv2d(inputChannels: 0, outputChannels: 4, kernelSize: 3)
    },
    BadInputCase("negative kernel in Conv2d", .invalidArgument("Conv2d: channels 1->4 and kernel -1x3 must be positive")) { _ in
        _ = try Conv2d(inputChannels: 1, outputChannels: 4, kernelSize: (-1, 3))
    },
    BadInputCase("stride 0", .invalidArgument("Conv2d: stride (0, 0) must be at least 1")) { _ in
        _ = try Conv2d(inputChannels: 1, outputChannels: 4, kernelSize: 3, stride: 0)
    },
    BadInputCase("dilation 0", .invalidArgument("Conv2d: dilation (0, 0) must be at least 1")) { _ in
        _ = try Conv2d(inputChannels: 1, outputChannels: 4, kernelSize: 3, dilation: 0)
    },
    BadInputCase("groups not dividing channels", .invalidArgument("Conv2d: groups 3 must divide input channels 4 and output channels 6")) { _ in
        _ = try Conv2d(inputChannels: 4, outputChannels: 6, kernelSize: 3, groups: 3)
    },
    BadInputCase("channel mismatch between input and model", .shapeMismatch("Conv2d(1->6): input shape [2, 3, 28, 28] does not have 1 channels ([N, 1, H, W] expected)")) { f in
        _ = try f.model(Variable(try Tensor(zeros: [2, 3, 28, 28])))
    },
    BadInputCase("kernel larger than the padded input", .shapeMismatch("conv2d: kernel 5x5 (dilation 1x1) is larger than the padded input 3x3")) { _ in
        let conv = try Conv2d(inputChannels: 1, outputChannels: 2, kernelSize: 5)
        _ = try conv(try Tensor(zeros: [1, 1, 3, 3]))
    },
    BadInputCase("Winograd's 6x6 tile for a 5x5 kernel", .unsupported("conv2d: algorithm winograd6x6 does not apply to N=1 C=1 H=8 W=8 K=2 5x5 s1 p0 d1 g1; applicable: direct, im2col, winograd2x2, winograd4x4")) { _ in
        let conv = try Conv2d(inputChannels: 1, outputChannels: 2, kernelSize: 5, algorithm: .winograd6x6)
        _ = try conv(try Tensor(zeros: [1, 1, 8, 8]))
    },
    BadInputCase("Winograd for a strided 3x3", .unsupported("conv2d: algorithm winograd2x2 does not apply to N=1 C=1 H=8 W=8 K=2 3x3 s2 p0 d1 g1; applicable: direct, im2col")) { _ in
        let conv = try Conv2d(inputChannels: 1, outputChannels: 2, kernelSize: 3, stride: 2, algorithm: .winograd2x2)
        _ = try conv(try Tensor(zeros: [1, 1, 8, 8]))
    },
    // Labels and batches.
    BadInputCase("label outside the classes (loss)", .invalidArgument("crossEntropy: label 10 at index 1 is outside 0..<10")) { f in
        _ = try Functional.crossEntropy(logits: f.model(Variable(try Tensor(zeros: [2, 1, 28, 28]))), labels: [0, 10])
    },
    BadInputCase("negative label (data set)", .invalidArgument("LabeledDataset: label -1 at index 2 is outside 0..<10")) { _ in
        _ = try LabeledDataset(images: try Tensor(zeros: [3, 1, 4, 4]), labels: [0, 1, -1], classes: 10)
    },
    BadInputCase("batch size 0", .invalidArgument("DataLoader: batch size 0 must be at least 1")) { f in
        _ = try DataLoader(dataset: f.trainer.trainLoader.dataset, batchSize: 0)
    },
    BadInputCase("empty batch (loss)", .invalidArgument("crossEntropy: batch size is 0")) { _ in
        _ = try Functional.crossEntropy(logits: Variable(try Tensor(zeros: [0, 10])), labels: [])
    },
    BadInputCase("more labels than logits", .shapeMismatch("crossEntropy: 3 labels for a batch of 2 (logits [2, 10])")) { f in
        _ = try Functional.crossEntropy(logits: f.model(Variable(try Tensor(zeros: [2, 1, 28, 28]))), labels: [0, 1, 2])
    },
    BadInputCase("images and labels of different counts", .shapeMismatch("LabeledDataset: 4 images but 3 labels")) { _ in
        _ = try LabeledDataset(images: try Tensor(zeros: [4, 1, 4, 4]), labels: [0, 1, 2], classes: 10)
    },
    BadInputCase("gradient of the wrong shape for the last parameter", .shapeMismatch("SGD: gradient of \"classifier.4.bias\" has shape [3], the parameter has [10]")) { f in
        let params = f.model.namedParameters()
        for (_, p) in params { p.gradient = try Tensor(ones: p.value.shape) }
        params.last!.1.gradient = try Tensor(ones: [3])
        try f.optimizer.step()
    },
    // Files.
    BadInputCase("truncated safetensors data", .invalidFile("t.safetensors: tensor \"w\": data_offsets [0, 8] exceed the data buffer of 7 bytes")) { _ in
        _ = try SafeTensors(bytes: BadFiles.validSafeTensors.dropLast(1), name: "t.safetensors")
    },
    BadInputCase("truncated safetensors length prefix", .invalidFile("t.safetensors: file is 3 bytes, too short for the 8-byte header length")) { _ in
        _ = try SafeTensors(bytes: [8, 0, 0], name: "t.safetensors")
    },
    BadInputCase("safetensors header length beyond the file", .invalidFile("t.safetensors: header length 1000 exceeds the 8 bytes after the length field (file size 16)")) { _ in
        _ = try SafeTensors(bytes: BadFiles.safetensors(header: "{}", declaredLength: 1000), name: "t.safetensors")
    },
    BadInputCase("overlapping tensor offsets", .invalidFile("t.safetensors: tensors \"a\" [0, 8] and \"b\" [4, 12] overlap")) { _ in
        let h = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        _ = try SafeTensors(bytes: BadFiles.safetensors(header: h, data: [UInt8](repeating: 0, count: 12)), name: "t.safetensors")
    },
    BadInputCase("tensor offsets past the data", .invalidFile("t.safetensors: tensor \"a\": data_offsets [0, 8] exceed the data buffer of 4 bytes")) { _ in
        let h = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        _ = try SafeTensors(bytes: BadFiles.safetensors(header: h, data: [UInt8](repeating: 0, count: 4)), name: "t.safetensors")
    },
    BadInputCase("shape product that overflows", .invalidFile("t.safetensors: tensor \"a\": shape [4294967296, 4294967296] has too many elements (overflow)")) { _ in
        let h = #"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#
        _ = try SafeTensors(bytes: BadFiles.safetensors(header: h, data: [UInt8](repeating: 0, count: 8)), name: "t.safetensors")
    },
    BadInputCase("unknown dtype", .invalidFile("t.safetensors: tensor \"a\" has unknown dtype \"Q7\" (supported: BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64)")) { _ in
        let h = #"{"a":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}}"#
        _ = try SafeTensors(bytes: BadFiles.safetensors(header: h, data: [UInt8](repeating: 0, count: 8)), name: "t.safetensors")
    },
    BadInputCase("truncated safetensors weight file loaded into the model", { directory in .invalidFile("\(directory)/w.safetensors: tensor \"features.3.weight\": data_offsets [237224, 246824] exceed the data buffer of 246724 bytes") }) { f in
        let path = f.directory + "/w.safetensors"
        try f.model.saveWeights(to: path)
        let bytes = try IOTestSupport.read(path)
        try IOTestSupport.write(Array(bytes.prefix(bytes.count - 100)), to: path)
        try f.model.loadWeights(from: path)
    },
    BadInputCase("weight file for a different model", .shapeMismatch("loading weights into LeNet5: shape mismatches: classifier.4.weight: file [7, 84] vs model [10, 84]; classifier.4.bias: file [7] vs model [10]")) { f in
        GlobalGenerator.seed(5)
        let other = try LeNet5(classes: 7)
        let path = f.directory + "/other.safetensors"
        try other.saveWeights(to: path)
        try f.model.loadWeights(from: path)
    },
    BadInputCase("checkpoint for a different model", .shapeMismatch("loading weights into LeNet5: shape mismatches: classifier.4.weight: file [7, 84] vs model [10, 84]; classifier.4.bias: file [7] vs model [10]")) { f in
        GlobalGenerator.seed(5)
        let other = try LeNet5(classes: 7)
        let otherOptimizer = try SGD(parameters: other.namedParameters(), learningRate: 0.05, momentum: 0.9)
        let data = try LabeledDataset(images: try Tensor(zeros: [2, 1, 28, 28]), labels: [0, 6], classes: 7)
        let otherTrainer = try Trainer(model: other, optimizer: otherOptimizer,
                                       trainLoader: try DataLoader(dataset: data, batchSize: 2, prefetch: false), testLoader: nil)
        _ = try otherTrainer.trainEpoch()
        let path = f.directory + "/other-checkpoint.safetensors"
        try otherTrainer.saveCheckpoint(to: path)
        try f.trainer.loadCheckpoint(from: path)
    },
    BadInputCase("checkpoint whose optimizer part does not match", .invalidArgument("SGD.loadStateDictionary: 1 problem: hyperparameters.momentum is 0.5, this optimizer has 0.9")) { f in
        // Same model, but saved by an optimizer with a different momentum: the model part is valid,
        // the optimizer part is refused, and the model must not keep the checkpoint's weights.
        GlobalGenerator.seed(6)
        let twin = try LeNet5()
        let twinOptimizer = try SGD(parameters: twin.namedParameters(), learningRate: 0.05, momentum: 0.5)
        let twinTrainer = try Trainer(model: twin, optimizer: twinOptimizer, trainLoader: f.trainer.trainLoader, testLoader: nil)
        _ = try twinTrainer.trainEpoch()
        let path = f.directory + "/twin-checkpoint.safetensors"
        try twinTrainer.saveCheckpoint(to: path)
        try f.trainer.loadCheckpoint(from: path)
    },
    BadInputCase("IDX with the labels magic number", .invalidFile("images.idx: magic number 0x00000801, expected 0x00000803 (IDX images)")) { _ in
        _ = try IDX.images(from: BadFiles.be32(0x801) + Array(BadFiles.idxImages.dropFirst(4)), name: "images.idx")
    },
    BadInputCase("truncated IDX images", .invalidFile("images.idx: dimensions [2, 2, 2] need 8 bytes of images data after the 16-byte header, the file has 7")) { _ in
        _ = try IDX.images(from: Array(BadFiles.idxImages.dropLast(1)), name: "images.idx")
    },
    BadInputCase("IDX dimensions that overflow", .invalidFile("images.idx: dimensions [4294967295, 4294967295, 4294967295] overflow")) { _ in
        let bytes = BadFiles.be32(0x803) + BadFiles.be32(0xFFFF_FFFF) + BadFiles.be32(0xFFFF_FFFF) + BadFiles.be32(0xFFFF_FFFF)
        _ = try IDX.images(from: bytes, name: "images.idx")
    },
    BadInputCase("truncated gzip IDX", .invalidFile("images.idx.gz: corrupt compressed data (truncated compressed stream) in 26 compressed bytes")) { _ in
        let gz = try IOZlib.deflate(BadFiles.idxImages, gzip: true)
        _ = try IDX.images(from: Array(gz.dropLast(6)), name: "images.idx.gz")
    },
    BadInputCase("truncated CIFAR-10 batch", .invalidFile("data_batch_1.bin: file size 3078 bytes is not a positive multiple of the 3073-byte record (1 records and 5 bytes)")) { _ in
        _ = try CIFAR10.batch(from: [UInt8](repeating: 0, count: CIFAR10.recordSize + 5), name: "data_batch_1.bin")
    },
    BadInputCase("CIFAR-10 label 10", .invalidFile("data_batch_1.bin: record 0 has label 10, expected 0-9")) { _ in
        _ = try CIFAR10.batch(from: [10] + [UInt8](repeating: 0, count: CIFAR10.recordSize - 1), name: "data_batch_1.bin")
    },
    BadInputCase("PNG with a wrong signature", .invalidFile("x.png: not a PNG file: signature [89 50 4e 46 0d 0a 1a 0a], expected [89 50 4e 47 0d 0a 1a 0a]")) { _ in
        _ = try PNG.decode([0x89, 0x50, 0x4E, 0x46, 0x0D, 0x0A, 0x1A, 0x0A] + [UInt8](repeating: 0, count: 30), name: "x.png")
    },
    BadInputCase("truncated PNG", .invalidFile("x.png: truncated: chunk at offset 33 needs 20 bytes at offset 37, only 16 left (file size 53)")) { _ in
        let png = try PNG.encode(try Image(width: 4, height: 3, fill: [9]))
        _ = try PNG.decode(Array(png.dropLast(20)), name: "x.png")
    },
    BadInputCase("PGM with a wrong magic number", .invalidFile("x.pgm: unknown Netpbm magic P7")) { _ in
        _ = try PNM.decode(Array("P7\n1 1\n255\n\u{0}".utf8), name: "x.pgm")
    },
    BadInputCase("PGM of zero width", .invalidFile("x.pgm: size 0x1 must be positive")) { _ in
        _ = try PNM.decode(Array("P5\n0 1\n255\n".utf8), name: "x.pgm")
    },
    BadInputCase("autotune table with an inapplicable algorithm", .invalidFile("table.json: algorithm winograd2x2 does not apply to N=1 C=1 H=8 W=8 K=1 7x7 s1 p0 d1 g1")) { _ in
        let json = #"{"version":1,"entries":[{"geometry":{"batch":1,"inputChannels":1,"height":8,"width":8,"outputChannels":1,"kernelHeight":7,"kernelWidth":7,"strideHeight":1,"strideWidth":1,"paddingHeight":0,"paddingWidth":0,"dilationHeight":1,"dilationWidth":1,"groups":1},"algorithm":"winograd2x2","milliseconds":1,"isa":"avx2","threads":1}]}"#
        try ConvolutionAutotuner().load(json: Data(json.utf8), source: "table.json")
    },
    // Sizes known to be too large before anything is allocated.
    BadInputCase("tensor of 2^40 elements", .outOfMemory("Tensor: shape [1099511627776] has too many elements")) { _ in
        _ = try Tensor(zeros: [1 << 40])
    },
    BadInputCase("tensor whose shape product overflows", .outOfMemory("Tensor: shape [4294967296, 4294967296] has too many elements")) { _ in
        _ = try Tensor(zeros: [1 << 32, 1 << 32])
    },
]

@Suite("Reliability: bad inputs", .serialized)
struct ReliabilityBadInputTests {
    @Test("each bad input throws its precise error and changes nothing", arguments: badInputCases)
    func badInput(_ row: BadInputCase) throws {
        let fixture = try ReliabilityFixture()
        let before = fixture.state()
        let expected = row.expected(fixture.directory)
        do {
            try row.run(fixture)
            Issue.record("\(row.name): expected \(expected), nothing was thrown")
        } catch let error as CNNError {
            #expect(error == expected, "\(row.name): got \(String(reflecting: error))")
        } catch {
            Issue.record("\(row.name): expected a CNNError, got \(error)")
        }
        let after = fixture.state()
        #expect(after.keys.sorted() == before.keys.sorted(), "\(row.name): state keys changed")
        for (key, value) in before where after[key] != value {
            Issue.record("\(row.name): \(key) changed")
        }
    }

    @Test("the table has one row per case name")
    func namesAreUnique() {
        #expect(Set(badInputCases.map(\.name)).count == badInputCases.count)
    }
}
