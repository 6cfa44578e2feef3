// swift-tools-version: 6.2
// StrategyExplorer — an example of the swift-cnn library: Swapping convolution algorithms: one layer and a ResNet basic block run under every
// algorithm, outputs checked against each other, times printed.
//
// It is a package of its own that depends on the library by path, as an app would by URL
// (`.package(url: "https://github.com/<you>/swift-cnn", from: "...")`). From this folder:
//
//     swift run -c release StrategyExplorer [--channels 64 --size 56 --batch 1]

import PackageDescription

/// The library's package identity is the name of the folder the repository was cloned into (a path
/// dependency's identity is its last path component), so it is read from the folder, two levels up.
let library = Context.packageDirectory.split(separator: "/").dropLast(2).last.map(String.init) ?? "swift-cnn"

let package = Package(
    name: "StrategyExplorer",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "StrategyExplorer",
            dependencies: [.product(name: "CNN", package: library)],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
