"""The OpenAI-compatible gateway: one on-chain job per chat completion.

Per request: authenticate (hashed key → client wallet) → take a free worker (503 when all
are busy and the queue is full) → price ceiling = (prompt tokens + max tokens) at the
model's price → 402 unless the client's free credits cover it (as last read on chain, see
``credits.py``; the chain re-checks at the lock) → ``lock_job`` (submitted, not awaited:
its signature goes out at once) → inference on the worker's thread while the
lock confirms → cost from the real token counts → ``settle_job`` with the result hash,
signed and journaled, sent as the response goes out (not awaited: its signature is final
once signed) → receipt headers. Every step is written to the journal before it is taken.

The result hash is sha256 of the UTF-8 bytes of the assistant message's content — the
``choices[0].message.content`` of a completion, or the concatenated ``delta.content`` of a
stream — so an auditor recomputes it with ``decentral verify --response`` on that text.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from decentral_chain import pda
from decentral_chain.abi import PROGRAM_ID
from decentral_chain.client import EscrowClient, PreparedTransaction, pubkey_of
from decentral_chain.errors import (
    ConsentRefused,
    DecentralError,
    EscrowError,
    NoWorkerFree,
    ProgramError,
    RpcError,
    RpcUnavailable,
    TransactionFailed,
)
from decentral_chain.gateway import errors as gw
from decentral_chain.gateway.consent import Produced
from decentral_chain.gateway.credits import CreditsBook
from decentral_chain.gateway.journal import Journal
from decentral_chain.gateway.keys import KeyStore
from decentral_chain.gateway.schemas import ChatCompletionRequest
from decentral_chain.gateway.workers import Worker, WorkerPool
from decentral_chain.instructions import build_settle_job
from decentral_chain.pda import new_job_id
from decentral_chain.rpc import PROCESSED

logger = logging.getLogger(__name__)
USDC = 1_000_000
LANDING_WAIT_S = 2.0  # how long /v1/account and /v1/jobs wait for a settlement on its way
PAUSED_RETRY_S = 30  # retry_after of a 503 while the escrow is paused
CHAIN_RETRY_S = 5  # retry_after of a 503 while the RPC is unreachable


class GatewaySettings(BaseModel):
    """Everything the gateway needs; the CLI fills it from options and the localnet files."""

    model_name: str = Field(default="smollm2-135m-instruct", description="The model id clients ask for")
    rpc_url: str = Field(default="http://127.0.0.1:8899", description="Solana JSON-RPC endpoint")
    program_id: str = Field(default=str(PROGRAM_ID))
    price_per_1k_prompt: int = Field(default=100, ge=0, description="Credits per 1,000 prompt tokens")
    price_per_1k_completion: int = Field(default=200, ge=0, description="Credits per 1,000 completion tokens")
    default_max_tokens: int = Field(default=256, ge=1)
    job_timeout: float = Field(default=120.0, gt=0, description="Seconds of inference before a job is refunded (504)")
    credits_max_age: float = Field(
        default=10.0,
        ge=0,
        description="Seconds a client's credits reading is used for "
        "the 402 check before the chain is read again (0: read for every request)",
    )
    confirm_timeout: float = Field(default=60.0, gt=0, description="Seconds to wait for a transaction to confirm")
    settle_tick: float = Field(
        default=0.005,
        ge=0,
        le=1,
        description="Settlements are sent on this tick (seconds), "
        "those of one tick in one JSON-RPC batch (0: each at once)",
    )
    keys_db: Path = Field(description="SQLite file of hashed API keys")
    journal_db: Path = Field(description="SQLite file of the job journal")


@dataclass
class State:
    settings: GatewaySettings
    gateway: Keypair
    pool: WorkerPool
    keys: KeyStore
    journal: Journal
    escrow: EscrowClient
    credits: CreditsBook
    background: set[asyncio.Task] = field(default_factory=set)
    settling: dict[str, tuple[Pubkey, asyncio.Task]] = field(default_factory=dict)  # job → (client, its send)

    def spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    def spawn_settlement(self, job_uuid: str, client: Pubkey, coro: Any) -> None:
        task = self.spawn(coro)
        self.settling[job_uuid] = (client, task)
        task.add_done_callback(lambda _: self.settling.pop(job_uuid, None))

    async def landed(self, *, client: Pubkey | None = None, job_uuid: str | None = None) -> None:
        """Wait (briefly) for the settlements on their way for this client or job, so what the
        gateway reports agrees with the receipts it has handed out."""
        tasks = [t for j, (c, t) in self.settling.items() if c == client or j == job_uuid]
        if tasks:
            await asyncio.wait(tasks, timeout=LANDING_WAIT_S)


def price_at(per_1k_prompt: int, per_1k_completion: int, prompt_tokens: int, completion_tokens: int) -> int:
    """Credits for a job at these rates per 1,000 tokens, rounded up to the whole credit."""
    return math.ceil((prompt_tokens * per_1k_prompt + completion_tokens * per_1k_completion) / 1000)


def price(settings: GatewaySettings, prompt_tokens: int, completion_tokens: int) -> int:
    """Credits for a job at the gateway's published price."""
    return price_at(settings.price_per_1k_prompt, settings.price_per_1k_completion, prompt_tokens, completion_tokens)


