import CNNKernels
import Testing
@testable import CNN

// Convolution kernels against the float64 references (cnn_conv2d_forward_reference and the
// backward references), on every ISA variant this machine runs, plus an independent central
// finite-difference check of the backward pass and the status codes of bad requests.

/// SplitMix64: a small seeded generator so every run draws the same shapes and data.
private struct ConvRNG {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    mutating func float() -> Float { Float(next() >> 40) / Float(1 << 24) * 2 - 1 }
    mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.count))
    }
    mutating func floats(_ n: Int) -> [Float] { (0..<n).map { _ in float() } }
}

/// One convolution configuration with its derived sizes.
private struct ConvCase: CustomStringConvertible {
    var name: String
    var shape: cnn_conv_shape

    init(_ name: String, n: Int, c: Int, h: Int, w: Int, k: Int, r: Int, s: Int,
         stride: (Int, Int) = (1, 1), pad: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1),
         groups: Int = 1) {
        self.name = name
        shape = cnn_conv_shape(N: Int64(n), C: Int64(c), H: Int64(h), W: Int64(w), K: Int64(k),
                               R: Int64(r), S: Int64(s), stride_h: Int64(stride.0),
                               stride_w: Int64(stride.1), pad_h: Int64(pad.0), pad_w: Int64(pad.1),
                               dilation_h: Int64(dilation.0), dilation_w: Int64(dilation.1),
                               groups: Int64(groups))
    }

    var outputSize: (p: Int, q: Int) {
        var s = shape
        var p: Int64 = 0, q: Int64 = 0
        let st = cnn_conv_output_size(&s, &p, &q)
        precondition(st == CNN_OK, "invalid test shape \(self)")
        return (Int(p), Int(q))
    }
    var xCount: Int { Int(shape.N * shape.C * shape.H * shape.W) }
    var wCount: Int { Int(shape.K * (shape.C / shape.groups) * shape.R * shape.S) }
    var yCount: Int { let (p, q) = outputSize; return Int(shape.N * shape.K) * p * q }
    /// Terms summed into one output: the reduction length the error bound scales with.
    var reduction: Int { Int(shape.C / shape.groups * shape.R * shape.S) }

    var description: String {
        let s = shape
        return "\(name) N\(s.N) C\(s.C) \(s.H)x\(s.W) K\(s.K) \(s.R)x\(s.S) s\(s.stride_h),\(s.stride_w) p\(s.pad_h),\(s.pad_w) d\(s.dilation_h),\(s.dilation_w) g\(s.groups)"
    }
}

/// Measured error: max |a - b| / max |reference|, the figure the bounds are stated in.
/// Random x, w and dy for a case, both gradients' float64 references, and the fast gradients for a
/// layer whose forward runs a given algorithm (dx written over NaN, dw accumulated from zero).
private struct ConvGradientCheck {
    let cs: ConvCase
    let x: [Float], w: [Float], dy: [Float]
    var dxRef: [Float], dwRef: [Float]

    init(_ cs: ConvCase, rng: inout ConvRNG) {
        self.cs = cs
        x = rng.floats(cs.xCount)
        w = rng.floats(cs.wCount)
        dy = rng.floats(cs.yCount)
        dxRef = [Float](repeating: 0, count: cs.xCount)
        dwRef = [Float](repeating: 0, count: cs.wCount)
        var shape = cs.shape
        #expect(cnn_conv2d_backward_data_reference(&shape, dy, w, &dxRef) == CNN_OK)
        #expect(cnn_conv2d_backward_weight_reference(&shape, x, dy, &dwRef, nil) == CNN_OK)
    }

    func gradients(_ a: cnn_conv_algorithm) -> (dx: [Float], dw: [Float]) {
        var shape = cs.shape
        var dx = [Float](repeating: .nan, count: cs.xCount), dw = [Float](repeating: 0, count: cs.wCount)
        #expect(cnn_conv2d_backward_data_for(a, &shape, dy, w, &dx) == CNN_OK)
        #expect(cnn_conv2d_backward_weight_for(a, &shape, x, dy, &dw, nil) == CNN_OK)
        return (dx, dw)
    }
}

private func convRelativeError(_ a: [Float], _ ref: [Float]) -> Double {
    var err = 0.0, scale = 0.0
    for i in ref.indices {
        let d = abs(Double(a[i]) - Double(ref[i]))
        err = d.isNaN ? .infinity : max(err, d)
        scale = max(scale, abs(Double(ref[i])))
    }
    return err / max(scale, 1e-30)
}

private let convForwardAlgorithms: [cnn_conv_algorithm] = [CNN_CONV_DIRECT, CNN_CONV_IM2COL, CNN_CONV_GEMM1X1]

