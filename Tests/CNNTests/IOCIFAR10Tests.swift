import Testing
@testable import CNN

/// `count` CIFAR records: label `i % 10`, pixel bytes a function of record, channel and position.
private func cifarRecords(_ count: Int, start: Int = 0) -> [UInt8] {
    var out: [UInt8] = []
    for r in start..<(start + count) {
        out.append(UInt8(r % 10))
        for c in 0..<3 { for p in 0..<1024 { out.append(UInt8(truncatingIfNeeded: r * 7 + c * 50 + p)) } }
    }
    return out
}

@Suite struct IOCIFAR10Tests {
    @Test func readsBatchesInPlanarOrder() throws {
        let b = try CIFAR10.batch(from: cifarRecords(3), name: "data_batch_1.bin")
        #expect(b.images.shape == [3, 3, 32, 32])
        #expect(b.labels == [0, 1, 2])
        // Record 2, green (channel 1), row 3, column 5: byte 2*7 + 50 + 3*32 + 5.
        #expect(try b.images.scalar(at: [2, 1, 3, 5]) == Float(UInt8(truncatingIfNeeded: 14 + 50 + 101)) / 255)
        #expect(b.images.min() >= 0 && b.images.max() <= 1)
    }

    @Test func loadsDirectoryWithSixFiles() throws {
        let root = try IOTestSupport.temporaryDirectory("cifar")
        defer { IOTestSupport.remove(root) }
        let dir = root + "/cifar-10-batches-bin"
        try IOTestSupport.makeDirectory(dir)
        for (i, name) in CIFAR10.trainFiles.enumerated() {
            try IOTestSupport.write(cifarRecords(2, start: 2 * i), to: dir + "/" + name)
        }
        try IOTestSupport.write(cifarRecords(4, start: 5), to: dir + "/" + CIFAR10.testFile)
        let cifar = try CIFAR10(directory: root)  // finds the nested folder
        #expect(cifar.directory == dir)
        #expect(cifar.train.count == 10 && cifar.train.labels == (0..<10).map { Int32($0) })
        #expect(cifar.test.labels == [5, 6, 7, 8])
        // Concatenation keeps file order: training record 9 is the second record of batch 5.
        let direct = try CIFAR10.batch(from: cifarRecords(1, start: 9), name: "x")
        let row = try cifar.train.images.scalar(at: [9, 2, 31, 31])
        #expect(row == (try direct.images.scalar(at: [0, 2, 31, 31])))
    }

    @Test func rejectsMalformedFiles() throws {
        IOTestSupport.expectInvalidFile(["b.bin", "file size 3074 bytes", "3073-byte record"]) {
            _ = try CIFAR10.batch(from: cifarRecords(1) + [0], name: "b.bin")
        }
        IOTestSupport.expectInvalidFile(["b.bin", "file size 0"]) { _ = try CIFAR10.batch(from: [], name: "b.bin") }
        var bad = cifarRecords(3)
        bad[2 * CIFAR10.recordSize] = 10
        IOTestSupport.expectInvalidFile(["b.bin", "record 2 has label 10"]) { _ = try CIFAR10.batch(from: bad, name: "b.bin") }
        #expect(throws: CNNError.self) { _ = try CIFAR10(directory: "/nonexistent-cnn-cifar") }
    }
}
