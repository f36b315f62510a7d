"""text-embeddings-inference's gRPC API (tei.v1) on the server's gRPC port,
driven by a Python gRPC client generated in the test from Protos/tei/tei.proto
(Debian's protoc writes the messages; the stubs are built from the proto's
service descriptors): every unary method and the streaming variants, answers
equal to the HTTP routes' (and so to the reference), TEI's status codes, the
`model` metadata key, and KServe still answering on the same port."""

import importlib
import pathlib
import subprocess
import sys

import grpc
import numpy as np
import pytest
import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
QUERY = "How many people live in Berlin?"
PASSAGES = ["Berlin has a population of 3,520,031 registered inhabitants.", "Berlin is well known for its museums.",
            "The patient reports chest pain after exercise."]


class Stubs:
    """One stub per service of the proto, its methods made from the
    descriptors (unary or streaming each side), as grpc's generated stubs are."""

    def __init__(self, pb):
        self.pb = pb

    def __getattr__(self, name):
        service = self.pb.DESCRIPTOR.services_by_name[name.removesuffix("Stub")]
        pb = self.pb

        def stub(channel):
            methods = {}
            for method in service.methods:
                kind = {(False, False): channel.unary_unary, (True, True): channel.stream_stream,
                        (True, False): channel.stream_unary, (False, True): channel.unary_stream}
                make = kind[(method.client_streaming, method.server_streaming)]
                methods[method.name] = make(f"/{service.full_name}/{method.name}",
                                            request_serializer=getattr(pb, method.input_type.name).SerializeToString,
                                            response_deserializer=getattr(pb, method.output_type.name).FromString)
            return type(name, (), methods)()
        return stub


@pytest.fixture(scope="module")
def tei(tmp_path_factory):
    out = tmp_path_factory.mktemp("tei_stubs")
    proto = ROOT / "Protos" / "tei"
    subprocess.run(["protoc", f"-I{proto}", f"--python_out={out}", str(proto / "tei.proto")], check=True)
    sys.path.insert(0, str(out))
    try:
        pb = importlib.import_module("tei_pb2")
    finally:
        sys.path.remove(str(out))
    return pb, Stubs(pb)


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as c:
        yield c


def model(name):
    return (("model", name),)


