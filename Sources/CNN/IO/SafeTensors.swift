/// A file in the SafeTensors format (Hugging Face), the format model weights are exchanged in with
/// PyTorch (`safetensors.torch.save_file` / `load_file`).
///
/// Layout: an 8-byte little-endian header length `n`, `n` bytes of JSON header (an object mapping
/// each tensor name to `{"dtype", "shape", "data_offsets": [begin, end]}`, plus an optional
/// `"__metadata__"` object of strings), then the data buffer that the offsets index. Opening a file
/// validates the whole header as strictly as the reference implementation: the header fits in the
/// file and is a JSON object, every dtype is known, shapes are non-negative and their byte size
/// matches the offsets, and the tensors tile the data buffer exactly — no overlaps, no holes, no
/// bytes left over. Tensor data is only converted when asked for.
///
/// ```swift
/// let file = try SafeTensors(contentsOf: "lenet.safetensors")
/// for name in file.names { print(name, try file.info(named: name).shape) }
/// let w = try file.tensor(named: "conv1.weight")
/// try SafeTensors.write([("conv1.weight", w)], metadata: ["format": "pt"], to: "copy.safetensors")
/// ```
public struct SafeTensors: Sendable {
    /// Element types of the SafeTensors format (names as written in the header).
    public enum DType: String, Sendable, CaseIterable {
        /// Booleans, one byte each.
        case bool = "BOOL"
        /// Unsigned 8-bit integers.
        case uint8 = "U8"
        /// Signed 8-bit integers.
        case int8 = "I8"
        /// 8-bit floats with 5 exponent and 2 mantissa bits.
        case float8E5M2 = "F8_E5M2"
        /// 8-bit floats with 4 exponent and 3 mantissa bits (the finite-only "fn" variant).
        case float8E4M3 = "F8_E4M3"
        /// Signed 16-bit integers.
        case int16 = "I16"
        /// Unsigned 16-bit integers.
        case uint16 = "U16"
        /// IEEE half precision.
        case float16 = "F16"
        /// bfloat16 (the upper half of a float32).
        case bfloat16 = "BF16"
        /// Signed 32-bit integers.
        case int32 = "I32"
        /// Unsigned 32-bit integers.
        case uint32 = "U32"
        /// IEEE single precision.
        case float32 = "F32"
        /// IEEE double precision.
        case float64 = "F64"
        /// Signed 64-bit integers (PyTorch's `long`, e.g. BatchNorm's `num_batches_tracked`).
        case int64 = "I64"
        /// Unsigned 64-bit integers.
        case uint64 = "U64"

        /// Bytes per element.
        public var byteSize: Int {
            switch self {
            case .bool, .uint8, .int8, .float8E5M2, .float8E4M3: return 1
            case .int16, .uint16, .float16, .bfloat16: return 2
            case .int32, .uint32, .float32: return 4
            case .float64, .int64, .uint64: return 8
            }
        }

        /// Whether elements are integers (or booleans), readable with ``SafeTensors/integers(named:)``.
        public var isInteger: Bool {
            switch self {
            case .bool, .uint8, .int8, .int16, .uint16, .int32, .uint32, .int64, .uint64: return true
            default: return false
            }
        }
    }

    /// Where one tensor lives in the file and what it holds.
    public struct TensorInfo: Sendable, Equatable {
        /// The tensor's name (a key of the header).
        public let name: String
        /// The element type.
        public let dtype: DType
        /// The shape, outermost dimension first (`[]` for a scalar).
        public let shape: [Int]
        /// The byte range in the data buffer (`data_offsets`; relative to the end of the header).
        public let byteRange: Range<Int>

        /// The number of elements (the product of the shape).
        public var elementCount: Int { shape.reduce(1, *) }  // validated not to overflow on load
    }

    /// A value to write: float tensors are stored as F32, integer arrays as I64.
    public enum Value: Sendable {
        /// A float tensor, written as F32.
        case float32(Tensor)
        /// 64-bit integers of the given shape (row-major), written as I64.
        case int64(shape: [Int], values: [Int64])
    }

