// swift-tools-version: 6.2
// The benchmark suite of swift-cnn, a package of its own so that users of the library never fetch
// the benchmark dependencies. Run from this folder:
//
//     swift package benchmark                       # every suite, short default runs
//     swift package benchmark --target GEMM         # one suite
//     swift package benchmark baseline check main   # compare with the committed baseline `main`

import PackageDescription

/// The parent package's identity is the name of the folder it was cloned into (a path dependency's
/// identity is its last path component), so it is read from the folder rather than spelled out.
let parentIdentity = Context.packageDirectory.split(separator: "/").dropLast().last.map(String.init) ?? "swift-cnn"

/// The library, and the benchmark framework's support library and code generator.
let benchmarkDependencies: [Target.Dependency] = [
    .product(name: "CNN", package: parentIdentity),
    .product(name: "Benchmark", package: "package-benchmark"),
    "CNNBenchmarkSupport",
]

let package = Package(
    name: "swift-cnn-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/package-benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .target(
            name: "CNNBenchmarkSupport",
            dependencies: [
                .product(name: "CNN", package: parentIdentity),
                .product(name: "Benchmark", package: "package-benchmark"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ] + ["GEMM", "Convolution", "Layers", "Training", "Models"].map { name in
        .executableTarget(
            name: name,
            dependencies: benchmarkDependencies,
            path: "Benchmarks/\(name)",
            swiftSettings: [.swiftLanguageMode(.v6)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        )
    }
)