# ------------------------------------------------------------------------ helpers


def _state(request: Request) -> State:
    return request.app.state.gateway


def _client_wallet(request: Request, state: State) -> Pubkey:
    """The key's wallet: ``X-API-Key: <key>`` or ``Authorization: Bearer <key>`` (when both
    are sent, X-API-Key wins, as on Relay's API)."""
    key = request.headers.get("x-api-key", "").strip()
    if not key:
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        key = bearer.strip() if scheme.lower() == "bearer" else ""
    if not key:
        raise gw.Unauthorized("Missing API key: send X-API-Key: <key> or Authorization: Bearer <key>")
    wallet = state.keys.wallet(key)
    if wallet is None:
        raise gw.Unauthorized("Incorrect API key provided")
    return wallet


#: OpenAI request parameters this gateway does not implement (yet): a 400 naming each
UNSUPPORTED_PARAMS = (
    "tools",
    "tool_choice",
    "functions",
    "function_call",
    "parallel_tool_calls",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "audio",
    "modalities",
    "prediction",
    "web_search_options",
)


async def _parse(request: Request) -> ChatCompletionRequest:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise gw.InvalidRequest("Request body is not valid JSON") from None
    if isinstance(body, dict):  # a feature the gateway cannot honour is named, never silently dropped
        for name in UNSUPPORTED_PARAMS:
            if body.get(name) not in (None, False, {}, []):
                raise gw.InvalidRequest(
                    f"{name} is not supported by this gateway; nothing was run or charged", param=name
                )
    try:
        return ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise gw.InvalidRequest(f"{param}: {first['msg']}" if param else first["msg"], param=param) from None


def llama_kwargs(req: ChatCompletionRequest, max_tokens: int) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "messages": [
            {"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in req.messages
        ],
        "max_tokens": max_tokens,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "stop": req.stops or None,
        "frequency_penalty": req.frequency_penalty,
        "presence_penalty": req.presence_penalty,
    }
    if req.seed is not None:
        kwargs["seed"] = req.seed
    if req.response_format is not None and req.response_format.type == "json_object":
        kwargs["response_format"] = {"type": "json_object"}
    return kwargs


@contextlib.contextmanager
def _chain_errors() -> Iterator[None]:
    """The RPC unreachable or failing before anything was locked: a 503 to retry, not a 500."""
    try:
        yield
    except (RpcUnavailable, RpcError) as exc:
        raise gw.ChainUnavailable(
            f"The chain's RPC is unavailable ({exc}); nothing was charged, retry shortly",
            details={"retry_after": CHAIN_RETRY_S},
            headers={"retry-after": str(CHAIN_RETRY_S)},
        ) from exc


