// swift-tools-version: 6.2
// libFuzzer targets for the file readers of swift-cnn. Not part of the library: build and run with
// `.ci/reliability.sh` (see the README's "Reliability" section). The flags that turn on libFuzzer and
// AddressSanitizer are passed on the command line (`-Xswiftc -sanitize=fuzzer,address`), so that the
// library's own code is instrumented for coverage too, not only these harnesses. Each target's
// main.swift hands its test function to libFuzzer's driver through the small C target FuzzDriver.

import PackageDescription

let targets = ["FuzzSafeTensors", "FuzzIDX", "FuzzCIFAR10", "FuzzPNG", "FuzzPNM", "FuzzAutotune"]

let package = Package(
    name: "swift-cnn-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "swift-cnn", path: "..")],
    targets: [.target(name: "FuzzDriver")] + targets.map { name in
        .executableTarget(
            name: name,
            dependencies: ["FuzzDriver", .product(name: "CNN", package: "swift-cnn")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        )
    }
)
