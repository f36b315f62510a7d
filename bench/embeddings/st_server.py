"""sentence-transformers behind a FastAPI endpoint: the Python gateway a team
writes around the reference library. /embeddings (OpenAI's shape) and
/rerank (query, documents -> scores), one request at a time per call, as such
gateways do. Run with bench/.venv-embeddings' python:
    python st_server.py EMBEDDING_DIR RERANKER_DIR PORT
"""

import sys

import torch
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from sentence_transformers import CrossEncoder, SentenceTransformer

torch.set_num_threads(2)
embedder = SentenceTransformer(sys.argv[1], device="cpu")
reranker = CrossEncoder(sys.argv[2], device="cpu")
app = FastAPI()


class EmbeddingRequest(BaseModel):
    input: str | list[str]
    model: str = ""


class RerankRequest(BaseModel):
    query: str
    documents: list[str]
    model: str = ""


@app.post("/embeddings")
def embeddings(request: EmbeddingRequest):
    texts = [request.input] if isinstance(request.input, str) else request.input
    vectors = embedder.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    return {"object": "list", "data": [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]}


@app.post("/rerank")
def rerank(request: RerankRequest):
    scores = reranker.predict([(request.query, d) for d in request.documents])
    return {"results": [{"index": i, "relevance_score": float(s)} for i, s in enumerate(scores)]}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[3]), log_level="warning")