/// Hand-picked cases: edge shapes and real layers (VGG, ResNet, AlexNet) shrunk in spatial size.
private let convNamedCases: [ConvCase] = [
    ConvCase("3x3 pad1 odd", n: 1, c: 5, h: 7, w: 9, k: 7, r: 3, s: 3, pad: (1, 1)),
    ConvCase("3x3 pad0 even", n: 2, c: 17, h: 8, w: 6, k: 19, r: 3, s: 3),
    ConvCase("5x5 pad2", n: 1, c: 3, h: 11, w: 10, k: 6, r: 5, s: 5, pad: (2, 2)),
    ConvCase("3x3 stride2", n: 3, c: 8, h: 13, w: 12, k: 9, r: 3, s: 3, stride: (2, 2), pad: (1, 1)),
    ConvCase("asym stride pad", n: 1, c: 4, h: 9, w: 14, k: 5, r: 2, s: 4, stride: (1, 3), pad: (2, 1)),
    ConvCase("dilated", n: 2, c: 6, h: 12, w: 11, k: 5, r: 3, s: 3, pad: (2, 2), dilation: (2, 2)),
    ConvCase("dilated asym", n: 1, c: 3, h: 10, w: 13, k: 4, r: 3, s: 2, stride: (2, 1), pad: (1, 0), dilation: (1, 3)),
    ConvCase("groups 2", n: 2, c: 6, h: 8, w: 7, k: 10, r: 3, s: 3, pad: (1, 1), groups: 2),
    ConvCase("groups 4 stride2", n: 1, c: 12, h: 9, w: 9, k: 8, r: 3, s: 3, stride: (2, 2), pad: (1, 1), groups: 4),
    ConvCase("depthwise 3x3", n: 2, c: 16, h: 10, w: 9, k: 16, r: 3, s: 3, pad: (1, 1), groups: 16),
    ConvCase("depthwise stride2", n: 1, c: 7, h: 11, w: 12, k: 7, r: 3, s: 3, stride: (2, 2), pad: (1, 1), groups: 7),
    ConvCase("depthwise x2 multiplier 5x5", n: 1, c: 5, h: 9, w: 8, k: 10, r: 5, s: 5, pad: (2, 2), groups: 5),
    ConvCase("1x1", n: 2, c: 20, h: 5, w: 7, k: 13, r: 1, s: 1),
    ConvCase("1x1 stride2", n: 2, c: 9, h: 9, w: 8, k: 11, r: 1, s: 1, stride: (2, 2)),
    // One image per GEMM: the strided 1x1 gathers the subsampled image densely (odd sizes, and
    // large planes at batch 2).
    ConvCase("1x1 stride2, one image", n: 1, c: 9, h: 9, w: 8, k: 11, r: 1, s: 1, stride: (2, 2)),
    ConvCase("1x1 stride 3x2, large planes, batch 2", n: 2, c: 7, h: 100, w: 70, k: 13, r: 1, s: 1, stride: (3, 2)),
    ConvCase("1x1 groups", n: 1, c: 12, h: 6, w: 6, k: 9, r: 1, s: 1, groups: 3),
    ConvCase("1x1 pad1", n: 1, c: 3, h: 4, w: 5, k: 2, r: 1, s: 1, pad: (1, 1)),
    ConvCase("kernel = image", n: 1, c: 3, h: 5, w: 4, k: 4, r: 5, s: 4),
    ConvCase("pad wider than kernel", n: 1, c: 2, h: 3, w: 3, k: 3, r: 2, s: 2, pad: (3, 3)),
    ConvCase("1x1 image", n: 2, c: 3, h: 1, w: 1, k: 2, r: 3, s: 3, pad: (1, 1)),
    ConvCase("vgg16.conv2_2 at 12x12", n: 1, c: 64, h: 12, w: 12, k: 64, r: 3, s: 3, pad: (1, 1)),
    ConvCase("resnet.l4.3x3 at 3x3", n: 1, c: 128, h: 3, w: 3, k: 96, r: 3, s: 3, pad: (1, 1)),
    ConvCase("resnet.conv1 7x7/2 at 30x30", n: 1, c: 3, h: 30, w: 30, k: 64, r: 7, s: 7, stride: (2, 2), pad: (3, 3)),
    ConvCase("resnet50.1x1 at 8x8", n: 1, c: 256, h: 8, w: 8, k: 64, r: 1, s: 1),
    ConvCase("resnet50.downsample 1x1/2", n: 2, c: 64, h: 8, w: 8, k: 128, r: 1, s: 1, stride: (2, 2)),
    ConvCase("alexnet.conv1 11x11/4 at 35x35", n: 1, c: 3, h: 35, w: 35, k: 96, r: 11, s: 11, stride: (4, 4)),
    ConvCase("cifar 3x3 batch 4", n: 4, c: 16, h: 8, w: 8, k: 16, r: 3, s: 3, pad: (1, 1)),
    // Small planes put several images in one GEMM (3 per column matrix at 30x30 output): chunks of
    // 3, 3 and 1 images, with groups, residual and bias scattered back image by image.
    convImageChunkCase,
    ConvCase("image chunks 1x1 stride 1", n: 5, c: 6, h: 20, w: 30, k: 5, r: 1, s: 1),
    // Taps that read only padding are trimmed away (cnn_conv_trim_taps): a 1x1 plane keeps the
    // centre tap, 2x2 -> 1x1 at stride 2 keeps a 2x2 window, a one-row image one kernel row, a
    // dilated kernel its middle row and column; groups and several images per GEMM included.
    ConvCase("trim 3x3 on 1x1, batch 9, groups 2", n: 9, c: 8, h: 1, w: 1, k: 6, r: 3, s: 3, pad: (1, 1), groups: 2),
    ConvCase("trim 3x3/2 2x2 -> 1x1", n: 3, c: 5, h: 2, w: 2, k: 4, r: 3, s: 3, stride: (2, 2), pad: (1, 1)),
    ConvCase("trim 5x5 rows on 2x3", n: 2, c: 3, h: 2, w: 3, k: 4, r: 5, s: 5, pad: (2, 2)),
    ConvCase("trim dilated 3x3 on 2x2", n: 2, c: 4, h: 2, w: 2, k: 3, r: 3, s: 3, pad: (2, 2), dilation: (2, 2)),
    ConvCase("trim one row", n: 1, c: 6, h: 1, w: 6, k: 5, r: 3, s: 3, pad: (1, 1)),
    ConvCase("trim resnet18.l4 at 1x1, batch 64", n: 64, c: 64, h: 1, w: 1, k: 48, r: 3, s: 3, pad: (1, 1)),
    // Direct's flat tiles over a padded copy (stride 1): 14x14 runs 21-position tiles on AVX-512
    // (209 flat positions: 10 x 21 against 8 x 28); padding wider than the kernel makes the padded
    // row Q floats, not W + pad; dilation with groups of 9 output channels.
    ConvCase("direct flat 21-wide tiles 14x14", n: 2, c: 16, h: 14, w: 14, k: 20, r: 3, s: 3, pad: (1, 1)),
    ConvCase("direct flat pad wider than kernel", n: 2, c: 5, h: 6, w: 7, k: 9, r: 3, s: 2, pad: (3, 2)),
    ConvCase("direct flat dilated groups", n: 1, c: 16, h: 10, w: 9, k: 18, r: 3, s: 3, pad: (2, 2),
             dilation: (2, 2), groups: 2),
    // A padded image over 1 MiB (32 x 102 x 91 floats) runs in bands of output rows: 88 + 12 here.
    ConvCase("direct flat in row bands", n: 1, c: 32, h: 100, w: 90, k: 24, r: 3, s: 3, pad: (1, 1)),
    // Direct on strided, padded kernels of 25 taps or more runs on a zero-padded copy of each image;
    // the third case (index 40) gets the residual, which must follow the image.
    ConvCase("direct padded 7x7/2, batch 2", n: 2, c: 3, h: 20, w: 22, k: 16, r: 7, s: 7, stride: (2, 2), pad: (3, 3)),
    ConvCase("direct padded 5x5/2, groups 2", n: 2, c: 4, h: 13, w: 11, k: 18, r: 5, s: 5, stride: (2, 2),
             pad: (2, 1), groups: 2),
    ConvCase("direct padded 7x7/2, batch 3, residual", n: 3, c: 5, h: 17, w: 15, k: 20, r: 7, s: 7,
             stride: (2, 2), pad: (3, 3)),
    // im2col in per-thread bands (small weights, enough bands): 216 column rows of 72 columns are
    // 62 KiB per output row, so 25-row bands: 25 + 25 + 14 rows per image and group, 12 in all.
    convThreadBandCase,
    // Direct's strided tiles on the padded copy, 28 columns wide on AVX-512, stored through an
    // in-register transpose in vectors of 16: 48 output columns are a whole tile and one of 20
    // (16 + 4), 35 a whole one and one of 7; 20 channels are a full block and a partial one.
    // Index 42 gets bias and ReLU, 43 the residual and ReLU.
    ConvCase("direct padded 7x7/2 tiles 28 + 20", n: 1, c: 3, h: 41, w: 95, k: 20, r: 7, s: 7, stride: (2, 2),
             pad: (3, 3)),
    ConvCase("direct padded 7x7/2 tiles 28 + 7, batch 2", n: 2, c: 2, h: 9, w: 69, k: 17, r: 7, s: 7,
             stride: (2, 2), pad: (3, 3)),
    // Direct on a pointwise (1x1, stride 1, no padding) layer reads the image in place: planes of
    // whole 28-position tiles (4 x 14) and of a partial last tile (5 x 9 = 28 + 17), which reads a
    // copy (in the last image, past the end of x otherwise); 33 channels are two blocks and one.
    // Index 44 gets bias, 45 nothing, 46 bias, residual and ReLU.
    ConvCase("direct pointwise whole tiles", n: 2, c: 20, h: 4, w: 14, k: 33, r: 1, s: 1),
    ConvCase("direct pointwise partial tile, groups 2", n: 3, c: 12, h: 5, w: 9, k: 18, r: 1, s: 1, groups: 2),
    ConvCase("direct pointwise 28 + 5, epilogue", n: 1, c: 16, h: 3, w: 11, k: 16, r: 1, s: 1),
    // im2col de-interleaves each input row once at column stride 3, or 2 with 5 taps or more:
    // dilation, padding of 4 columns (whole de-interleaved elements in the padding), two images;
    // then a row of 8,300 columns, whose de-interleaved parts exceed the stack bound and take
    // the gathering path.
    ConvCase("im2col de-interleaved 5x5/(2,3) dilated", n: 2, c: 3, h: 16, w: 23, k: 7, r: 5, s: 5,
             stride: (2, 3), pad: (3, 4), dilation: (1, 2)),
    ConvCase("im2col 5x5/2 row past the stack bound", n: 1, c: 1, h: 5, w: 8300, k: 2, r: 5, s: 5,
             stride: (2, 2), pad: (2, 2)),
    // A plan of those layers with 1,024 output pixels or more per image (or one image) never
    // writes the column matrix: the GEMM fills its B panels from the de-interleaved rows. Two
    // images and two groups of 5 output channels (one partial row tile), with the residual (index 49).
    convImplicitCase,
    // 9 channels of 7 x 7 taps are 441 column-matrix rows: two K blocks, the second accumulating
    // onto the first (index 50: bias and ReLU, applied with the last block only).
    ConvCase("im2col implicit 7x7/2 in two K blocks", n: 1, c: 9, h: 40, w: 38, k: 12, r: 7, s: 7,
             stride: (2, 2), pad: (3, 3)),
    // On AVX2 a plan of a 3x3/2 layer at batch 1 runs implicitly too, and its 16-column panels
    // span output rows: 28 columns (runs of 16, then 12 + 4), 7 (three rows per panel, 49 = 3 x 16
    // + 1), 5 (runs 5 + 5 + 5 + 1: three segments in the second vector) and 1 (more runs than the
    // vector path takes: the generic fill). The last has 520 output channels over 3 K blocks: its weights outgrow
    // a quarter of the L2 (400 KiB against 128-256 KiB on 512 KiB-1 MiB L2s), so the GEMM fills
    // blocks of B panels (15 panels, in blocks of 10).
    ConvCase("implicit 3x3/2 rows of 28", n: 1, c: 5, h: 56, w: 55, k: 9, r: 3, s: 3, stride: (2, 2), pad: (1, 1)),
    ConvCase("implicit 3x3/2 rows of 7", n: 1, c: 6, h: 14, w: 14, k: 13, r: 3, s: 3, stride: (2, 2), pad: (1, 1)),
    ConvCase("implicit 3x3/2 rows of 5", n: 1, c: 4, h: 12, w: 10, k: 7, r: 3, s: 3, stride: (2, 2), pad: (1, 1)),
    ConvCase("implicit 3x3/2 rows of 1", n: 1, c: 3, h: 9, w: 2, k: 5, r: 3, s: 3, stride: (2, 2), pad: (1, 1)),
    convImplicitBlockedCase,
    // The same blocks of B panels on every ISA (5x5/2 runs implicitly everywhere): 520 output
    // channels over 600 column rows, 2-3 K blocks of 200-300.
    convImplicitBlocked5x5Case,
    // The weight gradient without a column matrix (stride 1 along columns, rows of 24 or more
    // columns): LeNet-5's conv1 at batch 9 (partial sums over 8 + 1 images); groups of 2 input and
    // 5 output channels (an odd count: half a register tile), 18 taps per group (not a multiple of
    // the 5-tap tile), row stride 2, column dilation 2 and 27 output columns (a partial vector).
    ConvCase("dW direct: lenet5.conv1, batch 9", n: 9, c: 1, h: 28, w: 28, k: 6, r: 5, s: 5, pad: (2, 2)),
    ConvCase("dW direct: groups 2, stride (2, 1), dilation (1, 2)", n: 3, c: 4, h: 11, w: 29, k: 10, r: 3, s: 3,
             stride: (2, 1), pad: (1, 1), dilation: (1, 2), groups: 2),
    // Channel vectors (16 output channels per vector): LeNet-5's conv2 at batch 9; groups of 3
    // input and 32 output channels (two vectors) with 27 taps (not a multiple of the 6-tap tile),
    // stride 2, dilation (2, 1).
    ConvCase("dW direct: lenet5.conv2, batch 9", n: 9, c: 6, h: 14, w: 14, k: 16, r: 5, s: 5),
    ConvCase("dW direct: 32-channel groups, stride 2, dilation (2, 1)", n: 3, c: 6, h: 13, w: 12, k: 64, r: 3, s: 3,
             stride: (2, 2), pad: (1, 2), dilation: (2, 1), groups: 2),
    // Batches of more than 32 chunks of 8 images are summed 32 chunks at a time: 265 images make
    // 34 chunks in two rounds, for each kernel.
    ConvCase("dW direct: channel vectors, batch 265", n: 265, c: 2, h: 6, w: 9, k: 16, r: 3, s: 3),
    ConvCase("dW direct: row vectors, batch 265", n: 265, c: 1, h: 4, w: 28, k: 3, r: 3, s: 3),
    // One output pixel whose window is the whole image: forward and gradients are single GEMMs
    // on (N, CHW) and (N, K). A 3x3 layer at 1x1 (ResNet's layer4 at 32x32 input) and a 3x3/2
    // one, both trimmed to the centre tap; a 1x1 layer; a 3x3/2 layer at 2x2 (trimmed to its
    // lower-right 2x2); a 6x6 kernel over a 6x6 map; and three that must not take that path: a
    // 1x1/3 layer whose padding puts its only tap outside the image (zero gradients), a 3x3/3 one
    // at 3x3 whose window misses the last row and column, and two groups.
    ConvCase("dense: 3x3 at 1x1", n: 66, c: 70, h: 1, w: 1, k: 41, r: 3, s: 3, pad: (1, 1)),
    ConvCase("dense: 3x3/2 at 1x1", n: 5, c: 19, h: 1, w: 1, k: 23, r: 3, s: 3, stride: (2, 2), pad: (1, 1)),
    ConvCase("dense: 1x1 at 1x1", n: 7, c: 33, h: 1, w: 1, k: 17, r: 1, s: 1),
    ConvCase("dense: 3x3/2 at 2x2", n: 6, c: 9, h: 2, w: 2, k: 11, r: 3, s: 3, stride: (2, 2), pad: (1, 1)),
    ConvCase("dense: 6x6 over 6x6", n: 3, c: 5, h: 6, w: 6, k: 7, r: 6, s: 6),
    ConvCase("dense: 3x3/3 at 3x3 missing a row", n: 4, c: 3, h: 3, w: 3, k: 5, r: 3, s: 3, stride: (3, 3), pad: (1, 1)),
    ConvCase("dense: 1x1/3 reading padding only", n: 4, c: 6, h: 1, w: 1, k: 5, r: 1, s: 1, stride: (3, 3), pad: (1, 1)),
    ConvCase("dense: two groups at 1x1", n: 9, c: 12, h: 1, w: 1, k: 10, r: 3, s: 3, pad: (1, 1), groups: 2),
    // Stride-1 kernels of 25 taps or more, which auto runs direct (AlexNet's conv2 in small): 40
    // and 33 channels are two 16-channel vectors and part of a third, and the outer two or three
    // columns of each row have taps in the padding.
    ConvCase("direct 5x5 pad 2, 40 channels", n: 1, c: 9, h: 11, w: 29, k: 40, r: 5, s: 5, pad: (2, 2)),
    ConvCase("direct 7x7 pad 3, 33 channels, batch 2", n: 2, c: 5, h: 9, w: 13, k: 33, r: 7, s: 7, pad: (3, 3)),
]

