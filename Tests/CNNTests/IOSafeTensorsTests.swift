import Testing
@testable import CNN

/// A SafeTensors file from a header string and data bytes.
private func safetensors(_ header: String, _ data: [UInt8] = []) -> [UInt8] {
    let h = Array(header.utf8)
    var out: [UInt8] = []
    withUnsafeBytes(of: UInt64(h.count).littleEndian) { out += $0 }
    return out + h + data
}

private func floatBytes(_ values: [Float]) -> [UInt8] {
    values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
}

@Suite struct IOSafeTensorsTests {
    /// Bytes `safetensors.torch.save({"test": torch.zeros((2, 2))})` produces (from the Python
    /// package's own test suite): 64-byte header padded with 4 spaces.
    static let referenceF32: [UInt8] = {
        var b: [UInt8] = [0x40, 0, 0, 0, 0, 0, 0, 0]
        b += Array(#"{"test":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}    "#.utf8)
        return b + [UInt8](repeating: 0, count: 16)
    }()

    @Test func encoderMatchesPythonBytes() throws {
        let bytes = try SafeTensors.encode([("test", try Tensor(zeros: [2, 2]))])
        #expect(bytes == Self.referenceF32)
    }

    @Test func readsPythonI32AndBF16() throws {
        // save({"test": torch.int32 zeros with [1,1] = 1}) and a bfloat16 [[2.25, 1], [1, 1]].
        var i32: [UInt8] = [0x40, 0, 0, 0, 0, 0, 0, 0]
        i32 += Array(#"{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}    "#.utf8)
        i32 += [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]
        let f = try SafeTensors(bytes: i32)
        #expect(f.names == ["test"])
        #expect(try f.info(named: "test") == .init(name: "test", dtype: .int32, shape: [2, 2], byteRange: 0..<16))
        #expect(try f.integers(named: "test") == [0, 0, 0, 1])
        #expect(try f.tensor(named: "test").scalars == [0, 0, 0, 1])

        var bf: [UInt8] = [0x40, 0, 0, 0, 0, 0, 0, 0]
        bf += Array(#"{"test":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]}}    "#.utf8)
        bf += [0x10, 0x40, 0x80, 0x3F, 0x80, 0x3F, 0x80, 0x3F]
        let g = try SafeTensors(bytes: bf)
        #expect(try g.tensor(named: "test") == Tensor(shape: [2, 2], scalars: [2.25, 1, 1, 1]))
        #expect(try SafeTensors(bytes: Self.referenceF32).tensor(named: "test") == Tensor(zeros: [2, 2]))
    }

    @Test func fileRoundTripWithMetadataIntegersAndEdgeShapes() throws {
        let dir = try IOTestSupport.temporaryDirectory("st")
        defer { IOTestSupport.remove(dir) }
        let path = dir + "/model.safetensors"
        let w = try Tensor(shape: [2, 3], scalars: [1, -2, 3.5, .pi, -0, 1e-30])
        let values: [(String, SafeTensors.Value)] = [
            ("fc.weight", .float32(w)),
            ("bn.num_batches_tracked", .int64(shape: [], values: [937])),
            ("a.bias", .float32(Tensor([0.25]))),
            ("empty", .float32(try Tensor(zeros: [2, 0]))),
            ("scalar", .float32(Tensor(scalar: 7))),
            ("big", .int64(shape: [2], values: [Int64.min, Int64.max])),
        ]
        try SafeTensors.write(values, metadata: ["format": "pt", "note": "quote \" and \\ and \n"], to: path)
        let bytes = try IOTestSupport.read(path)
        let headerLength = Int(bytes[0]) | Int(bytes[1]) << 8
        #expect(headerLength % 8 == 0)
        #expect(bytes[8 + headerLength - 1] == UInt8(ascii: "}") || bytes[8 + headerLength - 1] == 0x20)

        let f = try SafeTensors(contentsOf: path)
        // I64 tensors first, then F32, each sorted by name (the Python library's order).
        #expect(f.names == ["big", "bn.num_batches_tracked", "a.bias", "empty", "fc.weight", "scalar"])
        #expect(f.metadata == ["format": "pt", "note": "quote \" and \\ and \n"])
        #expect(try f.tensor(named: "fc.weight") == w)
        #expect(try f.tensor(named: "empty").shape == [2, 0])
        #expect(try f.tensor(named: "scalar").shape == [])
        #expect(try f.tensor(named: "scalar").item() == 7)
        #expect(try f.integers(named: "bn.num_batches_tracked") == [937])
        #expect(try f.tensor(named: "bn.num_batches_tracked").item() == 937)
        #expect(try f.integers(named: "big") == [Int64.min, Int64.max])
        #expect(try f.info(named: "fc.weight").dtype == .float32)
        #expect(try f.tensors().count == 6)
        // The atomic write leaves no temporary file behind.
        #expect(try IOTestSupport.list(dir) == ["model.safetensors"])
    }

    @Test func convertsEveryFloatDType() throws {
        // F16: 1, -2, 65504, smallest subnormal 2^-24, +inf.
        let f16: [UInt8] = [0x00, 0x3C, 0x00, 0xC0, 0xFF, 0x7B, 0x01, 0x00, 0x00, 0x7C]
        let f64: [UInt8] = withUnsafeBytes(of: (1.5 as Double).bitPattern.littleEndian) { Array($0) }
        let header = #"{"h":{"dtype":"F16","shape":[5],"data_offsets":[0,10]},"#
            + #""d":{"dtype":"F64","shape":[1],"data_offsets":[10,18]},"#
            + #""u":{"dtype":"U8","shape":[2],"data_offsets":[18,20]},"#
            + #""e4":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[20,22]},"#
            + #""e5":{"dtype":"F8_E5M2","shape":[1],"data_offsets":[22,23]},"#
            + #""l":{"dtype":"I64","shape":[1],"data_offsets":[23,31]},"#
            + #""b":{"dtype":"BOOL","shape":[2],"data_offsets":[31,33]}}"#
        let data = f16 + f64 + [200, 7] + [0xB0, 0x7F] + [0xB8] + [0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF] + [1, 0]
        let f = try SafeTensors(bytes: safetensors(header, data), name: "dtypes")
        #expect(try f.tensor(named: "h").scalars == [1, -2, 65504, 0x1p-24, .infinity])
        #expect(try f.tensor(named: "d").scalars == [1.5])
        #expect(try f.integers(named: "u") == [200, 7])
        let e4 = try f.tensor(named: "e4").scalars
        #expect(e4[0] == -0.5 && e4[1].isNaN)
        #expect(try f.tensor(named: "e5").scalars == [-0.5])
        #expect(try f.integers(named: "l") == [-2])
        #expect(try f.tensor(named: "l").scalars == [-2])
        #expect(try f.integers(named: "b") == [1, 0])
        #expect(f.names == ["h", "d", "u", "e4", "e5", "l", "b"])
    }

    @Test func lookupErrors() throws {
        let f = try SafeTensors(bytes: Self.referenceF32, name: "ref.safetensors")
        #expect(!f.contains("nope"))
        #expect(throws: CNNError.self) { try f.tensor(named: "nope") }
        do { _ = try f.integers(named: "test"); Issue.record("F32 read as integers") } catch let e as CNNError {
            guard case .invalidArgument(let m) = e else { Issue.record("\(e)"); return }
            #expect(m.contains("ref.safetensors") && m.contains("F32"))
        }
    }

    @Test func rejectsMalformedHeaders() {
        func bad(_ bytes: [UInt8], _ parts: String..., sourceLocation: SourceLocation = #_sourceLocation) {
            IOTestSupport.expectInvalidFile(["bad.st"] + parts, sourceLocation: sourceLocation) {
                _ = try SafeTensors(bytes: bytes, name: "bad.st")
            }
        }
        let t = #""t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#
        bad([1, 2, 3], "3 bytes", "too short")
        bad([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7B], "header length 18446744073709551615", "limit")
        bad([100, 0, 0, 0, 0, 0, 0, 0] + Array("{}".utf8), "header length 100", "2 bytes")
        bad(safetensors(""), "empty")
        bad(safetensors(" {}"), "does not start with '{'")
        bad(safetensors("{\"t\":"), "not valid JSON", "end of JSON")
        bad(safetensors("{\"t\":1} x"), "not valid JSON", "after the JSON value")
        bad(safetensors("{" + t + "," + t + "}", floatBytes([1, 2])), "duplicate key \"t\"")
        bad(safetensors("{\"t\":[1]}"), "tensor \"t\" is an array")
        bad(safetensors(#"{"t":{"dtype":"F99","shape":[2],"data_offsets":[0,8]}}"#, floatBytes([1, 2])), "unknown dtype \"F99\"")
        bad(safetensors(#"{"t":{"dtype":7,"shape":[2],"data_offsets":[0,8]}}"#, floatBytes([1, 2])), "\"dtype\" is a number")
        bad(safetensors(#"{"t":{"shape":[2],"data_offsets":[0,8]}}"#, floatBytes([1, 2])), "has no \"dtype\"")
        bad(safetensors(#"{"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, floatBytes([1, 2])), "shape", "non-negative")
        bad(safetensors(#"{"t":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}"#, floatBytes([1, 2])), "non-negative integers")
        bad(safetensors(#"{"t":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#, floatBytes([1, 2])),
            "overflow")
        bad(safetensors(#"{"t":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, floatBytes([1, 2])), "[8, 0]", "end before")
        bad(safetensors(#"{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}}"#, floatBytes([1, 2])), "2 entries")
        bad(safetensors(#"{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}}"#, floatBytes([1, 2])),
            "[0, 16]", "data buffer of 8 bytes")
        bad(safetensors(#"{"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, floatBytes([1, 2])),
            "shape [3] of F32 needs 12 bytes", "hold 8")
        bad(safetensors(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                        floatBytes([1, 2])), "\"a\" [0, 8]", "\"b\" [4, 8]", "overlap")
        bad(safetensors(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, floatBytes([1, 2])),
            "hole", "[0, 4)", "\"a\"")
        bad(safetensors(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, floatBytes([1, 2])),
            "cover 4 bytes of the 8-byte data buffer", "4 trailing")
        bad(safetensors(#"{"__metadata__":{"k":1}}"#), "__metadata__", "\"k\"", "a number")
        bad(safetensors(#"{"__metadata__":[]}"#), "__metadata__ is an array")
        bad(safetensors(String(repeating: "{\"a\":", count: 100) + "1" + String(repeating: "}", count: 100)),
            "nested deeper")
        bad(safetensors("{\"X\":1}").map { $0 == UInt8(ascii: "X") ? 0xFF : $0 }, "invalid UTF-8")
        bad(safetensors(#"{"a\ud800":1}"#), "surrogate")
    }

    @Test func acceptsHeaderVariants() throws {
        // Pretty-printed JSON with unknown extra fields, escaped names, an empty file, null metadata.
        let header = "{\n  \"__metadata__\": null,\n  \"w\\u00e9\": {\"data_offsets\": [0, 4], \"shape\": [1], \"dtype\": \"F32\", \"x\": {}}\n}   "
        let f = try SafeTensors(bytes: safetensors(header, floatBytes([3])))
        #expect(f.names == ["wé"])
        #expect(try f.tensor(named: "wé").scalars == [3])
        #expect(try SafeTensors(bytes: safetensors("{}")).names.isEmpty)
        // Zero-size tensors may sit at the same offset.
        let z = try SafeTensors(bytes: safetensors(#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"I64","shape":[0,3],"data_offsets":[0,0]}}"#))
        #expect(z.names == ["a", "b"])
    }

    @Test func writerRejectsBadInput() throws {
        let t = Tensor([1])
        #expect(throws: CNNError.self) { _ = try SafeTensors.encode([("a", t), ("a", t)]) }
        #expect(throws: CNNError.self) { _ = try SafeTensors.encode([("__metadata__", t)]) }
        #expect(throws: CNNError.self) {
            _ = try SafeTensors.encode([("a", SafeTensors.Value.int64(shape: [3], values: [1, 2]))])
        }
        #expect(throws: CNNError.self) { try SafeTensors.write([("a", t)], to: "/nonexistent-dir-cnn/x.safetensors") }
        #expect(throws: CNNError.self) { _ = try SafeTensors(contentsOf: "/nonexistent-dir-cnn/x.safetensors") }
        #expect(throws: CNNError.self) { _ = try SafeTensors(contentsOf: "/tmp") }
    }

    /// Random truncations and byte flips of a valid file either load or throw; they never crash.
    @Test func mutatedFilesNeverCrash() throws {
        let valid = try SafeTensors.encode([
            ("w", .float32(try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6]))),
            ("n", .int64(shape: [], values: [5])),
        ], metadata: ["format": "pt"])
        var rng = IOTestRNG(seed: 42)
        var loaded = 0
        for _ in 0..<3000 {
            var b = valid
            switch rng.below(3) {
            case 0: b.removeLast(rng.below(b.count) + 1)
            case 1: for _ in 0...rng.below(4) { b[rng.below(b.count)] = rng.byte() }
            default: b[rng.below(b.count)] ^= 1 << UInt8(rng.below(8))
            }
            if let f = try? SafeTensors(bytes: b) {
                loaded += 1
                for name in f.names { _ = try? f.tensor(named: name); _ = try? f.integers(named: name) }
            }
        }
        #expect(loaded < 3000)
    }
}