    /// The largest header the reference implementation accepts (100 MB); larger ones are refused
    /// before anything is parsed.
    public static let maxHeaderLength = 100_000_000

    /// The path (or the name given for in-memory bytes) used in error messages.
    public let source: String
    /// The `__metadata__` strings (empty when the file has none).
    public let metadata: [String: String]
    /// The tensor names in the order their data appears in the file.
    public let names: [String]
    private let infos: [String: TensorInfo]
    private let bytes: IOBytes
    private let dataStart: Int

    // MARK: Reading

    /// Opens and validates the SafeTensors file at `path` (memory-mapped; tensor data is read on
    /// demand).
    ///
    /// - Throws: ``CNNError/io(_:)`` when the file cannot be opened or read;
    ///   ``CNNError/invalidFile(_:)`` naming the path and the offending values when it is malformed.
    public init(contentsOf path: String) throws {
        try self.init(bytes: IOBytes.contentsOf(path: path, map: true), source: path)
    }

    /// Parses and validates SafeTensors data held in memory (`[UInt8]`, `Data`, a slice).
    ///
    /// - Parameters:
    ///   - bytes: the file's contents.
    ///   - name: what to call the data in error messages.
    /// - Throws: ``CNNError/invalidFile(_:)`` naming `name` and the offending values when malformed.
    public init<Bytes: Collection>(bytes: Bytes, name: String = "<memory>") throws where Bytes.Element == UInt8 {
        try self.init(bytes: IOBytes(copying: bytes), source: name)
    }

    private init(bytes: IOBytes, source: String) throws {
        self.bytes = bytes
        self.source = source
        let parsed = try bytes.withBytes { try SafeTensors.parseHeader($0, source: source) }
        dataStart = parsed.dataStart
        metadata = parsed.metadata
        names = parsed.infos.map(\.name)
        infos = Dictionary(uniqueKeysWithValues: parsed.infos.map { ($0.name, $0) })
    }

    /// Whether the file holds a tensor called `name`.
    public func contains(_ name: String) -> Bool { infos[name] != nil }

    /// The dtype, shape and location of the tensor called `name`.
    ///
    /// - Throws: ``CNNError/invalidArgument(_:)`` when there is no such tensor.
    public func info(named name: String) throws -> TensorInfo {
        guard let info = infos[name] else {
            let shown = names.prefix(8).map { IOJSON.quote($0) }.joined(separator: ", ")
            throw CNNError.invalidArgument("\(source): no tensor named \(IOJSON.quote(name)); the file has \(names.count) tensors (\(shown)\(names.count > 8 ? ", ..." : ""))")
        }
        return info
    }