@dataclass
class Job:
    job_id: bytes
    worker: Worker
    client: Pubkey
    amount: int
    lock_tx: str
    prompt_tokens: int  # counted once, for the ceiling; the same prompt is billed
    lock_confirmed: asyncio.Task = field(init=False)
    nonce: int | None = None  # the Job's lifecycle nonce, read once the lock landed
    refused: bool = False  # the worker refused to sign its settlement: the job is being refunded

    @property
    def uuid(self) -> str:
        return str(uuid.UUID(bytes=self.job_id))

    def usage(self, completion_tokens: int) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
        }

    def headers(self, credits_remaining: int) -> dict[str, str]:
        headers = {
            "x-decentral-job-id": self.uuid,
            "x-decentral-tx-signature": self.lock_tx,
            "x-decentral-worker": str(self.worker.wallet),
            "x-decentral-credits-remaining": str(credits_remaining),
        }
        if self.nonce is not None:
            headers["x-decentral-job-nonce"] = str(self.nonce)
        return headers


async def _open_job(
    state: State,
    client: Pubkey,
    worker: Worker,
    req: ChatCompletionRequest,
    kwargs: dict[str, Any],
    credits_read: asyncio.Task,
) -> tuple[Job, int]:
    """Price the ceiling, check credits (looked up since the request came in), lock
    (submitted, confirming in the background). The caller cancels ``credits_read`` if this
    raises."""
    prompt_tokens = worker.prompt_tokens(kwargs["messages"])
    room = worker.context_length - prompt_tokens
    if room <= 0:
        raise gw.InvalidRequest(
            f"messages: the prompt has {prompt_tokens} tokens, the context {worker.context_length}", param="messages"
        )
    if req.completion_limit is not None and req.completion_limit > room:  # said, not bent (OpenAI's behaviour)
        param = "max_completion_tokens" if req.max_completion_tokens is not None else "max_tokens"
        raise gw.InvalidRequest(
            f"{param} is too large: {req.completion_limit}. This model's context is {worker.context_length} tokens "
            f"and the messages take {prompt_tokens}, so at most {room} completion tokens can be asked for.",
            param=param,
        )
    kwargs["max_tokens"] = min(kwargs["max_tokens"], room)  # the default, when none was asked for
    ceiling = max(1, price(state.settings, prompt_tokens, kwargs["max_tokens"]))
    with _chain_errors():
        free, remembered = await credits_read
        if free < ceiling and remembered:  # the reading may predate a deposit: the chain decides
            free = await state.credits.read(client)
        if free < ceiling:
            raise gw.InsufficientCredits(
                f"This request needs up to {ceiling} credits; {free} are free. "
                "Deposit with `decentral credits deposit`.",
                details={"required": ceiling, "free": free},
            )
        job_id = new_job_id(state.escrow.program_id)
        pending = await state.escrow.prepare_lock_job(state.gateway, client, job_id, ceiling, worker.wallet)
    state.journal.open(str(uuid.UUID(bytes=job_id)), str(client), str(worker.wallet), ceiling, str(pending.signature))

    job = Job(job_id, worker, client, ceiling, str(pending.signature), prompt_tokens)

    async def submit_and_confirm() -> None:  # runs while the model does; settlement waits for it
        await state.escrow.submit(pending, skip_preflight=True)
        # processed is enough to know the credits are held: a settlement can only land after it
        await state.escrow.confirm(
            pending.signature,
            timeout=state.settings.confirm_timeout,
            last_valid_block_height=pending.last_valid_block_height,
            commitment=PROCESSED,
        )
        onchain = await state.escrow.get_job(job_id, commitment=PROCESSED)
        if onchain is not None:
            job.nonce = onchain.nonce
            state.journal.update(job.uuid, "locked", nonce=onchain.nonce)

    job.lock_confirmed = asyncio.create_task(submit_and_confirm())
    state.credits.move(client, -ceiling)
    return job, free - ceiling


