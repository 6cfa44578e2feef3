import Foundation
import Testing
@testable import CNN

/// Runs the built `cnn` executable as a subprocess (the CLI target is an executable, so the tests
/// exercise it the way a user does) and shares the small trained model the CLI tests use.
enum CLI {
    /// What one run of `cnn` did.
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        /// The lines of stdout.
        var lines: [String] { stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty } }
        /// The first line of stderr.
        var errorLine: String { stderr.split(separator: "\n").first.map(String.init) ?? "" }
    }

    struct NotFound: Error, CustomStringConvertible {
        var searched: [String]
        var description: String {
            "the `cnn` executable was not found next to the test bundle (searched: \(searched.joined(separator: ", "))); build it with `swift build --build-tests` or set CNN_BINARY"
        }
    }

    /// The package root, from this file's path (Tests/CNNTests/CLISupport.swift).
    static let packageRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The `cnn` executable in the build directory that holds the test bundle (`.build/<config>/cnn`),
    /// or `$CNN_BINARY`.
    static func executable() throws -> URL {
        var candidates: [URL] = []
        if let path = ProcessInfo.processInfo.environment["CNN_BINARY"] { candidates.append(URL(fileURLWithPath: path)) }
        let arg0 = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        candidates.append(arg0.deletingLastPathComponent().appendingPathComponent("cnn"))
        candidates.append(Bundle.main.bundleURL.appendingPathComponent("cnn"))
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("cnn"))
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            candidates.append(bundle.bundleURL.deletingLastPathComponent().appendingPathComponent("cnn"))
        }
        for url in candidates where FileManager.default.isExecutableFile(atPath: url.path) { return url }
        throw NotFound(searched: candidates.map(\.path))
    }

    /// Runs `cnn arguments...` in the package root and waits for it; output goes through files, so
    /// a large output cannot block the child on a full pipe.
    static func run(_ arguments: [String]) throws -> Result {
        let process = Process()
        process.executableURL = try executable()
        process.arguments = arguments
        process.currentDirectoryURL = packageRoot
        let dir = try temporaryDirectory("run")
        defer { remove(dir) }
        let outPath = dir + "/stdout", errPath = dir + "/stderr"
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try out.close()
        try err.close()
        let stdout = String(decoding: try Data(contentsOf: URL(fileURLWithPath: outPath)), as: UTF8.self)
        let stderr = String(decoding: try Data(contentsOf: URL(fileURLWithPath: errPath)), as: UTF8.self)
        if process.terminationReason == .uncaughtSignal {
            Issue.record("cnn \(arguments.joined(separator: " ")) was killed by signal \(process.terminationStatus): \(stderr)")
        }
        return Result(status: process.terminationStatus, stdout: stdout, stderr: stderr)
    }

    /// A fresh empty directory.
    static func temporaryDirectory(_ label: String) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cnn-cli-\(label)-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url.path
    }

    static func remove(_ path: String) { try? FileManager.default.removeItem(atPath: path) }

    /// The arguments of the small training run whose output the CLI tests share.
    static let trainArguments = ["train", "--limit-train", "512", "--limit-test", "256", "--epochs", "1", "--seed", "3"]

    /// Where the shared training run writes; removed when the test process exits.
    static let trainedPath = FileManager.default.temporaryDirectory
        .appendingPathComponent("cnn-cli-trained-\(UUID().uuidString)", isDirectory: true).path

    /// One `cnn train` run into a directory kept for the process's lifetime: (directory, result).
    static let trained: Swift.Result<(String, Result), any Error> = Swift.Result {
        try FileManager.default.createDirectory(atPath: trainedPath, withIntermediateDirectories: true)
        atexit { CLI.remove(CLI.trainedPath) }
        return (trainedPath, try run(trainArguments + ["--checkpoint-dir", trainedPath]))
    }

    /// The trained run's directory, failing the calling test when training failed.
    static func trainedDirectory(sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let (dir, result) = try trained.get()
        try #require(result.status == 0, "cnn train failed: \(result.stderr)", sourceLocation: sourceLocation)
        return dir
    }
}
