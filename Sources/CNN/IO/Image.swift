/// An 8-bit image: `width x height` pixels of `channels` interleaved samples each (1 gray,
/// 2 gray + alpha, 3 RGB, 4 RGBA), rows top to bottom.
///
/// Read and written as PNG (``PNG``) or PGM/PPM (``PNM``); converted to and from the `(1, C, H, W)`
/// tensors a network takes. To feed an arbitrary photo to a 28x28 MNIST network:
///
/// ```swift
/// let digit = try Image(contentsOf: "digit.png").grayscale().resized(width: 28, height: 28).inverted()
/// let x = try digit.tensor()   // [1, 1, 28, 28], values in [0, 1]
/// ```
public struct Image: Sendable, Equatable {
    /// Pixels per row.
    public let width: Int
    /// Rows.
    public let height: Int
    /// Samples per pixel: 1 (gray), 2 (gray, alpha), 3 (RGB) or 4 (RGBA).
    public let channels: Int
    /// `width * height * channels` samples, interleaved, row-major, 0 = black / transparent.
    public var pixels: [UInt8]

    /// The largest number of pixels a decoder accepts by default (64 Mi, e.g. 8192 x 8192), so a
    /// hostile header cannot make it allocate gigabytes.
    public static let defaultMaxPixels = 1 << 26