async def _settle(state: State, job: Job, content: str, usage: dict[str, int]) -> tuple[str, int]:
    """Settle at the real price (never above the lock), co-signed by the worker. Returns the
    settlement's signature, final once signed; the transaction is on its way, not awaited."""
    cost = min(job.amount, price(state.settings, usage["prompt_tokens"], usage["completion_tokens"]))
    digest = hashlib.sha256(content.encode()).digest()
    await job.lock_confirmed  # landed while the model ran (callers checked it with _locked)
    if job.nonce is None:  # the read after the lock failed: the chain knows
        onchain = await state.escrow.get_job(job.job_id, commitment=PROCESSED)
        if onchain is None:
            raise DecentralError(f"job {job.uuid} is not open on chain")
        job.nonce = onchain.nonce
    produced = Produced(
        pda.job_address(job.job_id, state.escrow.program_id),
        job.nonce,
        digest,
        usage["prompt_tokens"],
        usage["completion_tokens"],
        job.amount,
    )
    try:
        pending = await _sign_settlement(state, job.uuid, job.job_id, job.client, job.worker, produced, cost)
    except ConsentRefused as exc:
        job.refused = True
        state.spawn(_refund(state, job, str(exc)))
        raise gw.GatewayError(
            "The worker refused to sign this settlement; the job's credits are refunded",
            headers={"x-decentral-job-id": job.uuid},
        ) from exc
    state.spawn_settlement(
        job.uuid, job.client, _submit_settlement(state, job.uuid, job.client, job.amount - cost, pending)
    )
    return str(pending.signature), cost


async def _sign_settlement(
    state: State, job_uuid: str, job_id: bytes, client: Pubkey, worker: Worker, produced: Produced, cost: int
) -> PreparedTransaction:
    """Sign ``settle_job`` — the gateway, and the worker for what it produced (it refuses
    anything else: ConsentRefused) — then journal the result (cost, hash, token counts) with
    the settlement's signature and bytes in one write, before anything is sent or answered:
    the signature a client is given is always one the gateway can send again."""
    config = await state.escrow.cached_config()
    gateway = pubkey_of(state.gateway)
    ix = build_settle_job(
        gateway=gateway,
        client=client,
        job_id=job_id,
        worker_token=pda.associated_token_address(worker.wallet, config.mint),
        treasury=config.treasury,
        payer=gateway,
        cost=cost,
        result_hash=produced.result_hash,
        prompt_tokens=produced.prompt_tokens,
        completion_tokens=produced.completion_tokens,
        worker=worker.wallet,
        nonce=produced.nonce,
        program_id=state.escrow.program_id,
    )
    # the worker's own published price, if it has one, else the gateway's
    rates = worker.spec.price_per_1k or (state.settings.price_per_1k_prompt, state.settings.price_per_1k_completion)
    consent = worker.consent(produced, lambda p, c: price_at(*rates, p, c), state.escrow.program_id)
    pending = await state.escrow.prepare([ix], state.gateway, [consent])
    state.journal.update(
        job_uuid,
        "settling",
        cost=cost,
        result_hash=produced.result_hash.hex(),
        prompt_tokens=produced.prompt_tokens,
        completion_tokens=produced.completion_tokens,
        settlement_tx=str(pending.signature),
        settlement_raw=bytes(pending.transaction),
    )
    return pending


async def _submit_settlement(
    state: State, job_uuid: str, client: Pubkey, unspent: int, pending: PreparedTransaction
) -> None:
    """Send a journaled settlement and follow it to confirmation. If that fails the job stays
    ``settling``: the next start sends the same transaction again (or a new one if expired).
    ``unspent`` (locked − cost) is free again once it lands."""
    try:
        await next_tick(state.settings.settle_tick)
        await state.escrow.submit(pending, skip_preflight=True)
        await state.escrow.confirm(
            pending.signature,
            timeout=state.settings.confirm_timeout,
            last_valid_block_height=pending.last_valid_block_height,
        )
        state.journal.update(job_uuid, "settled")
        state.credits.move(client, unspent)
    except DecentralError as exc:
        logger.error("settlement of %s not confirmed: %s", job_uuid, exc)
        state.journal.update(job_uuid, "settling", error=str(exc))
        state.credits.forget(client)


async def next_tick(tick: float) -> None:
    """Sleep until the next multiple of ``tick`` on the loop's clock. Settlements signed
    within one tick wake in the same loop turn, so EscrowClient sends them in one JSON-RPC
    batch; and the answer they belong to has left before their HTTP work starts."""
    if tick > 0:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(-loop.time() % tick or tick)


