import Foundation
import Testing
@testable import CNN

#if canImport(Glibc)
import Glibc
#endif

/// Runs the built `cnn` command as a subprocess, kills it with SIGKILL at random points and while a
/// checkpoint is being written, then resumes: the checkpoint must always load, and the resumed run's
/// losses must equal an uninterrupted run's exactly (one thread, same seed).
@Suite("Reliability: crash safety", .serialized)
struct ReliabilityCrashTests {
    /// The `cnn` executable beside this test bundle (`.build/<config>/cnn`).
    static func cnnExecutable() throws -> String {
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        var directory = (me as NSString).deletingLastPathComponent
        // On Linux the test bundle is `.build/<config>/swift-cnnPackageTests.xctest` (a file); on
        // Darwin the executable sits inside the bundle's Contents/MacOS.
        if directory.hasSuffix("Contents/MacOS") {
            for _ in 0..<3 { directory = (directory as NSString).deletingLastPathComponent }
        }
        let path = directory + "/cnn"
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw CNNError.io("the cnn executable is missing at \(path): build it with `swift build --build-tests` (which builds every product) before running this test")
        }
        return path
    }

    /// The first `train` and `test` MNIST images as uncompressed IDX files in `directory`, so that
    /// each subprocess starts in a fraction of a second.
    static func writeSmallMNIST(to directory: String, train: Int, test: Int) throws {
        let mnist = try MNIST.defaultDirectory()
        for (split, n) in [(MNIST.SplitName.train, train), (.test, test)] {
            func path(_ file: String) -> String {
                FileManager.default.fileExists(atPath: mnist + "/" + file) ? mnist + "/" + file : mnist + "/" + file + ".gz"
            }
            let images = try IDX.readImages(contentsOf: path(split.imagesFile))
            let labels = try IDX.readLabels(contentsOf: path(split.labelsFile))
            let pixels = images.rows * images.columns
            let imageBytes = BadFiles.be32(IDX.imagesMagic) + BadFiles.be32(UInt32(n)) + BadFiles.be32(UInt32(images.rows))
                + BadFiles.be32(UInt32(images.columns)) + Array(images.pixels.prefix(n * pixels))
            let labelBytes = BadFiles.be32(IDX.labelsMagic) + BadFiles.be32(UInt32(n)) + labels.prefix(n).map { UInt8($0) }
            try IOTestSupport.write(imageBytes, to: directory + "/" + split.imagesFile)
            try IOTestSupport.write(labelBytes, to: directory + "/" + split.labelsFile)
        }
    }

    /// `root/mnist` holding the first 512 training and 256 test images (what `start` trains on).
    static func smallMNIST(in root: String) throws -> String {
        let data = root + "/mnist"
        try IOTestSupport.makeDirectory(data)
        try writeSmallMNIST(to: data, train: 512, test: 256)
        return data
    }

    /// Starts `cnn train` into `checkpointDirectory`.
    static func start(_ executable: String, data: String, checkpointDirectory: String, resume: Bool) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = ["train", "--data-dir", data, "--limit-train", "512", "--limit-test", "256", "--epochs", "3",
                       "--batch-size", "64", "--threads", "1", "--seed", "7", "--optimizer", "sgd",
                       "--checkpoint-dir", checkpointDirectory]
            + (resume ? ["--resume"] : [])
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    /// `(train_loss, test_loss)` per epoch from a `log.csv`.
    static func losses(_ directory: String) throws -> [[String]] {
        let text = try String(contentsOfFile: directory + "/log.csv", encoding: .utf8)
        return text.split(separator: "\n").dropFirst().map { line in
            let f = line.split(separator: ",").map(String.init)
            return [f[0], f[1], f[3]]
        }
    }

    /// Whether a checkpoint exists; if so it must load into a fresh trainer.
    static func checkCheckpoint(_ directory: String) throws -> Int? {
        let path = directory + "/checkpoint.safetensors"
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        GlobalGenerator.seed(1)
        let model = try LeNet5()
        let data = try LabeledDataset(images: try Tensor(zeros: [1, 1, 28, 28]), labels: [0], classes: 10)
        let trainer = try Trainer(model: model, optimizer: try SGD(parameters: model.namedParameters(), learningRate: 0.05, momentum: 0.9),
                                  trainLoader: try DataLoader(dataset: data, batchSize: 1, prefetch: false), testLoader: nil)
        try trainer.loadCheckpoint(from: path)
        return trainer.epoch
    }

    /// The window the random kills of `killAndResume` hit about one run in twenty: after the last
    /// epoch's checkpoint, before its weights and log. Resuming then has no epoch left to train, and must
    /// still write both from the checkpoint.
    @Test("killed after the last checkpoint, before the weights and the log: resume writes them")
    func killAfterLastCheckpoint() throws {
        let cnn = try Self.cnnExecutable()
        let root = try IOTestSupport.temporaryDirectory("crash-last")
        defer { IOTestSupport.remove(root) }
        let data = try Self.smallMNIST(in: root)
        let run = root + "/run"
        let first = try Self.start(cnn, data: data, checkpointDirectory: run, resume: false)
        first.waitUntilExit()
        try #require(first.terminationStatus == 0, "cnn train exited with \(first.terminationStatus)")
        let expected = try Self.losses(run)
        try #require(expected.count == 3)
        let weights = try Data(contentsOf: URL(fileURLWithPath: run + "/model.safetensors"))
        // What the kill leaves: the epoch-3 checkpoint, the weights and log of epoch 2 (here: none).
        for file in ["log.csv", "log.svg", "model.safetensors"] { try FileManager.default.removeItem(atPath: run + "/" + file) }
        let resumed = try Self.start(cnn, data: data, checkpointDirectory: run, resume: true)
        resumed.waitUntilExit()
        try #require(resumed.terminationStatus == 0, "resumed cnn train exited with \(resumed.terminationStatus)")
        #expect(try Self.losses(run) == expected)
        #expect(FileManager.default.fileExists(atPath: run + "/log.svg"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: run + "/model.safetensors")) == weights)
    }

    @Test("SIGKILL at random points and during checkpoint writes; resume gives the uninterrupted losses")
    func killAndResume() throws {
        let cnn = try Self.cnnExecutable()
        let root = try IOTestSupport.temporaryDirectory("crash")
        defer { IOTestSupport.remove(root) }
        let data = try Self.smallMNIST(in: root)

        // The uninterrupted run, timed to choose kill points inside it.
        let clean = root + "/clean"
        let t0 = Date()
        let reference = try Self.start(cnn, data: data, checkpointDirectory: clean, resume: false)
        reference.waitUntilExit()
        let duration = Date().timeIntervalSince(t0)
        try #require(reference.terminationStatus == 0, "uninterrupted cnn train exited with \(reference.terminationStatus)")
        let expected = try Self.losses(clean)
        try #require(expected.count == 3)

        let run = root + "/killed"
        var rng = SystemRandomNumberGenerator()
        var kills = 0, killsDuringWrite = 0
        var stale = Set<String>()  // temporary files left by earlier kills
        // Three kills at random times, then three kills aimed at checkpoint writes (the moment the
        // temporary file appears), alternating; every attempt resumes from what is on disk.
        for attempt in 0..<6 {
            let resume = FileManager.default.fileExists(atPath: run + "/checkpoint.safetensors")
            let p = try Self.start(cnn, data: data, checkpointDirectory: run, resume: resume)
            if attempt % 2 == 0 {
                usleep(UInt32(Double.random(in: 0.05...max(0.1, duration * 0.6), using: &rng) * 1e6))
            } else {
                let deadline = Date().addingTimeInterval(duration * 2 + 5)
                var seen = false
                while p.isRunning, Date() < deadline, !seen {
                    let names = (try? FileManager.default.contentsOfDirectory(atPath: run)) ?? []
                    seen = names.contains { $0.hasPrefix(".checkpoint.safetensors.tmp-") && !stale.contains($0) }
                    if !seen { usleep(200) }
                }
                if seen && p.isRunning { killsDuringWrite += 1 }
            }
            if p.isRunning { kill(p.processIdentifier, SIGKILL); kills += 1 }
            p.waitUntilExit()
            stale.formUnion(((try? FileManager.default.contentsOfDirectory(atPath: run)) ?? []).filter { $0.contains(".tmp-") })
            // Whatever is on disk now must be a loadable checkpoint (or none yet).
            _ = try Self.checkCheckpoint(run)
        }
        let resume = FileManager.default.fileExists(atPath: run + "/checkpoint.safetensors")
        let last = try Self.start(cnn, data: data, checkpointDirectory: run, resume: resume)
        last.waitUntilExit()
        try #require(last.terminationStatus == 0, "resumed cnn train exited with \(last.terminationStatus)")
        #expect(try Self.checkCheckpoint(run) == 3)
        #expect(try Self.losses(run) == expected, "after \(kills) kills (\(killsDuringWrite) during a checkpoint write)")
        #expect(kills >= 1, "no attempt was killed: the run took \(duration) s")
    }
}
