/// PNG decoding and encoding (ISO/IEC 15948, the W3C PNG specification).
///
/// The decoder reads every standard form: color types 0 (gray), 2 (RGB), 3 (palette), 4 (gray +
/// alpha) and 6 (RGBA) at every bit depth the format allows (1, 2, 4, 8, 16), all five filter
/// types, and Adam7 interlacing. Samples come out as 8-bit (16-bit ones rounded, low bit depths
/// scaled to 0...255); a palette with a `tRNS` chunk gives RGBA, other transparency chunks are
/// ignored. Every chunk's CRC is checked, the image size is bounded before anything is allocated,
/// and the compressed data must inflate to exactly the size the header implies.
///
/// The encoder writes 8-bit gray, gray + alpha, RGB or RGBA, with one filter for every row or the
/// usual per-row heuristic (the filter with the least sum of absolute differences).
public enum PNG {
    /// The 8 bytes every PNG starts with.
    public static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// The per-row filters of the format.
    public enum Filter: UInt8, Sendable, CaseIterable {
        /// The bytes as they are.
        case none = 0
        /// Difference from the byte one pixel to the left.
        case sub = 1
        /// Difference from the byte above.
        case up = 2
        /// Difference from the mean of left and above.
        case average = 3
        /// Difference from the Paeth predictor of left, above and upper-left.
        case paeth = 4
    }

    /// How the encoder picks each row's filter.
    public enum FilterStrategy: Sendable, Equatable {
        /// Per row, the filter whose output has the least sum of absolute (signed) byte values —
        /// the heuristic the PNG specification recommends; usually the smallest file.
        case adaptive
        /// The same filter for every row.
        case fixed(Filter)
    }

    /// Reads the PNG file at `path`.
    ///
    /// - Throws: ``CNNError/io(_:)`` when it cannot be read; ``CNNError/invalidFile(_:)`` naming the
    ///   path, the chunk and the values when it is malformed; ``CNNError/unsupported(_:)`` for an
    ///   unknown critical chunk.
    public static func read(contentsOf path: String, maxPixels: Int = Image.defaultMaxPixels) throws -> Image {
        let limit = maxPixels > Int.max / 16 ? Int.max : maxPixels * 16 + (1 << 20)
        return try decode(IOFile.readAll(path, maxBytes: limit), name: path, maxPixels: maxPixels)
    }

    /// Writes `image` as a PNG file at `path`, atomically.
    public static func write(_ image: Image, to path: String, filter: FilterStrategy = .adaptive) throws {
        try IOFile.writeAtomically(encode(image, filter: filter), to: path)
    }

    // MARK: Decoding

    private struct Header {
        var width = 0, height = 0, bitDepth = 0, colorType = 0, interlaced = false
        var samplesPerPixel: Int { [0: 1, 2: 3, 3: 1, 4: 2, 6: 4][colorType] ?? 1 }
        var bitsPerPixel: Int { samplesPerPixel * bitDepth }
        /// Bytes of one filtered row of `w` pixels (without the filter byte).
        func rowBytes(_ w: Int) -> Int { (w * bitsPerPixel + 7) / 8 }  // sizes bounded by maxPixels first
    }

    /// The Adam7 passes: (x start, y start, x step, y step).
    private static let adam7: [(Int, Int, Int, Int)] = [
        (0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2),
    ]

    /// Decodes PNG bytes held in memory; `name` is used in error messages.
    public static func decode(_ bytes: [UInt8], name: String = "<memory>", maxPixels: Int = Image.defaultMaxPixels) throws -> Image {
        try bytes.withUnsafeBytes { try decode($0, name: name, maxPixels: maxPixels) }
    }

