#!/usr/bin/env python3
"""Input sets for perf_analyzer's `--input-data` (JSON), deterministic (seeded).

Each entry is one batch-1 request: INPUT_IDS and ATTENTION_MASK, INT64 [L],
ids drawn from the vocabulary's word range with [CLS] (101) first and [SEP]
(102) last, as a tokenizer would produce them. perf_analyzer walks the entries
in order, one per request, and wraps around.

- fixed128: every request 128 tokens.
- mixed:    lengths uniform in 8..128 (inclusive).
- padded128: the mixed requests, padded on the client to 128 as a
  fixed-shape ("Triton way") deployment requires. BatchServer's engine drops
  masked tokens, so to charge the server what a fixed-shape [B, 128] forward
  costs, padding positions carry id 0 ([PAD]) with mask 1 by default
  (`padding_mask=1`); `padding_mask=0` sends the usual mask of zeros.

    python bench/serving/inputs.py OUT_DIR [--count 256] [--seed 0]
"""

import argparse
import json
import pathlib

import numpy as np

CLS, SEP, PAD = 101, 102, 0


def sequence(rng, length):
    ids = rng.integers(1000, 30000, length, dtype=np.int64)
    ids[0], ids[-1] = CLS, SEP
    return ids


def entry(ids, mask):
    return {"INPUT_IDS": {"content": [int(x) for x in ids], "shape": [len(ids)]},
            "ATTENTION_MASK": {"content": [int(x) for x in mask], "shape": [len(mask)]}}


def lengths(name, count, seed):
    if name == "fixed128":
        return [128] * count
    rng = np.random.default_rng(seed + 1)
    return [int(n) for n in rng.integers(8, 129, count)]


def make_sets(out, count=256, seed=0, padding_mask=1):
    """Writes fixed128.json, mixed.json and padded128.json into `out`; returns
    {name: (path, lengths)} where lengths are the real token counts."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sets = {}
    for name in ("fixed128", "mixed"):
        rng = np.random.default_rng(seed)
        real = lengths(name, count, seed)
        entries = []
        padded = []
        for n in real:
            ids = sequence(rng, n)
            entries.append(entry(ids, np.ones(n, np.int64)))
            if name == "mixed":
                pad = 128 - n
                padded.append(entry(np.concatenate([ids, np.full(pad, PAD, np.int64)]),
                                    np.concatenate([np.ones(n, np.int64), np.full(pad, padding_mask, np.int64)])))
        path = out / f"{name}.json"
        path.write_text(json.dumps({"data": entries}))
        sets[name] = (path, real)
        if name == "mixed":
            path = out / "padded128.json"
            path.write_text(json.dumps({"data": padded}))
            sets["padded128"] = (path, real)
    return sets


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--count", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--padding-mask", type=int, choices=[0, 1], default=1)
    args = parser.parse_args()
    for name, (path, real) in make_sets(args.out, args.count, args.seed, args.padding_mask).items():
        print(f"{name}: {path} ({len(real)} requests, mean length {np.mean(real):.1f})")


if __name__ == "__main__":
    main()