private let convImplicitBlocked5x5Case = ConvCase("implicit 5x5/2, blocks of B panels", n: 1, c: 24, h: 30, w: 30,
                                                  k: 520, r: 5, s: 5, stride: (2, 2), pad: (2, 2))

/// 3x3/2 at batch 1 with 520 output channels and 64 input channels (576 column rows, 3 K blocks
/// of 192 on AVX2): 15 x 15 = 225 output pixels, 15 panels of 16.
private let convImplicitBlockedCase = ConvCase("implicit 3x3/2, blocks of B panels", n: 1, c: 64, h: 30, w: 30, k: 520,
                                               r: 3, s: 3, stride: (2, 2), pad: (1, 1))

/// With 2 threads each takes whole chunks (1 and 2 of them), with 3 one each.
private let convImageChunkCase = ConvCase("image chunks 3+3+1, groups 2", n: 7, c: 4, h: 30, w: 30, k: 6, r: 3, s: 3,
                                          pad: (1, 1), groups: 2)

/// 35 x 33 = 1,155 output pixels per image: one image per GEMM, run implicitly by a plan.
private let convImplicitCase = ConvCase("im2col implicit 5x5/2, batch 2, groups 2", n: 2, c: 4, h: 70, w: 66, k: 10,
                                        r: 5, s: 5, stride: (2, 2), pad: (2, 2), groups: 2)

private let convThreadBandCase = ConvCase("im2col thread bands 25+25+14, groups 2", n: 2, c: 48, h: 64, w: 72,
                                          k: 20, r: 3, s: 3, pad: (1, 1), groups: 2)
/// A column matrix of 27 rows (3x3 over 3 channels, a first layer) takes bands of at most 512 KiB,
/// on 1 thread too: 15 rows of 320 columns, 9 bands (8 x 15 + 10) on 1 thread; on 2 the band count
/// goes up to 10 so each thread gets 5, 13 rows each (9 x 13 + 13); 3 threads would get 3 bands
/// each, too few, and share one band of all 130 rows. 320 columns are a multiple of every
/// variant's panel width, so each column sums in the same order whatever the bands.
private let convShortColumnCase = ConvCase("im2col short columns 3x3 over 3 channels", n: 1, c: 3, h: 130, w: 320,
                                           k: 16, r: 3, s: 3, pad: (1, 1))

/// Random valid shapes: sizes not multiples of 16, odd and even, every option mixed.
private func convRandomCases(count: Int, seed: UInt64) -> [ConvCase] {
    var rng = ConvRNG(state: seed)
    var cases: [ConvCase] = []
    while cases.count < count {
        let groups = [1, 1, 1, 2, 3][rng.int(0...4)]
        let depthwise = rng.int(0...5) == 0
        let c = depthwise ? rng.int(1...9) : groups * rng.int(1...11)
        let k = depthwise ? c * rng.int(1...2) : groups * rng.int(1...13)
        let r = rng.int(1...5), s = rng.int(1...5)
        let candidate = ConvCase("random", n: rng.int(1...3), c: c, h: rng.int(1...14), w: rng.int(1...14),
                                 k: k, r: r, s: s, stride: (rng.int(1...2), rng.int(1...3)),
                                 pad: (rng.int(0...2), rng.int(0...2)),
                                 dilation: (rng.int(0...3) == 0 ? 2 : 1, rng.int(0...3) == 0 ? 2 : 1),
                                 groups: depthwise ? c : groups)
        var shape = candidate.shape
        if cnn_conv_output_size(&shape, nil, nil) == CNN_OK { cases.append(candidate) }
    }
    return cases
}