def post(server, path, body):
    response = requests.post(f"{server.base}{path}", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def test_embed_sparse_all_and_their_streams_equal_the_http_routes(server, channel, tei):
    pb, stubs = tei
    embed = stubs.EmbedStub(channel)
    text = "chest pain after exercise"
    reply = embed.Embed(pb.EmbedRequest(inputs=text, truncate=True), metadata=model("minilm_embeddings"))
    want = post(server, "/embed", {"inputs": text, "model": "minilm_embeddings"})[0]
    assert np.max(np.abs(np.array(reply.embeddings) - want)) <= 1e-6
    assert reply.metadata.compute_tokens == 6 and reply.metadata.compute_chars == len(text) and reply.metadata.total_time_ns > 0
    raw = embed.Embed(pb.EmbedRequest(inputs=text, normalize=False), metadata=model("minilm_embeddings"))
    assert abs(np.linalg.norm(raw.embeddings) - 1) > 1e-2
    texts = [text, "pain in the chest", "the invoice was paid"]
    streamed = list(embed.EmbedStream((pb.EmbedRequest(inputs=t) for t in texts), metadata=model("minilm_embeddings")))
    wanted = post(server, "/embed", {"inputs": texts, "model": "minilm_embeddings"})
    assert len(streamed) == 3
    for got, expected in zip(streamed, wanted):   # in the order sent
        assert np.max(np.abs(np.array(got.embeddings) - expected)) <= 1e-6
    # SPLADE: the only sparse model answers without a name.
    sparse = embed.EmbedSparse(pb.EmbedSparseRequest(inputs=QUERY))
    want = post(server, "/embed_sparse", {"inputs": QUERY})[0]
    assert [(v.index, round(v.value, 5)) for v in sparse.sparse_embeddings] == [(v["index"], round(v["value"], 5)) for v in want]
    states = embed.EmbedAll(pb.EmbedAllRequest(inputs=text), metadata=model("minilm_embeddings"))
    want = post(server, "/embed_all", {"inputs": text, "model": "minilm_embeddings"})[0]
    assert np.max(np.abs(np.array([t.embeddings for t in states.token_embeddings]) - want)) <= 1e-6
    assert len(list(embed.EmbedAllStream(iter([pb.EmbedAllRequest(inputs=text)] * 2), metadata=model("minilm_embeddings")))) == 2


def test_predict_rerank_and_streams(server, channel, tei):
    pb, stubs = tei
    predict = stubs.PredictStub(channel)
    # The one classifier answers Predict without a name.
    reply = predict.Predict(pb.PredictRequest(inputs="a fine day"))
    want = post(server, "/predict", {"inputs": "a fine day"})
    assert [(p.label, round(p.score, 5)) for p in reply.predictions] == [(p["label"], round(p["score"], 5)) for p in want]
    pair = predict.PredictPair(pb.PredictPairRequest(inputs=[QUERY, PASSAGES[0]], raw_scores=True), metadata=model("minilm_reranker"))
    want = post(server, "/predict", {"inputs": [QUERY, PASSAGES[0]], "raw_scores": True, "model": "minilm_reranker"})
    assert abs(pair.predictions[0].score - want[0]["score"]) <= 1e-5
    streamed = list(predict.PredictPairStream((pb.PredictPairRequest(inputs=[QUERY, p]) for p in PASSAGES),
                                              metadata=model("minilm_reranker")))
    assert len(streamed) == 3
    rerank = stubs.RerankStub(channel)
    ranks = rerank.Rerank(pb.RerankRequest(query=QUERY, texts=PASSAGES, return_text=True))
    want = post(server, "/rerank", {"query": QUERY, "texts": PASSAGES, "return_text": True})
    assert [(r.index, r.text, round(r.score, 5)) for r in ranks.ranks] == [(r["index"], r["text"], round(r["score"], 5)) for r in want]
    for r, p in zip(sorted(ranks.ranks, key=lambda r: r.index), streamed):
        assert abs(r.score - p.predictions[0].score) <= 1e-5
    gathered = rerank.RerankStream(pb.RerankStreamRequest(query=QUERY, text=t) for t in PASSAGES)
    assert [(r.index, round(r.score, 5)) for r in gathered.ranks] == [(r.index, round(r.score, 5)) for r in ranks.ranks]
    assert all(not r.HasField("text") for r in gathered.ranks)


def test_tokenize_decode_and_info(server, channel, tei):
    pb, stubs = tei
    tokenize = stubs.TokenizeStub(channel)
    text = "Don't the patient's notes look fine?"
    tokens = tokenize.Tokenize(pb.EncodeRequest(inputs=text, add_special_tokens=True), metadata=model("minilm_embeddings"))
    want = post(server, "/tokenize", {"inputs": text, "model": "minilm_embeddings"})[0]
    assert [(t.id, t.text, t.special) for t in tokens.tokens] == [(t["id"], t["text"], t["special"]) for t in want]
    assert not tokens.tokens[0].HasField("start") and tokens.tokens[1].start == want[1]["start"]
    decoded = tokenize.Decode(pb.DecodeRequest(ids=[t.id for t in tokens.tokens], skip_special_tokens=True), metadata=model("minilm_embeddings"))
    assert decoded.text == post(server, "/decode", {"ids": [t.id for t in tokens.tokens], "model": "minilm_embeddings"})[0]
    assert len(list(tokenize.DecodeStream(iter([pb.DecodeRequest(ids=[101, 7592, 102])] * 3), metadata=model("minilm_embeddings")))) == 3
    info = stubs.InfoStub(channel).Info(pb.InfoRequest(), metadata=model("minilm_reranker"))
    assert info.model_id == "minilm_reranker" and info.model_type == pb.MODEL_TYPE_RERANKER and info.max_input_length == 512
    assert info.max_batch_requests == 32 and info.version


def test_status_codes_and_kserve_on_the_same_port(server, channel, tei):
    pb, stubs = tei
    embed = stubs.EmbedStub(channel)
    with pytest.raises(grpc.RpcError) as empty:
        embed.Embed(pb.EmbedRequest(inputs=""), metadata=model("minilm_embeddings"))
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as wrong:
        stubs.RerankStub(channel).Rerank(pb.RerankRequest(query="q", texts=["a"]), metadata=model("minilm_embeddings"))
    assert wrong.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "re-ranker" in wrong.value.details()
    with pytest.raises(grpc.RpcError) as unnamed:
        embed.Embed(pb.EmbedRequest(inputs="x"), metadata=model("no_such_model"))
    assert unnamed.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as long:
        embed.Embed(pb.EmbedRequest(inputs="word " * 600, truncate=False), metadata=model("minilm_embeddings"))
    assert long.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "word" not in long.value.details()
    # A failing message ends its stream with its status, as TEI's do.
    with pytest.raises(grpc.RpcError) as stream:
        list(embed.EmbedStream(iter([pb.EmbedRequest(inputs="ok"), pb.EmbedRequest(inputs="")]), metadata=model("minilm_embeddings")))
    assert stream.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    import tritonclient.grpc as grpcclient
    assert grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}").is_model_ready("minilm_reranker")