    /// The tensor called `name`, converted to `Float` from any dtype (integers exactly up to 2^24;
    /// F64 rounded to nearest).
    ///
    /// - Throws: ``CNNError/invalidArgument(_:)`` when there is no such tensor,
    ///   ``CNNError/outOfMemory(_:)`` when it cannot be allocated.
    public func tensor(named name: String) throws -> Tensor {
        let info = try info(named: name)
        let out = try Tensor(uninitializedShape: info.shape)
        let n = out.count
        let dst = out.storage.pointer
        bytes.withBytes { raw in
            guard n > 0, let base = raw.baseAddress else { return }
            let src = base + dataStart + info.byteRange.lowerBound
            @inline(__always) func load<T: FixedWidthInteger>(_ i: Int, _: T.Type) -> T {
                T(littleEndian: src.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self))
            }
            switch info.dtype {
            case .float32:
                #if _endian(little)
                UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: n * 4)
                #else
                for i in 0..<n { dst[i] = Float(bitPattern: load(i, UInt32.self)) }
                #endif
            case .float64: for i in 0..<n { dst[i] = Float(Double(bitPattern: load(i, UInt64.self))) }
            case .float16: for i in 0..<n { dst[i] = SafeTensors.float(fromHalf: load(i, UInt16.self)) }
            case .bfloat16: for i in 0..<n { dst[i] = Float(bitPattern: UInt32(load(i, UInt16.self)) << 16) }
            case .float8E5M2: for i in 0..<n { dst[i] = SafeTensors.float(fromHalf: UInt16(load(i, UInt8.self)) << 8) }
            case .float8E4M3: for i in 0..<n { dst[i] = SafeTensors.float(fromE4M3: load(i, UInt8.self)) }
            case .bool: for i in 0..<n { dst[i] = load(i, UInt8.self) != 0 ? 1 : 0 }
            case .uint8: for i in 0..<n { dst[i] = Float(load(i, UInt8.self)) }
            case .int8: for i in 0..<n { dst[i] = Float(load(i, Int8.self)) }
            case .int16: for i in 0..<n { dst[i] = Float(load(i, Int16.self)) }
            case .uint16: for i in 0..<n { dst[i] = Float(load(i, UInt16.self)) }
            case .int32: for i in 0..<n { dst[i] = Float(load(i, Int32.self)) }
            case .uint32: for i in 0..<n { dst[i] = Float(load(i, UInt32.self)) }
            case .int64: for i in 0..<n { dst[i] = Float(load(i, Int64.self)) }
            case .uint64: for i in 0..<n { dst[i] = Float(load(i, UInt64.self)) }
            }
        }
        return out
    }

    /// The elements of an integer (or boolean) tensor, exactly, in row-major order.
    ///
    /// - Throws: ``CNNError/invalidArgument(_:)`` when there is no such tensor or its dtype is a
    ///   floating-point one; ``CNNError/invalidFile(_:)`` for a U64 value above `Int64.max`.
    public func integers(named name: String) throws -> [Int64] {
        let info = try info(named: name)
        guard info.dtype.isInteger else {
            throw CNNError.invalidArgument("\(source): tensor \(IOJSON.quote(name)) has dtype \(info.dtype.rawValue), not an integer type; read it with tensor(named:)")
        }
        let n = info.elementCount
        return try bytes.withBytes { raw -> [Int64] in
            guard n > 0, let base = raw.baseAddress else { return [] }
            let src = base + dataStart + info.byteRange.lowerBound
            func load<T: FixedWidthInteger>(_ i: Int, _: T.Type) -> T {
                T(littleEndian: src.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self))
            }
            switch info.dtype {
            case .bool: return (0..<n).map { load($0, UInt8.self) != 0 ? 1 : 0 }
            case .uint8: return (0..<n).map { Int64(load($0, UInt8.self)) }
            case .int8: return (0..<n).map { Int64(load($0, Int8.self)) }
            case .int16: return (0..<n).map { Int64(load($0, Int16.self)) }
            case .uint16: return (0..<n).map { Int64(load($0, UInt16.self)) }
            case .int32: return (0..<n).map { Int64(load($0, Int32.self)) }
            case .uint32: return (0..<n).map { Int64(load($0, UInt32.self)) }
            case .int64: return (0..<n).map { load($0, Int64.self) }
            case .uint64:
                return try (0..<n).map { i in
                    let v = load(i, UInt64.self)
                    guard let s = Int64(exactly: v) else {
                        throw CNNError.invalidFile("\(source): tensor \(IOJSON.quote(name)) element \(i) is \(v), above Int64.max")
                    }
                    return s
                }
            default: return []  // excluded above
            }
        }
    }

    /// Every tensor converted to `Float`, by name.
    public func tensors() throws -> [String: Tensor] {
        var result: [String: Tensor] = [:]
        for name in names { result[name] = try tensor(named: name) }
        return result
    }

    // MARK: Validation

    private struct ParsedHeader {
        var dataStart: Int
        var metadata: [String: String]
        var infos: [TensorInfo]
    }

    private static func parseHeader(_ raw: UnsafeRawBufferPointer, source: String) throws -> ParsedHeader {
        func fail(_ what: String) -> CNNError { .invalidFile("\(source): \(what)") }
        var reader = IOByteReader(raw, name: source)
        guard raw.count >= 8 else {
            throw fail("file is \(raw.count) bytes, too short for the 8-byte header length")
        }
        let headerLength = try reader.uint64LE("header length")
        guard headerLength <= UInt64(maxHeaderLength) else {
            throw fail("header length \(headerLength) exceeds the limit of \(maxHeaderLength) bytes")
        }
        let n = Int(headerLength)
        guard n <= raw.count - 8 else {
            throw fail("header length \(n) exceeds the \(raw.count - 8) bytes after the length field (file size \(raw.count))")
        }
        let header = try reader.slice(n, "header")
        guard n > 0, header[0] == UInt8(ascii: "{") else {
            throw fail(n == 0 ? "header is empty" : "header does not start with '{' (first byte 0x\(String(header[0], radix: 16)))")
        }
        let json: IOJSON
        do { json = try IOJSONParser.parse(header) } catch {
            throw fail("header is not valid JSON: \(error.message)")
        }
        guard case .object(let members) = json else { throw fail("header is \(json.kind), expected a JSON object") }
        let dataLength = raw.count - 8 - n

        var metadata: [String: String] = [:]
        var infos: [TensorInfo] = []
        for (name, value) in members {
            let quoted = IOJSON.quote(name)
            if name == "__metadata__" {
                switch value {
                case .null: continue
                case .object(let entries):
                    for (k, v) in entries {
                        guard case .string(let s) = v else {
                            throw fail("__metadata__ value for \(IOJSON.quote(k)) is \(v.kind), expected a string")
                        }
                        metadata[k] = s
                    }
                    continue
                default: throw fail("__metadata__ is \(value.kind), expected an object of strings")
                }
            }
            guard case .object(let fields) = value else { throw fail("tensor \(quoted) is \(value.kind), expected an object") }
            func field(_ key: String) throws -> IOJSON {
                guard let v = fields.first(where: { $0.key == key })?.value else {
                    throw fail("tensor \(quoted) has no \"\(key)\"")
                }
                return v
            }
            guard case .string(let dtypeName) = try field("dtype") else {
                throw fail("tensor \(quoted): \"dtype\" is \(try field("dtype").kind), expected a string")
            }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw fail("tensor \(quoted) has unknown dtype \(IOJSON.quote(dtypeName)) (supported: \(DType.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            func integers(_ key: String) throws -> [Int] {
                guard case .array(let items) = try field(key) else {
                    throw fail("tensor \(quoted): \"\(key)\" is \(try field(key).kind), expected an array of integers")
                }
                return try items.map { item in
                    guard case .int(let v) = item, v >= 0, let i = Int(exactly: v) else {
                        throw fail("tensor \(quoted): \"\(key)\" \(describe(items)) must hold non-negative integers")
                    }
                    return i
                }
            }
            let shape = try integers("shape")
            let offsets = try integers("data_offsets")
            guard offsets.count == 2 else {
                throw fail("tensor \(quoted): data_offsets \(offsets) must have 2 entries, has \(offsets.count)")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard end >= begin else { throw fail("tensor \(quoted): data_offsets [\(begin), \(end)] end before they begin") }
            guard end <= dataLength else {
                throw fail("tensor \(quoted): data_offsets [\(begin), \(end)] exceed the data buffer of \(dataLength) bytes")
            }
            guard let count = IOSize.product(shape), let byteCount = IOSize.product([count, dtype.byteSize]) else {
                throw fail("tensor \(quoted): shape \(shape) has too many elements (overflow)")
            }
            guard byteCount == end - begin else {
                throw fail("tensor \(quoted): shape \(shape) of \(dtype.rawValue) needs \(byteCount) bytes, data_offsets [\(begin), \(end)] hold \(end - begin)")
            }
            infos.append(TensorInfo(name: name, dtype: dtype, shape: shape, byteRange: begin..<end))
        }
        // The tensors must tile the buffer: sorted by offset, each begins where the previous ended.
        infos.sort {
            ($0.byteRange.lowerBound, $0.byteRange.upperBound) < ($1.byteRange.lowerBound, $1.byteRange.upperBound)
                || ($0.byteRange == $1.byteRange && $0.name.utf8.lexicographicallyPrecedes($1.name.utf8))
        }
        var expected = 0
        var previous: TensorInfo? = nil
        for info in infos {
            let r = info.byteRange
            if r.lowerBound < expected, let p = previous {
                throw fail("tensors \(IOJSON.quote(p.name)) [\(p.byteRange.lowerBound), \(p.byteRange.upperBound)] and \(IOJSON.quote(info.name)) [\(r.lowerBound), \(r.upperBound)] overlap")
            }
            if r.lowerBound > expected {
                throw fail("hole in the data buffer: bytes [\(expected), \(r.lowerBound)) before tensor \(IOJSON.quote(info.name)) belong to no tensor")
            }
            expected = r.upperBound
            previous = info
        }
        guard expected == dataLength else {
            throw fail("the tensors cover \(expected) bytes of the \(dataLength)-byte data buffer; \(dataLength - expected) trailing bytes belong to no tensor")
        }
        return ParsedHeader(dataStart: 8 + n, metadata: metadata, infos: infos)
    }

    private static func describe(_ items: [IOJSON]) -> String {
        "[" + items.prefix(8).map { item -> String in
            switch item {
            case .int(let v): return String(v)
            case .double(let d): return String(d)
            case .string(let s): return IOJSON.quote(s)
            default: return item.kind
            }
        }.joined(separator: ", ") + (items.count > 8 ? ", ..." : "") + "]"
    }

    // MARK: Conversions

    /// An IEEE half-precision value (given as its bits) as `Float`; exact, including subnormals,
    /// infinities and NaN.
    static func float(fromHalf h: UInt16) -> Float {
        let sign: UInt32 = UInt32(h & 0x8000) << 16
        let exponent = UInt32(h >> 10) & 0x1F
        let mantissa = UInt32(h & 0x3FF)
        if exponent == 0 {
            let v = Float(mantissa) * 0x1p-24  // subnormal: mantissa * 2^-24
            return sign != 0 ? -v : v
        }
        if exponent == 31 { return Float(bitPattern: sign | 0x7F80_0000 | mantissa << 13) }
        return Float(bitPattern: sign | (exponent + 112) << 23 | mantissa << 13)  // rebias 15 -> 127
    }

    /// An 8-bit E4M3 ("fn": no infinities, only 0x7F/0xFF are NaN) value as `Float`.
    static func float(fromE4M3 b: UInt8) -> Float {
        let negative = b & 0x80 != 0
        let exponent = Int((b >> 3) & 0xF)
        let mantissa = Float(b & 0x7)
        if exponent == 15 && b & 0x7 == 7 { return .nan }
        let v = exponent == 0 ? mantissa * 0x1p-9 : (1 + mantissa / 8) * Float(sign: .plus, exponent: exponent - 7, significand: 1)
        return negative ? -v : v
    }

    // MARK: Writing

    /// The bytes of a SafeTensors file holding `tensors` (as F32) and `metadata`.
    ///
    /// Laid out as `safetensors.torch.save_file` does: data ordered by dtype (I64 before F32) then
    /// by name, the JSON header padded with spaces to a multiple of 8 bytes.
    ///
    /// - Throws: ``CNNError/invalidArgument(_:)`` for a duplicate name or the reserved name
    ///   `__metadata__`; ``CNNError/shapeMismatch(_:)`` when an integer array does not fit its shape.
    public static func encode(_ values: [(String, Value)], metadata: [String: String] = [:]) throws -> [UInt8] {
        var seen = Set<String>()
        for (name, value) in values {
            guard name != "__metadata__" else {
                throw CNNError.invalidArgument("SafeTensors.write: \"__metadata__\" is reserved and cannot name a tensor")
            }
            guard seen.insert(name).inserted else {
                throw CNNError.invalidArgument("SafeTensors.write: tensor name \(IOJSON.quote(name)) appears twice")
            }
            if case .int64(let shape, let ints) = value {
                guard let n = IOSize.product(shape), n == ints.count else {
                    throw CNNError.shapeMismatch("SafeTensors.write: tensor \(IOJSON.quote(name)) has shape \(shape) but \(ints.count) values")
                }
            }
        }
        // The reference sorts by dtype, larger (more aligned) first, then by name bytewise.
        func rank(_ v: Value) -> Int { if case .int64 = v { return 0 } else { return 1 } }
        let ordered = values.sorted { a, b in
            rank(a.1) != rank(b.1) ? rank(a.1) < rank(b.1) : a.0.utf8.lexicographicallyPrecedes(b.0.utf8)
        }
        var header = "{"
        if !metadata.isEmpty {
            let entries = metadata.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
            header += "\"__metadata__\":{" + entries.map { IOJSON.quote($0.key) + ":" + IOJSON.quote($0.value) }
                .joined(separator: ",") + "}"
        }
        var offset = 0
        var first = metadata.isEmpty
        for (name, value) in ordered {
            let (dtype, shape, byteCount): (String, [Int], Int)
            switch value {
            case .float32(let t): (dtype, shape, byteCount) = ("F32", t.shape, t.count * 4)
            case .int64(let s, let ints): (dtype, shape, byteCount) = ("I64", s, ints.count * 8)
            }
            if !first { header += "," }
            first = false
            header += IOJSON.quote(name) + ":{\"dtype\":\"\(dtype)\",\"shape\":["
                + shape.map(String.init).joined(separator: ",") + "],\"data_offsets\":[\(offset),\(offset + byteCount)]}"
            offset += byteCount
        }
        header += "}"
        var headerBytes = Array(header.utf8)
        headerBytes += [UInt8](repeating: 0x20, count: (8 - headerBytes.count % 8) % 8)
        var out: [UInt8] = []
        out.reserveCapacity(8 + headerBytes.count + offset)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { out += $0 }
        out += headerBytes
        for (_, value) in ordered {
            switch value {
            case .float32(let t):
                t.withUnsafeBufferPointer { buffer in
                    #if _endian(little)
                    out += UnsafeRawBufferPointer(buffer)
                    #else
                    for v in buffer { withUnsafeBytes(of: v.bitPattern.littleEndian) { out += $0 } }
                    #endif
                }
            case .int64(_, let ints):
                for v in ints { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
            }
        }
        return out
    }

    /// The bytes of a SafeTensors file holding float `tensors` (as F32) and `metadata`.
    public static func encode(_ tensors: [(String, Tensor)], metadata: [String: String] = [:]) throws -> [UInt8] {
        try encode(tensors.map { ($0.0, Value.float32($0.1)) }, metadata: metadata)
    }

    /// Writes `values` (F32 tensors and I64 integer arrays) and `metadata` to `path` atomically
    /// (a temporary file in the same directory, `fsync`, rename), in the layout of
    /// `encode(_:metadata:)`.
    ///
    /// - Throws: ``CNNError/io(_:)`` when the file cannot be written, and the errors of `encode`.
    public static func write(_ values: [(String, Value)], metadata: [String: String] = [:], to path: String) throws {
        try IOFile.writeAtomically(try encode(values, metadata: metadata), to: path)
    }

    /// Writes float `tensors` (as F32) and `metadata` to `path` atomically.
    public static func write(_ tensors: [(String, Tensor)], metadata: [String: String] = [:], to path: String) throws {
        try IOFile.writeAtomically(try encode(tensors, metadata: metadata), to: path)
    }

    /// Writes float `tensors` (as F32) and `metadata` to `path` atomically; the order of a
    /// dictionary does not matter because tensors are written sorted by name.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to path: String) throws {
        try write(tensors.map { ($0.key, $0.value) }, metadata: metadata, to: path)
    }
}
