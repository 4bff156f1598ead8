"""The gateway's HTTP routes: OpenAI's chat completions (one on-chain job each), models,
account, jobs, health and metrics.

A chat completion: authenticate (hashed key → client wallet) → take the healthy, least-busy
worker with a free slot (503 when all are busy and the queue is full) → open the job (see
:mod:`.lifecycle`) → run it on the worker → settle and answer with the receipt headers. A
remote worker that fails before its first token is never paid: its job is refunded and the
request goes to another worker (the client sees one answer, every attempt's receipt stays
verifiable). One that dies mid-stream ends the stream with an error event; its job is
refunded. A remote worker's ``usage`` is checked against the gateway's own count; one that
overstates is not paid (refund) and not routed to for a while.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from solders.pubkey import Pubkey
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from decentral_chain.errors import NoWorkerFree, UsageDisputed, WorkerLost, WorkerUnavailable
from decentral_chain.gateway import errors as gw
from decentral_chain.gateway.lifecycle import (
    Job,
    chain_errors,
    locked,
    open_job,
    refund,
    settle,
    settle_partial,
)
from decentral_chain.gateway.metrics import CONTENT_TYPE
from decentral_chain.gateway.schemas import ChatCompletionRequest
from decentral_chain.worker.protocol import model_list

if TYPE_CHECKING:
    from decentral_chain.gateway.app import State

logger = logging.getLogger(__name__)
USDC = 1_000_000
MAX_ATTEMPTS = 3  # workers tried for one request when they fail before their first token


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


def cost_fields(cost: int) -> dict[str, Any]:
    """A job's cost as ``usage`` reports it: ``cost`` in USDC (OpenRouter's field: the amount
    charged, in the account's currency) and ``cost_details.credits`` in credits (µUSDC),
    the exact figure the settlement moved."""
    return {"cost": cost / USDC, "cost_details": {"credits": cost, "currency": "USDC"}}


# ------------------------------------------------------------------------ routes

# ------------------------------------------------------------------------ chat completions


async def chat_completions(request: Request) -> Response:
    state = _state(request)
    client = _client_wallet(request, state)
    # The client's credits are read while the body is parsed, a worker found and the prompt counted.
    credits_read = asyncio.create_task(state.credits.free(client))
    try:
        req = await _parse(request)
        if req.model != state.settings.model_name:
            raise gw.ModelNotFound(f"The model `{req.model}` does not exist", param="model")
    except BaseException:
        credits_read.cancel()
        raise
    tried: list[Any] = []
    while True:
        worker = None
        try:
            try:
                worker = await state.pool.acquire(exclude=tried)
            except NoWorkerFree as exc:
                if tried:  # every other worker failed or is busy: the job was refunded
                    raise gw.WorkerFailed(
                        f"No worker could run this request ({len(tried)} failed before their first token); "
                        "their jobs' credits are refunded",
                        headers={"retry-after": str(math.ceil(exc.retry_after))},
                    ) from None
                raise gw.NoWorkerAvailable(
                    "All workers are busy; retry shortly",
                    details={"retry_after": exc.retry_after},
                    headers={"retry-after": str(math.ceil(exc.retry_after))},
                ) from None
            kwargs = llama_kwargs(req, req.completion_limit or state.settings.default_max_tokens)
            job, remaining = await open_job(state, client, worker, req, kwargs, credits_read)
        except BaseException:
            credits_read.cancel()  # a no-op once the read has finished
            if worker is not None:
                state.pool.release(worker)
            raise
        try:
            if req.stream:
                return await _stream(state, req, job, remaining, kwargs)
            return await _complete(state, job, remaining, kwargs)
        except WorkerUnavailable as exc:  # nothing was produced: refund, and try another worker
            logger.warning("job %s: %s; refunding and retrying elsewhere", job.uuid, exc)
            state.metrics.inc("decentral:failures_total", reason="worker_unavailable")
            tried.append(worker)
            await refund(state, job, f"worker failed before its first token: {exc}")
            if len(tried) >= MAX_ATTEMPTS:
                raise gw.WorkerFailed(
                    f"No worker could run this request ({len(tried)} failed); their jobs' credits are refunded"
                ) from None
            credits_read = asyncio.create_task(state.credits.free(client))


async def _complete(state: State, job: Job, remaining: int, kwargs: dict[str, Any]) -> Response:
    worker = job.worker
    try:
        done = await asyncio.wait_for(
            worker.complete(job.uuid, job.prompt_tokens, kwargs, _blockhash(job)), timeout=state.settings.job_timeout
        )
    except WorkerUnavailable:
        raise  # the caller refunds and retries
    except TimeoutError:
        state.spawn(refund(state, job, "timed out"))
        raise gw.JobTimedOut(
            f"The job timed out after {state.settings.job_timeout:g} s; its credits are refunded",
            headers=job.headers(remaining),
        ) from None
    except Exception as exc:
        state.spawn(refund(state, job, f"inference failed: {exc}"))
        raise gw.GatewayError("Inference failed; the job's credits are refunded") from exc
    finally:
        state.pool.release(worker)
    await locked(state, job)
    result = done.result
    content = result["choices"][0]["message"].get("content") or ""
    usage = result["usage"]
    if worker.remote:  # its usage is a claim: bill the gateway's own count, never more than claimed
        try:
            usage = _checked_usage(state, job, content, None, usage)
        except UsageDisputed as exc:
            state.spawn(refund(state, job, str(exc)))
            raise gw.WorkerFailed(f"{exc}; the job's credits are refunded", headers=job.headers(remaining)) from None
        result["usage"] = usage
    settlement, cost = await settle(state, job, content, usage, done.offer)
    result["model"] = state.settings.model_name
    result["usage"] = dict(result["usage"]) | cost_fields(cost)
    headers = job.headers(remaining + job.amount - cost) | {
        "x-decentral-settlement-tx": settlement,
        "x-decentral-cost": str(cost),
        # W3C Server-Timing: the model call alone, so a client sees what the gateway adds around it
        "server-timing": f"inference;dur={done.inference_s * 1000:.2f}",
    }
    return JSONResponse(result, headers=headers)


def _blockhash(job: Job) -> Any:
    return job.blockhash[0] if job.blockhash is not None else None


def _checked_usage(state: State, job: Job, text: str, chunks: int | None, claimed: Any) -> dict[str, int]:
    """The usage to bill for a remote worker's output: the gateway's own count of the text
    (and, for a stream, at most one token per chunk received), never more than the worker
    claims. A claim above the gateway's count (beyond re-tokenization slack) is disputed and
    the worker is not routed to for a while."""
    own = state.tokenizer.count(text)
    if chunks is not None:  # a stream: at most one token per chunk received
        own = min(own, chunks)
    try:
        prompt, completion = int(claimed["prompt_tokens"]), int(claimed["completion_tokens"])
    except (KeyError, TypeError, ValueError):
        prompt, completion = -1, -1
    if prompt != job.prompt_tokens or completion > own + max(2, own // 10) or completion < 0:
        why = (
            f"worker {job.worker.name} reported {prompt} prompt / {completion} completion tokens; "
            f"the gateway counts {job.prompt_tokens} / {own}"
        )
        job.worker.suspend(state.settings.suspend_s, why)
        state.metrics.inc("decentral:failures_total", reason="usage_disputed")
        raise UsageDisputed(why)
    return job.usage(min(own, completion))


async def _stream(
    state: State, req: ChatCompletionRequest, job: Job, remaining: int, kwargs: dict[str, Any]
) -> Response:
    worker = job.worker
    chunks = worker.stream_chat(job.uuid, job.prompt_tokens, kwargs, _blockhash(job))
    try:
        first = await asyncio.wait_for(anext(chunks), timeout=state.settings.job_timeout)  # errors keep a status
    except WorkerUnavailable:
        state.pool.release(worker)
        raise  # the caller refunds and retries
    except BaseException as exc:
        state.pool.release(worker)
        state.spawn(refund(state, job, f"stream failed: {exc!r}"))
        if isinstance(exc, TimeoutError):
            raise gw.JobTimedOut(
                "The job timed out; its credits are refunded", headers=job.headers(remaining)
            ) from None
        raise gw.GatewayError("Inference failed; the job's credits are refunded") from exc
    try:
        await locked(state, job)  # nothing is streamed unless the credits are locked
    except gw.GatewayError:
        await chunks.aclose()
        state.pool.release(worker)
        raise

    async def events() -> AsyncIterator[bytes]:
        parts: list[str] = []
        completion_tokens = 0
        claimed: Any = None
        offer: Any = None
        settled = released = False
        try:
            chunk: dict[str, Any] | None = first
            while chunk is not None:
                if not chunk.get("choices"):  # a remote worker's closing usage: its claim, and its offer
                    claimed = chunk.get("usage")
                    extra = chunk.get("decentral")
                    offer = extra.get("settlement") if isinstance(extra, dict) else None
                    chunk = await anext(chunks, None)
                    continue
                chunk["model"] = state.settings.model_name
                delta = chunk["choices"][0].get("delta", {}).get("content")
                yield f"data: {json.dumps(chunk)}\n\n".encode()
                if delta:
                    parts.append(delta)
                    completion_tokens += 1  # llama.cpp streams one token per chunk
                    state.journal.deliver(job.uuid, delta, completion_tokens)
                chunk = await anext(chunks, None)
            state.pool.release(worker)
            released = True
            content = "".join(parts)
            usage = job.usage(completion_tokens)
            if worker.remote:
                usage = _checked_usage(state, job, content, completion_tokens, claimed)
            settlement, cost = await settle(state, job, content, usage, offer if isinstance(offer, dict) else None)
            settled = True
            base = {
                "id": first["id"],
                "object": "chat.completion.chunk",
                "created": first["created"],
                "model": state.settings.model_name,
                "choices": [],
            }
            if req.stream_options is not None and req.stream_options.include_usage:
                yield f"data: {json.dumps(base | {'usage': usage | cost_fields(cost)})}\n\n".encode()
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
        except (WorkerLost, WorkerUnavailable, UsageDisputed, TimeoutError) as exc:
            # the worker died mid-stream or overstated its usage: it is not paid, the client not charged
            settled = True
            state.metrics.inc("decentral:failures_total", reason="worker_lost")
            state.spawn(refund(state, job, f"worker failed mid-stream: {exc}"))
            error = {
                "message": f"The worker failed mid-stream ({exc}); the job's credits are refunded",
                "type": "server_error",
                "param": None,
                "code": "worker_failed",
            }
            yield f"data: {json.dumps({'error': error})}\n\n".encode()
        except gw.GatewayError as exc:  # the settlement could not be made (the worker refused to sign)
            settled = True
            yield f"data: {json.dumps(gw.envelope(exc))}\n\n".encode()
        finally:
            if not released:
                state.pool.release(worker)
            if not settled:  # the client went away: charge what was delivered
                content = "".join(parts)
                tokens = completion_tokens
                if worker.remote:
                    tokens = min(tokens, state.tokenizer.count(content))
                state.spawn(settle_partial(state, job, content, tokens))
                await chunks.aclose()

    return StreamingResponse(events(), media_type="text/event-stream", headers=job.headers(remaining))


async def models(request: Request) -> Response:
    state = _state(request)
    s = state.settings
    info = {
        "price_per_1k_prompt_tokens": s.price_per_1k_prompt,
        "price_per_1k_completion_tokens": s.price_per_1k_completion,
        "currency": "credits (µUSDC)",
        "workers": [str(w.wallet) for w in state.pool.workers if w.healthy],
        "context_length": state.context_length,
    }
    return JSONResponse(model_list(s.model_name, "decentral", info))


async def account(request: Request) -> Response:
    state = _state(request)
    client = _client_wallet(request, state)
    await state.landed(client=client)  # an answer's settlement is counted once the client has it
    with chain_errors():
        credits = await state.escrow.get_credits(client)
    free, held = (credits.free, credits.locked) if credits else (0, 0)
    return JSONResponse(
        {
            "object": "account",
            "wallet": str(client),
            "credits_remaining": free,
            "credits_locked": held,
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
    with chain_errors():
        onchain = await state.escrow.get_job(uuid.UUID(job_id).bytes)
    return JSONResponse(
        {
            "object": "job",
            "id": record["job_id"],
            "status": record["state"],
            "open_on_chain": onchain is not None,
            "locked": record["amount"],
            "usage": {
                "prompt_tokens": record["prompt_tokens"],
                "completion_tokens": record["completion_tokens"],
                "total_tokens": (record["prompt_tokens"] or 0) + (record["completion_tokens"] or 0),
            }
            | cost_fields(record["cost"] or 0),
            "receipt": receipt,
            "error": record["error"],
        }
    )


async def health(request: Request) -> Response:
    state = _state(request)
    workers = [
        {
            "name": w.name,
            "wallet": str(w.wallet) if w.wallet is not None else None,
            "remote": w.remote,
            "healthy": w.healthy,
            "slots": w.capacity,
            "busy": state.pool.busy_slots(w),
        }
        | ({"problem": w.problem} if w.remote and not w.healthy else {})
        for w in state.pool.workers
    ]
    healthy = sum(w["healthy"] for w in workers)
    return JSONResponse(
        {
            "status": "ok" if healthy else "no_healthy_worker",
            "workers": len(workers),
            "healthy": healthy,
            "busy": state.pool.busy,
            "detail": workers,
            "time": time.time(),
        },
        status_code=200 if healthy else 503,
    )


async def metrics(request: Request) -> Response:
    return Response(_state(request).metrics.render(), media_type=CONTENT_TYPE)


async def unhandled(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", exc_info=exc)
    return await gw.handle(request, gw.GatewayError("Internal error"))


async def starlette_http(request: Request, exc: Exception) -> JSONResponse:
    status = getattr(exc, "status_code", 500)
    error = gw.GatewayError(getattr(exc, "detail", "error"))
    error.status = status
    error.type = "invalid_request_error" if status < 500 else "server_error"
    return await gw.handle(request, error)
