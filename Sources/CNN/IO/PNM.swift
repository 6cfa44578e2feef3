/// The Netpbm formats PGM (gray: `P2` text, `P5` binary) and PPM (RGB: `P3` text, `P6` binary).
///
/// A header of whitespace-separated tokens — magic, width, height, maxval (1 to 65535) — with
/// `#` comments allowed between them; binary data starts after exactly one whitespace byte and
/// holds one byte per sample (maxval <= 255) or two, big-endian. Samples are scaled to 8 bits
/// (`round(v * 255 / maxval)`); a sample above maxval is an error. Data after the image (the format
/// allows several images in one file) is ignored.
public enum PNM {
    /// Reads a PGM or PPM file.
    ///
    /// - Throws: ``CNNError/io(_:)`` when it cannot be read; ``CNNError/invalidFile(_:)`` naming
    ///   the path and the values when it is malformed; ``CNNError/unsupported(_:)`` for the bitmap
    ///   formats P1/P4.
    public static func read(contentsOf path: String, maxPixels: Int = Image.defaultMaxPixels) throws -> Image {
        let limit = maxPixels > Int.max / 16 ? Int.max : maxPixels * 16 + (1 << 20)
        return try decode(IOFile.readAll(path, maxBytes: limit), name: path, maxPixels: maxPixels)
    }

    /// Writes `image` (1 or 3 channels) as binary PGM/PPM (or text with `ascii`), atomically.
    public static func write(_ image: Image, to path: String, ascii: Bool = false) throws {
        try IOFile.writeAtomically(encode(image, ascii: ascii), to: path)
    }

    /// Decodes PGM/PPM bytes held in memory; `name` is used in error messages.
    public static func decode(_ bytes: [UInt8], name: String = "<memory>", maxPixels: Int = Image.defaultMaxPixels) throws -> Image {
        func fail(_ what: String) -> CNNError { .invalidFile("\(name): \(what)") }
        guard bytes.count >= 2, bytes[0] == UInt8(ascii: "P") else { throw fail("not a PGM/PPM file (no 'P' magic)") }
        let kind = bytes[1]
        let channels: Int, ascii: Bool
        switch kind {
        case UInt8(ascii: "2"): (channels, ascii) = (1, true)
        case UInt8(ascii: "5"): (channels, ascii) = (1, false)
        case UInt8(ascii: "3"): (channels, ascii) = (3, true)
        case UInt8(ascii: "6"): (channels, ascii) = (3, false)
        case UInt8(ascii: "1"), UInt8(ascii: "4"):
            throw CNNError.unsupported("\(name): PBM bitmaps (P1, P4) are not supported; use PGM or PPM")
        default: throw fail("unknown Netpbm magic P\(Character(Unicode.Scalar(kind)))")
        }
        var i = 2

        func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D || c == 0x0B || c == 0x0C }
        /// The next decimal number, skipping whitespace and comments (in the header only).
        func number(_ what: String, comments: Bool) throws -> Int {
            while i < bytes.count {
                if isSpace(bytes[i]) { i += 1 } else if comments && bytes[i] == UInt8(ascii: "#") {
                    while i < bytes.count, bytes[i] != 0x0A, bytes[i] != 0x0D { i += 1 }
                } else { break }
            }
            guard i < bytes.count else { throw fail("truncated: missing \(what)") }
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[i]) else {
                throw fail("expected a number for \(what) at byte \(i), found 0x\(String(bytes[i], radix: 16))")
            }
            var v = 0
            while i < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[i]) {
                v = v * 10 + Int(bytes[i] - UInt8(ascii: "0"))
                guard v <= Int(Int32.max) else { throw fail("\(what) at byte \(i) is too large") }
                i += 1
            }
            return v
        }
        let width = try number("width", comments: true)
        let height = try number("height", comments: true)
        let maxval = try number("maxval", comments: true)
        guard width > 0, height > 0 else { throw fail("size \(width)x\(height) must be positive") }
        guard let pixels = IOSize.product([width, height]), pixels <= maxPixels else {
            throw fail("size \(width)x\(height) exceeds the limit of \(maxPixels) pixels")
        }
        guard (1...65535).contains(maxval) else { throw fail("maxval \(maxval) is not in 1...65535") }
        guard let count = IOSize.product([pixels, channels, 2]).map({ $0 / 2 }) else {
            throw fail("size \(width)x\(height) overflows")
        }
        var out = [UInt8](repeating: 0, count: count)
        func scaled(_ v: Int, _ index: Int) throws -> UInt8 {
            guard v <= maxval else { throw fail("sample \(index) is \(v), above maxval \(maxval)") }
            return maxval == 255 ? UInt8(v) : UInt8((v * 255 + maxval / 2) / maxval)
        }
        if ascii {
            for k in 0..<count { out[k] = try scaled(try number("sample \(k) of \(count)", comments: true), k) }
        } else {
            guard i < bytes.count, isSpace(bytes[i]) else { throw fail("truncated: no whitespace after maxval") }
            i += 1
            let size = maxval > 255 ? 2 : 1
            guard bytes.count - i >= count * size else {
                throw fail("truncated: \(width)x\(height)x\(channels) samples need \(count * size) bytes after the \(i)-byte header, the file has \(bytes.count - i)")
            }
            for k in 0..<count {
                let v = size == 1 ? Int(bytes[i + k]) : Int(bytes[i + 2 * k]) << 8 | Int(bytes[i + 2 * k + 1])
                out[k] = try scaled(v, k)
            }
        }
        return try Image(width: width, height: height, channels: channels, pixels: out)
    }

    /// The bytes of `image` as PGM (1 channel) or PPM (3 channels), maxval 255, binary (`P5`/`P6`)
    /// or text (`P2`/`P3`, at most 70 characters a line as the format asks).
    ///
    /// - Throws: ``CNNError/unsupported(_:)`` for images with alpha (see ``Image/removingAlpha()``);
    ///   ``CNNError/invalidArgument(_:)`` for an empty image.
    public static func encode(_ image: Image, ascii: Bool = false) throws -> [UInt8] {
        guard image.channels == 1 || image.channels == 3 else {
            throw CNNError.unsupported("PNM.encode: PGM/PPM hold 1 or 3 channels, the image has \(image.channels); drop alpha with removingAlpha()")
        }
        guard image.width > 0, image.height > 0 else {
            throw CNNError.invalidArgument("PNM.encode: empty \(image.width)x\(image.height) image")
        }
        let magic = (image.channels == 1 ? 2 : 3) + (ascii ? 0 : 3)
        var out = Array("P\(magic)\n\(image.width) \(image.height)\n255\n".utf8)
        if !ascii { return out + image.pixels }
        var line = 0
        for v in image.pixels {
            let text = Array(String(v).utf8)
            if line > 0 && line + 1 + text.count > 70 { out.append(0x0A); line = 0 }
            if line > 0 { out.append(0x20); line += 1 }
            out += text
            line += text.count
        }
        out.append(0x0A)
        return out
    }
}
