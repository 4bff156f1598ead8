"""``decentral worker``: a GPU worker as its own process, paid only with its own signature.

It serves one gateway (requests signed by that gateway's key, see :mod:`.protocol`):

- ``POST /v1/chat/completions`` runs the job on its engine, records what it produced
  (:mod:`.ledger`), and — while the model runs — looks on chain for the lock that names
  this worker for the job. Without that lock (within ``lock_wait``) the result is withheld:
  a worker never hands out unpaid work.
- ``POST /v1/consent`` co-signs a ``settle_job`` only if it pays this worker, for the
  lifecycle locked on chain, with the hash of (a prefix of) the text this worker produced,
  that prefix's tokens at most, the worker's own prompt count, and the worker's published
  price for those tokens (:class:`~decentral_chain.gateway.consent.ConsentSigner`).
- With its result it offers that settlement already signed, for the whole output, over the
  blockhash the gateway sent (``decentral.blockhash``): the same checks as a consent, and
  the gateway, if it agrees byte for byte, settles without a second round trip.
- ``GET /health``, ``GET /v1/models`` (wallet, price, context, slots) and ``GET /metrics``
  are public: they are what a gateway routes by and an operator watches.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from decentral_chain import pda
from decentral_chain.accounts import Job
from decentral_chain.client import EscrowClient
from decentral_chain.errors import ConsentRefused, DecentralError, DecodeError
from decentral_chain.gateway.consent import ConsentSigner, Produced, Terms, settlement_instruction, settlement_terms
from decentral_chain.gateway.lifecycle import price_at
from decentral_chain.gateway.metrics import CONTENT_TYPE, Metrics
from decentral_chain.localnet.spl import create_associated_token_account
from decentral_chain.rpc import PROCESSED
from decentral_chain.worker.ledger import Ledger, Output
from decentral_chain.worker.protocol import MAX_CHOICES, RequestRefused, RequestVerifier, model_list, result_text

logger = logging.getLogger(__name__)
#: what a worker passes on to its engine (anything else in the body is not the engine's business)
ENGINE_PARAMS = (
    "messages",
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "frequency_penalty",
    "presence_penalty",
    "seed",
    "response_format",
    "n",
    "logprobs",
    "top_logprobs",
)


FIRST_LOOK_S = 0.01  # when a job's lock is first looked for, after its inference started


@dataclass
class WorkerSettings:
    keypair: Keypair
    gateway: Pubkey
    model_name: str
    rpc_url: str
    program_id: Pubkey
    price_per_1k: tuple[int, int]
    parallel: int
    ledger_db: Path
    lock_wait: float = 10.0


class WorkerState:
    def __init__(self, settings: WorkerSettings, engine: Any, escrow: EscrowClient) -> None:
        self.settings = settings
        self.engine = engine
        self.escrow = escrow
        self.wallet = settings.keypair.pubkey()
        self.verifier = RequestVerifier(settings.gateway)
        self.ledger = Ledger(settings.ledger_db)
        self.busy = 0
        self.metrics = m = Metrics()
        m.counter("llamacpp:prompt_tokens_total", "Number of prompt tokens processed.")
        m.counter("llamacpp:tokens_predicted_total", "Number of generation tokens processed.")
        m.counter("llamacpp:tokens_predicted_seconds_total", "Predict process time")
        m.gauge("llamacpp:requests_processing", "Number of requests processing.", lambda: self.busy)
        m.gauge("llamacpp:requests_deferred", "Number of requests deferred.", lambda: 0)
        m.gauge("decentral:slots_total", "Slots (parallel jobs) of this worker.", lambda: settings.parallel)
        m.counter("decentral:jobs_total", "Jobs run, by outcome (completed, failed, unpaid).")
        m.counter("decentral:consents_total", "Settlement signatures asked for, by outcome (signed, refused).")
        m.histogram("decentral:consent_latency_seconds", "From the end of a job to its settlement signature.")

    def price(self, prompt_tokens: int, completion_tokens: int) -> int:
        return price_at(*self.settings.price_per_1k, prompt_tokens, completion_tokens)


def _state(request: Request) -> WorkerState:
    return request.app.state.worker


def _error(status: int, message: str, code: str) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}}, status_code=status)


async def _authenticated(request: Request, state: WorkerState) -> dict[str, Any]:
    body = await request.body()
    state.verifier.verify(request.method, request.url.path, body, request.headers)
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DecodeError("the body is not JSON") from None
    if not isinstance(data, dict):
        raise DecodeError("the body is not a JSON object")
    return data


def _job_id(data: dict[str, Any]) -> str:
    try:
        return str(uuid.UUID(str(data["job_id"])))
    except (KeyError, ValueError, TypeError):
        raise DecodeError("job_id: not a job id (a UUID)") from None


async def _watch_lock(state: WorkerState, job_uuid: str) -> Job | None:
    """The Job that locks credits for this job and names this worker, once it is processed."""
    job_id = uuid.UUID(job_uuid).bytes
    deadline = time.monotonic() + state.settings.lock_wait
    # first let the model start: its thread needs the GIL for its own Python first, and a
    # JSON-RPC call here would hold it (up to a 5 ms switch interval) at exactly that moment
    await asyncio.sleep(FIRST_LOOK_S)
    while True:
        try:
            job = await state.escrow.get_job(job_id, commitment=PROCESSED)
        except DecentralError as exc:
            logger.warning("cannot read the lock of %s: %s", job_uuid, exc)
            job = None
        if job is not None:
            return job if job.worker == state.wallet else None
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(0.02)


async def chat_completions(request: Request) -> Response:
    state = _state(request)
    try:
        data = await _authenticated(request, state)
        extra = data.get("decentral") if isinstance(data.get("decentral"), dict) else {}
        job_uuid = _job_id(extra)
    except RequestRefused as exc:
        return _error(401, str(exc), "not_your_gateway")
    except DecodeError as exc:
        return _error(400, str(exc), "invalid_request")
    try:
        blockhash = Hash.from_string(str(extra["blockhash"])) if extra.get("blockhash") else None
    except ValueError:
        return _error(400, "decentral.blockhash: not a blockhash", "invalid_request")
    kwargs = {k: data[k] for k in ENGINE_PARAMS if k in data}
    if not isinstance(kwargs.get("messages"), list):
        return _error(400, "messages: a list is required", "invalid_request")
    n = kwargs.get("n", 1)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_CHOICES or (n > 1 and data.get("stream")):
        return _error(400, f"n: 1 to {MAX_CHOICES}, and 1 when streamed", "invalid_request")
    if state.busy >= state.settings.parallel:
        return _error(503, "every slot of this worker is busy", "no_slot_free")
    output = state.ledger.start(job_uuid, None)
    if output is None:
        return _error(409, f"job {job_uuid} was already run by this worker", "job_already_run")
    lock = asyncio.create_task(_watch_lock(state, job_uuid))
    state.busy += 1
    if data.get("stream"):
        return await _stream(state, output, lock, kwargs, blockhash)
    try:
        result, inference_s = await state.engine.complete(kwargs)
        content = result_text([c["message"].get("content") or "" for c in result["choices"]])
        usage = result.get("usage") or {}
        _count_prompt(state, output, kwargs, usage)
        output.add(content, int(usage.get("completion_tokens", 0)))
    except (DecentralError, KeyError, IndexError, TypeError, ValueError) as exc:
        lock.cancel()
        state.metrics.inc("decentral:jobs_total", outcome="failed")
        return _error(502, f"inference failed: {exc}", "inference_failed")
    finally:
        state.busy -= 1
        state.ledger.finish(output)
    output.lock = await lock
    if output.lock is None:
        state.metrics.inc("decentral:jobs_total", outcome="unpaid")
        return _error(402, f"no lock on chain pays this worker for job {job_uuid}; the result is withheld", "unpaid")
    _count(state, output, inference_s)
    result["usage"] = _usage(output)
    offer = await _offer(state, output, blockhash)
    if offer is not None:
        result["decentral"] = {"settlement": offer}
    return JSONResponse(result, headers={"server-timing": f"inference;dur={inference_s * 1000:.2f}"})


def _count_prompt(state: WorkerState, output: Output, kwargs: dict[str, Any], usage: dict[str, Any]) -> None:
    """The worker's own count of the prompt: its engine's (llama.cpp counts it as it runs),
    else its tokenizer's, counted once the model is done (Python work beside a running
    llama.cpp thread would slow it down through the GIL). None if neither can say."""
    if isinstance(usage.get("prompt_tokens"), int):
        output.prompt_tokens = usage["prompt_tokens"]
        return
    try:
        output.prompt_tokens = state.engine.prompt_tokens(kwargs["messages"])
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        logger.warning("cannot count the prompt of %s: %s", output.job_id, exc)


def _usage(output: Output) -> dict[str, int | None]:
    prompt = output.prompt_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": output.tokens,
        "total_tokens": None if prompt is None else prompt + output.tokens,
    }


def _count(state: WorkerState, output: Output, seconds: float) -> None:
    state.metrics.inc("decentral:jobs_total", outcome="completed")
    state.metrics.inc("llamacpp:prompt_tokens_total", output.prompt_tokens or 0)
    state.metrics.inc("llamacpp:tokens_predicted_total", output.tokens)
    state.metrics.inc("llamacpp:tokens_predicted_seconds_total", seconds)


async def _stream(
    state: WorkerState, output: Output, lock: asyncio.Task, kwargs: dict[str, Any], blockhash: Hash | None
) -> Response:
    start = time.perf_counter()
    chunks = state.engine.stream(kwargs)
    try:
        first = await anext(chunks)  # errors before the first chunk keep a status code
    except (DecentralError, StopAsyncIteration, ValueError) as exc:
        lock.cancel()
        state.busy -= 1
        state.ledger.finish(output)
        state.metrics.inc("decentral:jobs_total", outcome="failed")
        return _error(502, f"inference failed: {exc}", "inference_failed")

    async def events() -> AsyncIterator[bytes]:
        usage: dict[str, Any] | None = None
        try:
            chunk: dict[str, Any] | None = first
            while chunk is not None:
                if chunk.get("usage"):
                    usage = chunk["usage"]
                if chunk.get("choices"):
                    delta = chunk["choices"][0].get("delta", {}).get("content")
                    if delta:
                        output.add(delta, 1)  # llama.cpp streams one token per chunk
                    chunk.pop("usage", None)
                    yield f"data: {json.dumps(chunk)}\n\n".encode()
                chunk = await anext(chunks, None)
            _count_prompt(state, output, kwargs, usage or {})
            output.lock = await lock
            if output.lock is None:
                state.metrics.inc("decentral:jobs_total", outcome="unpaid")
                error = {"message": "no lock on chain pays this worker for this job", "type": "server_error"}
                yield f"data: {json.dumps({'error': error | {'code': 'unpaid'}})}\n\n".encode()
                return
            _count(state, output, time.perf_counter() - start)
            closing: dict[str, Any] = {"object": "chat.completion.chunk", "choices": [], "usage": _usage(output)}
            offer = await _offer(state, output, blockhash)
            if offer is not None:
                closing["decentral"] = {"settlement": offer}
            yield f"data: {json.dumps(closing)}\n\n".encode()
            yield b"data: [DONE]\n\n"
        except DecentralError as exc:
            state.metrics.inc("decentral:jobs_total", outcome="failed")
            error = {"message": f"inference failed: {exc}", "type": "server_error", "code": "inference_failed"}
            yield f"data: {json.dumps({'error': error})}\n\n".encode()
        finally:  # bookkeeping first: the await below may be cancelled with the request
            lock.cancel()
            state.busy -= 1
            if output.prompt_tokens is None:  # cut short: its part may still be settled
                _count_prompt(state, output, kwargs, usage or {})
            state.ledger.finish(output)
            await chunks.aclose()

    return StreamingResponse(events(), media_type="text/event-stream")


async def consent(request: Request) -> Response:
    state = _state(request)
    started = time.perf_counter()
    try:
        data = await _authenticated(request, state)
        job_uuid = _job_id(data)
        message = base64.b64decode(str(data.get("message", "")), validate=True)
    except RequestRefused as exc:
        return _error(401, str(exc), "not_your_gateway")
    except (DecodeError, ValueError) as exc:
        return _error(400, str(exc), "invalid_request")
    try:
        signature = await _sign(state, job_uuid, message)
    except (ConsentRefused, DecodeError) as exc:
        state.metrics.inc("decentral:consents_total", outcome="refused")
        logger.warning("refused to sign the settlement of %s: %s", job_uuid, exc)
        return _error(409, str(exc), "consent_refused")
    state.metrics.inc("decentral:consents_total", outcome="signed")
    state.metrics.observe("decentral:consent_latency_seconds", time.perf_counter() - started)
    return JSONResponse({"signature": str(signature)})


async def _sign(state: WorkerState, job_uuid: str, message: bytes):
    output = state.ledger.get(job_uuid)
    if output is None:
        raise ConsentRefused(f"this worker did not run job {job_uuid}")
    if output.prompt_tokens is None:
        raise ConsentRefused("this worker has no prompt count of its own for the job (give it --model)")
    terms = settlement_terms(message, state.escrow.program_id)
    tokens = output.prefix(terms.result_hash)
    if tokens is None:
        raise ConsentRefused("a result hash that is not of any text this worker produced for the job")
    job_id = uuid.UUID(job_uuid).bytes
    onchain = output.lock  # the lock this worker saw while it worked (after a restart: read again)
    if onchain is None:
        try:
            onchain = await state.escrow.get_job(job_id, commitment=PROCESSED)
        except DecentralError as exc:
            raise ConsentRefused(f"cannot read the job's lock on chain: {exc}") from exc
    if onchain is None or onchain.worker != state.wallet:
        raise ConsentRefused(f"no lock on chain pays this worker for job {job_uuid}")
    produced = Produced(
        pda.job_address(job_id, state.escrow.program_id),
        onchain.nonce,
        terms.result_hash,
        output.prompt_tokens,
        tokens,
        onchain.amount,
    )
    return ConsentSigner(state.settings.keypair, produced, state.price, state.escrow.program_id).sign_message(message)


async def _offer(state: WorkerState, output: Output, blockhash: Hash | None) -> dict[str, str] | None:
    """The settlement of the whole output, signed now over the gateway's blockhash (the very
    message the gateway builds for it: same accounts, same terms), or None."""
    job = output.lock
    if blockhash is None or job is None or output.prompt_tokens is None:
        return None
    cost = min(job.amount, state.price(output.prompt_tokens, output.tokens))
    result_hash = hashlib.sha256(output.text.encode()).digest()
    ix = settlement_instruction(
        gateway=state.settings.gateway,
        client=job.client,
        job_id=job.job_id,
        worker=state.wallet,
        config=await state.escrow.cached_config(),
        cost=cost,
        result_hash=result_hash,
        prompt_tokens=output.prompt_tokens,
        completion_tokens=output.tokens,
        nonce=job.nonce,
        program_id=state.escrow.program_id,
    )
    message = bytes(Message.new_with_blockhash([ix], state.settings.gateway, blockhash))
    job_address = pda.job_address(job.job_id, state.escrow.program_id)
    produced = Produced(job_address, job.nonce, result_hash, output.prompt_tokens, output.tokens, job.amount)
    terms = Terms(state.wallet, produced.job, job.nonce, result_hash, output.prompt_tokens, output.tokens, cost)
    try:  # the consent's own checks, on the terms it was just built from
        ConsentSigner(state.settings.keypair, produced, state.price, state.escrow.program_id).check(terms)
    except ConsentRefused as exc:  # not expected: the gateway asks again
        logger.warning("no settlement offered for %s: %s", output.job_id, exc)
        return None
    signature = state.settings.keypair.sign_message(message)
    state.metrics.inc("decentral:consents_total", outcome="offered")
    return {"message": base64.b64encode(message).decode(), "signature": str(signature)}


async def health(request: Request) -> Response:
    state = _state(request)
    idle = max(0, state.settings.parallel - state.busy)
    return JSONResponse(
        {"status": "ok", "wallet": str(state.wallet), "slots_idle": idle, "slots_processing": state.busy}
    )


async def models(request: Request) -> Response:
    state = _state(request)
    s = state.settings
    info = {
        "wallet": str(state.wallet),
        "gateway": str(s.gateway),
        "price_per_1k_prompt_tokens": s.price_per_1k[0],
        "price_per_1k_completion_tokens": s.price_per_1k[1],
        "currency": "credits (µUSDC)",
        "context_length": state.engine.context_length,
        "parallel": s.parallel,
    }
    return JSONResponse(model_list(s.model_name, "decentral-worker", info))


async def metrics(request: Request) -> Response:
    return Response(_state(request).metrics.render(), media_type=CONTENT_TYPE)


async def ensure_payout_account(escrow: EscrowClient, keypair: Keypair) -> tuple[Pubkey, bool]:
    """The worker's associated token account of the escrow's mint, created (paid by the
    worker) if missing. Returns it and whether it was created now."""
    config = await escrow.cached_config()
    owner = keypair.pubkey()
    account = pda.associated_token_address(owner, config.mint)
    if await escrow.account_data(account) is not None:
        return account, False
    balance = (await escrow.rpc.call("getBalance", [str(owner), {"commitment": escrow.commitment}]))["value"]
    if not isinstance(balance, int) or balance < 3_000_000:
        raise DecentralError(
            f"the worker's wallet {owner} has {balance} lamports; it needs ~0.003 SOL to create its payout "
            f"token account {account} (fund it, e.g. `solana airdrop 1 {owner}` on a test cluster)"
        )
    await escrow.send([create_associated_token_account(owner, owner, config.mint)], keypair)
    return account, True


def create_worker_app(settings: WorkerSettings, engine: Any) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        escrow = EscrowClient(settings.rpc_url, program_id=settings.program_id, poll_interval=0.02)
        async with escrow:
            state = WorkerState(settings, engine, escrow)
            app.state.worker = state
            try:
                yield
            finally:
                state.ledger.close()
                await engine.aclose()

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/consent", consent, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
