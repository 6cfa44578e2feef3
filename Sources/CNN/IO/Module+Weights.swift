import Foundation

/// What a non-strict load did not match.
public struct WeightLoadReport: Sendable, Equatable {
    /// Model entries the file did not have (left unchanged).
    public var missingKeys: [String]
    /// File entries the model does not have (ignored).
    public var unexpectedKeys: [String]
    /// Entries present in both with different shapes (left unchanged), as `name: file [..] vs model [..]`.
    public var shapeMismatches: [String]

    /// Whether everything matched.
    public var isComplete: Bool { missingKeys.isEmpty && unexpectedKeys.isEmpty && shapeMismatches.isEmpty }
}

extension Module {
    /// Loads parameters and buffers by their PyTorch names.
    ///
    /// Everything is checked before anything changes: with `strict` (the default) any missing key,
    /// unexpected key or shape mismatch throws one ``CNNError/shapeMismatch(_:)`` listing every
    /// problem, and the model is left untouched. Non-strict loading applies what matches and
    /// returns the rest in the report.
    @discardableResult
    public func loadStateDictionary(_ entries: [String: Tensor], strict: Bool = true) throws -> WeightLoadReport {
        let params = namedParameters(), buffers = namedBuffers()
        var report = WeightLoadReport(missingKeys: [], unexpectedKeys: [], shapeMismatches: [])
        var known = Set<String>()
        var apply: [() throws -> Void] = []
        for (name, p) in params {
            known.insert(name)
            guard let t = entries[name] else { report.missingKeys.append(name); continue }
            guard t.shape == p.value.shape else {
                report.shapeMismatches.append("\(name): file \(t.shape) vs model \(p.value.shape)"); continue
            }
            apply.append { try p.assign(t) }
        }
        for (name, b) in buffers {
            known.insert(name)
            guard let t = entries[name] else { report.missingKeys.append(name); continue }
            // num_batches_tracked is a 0-d integer in PyTorch; accept any one-element tensor.
            let compatible = t.shape == b.value.shape || (t.count == 1 && b.value.count == 1)
            guard compatible else {
                report.shapeMismatches.append("\(name): file \(t.shape) vs model \(b.value.shape)"); continue
            }
            apply.append { b.value = t.count == 1 && b.value.count == 1 ? try t.reshaped(to: b.value.shape) : t }
        }
        report.unexpectedKeys = entries.keys.filter { !known.contains($0) }.sorted()
        if strict && !report.isComplete {
            var lines: [String] = []
            if !report.missingKeys.isEmpty { lines.append("missing keys: " + report.missingKeys.joined(separator: ", ")) }
            if !report.unexpectedKeys.isEmpty { lines.append("unexpected keys: " + report.unexpectedKeys.joined(separator: ", ")) }
            if !report.shapeMismatches.isEmpty { lines.append("shape mismatches: " + report.shapeMismatches.joined(separator: "; ")) }
            throw CNNError.shapeMismatch("loading weights into \(type(of: self)): " + lines.joined(separator: "; "))
        }
        for f in apply { try f() }
        return report
    }

    /// Loads weights from a safetensors file (see ``loadStateDictionary(_:strict:)``). Keys under
    /// other prefixes (such as a checkpoint's `optimizer.`) can be skipped with `prefix`.
    @discardableResult
    public func loadWeights(from path: String, strict: Bool = true, prefix: String = "") throws -> WeightLoadReport {
        let file = try SafeTensors(contentsOf: path)
        var entries: [String: Tensor] = [:]
        for name in file.names where name.hasPrefix(prefix) {
            entries[String(name.dropFirst(prefix.count))] = try file.tensor(named: name)
        }
        return try loadStateDictionary(entries, strict: strict)
    }

    /// The state as values to write: floats as F32, `num_batches_tracked` as I64 as PyTorch stores it.
    public func stateValues(prefix: String = "") -> [(String, SafeTensors.Value)] {
        stateDictionary().map { name, t in
            if name.hasSuffix("num_batches_tracked") {
                return (prefix + name, .int64(shape: [], values: [Int64(t.scalars.first ?? 0)]))
            }
            return (prefix + name, .float32(t))
        }
    }

    /// Writes the parameters and buffers to a safetensors file (atomically) that
    /// `safetensors.torch.load_file` + `model.load_state_dict` read in PyTorch.
    public func saveWeights(to path: String, metadata: [String: String] = [:]) throws {
        try SafeTensors.write(stateValues(), metadata: metadata, to: path)
    }
}
