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
        # Old BERT checkpoints name LayerNorm parameters gamma and beta.
        renamed = {".gamma": ".weight", ".beta": ".bias"}
        self.w = {}
        for k, v in load_file(str(version_dir / "model.safetensors")).items():
            for old, new in renamed.items():
                if "LayerNorm" in k and k.endswith(old):
                    k = k[: -len(old)] + new
            self.w[k] = v.astype(np.float64)
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

    def hidden(self, ids, mask, token_types=None):
        """ids, mask (and BERT's token types): (L,) arrays for one sequence;
        returns (L, H) with masked keys excluded."""
        w, p = self.w, self.p
        x = w[f"{p}embeddings.word_embeddings.weight"][ids] + w[f"{p}embeddings.position_embeddings.weight"][: len(ids)]
        if self.family == "bert":
            types = np.zeros(len(ids), dtype=np.int64) if token_types is None else np.asarray(token_types)
            x = x + w[f"{p}embeddings.token_type_embeddings.weight"][types]
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

    def logits(self, ids, mask, token_types=None):
        """Sequence classification on the first token: DistilBERT's
        pre_classifier + ReLU, or BERT's pooler + tanh, then the classifier."""
        h = self.hidden(ids, mask, token_types)[0]
        w = self.w
        if self.family == "distilbert":
            pre = np.maximum(0, h @ w["pre_classifier.weight"].T + w["pre_classifier.bias"])
        else:
            pre = np.tanh(h @ w[f"{self.p}pooler.dense.weight"].T + w[f"{self.p}pooler.dense.bias"])
        return pre @ w["classifier.weight"].T + w["classifier.bias"]

    def mean_pooled(self, ids, mask):
        h = self.hidden(ids, mask)
        keep = np.asarray(mask) != 0
        return h[keep].mean(0)

    def embedding(self, ids, mask):
        mean = self.mean_pooled(ids, mask)
        return mean / np.linalg.norm(mean)

    def splade(self, ids, mask):
        """SPLADE: max over tokens of log(1 + ReLU(masked-LM logits)); the
        decoder is tied to the word embeddings where the checkpoint omits it."""
        w, p = self.w, self.p
        h = self.hidden(ids, mask)[np.asarray(mask) != 0]
        t = self.gelu(h @ w["cls.predictions.transform.dense.weight"].T + w["cls.predictions.transform.dense.bias"])
        t = self.layer_norm(t, w["cls.predictions.transform.LayerNorm.weight"], w["cls.predictions.transform.LayerNorm.bias"])
        decoder = w.get("cls.predictions.decoder.weight", w[f"{p}embeddings.word_embeddings.weight"])
        logits = t @ decoder.T + w["cls.predictions.bias"]
        return np.log1p(np.maximum(logits, 0)).max(0)