    private static func decode(_ raw: UnsafeRawBufferPointer, name: String, maxPixels: Int) throws -> Image {
        func fail(_ what: String) -> CNNError { .invalidFile("\(name): \(what)") }
        var reader = IOByteReader(raw, name: name)
        guard raw.count >= 8, raw.prefix(8).elementsEqual(signature) else {
            throw fail("not a PNG file: signature [\(hexBytes(raw.prefix(8)))], expected [\(hexBytes(signature[...]))]")
        }
        reader.offset = 8
        var header: Header? = nil
        var palette: [UInt8] = []  // RGB triples
        var alpha: [UInt8] = []    // tRNS for palette images
        var idat: [UInt8] = []
        var idatState = 0          // 0 none yet, 1 in the IDAT run, 2 after it
        var sawEnd = false
        while !sawEnd {
            let chunkStart = reader.offset
            let length = try reader.uint32BE("chunk length")
            guard length <= 0x7FFF_FFFF else { throw fail("chunk at offset \(chunkStart) has length \(length), above 2^31-1") }
            let typeAndData = try reader.slice(Int(length) + 4, "chunk at offset \(chunkStart)")
            let type = Array(typeAndData.prefix(4))
            guard type.allSatisfy({ (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }) else {
                throw fail("chunk at offset \(chunkStart) has an invalid type \(type.map { String($0, radix: 16) })")
            }
            let typeName = String(decoding: type, as: UTF8.self)
            let stored = try reader.uint32BE("CRC of chunk \(typeName)")
            let computed = IOZlib.crc32(typeAndData)
            guard stored == computed else {
                throw fail("chunk \(typeName) at offset \(chunkStart): CRC 0x\(String(stored, radix: 16)), computed 0x\(String(computed, radix: 16))")
            }
            let data = UnsafeRawBufferPointer(rebasing: typeAndData[4...])
            if header == nil && typeName != "IHDR" { throw fail("first chunk is \(typeName), expected IHDR") }
            if idatState == 1 && typeName != "IDAT" { idatState = 2 }
            switch typeName {
            case "IHDR":
                guard header == nil else { throw fail("second IHDR chunk") }
                header = try parseHeader(data, name: name, maxPixels: maxPixels)
            case "PLTE":
                let h = header!
                guard h.colorType != 0 && h.colorType != 4 else { throw fail("PLTE chunk in a color type \(h.colorType) image") }
                guard palette.isEmpty, idatState == 0 else { throw fail("PLTE chunk repeated or after IDAT") }
                guard data.count % 3 == 0, (3...768).contains(data.count) else {
                    throw fail("PLTE chunk of \(data.count) bytes, expected 1 to 256 RGB entries (a multiple of 3)")
                }
                palette = Array(data)
            case "tRNS":
                if header!.colorType == 3 {
                    guard !palette.isEmpty, data.count <= palette.count / 3 else {
                        throw fail("tRNS chunk has \(data.count) entries for a palette of \(palette.count / 3)")
                    }
                    alpha = Array(data)
                }
            case "IDAT":
                guard idatState != 2 else { throw fail("IDAT chunks are not consecutive") }
                idatState = 1
                idat += data
            case "IEND":
                sawEnd = true
            default:
                if type[0] & 0x20 == 0 {  // upper-case first letter: critical
                    throw CNNError.unsupported("\(name): unknown critical chunk \(typeName)")
                }
            }
        }
        let h = header!  // the loop ends only after IEND, which cannot come first
        guard idatState != 0 else { throw fail("no IDAT chunk") }
        if h.colorType == 3 && palette.isEmpty { throw fail("palette image without a PLTE chunk") }

        // The exact inflated size, pass by pass (one pass when not interlaced).
        let passes = h.interlaced ? adam7 : [(0, 0, 1, 1)]
        var passSizes: [(w: Int, h: Int)] = []
        var expected = 0
        for (x0, y0, dx, dy) in passes {
            let pw = (h.width - x0 + dx - 1) / dx, ph = (h.height - y0 + dy - 1) / dy
            passSizes.append((pw, ph))
            guard pw > 0 && ph > 0 else { continue }
            // Overflow-checked: a caller may raise maxPixels far enough for these to wrap.
            guard let bits = IOSize.product([pw, h.bitsPerPixel]), let bytes = IOSize.sum(bits / 8, 1 + (bits % 8 == 0 ? 0 : 1)),
                  let passBytes = IOSize.product([ph, bytes]), let total = IOSize.sum(expected, passBytes),
                  IOSize.product([h.width, h.height, 4]) != nil else {
                throw fail("size \(h.width)x\(h.height) overflows")
            }
            expected = total
        }
        let inflated = try idat.withUnsafeBytes {
            try IOZlib.inflate($0, maxOutput: expected, name: "\(name): image data")
        }
        guard inflated.count == expected else {
            throw fail("image data inflates to \(inflated.count) bytes, expected \(expected) for \(h.width)x\(h.height), color type \(h.colorType), bit depth \(h.bitDepth)")
        }

        let outChannels = h.colorType == 3 ? (alpha.isEmpty ? 3 : 4) : h.samplesPerPixel
        var out = [UInt8](repeating: 0, count: h.width * h.height * outChannels)
        var offset = 0
        for (p, (x0, y0, dx, dy)) in passes.enumerated() {
            let (pw, ph) = passSizes[p]
            guard pw > 0 && ph > 0 else { continue }
            let rowBytes = h.rowBytes(pw)
            var rows = [UInt8](repeating: 0, count: ph * rowBytes)
            try unfilter(inflated, at: offset, into: &rows, width: rowBytes, height: ph,
                         bytesPerPixel: Swift.max(1, h.bitsPerPixel / 8), name: name)
            offset += ph * (1 + rowBytes)
            try rows.withUnsafeBufferPointer { r in
                for y in 0..<ph {
                    for x in 0..<pw {
                        let dst = ((y0 + y * dy) * h.width + x0 + x * dx) * outChannels
                        try writePixel(r, row: y * rowBytes, x: x, header: h, palette: palette, alpha: alpha,
                                       into: &out, at: dst, name: name)
                    }
                }
            }
        }
        return try Image(width: h.width, height: h.height, channels: outChannels, pixels: out)
    }

    private static func parseHeader(_ data: UnsafeRawBufferPointer, name: String, maxPixels: Int) throws -> Header {
        func fail(_ what: String) -> CNNError { .invalidFile("\(name): IHDR \(what)") }
        guard data.count == 13 else { throw fail("has \(data.count) bytes, expected 13") }
        var r = IOByteReader(data, name: name)
        let width = try r.uint32BE("width"), height = try r.uint32BE("height")
        let depth = Int(try r.uint8("bit depth")), color = Int(try r.uint8("color type"))
        let compression = try r.uint8("compression"), filter = try r.uint8("filter"), interlace = try r.uint8("interlace")
        guard width > 0, height > 0, width <= 0x7FFF_FFFF, height <= 0x7FFF_FFFF else {
            throw fail("size \(width)x\(height): each side must be 1 to 2^31-1")
        }
        guard let pixels = IOSize.product([Int(width), Int(height)]), pixels <= maxPixels else {
            throw fail("size \(width)x\(height) exceeds the limit of \(maxPixels) pixels")
        }
        let allowed: [Int: [Int]] = [0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16]]
        guard let depths = allowed[color] else { throw fail("color type \(color) is not 0, 2, 3, 4 or 6") }
        guard depths.contains(depth) else { throw fail("bit depth \(depth) is not allowed for color type \(color) (allowed: \(depths))") }
        guard compression == 0 else { throw fail("compression method \(compression), expected 0") }
        guard filter == 0 else { throw fail("filter method \(filter), expected 0") }
        guard interlace <= 1 else { throw fail("interlace method \(interlace), expected 0 or 1") }
        return Header(width: Int(width), height: Int(height), bitDepth: depth, colorType: color, interlaced: interlace == 1)
    }