async def _resend_settlement(state: State, row: dict[str, Any]) -> bool:
    """At start: send the settlement journaled before the crash, byte for byte, so the
    signature its client holds is the one that lands. False if its blockhash expired (it can
    never land; the caller signs a new one)."""
    signature = Signature.from_string(row["settlement_tx"])
    try:
        await state.escrow.send_raw(row["settlement_raw"], skip_preflight=True)
    except TransactionFailed as exc:
        if exc.err == "BlockhashNotFound":
            return False
        if exc.err != "AlreadyProcessed":
            raise
    await state.escrow.confirm(signature, timeout=state.settings.confirm_timeout)
    state.journal.update(row["job_id"], "settled")
    return True


async def _refund(state: State, job: Job, reason: str) -> None:
    state.journal.update(job.uuid, "refunding", error=reason)
    try:
        await job.lock_confirmed
        signature = await state.escrow.refund_job(state.gateway, job.job_id)
        state.journal.update(job.uuid, "refunded", settlement_tx=str(signature), settlement_raw=None)
        state.credits.move(job.client, job.amount)
    except DecentralError as exc:
        logger.error("refund of %s failed: %s", job.uuid, exc)
        state.credits.forget(job.client)


async def _locked(state: State, job: Job) -> None:
    """Wait for the job's lock (it confirms while the model runs). A lock the chain refused
    ends the request with nothing charged: 402 if the credits were gone by then (withdrawn
    since the gateway's reading, or spent by a concurrent request)."""
    try:
        await job.lock_confirmed
    except TransactionFailed as exc:
        state.journal.update(job.uuid, "rejected", error=f"lock refused: {exc}")
        state.credits.forget(job.client)
        if isinstance(exc, ProgramError) and exc.error == EscrowError.InsufficientCredits:
            raise gw.InsufficientCredits(
                f"This request needs up to {job.amount} credits and they are no longer "
                "free; nothing was charged. Deposit with `decentral credits deposit`.",
                details={"required": job.amount},
            ) from None
        if isinstance(exc, ProgramError) and exc.error == EscrowError.ProgramPaused:
            raise gw.EscrowPaused(
                "The escrow program is paused by its admin; nothing was charged, retry later",
                details={"retry_after": PAUSED_RETRY_S},
                headers={"retry-after": str(PAUSED_RETRY_S)},
            ) from None
        raise gw.GatewayError(f"The chain refused the job's lock ({exc}); nothing was charged") from None
    except DecentralError as exc:  # its fate unknown: refunded if it landed
        state.spawn(_refund(state, job, f"lock not confirmed: {exc}"))
        raise gw.GatewayError("The job's lock was not confirmed; nothing is charged") from exc


# ------------------------------------------------------------------------ routes


async def chat_completions(request: Request) -> Response:
    state = _state(request)
    client = _client_wallet(request, state)
    # The client's credits are read while the body is parsed, a worker found and the prompt counted.
    credits_read = asyncio.create_task(state.credits.free(client))
    worker = None
    try:
        req = await _parse(request)
        if req.model != state.settings.model_name:
            raise gw.ModelNotFound(f"The model `{req.model}` does not exist", param="model")
        try:
            worker = await state.pool.acquire()
        except NoWorkerFree as exc:
            raise gw.NoWorkerAvailable(
                "All workers are busy; retry shortly",
                details={"retry_after": exc.retry_after},
                headers={"retry-after": str(math.ceil(exc.retry_after))},
            ) from None
        kwargs = llama_kwargs(req, req.completion_limit or state.settings.default_max_tokens)
        job, remaining = await _open_job(state, client, worker, req, kwargs, credits_read)
    except BaseException:
        credits_read.cancel()  # a no-op once the read has finished
        if worker is not None:
            state.pool.release(worker)
        raise
    if req.stream:
        return await _stream(state, req, job, remaining, kwargs)
    try:
        result, inference_s = await asyncio.wait_for(
            worker.call(lambda llama: _timed_completion(llama, kwargs)), timeout=state.settings.job_timeout
        )
    except TimeoutError:
        state.spawn(_refund(state, job, "timed out"))
        raise gw.JobTimedOut(
            f"The job timed out after {state.settings.job_timeout:g} s; its credits are refunded",
            headers=job.headers(remaining),
        ) from None
    except Exception as exc:
        state.spawn(_refund(state, job, f"inference failed: {exc}"))
        raise gw.GatewayError("Inference failed; the job's credits are refunded") from exc
    finally:
        state.pool.release(worker)
    await _locked(state, job)
    content = result["choices"][0]["message"].get("content") or ""
    settlement, cost = await _settle(state, job, content, result["usage"])
    result["model"] = state.settings.model_name
    headers = job.headers(remaining + job.amount - cost) | {
        "x-decentral-settlement-tx": settlement,
        # W3C Server-Timing: the model call alone, so a client sees what the gateway adds around it
        "server-timing": f"inference;dur={inference_s * 1000:.2f}",
    }
    return JSONResponse(result, headers=headers)


