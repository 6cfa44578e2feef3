import Foundation
import Testing
@testable import CNN

/// A PNG chunk with a correct CRC.
private func pngChunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
    let body = Array(type.utf8) + data
    func be(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
    return be(UInt32(data.count)) + body + be(body.withUnsafeBytes { IOZlib.crc32($0) })
}

private func ihdr(_ w: UInt32, _ h: UInt32, depth: UInt8 = 8, color: UInt8 = 0, interlace: UInt8 = 0) -> [UInt8] {
    func be(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
    return pngChunk("IHDR", be(w) + be(h) + [depth, color, 0, 0, interlace])
}

/// A PNG from chunks: signature, IHDR, the given middle chunks, IEND.
private func png(_ header: [UInt8], _ middle: [[UInt8]]) -> [UInt8] {
    PNG.signature + header + middle.flatMap { $0 } + pngChunk("IEND", [])
}

private func randomImage(_ w: Int, _ h: Int, _ c: Int, seed: UInt64) throws -> Image {
    var rng = IOTestRNG(seed: seed)
    // Smooth content plus noise, like a photo, so the filters differ.
    let pixels = (0..<(w * h * c)).map { i -> UInt8 in
        let x = (i / c) % w, y = i / c / w
        return UInt8(truncatingIfNeeded: x * 9 + y * 5 + (i % c) * 60 + rng.below(12))
    }
    return try Image(width: w, height: h, channels: c, pixels: pixels)
}

@Suite struct IOImageTests {
    /// PNGs written by an independent encoder (Tests/CNNTests/Fixtures/png/make_fixtures.py) and
    /// checked with Pillow: every color type, bit depth, filter type, Adam7.
    @Test func decodesEveryFixture() throws {
        let dir = try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil)).path + "/png"
        let manifest = try String(contentsOfFile: dir + "/manifest.txt", encoding: .utf8)
        var checked = 0
        for line in manifest.split(separator: "\n") {
            let f = line.split(separator: " ").map(String.init)
            let (name, w, h, c) = (f[0], Int(f[1])!, Int(f[2])!, Int(f[3])!)
            let image = try PNG.read(contentsOf: "\(dir)/\(name).png")
            let expected = try IOTestSupport.read("\(dir)/\(name).raw")
            #expect(image.width == w && image.height == h && image.channels == c, "\(name)")
            #expect(image.pixels == expected, "\(name)")
            checked += 1
        }
        #expect(checked == 30)
    }

    @Test(arguments: [1, 2, 3, 4])
    func pngRoundTripEveryFilter(channels: Int) throws {
        let image = try randomImage(13, 7, channels, seed: UInt64(channels))
        for filter in PNG.Filter.allCases.map(PNG.FilterStrategy.fixed) + [.adaptive] {
            let bytes = try PNG.encode(image, filter: filter)
            #expect(try PNG.decode(bytes) == image, "filter \(String(describing: filter))")
        }
        let tiny = try Image(width: 1, height: 1, channels: channels, pixels: [UInt8](repeating: 200, count: channels))
        #expect(try PNG.decode(PNG.encode(tiny)) == tiny)
    }

    @Test func fileRoundTripsAndFormatDetection() throws {
        let dir = try IOTestSupport.temporaryDirectory("img")
        defer { IOTestSupport.remove(dir) }
        let rgb = try randomImage(10, 4, 3, seed: 9)
        let gray = try randomImage(5, 6, 1, seed: 10)
        for (image, name) in [(rgb, "a.png"), (rgb, "a.ppm"), (gray, "g.png"), (gray, "g.pgm")] {
            try image.write(to: dir + "/" + name)
            #expect(try Image(contentsOf: dir + "/" + name) == image, "\(name)")
        }
        #expect(try IOTestSupport.read(dir + "/a.ppm").starts(with: Array("P6\n10 4\n255\n".utf8)))
        try IOTestSupport.write(Array("hello world".utf8), to: dir + "/x.png")
        IOTestSupport.expectInvalidFile(["x.png", "not a PNG, PGM or PPM", "68 65 6c"]) { _ = try Image(contentsOf: dir + "/x.png") }
        // A large image (several IDAT chunks of 1 MiB) survives.
        let big = try randomImage(700, 600, 3, seed: 11)
        #expect(try PNG.decode(PNG.encode(big, filter: .fixed(.none))) == big)
    }

    @Test func rejectsCorruptPNGs() throws {
        let good = try PNG.encode(randomImage(6, 5, 3, seed: 3))
        IOTestSupport.expectInvalidFile(["t.png", "signature [89 50 4e 47 0d 0a 1a 00]"]) {
            _ = try PNG.decode(Array(good.prefix(7)) + [0] + good.dropFirst(8), name: "t.png")
        }
        var badCRC = good
        badCRC[8 + 25 + 10] ^= 0x01  // inside the IDAT data (IHDR chunk is 25 bytes)
        IOTestSupport.expectInvalidFile(["t.png", "chunk IDAT at offset 33: CRC 0x", "computed 0x"]) {
            _ = try PNG.decode(badCRC, name: "t.png")
        }
        for cut in [9, 20, 40, good.count - 13, good.count - 1] {
            IOTestSupport.expectInvalidFile(["t.png", "truncated"]) { _ = try PNG.decode(Array(good.prefix(cut)), name: "t.png") }
        }
        let row: [UInt8] = [0, 1, 2, 3]
        let idat = pngChunk("IDAT", try IOZlib.deflate(row + row))
        IOTestSupport.expectInvalidFile(["IHDR size 2147483647x2147483647 exceeds the limit of 67108864 pixels"]) {
            _ = try PNG.decode(png(ihdr(0x7FFF_FFFF, 0x7FFF_FFFF), [idat]))
        }
        IOTestSupport.expectInvalidFile(["IHDR size 4294967295x1"]) { _ = try PNG.decode(png(ihdr(0xFFFF_FFFF, 1), [idat])) }
        IOTestSupport.expectInvalidFile(["IHDR size 0x2"]) { _ = try PNG.decode(png(ihdr(0, 2), [idat])) }
        IOTestSupport.expectInvalidFile(["bit depth 4 is not allowed for color type 2"]) {
            _ = try PNG.decode(png(ihdr(3, 2, depth: 4, color: 2), [idat]))
        }
        IOTestSupport.expectInvalidFile(["color type 5"]) { _ = try PNG.decode(png(ihdr(3, 2, color: 5), [idat])) }
        IOTestSupport.expectInvalidFile(["interlace method 2"]) { _ = try PNG.decode(png(ihdr(3, 2, interlace: 2), [idat])) }
        // Valid 3x2 gray: two rows of filter byte + 3 samples.
        #expect(try PNG.decode(png(ihdr(3, 2), [idat])).pixels == [1, 2, 3, 1, 2, 3])
        IOTestSupport.expectInvalidFile(["inflates to 4 bytes, expected 8"]) {
            _ = try PNG.decode(png(ihdr(3, 2), [pngChunk("IDAT", try IOZlib.deflate(row))]))
        }
        IOTestSupport.expectInvalidFile(["more than 8 bytes"]) {
            _ = try PNG.decode(png(ihdr(3, 2), [pngChunk("IDAT", try IOZlib.deflate(row + row + row))]))
        }
        IOTestSupport.expectInvalidFile(["row 1 has filter type 5"]) {
            _ = try PNG.decode(png(ihdr(3, 2), [pngChunk("IDAT", try IOZlib.deflate(row + [5, 1, 2, 3]))]))
        }
        IOTestSupport.expectInvalidFile(["corrupt compressed data"]) {
            _ = try PNG.decode(png(ihdr(3, 2), [pngChunk("IDAT", [1, 2, 3, 4, 5])]))
        }
        IOTestSupport.expectInvalidFile(["no IDAT"]) { _ = try PNG.decode(png(ihdr(3, 2), [])) }
        IOTestSupport.expectInvalidFile(["first chunk is IDAT"]) { _ = try PNG.decode(PNG.signature + idat + pngChunk("IEND", [])) }
        IOTestSupport.expectInvalidFile(["IDAT chunks are not consecutive"]) {
            _ = try PNG.decode(png(ihdr(3, 2), [idat, pngChunk("tEXt", [65, 0, 66]), idat]))
        }
        IOTestSupport.expectInvalidFile(["palette image without a PLTE"]) { _ = try PNG.decode(png(ihdr(3, 2, color: 3), [idat])) }
        IOTestSupport.expectInvalidFile(["palette index 2 is beyond the 2-entry PLTE"]) {
            _ = try PNG.decode(png(ihdr(3, 2, color: 3), [pngChunk("PLTE", [0, 0, 0, 9, 9, 9]), idat]))
        }
        IOTestSupport.expectInvalidFile(["PLTE chunk of 4 bytes"]) {
            _ = try PNG.decode(png(ihdr(3, 2, color: 3), [pngChunk("PLTE", [0, 0, 0, 9]), idat]))
        }
        IOTestSupport.expectInvalidFile(["has length 4294967295"]) {
            _ = try PNG.decode(PNG.signature + ihdr(3, 2) + [0xFF, 0xFF, 0xFF, 0xFF] + Array("IDAT".utf8))
        }
        #expect(throws: CNNError.unsupported("<memory>: unknown critical chunk QQQQ")) {
            _ = try PNG.decode(png(ihdr(3, 2), [pngChunk("QQQQ", []), idat]))
        }
        // An unknown ancillary chunk is skipped.
        #expect(try PNG.decode(png(ihdr(3, 2), [pngChunk("qqQQ", [1]), idat])).pixels == [1, 2, 3, 1, 2, 3])
        #expect(throws: CNNError.self) { _ = try PNG.encode(Image(width: 0, height: 3, channels: 1, pixels: [])) }
    }

    /// Random truncations and byte flips of valid PNGs either decode or throw; they never crash.
    @Test func mutatedPNGsNeverCrash() throws {
        let sources = [
            try PNG.encode(randomImage(9, 6, 3, seed: 5)),
            try PNG.encode(randomImage(4, 4, 2, seed: 6), filter: .fixed(.paeth)),
        ]
        var rng = IOTestRNG(seed: 77)
        for k in 0..<1500 {
            var b = sources[k % 2]
            switch rng.below(3) {
            case 0: b.removeLast(rng.below(b.count) + 1)
            case 1: for _ in 0...rng.below(4) { b[8 + rng.below(b.count - 8)] = rng.byte() }
            default: b[8 + rng.below(b.count - 8)] ^= 1 << UInt8(rng.below(8))
            }
            _ = try? PNG.decode(b)
            _ = try? PNM.decode(b)
        }
    }

    /// Valid chunk structure and CRCs around random headers (including invalid bit depth / color
    /// type pairs), palettes and image data of the exact size with mostly valid filter bytes:
    /// reaches the unfilter and sample-unpacking paths, which must never crash.
    @Test func randomImageDataNeverCrashes() throws {
        var rng = IOTestRNG(seed: 99)
        func be(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
        var decoded = 0
        for _ in 0..<3000 {
            let w = UInt32(1 + rng.below(20)), h = UInt32(1 + rng.below(20))
            let depth = UInt8([1, 2, 4, 8, 16, 3][rng.below(6)]), color = UInt8([0, 2, 3, 4, 6, 1][rng.below(6)])
            let interlace = UInt8(rng.below(2))
            var raw = [UInt8]()
            let spp = [0: 1, 2: 3, 3: 1, 4: 2, 6: 4][Int(color)] ?? 1
            var exact = 0
            let passes = interlace == 1 ? [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)] : [(0, 0, 1, 1)]
            for (x0, y0, dx, dy) in passes {
                let pw = (Int(w) - x0 + dx - 1) / dx, ph = (Int(h) - y0 + dy - 1) / dy
                if pw > 0 && ph > 0 { exact += ph * (1 + (pw * spp * Int(depth) + 7) / 8) }
            }
            let count = rng.below(8) == 0 ? rng.below(exact + 10) : exact
            for _ in 0..<count { raw.append(rng.below(3) == 0 ? UInt8(rng.below(6)) : rng.byte()) }
            if count == exact {
                var o = 0
                for (x0, y0, dx, dy) in passes {
                    let pw = (Int(w) - x0 + dx - 1) / dx, ph = (Int(h) - y0 + dy - 1) / dy
                    guard pw > 0 && ph > 0 else { continue }
                    let rb = 1 + (pw * spp * Int(depth) + 7) / 8
                    for _ in 0..<ph { raw[o] = UInt8(rng.below(50) == 0 ? 7 : rng.below(5)); o += rb }
                }
                if rng.below(3) == 0 { for i in 0..<raw.count where rng.below(2) == 0 { raw[i] = raw[i] & 3 } }
            }
            var b = PNG.signature + pngChunk("IHDR", be(w) + be(h) + [depth, color, 0, 0, interlace])
            if rng.below(2) == 0 { b += pngChunk("PLTE", (0..<(3 * (1 + rng.below(20)))).map { _ in rng.byte() }) }
            if rng.below(4) == 0 { b += pngChunk("tRNS", (0..<rng.below(30)).map { _ in rng.byte() }) }
            b += pngChunk("IDAT", try IOZlib.deflate(raw))
            b += pngChunk("IEND", [])
            if (try? PNG.decode(b)) != nil { decoded += 1 }
        }
        #expect(decoded > 20, "decoded \(decoded)")
    }

    @Test func pnmFormats() throws {
        let p2 = try PNM.decode(Array("P2\n# a comment\n3 2 # inline\n15\n0 15 7\n1 2\n3\n".utf8))
        #expect(p2.channels == 1 && p2.width == 3 && p2.pixels == [0, 255, 119, 17, 34, 51])
        let p3 = try PNM.decode(Array("P3 1 1 255 10 20 30".utf8))
        #expect(p3.channels == 3 && p3.pixels == [10, 20, 30])
        let p5 = try PNM.decode(Array("P5 2 1 65535\n".utf8) + [0xFF, 0xFF, 0x80, 0x00])
        #expect(p5.pixels == [255, 128])
        let p6 = try PNM.decode(Array("P6\n1 2\n255\n".utf8) + [1, 2, 3, 4, 5, 6] + [9, 9])  // trailing bytes ignored
        #expect(p6.pixels == [1, 2, 3, 4, 5, 6])
        for image in [try randomImage(31, 3, 1, seed: 1), try randomImage(4, 5, 3, seed: 2)] {
            #expect(try PNM.decode(PNM.encode(image)) == image)
            let text = try PNM.encode(image, ascii: true)
            #expect(try PNM.decode(text) == image)
            #expect(String(decoding: text, as: UTF8.self).split(separator: "\n").allSatisfy { $0.count <= 70 })
        }
        IOTestSupport.expectInvalidFile(["p.pgm", "sample 1 is 16, above maxval 15"]) {
            _ = try PNM.decode(Array("P2 2 1 15 3 16".utf8), name: "p.pgm")
        }
        IOTestSupport.expectInvalidFile(["p.ppm", "need 6 bytes", "has 5"]) {
            _ = try PNM.decode(Array("P6 1 2 255\n".utf8) + [1, 2, 3, 4, 5], name: "p.ppm")
        }
        IOTestSupport.expectInvalidFile(["p.pgm", "missing sample 1 of 2"]) { _ = try PNM.decode(Array("P2 2 1 255 3".utf8), name: "p.pgm") }
        IOTestSupport.expectInvalidFile(["maxval 0"]) { _ = try PNM.decode(Array("P5 1 1 0\n\0".utf8)) }
        IOTestSupport.expectInvalidFile(["maxval 65536"]) { _ = try PNM.decode(Array("P5 1 1 65536\n\0".utf8)) }
        IOTestSupport.expectInvalidFile(["size 0x1"]) { _ = try PNM.decode(Array("P5 0 1 255\n".utf8)) }
        IOTestSupport.expectInvalidFile(["size 100000x100000 exceeds"]) { _ = try PNM.decode(Array("P5 100000 100000 255\n".utf8)) }
        IOTestSupport.expectInvalidFile(["too large"]) { _ = try PNM.decode(Array("P5 99999999999999999999 1 255\n".utf8)) }
        IOTestSupport.expectInvalidFile(["unknown Netpbm magic P7"]) { _ = try PNM.decode(Array("P7 1 1 255\n\0".utf8)) }
        IOTestSupport.expectInvalidFile(["expected a number for height"]) { _ = try PNM.decode(Array("P5 1 x 255\n\0".utf8)) }
        #expect(throws: CNNError.self) { _ = try PNM.decode(Array("P1 1 1 1".utf8)) }
        #expect(throws: CNNError.self) { _ = try PNM.encode(randomImage(2, 2, 4, seed: 1)) }
    }

    @Test func imageTensorConversions() throws {
        let rgb = try Image(width: 2, height: 1, channels: 3, pixels: [255, 0, 51, 0, 255, 102])
        let t = try rgb.tensor()
        #expect(t.shape == [1, 3, 1, 2])
        #expect(t.scalars == [1, 0, 0, 1, 0.2, 0.4])
        #expect(try Image(tensor: t) == rgb)
        let clamped = try Image(tensor: Tensor(shape: [1, 1, 3], scalars: [-1, .nan, 2]))
        #expect(clamped.pixels == [0, 0, 255] && clamped.channels == 1)
        #expect(throws: CNNError.self) { _ = try Image(tensor: Tensor(shape: [5, 2, 2], scalars: [Float](repeating: 0, count: 20))) }
        #expect(throws: CNNError.self) { _ = try Image(width: 2, height: 2, channels: 1, pixels: [1]) }
        #expect(throws: CNNError.self) { _ = try Image(width: 2, height: 2, channels: 5, pixels: []) }
        // BT.601 luma: pure red 76, pure green 150, blue 29.
        let colors = try Image(width: 3, height: 1, channels: 4, pixels: [255, 0, 0, 9, 0, 255, 0, 9, 0, 0, 255, 9])
        #expect(colors.grayscale().pixels == [76, 150, 29])
        #expect(colors.removingAlpha().pixels == [255, 0, 0, 0, 255, 0, 0, 0, 255])
        #expect(colors.inverted().pixels == [0, 255, 255, 9, 255, 0, 255, 9, 255, 255, 0, 9])
    }

    @Test func resizing() throws {
        // Constant images stay constant at any size.
        let flat = try Image(width: 37, height: 23, fill: [200, 10])
        for (w, h) in [(28, 28), (5, 3), (80, 50), (37, 23), (1, 1)] {
            let r = try flat.resized(width: w, height: h)
            let expected = try Image(width: w, height: h, fill: [200, 10])
            #expect(r == expected)
        }
        // Halving a checkerboard averages each 2x2 block.
        let checker = try Image(width: 4, height: 4, channels: 1,
                                pixels: (0..<16).map { ($0 % 4 + $0 / 4) % 2 == 0 ? 0 : 255 })
        #expect(try checker.resized(width: 2, height: 2).pixels == [128, 128, 128, 128])
        // 3:1 area reduction is exact means of triples.
        let row = try Image(width: 6, height: 1, channels: 1, pixels: [0, 30, 60, 90, 120, 150])
        #expect(try row.resized(width: 2, height: 1).pixels == [30, 120])
        // Enlarging interpolates between pixel centres and clamps at the edges.
        let two = try Image(width: 2, height: 1, channels: 1, pixels: [0, 100])
        #expect(try two.resized(width: 4, height: 1).pixels == [0, 25, 75, 100])
        #expect(try checker.resized(width: 4, height: 4) == checker)
        #expect(throws: CNNError.self) { _ = try row.resized(width: 0, height: 1) }
        // The MNIST path: any image to 28x28 gray.
        let photo = try randomImage(300, 200, 3, seed: 4)
        let x = try photo.grayscale().resized(width: 28, height: 28).tensor()
        #expect(x.shape == [1, 1, 28, 28] && x.min() >= 0 && x.max() <= 1)
    }
}
