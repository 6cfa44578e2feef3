/// CIFAR-10 (Krizhevsky, 2009): 50,000 training and 10,000 test colour images of 32x32 pixels in
/// 10 classes, read from the binary version (`cifar-10-batches-bin`: `data_batch_1.bin` ...
/// `data_batch_5.bin`, `test_batch.bin`).
///
/// Each file is a sequence of 3073-byte records: one label byte (0-9), then 3072 pixel bytes —
/// the 1024 red values of the 32x32 image row by row, then green, then blue (planar, so a record
/// is already in CHW order).
///
/// ```swift
/// let cifar = try CIFAR10(directory: "Data/cifar-10-batches-bin")
/// print(cifar.train.images.shape)                 // [50000, 3, 32, 32], values in [0, 1]
/// print(CIFAR10.classNames[Int(cifar.test.labels[0])])
/// ```
public struct CIFAR10: Sendable {
    /// The class names, indexed by label.
    public static let classNames = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    /// Bytes per record: 1 label + 3 x 32 x 32 pixels.
    public static let recordSize = 1 + 3 * 32 * 32
    /// The training files, in order.
    public static let trainFiles = (1...5).map { "data_batch_\($0).bin" }
    /// The test file.
    public static let testFile = "test_batch.bin"

    /// Images and labels of one or more batch files.
    public struct Batch: Sendable {
        /// `(count, 3, 32, 32)` in `[0, 1]` (pixel / 255), channels red, green, blue.
        public let images: Tensor
        /// One label 0-9 per image.
        public let labels: [Int32]
        /// The number of examples.
        public var count: Int { labels.count }
    }

    /// The directory the files were read from.
    public let directory: String
    /// The five training batches, concatenated in file order.
    public let train: Batch
    /// The test batch.
    public let test: Batch

    /// Loads all six files from `directory` (or from its `cifar-10-batches-bin` subfolder).
    ///
    /// - Throws: ``CNNError/io(_:)`` for a missing or unreadable file, ``CNNError/invalidFile(_:)``
    ///   naming the file for a length that is not a whole number of records or a label above 9.
    public init(directory: String) throws {
        let nested = IOFile.join(directory, "cifar-10-batches-bin")
        let dir = !IOFile.isRegularFile(IOFile.join(directory, CIFAR10.testFile))
            && IOFile.isRegularFile(IOFile.join(nested, CIFAR10.testFile)) ? nested : directory
        self.directory = dir
        train = try CIFAR10.readBatches(contentsOf: CIFAR10.trainFiles.map { IOFile.join(dir, $0) })
        test = try CIFAR10.readBatches(contentsOf: [IOFile.join(dir, CIFAR10.testFile)])
    }

    /// Reads one batch file.
    public static func readBatch(contentsOf path: String) throws -> Batch {
        try readBatches(contentsOf: [path])
    }

    /// Reads several batch files into one batch, in order.
    public static func readBatches(contentsOf paths: [String]) throws -> Batch {
        try batch(from: paths.map { (bytes: try IOFile.readAll($0, maxBytes: IDX.defaultMaxBytes), name: $0) })
    }

    /// Decodes batch-file bytes held in memory; `name` is used in error messages.
    public static func batch(from bytes: [UInt8], name: String) throws -> Batch {
        try batch(from: [(bytes, name)])
    }

    private static func batch(from files: [(bytes: [UInt8], name: String)]) throws -> Batch {
        var total = 0
        for (bytes, name) in files {
            guard !bytes.isEmpty, bytes.count % recordSize == 0 else {
                throw CNNError.invalidFile("\(name): file size \(bytes.count) bytes is not a positive multiple of the \(recordSize)-byte record (\(bytes.count / recordSize) records and \(bytes.count % recordSize) bytes)")
            }
            total += bytes.count / recordSize
        }
        let images = try Tensor(uninitializedShape: [total, 3, 32, 32])
        var labels: [Int32] = []
        labels.reserveCapacity(total)
        let scale: [Float] = (0..<256).map { Float($0) / 255 }
        var dst = images.storage.pointer
        for (bytes, name) in files {
            try bytes.withUnsafeBufferPointer { src in
                try scale.withUnsafeBufferPointer { table in
                    for r in 0..<(src.count / recordSize) {
                        let o = r * recordSize
                        let label = src[o]
                        guard label < 10 else {
                            throw CNNError.invalidFile("\(name): record \(r) has label \(label), expected 0-9")
                        }
                        labels.append(Int32(label))
                        for i in 0..<(recordSize - 1) { dst[i] = table[Int(src[o + 1 + i])] }
                        dst += recordSize - 1
                    }
                }
            }
        }
        return Batch(images: images, labels: labels)
    }
}