def _timed_completion(llama: Any, kwargs: dict[str, Any]) -> tuple[dict, float]:
    """create_chat_completion on the worker thread, and how long exactly that call took."""
    start = time.perf_counter()
    result = llama.create_chat_completion(**kwargs)
    return result, time.perf_counter() - start


async def _stream(
    state: State, req: ChatCompletionRequest, job: Job, remaining: int, kwargs: dict[str, Any]
) -> Response:
    worker = job.worker
    chunks = worker.stream(lambda llama: llama.create_chat_completion(stream=True, **kwargs))
    try:
        first = await asyncio.wait_for(anext(chunks), timeout=state.settings.job_timeout)  # errors keep a status
    except BaseException as exc:
        state.pool.release(worker)
        state.spawn(_refund(state, job, f"stream failed: {exc!r}"))
        if isinstance(exc, TimeoutError):
            raise gw.JobTimedOut(
                "The job timed out; its credits are refunded", headers=job.headers(remaining)
            ) from None
        raise gw.GatewayError("Inference failed; the job's credits are refunded") from exc
    try:
        await _locked(state, job)  # nothing is streamed unless the credits are locked
    except gw.GatewayError:
        await chunks.aclose()
        state.pool.release(worker)
        raise

    async def events() -> AsyncIterator[bytes]:
        parts: list[str] = []
        completion_tokens = 0
        settled = released = False
        try:
            chunk: dict[str, Any] | None = first
            while chunk is not None:
                chunk["model"] = state.settings.model_name
                delta = chunk["choices"][0]["delta"].get("content") if chunk["choices"] else None
                if delta:
                    parts.append(delta)
                    completion_tokens += 1  # llama.cpp streams one token per chunk
                yield f"data: {json.dumps(chunk)}\n\n".encode()
                chunk = await anext(chunks, None)
            state.pool.release(worker)
            released = True
            usage = job.usage(completion_tokens)
            settlement, cost = await _settle(state, job, "".join(parts), usage)
            settled = True
            base = {
                "id": first["id"],
                "object": "chat.completion.chunk",
                "created": first["created"],
                "model": state.settings.model_name,
                "choices": [],
            }
            if req.stream_options is not None and req.stream_options.include_usage:
                yield f"data: {json.dumps(base | {'usage': usage})}\n\n".encode()
            final = base | {
                "decentral": {
                    "job_id": job.uuid,
                    "settlement_tx": settlement,
                    "cost": cost,
                    "lock_tx": job.lock_tx,
                    "worker": str(worker.wallet),
                    "nonce": job.nonce,
                }
            }
            yield f"data: {json.dumps(final)}\n\n".encode()
            yield b"data: [DONE]\n\n"
        finally:
            if not settled:  # the client went away: charge what was produced
                await chunks.aclose()
                if not released:
                    state.pool.release(worker)
                state.spawn(_settle_partial(state, job, "".join(parts), completion_tokens))

    return StreamingResponse(events(), media_type="text/event-stream", headers=job.headers(remaining))


