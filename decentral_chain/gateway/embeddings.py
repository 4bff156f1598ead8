"""``POST /v1/embeddings``: one on-chain job per request, on a real embedding model.

The model (all-MiniLM-L6-v2, 384 dimensions; :mod:`.embedding_model`) runs in llama.cpp on
its own thread in the gateway, as an :class:`Embedder` holding a worker's key: the job names
its wallet, and it co-signs the settlement only for the vectors it computed (the same
consent as a chat worker). Inputs: a string, a list of strings, a list of token ids or a
list of those (this model's WordPiece ids, encoded as given); each within the model's 512
tokens — a longer one is a 400 naming ``input`` and the limit, never truncated. The price
is per 1,000 input tokens, the lock exactly that (the input is counted before it runs).

**The result hash** of an embeddings job is sha256 of the vectors as the response's
``base64`` form carries them: each embedding's float32 values, little-endian, concatenated
in index order (a client holding the float form packs each value as float32; the floats in
the JSON are exactly those float32 values). Vectors are L2-normalized (the model's Normalize
module), as OpenAI's are.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from solders.keypair import Keypair
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from decentral_chain.errors import WorkerError
from decentral_chain.gateway import errors as gw
from decentral_chain.gateway.consent import ConsentSigner, Produced
from decentral_chain.gateway.embedding_model import DIMENSIONS, MODEL_ID
from decentral_chain.gateway.lifecycle import lock_job, price_at, refund, settle

if TYPE_CHECKING:
    from decentral_chain.gateway.app import State

MAX_INPUTS = 2048


class Embedder:
    """llama.cpp in embedding mode on one dedicated thread, paid to ``keypair``'s wallet."""

    remote = False
    healthy = True
    capacity = 1

    def __init__(self, model_path: Path, keypair: Keypair, price_per_1k: int, *, n_ctx: int = 512, n_threads: int = 2):
        self.name = "embeddings"
        self.keypair = keypair
        self.wallet = keypair.pubkey()
        self.price = (price_per_1k, 0)  # per 1,000 input tokens; nothing is generated
        self.model_path = model_path
        self.n_ctx, self.n_threads = n_ctx, n_threads
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="embeddings")
        self.llama: Any = None
        self.n_vocab = 0

    def start(self) -> Embedder:
        def load() -> None:
            from llama_cpp import Llama

            self.llama = Llama(
                model_path=str(self.model_path),
                embedding=True,
                n_ctx=self.n_ctx,
                n_batch=self.n_ctx,
                n_ubatch=self.n_ctx,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                verbose=False,
            )
            self.n_vocab = self.llama.n_vocab()

        try:
            self._thread.submit(load).result(timeout=120)
        except Exception as exc:
            raise WorkerError(f"embeddings: cannot load {self.model_path}: {exc}") from exc
        return self

    @property
    def context_length(self) -> int:
        return self.n_ctx

    def tokenize(self, text: str) -> list[int]:
        return self.llama.tokenize(text.encode())

    def signer(self, job_uuid: str, produced: Produced, price: Any, program_id: Any) -> ConsentSigner:
        return ConsentSigner(self.keypair, produced, price, program_id)

    async def embed(self, token_lists: list[list[int]]) -> np.ndarray:
        return await asyncio.wrap_future(self._thread.submit(_embed, self.llama, token_lists))

    def close(self) -> None:
        self._thread.shutdown(wait=True)


def _embed(llama: Any, token_lists: list[list[int]]) -> np.ndarray:
    """Mean-pooled, L2-normalized vectors of token sequences, as many per llama.cpp batch as fit
    (llama-cpp-python's ``embed``, for token ids rather than text)."""
    import llama_cpp

    n_embd, n_batch = llama.n_embd(), llama.n_batch
    n_seq_max = llama.context_params.n_seq_max
    out: list[np.ndarray] = []

    def decode(sizes: int) -> None:
        llama._ctx.kv_cache_clear()
        llama._ctx.decode(llama._batch)
        llama._batch.reset()
        for i in range(sizes):
            ptr = llama_cpp.llama_get_embeddings_seq(llama._ctx.ctx, i)
            out.append(np.ctypeslib.as_array(ptr, shape=(n_embd,)).astype(np.float32, copy=True))

    llama._batch.reset()
    seqs = tokens_in_batch = 0
    for tokens in token_lists:
        if tokens_in_batch + len(tokens) > n_batch or seqs >= n_seq_max:
            decode(seqs)
            seqs = tokens_in_batch = 0
        llama._batch.add_sequence(tokens, seqs, True)
        seqs += 1
        tokens_in_batch += len(tokens)
    decode(seqs)
    llama._ctx.kv_cache_clear()
    llama.reset()
    vectors = np.stack(out)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def result_bytes(vectors: np.ndarray) -> bytes:
    """What an embeddings job's result hash covers: float32 little-endian, in index order."""
    return np.ascontiguousarray(vectors, dtype="<f4").tobytes()


