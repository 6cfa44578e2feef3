// swift-tools-version: 6.2
// swift-tools-version 6.2 or later is required: since SwiftPM 6.2 a package that is used as a
// versioned dependency may carry `unsafeFlags`, which OpenMP (`-fopenmp`) needs.

import PackageDescription

/// C flags for the kernels. The kernels are always optimised (also in debug builds, so that the
/// test suite runs at a useful speed); ISA-specific code is selected per function with
/// `__attribute__((target(...)))`, never with `-march=native`, so the library runs on any x86-64.
let kernelCFlags: [CSetting] = [
    .unsafeFlags(["-O3", "-fno-math-errno", "-ffp-contract=fast", "-Wall", "-Wextra", "-Wno-unused-parameter"]),
    // Every loop starts on a 64-byte line, so a kernel's inner loop does not move to another
    // offset (and take another number of lines of the decoded-op cache) when unrelated code
    // around it changes. Zen 3 class, AVX2, 2 threads: an edit to the 6x16 GEMM kernel's store
    // alone moved its k loop from a 64-byte to a 32-byte boundary and ResNet-50's 1x1
    // convolutions ran 1.00-1.09x as long (most of them 1.06-1.09x); with this flag the same code
    // ran 0.86-1.03x the time of the build before either change (C harness, builds called in turn
    // 40 times, per-layer median).
    .unsafeFlags(["-falign-loops=64"]),
    // OpenMP comes from the system's LLVM runtime (Debian/Ubuntu `libomp-dev`). Swift's clang has
    // no `omp.h`, so the kernels declare the few runtime calls they use themselves.
    .unsafeFlags(["-fopenmp"], .when(platforms: [.linux], traits: ["OpenMP"])),
    .define("CNN_OPENMP", to: "1", .when(platforms: [.linux], traits: ["OpenMP"])),
]

/// `libomp.so.5` is linked by its soname, which every LLVM version since 3.7 installs into the
/// multiarch library directory (`/usr/lib/<triple>/libomp.so.5`), so no LLVM version is named.
let kernelLinkerFlags: [LinkerSetting] = [
    .unsafeFlags(["-Xlinker", "-l:libomp.so.5"], .when(platforms: [.linux], traits: ["OpenMP"])),
    .linkedLibrary("z"),
    .linkedLibrary("m", .when(platforms: [.linux])),
]

let package = Package(
    name: "swift-cnn",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "CNN", targets: ["CNN"]),
        .executable(name: "cnn", targets: ["CNNTool"]),
        .library(name: "CNNDistributedMPI", targets: ["CNNDistributedMPI"]),
    ],
    traits: [
        .trait(name: "OpenMP", description: "Run the kernels on all cores with the system's LLVM OpenMP runtime (libomp)."),
        .trait(name: "MPI", description: "Data-parallel training across processes and machines with the system's Open MPI (libopenmpi-dev): MPICommunicator and `cnn train --distributed`."),
        .default(enabledTraits: ["OpenMP"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // Builds the DocC catalog: `swift package generate-documentation --target CNN`. A command
        // plugin only: nothing of it is linked into the library or the tool.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        .target(
            name: "CNNKernels",
            cSettings: kernelCFlags,
            linkerSettings: kernelLinkerFlags
        ),
        .target(
            name: "CNN",
            dependencies: ["CNNKernels"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // MPI is optional (trait `MPI`, off by default): without it `CNNDistributedMPI` compiles to
        // an empty module and `CNNMPI` is never used, so nothing needs an MPI installation. With it,
        // SwiftPM asks pkg-config for Open MPI's `ompi-c` (include and library paths), so no MPI
        // version or directory is written down here.
        .systemLibrary(
            name: "CNNMPI",
            pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev"]), .brew(["open-mpi"])]
        ),
        .target(
            name: "CNNDistributedMPI",
            dependencies: ["CNN", .target(name: "CNNMPI", condition: .when(traits: ["MPI"]))],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "CNNTool",
            dependencies: ["CNN", "CNNDistributedMPI", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .testTarget(
            name: "CNNKernelsTests",
            dependencies: ["CNNKernels", "CNN"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .testTarget(
            name: "CNNTests",
            dependencies: ["CNN"],
            resources: [.copy("Fixtures")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