    /// Reverses the row filters of `height` rows of `width` bytes starting at `src[offset]` (each
    /// preceded by its filter-type byte), writing the raw rows to `dst`.
    private static func unfilter(_ src: [UInt8], at offset: Int, into dst: inout [UInt8], width: Int, height: Int,
                                 bytesPerPixel bpp: Int, name: String) throws {
        try src.withUnsafeBufferPointer { s in
            try dst.withUnsafeMutableBufferPointer { d in
                for y in 0..<height {
                    let i = offset + y * (width + 1)
                    let type = s[i]
                    let row = y * width, prior = row - width  // prior is valid only when y > 0
                    let inRow = i + 1
                    switch type {
                    case 0:
                        for x in 0..<width { d[row + x] = s[inRow + x] }
                    case 1:
                        for x in 0..<width { d[row + x] = s[inRow + x] &+ (x >= bpp ? d[row + x - bpp] : 0) }
                    case 2:
                        for x in 0..<width { d[row + x] = s[inRow + x] &+ (y > 0 ? d[prior + x] : 0) }
                    case 3:
                        for x in 0..<width {
                            let a = x >= bpp ? Int(d[row + x - bpp]) : 0, b = y > 0 ? Int(d[prior + x]) : 0
                            d[row + x] = s[inRow + x] &+ UInt8((a + b) / 2)
                        }
                    case 4:
                        for x in 0..<width {
                            let a = x >= bpp ? Int(d[row + x - bpp]) : 0
                            let b = y > 0 ? Int(d[prior + x]) : 0
                            let c = x >= bpp && y > 0 ? Int(d[prior + x - bpp]) : 0
                            d[row + x] = s[inRow + x] &+ UInt8(paeth(a, b, c))
                        }
                    default:
                        throw CNNError.invalidFile("\(name): row \(y) has filter type \(type), expected 0 to 4")
                    }
                }
            }
        }
    }

