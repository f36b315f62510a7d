"""ONNX models for the end-to-end tests and benchmarks, written into a
Triton-layout model repository (<repo>/<name>/config.pbtxt, <repo>/<name>/1/model.onnx).

- write_simple: Triton's "simple" example as an ONNX graph
  (OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1, INT32 [batch, 16]).
- write_distilbert: the DistilBERT sequence classifier built from the same
  safetensors checkpoint as the transformer_encoder backend reads
  (model_repository/distilbert_sst2/1), with that backend's tensor names
  (INPUT_IDS, ATTENTION_MASK -> LOGITS); optionally int8 by
  onnxruntime.quantization.quantize_dynamic (QInt8 weights).
- write_string_identity: a STRING Identity (OUTPUT0 = INPUT0, [batch, 1]).
- build_distilbert_onnx: the graph builder itself (bench/encoder_vs_ort.py uses it).
- ort_run: the Python reference, onnxruntime on CPU.

`python Tests/e2e/onnx_models.py` writes all of them into a temporary
directory and checks them with onnxruntime against NumPy (the DistilBERT one
against Tests/e2e/encoder_reference.py).

onnx and onnxruntime are imported inside the functions, so importing this
module needs only NumPy.
"""

import json
import math
import pathlib
import tempfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
DISTILBERT_DIR = ROOT / "model_repository" / "distilbert_sst2" / "1"


def _config_text(name, backend, max_batch_size=None, inputs=(), outputs=(), dynamic_batching=False):
    """config.pbtxt text. inputs/outputs: (name, TYPE_..., dims) triples; with
    max_batch_size None only name and platform (or backend) are written."""
    lines = [f'name: "{name}"', 'backend: "onnxruntime"' if backend else 'platform: "onnxruntime_onnx"']
    if max_batch_size is not None:
        lines.append(f"max_batch_size: {max_batch_size}")
        for section, tensors in (("input", inputs), ("output", outputs)):
            entries = [f'  {{ name: "{n}" data_type: {t} dims: [ {", ".join(str(d) for d in dims)} ] }}' for n, t, dims in tensors]
            lines.append(f"{section} [\n" + ",\n".join(entries) + "\n]")
        if dynamic_batching:
            lines.append("dynamic_batching { }")
    return "\n".join(lines) + "\n"


def _model_dirs(repo_dir, name):
    model_dir = pathlib.Path(repo_dir) / name
    version_dir = model_dir / "1"
    version_dir.mkdir(parents=True, exist_ok=True)
    return model_dir, version_dir


def simple_model():
    """The ModelProto of Triton's simple example (opset 13, IR 8)."""
    from onnx import TensorProto, helper
    shape = ["batch", 16]
    graph = helper.make_graph(
        [helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]),
         helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"])],
        "simple",
        [helper.make_tensor_value_info(n, TensorProto.INT32, shape) for n in ("INPUT0", "INPUT1")],
        [helper.make_tensor_value_info(n, TensorProto.INT32, shape) for n in ("OUTPUT0", "OUTPUT1")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="batchserver-tests")
    model.ir_version = 8
    return model


def write_simple(repo_dir, name="simple_onnx", full_config=True, backend=False):
    """Writes <repo_dir>/<name>/1/model.onnx and config.pbtxt; returns the model directory.
    full_config: Triton's simple config (max_batch_size 8, INT32 dims [16]);
    otherwise name and platform only. backend: `backend: "onnxruntime"` in
    place of `platform: "onnxruntime_onnx"`."""
    import onnx
    model_dir, version_dir = _model_dirs(repo_dir, name)
    model = simple_model()
    onnx.checker.check_model(model)
    onnx.save(model, str(version_dir / "model.onnx"))
    if full_config:
        text = _config_text(name, backend, 8,
                            [("INPUT0", "TYPE_INT32", [16]), ("INPUT1", "TYPE_INT32", [16])],
                            [("OUTPUT0", "TYPE_INT32", [16]), ("OUTPUT1", "TYPE_INT32", [16])])
    else:
        text = _config_text(name, backend)
    (model_dir / "config.pbtxt").write_text(text)
    return model_dir


