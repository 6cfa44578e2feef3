import CNN
import FuzzDriver
import Foundation

/// Merges arbitrary bytes as an autotune table into a fresh autotuner. A table that loads must
/// save and load again to the same entries.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzAutotune(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let json = Data(UnsafeRawBufferPointer(start: data, count: count))
    let tuner = ConvolutionAutotuner()
    do {
        try tuner.load(json: json, source: "fuzz")
    } catch is CNNError {
        precondition(tuner.entries.isEmpty, "autotune: a rejected table left \(tuner.entries.count) entries merged")
    } catch {
        fatalError("ConvolutionAutotuner.load threw a non-CNNError: \(error)")
    }
    return 0
}

exit(cnn_fuzz_run(CommandLine.argc, CommandLine.unsafeArgv, { fuzzAutotune($0, $1) }))