    /// The Paeth predictor: whichever of left, above, upper-left is closest to `a + b - c`.
    @inline(__always) static func paeth(_ a: Int, _ b: Int, _ c: Int) -> Int {
        let p = a + b - c
        let pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
        return pa <= pb && pa <= pc ? a : (pb <= pc ? b : c)
    }

    /// Converts pixel `x` of an unfiltered row to 8-bit output samples.
    @inline(__always)
    private static func writePixel(_ r: UnsafeBufferPointer<UInt8>, row: Int, x: Int, header h: Header,
                                   palette: [UInt8], alpha: [UInt8], into out: inout [UInt8], at dst: Int,
                                   name: String) throws {
        let spp = h.samplesPerPixel
        switch h.bitDepth {
        case 8:
            if h.colorType == 3 {
                try writePaletteEntry(Int(r[row + x]), palette: palette, alpha: alpha, into: &out, at: dst, name: name)
            } else {
                for c in 0..<spp { out[dst + c] = r[row + x * spp + c] }
            }
        case 16:
            for c in 0..<spp {
                let v = Int(r[row + (x * spp + c) * 2]) << 8 | Int(r[row + (x * spp + c) * 2 + 1])
                out[dst + c] = UInt8((v * 255 + 32767) / 65535)
            }
        default:  // 1, 2, 4: gray or palette, one sample per pixel, most significant bits first
            let bit = x * h.bitDepth
            let mask = (1 << h.bitDepth) - 1
            let v = Int(r[row + bit / 8]) >> (8 - h.bitDepth - bit % 8) & mask
            if h.colorType == 3 {
                try writePaletteEntry(v, palette: palette, alpha: alpha, into: &out, at: dst, name: name)
            } else {
                out[dst] = UInt8(v * 255 / mask)
            }
        }
    }

    @inline(__always)
    private static func writePaletteEntry(_ index: Int, palette: [UInt8], alpha: [UInt8], into out: inout [UInt8],
                                          at dst: Int, name: String) throws {
        guard index * 3 < palette.count else {
            throw CNNError.invalidFile("\(name): palette index \(index) is beyond the \(palette.count / 3)-entry PLTE")
        }
        out[dst] = palette[index * 3]
        out[dst + 1] = palette[index * 3 + 1]
        out[dst + 2] = palette[index * 3 + 2]
        if !alpha.isEmpty { out[dst + 3] = index < alpha.count ? alpha[index] : 255 }
    }

