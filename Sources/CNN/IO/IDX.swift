/// Readers for the IDX format that MNIST is distributed in, raw or gzip-compressed.
///
/// An IDX file is big-endian: a magic number `0x00 0x00 <type> <rank>` (type 0x08 = unsigned
/// bytes), one 32-bit size per dimension, then the elements in row-major order. Images are
/// `0x00000803` (count, rows, columns), labels `0x00000801` (count). Gzip input (first bytes
/// `1f 8b`) is detected and inflated, its CRC checked by zlib. The length is checked exactly: a
/// file with missing or extra bytes is refused.
public enum IDX {
    /// A stack of 8-bit grayscale images read from an IDX file.
    public struct Images: Sendable, Equatable {
        /// The number of images.
        public let count: Int
        /// Rows (height) of each image.
        public let rows: Int
        /// Columns (width) of each image.
        public let columns: Int
        /// The pixels, `count * rows * columns` bytes, image after image, row-major (0 = background).
        public let pixels: [UInt8]

        /// The images as a `(count, 1, rows, columns)` tensor scaled to `[0, 1]` (pixel / 255).
        public func tensor() throws -> Tensor {
            let out = try Tensor(uninitializedShape: [count, 1, rows, columns])
            let dst = out.storage.pointer
            let scale: [Float] = (0..<256).map { Float($0) / 255 }
            scale.withUnsafeBufferPointer { table in
                pixels.withUnsafeBufferPointer { src in
                    for i in 0..<src.count { dst[i] = table[Int(src[i])] }
                }
            }
            return out
        }
    }

    /// The magic number of an image file (unsigned bytes, rank 3).
    public static let imagesMagic: UInt32 = 0x0000_0803
    /// The magic number of a label file (unsigned bytes, rank 1).
    public static let labelsMagic: UInt32 = 0x0000_0801
    /// The default limit on a file's (uncompressed) size: 1 GiB, 20 times MNIST's training images.
    public static let defaultMaxBytes = 1 << 30

    /// Reads an image file (`*-images-idx3-ubyte`, optionally `.gz`).
    ///
    /// - Throws: ``CNNError/io(_:)`` when the file cannot be read; ``CNNError/invalidFile(_:)``
    ///   naming the path and the values when the magic number, sizes or length are wrong.
    public static func readImages(contentsOf path: String, maxBytes: Int = defaultMaxBytes) throws -> Images {
        try images(from: contents(path, maxBytes: maxBytes), name: path)
    }

    /// Reads a label file (`*-labels-idx1-ubyte`, optionally `.gz`).
    ///
    /// - Throws: ``CNNError/io(_:)`` when the file cannot be read; ``CNNError/invalidFile(_:)``
    ///   naming the path and the values when the magic number, count or length are wrong.
    public static func readLabels(contentsOf path: String, maxBytes: Int = defaultMaxBytes) throws -> [Int32] {
        try labels(from: contents(path, maxBytes: maxBytes), name: path)
    }

    /// Parses image-file bytes (raw or gzip) held in memory; `name` is used in error messages.
    public static func images(from bytes: [UInt8], name: String, maxBytes: Int = defaultMaxBytes) throws -> Images {
        let raw = try decompressIfNeeded(bytes, name: name, maxBytes: maxBytes)
        let (dims, offset) = try header(raw, name: name, magic: imagesMagic, kind: "images", rank: 3)
        return Images(count: dims[0], rows: dims[1], columns: dims[2], pixels: Array(raw[offset...]))
    }

    /// Parses label-file bytes (raw or gzip) held in memory; `name` is used in error messages.
    public static func labels(from bytes: [UInt8], name: String, maxBytes: Int = defaultMaxBytes) throws -> [Int32] {
        let raw = try decompressIfNeeded(bytes, name: name, maxBytes: maxBytes)
        let (_, offset) = try header(raw, name: name, magic: labelsMagic, kind: "labels", rank: 1)
        return raw[offset...].map { Int32($0) }
    }

    static func contents(_ path: String, maxBytes: Int) throws -> [UInt8] {
        try IOFile.readAll(path, maxBytes: maxBytes)
    }

    /// The bytes, inflated first if they start with the gzip magic `1f 8b`.
    static func decompressIfNeeded(_ bytes: [UInt8], name: String, maxBytes: Int) throws -> [UInt8] {
        guard bytes.count >= 2, bytes[0] == 0x1F, bytes[1] == 0x8B else { return bytes }
        return try bytes.withUnsafeBytes { try IOZlib.inflate($0, maxOutput: maxBytes, name: name) }
    }

    /// Validates the header and exact length; returns the dimensions and the data offset.
    static func header(_ raw: [UInt8], name: String, magic expected: UInt32, kind: String, rank: Int) throws -> ([Int], Int) {
        try raw.withUnsafeBytes { buffer in
            var reader = IOByteReader(buffer, name: name)
            let magic = try reader.uint32BE("magic number")
            func hex(_ v: UInt32) -> String {
                let s = String(v, radix: 16)
                return "0x" + String(repeating: "0", count: 8 - s.count) + s
            }
            guard magic == expected else {
                throw CNNError.invalidFile("\(name): magic number \(hex(magic)), expected \(hex(expected)) (IDX \(kind))")
            }
            var dims: [Int] = []
            for d in 0..<rank { dims.append(Int(try reader.uint32BE("dimension \(d) of the IDX header"))) }
            guard let n = IOSize.product(dims) else {
                throw CNNError.invalidFile("\(name): dimensions \(dims) overflow")
            }
            guard reader.remaining == n else {
                throw CNNError.invalidFile("\(name): dimensions \(dims) need \(n) bytes of \(kind) data after the \(reader.offset)-byte header, the file has \(reader.remaining)")
            }
            return (dims, reader.offset)
        }
    }
}

