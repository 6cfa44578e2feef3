#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An immutable block of bytes read from a file (memory-mapped where possible) or copied from
/// memory, shared by the readers in this folder.
///
/// A mapped file must not be truncated by another process while it is in use: reading pages past
/// the new end raises SIGBUS, which no user-space check can prevent (the price of `mmap`).
final class IOBytes: @unchecked Sendable {
    /// The first byte (nil when `count` is 0).
    let base: UnsafeRawPointer?
    let count: Int
    private let mappedLength: Int  // > 0: munmap on deinit; 0: free on deinit

    /// A copy of `bytes`.
    init<C: Collection>(copying bytes: C) where C.Element == UInt8 {
        let n = bytes.count
        count = n
        mappedLength = 0
        guard n > 0 else { base = nil; return }
        let p = UnsafeMutableRawPointer.allocate(byteCount: n, alignment: 16)
        let buffer = UnsafeMutableRawBufferPointer(start: p, count: n)
        let done = bytes.withContiguousStorageIfAvailable { src -> Bool in
            buffer.copyMemory(from: UnsafeRawBufferPointer(src))
            return true
        }
        if done == nil { _ = buffer.initializeMemory(as: UInt8.self, from: bytes) }
        base = UnsafeRawPointer(p)
    }

    private init(base: UnsafeRawPointer?, count: Int, mappedLength: Int) {
        self.base = base
        self.count = count
        self.mappedLength = mappedLength
    }

    /// The contents of the regular file at `path`, memory-mapped when `map` is true and the system
    /// allows it, else read. Files over `maxBytes` are refused.
    static func contentsOf(path: String, map: Bool, maxBytes: Int = Int.max) throws -> IOBytes {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CNNError.io("\(path): cannot open: \(IOBytes.systemError())") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw CNNError.io("\(path): cannot stat: \(IOBytes.systemError())") }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw CNNError.io("\(path): not a regular file")
        }
        guard st.st_size >= 0, st.st_size <= Int64(maxBytes) else {
            throw CNNError.invalidFile("\(path): file size \(st.st_size) bytes exceeds the limit of \(maxBytes) bytes")
        }
        let size = Int(st.st_size)
        if size == 0 { return IOBytes(base: nil, count: 0, mappedLength: 0) }
        if map, let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0),
           p != UnsafeMutableRawPointer(bitPattern: -1) {
            return IOBytes(base: UnsafeRawPointer(p), count: size, mappedLength: size)
        }
        // Fallback (or a file system without mmap): read it all, looping over short reads.
        let p = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        var done = 0
        while done < size {
            let r = read(fd, p + done, size - done)
            if r < 0 {
                if errno == EINTR { continue }
                let message = IOBytes.systemError()
                p.deallocate()
                throw CNNError.io("\(path): read failed after \(done) of \(size) bytes: \(message)")
            }
            if r == 0 {
                p.deallocate()
                throw CNNError.io("\(path): file shrank while reading (\(done) of \(size) bytes)")
            }
            done += r
        }
        return IOBytes(base: UnsafeRawPointer(p), count: size, mappedLength: 0)
    }

    deinit {
        guard let base else { return }
        if mappedLength > 0 {
            munmap(UnsafeMutableRawPointer(mutating: base), mappedLength)
        } else {
            UnsafeMutableRawPointer(mutating: base).deallocate()
        }
    }

    /// Calls `body` with the bytes.
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    /// The bytes as an array.
    var array: [UInt8] { withBytes { Array($0) } }

    /// The text of the current `errno`.
    static func systemError() -> String {
        let e = errno
        guard let s = strerror(e) else { return "errno \(e)" }
        return String(cString: s) + " (errno \(e))"
    }
}

/// File helpers for the readers and writers in this folder.
enum IOFile {
    /// The whole file at `path` as an array (refusing files over `maxBytes`).
    static func readAll(_ path: String, maxBytes: Int = Int.max) throws -> [UInt8] {
        try IOBytes.contentsOf(path: path, map: false, maxBytes: maxBytes).array
    }

