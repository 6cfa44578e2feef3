/// Pictures of what a convolutional network learned and computes: its filters and its activation
/// maps, laid out as a grid of tiles — the figures of a CNN lecture (Zeiler & Fergus, 2013;
/// Krizhevsky et al., 2012, figure 3).
///
/// ```swift
/// let (name, conv) = try #require(model.firstConvolution)
/// try FeatureGrid.filters(conv.weight.value).write(to: "filters.png")       // one tile per filter
/// let maps = try model.output(ofLayer: name, for: input)                      // [1, K, P, Q]
/// try FeatureGrid.activations(maps).write(to: "activations.png")             // bright where it fires
/// ```
///
/// Each tile is scaled up by an integer factor with nearest-neighbour sampling (so a 5x5 filter's
/// pixels stay visible squares) and tiles are separated by lines of ``separatorValue``.
public enum FeatureGrid {
    /// The separator lines' gray level (white).
    public static let separatorValue: UInt8 = 255

    /// The geometry of a grid: `rows x columns` tiles of `tileWidth x tileHeight` samples, each
    /// scaled `scale` times, with `separator` pixels between neighbouring tiles (none around).
    ///
    /// The image is ``width`` = `columns·tileWidth·scale + (columns − 1)·separator` by ``height`` =
    /// `rows·tileHeight·scale + (rows − 1)·separator` pixels.
    public struct Layout: Sendable, Equatable {
        /// The number of tiles; the last row may be partly empty.
        public let tileCount: Int
        /// Tiles per row.
        public let columns: Int
        /// Rows of tiles, `ceil(tileCount / columns)`.
        public let rows: Int
        /// A tile's width in samples, before scaling.
        public let tileWidth: Int
        /// A tile's height in samples, before scaling.
        public let tileHeight: Int
        /// The nearest-neighbour magnification.
        public let scale: Int
        /// Pixels between neighbouring tiles.
        public let separator: Int

        /// A grid for `tileCount` tiles.
        ///
        /// - Parameters:
        ///   - tileCount: the number of tiles.
        ///   - tileWidth: each tile's width before magnification.
        ///   - tileHeight: each tile's height before magnification.
        ///   - scale: nearest-neighbour magnification of every tile.
        ///   - separator: pixels between neighbouring tiles.
        ///   - columns: tiles per row; by default `ceil(√tileCount)`, a near-square grid.
        /// - Throws: ``CNNError/invalidArgument(_:)`` for a non-positive count, size, scale or
        ///   column count, a negative separator, or an image over ``Image/defaultMaxPixels``.
        public init(tileCount: Int, tileWidth: Int, tileHeight: Int, scale: Int, separator: Int = 1, columns: Int? = nil) throws {
            guard tileCount >= 1, tileWidth >= 1, tileHeight >= 1 else {
                throw CNNError.invalidArgument("FeatureGrid: \(tileCount) tiles of \(tileWidth)x\(tileHeight); need at least one non-empty tile")
            }
            guard scale >= 1 else { throw CNNError.invalidArgument("FeatureGrid: scale \(scale) must be at least 1") }
            guard separator >= 0 else { throw CNNError.invalidArgument("FeatureGrid: separator \(separator) must not be negative") }
            var c = columns ?? 1
            if columns == nil { while c * c < tileCount { c += 1 } }
            guard c >= 1 else { throw CNNError.invalidArgument("FeatureGrid: columns \(c) must be at least 1") }
            c = Swift.min(c, tileCount)
            self.tileCount = tileCount
            self.columns = c
            self.rows = (tileCount + c - 1) / c
            self.tileWidth = tileWidth
            self.tileHeight = tileHeight
            self.scale = scale
            self.separator = separator
            // Sizes in floating point, so that absurd arguments cannot overflow before the check.
            let w = Double(c) * Double(tileWidth) * Double(scale) + Double(c - 1) * Double(separator)
            let h = Double(rows) * Double(tileHeight) * Double(scale) + Double(rows - 1) * Double(separator)
            guard w * h <= Double(Image.defaultMaxPixels) else {
                throw CNNError.invalidArgument("FeatureGrid: \(tileCount) tiles of \(tileWidth)x\(tileHeight) at scale \(scale) make a \(Int(w))x\(Int(h)) image, over \(Image.defaultMaxPixels) pixels")
            }
        }

