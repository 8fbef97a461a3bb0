import Foundation
import Models
import Tensors

// What the CLI's `export` and `sample` commands do with a verified checkpoint, here so the commands need no model
// or tensor module of their own.

extension LoadedCheckpoint {
    /// Writes the parameters (and with `optimizerState` every optimizer state tensor, named
    /// `optimizer.<state>.<tensor>`) as one safetensors file. Returns the number of tensors written.
    @discardableResult
    public func exportSafeTensors(to path: String, optimizerState: Bool) throws -> Int {
        var tensors = try parameters()
        if optimizerState { tensors += self.optimizerState() }
        try writeAtomically(SafeTensors.encode(tensors, metadata: [
            "format": "swift-train", "model": manifest.model, "step": String(manifest.step)]), to: path)
        return tensors.count
    }

    /// The checkpoint's parameters laid out by `table` (after checking the checkpoint holds exactly its tensors).
    public func parameterBuffer(for table: ParameterTable, description: String) throws -> FloatBuffer {
        try checkModel(table, description: description)
        let params = FloatBuffer(count: table.count)
        for e in table.entries {
            let v = try values(state: "param", tensor: e.name, offset: 0, count: e.count)
            for i in 0..<v.count { params[e.offset + i] = v[i] }
        }
        return params
    }

    /// The run's configuration as the checkpoint recorded it, typed for `worldSize` ranks.
    public func trainConfig(worldSize: Int) throws -> TrainConfig {
        var resolved = ResolvedConfig(name: "checkpoint")
        try resolved.merge(yaml: manifest.config, source: "\(path)/manifest.json (config)")
        return try TrainConfig(resolved, worldSize: worldSize)
    }

    /// Text continued from `prompt` by the GPT this checkpoint holds (a `CheckpointError` for any other model).
    /// Byte-level models return text; larger vocabularies return the token ids separated by spaces.
    public func sampleText(prompt: String, tokens: Int, temperature: Float, topK: Int, seed: UInt64) throws -> String {
        let config = try trainConfig(worldSize: 1)
        guard config.modelKind == "gpt" else {
            throw CheckpointError("\(path) holds a \(manifest.model), not a GPT: nothing to sample")
        }
        let model = GPT(config.gpt)
        let params = try parameterBuffer(for: model.table, description: "GPT")
        let promptTokens = Array(prompt.utf8).map { Int32($0) }.filter { Int($0) < config.gpt.vocabulary }
        let out = generate(model: model, params: params.pointer, prompt: promptTokens, count: tokens,
                           temperature: temperature, topK: topK, seed: seed)
        if config.gpt.vocabulary == 256 { return prompt + String(decoding: out.map { UInt8($0) }, as: UTF8.self) }
        return out.map(String.init).joined(separator: " ")
    }
}