def _inputs(body: dict[str, Any], embedder: Embedder) -> list[list[int]]:
    """The request's inputs as token sequences, or a 400 naming ``input``."""
    raw = body.get("input")
    if isinstance(raw, str) or (isinstance(raw, list) and raw and all(isinstance(t, int) for t in raw)):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise gw.InvalidRequest("input: a string, a list of strings, or token arrays is required", param="input")
    if len(raw) > MAX_INPUTS:
        raise gw.InvalidRequest(f"input: at most {MAX_INPUTS} inputs per request", param="input")
    out = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            if not item:
                raise gw.InvalidRequest(f"input[{i}]: an empty string cannot be embedded", param="input")
            tokens = embedder.tokenize(item)
        elif isinstance(item, list) and item and all(isinstance(t, int) and not isinstance(t, bool) for t in item):
            if any(not 0 <= t < embedder.n_vocab for t in item):
                top = embedder.n_vocab - 1
                raise gw.InvalidRequest(f"input[{i}]: token ids must be within 0..{top}", param="input")
            tokens = list(item)
        else:
            raise gw.InvalidRequest(f"input[{i}]: a non-empty string or a non-empty token array", param="input")
        if len(tokens) > embedder.context_length:
            raise gw.InvalidRequest(
                f"input[{i}] has {len(tokens)} tokens; this model takes at most {embedder.context_length}",
                param="input",
            )
        out.append(tokens)
    return out


def _check(body: Any, embedder: Embedder) -> tuple[str, list[list[int]]]:
    if not isinstance(body, dict):
        raise gw.InvalidRequest("The body must be a JSON object")
    if body.get("model") != MODEL_ID:
        raise gw.ModelNotFound(
            f"The embedding model `{body.get('model')}` does not exist; use `{MODEL_ID}`", param="model"
        )
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise gw.InvalidRequest("encoding_format: float or base64", param="encoding_format")
    dimensions = body.get("dimensions")
    if dimensions is not None and (type(dimensions) is not int or dimensions != DIMENSIONS):
        raise gw.InvalidRequest(
            f"dimensions: this model's embeddings have {DIMENSIONS} dimensions and cannot be shortened",
            param="dimensions",
        )
    user = body.get("user")
    if user is not None and (not isinstance(user, str) or len(user) > 256):
        raise gw.InvalidRequest("user: a string of at most 256 characters", param="user")
    return encoding, _inputs(body, embedder)


async def embeddings(request: Request) -> Response:
    """The route: with an Idempotency-Key, a retry gets the first answer (never a second job)."""
    from decentral_chain.gateway.routes import _client_wallet, recorded_request

    state: State = request.app.state.gateway
    client = _client_wallet(request, state)
    record, replay = await recorded_request(state, request, client)
    if replay is not None:
        return replay
    try:
        response = await _embeddings(request, state, client)
    except BaseException:
        if record is not None:
            state.tasks.forget(record.task_id)
        raise
    if record is not None:
        state.tasks.finish(record.task_id, "completed", 200, bytes(response.body), dict(response.headers))
    return response


async def _embeddings(request: Request, state: State, client: Any) -> JSONResponse:
    from decentral_chain.gateway.routes import cost_fields

    embedder = state.embedder
    if embedder is None:
        raise gw.ModelNotFound("This gateway serves no embedding model", param="model")
    credits_read = asyncio.create_task(state.credits.free(client))
    try:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise gw.InvalidRequest("Request body is not valid JSON") from None
        encoding, token_lists = _check(body, embedder)
    except BaseException:
        credits_read.cancel()
        raise
    tokens = sum(len(t) for t in token_lists)
    rates = embedder.price
    ceiling = max(1, price_at(*rates, tokens, 0))  # the input is counted: the lock is the price
    try:
        job, remaining = await lock_job(state, client, embedder, tokens, ceiling, credits_read, stream=False)
    except BaseException:
        credits_read.cancel()
        raise
    try:
        vectors = await asyncio.wait_for(embedder.embed(token_lists), timeout=state.settings.job_timeout)
    except Exception as exc:
        state.spawn(refund(state, job, f"embedding failed: {exc!r}"))
        error = "Embedding failed; the job's credits are refunded"
        raise gw.GatewayError(error, headers=job.headers(remaining)) from exc
    usage = job.usage(0)
    settlement, cost = await settle(state, job, result_bytes(vectors), usage, rates=rates)
    data = []
    for i, vector in enumerate(vectors):
        value: Any = base64.b64encode(result_bytes(vector)).decode() if encoding == "base64" else vector.tolist()
        data.append({"object": "embedding", "index": i, "embedding": value})
    result = {
        "object": "list",
        "data": data,
        "model": MODEL_ID,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens} | cost_fields(cost),
    }
    headers = job.headers(remaining + job.amount - cost) | {
        "x-decentral-settlement-tx": settlement,
        "x-decentral-cost": str(cost),
        "x-decentral-result-hash": hashlib.sha256(result_bytes(vectors)).hexdigest(),
    }
    return JSONResponse(result, headers=headers)
