"""A float64 NumPy reference of the DistilBERT and BERT encoders, reading the
same safetensors files as the server. Written from the architecture, not
from the server's code: it is the oracle the server is checked against."""

import json
import math
import pathlib

import numpy as np
from safetensors.numpy import load_file


class Encoder:
    def __init__(self, version_dir):
        version_dir = pathlib.Path(version_dir)
        self.config = json.loads((version_dir / "config.json").read_text())
        self.w = {k: v.astype(np.float64) for k, v in load_file(str(version_dir / "model.safetensors")).items()}
        self.family = self.config["model_type"]
        self.eps = self.config.get("layer_norm_eps", 1e-12)
        if self.family == "distilbert":
            self.heads = self.config["n_heads"]
            self.layers = self.config["n_layers"]
            p = "distilbert." if "distilbert.embeddings.word_embeddings.weight" in self.w else ""
        else:
            self.heads = self.config["num_attention_heads"]
            self.layers = self.config["num_hidden_layers"]
            p = "bert." if "bert.embeddings.word_embeddings.weight" in self.w else ""
        self.p = p

    def layer_norm(self, x, g, b):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * g + b

    @staticmethod
    def gelu(x):
        return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))

    def hidden(self, ids, mask):
        """ids, mask: (L,) arrays for one sequence; returns (L, H) with masked keys excluded."""
        w, p = self.w, self.p
        x = w[f"{p}embeddings.word_embeddings.weight"][ids] + w[f"{p}embeddings.position_embeddings.weight"][: len(ids)]
        if self.family == "bert":
            x = x + w[f"{p}embeddings.token_type_embeddings.weight"][0]
        x = self.layer_norm(x, w[f"{p}embeddings.LayerNorm.weight"], w[f"{p}embeddings.LayerNorm.bias"])
        length, hidden = x.shape
        d = hidden // self.heads
        key_mask = np.where(np.asarray(mask) != 0, 0.0, -np.inf)
        for i in range(self.layers):
            if self.family == "distilbert":
                l = f"{p}transformer.layer.{i}."
                names = [f"{l}attention.{n}_lin" for n in ("q", "k", "v", "out")]
                norms = (f"{l}sa_layer_norm", f"{l}output_layer_norm")
                ffn = (f"{l}ffn.lin1", f"{l}ffn.lin2")
            else:
                l = f"{p}encoder.layer.{i}."
                names = [f"{l}attention.self.{n}" for n in ("query", "key", "value")] + [f"{l}attention.output.dense"]
                norms = (f"{l}attention.output.LayerNorm", f"{l}output.LayerNorm")
                ffn = (f"{l}intermediate.dense", f"{l}output.dense")
            lin = lambda name, t: t @ w[f"{name}.weight"].T + w[f"{name}.bias"]
            q, k, v = (lin(n, x).reshape(length, self.heads, d).transpose(1, 0, 2) for n in names[:3])
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(d) + key_mask
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            probabilities = scores / scores.sum(-1, keepdims=True)
            context = (probabilities @ v).transpose(1, 0, 2).reshape(length, hidden)
            x = self.layer_norm(x + lin(names[3], context), w[f"{norms[0]}.weight"], w[f"{norms[0]}.bias"])
            x = self.layer_norm(x + lin(ffn[1], self.gelu(lin(ffn[0], x))), w[f"{norms[1]}.weight"], w[f"{norms[1]}.bias"])
        return x

    def logits(self, ids, mask):
        h = self.hidden(ids, mask)[0]
        w = self.w
        pre = np.maximum(0, h @ w["pre_classifier.weight"].T + w["pre_classifier.bias"])
        return pre @ w["classifier.weight"].T + w["classifier.bias"]

    def embedding(self, ids, mask):
        h = self.hidden(ids, mask)
        keep = np.asarray(mask) != 0
        mean = h[keep].mean(0)
        return mean / np.linalg.norm(mean)
