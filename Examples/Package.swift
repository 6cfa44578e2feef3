// swift-tools-version: 6.2
// Small programs that use swift-cnn the way an app would, each an executable target depending on
// the library by path (as the Benchmarks package does). From this folder:
//
//     swift run DigitClassifier                 # train LeNet-5 briefly, classify digits
//     swift run StrategyExplorer                # one layer and a residual block under every algorithm
//     swift run PyTorchInterop                  # load a PyTorch state dict, run it, write it back
//     swift run CustomModel                     # a hand-written network with a residual block
//
// Use `-c release` for realistic speed; each also runs in seconds in a debug build.

import PackageDescription

/// The parent package's identity is the name of the folder it was cloned into (a path dependency's
/// identity is its last path component), so it is read from the folder rather than spelled out.
let parentIdentity = Context.packageDirectory.split(separator: "/").dropLast().last.map(String.init) ?? "swift-cnn"

let package = Package(
    name: "swift-cnn-examples",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
    ],
    targets: ["DigitClassifier", "StrategyExplorer", "PyTorchInterop", "CustomModel"].map { name in
        .executableTarget(
            name: name,
            dependencies: [.product(name: "CNN", package: parentIdentity)],
            path: "Sources/\(name)",
            swiftSettings: [.swiftLanguageMode(.v6)]
        )
    }
)