def write_string_identity(repo_dir, name="string_onnx", full_config=True):
    """Writes <repo_dir>/<name>/1/model.onnx, an Identity on a STRING tensor
    (INPUT0 -> OUTPUT0, [batch, 1]), and config.pbtxt (max_batch_size 8,
    TYPE_STRING dims [1]; otherwise name and platform only); returns the model directory."""
    import onnx
    from onnx import TensorProto, helper
    model_dir, version_dir = _model_dirs(repo_dir, name)
    shape = ["batch", 1]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["INPUT0"], ["OUTPUT0"])], "string_identity",
        [helper.make_tensor_value_info("INPUT0", TensorProto.STRING, shape)],
        [helper.make_tensor_value_info("OUTPUT0", TensorProto.STRING, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="batchserver-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(version_dir / "model.onnx"))
    if full_config:
        text = _config_text(name, False, 8, [("INPUT0", "TYPE_STRING", [1])], [("OUTPUT0", "TYPE_STRING", [1])])
    else:
        text = _config_text(name, False)
    (model_dir / "config.pbtxt").write_text(text)
    return model_dir


def _checkpoint(safetensors_dir):
    from safetensors.numpy import load_file
    directory = pathlib.Path(safetensors_dir)
    if directory.is_file():
        directory = directory.parent
    weights = load_file(str(directory / "model.safetensors"))
    config = json.loads((directory / "config.json").read_text())
    return weights, config


def distilbert_model(safetensors_dir, input_names=("INPUT_IDS", "ATTENTION_MASK"), output_name="LOGITS"):
    """The DistilBERT sequence classifier as an ONNX ModelProto (opset 17, IR 8),
    weights from <safetensors_dir>/model.safetensors and config.json. Inputs
    INT64 [batch, sequence] (token ids; attention mask, 0 = padding), output
    FP32 [batch, num_labels]: the logits of the [CLS] row."""
    from onnx import TensorProto, helper, numpy_helper

    w, config = _checkpoint(safetensors_dir)
    hidden, heads, layers = config["dim"], config["n_heads"], config["n_layers"]
    d = hidden // heads
    nodes, inits = [], []
    counter = [0]

    def init(name, array):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(op, inputs, **attrs):
        counter[0] += 1
        out = f"t{counter[0]}"
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def linear(x, prefix):
        return node("Add", [node("MatMul", [x, init(prefix + ".wT", w[prefix + ".weight"].T)]), init(prefix + ".b", w[prefix + ".bias"])])

    def layer_norm(x, prefix):
        return node("LayerNormalization", [x, init(prefix + ".g", w[prefix + ".weight"]), init(prefix + ".bb", w[prefix + ".bias"])],
                    axis=-1, epsilon=1e-12)

    ids_name, mask_name = input_names
    p = "distilbert." if "distilbert.embeddings.word_embeddings.weight" in w else ""
    labels = w["classifier.weight"].shape[0]
    words = node("Gather", [init("word", w[p + "embeddings.word_embeddings.weight"]), ids_name])
    length = node("Shape", [ids_name], start=1, end=2)  # [L], 1-D
    positions = node("Slice", [init("pos", w[p + "embeddings.position_embeddings.weight"]), init("p0", np.array([0], np.int64)),
                               length, init("pax", np.array([0], np.int64))])
    x = node("Add", [words, positions])
    x = layer_norm(x, p + "embeddings.LayerNorm")
    mask = node("Cast", [mask_name], to=TensorProto.FLOAT)
    bias = node("Mul", [node("Sub", [init("onef", np.array(1, np.float32)), mask]), init("neg", np.array(-1e9, np.float32))])
    bias = node("Unsqueeze", [bias, init("axes12", np.array([1, 2], np.int64))])
    split_shape = init("split", np.array([0, 0, heads, d], np.int64))
    merge_shape = init("merge", np.array([0, 0, hidden], np.int64))
    scale = init("scale", np.array(1 / math.sqrt(d), np.float32))
    for i in range(layers):
        l = f"{p}transformer.layer.{i}."
        q = node("Transpose", [node("Reshape", [linear(x, l + "attention.q_lin"), split_shape])], perm=[0, 2, 1, 3])
        k = node("Transpose", [node("Reshape", [linear(x, l + "attention.k_lin"), split_shape])], perm=[0, 2, 3, 1])
        v = node("Transpose", [node("Reshape", [linear(x, l + "attention.v_lin"), split_shape])], perm=[0, 2, 1, 3])
        scores = node("Add", [node("Mul", [node("MatMul", [q, k]), scale]), bias])
        context = node("MatMul", [node("Softmax", [scores], axis=-1), v])
        context = node("Reshape", [node("Transpose", [context], perm=[0, 2, 1, 3]), merge_shape])
        x = layer_norm(node("Add", [x, linear(context, l + "attention.out_lin")]), l + "sa_layer_norm")
        h = linear(x, l + "ffn.lin1")
        gelu = node("Mul", [node("Mul", [h, init(f"half{i}", np.array(0.5, np.float32))]),
                            node("Add", [init(f"onep{i}", np.array(1, np.float32)),
                                         node("Erf", [node("Mul", [h, init(f"rs2{i}", np.array(1 / math.sqrt(2), np.float32))])])])])
        x = layer_norm(node("Add", [x, linear(gelu, l + "ffn.lin2")]), l + "output_layer_norm")
    cls = node("Squeeze", [node("Slice", [x, init("s0", np.array([0], np.int64)), init("s1", np.array([1], np.int64)),
                                          init("sax", np.array([1], np.int64))]), init("sq", np.array([1], np.int64))])
    pre = node("Relu", [linear(cls, "pre_classifier")])
    linear(pre, "classifier")
    nodes[-1].output[0] = output_name
    graph = helper.make_graph(
        nodes, "distilbert",
        [helper.make_tensor_value_info(ids_name, TensorProto.INT64, ["batch", "sequence"]),
         helper.make_tensor_value_info(mask_name, TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["batch", labels])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="batchserver-tests")
    model.ir_version = 8  # what older ONNX Runtime versions read for opset 17
    return model


def build_distilbert_onnx(safetensors_dir, path, input_names=("INPUT_IDS", "ATTENTION_MASK"), output_name="LOGITS",
                          external_data=False):
    """Writes distilbert_model(...) to path; external_data puts the weights in
    <path>.data next to it (one file otherwise: ~270 MB, under protobuf's 2 GB)."""
    import onnx
    path = pathlib.Path(path)
    model = distilbert_model(safetensors_dir, input_names, output_name)
    if external_data:
        onnx.save(model, str(path), save_as_external_data=True, location=path.name + ".data")
    else:
        onnx.save(model, str(path))
    return path


def write_distilbert(repo_dir, name, safetensors_dir=DISTILBERT_DIR, full_config=True, int8=False, backend=False):
    """Writes <repo_dir>/<name>/1/model.onnx (fp32, or int8 by quantize_dynamic
    with QInt8 weights) and config.pbtxt; returns the model directory.
    full_config: max_batch_size 8, INPUT_IDS/ATTENTION_MASK INT64 dims [-1],
    LOGITS FP32 dims [num_labels], dynamic_batching; otherwise name and
    platform only. backend: `backend: "onnxruntime"` in place of the platform."""
    model_dir, version_dir = _model_dirs(repo_dir, name)
    target = version_dir / "model.onnx"
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic
        with tempfile.TemporaryDirectory() as work:
            fp32 = build_distilbert_onnx(safetensors_dir, pathlib.Path(work) / "fp32.onnx")
            quantize_dynamic(str(fp32), str(target), weight_type=QuantType.QInt8)
    else:
        build_distilbert_onnx(safetensors_dir, target)
    if full_config:
        labels = _checkpoint(safetensors_dir)[0]["classifier.weight"].shape[0]
        text = _config_text(name, backend, 8,
                            [("INPUT_IDS", "TYPE_INT64", [-1]), ("ATTENTION_MASK", "TYPE_INT64", [-1])],
                            [("LOGITS", "TYPE_FP32", [labels])], dynamic_batching=True)
    else:
        text = _config_text(name, backend)
    (model_dir / "config.pbtxt").write_text(text)
    return model_dir


def ort_run(model_path, feeds):
    """Runs the model in onnxruntime on CPU; returns {output name: array}."""
    import onnxruntime as ort
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def _check():
    import subprocess
    import sys
    import time

    if not (DISTILBERT_DIR / "model.safetensors").exists():
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_models.py")], check=True)
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    from encoder_reference import Encoder

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as repo:
        repo = pathlib.Path(repo)
        write_simple(repo, "simple_onnx")
        write_simple(repo, "simple_onnx_auto", full_config=False)
        a = rng.integers(-1000, 1000, (3, 16), dtype=np.int32)
        b = rng.integers(-1000, 1000, (3, 16), dtype=np.int32)
        for name in ("simple_onnx", "simple_onnx_auto"):
            out = ort_run(repo / name / "1" / "model.onnx", {"INPUT0": a, "INPUT1": b})
            assert out["OUTPUT0"].dtype == np.int32 and np.array_equal(out["OUTPUT0"], a + b), name
            assert np.array_equal(out["OUTPUT1"], a - b), name
        print("simple: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1 exactly (batch 3)")
        print((repo / "simple_onnx" / "config.pbtxt").read_text())

        start = time.perf_counter()
        write_distilbert(repo, "distilbert_onnx", DISTILBERT_DIR)
        built = time.perf_counter() - start
        start = time.perf_counter()
        write_distilbert(repo, "distilbert_onnx_int8", DISTILBERT_DIR, full_config=False, int8=True)
        quantized = time.perf_counter() - start
        print(f"distilbert fp32 ONNX written in {built:.1f} s, int8 (build + quantize) in {quantized:.1f} s")
        print((repo / "distilbert_onnx" / "config.pbtxt").read_text())
        print((repo / "distilbert_onnx_int8" / "config.pbtxt").read_text())

        lengths = [12, 7]
        ids = np.zeros((2, max(lengths)), np.int64)
        mask = np.zeros_like(ids)
        for i, n in enumerate(lengths):
            ids[i, :n] = rng.integers(1000, 30000, n)
            ids[i, 0] = 101  # [CLS]
            mask[i, :n] = 1
        feeds = {"INPUT_IDS": ids, "ATTENTION_MASK": mask}
        fp32 = ort_run(repo / "distilbert_onnx" / "1" / "model.onnx", feeds)["LOGITS"]
        reference = Encoder(DISTILBERT_DIR)
        expected = np.stack([reference.logits(ids[i], mask[i]) for i in range(len(lengths))])
        diff = float(np.max(np.abs(fp32 - expected)))
        print(f"distilbert fp32 logits {fp32.tolist()}\n  reference {expected.tolist()}\n  max abs diff {diff:.3g}")
        assert fp32.shape == (2, 2) and fp32.dtype == np.float32
        assert diff < 1e-4, diff
        alone = ort_run(repo / "distilbert_onnx" / "1" / "model.onnx",
                        {"INPUT_IDS": ids[1:, :lengths[1]], "ATTENTION_MASK": mask[1:, :lengths[1]]})["LOGITS"]
        padding_diff = float(np.max(np.abs(alone[0] - fp32[1])))
        print(f"  padded row against the same row unpadded: max abs diff {padding_diff:.3g}")
        assert padding_diff < 1e-5, padding_diff
        int8 = ort_run(repo / "distilbert_onnx_int8" / "1" / "model.onnx", feeds)["LOGITS"]
        int8_diff = float(np.max(np.abs(int8 - fp32)))
        print(f"distilbert int8 logits {int8.tolist()}; max abs diff to fp32 {int8_diff:.3g}")
        assert int8.shape == (2, 2) and np.all(np.isfinite(int8))
    print("ok")


if __name__ == "__main__":
    _check()