    // MARK: Encoding

    /// The PNG bytes of an 8-bit `image` (1 to 4 channels: gray, gray + alpha, RGB, RGBA),
    /// non-interlaced, rows filtered as `filter` says.
    ///
    /// - Throws: ``CNNError/invalidArgument(_:)`` for an empty image (PNG needs at least 1x1).
    public static func encode(_ image: Image, filter: FilterStrategy = .adaptive) throws -> [UInt8] {
        guard image.width > 0, image.height > 0 else {
            throw CNNError.invalidArgument("PNG.encode: a PNG needs at least 1x1 pixels, got \(image.width)x\(image.height)")
        }
        guard image.width <= 0x7FFF_FFFF, image.height <= 0x7FFF_FFFF else {
            throw CNNError.invalidArgument("PNG.encode: size \(image.width)x\(image.height) exceeds PNG's 2^31-1 per side")
        }
        let colorType: UInt8 = [1: 0, 2: 4, 3: 2, 4: 6][image.channels] ?? 0
        let bpp = image.channels, stride = image.width * image.channels
        var filtered = [UInt8]()
        filtered.reserveCapacity(image.height * (stride + 1))
        let choices: [Filter]
        switch filter {
        case .adaptive: choices = Filter.allCases
        case .fixed(let f): choices = [f]
        }
        var candidate = [UInt8](repeating: 0, count: stride)
        var best = [UInt8](repeating: 0, count: stride)
        image.pixels.withUnsafeBufferPointer { p in
            for y in 0..<image.height {
                let row = y * stride
                var bestType: UInt8 = 0
                var bestCost = Int.max
                for type in choices {
                    for x in 0..<stride {
                        let a = x >= bpp ? Int(p[row + x - bpp]) : 0
                        let b = y > 0 ? Int(p[row - stride + x]) : 0
                        let c = x >= bpp && y > 0 ? Int(p[row - stride + x - bpp]) : 0
                        let predictor: Int
                        switch type {
                        case .none: predictor = 0
                        case .sub: predictor = a
                        case .up: predictor = b
                        case .average: predictor = (a + b) / 2
                        case .paeth: predictor = paeth(a, b, c)
                        }
                        candidate[x] = p[row + x] &- UInt8(predictor)
                    }
                    let cost = choices.count > 1 ? candidate.reduce(0) { $0 + abs(Int(Int8(bitPattern: $1))) } : 0
                    if cost < bestCost { bestCost = cost; bestType = type.rawValue; swap(&best, &candidate) }
                }
                filtered.append(bestType)
                filtered += best
            }
        }
        var out = signature
        func chunk(_ type: String, _ data: [UInt8]) {
            let body = Array(type.utf8) + data
            appendBE(UInt32(data.count), to: &out)
            out += body
            appendBE(body.withUnsafeBytes { IOZlib.crc32($0) }, to: &out)
        }
        var ihdr: [UInt8] = []
        appendBE(UInt32(image.width), to: &ihdr)
        appendBE(UInt32(image.height), to: &ihdr)
        ihdr += [8, colorType, 0, 0, 0]
        chunk("IHDR", ihdr)
        let compressed = try IOZlib.deflate(filtered)
        // IDAT chunks of at most 1 MiB, as encoders commonly write (any split is valid).
        var start = 0
        repeat {
            let end = Swift.min(start + (1 << 20), compressed.count)
            chunk("IDAT", Array(compressed[start..<end]))
            start = end
        } while start < compressed.count
        chunk("IEND", [])
        return out
    }

    private static func hexBytes<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: " ")
    }

    private static func appendBE(_ v: UInt32, to out: inout [UInt8]) {
        out += [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
    }
}
