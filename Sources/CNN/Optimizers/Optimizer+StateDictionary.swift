extension Optimizer {
    /// The whole optimizer state as named tensors, for checkpoints.
    ///
    /// Keys, in this order:
    /// - `hyperparameters.lr`, `hyperparameters.weight_decay`, then `hyperparameters.<name>` for each
    ///   of ``hyperparameters`` — one-element tensors of shape `[1]`;
    /// - for every parameter updated at least once, in parameter order: `state.<parameter>.step`
    ///   (the update count as a one-element tensor; exact up to 2²⁴ updates, like PyTorch's float32
    ///   `step`), then `state.<parameter>.<slot>` for each of ``stateSlots`` (the parameter's shape),
    ///   e.g. `state.layer1.0.conv1.weight.momentum_buffer`.
    ///
    /// The tensors share storage with the optimizer until it next steps (copy on write), so taking a
    /// checkpoint costs no copy.
    public func stateDictionary() -> [(String, Tensor)] {
        var result: [(String, Tensor)] = [
            ("hyperparameters.lr", Tensor([learningRate])),
            ("hyperparameters.weight_decay", Tensor([weightDecay])),
        ]
        for (name, value) in hyperparameters { result.append(("hyperparameters.\(name)", Tensor([value]))) }
        let slots = stateSlots
        for (name, _) in parameters {
            guard let entry = state[name] else { continue }
            result.append(("state.\(name).step", Tensor([Float(entry.step)])))
            for (slot, buffer) in zip(slots, entry.buffers) { result.append(("state.\(name).\(slot)", buffer)) }
        }
        return result
    }

    /// Restores a state saved by ``stateDictionary()``: the learning rate and every parameter's state.
    ///
    /// Everything is checked before anything changes; on error the optimizer is untouched. The
    /// dictionary must hold exactly the keys ``stateDictionary()`` writes for this optimizer: every
    /// hyper-parameter key, and for each parameter that has state, its `step` and every slot with the
    /// parameter's shape. The fixed hyper-parameters (weight decay, momentum, betas, ...) must equal
    /// this optimizer's — a checkpoint resumed under different settings is refused rather than
    /// silently mixed; the learning rate is taken from the dictionary, since schedules change it.
    /// Parameters absent from the dictionary are left with no state (as before their first update).
    ///
    /// - Throws: ``CNNError/invalidArgument(_:)`` with one message listing every problem: missing,
    ///   unexpected and duplicated keys, wrong shapes, a step that is not a non-negative integer,
    ///   an invalid learning rate, hyper-parameters that differ.
    public func loadStateDictionary(_ dictionary: [(String, Tensor)]) throws {
        var problems: [String] = []
        var byKey: [String: Tensor] = [:]
        for (key, tensor) in dictionary where byKey.updateValue(tensor, forKey: key) != nil {
            problems.append("duplicated key \(key)")
        }

        // Hyper-parameters.
        let fixed: [(String, Float)] = [("weight_decay", weightDecay)] + hyperparameters
        var newLearningRate = learningRate
        var expectedHyper: Set<String> = ["lr"]
        for (name, _) in fixed { expectedHyper.insert(name) }
        func scalar(_ key: String) -> Float? {
            guard let t = byKey[key] else { problems.append("missing key \(key)"); return nil }
            guard t.shape == [1] else {
                problems.append("\(key) has shape \(t.shape), expected [1]"); return nil
            }
            return t.storage.pointer[0]
        }
        if let lr = scalar("hyperparameters.lr") {
            if lr.isFinite && lr >= 0 { newLearningRate = lr } else {
                problems.append("hyperparameters.lr is \(lr), expected a finite value >= 0")
            }
        }
        for (name, current) in fixed {
            let key = "hyperparameters.\(name)"
            if let saved = scalar(key), saved != current {
                problems.append("\(key) is \(saved), this optimizer has \(current)")
            }
        }

        // Per-parameter state.
        let slots = stateSlots
        let shapes = Dictionary(uniqueKeysWithValues: parameters.map { ($0.name, $0.variable.value.shape) })
        var withState = Set<String>()
        for key in byKey.keys.sorted() {
            if key.hasPrefix("hyperparameters.") {
                if !expectedHyper.contains(String(key.dropFirst("hyperparameters.".count))) {
                    problems.append("unexpected key \(key)")
                }
                continue
            }
            guard key.hasPrefix("state."), let dot = key.lastIndex(of: ".") else {
                problems.append("unexpected key \(key)"); continue
            }
            let parameter = String(key[key.index(key.startIndex, offsetBy: "state.".count)..<dot])
            let slot = String(key[key.index(after: dot)...])
            guard shapes[parameter] != nil, slot == "step" || slots.contains(slot) else {
                problems.append("unexpected key \(key)"); continue
            }
            withState.insert(parameter)
        }
        var newState: [String: ParameterState] = [:]
        for (name, _) in parameters where withState.contains(name) {
            let shape = shapes[name]!
            var step: Int?
            if let s = scalar("state.\(name).step") {
                if s >= 0, s < 16_777_216, s.rounded() == s { step = Int(s) } else {
                    problems.append("state.\(name).step is \(s), expected a non-negative integer below 2^24")
                }
            }
            var buffers: [Tensor] = []
            for slot in slots {
                let key = "state.\(name).\(slot)"
                guard let t = byKey[key] else { problems.append("missing key \(key)"); continue }
                guard t.shape == shape else {
                    problems.append("\(key) has shape \(t.shape), the parameter has \(shape)"); continue
                }
                buffers.append(t)
            }
            if let step, buffers.count == slots.count {
                newState[name] = ParameterState(step: step, buffers: buffers)
            }
        }

        guard problems.isEmpty else {
            throw CNNError.invalidArgument("\(algorithmName).loadStateDictionary: \(problems.count) problem\(problems.count == 1 ? "" : "s"): \(problems.joined(separator: "; "))")
        }
        learningRate = newLearningRate
        state = newState
    }
}
