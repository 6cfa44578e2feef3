// StrategyExplorer: run one convolution layer, then a ResNet basic block, under every convolution
// algorithm that applies; check that the outputs agree and print each one's time.
//
//     swift run -c release StrategyExplorer                              # 64 channels, 56x56, 3x3
//     swift run -c release StrategyExplorer --channels 256 --size 14
//     swift run -c release StrategyExplorer --kernel 1 --stride 2
//
// Swapping the strategy is one assignment: `conv.algorithm = .winograd4x4` for a layer,
// `ConvolutionAlgorithm.defaultAlgorithm = .im2col` for every layer that has none, or
// `model.compiled(inputShape:algorithm:)` for a compiled model. Times are medians of a few runs on
// whatever else the machine is doing: compare them with each other, not across runs.

import CNN
import Foundation

struct Options {
    var channels = 64, size = 56, kernel = 3, stride = 1, batch = 1, repetitions = 5

    static func parse(_ arguments: [String]) throws -> Options {
        var options = Options()
        var rest = arguments[...]
        while let name = rest.popFirst() {
            guard let text = rest.popFirst(), let value = Int(text), value >= 1 else {
                throw CNNError.invalidArgument("\(name) needs a positive number\nusage: StrategyExplorer [--channels C] [--size HW] [--kernel R] [--stride S] [--batch N] [--repeat K]")
            }
            switch name {
            case "--channels": options.channels = value
            case "--size": options.size = value
            case "--kernel": options.kernel = value
            case "--stride": options.stride = value
            case "--batch": options.batch = value
            case "--repeat": options.repetitions = value
            default: throw CNNError.invalidArgument("unknown option \(name)")
            }
        }
        return options
    }
}

/// The error each algorithm is allowed, relative to the largest output (ConvolutionAlgorithm's
/// documentation gives about 1e-6, 1e-5 and 1e-4 for the Winograd tiles).
func tolerance(_ algorithm: ConvolutionAlgorithm) -> Float {
    switch algorithm {
    case .winograd4x4: return 1e-4
    case .winograd6x6: return 1e-3
    default: return 1e-5
    }
}

func relativeDifference(_ a: Tensor, _ reference: Tensor) -> Float {
    a.maxAbsoluteDifference(reference) / max(reference.max(), -reference.min(), 1e-12)
}

func row(_ cells: [String]) -> String {
    zip(cells, [13, 9, 24, 10]).map { $0.padding(toLength: max($1, $0.count), withPad: " ", startingAt: 0) }.joined(separator: " ")
}

do {
    let o = try Options.parse(Array(CommandLine.arguments.dropFirst()))
    var generator = SeededGenerator(seed: 1)
    let x = try Tensor.uniform(shape: [o.batch, o.channels, o.size, o.size], lower: -1, upper: 1, generator: &generator)
    print("machine: \(ComputeRuntime.activeISA), \(ComputeRuntime.threadCount) threads")
    var failures = 0

    // 1. One layer, eagerly, with each applicable algorithm.
    GlobalGenerator.seed(2)
    let conv = try Conv2d(inputChannels: o.channels, outputChannels: o.channels, kernelSize: o.kernel,
                          stride: o.stride, padding: o.kernel / 2)
    let geometry = try conv.geometry(forInput: x.shape)
    print("\nlayer \(geometry)\n" + row(["algorithm", "ms", "GFLOP/s", "agrees"]))
    conv.algorithm = .direct
    let reference = try conv(x)
    for algorithm in geometry.applicableAlgorithms {
        conv.algorithm = algorithm
        let y = try conv(x)          // the first call also prepares the algorithm's plan
        let time = try benchmarkMilliseconds(repetitions: o.repetitions) { _ = try conv(x) }
        let difference = relativeDifference(y, reference)
        let agrees = difference <= tolerance(algorithm)
        if !agrees { failures += 1 }
        let gflops = 2 * Double(geometry.multiplyAccumulates) / (time.median * 1e6)
        print(row([algorithm.rawValue, String(format: "%.3f", time.median), String(format: "%.1f", gflops),
                   agrees ? String(format: "yes (%.0e)", difference) : String(format: "NO (%.1e)", difference)]))
    }

    // 2. A ResNet basic block (3x3 conv, batch norm, ReLU, 3x3 conv, batch norm, + shortcut, ReLU),
    //    compiled once per algorithm: the algorithm applies wherever it can, the heuristic elsewhere.
    GlobalGenerator.seed(3)
    let block = try BasicBlock(inputChannels: o.channels, width: o.channels)
    block.eval()
    let blockInput = try Tensor.uniform(shape: [o.batch, o.channels, o.size, o.size], lower: -1, upper: 1, generator: &generator)
    let blockReference: Tensor = try block(blockInput)
    print("\nResNet basic block, \(o.channels) channels, \(o.size)x\(o.size), compiled\n" + row(["algorithm", "ms", "convolutions", "agrees"]))
    for algorithm: ConvolutionAlgorithm in [.auto, .direct, .im2col, .winograd2x2, .winograd4x4, .winograd6x6, .autotune] {
        let compiled = try block.compiled(inputShape: blockInput.shape, algorithm: algorithm)
        let y = try compiled(blockInput)
        let time = try benchmarkMilliseconds(repetitions: o.repetitions) { _ = try compiled(blockInput) }
        let used = compiled.operations.filter { $0.kind == "conv2d" }.map { $0.detail.split(separator: " ")[2] }
        let difference = relativeDifference(y, blockReference)
        let agrees = difference <= tolerance(algorithm == .winograd6x6 ? .winograd6x6 : .winograd4x4)
        if !agrees { failures += 1 }
        print(row([algorithm.rawValue, String(format: "%.3f", time.median), used.joined(separator: ","),
                   agrees ? String(format: "yes (%.0e)", difference) : String(format: "NO (%.1e)", difference)]))
    }
    if failures > 0 {
        FileHandle.standardError.write(Data("StrategyExplorer: \(failures) results differ beyond their tolerance\n".utf8))
        exit(1)
    }
} catch {
    FileHandle.standardError.write(Data("StrategyExplorer: \(error)\n".utf8))
    exit(1)
}