/// Runs the reference forward.
private func convReference(_ cs: ConvCase, x: [Float], w: [Float], bias: [Float]?, residual: [Float]?,
                           relu: Bool) -> [Float] {
    var shape = cs.shape
    var y = [Float](repeating: 0, count: cs.yCount)
    let st = cnn_conv2d_forward_reference(&shape, x, w, bias, residual, relu ? 1 : 0, &y)
    precondition(st == CNN_OK)
    return y
}

/// Runs one algorithm through a plan (created under the active ISA), NaN-filled output first so
/// an unwritten element shows.
private func convForward(_ algorithm: cnn_conv_algorithm, _ cs: ConvCase, x: [Float], w: [Float],
                         bias: [Float]?, residual: [Float]?, relu: Bool) -> (cnn_status, [Float]) {
    var shape = cs.shape
    var y = [Float](repeating: .nan, count: cs.yCount)
    var status = CNN_OK
    guard let plan = cnn_conv_plan_create(algorithm, &shape, w, &status) else { return (status, y) }
    defer { cnn_conv_plan_destroy(plan) }
    status = cnn_conv_plan_forward(plan, x, bias, residual, relu ? 1 : 0, &y)
    return (status, y)
}

/// Bound for direct, im2col and 1x1 GEMM: 1e-5 relative to the largest output, which for these
/// reductions (at most a few thousand terms of products of [-1, 1) values) is well above
/// sqrt(CRS) * Float.ulpOfOne-sized accumulated rounding.
private let convForwardBound = 1e-5

/// Every test that switches the process-wide ISA lives in this one serialized suite (forward here,
/// backward in the extension below), so two of them never interleave their save/restore.
@Suite(.serialized) struct ConvTests {
    /// Every strategy, every ISA, the named and random cases, planned and one-shot, with the
    /// epilogue combinations cycled through (bias, residual, ReLU each on and off).
    @Test func everyStrategyMatchesReference() throws {
        var rng = ConvRNG(state: 0xC0FFEE)
        let cases = convNamedCases + convRandomCases(count: 60, seed: 7)
        var worst = [String: Double]()
        var checked = 0
        for (index, cs) in cases.enumerated() {
            let x = rng.floats(cs.xCount), w = rng.floats(cs.wCount)
            let bias: [Float]? = index % 2 == 0 ? rng.floats(Int(cs.shape.K)) : nil
            let residual: [Float]? = index % 3 == 1 ? rng.floats(cs.yCount) : nil
            let relu = index % 4 >= 2
            let ref = convReference(cs, x: x, w: w, bias: bias, residual: residual, relu: relu)
            for isa in ComputeRuntime.supportedISAs {
                try ComputeRuntime.withISA(isa) {
                    for algorithm in convForwardAlgorithms {
                        var shape = cs.shape
                        guard cnn_conv_algorithm_applies(algorithm, &shape) != 0 else { continue }
                        let (status, y) = convForward(algorithm, cs, x: x, w: w, bias: bias,
                                                      residual: residual, relu: relu)
                        let name = String(cString: cnn_conv_algorithm_name(algorithm))
                        #expect(status == CNN_OK, "\(name) \(isa) \(cs)")
                        let err = convRelativeError(y, ref)
                        #expect(err <= convForwardBound, "\(name) \(isa) \(cs): error \(err)")
                        // The one-shot call runs on the caller's weights without a plan.
                        var once = [Float](repeating: .nan, count: cs.yCount)
                        #expect(cnn_conv2d_forward(algorithm, &shape, x, w, bias, residual, relu ? 1 : 0, &once) == CNN_OK)
                        let errOnce = convRelativeError(once, ref)
                        #expect(errOnce <= convForwardBound, "\(name) one-shot \(isa) \(cs): error \(errOnce)")
                        worst["\(name)/\(isa)"] = max(worst["\(name)/\(isa)"] ?? 0, err, errOnce)
                        checked += 1
                    }
                }
            }
        }
        print("conv forward: \(checked) (case, strategy, ISA) runs; worst max|err|/max|y| per strategy/ISA:")
        for key in worst.keys.sorted() { print("  \(key): \(worst[key]!)") }
    }

    /// im2col's per-thread work with 2 and 3 threads: bands of output rows (split 6 + 6 and
    /// 4 + 4 + 4), chunks of images (1 + 2 and 1 + 1 + 1 chunks of 3, 3 and 1 images) and the
    /// implicit GEMM's B panels (25 of 48 columns per image and group on AVX-512, split 12 + 13 and
    /// 8 + 8 + 9; the one-shot call builds the column matrix instead), or its rows where there are
    /// more rows than columns (the two blocked cases: 520 output channels against 225 columns,
    /// cut in 2 and 3 row ranges), with the whole epilogue, on every ISA, planned and one-shot:
    /// the same answer as the reference and, bit for bit, as 1 thread (the same GEMMs either
    /// way).
    @Test func im2colThreadWorkMatchesReference() throws {
        for cs in [convThreadBandCase, convShortColumnCase, convImageChunkCase, convImplicitCase,
                   convImplicitBlockedCase, convImplicitBlocked5x5Case] {
            try im2colThreadCheck(cs)
        }
    }

    private func im2colThreadCheck(_ cs: ConvCase) throws {
        var rng = ConvRNG(state: 21)
        let x = rng.floats(cs.xCount), w = rng.floats(cs.wCount), bias = rng.floats(Int(cs.shape.K))
        let residual = rng.floats(cs.yCount)
        let ref = convReference(cs, x: x, w: w, bias: bias, residual: residual, relu: true)
        defer { cnn_set_num_threads(0) }
        for isa in ComputeRuntime.supportedISAs {
            try ComputeRuntime.withISA(isa) {
                var outputs = [[Float]]()
                for threads in [1, 2, 3] {
                    cnn_set_num_threads(Int32(threads))
                    let (status, y) = convForward(CNN_CONV_IM2COL, cs, x: x, w: w, bias: bias, residual: residual,
                                                  relu: true)
                    #expect(status == CNN_OK)
                    let err = convRelativeError(y, ref)
                    #expect(err <= convForwardBound, "\(isa), \(threads) threads: error \(err)")
                    outputs.append(y)
                    var shape = cs.shape
                    var once = [Float](repeating: .nan, count: cs.yCount)
                    #expect(cnn_conv2d_forward(CNN_CONV_IM2COL, &shape, x, w, bias, residual, 1, &once) == CNN_OK)
                    #expect(once == y, "\(cs) \(isa), \(threads) threads: one-shot differs from the plan")
                }
                #expect(outputs[1] == outputs[0] && outputs[2] == outputs[0], "\(isa): thread counts differ")
            }
        }
    }

    /// A plan made under one ISA (its GEMM panels packed for that ISA) stays correct when the
    /// process switches ISA: it falls back to the raw weights rather than failing.
    @Test func planSurvivesISASwitch() throws {
        var rng = ConvRNG(state: 3)
        for cs in [convNamedCases[1], convNamedCases[12], convNamedCases[13], convImplicitCase]
            + convNamedCases.filter({ $0.name.hasPrefix("trim") }) {
            var shape = cs.shape
            let x = rng.floats(cs.xCount), w = rng.floats(cs.wCount)
            let ref = convReference(cs, x: x, w: w, bias: nil, residual: nil, relu: false)
            for algorithm in convForwardAlgorithms where cnn_conv_algorithm_applies(algorithm, &shape) != 0 {
                var status = CNN_OK
                guard let plan = cnn_conv_plan_create(algorithm, &shape, w, &status) else {
                    Issue.record("plan \(cs)")
                    continue
                }
                defer { cnn_conv_plan_destroy(plan) }
                for isa in ComputeRuntime.supportedISAs {
                    try ComputeRuntime.withISA(isa) {
                        var y = [Float](repeating: .nan, count: cs.yCount)
                        #expect(cnn_conv_plan_forward(plan, x, nil, nil, 0, &y) == CNN_OK)
                        #expect(convRelativeError(y, ref) <= convForwardBound, "\(isa) \(cs)")
                    }
                }
            }
        }
    }

