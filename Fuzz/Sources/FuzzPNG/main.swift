import CNN
import Foundation
import FuzzDriver

/// Decodes arbitrary bytes as PNG (at most 2^20 pixels). A decoded image must convert to a tensor
/// and survive an encode/decode round trip unchanged.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzPNG(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: data, count: count))
    do {
        let image = try PNG.decode(bytes, name: "fuzz", maxPixels: 1 << 20)
        _ = try image.tensor()
        let again = try PNG.decode(try PNG.encode(image), name: "round trip", maxPixels: 1 << 20)
        precondition(again == image, "PNG: encode/decode round trip changed a \(image.width)x\(image.height)x\(image.channels) image")
    } catch is CNNError {
    } catch {
        fatalError("PNG threw a non-CNNError: \(error)")
    }
    return 0
}

exit(cnn_fuzz_run(CommandLine.argc, CommandLine.unsafeArgv, { fuzzPNG($0, $1) }))
