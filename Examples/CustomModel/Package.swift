// swift-tools-version: 6.2
// CustomModel — an example of the swift-cnn library: A network written from scratch (a residual block and an Inception-style module),
// trained on generated images, saved as safetensors and reloaded.
//
// It is a package of its own that depends on the library by path, as an app would by URL
// (`.package(url: "https://github.com/<you>/swift-cnn", from: "...")`). From this folder:
//
//     swift run CustomModel [--epochs 3]

import PackageDescription

/// The library's package identity is the name of the folder the repository was cloned into (a path
/// dependency's identity is its last path component), so it is read from the folder, two levels up.
let library = Context.packageDirectory.split(separator: "/").dropLast(2).last.map(String.init) ?? "swift-cnn"

let package = Package(
    name: "CustomModel",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "CustomModel",
            dependencies: [.product(name: "CNN", package: library)],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