/// The MNIST handwritten digits (LeCun, Cortes, Burges): 60,000 training and 10,000 test images of
/// 28x28 pixels with labels 0-9, read from the four standard IDX files (raw or `.gz`).
///
/// ```swift
/// let mnist = try MNIST(directory: MNIST.defaultDirectory())
/// print(mnist.train.images.shape)   // [60000, 1, 28, 28], values in [0, 1]
/// print(mnist.train.labels[0])      // 5
/// ```
public struct MNIST: Sendable {
    /// The two parts of the data set.
    public enum SplitName: String, Sendable, CaseIterable {
        /// 60,000 training images.
        case train
        /// 10,000 test images.
        case test

        /// The file name stem of the images (`train-images-idx3-ubyte`, `t10k-images-idx3-ubyte`).
        public var imagesFile: String { self == .train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte" }
        /// The file name stem of the labels.
        public var labelsFile: String { self == .train ? "train-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte" }
    }

    /// Images and labels of one split.
    public struct Split: Sendable {
        /// `(count, 1, 28, 28)` in `[0, 1]`.
        public let images: Tensor
        /// One label 0-9 per image.
        public let labels: [Int32]
        /// The number of examples.
        public var count: Int { labels.count }
    }

    /// MD5 of the uncompressed standard files, as published with the data set.
    public static let checksums: [String: String] = [
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    ]

    /// The directory the files were read from.
    public let directory: String
    /// The training split.
    public let train: Split
    /// The test split.
    public let test: Split

    /// Loads both splits from `directory` (or ``defaultDirectory()`` when nil).
    ///
    /// - Parameters:
    ///   - directory: the folder holding the four IDX files (raw or `.gz`).
    ///   - verifyChecksums: also compare the MD5 of each uncompressed file with
    ///     ``checksums`` (off by default: gzip already carries a CRC-32 that catches corrupt
    ///     downloads, and MNIST-format sets such as Fashion-MNIST use the same file names).
    /// - Throws: ``CNNError/io(_:)`` for missing files, ``CNNError/invalidFile(_:)`` naming the file
    ///   for malformed ones, mismatched image/label counts, labels above 9 or a wrong checksum.
    public init(directory: String? = nil, verifyChecksums: Bool = false) throws {
        let dir = try directory ?? MNIST.defaultDirectory()
        self.directory = dir
        train = try MNIST.load(.train, directory: dir, verifyChecksums: verifyChecksums)
        test = try MNIST.load(.test, directory: dir, verifyChecksums: verifyChecksums)
    }

    /// Loads one split (e.g. only the test set for evaluation).
    public static func load(_ split: SplitName, directory: String, verifyChecksums: Bool = false) throws -> Split {
        func read(_ stem: String) throws -> (path: String, bytes: [UInt8]) {
            for candidate in [stem, stem + ".gz"] {
                let path = IOFile.join(directory, candidate)
                if IOFile.isRegularFile(path) {
                    let raw = try IDX.decompressIfNeeded(IOFile.readAll(path, maxBytes: IDX.defaultMaxBytes),
                                                         name: path, maxBytes: IDX.defaultMaxBytes)
                    if verifyChecksums, let expected = checksums[stem] {
                        let actual = MD5.hex(raw)
                        guard actual == expected else {
                            throw CNNError.invalidFile("\(path): MD5 of the uncompressed data is \(actual), expected \(expected)")
                        }
                    }
                    return (path, raw)
                }
            }
            throw CNNError.io("\(IOFile.join(directory, stem)): MNIST file not found (also tried .gz)")
        }
        let (imagesPath, imageBytes) = try read(split.imagesFile)
        let (labelsPath, labelBytes) = try read(split.labelsFile)
        let images = try IDX.images(from: imageBytes, name: imagesPath)
        let labels = try IDX.labels(from: labelBytes, name: labelsPath)
        guard images.count == labels.count else {
            throw CNNError.invalidFile("\(imagesPath): \(images.count) images but \(labelsPath) has \(labels.count) labels")
        }
        if let i = labels.firstIndex(where: { $0 > 9 }) {
            throw CNNError.invalidFile("\(labelsPath): label \(labels[i]) at index \(i) is not a digit 0-9")
        }
        return Split(images: try images.tensor(), labels: labels)
    }

    /// The directory holding the MNIST files, searched in order: `$CNN_DATA_DIR` (the files
    /// themselves or a `mnist` folder in it), `Data/mnist` under the current directory, and the
    /// package's own `Data/mnist` (found from this source file's path, so tests and `swift run`
    /// work from anywhere in a checkout).
    ///
    /// - Throws: ``CNNError/io(_:)`` listing the places searched when none holds the files.
    public static func defaultDirectory() throws -> String {
        var candidates: [String] = []
        if let env = IOFile.environment("CNN_DATA_DIR") {
            candidates += [env, IOFile.join(env, "mnist")]
        }
        candidates.append("Data/mnist")
        // #filePath is .../Sources/CNN/IO/IDX.swift; the package root is three folders up.
        var components = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        if components.count > 4 {
            components.removeLast(4)
            candidates.append(components.joined(separator: "/") + "/Data/mnist")
        }
        for dir in candidates where hasMNIST(dir) { return dir }
        throw CNNError.io("MNIST files not found; searched \(candidates.joined(separator: ", ")) (set CNN_DATA_DIR)")
    }

    private static func hasMNIST(_ dir: String) -> Bool {
        SplitName.allCases.contains { split in
            [split.imagesFile, split.imagesFile + ".gz"].contains { IOFile.isRegularFile(IOFile.join(dir, $0)) }
        }
    }
}