async def _settle_partial(state: State, job: Job, content: str, completion_tokens: int) -> None:
    """A client that disconnected mid-stream pays for the tokens it was sent, no more."""
    if job.refused:
        return
    try:
        await _settle(state, job, content, job.usage(completion_tokens))
    except DecentralError as exc:
        logger.error("partial settlement of %s failed: %s", job.uuid, exc)


async def recover(state: State) -> dict[str, int]:
    """Resolve every job the journal left open (a crash or a kill): settle it with the
    recorded result if inference had finished, otherwise refund it. Returns the counts."""
    counts = {"settled": 0, "refunded": 0, "closed": 0}

    def worker_of(wallet: Pubkey) -> Worker | None:  # who can consent to a new settlement
        return next((w for w in state.pool.workers if w.wallet == wallet), None)

    for row in state.journal.open_jobs():
        job_id = uuid.UUID(row["job_id"]).bytes
        try:
            onchain = await state.escrow.get_job(job_id)
            if onchain is None:
                # nothing open on chain: the lock never landed, or the job already ended
                ended = "settled" if row["settlement_tx"] else "refunded"
                state.journal.update(row["job_id"], ended, error="resolved at start: no open Job on chain")
                counts["closed"] += 1
            elif (
                row["cost"] is not None
                and row["result_hash"]
                and time.time() < onchain.expires_at
                and (row["settlement_raw"] or worker_of(onchain.worker) is not None)
            ):
                if not (row["settlement_raw"] and await _resend_settlement(state, row)):
                    worker = worker_of(onchain.worker)
                    if worker is None:
                        raise DecentralError(f"no worker {onchain.worker} here to sign a new settlement")
                    produced = Produced(
                        pda.job_address(job_id, state.escrow.program_id),
                        onchain.nonce,
                        bytes.fromhex(row["result_hash"]),
                        row["prompt_tokens"],
                        row["completion_tokens"],
                        onchain.amount,
                    )
                    pending = await _sign_settlement(
                        state, row["job_id"], job_id, onchain.client, worker, produced, row["cost"]
                    )
                    await _submit_settlement(
                        state, row["job_id"], onchain.client, onchain.amount - row["cost"], pending
                    )
                counts["settled"] += 1
            else:
                why = (
                    "inference unfinished"
                    if row["cost"] is None
                    else "past the settlement deadline"
                    if time.time() >= onchain.expires_at
                    else "its worker is not here to sign"
                )
                state.journal.update(
                    row["job_id"],
                    "refunding",
                    error=f"resolved at start: {why}",
                    settlement_tx=None,
                    settlement_raw=None,
                )
                signature = await state.escrow.refund_job(state.gateway, job_id)
                state.journal.update(row["job_id"], "refunded", settlement_tx=str(signature))
                counts["refunded"] += 1
        except DecentralError as exc:
            logger.error("could not resolve job %s at start: %s", row["job_id"], exc)
    return counts


async def models(request: Request) -> Response:
    state = _state(request)
    s = state.settings
    return JSONResponse(
        {
            "object": "list",
            "data": [
                {
                    "id": s.model_name,
                    "object": "model",
                    "created": 0,
                    "owned_by": "decentral",
                    "decentral": {
                        "price_per_1k_prompt_tokens": s.price_per_1k_prompt,
                        "price_per_1k_completion_tokens": s.price_per_1k_completion,
                        "currency": "credits (µUSDC)",
                        "workers": [str(w.wallet) for w in state.pool.workers],
                        "context_length": state.pool.workers[0].context_length,
                    },
                }
            ],
        }
    )


async def account(request: Request) -> Response:
    state = _state(request)
    client = _client_wallet(request, state)
    await state.landed(client=client)  # an answer's settlement is counted once the client has it
    with _chain_errors():
        credits = await state.escrow.get_credits(client)
    free, locked = (credits.free, credits.locked) if credits else (0, 0)
    return JSONResponse(
        {
            "object": "account",
            "wallet": str(client),
            "credits_remaining": free,
            "credits_locked": locked,
            "usdc_value": f"{free / USDC:.6f}",
        }
    )