    /// The one-shot entry and AUTO agree with the reference (AUTO may pick Winograd, whose
    /// rounding is larger; its own tests bound it tightly, here 1e-3 only guards the dispatch).
    @Test func oneShotAndAutoMatchReference() throws {
        var rng = ConvRNG(state: 99)
        for cs in convNamedCases {
            let x = rng.floats(cs.xCount), w = rng.floats(cs.wCount), bias = rng.floats(Int(cs.shape.K))
            let ref = convReference(cs, x: x, w: w, bias: bias, residual: nil, relu: true)
            var shape = cs.shape
            let resolved = cnn_conv_auto_algorithm(&shape)
            #expect(resolved != CNN_CONV_AUTO)
            #expect(cnn_conv_algorithm_applies(resolved, &shape) != 0)
            var y = [Float](repeating: .nan, count: cs.yCount)
            #expect(cnn_conv2d_forward(CNN_CONV_AUTO, &shape, x, w, bias, nil, 1, &y) == CNN_OK)
            let winograd = [CNN_CONV_WINOGRAD_2X2, CNN_CONV_WINOGRAD_4X4, CNN_CONV_WINOGRAD_6X6].contains(resolved)
            #expect(convRelativeError(y, ref) <= (winograd ? 1e-3 : convForwardBound), "auto \(cs)")
            for algorithm in convForwardAlgorithms where cnn_conv_algorithm_applies(algorithm, &shape) != 0 {
                var y1 = [Float](repeating: .nan, count: cs.yCount)
                #expect(cnn_conv2d_forward(algorithm, &shape, x, w, bias, nil, 1, &y1) == CNN_OK)
                #expect(convRelativeError(y1, ref) <= convForwardBound, "one-shot \(cs)")
            }
        }
    }
}

@Suite struct ConvPlanTests {
    @Test func algorithmNames() {
        let names = (0..<CNN_CONV_ALGORITHM_COUNT).map {
            String(cString: cnn_conv_algorithm_name(cnn_conv_algorithm(rawValue: UInt32($0))))
        }
        #expect(names == ["auto", "direct", "im2col", "gemm1x1", "winograd2x2", "winograd4x4", "winograd6x6"])
    }

    @Test func outputSizeFollowsPyTorch() {
        // floor((H + 2*pad - dilation*(R-1) - 1) / stride) + 1
        var s = ConvCase("", n: 1, c: 3, h: 227, w: 224, k: 96, r: 11, s: 7, stride: (4, 2), pad: (0, 3), dilation: (1, 2)).shape
        var p: Int64 = 0, q: Int64 = 0
        #expect(cnn_conv_output_size(&s, &p, &q) == CNN_OK)
        #expect(p == (227 - 10 - 1) / 4 + 1)
        #expect(q == (224 + 6 - 2 * 6 - 1) / 2 + 1)
    }

    @Test func inapplicableAlgorithmsAreUnsupported() {
        let w = [Float](repeating: 1, count: 64 * 64 * 25)
        let x = [Float](repeating: 1, count: 64 * 16 * 16)
        var y = [Float](repeating: 0, count: 64 * 16 * 16)
        let unsupported: [(cnn_conv_algorithm, ConvCase)] = [
            (CNN_CONV_WINOGRAD_6X6, ConvCase("5x5", n: 1, c: 16, h: 8, w: 8, k: 16, r: 5, s: 5, pad: (2, 2))),
            (CNN_CONV_WINOGRAD_2X2, ConvCase("7x7", n: 1, c: 16, h: 8, w: 8, k: 16, r: 7, s: 7, pad: (3, 3))),
            (CNN_CONV_WINOGRAD_2X2, ConvCase("5x3", n: 1, c: 16, h: 8, w: 8, k: 16, r: 5, s: 3, pad: (2, 1))),
            (CNN_CONV_WINOGRAD_2X2, ConvCase("5x5/2", n: 1, c: 16, h: 8, w: 8, k: 16, r: 5, s: 5, stride: (2, 2), pad: (2, 2))),
            (CNN_CONV_WINOGRAD_2X2, ConvCase("3x3/2", n: 1, c: 16, h: 8, w: 8, k: 16, r: 3, s: 3, stride: (2, 2), pad: (1, 1))),
            (CNN_CONV_WINOGRAD_6X6, ConvCase("dilated", n: 1, c: 16, h: 8, w: 8, k: 16, r: 3, s: 3, pad: (2, 2), dilation: (2, 2))),
            (CNN_CONV_WINOGRAD_4X4, ConvCase("grouped", n: 1, c: 16, h: 8, w: 8, k: 16, r: 3, s: 3, pad: (1, 1), groups: 2)),
            (CNN_CONV_GEMM1X1, ConvCase("3x3", n: 1, c: 16, h: 8, w: 8, k: 16, r: 3, s: 3, pad: (1, 1))),
            (CNN_CONV_GEMM1X1, ConvCase("1x1 pad", n: 1, c: 16, h: 8, w: 8, k: 16, r: 1, s: 1, pad: (1, 0))),
        ]
        for (algorithm, cs) in unsupported {
            var shape = cs.shape
            #expect(cnn_conv_algorithm_applies(algorithm, &shape) == 0, "\(cs)")
            var status = CNN_OK
            #expect(cnn_conv_plan_create(algorithm, &shape, w, &status) == nil)
            #expect(status == CNN_ERR_UNSUPPORTED, "\(cs)")
            #expect(cnn_conv2d_forward(algorithm, &shape, x, w, nil, nil, 0, &y) == CNN_ERR_UNSUPPORTED)
        }
        var ok = ConvCase("1x1/2", n: 1, c: 16, h: 8, w: 8, k: 16, r: 1, s: 1, stride: (2, 2)).shape
        #expect(cnn_conv_algorithm_applies(CNN_CONV_GEMM1X1, &ok) != 0)
        #expect(cnn_conv_algorithm_applies(CNN_CONV_AUTO, &ok) != 0)
    }

    @Test func invalidShapesAreRejected() {
        let base = ConvCase("", n: 1, c: 4, h: 6, w: 6, k: 4, r: 3, s: 3, pad: (1, 1)).shape
        var bad: [cnn_conv_shape] = []
        func variant(_ edit: (inout cnn_conv_shape) -> Void) { var s = base; edit(&s); bad.append(s) }
        variant { $0.C = 0 }
        variant { $0.H = -1 }
        variant { $0.K = 0 }
        variant { $0.R = 0 }
        variant { $0.stride_w = 0 }
        variant { $0.dilation_h = 0 }
        variant { $0.pad_w = -1 }
        variant { $0.groups = 0 }
        variant { $0.groups = 3 }                 // does not divide C = 4
        variant { $0.groups = 2; $0.K = 3 }       // does not divide K
        variant { $0.pad_h = 0; $0.R = 7 }        // kernel larger than the padded input: empty output
        variant { $0.N = -1 }
        variant { $0.H = Int64.max; $0.W = Int64.max } // overflow
        let w = [Float](repeating: 1, count: 1024), x = w
        var y = [Float](repeating: 0, count: 1024)
        for var s in bad {
            #expect(cnn_conv_output_size(&s, nil, nil) == CNN_ERR_INVALID_ARGUMENT, "\(s)")
            #expect(cnn_conv_algorithm_applies(CNN_CONV_DIRECT, &s) == 0)
            var status = CNN_OK
            #expect(cnn_conv_plan_create(CNN_CONV_DIRECT, &s, w, &status) == nil)
            #expect(status == CNN_ERR_INVALID_ARGUMENT)
            #expect(cnn_conv2d_forward(CNN_CONV_IM2COL, &s, x, w, nil, nil, 0, &y) == CNN_ERR_INVALID_ARGUMENT)
            #expect(cnn_conv2d_forward_reference(&s, x, w, nil, nil, 0, &y) == CNN_ERR_INVALID_ARGUMENT)
            #expect(cnn_conv2d_backward_data(&s, x, w, &y) == CNN_ERR_INVALID_ARGUMENT)
            #expect(cnn_conv2d_backward_weight(&s, x, x, &y, nil) == CNN_ERR_INVALID_ARGUMENT)
        }
        var s = base
        #expect(cnn_conv2d_forward(CNN_CONV_DIRECT, &s, nil, w, nil, nil, 0, &y) == CNN_ERR_INVALID_ARGUMENT)
        #expect(cnn_conv2d_forward(CNN_CONV_DIRECT, &s, x, w, nil, nil, 0, nil) == CNN_ERR_INVALID_ARGUMENT)
        var status = CNN_OK
        #expect(cnn_conv_plan_create(CNN_CONV_DIRECT, &s, nil, &status) == nil)
        #expect(status == CNN_ERR_INVALID_ARGUMENT)
        #expect(cnn_conv_plan_create(cnn_conv_algorithm(rawValue: 99), &s, w, &status) == nil)
        #expect(status == CNN_ERR_INVALID_ARGUMENT)
        #expect(cnn_conv_plan_forward(nil, x, nil, nil, 0, &y) == CNN_ERR_INVALID_ARGUMENT)
    }

