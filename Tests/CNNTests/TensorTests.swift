import Testing
@testable import CNN

@Suite struct TensorTests {
    @Test func initialisersCheckElementCount() throws {
        let t = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        #expect(t.shape == [2, 3])
        #expect(t.count == 6)
        #expect(try t.scalar(at: [1, 2]) == 6)
        #expect(throws: CNNError.shapeMismatch("Tensor(shape:scalars:): shape [2, 3] needs 6 elements, got 5")) {
            try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5])
        }
        #expect(throws: CNNError.invalidArgument("Tensor: dimension -1 in shape [2, -1] is negative")) {
            try Tensor(zeros: [2, -1])
        }
        #expect(throws: CNNError.outOfMemory("Tensor: shape [4611686018427387904, 4] has too many elements")) {
            try Tensor(zeros: [1 << 62, 4])
        }
    }

    @Test func storageIsAlignedAndCopyOnWrite() throws {
        var a = try Tensor(ones: [4, 4])
        let b = a
        #expect(a.sharesStorage(with: b))
        a.withUnsafeBufferPointer { #expect(Int(bitPattern: $0.baseAddress) % 64 == 0) }
        try a.setScalar(5, at: [0, 0])
        #expect(!a.sharesStorage(with: b))
        #expect(try b.scalar(at: [0, 0]) == 1)
        #expect(try a.scalar(at: [0, 0]) == 5)
    }

    @Test func indexErrorsNameTheShape() throws {
        let t = try Tensor(zeros: [2, 2])
        #expect(throws: CNNError.invalidArgument("index [2, 0] is out of range for shape [2, 2]")) { try t.scalar(at: [2, 0]) }
        #expect(throws: CNNError.invalidArgument("index [0] has rank 1, tensor has shape [2, 2]")) { try t.scalar(at: [0]) }
    }

    @Test func broadcastingArithmetic() throws {
        let a = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        let row = try Tensor(shape: [3], scalars: [10, 20, 30])
        let col = try Tensor(shape: [2, 1], scalars: [100, 200])
        #expect(try (a + row).scalars == [11, 22, 33, 14, 25, 36])
        #expect(try (a * col).scalars == [100, 200, 300, 800, 1000, 1200])
        #expect(try (a - a).scalars == [0, 0, 0, 0, 0, 0])
        #expect(try (a / row).shape == [2, 3])
        #expect((a * 2).scalars == [2, 4, 6, 8, 10, 12])
        #expect(throws: CNNError.shapeMismatch("add: shapes [2, 3] and [4] cannot be broadcast")) {
            try a + Tensor(shape: [4], scalars: [1, 2, 3, 4])
        }
        #expect(try Tensor.broadcastShape([8, 1, 6, 1], [7, 1, 5]) == [8, 7, 6, 5])
    }

    @Test func reductions() throws {
        let a = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        #expect(a.sum() == 21)
        #expect(a.mean() == 3.5)
        #expect(try a.sum(alongAxes: [1]).scalars == [6, 15])
        #expect(try a.sum(alongAxes: [0]).scalars == [5, 7, 9])
        #expect(try a.mean(alongAxes: [0, 1]).scalars == [3.5])
        #expect(try a.sum(alongAxes: [1], keepingDimensions: true).shape == [2, 1])
        #expect(try a.max(alongAxis: 1).scalars == [3, 6])
        #expect(try a.argmaxIndices(alongAxis: 1) == [2, 2])
        #expect(try Tensor(shape: [3], scalars: [1, 5, 5]).argmaxIndices(alongAxis: 0) == [1])
        #expect(throws: CNNError.invalidArgument("sum: axis 2 is out of range for a tensor of shape [2, 3]")) {
            try a.sum(alongAxes: [2])
        }
    }

    @Test func shapeOperations() throws {
        let a = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        #expect(try a.reshaped(to: [3, -1]).shape == [3, 2])
        #expect(throws: CNNError.shapeMismatch("reshape: cannot reshape [2, 3] (6 elements) to [4, 2] (8 elements)")) {
            try a.reshaped(to: [4, 2])
        }
        #expect(try a.transposed().scalars == [1, 4, 2, 5, 3, 6])
        let p = try Tensor(rangeFrom: 0, to: 24).reshaped(to: [2, 3, 4]).permuted([2, 0, 1])
        #expect(p.shape == [4, 2, 3])
        #expect(try p.scalar(at: [3, 1, 2]) == 23)
        #expect(try p.scalar(at: [1, 0, 2]) == 9)
        #expect(try a.slice(batch: 1..<2).scalars == [4, 5, 6])
        #expect(throws: CNNError.invalidArgument("slice(batch:): range 1..<3 is outside 0..<2 for shape [2, 3]")) {
            try a.slice(batch: 1..<3)
        }
        let c = try Tensor.concatenate([a, a * 10], alongAxis: 1)
        #expect(c.shape == [2, 6])
        #expect(c.scalars == [1, 2, 3, 10, 20, 30, 4, 5, 6, 40, 50, 60])
        #expect(throws: CNNError.shapeMismatch("concatenate along axis 1: shape [3, 3] does not match [2, 3]")) {
            try Tensor.concatenate([a, try Tensor(zeros: [3, 3])], alongAxis: 1)
        }
        #expect(try Tensor(zeros: [2, 3, 4, 5]).flattened().shape == [2, 60])
    }

    @Test func matmulMatchesDefinition() throws {
        var g = SeededGenerator(seed: 1)
        let a = try Tensor.normal(shape: [5, 7], generator: &g), b = try Tensor.normal(shape: [7, 3], generator: &g)
        let c = try a.matmul(b)
        for i in 0..<5 {
            for j in 0..<3 {
                var s = 0.0
                for k in 0..<7 { s += Double(try a.scalar(at: [i, k])) * Double(try b.scalar(at: [k, j])) }
                #expect(abs(Double(try c.scalar(at: [i, j])) - s) < 1e-5)
            }
        }
        #expect(try a.transposed().matmul(b, transposeSelf: true).allClose(c))
        #expect(throws: CNNError.shapeMismatch("matmul: inner dimensions differ: [5, 7] x [5, 7]")) { try a.matmul(a) }
    }

    @Test func seededGeneratorIsReproducibleAndInitialisersHaveTheRightSpread() throws {
        var g1 = SeededGenerator(seed: 42), g2 = SeededGenerator(seed: 42)
        #expect(try Tensor.normal(shape: [100], generator: &g1) == Tensor.normal(shape: [100], generator: &g2))
        var g = SeededGenerator(seed: 7)
        let he = try Tensor.heNormal(shape: [64, 128, 3, 3], generator: &g)
        let variance = try (he * he).mean()
        #expect(abs(variance - 2.0 / 1152) / (2.0 / 1152) < 0.05)
        let x = try Tensor.xavierUniform(shape: [100, 200], generator: &g)
        let bound = (6.0 / 300.0).squareRoot()
        #expect(x.max() <= Float(bound) && x.min() >= -Float(bound))
        let u = try Tensor.uniform(shape: [10000], generator: &g)
        #expect(abs(u.mean() - 0.5) < 0.02)
    }

    @Test func descriptionIsPyTorchLike() throws {
        let t = try Tensor(shape: [2, 2], scalars: [1, 2, 3, 4.5])
        #expect(t.description == "tensor([[1., 2.],\n        [3., 4.5]], shape: [2, 2])")
        #expect(try Tensor(rangeFrom: 0, to: 100).description.contains("..."))
    }
}
