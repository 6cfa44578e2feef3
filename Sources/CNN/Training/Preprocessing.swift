/// Per-channel mean and standard deviation that inputs are normalised with, `(x - mean) / std` —
/// the one place the standard data sets' statistics are written down, shared by training,
/// evaluation, prediction and visualisation so that a model always sees inputs scaled as in training.
public struct ChannelNormalization: Sendable, Equatable {
    /// The mean of each channel, of values in `[0, 1]`.
    public let mean: [Float]
    /// The standard deviation of each channel.
    public let standardDeviation: [Float]

    /// Statistics for `mean.count` channels.
    ///
    /// - Throws: ``CNNError/invalidArgument(_:)`` when the counts differ, are zero, or a standard
    ///   deviation is not positive and finite.
    public init(mean: [Float], standardDeviation: [Float]) throws {
        guard !mean.isEmpty, mean.count == standardDeviation.count else {
            throw CNNError.invalidArgument("ChannelNormalization: \(mean.count) means and \(standardDeviation.count) standard deviations; need the same positive count")
        }
        if let bad = standardDeviation.first(where: { !($0 > 0 && $0.isFinite) }) {
            throw CNNError.invalidArgument("ChannelNormalization: standard deviation \(bad) must be positive and finite")
        }
        if let bad = mean.first(where: { !$0.isFinite }) {
            throw CNNError.invalidArgument("ChannelNormalization: mean \(bad) must be finite")
        }
        self.mean = mean
        self.standardDeviation = standardDeviation
    }

    private init(uncheckedMean mean: [Float], standardDeviation: [Float]) {
        self.mean = mean
        self.standardDeviation = standardDeviation
    }

    /// The number of channels.
    public var channels: Int { mean.count }

    /// MNIST's training-set statistics, mean 0.1307 and standard deviation 0.3081 (the values
    /// PyTorch's MNIST example uses).
    public static let mnist = ChannelNormalization(uncheckedMean: [0.1307], standardDeviation: [0.3081])

    /// CIFAR-10's training-set statistics per RGB channel.
    public static let cifar10 = ChannelNormalization(uncheckedMean: [0.4914, 0.4822, 0.4465],
                                                     standardDeviation: [0.2470, 0.2435, 0.2616])

    /// ImageNet's statistics per RGB channel, as torchvision's pretrained models expect.
    public static let imageNet = ChannelNormalization(uncheckedMean: [0.485, 0.456, 0.406],
                                                      standardDeviation: [0.229, 0.224, 0.225])

    /// The statistics of a data set by name (`mnist`, `cifar10`, `imagenet`, any case), or `nil`.
    public static func dataset(named name: String) -> ChannelNormalization? {
        switch name.lowercased() {
        case "mnist": return .mnist
        case "cifar10", "cifar-10": return .cifar10
        case "imagenet": return .imageNet
        default: return nil
        }
    }

    /// The form ``DataLoader`` takes.
    public var pair: (mean: [Float], standardDeviation: [Float]) { (mean, standardDeviation) }

    /// `(x - mean[c]) / std[c]` for every channel `c` of a `[N, C, H, W]` tensor.
    ///
    /// - Throws: ``CNNError/shapeMismatch(_:)`` when the tensor is not 4-D with ``channels`` channels.
    public func apply(to x: Tensor) throws -> Tensor {
        guard x.rank == 4, x.shape[1] == channels else {
            throw CNNError.shapeMismatch("ChannelNormalization: expected [N, \(channels), H, W], got \(x.shape)")
        }
        var out = x
        let c = channels, plane = x.shape[2] * x.shape[3]
        out.withUnsafeMutableBufferPointer { p in
            for i in 0..<(p.count / max(plane, 1)) where plane > 0 {
                let ch = i % c
                let m = mean[ch], inv = 1 / standardDeviation[ch]
                for j in (i * plane)..<((i + 1) * plane) { p[j] = (p[j] - m) * inv }
            }
        }
        return out
    }
}

/// Whether ``Image/networkInput(channels:width:height:normalization:inversion:)`` makes a negative.
public enum ImageInversion: String, Sendable, CaseIterable {
    /// Invert one-channel inputs whose border is bright: MNIST digits are white on black, so a
    /// dark digit on light paper is turned into a light digit on black. Colour inputs are never
    /// inverted.
    case automatic
    /// Always invert.
    case always
    /// Never invert.
    case never
}

extension Image {
    /// The mean of the pixels on the image's outer one-pixel frame, in the gray scale (0...255);
    /// 0 for an empty image.
    public var borderMean: Double {
        let gray = grayscale()
        guard gray.width > 0, gray.height > 0 else { return 0 }
        var sum = 0, count = 0
        for y in 0..<gray.height {
            for x in 0..<gray.width where y == 0 || y == gray.height - 1 || x == 0 || x == gray.width - 1 {
                sum += Int(gray.pixels[y * gray.width + x])
                count += 1
            }
        }
        return Double(sum) / Double(count)
    }

    /// Converts a picture into the `[1, channels, height, width]` input a network was trained on:
    /// to gray (luma) or RGB, alpha dropped, resized (area averaging when shrinking, bilinear when
    /// enlarging), scaled to `[0, 1]`, optionally inverted, then normalised.
    ///
    /// With ``ImageInversion/automatic``, a one-channel image whose border is bright (mean above
    /// 127.5 of 255) is inverted, because MNIST's digits are white on black: a photo of a dark
    /// digit on white paper then looks like the training data.
    ///
    /// - Returns: the tensor and whether the image was inverted.
    /// - Throws: ``CNNError/invalidArgument(_:)`` for a channel count other than 1 or 3, a
    ///   non-positive size or an empty image; ``CNNError/shapeMismatch(_:)`` when `normalization`
    ///   has another channel count.
    public func networkInput(channels: Int, width targetWidth: Int, height targetHeight: Int,
                             normalization: ChannelNormalization?, inversion: ImageInversion = .automatic) throws -> (tensor: Tensor, inverted: Bool) {
        guard channels == 1 || channels == 3 else {
            throw CNNError.invalidArgument("networkInput: \(channels) input channels; only gray (1) and RGB (3) images are supported")
        }
        guard width > 0, height > 0 else {
            throw CNNError.invalidArgument("networkInput: the image is empty (\(width)x\(height))")
        }
        var image: Image
        if channels == 1 {
            image = grayscale()
        } else {
            image = removingAlpha()
            if image.channels == 1 {
                image = try Image(width: width, height: height, channels: 3, pixels: image.pixels.flatMap { [$0, $0, $0] })
            }
        }
        let invert: Bool
        switch inversion {
        case .always: invert = true
        case .never: invert = false
        case .automatic: invert = channels == 1 && image.borderMean > 127.5
        }
        if invert { image = image.inverted() }
        if image.width != targetWidth || image.height != targetHeight {
            image = try image.resized(width: targetWidth, height: targetHeight)
        }
        var x = try image.tensor()
        if let normalization { x = try normalization.apply(to: x) }
        return (x, invert)
    }
}