    @Test func emptyBatchDoesNothing() {
        var s = ConvCase("", n: 0, c: 4, h: 6, w: 6, k: 4, r: 3, s: 3, pad: (1, 1)).shape
        let w = [Float](repeating: 1, count: 4 * 4 * 9)
        for algorithm in [CNN_CONV_AUTO] + convForwardAlgorithms where cnn_conv_algorithm_applies(algorithm, &s) != 0 {
            #expect(cnn_conv2d_forward(algorithm, &s, nil, w, nil, nil, 0, nil) == CNN_OK)
        }
        #expect(cnn_conv2d_backward_data(&s, nil, w, nil) == CNN_OK)
        #expect(cnn_conv2d_backward_weight(&s, nil, nil, nil, nil) == CNN_OK)
    }

    @Test func planReportsAlgorithmAndBoundedWorkspace() {
        // vgg16.conv1_2 at full size: the im2col column matrix would be 576 x 50176 floats (115 MiB);
        // the banded plan must stay within the 8 MiB column bound.
        var vgg = ConvCase("vgg16.conv1_2", n: 1, c: 64, h: 224, w: 224, k: 64, r: 3, s: 3, pad: (1, 1)).shape
        let w = [Float](repeating: 0.5, count: 64 * 64 * 9)
        var status = CNN_OK
        for algorithm in [CNN_CONV_IM2COL, CNN_CONV_DIRECT] {
            let plan = cnn_conv_plan_create(algorithm, &vgg, w, &status)
            #expect(plan != nil && status == CNN_OK)
            #expect(cnn_conv_plan_algorithm(plan) == algorithm)
            #expect(cnn_conv_plan_weight_bytes(plan) >= 64 * 64 * 9 * 4)
            #expect(cnn_conv_plan_workspace_bytes(plan) <= 8 << 20)
            cnn_conv_plan_destroy(plan)
        }
        var oneByOne = ConvCase("1x1", n: 1, c: 256, h: 56, w: 56, k: 64, r: 1, s: 1).shape
        let w1 = [Float](repeating: 0.5, count: 64 * 256)
        let plan = cnn_conv_plan_create(CNN_CONV_AUTO, &oneByOne, w1, &status)
        #expect(cnn_conv_plan_algorithm(plan) == CNN_CONV_GEMM1X1)
        cnn_conv_plan_destroy(plan)
        var depthwise = ConvCase("dw", n: 1, c: 32, h: 56, w: 56, k: 32, r: 3, s: 3, pad: (1, 1), groups: 32).shape
        #expect(cnn_conv_auto_algorithm(&depthwise) == CNN_CONV_DIRECT)
        // Strided kernels of 25 taps or more run direct's 28-wide strided tiles where rows fill
        // them (112 and 55 columns), im2col where they would not (16 columns of a CIFAR-size stem).
        var first = ConvCase("7x7/2", n: 1, c: 3, h: 224, w: 224, k: 64, r: 7, s: 7, stride: (2, 2), pad: (3, 3)).shape
        #expect(cnn_conv_auto_algorithm(&first) == CNN_CONV_DIRECT)
        var alex = ConvCase("11x11/4", n: 1, c: 3, h: 227, w: 227, k: 96, r: 11, s: 11, stride: (4, 4)).shape
        #expect(cnn_conv_auto_algorithm(&alex) == CNN_CONV_DIRECT)
        var small = ConvCase("7x7/2 at 32", n: 8, c: 3, h: 32, w: 32, k: 64, r: 7, s: 7, stride: (2, 2), pad: (3, 3)).shape
        #expect(cnn_conv_auto_algorithm(&small) == CNN_CONV_IM2COL)
        // Stride 1 with 25 taps or more and 16 output channels or more: direct on every ISA, where
        // it was measured faster; 5x5 with 32 input channels or more: F(4x4, 5x5) where its tiles
        // fit (AlexNet's conv2), F(2x2, 5x5) where they would not.
        var fiveByFive = ConvCase("5x5", n: 1, c: 16, h: 28, w: 28, k: 32, r: 5, s: 5, pad: (2, 2)).shape
        #expect(cnn_conv_auto_algorithm(&fiveByFive) == CNN_CONV_DIRECT)
        var alexConv2 = ConvCase("AlexNet conv2", n: 1, c: 64, h: 27, w: 27, k: 192, r: 5, s: 5, pad: (2, 2)).shape
        #expect(cnn_conv_auto_algorithm(&alexConv2) == CNN_CONV_WINOGRAD_4X4)
        var smallPlane = ConvCase("5x5 at 7x7", n: 1, c: 64, h: 7, w: 7, k: 64, r: 5, s: 5, pad: (2, 2)).shape
        #expect(cnn_conv_auto_algorithm(&smallPlane) == CNN_CONV_WINOGRAD_2X2)
        var fewTiles = ConvCase("5x5 at 5x5 pad 1", n: 1, c: 64, h: 5, w: 5, k: 64, r: 5, s: 5, pad: (1, 1)).shape
        #expect(cnn_conv_auto_algorithm(&fewTiles) != CNN_CONV_WINOGRAD_2X2)
        var lenet = ConvCase("LeNet-5 conv2", n: 64, c: 6, h: 14, w: 14, k: 16, r: 5, s: 5).shape
        #expect(cnn_conv_auto_algorithm(&lenet) == CNN_CONV_DIRECT)
        var sevenBySeven = ConvCase("7x7", n: 1, c: 32, h: 28, w: 28, k: 64, r: 7, s: 7, pad: (3, 3)).shape
        #expect(cnn_conv_auto_algorithm(&sevenBySeven) == CNN_CONV_DIRECT)
        // Fewer than 16 output channels (LeNet-5's conv1), or dilated taps: im2col everywhere.
        var lenetFirst = ConvCase("LeNet-5 conv1", n: 64, c: 1, h: 28, w: 28, k: 6, r: 5, s: 5, pad: (2, 2)).shape
        #expect(cnn_conv_auto_algorithm(&lenetFirst) == CNN_CONV_IM2COL)
        var dilated = ConvCase("5x5 d2", n: 1, c: 16, h: 28, w: 28, k: 32, r: 5, s: 5, pad: (4, 4), dilation: (2, 2)).shape
        #expect(cnn_conv_auto_algorithm(&dilated) == CNN_CONV_IM2COL)
    }
}

// MARK: - Backward

/// Bound for the backward passes against the float64 references: their reductions run over
/// N*P*Q (weight) or K*R*S (data) terms, accumulated in float inside the GEMM; 1e-5 of the largest
/// gradient holds with a wide margin for these sizes (a few thousand terms).
private let convBackwardBound = 1e-5
/// Where AUTO runs a layer with Winograd, its gradients go through the transforms too: the bound of
/// `backwardThroughWinogradMatchesReference` (F(4x4)'s error is about 1e-5 of the largest output;
/// an AddressSanitizer build, kernels at -O1, read 1.02e-5 on a 100x90 layer's weight gradient).
private let convWinogradBackwardBound = 1e-4

extension ConvTests {
    @Test func backwardMatchesReferenceOnEveryISA() throws {
        var rng = ConvRNG(state: 0xBAC4)
        let cases = convNamedCases + convRandomCases(count: 40, seed: 11)
        var worst = (data: 0.0, weight: 0.0, bias: 0.0)
        for cs in cases {
            var shape = cs.shape
            let x = rng.floats(cs.xCount), w = rng.floats(cs.wCount), dy = rng.floats(cs.yCount)
            let dw0 = rng.floats(cs.wCount), db0 = rng.floats(Int(cs.shape.K))
            var dxRef = [Float](repeating: 0, count: cs.xCount)
            var dwRef = dw0, dbRef = db0
            #expect(cnn_conv2d_backward_data_reference(&shape, dy, w, &dxRef) == CNN_OK)
            #expect(cnn_conv2d_backward_weight_reference(&shape, x, dy, &dwRef, &dbRef) == CNN_OK)
            let winograd = [CNN_CONV_WINOGRAD_2X2, CNN_CONV_WINOGRAD_4X4, CNN_CONV_WINOGRAD_6X6].contains(cnn_conv_auto_algorithm(&shape))
            let bound = winograd ? convWinogradBackwardBound : convBackwardBound
            for isa in ComputeRuntime.supportedISAs {
                try ComputeRuntime.withISA(isa) {
                    var dx = [Float](repeating: .nan, count: cs.xCount) // written, never read
                    var dw = dw0, db = db0                                // accumulated
                    #expect(cnn_conv2d_backward_data(&shape, dy, w, &dx) == CNN_OK)
                    #expect(cnn_conv2d_backward_weight(&shape, x, dy, &dw, &db) == CNN_OK)
                    let e = (convRelativeError(dx, dxRef), convRelativeError(dw, dwRef), convRelativeError(db, dbRef))
                    #expect(e.0 <= bound, "data \(isa) \(cs): \(e.0)")
                    #expect(e.1 <= bound, "weight \(isa) \(cs): \(e.1)")
                    #expect(e.2 <= convBackwardBound, "bias \(isa) \(cs): \(e.2)")
                    if winograd {
                        // The GEMM gradients of the same layer keep the GEMM bound.
                        var gx = [Float](repeating: .nan, count: cs.xCount), gw = dw0
                        #expect(cnn_conv2d_backward_data_for(CNN_CONV_IM2COL, &shape, dy, w, &gx) == CNN_OK)
                        #expect(cnn_conv2d_backward_weight_for(CNN_CONV_IM2COL, &shape, x, dy, &gw, nil) == CNN_OK)
                        #expect(convRelativeError(gx, dxRef) <= convBackwardBound, "GEMM data \(isa) \(cs)")
                        #expect(convRelativeError(gw, dwRef) <= convBackwardBound, "GEMM weight \(isa) \(cs)")
                    }
                    worst = (max(worst.data, e.0), max(worst.weight, e.1), max(worst.bias, e.2))
                    // db may be NULL: the weight gradient is the same without it.
                    var dw2 = dw0
                    #expect(cnn_conv2d_backward_weight(&shape, x, dy, &dw2, nil) == CNN_OK)
                    #expect(dw2 == dw)
                }
            }
        }
        print("conv backward: \(cases.count) cases x \(ComputeRuntime.supportedISAs.count) ISAs; worst error data \(worst.data), weight \(worst.weight), bias \(worst.bias)")
    }