    /// Whether a regular file exists at `path`.
    static func isRegularFile(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    /// `a/b` (no separator doubled).
    static func join(_ a: String, _ b: String) -> String {
        if a.isEmpty { return b }
        return a.hasSuffix("/") ? a + b : a + "/" + b
    }

    /// The value of an environment variable (nil when unset or empty).
    static func environment(_ name: String) -> String? {
        guard let v = getenv(name) else { return nil }
        let s = String(cString: v)
        return s.isEmpty ? nil : s
    }

    /// Writes `bytes` to `path` atomically: a temporary file in the same directory is written,
    /// flushed to disk with `fsync` and renamed over `path`, so readers see either the old file or
    /// the complete new one, never a partial write (also not after a crash).
    static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        guard !path.isEmpty else { throw CNNError.invalidArgument("write: empty path") }
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let file = slash.map { String(path[path.index(after: $0)...]) } ?? path
        guard !file.isEmpty else { throw CNNError.invalidArgument("write: \(path) names a directory") }
        var template = Array(IOFile.join(directory, "." + file + ".tmp-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw CNNError.io("\(path): cannot create a temporary file in \(directory): \(IOBytes.systemError())")
        }
        let tempPath = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var ok = false
        defer {
            if !ok { unlink(tempPath) }
        }
        do {
            defer { close(fd) }
            _ = fchmod(fd, 0o644)  // mkstemp creates 0600; match what `open` would give
            var done = 0
            try bytes.withUnsafeBytes { raw in
                while done < raw.count {
                    let w = write(fd, raw.baseAddress! + done, raw.count - done)
                    if w < 0 {
                        if errno == EINTR { continue }
                        throw CNNError.io("\(path): write failed after \(done) of \(raw.count) bytes: \(IOBytes.systemError())")
                    }
                    done += w
                }
            }
            guard fsync(fd) == 0 else { throw CNNError.io("\(path): fsync failed: \(IOBytes.systemError())") }
        }
        guard rename(tempPath, path) == 0 else {
            throw CNNError.io("\(path): cannot rename \(tempPath) into place: \(IOBytes.systemError())")
        }
        ok = true
        // Make the rename itself durable; failure here leaves a correct file, so it is not an error.
        let dfd = open(directory, O_RDONLY | O_CLOEXEC)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
    }
}

/// Bounds-checked big- and little-endian reads from a byte buffer: every read that would pass the
/// end throws a ``CNNError/invalidFile(_:)`` naming the file, what was being read and the offsets.
struct IOByteReader {
    let bytes: UnsafeRawBufferPointer
    let name: String
    var offset = 0

    init(_ bytes: UnsafeRawBufferPointer, name: String) {
        self.bytes = bytes
        self.name = name
    }

    var remaining: Int { bytes.count - offset }

    /// Throws unless `count` more bytes are available.
    func require(_ count: Int, for what: String) throws {
        guard count >= 0, count <= remaining else {
            throw CNNError.invalidFile("\(name): truncated: \(what) needs \(count) bytes at offset \(offset), only \(Swift.max(remaining, 0)) left (file size \(bytes.count))")
        }
    }

    mutating func uint8(_ what: String) throws -> UInt8 {
        try require(1, for: what)
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func uint32BE(_ what: String) throws -> UInt32 {
        try require(4, for: what)
        defer { offset += 4 }
        return UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16
            | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
    }

    mutating func uint64LE(_ what: String) throws -> UInt64 {
        try require(8, for: what)
        var v: UInt64 = 0
        for i in (0..<8).reversed() { v = v << 8 | UInt64(bytes[offset + i]) }
        offset += 8
        return v
    }

    /// The next `count` bytes, without copying.
    mutating func slice(_ count: Int, _ what: String) throws -> UnsafeRawBufferPointer {
        try require(count, for: what)
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
    }
}

/// Overflow-checked products for sizes read from files.
enum IOSize {
    /// The product of `factors`, or nil if it overflows `Int` or any factor is negative.
    static func product(_ factors: [Int]) -> Int? {
        var p = 1
        for f in factors {
            guard f >= 0 else { return nil }
            let (r, o) = p.multipliedReportingOverflow(by: f)
            if o { return nil }
            p = r
        }
        return p
    }

    /// `a + b`, or nil on overflow.
    static func sum(_ a: Int, _ b: Int) -> Int? {
        let (r, o) = a.addingReportingOverflow(b)
        return o ? nil : r
    }
}
