// swift-tools-version: 6.2
// PyTorchInterop — an example of the swift-cnn library: PyTorch state dicts in and out: the committed PyTorch fixture loaded and reproduced,
// or a torchvision model exported by Scripts/export_torchvision.py run as a zoo model.
//
// It is a package of its own that depends on the library by path, as an app would by URL
// (`.package(url: "https://github.com/<you>/swift-cnn", from: "...")`). From this folder:
//
//     swift run PyTorchInterop [--zoo resnet18 --weights resnet18.safetensors --image photo.png]

import PackageDescription

/// The library's package identity is the name of the folder the repository was cloned into (a path
/// dependency's identity is its last path component), so it is read from the folder, two levels up.
let library = Context.packageDirectory.split(separator: "/").dropLast(2).last.map(String.init) ?? "swift-cnn"

let package = Package(
    name: "PyTorchInterop",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "PyTorchInterop",
            dependencies: [.product(name: "CNN", package: library)],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