    /// An image from its samples.
    ///
    /// - Throws: ``CNNError/invalidArgument(_:)`` for a channel count outside 1...4 or a negative
    ///   size; ``CNNError/shapeMismatch(_:)`` when `pixels.count` is not `width * height * channels`.
    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) throws {
        guard (1...4).contains(channels) else {
            throw CNNError.invalidArgument("Image: \(channels) channels, expected 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA)")
        }
        guard width >= 0, height >= 0, let n = IOSize.product([width, height, channels]) else {
            throw CNNError.invalidArgument("Image: invalid size \(width)x\(height)x\(channels)")
        }
        guard pixels.count == n else {
            throw CNNError.shapeMismatch("Image: \(width)x\(height)x\(channels) needs \(n) samples, got \(pixels.count)")
        }
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// An image filled with one value per channel (e.g. `[255]` white gray, `[255, 0, 0]` red).
    public init(width: Int, height: Int, fill: [UInt8]) throws {
        guard width >= 0, height >= 0, let n = IOSize.product([width, height]) else {
            throw CNNError.invalidArgument("Image: invalid size \(width)x\(height)")
        }
        let repeated = [[UInt8]](repeating: fill, count: n).flatMap { $0 }
        try self.init(width: width, height: height, channels: fill.count, pixels: repeated)
    }

    /// Reads a PNG, PGM or PPM file, recognised by its first bytes.
    ///
    /// - Throws: ``CNNError/io(_:)`` when the file cannot be read; ``CNNError/invalidFile(_:)``
    ///   naming the path when it is malformed or of another format.
    public init(contentsOf path: String, maxPixels: Int = Image.defaultMaxPixels) throws {
        // The largest plausible file: 16-bit RGBA PPM-like data for maxPixels, plus headers.
        let limit = maxPixels > Int.max / 16 ? Int.max : maxPixels * 16 + (1 << 20)
        let bytes = try IOFile.readAll(path, maxBytes: limit)
        if bytes.starts(with: PNG.signature) {
            self = try PNG.decode(bytes, name: path, maxPixels: maxPixels)
        } else if bytes.count >= 2, bytes[0] == UInt8(ascii: "P"), (UInt8(ascii: "1")...UInt8(ascii: "6")).contains(bytes[1]) {
            self = try PNM.decode(bytes, name: path, maxPixels: maxPixels)
        } else {
            let head = bytes.prefix(8).map { String($0, radix: 16) }.joined(separator: " ")
            throw CNNError.invalidFile("\(path): not a PNG, PGM or PPM file (first bytes: \(head))")
        }
    }

    /// Writes the image as PNG, or as PGM/PPM when `path` ends in `.pgm`, `.ppm` or `.pnm`
    /// (atomically: temporary file, `fsync`, rename).
    public func write(to path: String) throws {
        let lower = path.lowercased()
        let bytes = lower.hasSuffix(".pgm") || lower.hasSuffix(".ppm") || lower.hasSuffix(".pnm")
            ? try PNM.encode(self) : try PNG.encode(self)
        try IOFile.writeAtomically(bytes, to: path)
    }

    // MARK: Tensors

    /// The image as a `(1, channels, height, width)` tensor with values in `[0, 1]` (sample / 255).
    public func tensor() throws -> Tensor {
        let out = try Tensor(uninitializedShape: [1, channels, height, width])
        let dst = out.storage.pointer
        let plane = width * height
        pixels.withUnsafeBufferPointer { src in
            for c in 0..<channels {
                for i in 0..<plane { dst[c * plane + i] = Float(src[i * channels + c]) / 255 }
            }
        }
        return out
    }

    /// An image from a `(channels, height, width)` or `(1, channels, height, width)` tensor of
    /// values in `[0, 1]` (clamped; NaN becomes 0), each scaled by 255 and rounded.
    ///
    /// - Throws: ``CNNError/shapeMismatch(_:)`` for another shape or a channel count outside 1...4.
    public init(tensor: Tensor) throws {
        let s = tensor.shape
        guard s.count == 3 || (s.count == 4 && s[0] == 1), (1...4).contains(s[s.count - 3]) else {
            throw CNNError.shapeMismatch("Image(tensor:): expected (C, H, W) or (1, C, H, W) with C in 1...4, got \(s)")
        }
        let c = s[s.count - 3], h = s[s.count - 2], w = s[s.count - 1]
        var pixels = [UInt8](repeating: 0, count: c * h * w)
        tensor.withUnsafeBufferPointer { src in
            for ch in 0..<c {
                for i in 0..<(h * w) {
                    let v = src[ch * h * w + i]
                    let clamped = v.isNaN ? 0 : Swift.min(Swift.max(v, 0), 1)
                    pixels[i * c + ch] = UInt8((clamped * 255).rounded())
                }
            }
        }
        try self.init(width: w, height: h, channels: c, pixels: pixels)
    }

    // MARK: Conversions

    /// One-channel luma, `(299 R + 587 G + 114 B) / 1000` (ITU-R BT.601, as PIL's "L" mode);
    /// alpha is dropped.
    public func grayscale() -> Image {
        if channels == 1 { return self }
        let n = width * height
        var out = [UInt8](repeating: 0, count: n)
        pixels.withUnsafeBufferPointer { p in
            for i in 0..<n {
                if channels <= 2 {
                    out[i] = p[i * channels]
                } else {
                    let r = Int(p[i * channels]), g = Int(p[i * channels + 1]), b = Int(p[i * channels + 2])
                    out[i] = UInt8((299 * r + 587 * g + 114 * b + 500) / 1000)
                }
            }
        }
        return try! Image(width: width, height: height, channels: 1, pixels: out)  // sizes are consistent
    }

    /// The image without its alpha channel (gray + alpha to gray, RGBA to RGB).
    public func removingAlpha() -> Image {
        guard channels == 2 || channels == 4 else { return self }
        let c = channels - 1
        var out = [UInt8]()
        out.reserveCapacity(width * height * c)
        for i in 0..<(width * height) { out += pixels[(i * channels)..<(i * channels + c)] }
        return try! Image(width: width, height: height, channels: c, pixels: out)  // sizes are consistent
    }

    /// The photographic negative (255 - sample) of the color channels; alpha is kept. MNIST digits
    /// are white on black, so a dark digit on light paper needs this.
    public func inverted() -> Image {
        var copy = self
        let colorChannels = channels == 2 || channels == 4 ? channels - 1 : channels
        for i in 0..<copy.pixels.count where i % channels < colorChannels { copy.pixels[i] = 255 - copy.pixels[i] }
        return copy
    }

    /// The image scaled to `width x height`: each output sample is the area-weighted mean of the
    /// input samples it covers when shrinking (no aliasing), bilinear interpolation between pixel
    /// centres when enlarging. The two axes are treated separately.
    ///
    /// - Throws: ``CNNError/invalidArgument(_:)`` for a non-positive size, or resizing an empty image.
    public func resized(width newWidth: Int, height newHeight: Int) throws -> Image {
        guard newWidth > 0, newHeight > 0, IOSize.product([newWidth, newHeight, channels]) != nil,
              IOSize.product([height, newWidth, channels, MemoryLayout<Float>.size]) != nil else {
            throw CNNError.invalidArgument("Image.resized: invalid size \(newWidth)x\(newHeight)")
        }
        guard width > 0, height > 0 else {
            throw CNNError.invalidArgument("Image.resized: cannot resize an empty \(width)x\(height) image")
        }
        let xs = Image.resampleWeights(from: width, to: newWidth)
        let ys = Image.resampleWeights(from: height, to: newHeight)
        // Horizontal pass into floats (height x newWidth x channels), then vertical.
        var mid = [Float](repeating: 0, count: height * newWidth * channels)
        for y in 0..<height {
            for (x, taps) in xs.enumerated() {
                for c in 0..<channels {
                    var acc: Float = 0
                    for (i, w) in taps { acc += w * Float(pixels[(y * width + i) * channels + c]) }
                    mid[(y * newWidth + x) * channels + c] = acc
                }
            }
        }
        var out = [UInt8](repeating: 0, count: newHeight * newWidth * channels)
        for (y, taps) in ys.enumerated() {
            for x in 0..<newWidth {
                for c in 0..<channels {
                    var acc: Float = 0
                    for (i, w) in taps { acc += w * mid[(i * newWidth + x) * channels + c] }
                    out[(y * newWidth + x) * channels + c] = UInt8(Swift.min(Swift.max(acc.rounded(), 0), 255))
                }
            }
        }
        return try Image(width: newWidth, height: newHeight, channels: channels, pixels: out)
    }

    /// For each output index along one axis, the input indices and weights (summing to 1).
    static func resampleWeights(from n: Int, to m: Int) -> [[(Int, Float)]] {
        let scale = Double(n) / Double(m)
        return (0..<m).map { j -> [(Int, Float)] in
            if m < n {
                // Area: the output pixel covers [j * scale, (j + 1) * scale) of the input.
                let lo = Double(j) * scale, hi = Double(j + 1) * scale
                var taps: [(Int, Float)] = []
                var i = Int(lo.rounded(.down))
                while Double(i) < hi, i < n {
                    let overlap = Swift.min(hi, Double(i + 1)) - Swift.max(lo, Double(i))
                    if overlap > 1e-12 { taps.append((i, Float(overlap / scale))) }
                    i += 1
                }
                return taps
            }
            // Bilinear with pixel centres at i + 0.5 (align_corners = false), clamped at the edges.
            let x = Swift.min(Swift.max((Double(j) + 0.5) * scale - 0.5, 0), Double(n - 1))
            let i0 = Int(x.rounded(.down)), i1 = Swift.min(i0 + 1, n - 1)
            let f = Float(x - Double(i0))
            return f == 0 ? [(i0, Float(1))] : [(i0, 1 - f), (i1, f)]
        }
    }
}
