import CNN
import Foundation
import FuzzDriver

/// Parses arbitrary bytes as a safetensors file and reads every tensor in it. Any error must be a
/// thrown `CNNError`; a crash, a sanitizer report or another error type is a bug.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzSafeTensors(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: count)
    do {
        let file = try SafeTensors(bytes: bytes, name: "fuzz")
        for name in file.names {
            let info = try file.info(named: name)
            if info.dtype.isInteger { _ = try file.integers(named: name) } else { _ = try file.tensor(named: name) }
        }
    } catch is CNNError {
    } catch {
        fatalError("SafeTensors threw a non-CNNError: \(error)")
    }
    return 0
}

exit(cnn_fuzz_run(CommandLine.argc, CommandLine.unsafeArgv, { fuzzSafeTensors($0, $1) }))
