import Testing
@testable import CNN

/// IDX bytes: big-endian magic and dimensions, then `payload`.
private func idx(_ magic: UInt32, _ dims: [UInt32], _ payload: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    for v in [magic] + dims { out += [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
    return out + payload
}

@Suite struct IOIDXTests {
    /// The repository's real MNIST files, loaded once (with MD5 verification) and checked against
    /// the facts published in Data/mnist/README.md.
    @Test func realMNIST() throws {
        let dir = try MNIST.defaultDirectory()
        let mnist = try MNIST(directory: dir, verifyChecksums: true)
        #expect(mnist.train.images.shape == [60000, 1, 28, 28])
        #expect(mnist.test.images.shape == [10000, 1, 28, 28])
        #expect(mnist.train.labels.first == 5)
        #expect(mnist.test.labels.first == 7)
        func histogram(_ labels: [Int32]) -> [Int] {
            var h = [Int](repeating: 0, count: 10)
            for l in labels { h[Int(l)] += 1 }
            return h
        }
        #expect(histogram(mnist.train.labels) == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
        #expect(histogram(mnist.test.labels) == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
        #expect(mnist.test.images.min() == 0)
        #expect(mnist.test.images.max() == 1)
        // The classic mean pixel intensity of the training set is 0.1307.
        #expect(abs(mnist.train.images.mean() - 0.1307) < 0.0005)
    }

    @Test func md5KnownVectors() {
        #expect(MD5.hex([]) == "d41d8cd98f00b204e9800998ecf8427e")
        #expect(MD5.hex(Array("abc".utf8)) == "900150983cd24fb0d6963f7d28e17f72")
        #expect(MD5.hex(Array("The quick brown fox jumps over the lazy dog".utf8)) == "9e107d9d372bb6826bd81d3542a419d6")
        // Padding edge cases around the 56-byte boundary and a multi-block input.
        #expect(MD5.hex([UInt8](repeating: 0x61, count: 55)) == "ef1772b6dff9a122358552954ad0df65")
        #expect(MD5.hex([UInt8](repeating: 0x61, count: 56)) == "3b0c8ac703f828b04c6c197006d17218")
        #expect(MD5.hex([UInt8](repeating: 0x61, count: 64)) == "014842d480b571495a4a0363793f7367")
        #expect(MD5.hex(Array((0..<1280).map { UInt8($0 & 0xFF) })) == "82829f1f3f2bb0f18b25f278e5bba8bd")
    }

    @Test func rawAndGzipParseAlike() throws {
        let pixels: [UInt8] = (0..<(3 * 2 * 4)).map { UInt8($0 * 10) }
        let raw = idx(0x803, [3, 2, 4], pixels)
        let gz = try IOZlib.deflate(raw, gzip: true)
        #expect(gz[0] == 0x1F && gz[1] == 0x8B)
        let a = try IDX.images(from: raw, name: "raw")
        let b = try IDX.images(from: gz, name: "gz")
        #expect(a == b)
        #expect(a.count == 3 && a.rows == 2 && a.columns == 4 && a.pixels == pixels)
        let t = try a.tensor()
        #expect(t.shape == [3, 1, 2, 4])
        #expect(t.scalars == pixels.map { Float($0) / 255 })
        #expect(try IDX.labels(from: idx(0x801, [4], [0, 9, 3, 255]), name: "l") == [0, 9, 3, 255])
        #expect(try IDX.labels(from: idx(0x801, [0], []), name: "l") == [])
    }

    @Test func rejectsMalformedIDX() throws {
        let name = "train-images-idx3-ubyte.gz"
        IOTestSupport.expectInvalidFile([name, "magic number 0x00000802, expected 0x00000803"]) {
            _ = try IDX.images(from: idx(0x802, [1, 1, 1], [0]), name: name)
        }
        IOTestSupport.expectInvalidFile(["l.idx", "magic number 0x00000803, expected 0x00000801"]) {
            _ = try IDX.labels(from: idx(0x803, [1, 1, 1], [0]), name: "l.idx")
        }
        IOTestSupport.expectInvalidFile([name, "dimensions [2, 2, 2] need 8 bytes", "has 7"]) {
            _ = try IDX.images(from: idx(0x803, [2, 2, 2], [UInt8](repeating: 1, count: 7)), name: name)
        }
        IOTestSupport.expectInvalidFile([name, "need 8 bytes", "has 9"]) {
            _ = try IDX.images(from: idx(0x803, [2, 2, 2], [UInt8](repeating: 1, count: 9)), name: name)
        }
        IOTestSupport.expectInvalidFile([name, "truncated", "dimension 2"]) {
            _ = try IDX.images(from: Array(idx(0x803, [2, 2, 2], []).prefix(13)), name: name)
        }
        IOTestSupport.expectInvalidFile([name, "truncated", "magic"]) { _ = try IDX.images(from: [0, 0], name: name) }
        IOTestSupport.expectInvalidFile([name, "need 4294967295 bytes"]) {
            _ = try IDX.labels(from: idx(0x801, [0xFFFF_FFFF], [1]), name: name)
        }
        IOTestSupport.expectInvalidFile([name, "dimensions [4294967295, 4294967295, 4294967295] overflow"]) {
            _ = try IDX.images(from: idx(0x803, [0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF], [1]), name: name)
        }
    }

    @Test func rejectsBadCompression() throws {
        var gz = try IOZlib.deflate(idx(0x801, [100], [UInt8](repeating: 3, count: 100)), gzip: true)
        IOTestSupport.expectInvalidFile(["x.gz", "corrupt compressed data"]) {
            _ = try IDX.labels(from: Array(gz.prefix(gz.count - 6)), name: "x.gz")
        }
        gz[gz.count - 5] ^= 0xFF  // the CRC-32 in the gzip trailer
        IOTestSupport.expectInvalidFile(["x.gz", "corrupt"]) { _ = try IDX.labels(from: gz, name: "x.gz") }
        // A small file that inflates past the limit (a "zip bomb") is refused.
        let bomb = try IOZlib.deflate(idx(0x801, [1_000_000], [UInt8](repeating: 0, count: 1_000_000)), gzip: true)
        IOTestSupport.expectInvalidFile(["bomb.gz", "more than 65536 bytes"]) {
            _ = try IDX.labels(from: bomb, name: "bomb.gz", maxBytes: 65536)
        }
    }

    @Test func mnistDirectoryChecks() throws {
        let dir = try IOTestSupport.temporaryDirectory("mnist")
        defer { IOTestSupport.remove(dir) }
        let images = idx(0x803, [2, 2, 2], [0, 255, 0, 255, 1, 2, 3, 4])
        try IOTestSupport.write(try IOZlib.deflate(images, gzip: true), to: dir + "/t10k-images-idx3-ubyte.gz")
        try IOTestSupport.write(idx(0x801, [2], [7, 3]), to: dir + "/t10k-labels-idx1-ubyte")
        let split = try MNIST.load(.test, directory: dir)
        #expect(split.labels == [7, 3] && split.images.shape == [2, 1, 2, 2])
        #expect(try split.images.scalar(at: [0, 0, 0, 1]) == 1)
        // Checksums of the standard set do not match this tiny one.
        IOTestSupport.expectInvalidFile(["t10k-images-idx3-ubyte.gz", "MD5", "2646ac647ad5339dbf082846283269ea"]) {
            _ = try MNIST.load(.test, directory: dir, verifyChecksums: true)
        }
        try IOTestSupport.write(idx(0x801, [3], [7, 3, 1]), to: dir + "/t10k-labels-idx1-ubyte")
        IOTestSupport.expectInvalidFile(["2 images", "3 labels"]) { _ = try MNIST.load(.test, directory: dir) }
        try IOTestSupport.write(idx(0x801, [2], [7, 10]), to: dir + "/t10k-labels-idx1-ubyte")
        IOTestSupport.expectInvalidFile(["label 10 at index 1"]) { _ = try MNIST.load(.test, directory: dir) }
        #expect(throws: CNNError.self) { _ = try MNIST.load(.train, directory: dir) }
        #expect(throws: CNNError.self) { _ = try IDX.readImages(contentsOf: dir + "/missing") }
    }
}
