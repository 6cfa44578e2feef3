extension Module {
    /// The first convolution in definition order with its dotted name (`features.0`, `conv1`), or
    /// `nil` for a model without one — the layer whose filters look at the input's pixels.
    public var firstConvolution: (name: String, layer: Conv2d)? {
        for (name, module) in namedModules() {
            if let conv = module as? Conv2d { return (name, conv) }
        }
        return nil
    }

    /// The output of the submodule named `layer` (its dotted name, as in ``namedModules(prefix:)``:
    /// `features.0`, `layer1.0.conv1`, `inception3a`) when the model runs on `input`, in evaluation
    /// mode and without gradients. The model's training flags are restored afterwards.
    ///
    /// A submodule called more than once in a forward pass gives its first output.
    ///
    /// - Throws: ``CNNError/invalidArgument(_:)`` naming the valid layer names when `layer` is not
    ///   one, or when the model's forward pass never calls it; the forward pass's errors.
    public func output(ofLayer layer: String, for input: Tensor) throws -> Tensor {
        let modules = namedModules()
        guard let target = modules.first(where: { $0.0 == layer && !layer.isEmpty })?.1 else {
            let names = modules.map(\.0).filter { !$0.isEmpty }
            throw CNNError.invalidArgument("no layer named '\(layer)' in \(type(of: self)); layers: \(names.joined(separator: ", "))")
        }
        let modes = modules.map { ($0.1, $0.1.isTraining) }
        eval()
        defer { for (module, training) in modes { module.setTraining(training) } }
        // The summary's recorder sees every module call in this task; it keeps the target's output.
        let recorder = SummaryRecorder(root: self, capturing: target)
        SummaryRecorder.activeCount.add(1, ordering: .relaxed)
        defer { SummaryRecorder.activeCount.subtract(1, ordering: .relaxed) }
        _ = try SummaryRecorder.$current.withValue(recorder) {
            try GradientMode.withoutGradients { try self(Variable(input)) }
        }
        guard let output = recorder.captured else {
            throw CNNError.invalidArgument("layer '\(layer)' of \(type(of: self)) is not called by its forward pass in evaluation mode")
        }
        return output
    }
}
