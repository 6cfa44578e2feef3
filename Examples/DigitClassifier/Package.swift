// swift-tools-version: 6.2
// DigitClassifier — an example of the swift-cnn library: LeNet-5 on the bundled MNIST from a plain Swift app: trains briefly (or loads the
// model.safetensors that `cnn train` wrote) and classifies digits, PNG files included.
//
// It is a package of its own that depends on the library by path, as an app would by URL
// (`.package(url: "https://github.com/<you>/swift-cnn", from: "...")`). From this folder:
//
//     swift run DigitClassifier [--weights ../../runs/train/model.safetensors] [digit.png ...]

import PackageDescription

/// The library's package identity is the name of the folder the repository was cloned into (a path
/// dependency's identity is its last path component), so it is read from the folder, two levels up.
let library = Context.packageDirectory.split(separator: "/").dropLast(2).last.map(String.init) ?? "swift-cnn"

let package = Package(
    name: "DigitClassifier",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "DigitClassifier",
            dependencies: [.product(name: "CNN", package: library)],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
