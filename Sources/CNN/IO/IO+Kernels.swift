import CNNKernels

/// The one place the file formats talk to the C module: zlib inflate/deflate and CRC-32.
enum IOZlib {
    /// Inflates a gzip or zlib stream (auto-detected) of at most `maxOutput` bytes.
    ///
    /// - Throws: ``CNNError/invalidFile(_:)`` naming `name` when the stream is corrupt, truncated or
    ///   larger than `maxOutput`.
    static func inflate(_ input: UnsafeRawBufferPointer, maxOutput: Int, name: String) throws -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>? = nil
        var outLength = 0
        var message = [CChar](repeating: 0, count: 256)
        let base = input.baseAddress?.assumingMemoryBound(to: UInt8.self)
        let rc = message.withUnsafeMutableBufferPointer { m in
            cnn_inflate(base, input.count, max(maxOutput, 0), &out, &outLength, m.baseAddress, m.count)
        }
        defer { cnn_free(out) }
        switch rc {
        case 0:
            guard let out else { return [] }
            return Array(UnsafeBufferPointer(start: out, count: outLength))
        case -2:
            throw CNNError.invalidFile("\(name): compressed data inflates to more than \(maxOutput) bytes")
        case -3:
            throw CNNError.outOfMemory("\(name): cannot allocate memory to inflate \(input.count) compressed bytes")
        default:
            let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw CNNError.invalidFile("\(name): corrupt compressed data (\(text)) in \(input.count) compressed bytes")
        }
    }

    /// Compresses `input` as a zlib stream (`gzip: false`, as PNG needs) or a gzip file.
    static func deflate(_ input: [UInt8], gzip: Bool = false, level: Int32 = 6) throws -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>? = nil
        var outLength = 0
        let rc = input.withUnsafeBufferPointer { src in
            cnn_deflate(src.baseAddress, src.count, gzip ? 1 : 0, level, &out, &outLength)
        }
        defer { cnn_free(out) }
        guard rc == 0, let out else {
            throw CNNError.outOfMemory("deflate of \(input.count) bytes failed (\(rc))")
        }
        return Array(UnsafeBufferPointer(start: out, count: outLength))
    }

    /// CRC-32 of `bytes`, continuing from `crc` (start with 0).
    static func crc32(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        cnn_crc32(crc, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count)
    }
}