        /// The image width in pixels.
        public var width: Int { columns * tileWidth * scale + (columns - 1) * separator }
        /// The image height in pixels.
        public var height: Int { rows * tileHeight * scale + (rows - 1) * separator }

        /// The top-left pixel of tile `index` (row-major order).
        public func origin(ofTile index: Int) -> (x: Int, y: Int) {
            let row = index / columns, column = index % columns
            return (column * (tileWidth * scale + separator), row * (tileHeight * scale + separator))
        }
    }

    /// How activation maps are mapped to gray levels.
    public enum ActivationScaling: Sendable, Equatable {
        /// One range for all maps, from 0 (black; negative values too) to the largest value over
        /// all maps (white): strong channels stand out and silent ones stay dark.
        case shared
        /// Each map from its own minimum (black) to its maximum (white): shows the pattern of
        /// every channel, however weak.
        case perMap
    }

    /// Maps `values` linearly so that `lower` becomes 0 and `upper` 255, clamping outside and
    /// rounding to the nearest level; NaN becomes 0. When `upper <= lower` (a constant map) every
    /// value becomes `flat`.
    public static func grayLevels<C: Collection>(_ values: C, lower: Float, upper: Float, flat: UInt8 = 128) -> [UInt8] where C.Element == Float {
        guard upper > lower, (upper - lower).isFinite else { return [UInt8](repeating: flat, count: values.count) }
        let scale = 255 / (upper - lower)
        return values.map { v in
            guard !v.isNaN else { return 0 }
            return UInt8(Swift.min(Swift.max(((v - lower) * scale).rounded(), 0), 255))
        }
    }

    /// The smallest and largest finite values, or `nil` when there are none.
    static func finiteRange<C: Collection>(_ values: C) -> (Float, Float)? where C.Element == Float {
        var lo = Float.infinity, hi = -Float.infinity
        for v in values where v.isFinite { lo = Swift.min(lo, v); hi = Swift.max(hi, v) }
        return lo <= hi ? (lo, hi) : nil
    }

    /// A magnification that makes a tile of `size` samples at least about 48 pixels wide, from 1
    /// to 8: 8 for a 5x5 filter or a 1x1 map, 2 for a 28x28 map, 1 from 48 samples on.
    public static func defaultScale(forTileSize size: Int) -> Int {
        Swift.min(8, Swift.max(1, (48 + Swift.max(size, 1) - 1) / Swift.max(size, 1)))
    }

    /// Draws tiles of gray levels (`channels` 1) or interleaved RGB (`channels` 3) into a grid.
    static func render(tiles: [[UInt8]], channels: Int, layout: Layout) throws -> Image {
        let w = layout.width, h = layout.height
        var pixels = [UInt8](repeating: separatorValue, count: w * h * channels)
        let tw = layout.tileWidth, th = layout.tileHeight, s = layout.scale
        for (index, tile) in tiles.enumerated() {
            let (x0, y0) = layout.origin(ofTile: index)
            for y in 0..<(th * s) {
                let row = (y0 + y) * w
                let sy = y / s
                for x in 0..<(tw * s) {
                    let src = (sy * tw + x / s) * channels, dst = (row + x0 + x) * channels
                    for c in 0..<channels { pixels[dst + c] = tile[src + c] }
                }
            }
        }
        // The empty cells after the last tile stay separator-coloured.
        return try Image(width: w, height: h, channels: channels, pixels: pixels)
    }