    /// The direct weight gradient's vectors run past a row's last output column (26 columns: the
    /// fourth vector holds 2); those lanes are masked, so a NaN in input column 26, which taps 1 and
    /// 2 read and tap 0 never does, reaches the gradients of taps 1 and 2 only, as in the reference.
    @Test func directWeightGradientKeepsNaNToTheTapsThatReadIt() throws {
        let cs = ConvCase("1x3 at 3x28", n: 1, c: 1, h: 3, w: 28, k: 2, r: 1, s: 3)
        var shape = cs.shape
        var rng = ConvRNG(state: 0xD1CE)
        var x = rng.floats(cs.xCount)
        x[28 + 26] = .nan // row 1, column 26
        let dy = rng.floats(cs.yCount)
        var ref = [Float](repeating: 0, count: cs.wCount)
        #expect(cnn_conv2d_backward_weight_reference(&shape, x, dy, &ref, nil) == CNN_OK)
        #expect(!ref[0].isNaN && ref[1].isNaN && ref[2].isNaN)
        for isa in ComputeRuntime.supportedISAs {
            try ComputeRuntime.withISA(isa) {
                var dw = [Float](repeating: 0, count: cs.wCount)
                #expect(cnn_conv2d_backward_weight(&shape, x, dy, &dw, nil) == CNN_OK)
                for i in 0..<cs.wCount {
                    #expect(dw[i].isNaN == ref[i].isNaN, "\(isa) tap \(i): \(dw[i]) against \(ref[i])")
                    if !ref[i].isNaN { #expect(abs(dw[i] - ref[i]) <= 1e-5 * max(1, abs(ref[i])), "\(isa) tap \(i)") }
                }
            }
        }
    }

    /// Large stride-1 3x3 layers take their data gradient through the forward Winograd kernels (the
    /// flipped, channel-swapped kernel at padding 2 - pad) and their weight gradient through the
    /// transposed Winograd transforms: padding 0, 1 and 2, every ISA, against the float64
    /// references with Winograd's bound (F(4x4)'s forward error is about 1e-5 of the largest
    /// output; 1e-4 leaves a margin, and a wrong flip, padding or transform gives errors near 1).
    @Test func backwardThroughWinogradMatchesReference() throws {
        var rng = ConvRNG(state: 0x3141)
        let cases = [ConvCase("wino-bwd pad1", n: 2, c: 16, h: 48, w: 48, k: 24, r: 3, s: 3, pad: (1, 1)),
                     ConvCase("wino-bwd pad0", n: 3, c: 20, h: 40, w: 41, k: 16, r: 3, s: 3),
                     ConvCase("wino-bwd pad2", n: 2, c: 17, h: 46, w: 45, k: 18, r: 3, s: 3, pad: (2, 2)),
                     // 5x5 planes: AUTO's F(2x2) (F(4x4) tiles would be mostly outside the plane).
                     ConvCase("wino-bwd F(2x2) 5x5", n: 170, c: 16, h: 5, w: 5, k: 16, r: 3, s: 3, pad: (1, 1)),
                     // More tiles than one group of the weight gradient holds (8 MiB of transformed
                     // tiles: about 1,800 F(4x4) or 1,000 F(6x6) tiles at C = K = 16): the second
                     // group's products add into the first's.
                     ConvCase("wino-bwd two groups", n: 24, c: 16, h: 48, w: 48, k: 16, r: 3, s: 3, pad: (1, 1))]
        for cs in cases {
            var shape = cs.shape
            let (p, q) = cs.outputSize
            #expect(Int(shape.N) * p * q > 4096, "\(cs) must be above the Winograd threshold")
            let x = rng.floats(cs.xCount), w = rng.floats(cs.wCount), dy = rng.floats(cs.yCount)
            let dw0 = rng.floats(cs.wCount)
            var ref = [Float](repeating: 0, count: cs.xCount)
            var dwRef = dw0
            #expect(cnn_conv2d_backward_data_reference(&shape, dy, w, &ref) == CNN_OK)
            #expect(cnn_conv2d_backward_weight_reference(&shape, x, dy, &dwRef, nil) == CNN_OK)
            for isa in ComputeRuntime.supportedISAs {
                try ComputeRuntime.withISA(isa) {
                    var dx = [Float](repeating: .nan, count: cs.xCount)
                    #expect(cnn_conv2d_backward_data(&shape, dy, w, &dx) == CNN_OK)
                    let e = convRelativeError(dx, ref)
                    #expect(e <= 1e-4, "data \(isa) \(cs): \(e)")
                    var dw = dw0 // accumulated
                    #expect(cnn_conv2d_backward_weight(&shape, x, dy, &dw, nil) == CNN_OK)
                    let ew = convRelativeError(dw, dwRef)
                    #expect(ew <= 1e-4, "weight \(isa) \(cs): \(ew)")
                    print("winograd backward \(isa) \(cs): data \(e), weight \(ew)")
                }
            }
        }
    }

    /// The gradients follow the forward's algorithm: on a layer AUTO runs with Winograd, AUTO's
    /// gradients go through the transforms; a layer pinned to direct or im2col takes the GEMM path
    /// (the same bits for both, other bits than Winograd's); an explicit tile takes that tile. All
    /// within their bounds of the float64 references; an unknown algorithm is refused.
    @Test func backwardFollowsTheForwardAlgorithm() throws {
        var rng = ConvRNG(state: 0x2718)
        let cs = ConvCase("3x3, 16x16, batch 2", n: 2, c: 32, h: 16, w: 16, k: 24, r: 3, s: 3, pad: (1, 1))
        var shape = cs.shape
        let autoPick = cnn_conv_auto_algorithm(&shape)
        #expect([CNN_CONV_WINOGRAD_2X2, CNN_CONV_WINOGRAD_4X4, CNN_CONV_WINOGRAD_6X6].contains(autoPick))
        let check = ConvGradientCheck(cs, rng: &rng)
        let (x, w, dy, dxRef, dwRef) = (check.x, check.w, check.dy, check.dxRef, check.dwRef)
        let gradients = check.gradients
        let auto = gradients(CNN_CONV_AUTO), im2col = gradients(CNN_CONV_IM2COL), direct = gradients(CNN_CONV_DIRECT)
        let f2 = gradients(CNN_CONV_WINOGRAD_2X2), f6 = gradients(CNN_CONV_WINOGRAD_6X6)
        #expect(im2col.dx == direct.dx && im2col.dw == direct.dw)
        #expect(auto.dx != im2col.dx && auto.dw != im2col.dw)
        #expect(f2.dx != f6.dx && f2.dw != f6.dw)
        var plain = [Float](repeating: .nan, count: cs.xCount)
        #expect(cnn_conv2d_backward_data(&shape, dy, w, &plain) == CNN_OK)
        #expect(plain == auto.dx)
        for (name, g, bound) in [("im2col", im2col, convBackwardBound), ("auto", auto, 1e-4), ("F(2x2)", f2, 1e-4),
                                 ("F(6x6)", f6, 1e-4)] {
            #expect(convRelativeError(g.dx, dxRef) <= bound, "\(name) data")
            #expect(convRelativeError(g.dw, dwRef) <= bound, "\(name) weight")
        }
        var dx = [Float](repeating: 0, count: cs.xCount), dw = [Float](repeating: 0, count: cs.wCount)
        #expect(cnn_conv2d_backward_data_for(cnn_conv_algorithm(rawValue: 99), &shape, dy, w, &dx) == CNN_ERR_INVALID_ARGUMENT)
        #expect(cnn_conv2d_backward_weight_for(cnn_conv_algorithm(rawValue: 99), &shape, x, dy, &dw, nil) == CNN_ERR_INVALID_ARGUMENT)
    }

    /// 5x5, stride 1: both gradients run F(2x2, 5x5) for winograd2x2 and F(4x4, 5x5) for
    /// winograd4x4; for AUTO, the weight gradient the tile AUTO picks on the forward shape (32 -> 24
    /// channels: a Winograd tile) and the data gradient the one it picks on the flipped shape (24 ->
    /// 32: under its 32 input channels, so the GEMM). Pads 0 to 4 (4 - pad on the flipped side),
    /// every ISA, within the Winograd bound.
    @Test func fiveByFiveGradientsRunWinograd() throws {
        var rng = ConvRNG(state: 0x55)
        for isa in ComputeRuntime.supportedISAs {
            try ComputeRuntime.withISA(isa) {
                for pad in 0...4 {
                    let cs = ConvCase("5x5 pad \(pad)", n: 2, c: 32, h: 11, w: 9, k: 24, r: 5, s: 5, pad: (pad, pad))
                    var shape = cs.shape
                    let pick = cnn_conv_auto_algorithm(&shape)
                    #expect([CNN_CONV_WINOGRAD_2X2, CNN_CONV_WINOGRAD_4X4].contains(pick), "\(cs)")
                    let check = ConvGradientCheck(cs, rng: &rng)
                    let im2col = check.gradients(CNN_CONV_IM2COL), auto = check.gradients(CNN_CONV_AUTO)
                    for tile in [CNN_CONV_WINOGRAD_2X2, CNN_CONV_WINOGRAD_4X4] {
                        let g = check.gradients(tile)
                        let name = "\(String(cString: cnn_conv_algorithm_name(tile))) \(isa) \(cs)"
                        #expect(g.dx != im2col.dx, "\(name): the data gradient did not run Winograd")
                        #expect(g.dw != im2col.dw, "\(name): the weight gradient did not run Winograd")
                        #expect(convRelativeError(g.dx, check.dxRef) <= 1e-4, "\(name) data")
                        #expect(convRelativeError(g.dw, check.dwRef) <= 1e-4, "\(name) weight")
                        if tile == pick { #expect(auto.dw == g.dw, "\(name): AUTO's weight gradient") }
                    }
                    #expect(auto.dx == im2col.dx, "\(isa) \(cs): AUTO's data gradient on 24 -> 32 channels")
                    #expect(convRelativeError(im2col.dw, check.dwRef) <= convBackwardBound, "\(isa) \(cs) weight, GEMM")
                }
            }
        }
        // 64 -> 32 channels: the flipped shape has 32 input channels, and AUTO's data gradient runs
        // the tile AUTO picks for it.
        let cs = ConvCase("5x5 64 -> 32", n: 1, c: 32, h: 12, w: 12, k: 64, r: 5, s: 5, pad: (2, 2))
        var shape = cs.shape
        var flipped = ConvCase("flipped", n: 1, c: 64, h: 12, w: 12, k: 32, r: 5, s: 5, pad: (2, 2)).shape
        let pick = cnn_conv_auto_algorithm(&flipped)
        #expect([CNN_CONV_WINOGRAD_2X2, CNN_CONV_WINOGRAD_4X4].contains(pick))
        let w = rng.floats(cs.wCount), dy = rng.floats(cs.yCount)
        var auto = [Float](repeating: .nan, count: cs.xCount), tile = auto, im2col = auto
        #expect(cnn_conv2d_backward_data_for(CNN_CONV_AUTO, &shape, dy, w, &auto) == CNN_OK)
        #expect(cnn_conv2d_backward_data_for(pick, &shape, dy, w, &tile) == CNN_OK)
        #expect(cnn_conv2d_backward_data_for(CNN_CONV_IM2COL, &shape, dy, w, &im2col) == CNN_OK)
        #expect(auto == tile && auto != im2col)
    }

    /// Central finite differences of L = sum(g * conv(x, w) + g * b) in double, independent of the C
    /// references: dL/dx must equal backward_data(g), dL/dw backward_weight(x, g), dL/db sum(g).
    @Test func backwardMatchesFiniteDifferences() {
        for cs in [ConvCase("fd", n: 2, c: 4, h: 5, w: 6, k: 4, r: 3, s: 2, stride: (2, 1), pad: (1, 1), dilation: (1, 2), groups: 2),
                   ConvCase("fd depthwise", n: 1, c: 3, h: 5, w: 5, k: 3, r: 3, s: 3, stride: (1, 2), pad: (1, 1), groups: 3)] {
            var rng = ConvRNG(state: 5)
            var shape = cs.shape
            let x = rng.floats(cs.xCount), w = rng.floats(cs.wCount), g = rng.floats(cs.yCount)
            let (P, Q) = cs.outputSize
            let s = cs.shape
            let Cg = Int(s.C / s.groups), Kg = Int(s.K / s.groups)
            // The loss in double: plain loops over the definition.
            func loss(_ x: [Double], _ w: [Double], _ b: [Double]) -> Double {
                var total = 0.0
                for n in 0..<Int(s.N) { for k in 0..<Int(s.K) { for p in 0..<P { for q in 0..<Q {
                    var acc = b[k]
                    for c in 0..<Cg { for r in 0..<Int(s.R) { for t in 0..<Int(s.S) {
                        let h = p * Int(s.stride_h) - Int(s.pad_h) + r * Int(s.dilation_h)
                        let ww = q * Int(s.stride_w) - Int(s.pad_w) + t * Int(s.dilation_w)
                        guard h >= 0, h < Int(s.H), ww >= 0, ww < Int(s.W) else { continue }
                        let ci = (k / Kg) * Cg + c
                        acc += x[((n * Int(s.C) + ci) * Int(s.H) + h) * Int(s.W) + ww]
                            * w[((k * Cg + c) * Int(s.R) + r) * Int(s.S) + t]
                    } } }
                    total += Double(g[((n * Int(s.K) + k) * P + p) * Q + q]) * acc
                } } } }
                return total
            }
            let xd = x.map(Double.init), wd = w.map(Double.init), bd = [Double](repeating: 0.1, count: Int(s.K))
            let h = 1e-5
            func numeric(_ v: [Double], _ f: ([Double]) -> Double) -> [Double] {
                (0..<v.count).map { i in
                    var a = v, b = v
                    a[i] += h; b[i] -= h
                    return (f(a) - f(b)) / (2 * h)
                }
            }
            let dxNum = numeric(xd) { loss($0, wd, bd) }
            let dwNum = numeric(wd) { loss(xd, $0, bd) }
            let dbNum = numeric(bd) { loss(xd, wd, $0) }
            var dx = [Float](repeating: .nan, count: cs.xCount)
            var dw = [Float](repeating: 0, count: cs.wCount), db = [Float](repeating: 0, count: Int(s.K))
            #expect(cnn_conv2d_backward_data(&shape, g, w, &dx) == CNN_OK)
            #expect(cnn_conv2d_backward_weight(&shape, x, g, &dw, &db) == CNN_OK)
            // The loss is linear in each variable, so central differences are exact up to the
            // double rounding of L (~1e-16 * |L| / h ~ 1e-10); the analytic side is float
            // (~1e-7 relative). Error relative to the largest gradient, bound 1e-5: far below any
            // indexing mistake.
            func maxDiff(_ a: [Float], _ b: [Double]) -> Double {
                let scale = max(b.map { abs($0) }.max() ?? 0, 1e-30)
                return (zip(a, b).map { abs(Double($0) - $1) }.max() ?? 0) / scale
            }
            let e = (maxDiff(dx, dxNum), maxDiff(dw, dwNum), maxDiff(db, dbNum))
            print("conv finite differences \(cs.name): max |analytic - numeric| / max |numeric| dx \(e.0) dw \(e.1) db \(e.2)")
            #expect(e.0 < 1e-5, "dx \(cs)")
            #expect(e.1 < 1e-5, "dw \(cs)")
            #expect(e.2 < 1e-5, "db \(cs)")
        }
    }
}
