extension Tensor: CustomStringConvertible {
    /// A PyTorch-like rendering: nested brackets, at most 6 items per dimension (first and last 3
    /// with `...` between), and the shape.
    public var description: String {
        func fmt(_ v: Float) -> String {
            if v.isNaN { return "nan" }
            if v.isInfinite { return v > 0 ? "inf" : "-inf" }
            if v == v.rounded(), abs(v) < 1e7 { return String(Int(v)) + "." }
            var s = String(v)
            if s.count > 10 { s = String(s.prefix(10)) }
            return s
        }
        func render(_ dim: Int, _ offset: Int, _ indent: String) -> String {
            if dim == rank { return fmt(storage.pointer[offset]) }
            let n = shape[dim]
            let stride = shape[(dim + 1)...].reduce(1, *)
            let shown: [Int?] = n > 6 ? [0, 1, 2, nil, n - 3, n - 2, n - 1] : Array(0..<n).map { Optional($0) }
            let sep = dim == rank - 1 ? ", " : ",\n" + indent + " "
            let parts = shown.map { i -> String in
                guard let i else { return "..." }
                return render(dim + 1, offset + i * stride, indent + " ")
            }
            return "[" + parts.joined(separator: sep) + "]"
        }
        if rank == 0 { return "tensor(\(fmt(storage.pointer[0])))" }
        if count == 0 { return "tensor([], shape: \(shape))" }
        return "tensor(" + render(0, 0, "       ") + ", shape: \(shape))"
    }
}