    /// The filters of a convolution weight `[K, C, R, S]` as a grid, each filter normalised on its
    /// own from its minimum (black) to its maximum (white), so positive and negative weights show
    /// as light and dark.
    ///
    /// - With `C` = 3, one RGB tile per filter (the input's colours), `K` tiles in a near-square grid.
    /// - With `C` = 1, one gray tile per filter, `K` tiles in a near-square grid.
    /// - Otherwise one gray tile per filter and input channel: `K` rows of `C` tiles.
    ///
    /// The image is ``Layout/width`` x ``Layout/height`` of that layout with tiles of `S x R`.
    ///
    /// - Parameters:
    ///   - weight: a convolution's weight, `[K, C, R, S]`.
    ///   - scale: nearest-neighbour magnification of each weight (8: a 5x5 filter is 40x40 pixels).
    ///   - separator: pixels between tiles.
    /// - Throws: ``CNNError/shapeMismatch(_:)`` for a weight that is not 4-D;
    ///   ``CNNError/invalidArgument(_:)`` for an empty weight or a bad scale or separator.
    public static func filters(_ weight: Tensor, scale: Int = 8, separator: Int = 1) throws -> Image {
        guard weight.rank == 4 else {
            throw CNNError.shapeMismatch("FeatureGrid.filters: expected a convolution weight [K, C, R, S], got \(weight.shape)")
        }
        let k = weight.shape[0], c = weight.shape[1], r = weight.shape[2], s = weight.shape[3]
        let values = weight.scalars
        let perFilter = c * r * s
        var tiles: [[UInt8]] = []
        let layout: Layout
        let channels: Int
        if c == 3 {
            layout = try Layout(tileCount: k, tileWidth: s, tileHeight: r, scale: scale, separator: separator)
            channels = 3
            for f in 0..<k {
                let filter = values[(f * perFilter)..<((f + 1) * perFilter)]
                let (lo, hi) = finiteRange(filter) ?? (0, 0)
                let levels = grayLevels(filter, lower: lo, upper: hi)
                // Planar [3, R, S] to interleaved RGB.
                var tile = [UInt8](repeating: 0, count: perFilter)
                for ch in 0..<3 { for i in 0..<(r * s) { tile[i * 3 + ch] = levels[ch * r * s + i] } }
                tiles.append(tile)
            }
        } else {
            layout = try Layout(tileCount: k * c, tileWidth: s, tileHeight: r, scale: scale, separator: separator,
                                columns: c == 1 ? nil : c)
            channels = 1
            for f in 0..<k {
                let filter = values[(f * perFilter)..<((f + 1) * perFilter)]
                let (lo, hi) = finiteRange(filter) ?? (0, 0)
                let levels = grayLevels(filter, lower: lo, upper: hi)
                for ch in 0..<c { tiles.append(Array(levels[(ch * r * s)..<((ch + 1) * r * s)])) }
            }
        }
        return try render(tiles: tiles, channels: channels, layout: layout)
    }

    /// The activation maps of one input as a grid of gray tiles, one per channel, bright where the
    /// channel responds.
    ///
    /// Takes a layer's output for one example: `[1, C, H, W]` or `[C, H, W]` (a convolution's or
    /// pooling layer's maps) or `[1, F]` (a fully connected layer: `F` tiles of one pixel each).
    ///
    /// - Parameters:
    ///   - output: the layer's output for one example.
    ///   - scale: nearest-neighbour magnification; by default ``defaultScale(forTileSize:)`` of the
    ///     larger map side.
    ///   - separator: pixels between tiles.
    ///   - scaling: one range for all maps (default) or one per map.
    /// - Throws: ``CNNError/shapeMismatch(_:)`` for another shape or a batch of more than one;
    ///   ``CNNError/invalidArgument(_:)`` for a bad scale or separator.
    public static func activations(_ output: Tensor, scale: Int? = nil, separator: Int = 1,
                                   scaling: ActivationScaling = .shared) throws -> Image {
        let shape = output.shape
        let c: Int, h: Int, w: Int
        switch shape.count {
        case 4 where shape[0] == 1: (c, h, w) = (shape[1], shape[2], shape[3])
        case 3: (c, h, w) = (shape[0], shape[1], shape[2])
        case 2 where shape[0] == 1: (c, h, w) = (shape[1], 1, 1)
        default:
            throw CNNError.shapeMismatch("FeatureGrid.activations: expected one example's output [1, C, H, W], [C, H, W] or [1, F], got \(shape)")
        }
        let layout = try Layout(tileCount: c, tileWidth: w, tileHeight: h,
                                scale: scale ?? defaultScale(forTileSize: Swift.max(h, w)), separator: separator)
        let values = output.scalars
        let plane = h * w
        var tiles: [[UInt8]] = []
        switch scaling {
        case .shared:
            let hi = finiteRange(values)?.1 ?? 0
            for ch in 0..<c { tiles.append(grayLevels(values[(ch * plane)..<((ch + 1) * plane)], lower: 0, upper: hi, flat: 0)) }
        case .perMap:
            for ch in 0..<c {
                let map = values[(ch * plane)..<((ch + 1) * plane)]
                let (lo, hi) = finiteRange(map) ?? (0, 0)
                tiles.append(grayLevels(map, lower: lo, upper: hi, flat: 0))
            }
        }
        return try render(tiles: tiles, channels: 1, layout: layout)
    }
}
