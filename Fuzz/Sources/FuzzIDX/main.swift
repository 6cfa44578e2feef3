import CNN
import Foundation
import FuzzDriver

/// Parses arbitrary bytes (raw or gzip) as IDX images and as IDX labels, converting images to a
/// tensor. At most 16 MiB is inflated, so a decompression bomb is an error, not an out-of-memory.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzIDX(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: data, count: count))
    do {
        let images = try IDX.images(from: bytes, name: "fuzz", maxBytes: 1 << 24)
        _ = try images.tensor()
    } catch is CNNError {
    } catch {
        fatalError("IDX.images threw a non-CNNError: \(error)")
    }
    do {
        _ = try IDX.labels(from: bytes, name: "fuzz", maxBytes: 1 << 24)
    } catch is CNNError {
    } catch {
        fatalError("IDX.labels threw a non-CNNError: \(error)")
    }
    return 0
}

exit(cnn_fuzz_run(CommandLine.argc, CommandLine.unsafeArgv, { fuzzIDX($0, $1) }))
