import CNN
import Foundation
import FuzzDriver

/// Parses arbitrary bytes as a CIFAR-10 binary batch (records of 1 label byte + 3,072 pixels).
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzCIFAR10(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: data, count: count))
    do {
        let batch = try CIFAR10.batch(from: bytes, name: "fuzz")
        precondition(batch.images.shape == [batch.count, 3, 32, 32], "CIFAR10: images \(batch.images.shape) for \(batch.count) labels")
        precondition(batch.labels.allSatisfy { (0..<10).contains($0) }, "CIFAR10: label out of 0..<10 accepted")
    } catch is CNNError {
    } catch {
        fatalError("CIFAR10.batch threw a non-CNNError: \(error)")
    }
    return 0
}

exit(cnn_fuzz_run(CommandLine.argc, CommandLine.unsafeArgv, { fuzzCIFAR10($0, $1) }))
