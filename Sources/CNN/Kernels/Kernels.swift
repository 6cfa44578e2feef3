import CNNKernels

/// The one place the Swift code calls the elementwise C kernels; everything else goes through it.
enum Kernels {
    @inline(__always) static func add(_ n: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        _ = cnn_add(Int64(n), a, b, y)
    }
    @inline(__always) static func mul(_ n: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        _ = cnn_mul(Int64(n), a, b, y)
    }
    @inline(__always) static func scale(_ n: Int, _ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        _ = cnn_scale(Int64(n), alpha, x, y)
    }
    @inline(__always) static func axpy(_ n: Int, _ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        _ = cnn_axpy(Int64(n), alpha, x, y)
    }
    @inline(__always) static func sum(_ n: Int, _ x: UnsafePointer<Float>) -> Double {
        cnn_sum(Int64(n), x)
    }
}