async def job_status(request: Request) -> Response:
    state = _state(request)
    wallet = _client_wallet(request, state)
    job_id = request.path_params["job_id"]
    await state.landed(job_uuid=job_id)
    record = state.journal.get(job_id)
    if record is None or record["client"] != str(wallet):  # a key sees its own wallet's jobs only
        raise gw.JobNotFound(f"No job {job_id}", param="job_id")
    receipt = {
        "job_id": record["job_id"],
        "lock_tx": record["lock_tx"],
        "settlement_tx": record["settlement_tx"],
        "worker": record["worker"],
        "client": record["client"],
        "cost": record["cost"],
        "result_hash": record["result_hash"],
        "nonce": record["nonce"],
        "outcome": "refunded" if record["state"] in ("refunding", "refunded") else "settled",
        "program_id": state.settings.program_id,
    }
    with _chain_errors():
        onchain = await state.escrow.get_job(uuid.UUID(job_id).bytes)
    return JSONResponse(
        {
            "object": "job",
            "id": record["job_id"],
            "status": record["state"],
            "open_on_chain": onchain is not None,
            "locked": record["amount"],
            "usage": {"prompt_tokens": record["prompt_tokens"], "completion_tokens": record["completion_tokens"]},
            "receipt": receipt,
            "error": record["error"],
        }
    )


async def health(request: Request) -> Response:
    state = _state(request)
    return JSONResponse(
        {"status": "ok", "workers": len(state.pool.workers), "busy": state.pool.busy, "time": time.time()}
    )


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", exc_info=exc)
    return await gw.handle(request, gw.GatewayError("Internal error"))


async def _starlette_http(request: Request, exc: Exception) -> JSONResponse:
    status = getattr(exc, "status_code", 500)
    error = gw.GatewayError(getattr(exc, "detail", "error"))
    error.status = status
    error.type = "invalid_request_error" if status < 500 else "server_error"
    return await gw.handle(request, error)


async def check_deadline(escrow: EscrowClient, settings: GatewaySettings) -> None:
    """A job must be settled before its Job expires (the program refuses later settlements):
    refuse to start if inference plus confirmation could outlast the escrow's refund_timeout.
    Skipped, with a log line, when the chain cannot be read at start."""
    try:
        config = await escrow.cached_config()
    except DecentralError as exc:
        logger.warning("could not read the escrow's Config at start (%s); refund_timeout not checked", exc)
        return
    needed = settings.job_timeout + settings.confirm_timeout
    if needed * 2 > config.refund_timeout:
        raise gw.GatewayError(
            f"job_timeout + confirm_timeout = {needed:g} s must stay well inside the escrow's "
            f"refund_timeout of {config.refund_timeout} s (at most half of it)"
        )


def create_app(
    settings: GatewaySettings, gateway: Keypair, workers: list[Worker], *, max_waiting: int = 8
) -> Starlette:
    """The ASGI app; its lifespan owns the key store, journal, client and worker pool."""
    from starlette.exceptions import HTTPException

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        escrow = EscrowClient(settings.rpc_url, program_id=Pubkey.from_string(settings.program_id), poll_interval=0.02)
        async with escrow:
            await check_deadline(escrow, settings)
            state = State(
                settings,
                gateway,
                WorkerPool(workers, max_waiting=max_waiting),
                KeyStore(settings.keys_db),
                Journal(settings.journal_db),
                escrow,
                CreditsBook(escrow, max_age=settings.credits_max_age),
            )
            app.state.gateway = state
            recovered = await recover(state)
            if any(recovered.values()):
                logger.warning("resolved jobs left open by the last run: %s", recovered)
            try:
                yield
            finally:
                for task in list(state.background):
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(task, timeout=settings.confirm_timeout)
                await state.credits.aclose()
                state.keys.close()
                state.journal.close()

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v2/openai/v1/chat/completions", chat_completions, methods=["POST"]),  # Relay's path
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/account", account, methods=["GET"]),
            Route("/v1/jobs/{job_id}", job_status, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ],
        exception_handlers={gw.GatewayError: gw.handle, HTTPException: _starlette_http, Exception: _unhandled},
        lifespan=lifespan,
    )
