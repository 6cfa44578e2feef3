import CNN
import Foundation
import FuzzDriver

/// Decodes arbitrary bytes as PGM/PPM (P2, P3, P5, P6; at most 2^20 pixels). A decoded image must
/// survive an encode/decode round trip unchanged, binary and ASCII.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzPNM(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: data, count: count))
    do {
        let image = try PNM.decode(bytes, name: "fuzz", maxPixels: 1 << 20)
        _ = try image.tensor()
        for ascii in [false, true] {
            let again = try PNM.decode(try PNM.encode(image, ascii: ascii), name: "round trip", maxPixels: 1 << 20)
            precondition(again == image, "PNM: round trip (ascii \(ascii)) changed a \(image.width)x\(image.height)x\(image.channels) image")
        }
    } catch is CNNError {
    } catch {
        fatalError("PNM threw a non-CNNError: \(error)")
    }
    return 0
}

exit(cnn_fuzz_run(CommandLine.argc, CommandLine.unsafeArgv, { fuzzPNM($0, $1) }))
