"""Writes the fuzzers' seed corpora: valid and near-valid requests and configs
that take each parser down its main paths. Rerun after changing the formats:
    .venv/bin/python fuzz/make_corpus.py
"""
import hashlib
import json
import pathlib
import struct

from tritonclient.grpc import service_pb2

ROOT = pathlib.Path(__file__).resolve().parent
CORPUS = ROOT / "corpus"


def write(target, data):
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


def http_case(body_json, binary=b"", header=None):
    """Byte 0 even: no Inference-Header-Content-Length; odd: bytes 1-2 carry it."""
    text = json.dumps(body_json).encode()
    if header is None and not binary:
        return b"\x00" + text
    length = len(text) if header is None else header
    return b"\x01" + struct.pack(">H", length) + text + binary


def http_cases():
    f = {"name": "F", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 2.5, -3.0, 4.0]}
    i = {"name": "I", "shape": [2, 3], "datatype": "INT64", "data": [[1, 2, 3], [4, 5, 6]]}
    s = {"name": "S", "shape": [1, 2], "datatype": "BYTES", "data": ["note", "ü"]}
    b = {"name": "B", "shape": [1, 2, 2], "datatype": "BOOL", "data": [True, False, True, True]}
    yield http_case({"inputs": [f, dict(i, shape=[1, 3], data=[1, 2, 3])]})
    yield http_case({"id": "r1", "inputs": [f, dict(i, shape=[1, 3], data=[1, 2, 3]), s, b],
                     "outputs": [{"name": "F", "parameters": {"binary_data": True}}, {"name": "S"}],
                     "parameters": {"priority": 1, "timeout": 1000, "binary_data_output": False}})
    yield http_case({"inputs": [f, i]})
    yield http_case({"inputs": [dict(f, shape=[-1, 4])]})
    yield http_case({"inputs": [dict(f, shape=[9223372036854775807, 4])]})
    yield http_case({"inputs": [{"name": "F", "shape": [1, 4], "datatype": "FP32", "data": [[[[[[1]]]]]]}]})
    raw = struct.pack("<4f", 1, 2, 3, 4)
    yield http_case({"inputs": [{"name": "F", "shape": [1, 4], "datatype": "FP32",
                                 "parameters": {"binary_data_size": len(raw)}},
                                dict(i, shape=[1, 3], data=[1, 2, 3])],
                     "outputs": [{"name": "F", "parameters": {"classification": 2}}]}, binary=raw)
    elements = b"".join(struct.pack("<I", len(x)) + x for x in [b"a", b"bc"])
    yield http_case({"inputs": [dict(f), dict(i, shape=[1, 1], data=[7]),
                                {"name": "S", "shape": [1, 2], "datatype": "BYTES",
                                 "parameters": {"binary_data_size": len(elements)}}]}, binary=elements)
    yield b"\x01\x00\x00" + struct.pack("<4f", 1, 2, 3, 4)  # header length 0: raw body only
    yield http_case({"inputs": []}, header=2)


def grpc_frame(message):
    data = message.SerializeToString()
    return b"\x00" + struct.pack(">I", len(data)) + data


def grpc_cases():
    def tensor(name, datatype, shape):
        t = service_pb2.ModelInferRequest().InferInputTensor()
        t.name, t.datatype = name, datatype
        t.shape.extend(shape)
        return t

    r = service_pb2.ModelInferRequest(model_name="fuzz", id="1")
    t = tensor("F", "FP32", [1, 4]); t.contents.fp32_contents.extend([1, 2, 3, 4]); r.inputs.append(t)
    t = tensor("I", "INT64", [1, 2]); t.contents.int64_contents.extend([5, 6]); r.inputs.append(t)
    t = tensor("S", "BYTES", [1, 1]); t.contents.bytes_contents.append(b"x"); r.inputs.append(t)
    r.outputs.add(name="F").parameters["classification"].int64_param = 1
    r.parameters["priority"].uint64_param = 2
    r.parameters["timeout"].int64_param = 100
    yield b"\xff" + grpc_frame(r)
    yield b"\x03" + grpc_frame(r) + grpc_frame(r)

    raw = service_pb2.ModelInferRequest(model_name="fuzz")
    raw.inputs.append(tensor("F", "FP32", [2, 4]))
    raw.inputs.append(tensor("I", "INT64", [2, 1]))
    raw.raw_input_contents.extend([struct.pack("<8f", *range(8)), struct.pack("<2q", 1, 2)])
    yield b"\x10" + grpc_frame(raw)

    bad = service_pb2.ModelInferRequest(model_name="fuzz")
    bad.inputs.append(tensor("F", "FP32", [-1, 4]))
    bad.raw_input_contents.append(b"\x00" * 16)
    yield b"\x00" + grpc_frame(bad)
    yield b"\x07" + b"\x01\x00\x00\x00\x02ab"          # compressed flag
    yield b"\x07" + b"\x00\xff\xff\xff\xff"            # length over the limit


def config_cases():
    for path in sorted((ROOT.parent / "model_repository").glob("*/config.pbtxt")):
        yield path.read_bytes()
    yield b'name: "m"\nbackend: "identity"\nmax_batch_size: 4\ninput [{ name: "I" data_type: TYPE_FP32 dims: [-1] }]\n' \
          b'output [{ name: "O" data_type: TYPE_FP32 dims: [-1] }]\n' \
          b'dynamic_batching { preferred_batch_size: [2, 4] max_queue_delay_microseconds: 100 priority_levels: 2 ' \
          b'default_priority_level: 1 default_queue_policy { timeout_action: DELAY default_timeout_microseconds: 5 ' \
          b'max_queue_size: 3 } priority_queue_policy { key: 1 value { max_queue_size: 1 } } }\n' \
          b'instance_group [{ count: 2 kind: KIND_CPU }]\nparameters { key: "p" value: { string_value: "v" } }\n' \
          b'version_policy: { latest: { num_versions: 2 } }\n'
    yield b'name: "m" # comment\nbackend: "x"\ninput { name: "a" data_type: TYPE_STRING dims: 1 reshape: { shape: [] } }\n'
    yield b'name: "unterminated\n'
    yield b'input [{ dims: [1, 2, -3] }] output: [{ name: "\\x41\\101" }]'


if __name__ == "__main__":
    for case in http_cases():
        write("FuzzHTTPInferBody", case)
    for case in grpc_cases():
        write("FuzzGRPCInfer", case)
    for case in config_cases():
        write("FuzzModelConfig", case)
    for target in sorted(p.name for p in CORPUS.iterdir()):
        print(target, len(list((CORPUS / target).iterdir())))
