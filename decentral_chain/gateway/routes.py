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
import hashlib
import json
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from solders.pubkey import Pubkey
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from decentral_chain.errors import NoWorkerFree, UsageDisputed, WorkerLost, WorkerUnavailable
from decentral_chain.gateway import errors as gw
from decentral_chain.gateway import tools
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
from decentral_chain.gateway.tasks import KeyInUse, Task
from decentral_chain.worker.protocol import model_list, result_text

if TYPE_CHECKING:
    from decentral_chain.gateway.app import State

logger = logging.getLogger(__name__)
USDC = 1_000_000
MAX_ATTEMPTS = 3  # workers tried for one request when they fail before their first token


# ------------------------------------------------------------------------ helpers


def _state(request: Request) -> State:
    return request.app.state.gateway


def api_key(request: Request) -> str:
    """The request's key: ``X-API-Key: <key>`` or ``Authorization: Bearer <key>`` (when both
    are sent, X-API-Key wins, as on Relay's API)."""
    key = request.headers.get("x-api-key", "").strip()
    if not key:
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        key = bearer.strip() if scheme.lower() == "bearer" else ""
    if not key:
        raise gw.Unauthorized("Missing API key: send X-API-Key: <key> or Authorization: Bearer <key>")
    return key


def authenticate(request: Request, state: State) -> tuple[str, Pubkey]:
    """The request's API key and the wallet it spends (401 without a valid key)."""
    key = api_key(request)
    wallet = state.keys.wallet(key)
    if wallet is None:
        raise gw.Unauthorized("Incorrect API key provided")
    return key, wallet


def _client_wallet(request: Request, state: State) -> Pubkey:
    """The key's wallet."""
    return authenticate(request, state)[1]


#: OpenAI request parameters this gateway does not implement (yet): a 400 naming each
UNSUPPORTED_PARAMS = (
    "functions",  # the deprecated forms of tools / tool_choice
    "function_call",
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
        req = ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise gw.InvalidRequest(f"{param}: {first['msg']}" if param else first["msg"], param=param) from None
    if req.top_logprobs is not None and not req.logprobs:
        raise gw.InvalidRequest("top_logprobs requires logprobs to be true", param="top_logprobs")
    tools.validate(req)
    return req


def llama_kwargs(req: ChatCompletionRequest, max_tokens: int) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "messages": tools.chat_messages(req),
        "max_tokens": max_tokens,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "stop": req.stops or None,
        "frequency_penalty": req.frequency_penalty,
        "presence_penalty": req.presence_penalty,
    }
    if req.seed is not None:
        kwargs["seed"] = req.seed
    if (response_format := tools.response_format(req)) is not None:
        kwargs["response_format"] = response_format
    if req.n > 1:
        kwargs["n"] = req.n
    if req.logprobs:
        kwargs["logprobs"] = True
        kwargs["top_logprobs"] = req.top_logprobs or 0
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
        if req.n > 1 and req.stream:
            raise gw.InvalidRequest("n > 1 cannot be streamed by this gateway; ask without stream", param="n")
        if req.run_async and req.stream:
            raise gw.InvalidRequest("async cannot be combined with stream: poll the task instead", param="async")
        record, replay = await recorded_request(state, request, client, kind="task" if req.run_async else "sync")
        if replay is not None:
            credits_read.cancel()
            return replay
    except BaseException:
        credits_read.cancel()
        raise
    if req.run_async:
        assert record is not None
        return await _start_task(state, client, req, credits_read, record)
    try:
        response = await _run(state, client, req, credits_read)
    except BaseException:
        if record is not None:  # not completed: the key may be used again
            state.tasks.forget(record.task_id)
        raise
    if record is not None:
        return _recorded(state, record, response)
    return response


async def recorded_request(
    state: State, request: Request, client: Pubkey, *, kind: str = "sync"
) -> tuple[Task | None, Response | None]:
    """The record a request needs — one with an Idempotency-Key, or any async task (``kind``
    "task") — or, when its key was used before, (None, the first answer); (None, None) for a
    plain request."""
    idem = _idempotency_key(request)
    if idem is None and kind != "task":
        return None, None
    body_hash = hashlib.sha256(await request.body()).hexdigest()
    if idem is not None and (earlier := state.tasks.by_key(str(client), idem)) is not None:
        return None, _replay(earlier, body_hash)
    try:
        return state.tasks.create(str(client), kind, body_hash, idem), None
    except KeyInUse:
        raise gw.IdempotencyKeyInUse(
            "A request with this Idempotency-Key is still running; retry when it has finished",
            param="Idempotency-Key",
        ) from None


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    key = key.strip()
    if not 1 <= len(key) <= 255:
        raise gw.InvalidRequest("Idempotency-Key must be 1 to 255 characters", param="Idempotency-Key")
    return key


def _replay(earlier: Task, body_hash: str) -> Response:
    """A retried request with a known Idempotency-Key: the first one's answer, nothing run again."""
    if earlier.body_hash != body_hash:
        raise gw.InvalidRequest(
            "This Idempotency-Key was used with a different request body; use a new key for a new request",
            param="Idempotency-Key",
        )
    if earlier.kind == "task":
        return JSONResponse(_task_json(earlier), status_code=202, headers={"idempotent-replayed": "true"})
    if earlier.status != "completed" or earlier.body is None:
        raise gw.IdempotencyKeyInUse(
            "A request with this Idempotency-Key is still running; retry when it has finished",
            param="Idempotency-Key",
        )
    headers = {k: v for k, v in earlier.headers.items() if k not in ("content-length", "content-type")}
    media = earlier.headers.get("content-type", "application/json")
    return Response(earlier.body, status_code=earlier.status_code or 200, headers=headers | {
        "idempotent-replayed": "true"}, media_type=media)  # fmt: skip


def _recorded(state: State, record: Task, response: Response) -> Response:
    """Keep a completed answer under its Idempotency-Key (a stream once it reached [DONE])."""
    headers = dict(response.headers)
    if not isinstance(response, StreamingResponse):
        state.tasks.finish(record.task_id, "completed", response.status_code, bytes(response.body), headers)
        return response
    inner = response.body_iterator

    async def recording() -> AsyncIterator[Any]:
        parts: list[bytes] = []
        complete = False
        try:
            async for piece in inner:
                data = piece if isinstance(piece, bytes) else str(piece).encode()
                parts.append(data)
                yield piece
            complete = bool(parts) and parts[-1].startswith(b"data: [DONE]")
        finally:
            if complete:
                state.tasks.finish(record.task_id, "completed", response.status_code, b"".join(parts), headers)
            else:
                state.tasks.forget(record.task_id)

    response.body_iterator = recording()
    return response


async def _start_task(
    state: State, client: Pubkey, req: ChatCompletionRequest, credits_read: asyncio.Task, record: Task
) -> Response:
    """Relay's async mode: lock the job, answer 202 with the task, its job and lock signature,
    and run it in the background; the result (or the error, its job refunded) goes to the task."""
    opened: asyncio.Future = asyncio.get_running_loop().create_future()

    def on_open(job: Job) -> None:
        state.tasks.started(record.task_id, job.uuid, job.lock_tx)
        state.tasks.running(record.task_id)
        if not opened.done():
            opened.set_result(job)

    def on_result(result: dict[str, Any]) -> None:  # kept before settling: a restart can still deliver it
        state.tasks.finish_pending(record.task_id, json.dumps(result).encode())

    async def run() -> None:
        try:
            response = await _run(state, client, req, credits_read, on_open=on_open, on_result=on_result)
            state.tasks.finish(record.task_id, "completed", 200, bytes(response.body), dict(response.headers))
        except gw.GatewayError as exc:
            body = json.dumps(gw.envelope(exc)).encode()
            state.tasks.finish(record.task_id, "failed", exc.status, body, exc.headers)
            if not opened.done():
                opened.set_exception(exc)
        except Exception as exc:
            logger.exception("task %s failed", record.task_id)
            error = gw.GatewayError("Internal error; the job's credits are refunded")
            state.tasks.finish(record.task_id, "failed", 500, json.dumps(gw.envelope(error)).encode(), {})
            if not opened.done():
                opened.set_exception(error)
            raise exc

    runner = state.spawn(run())
    await asyncio.wait([opened, runner], return_when=asyncio.FIRST_COMPLETED)
    if not opened.done() or opened.exception() is not None:  # refused before anything was locked
        state.tasks.forget(record.task_id)
        if opened.done():
            raise opened.exception()  # type: ignore[misc]
        raise gw.GatewayError("Internal error")
    task = state.tasks.get(record.task_id)
    assert task is not None
    job: Job = opened.result()
    headers = {"location": f"/v1/tasks/{record.task_id}", "x-decentral-job-id": job.uuid,
               "x-decentral-tx-signature": job.lock_tx}  # fmt: skip
    return JSONResponse(_task_json(task), status_code=202, headers=headers)


def _task_json(task: Task) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": task.task_id,
        "task_id": task.task_id,
        "object": "task",
        "status": task.status,
        "created": int(task.created),
        "job_id": task.job_id,
        "lock_tx": task.lock_tx,
    }
    if task.status == "completed" and task.body is not None:
        h = task.headers
        out["result"] = json.loads(task.body)
        out["receipt"] = {
            "job_id": h.get("x-decentral-job-id"),
            "lock_tx": h.get("x-decentral-tx-signature"),
            "settlement_tx": h.get("x-decentral-settlement-tx"),
            "worker": h.get("x-decentral-worker"),
            "nonce": int(h["x-decentral-job-nonce"]) if h.get("x-decentral-job-nonce") else None,
            "cost": int(h["x-decentral-cost"]) if h.get("x-decentral-cost") else None,
        }
    elif task.status == "failed" and task.body is not None:
        out["error"] = json.loads(task.body).get("error")
    return out


async def task_status(request: Request) -> Response:
    state = _state(request)
    wallet = _client_wallet(request, state)
    task = state.tasks.get(request.path_params["task_id"])
    if task is None or task.kind != "task" or task.client != str(wallet):  # a key sees its own wallet's tasks
        raise gw.TaskNotFound(f"No task {request.path_params['task_id']}", param="task_id")
    if task.job_id is not None:
        await state.landed(job_uuid=task.job_id)
    return JSONResponse(_task_json(task))


def recover_tasks(state: State) -> None:
    """At start, after the jobs were resolved: an unfinished task whose job was settled for its
    result is completed with it; any other is failed (its job refunded). Unfinished
    idempotent requests are forgotten (their clients are gone; a retry runs anew)."""
    for task in state.tasks.unfinished():
        if task.kind != "task":
            state.tasks.forget(task.task_id)
            continue
        row = state.journal.get(task.job_id) if task.job_id else None
        if row is not None and row["state"] == "settled" and task.body is not None:
            result = json.loads(task.body)
            result["usage"] = dict(result.get("usage") or {}) | cost_fields(row["cost"] or 0)
            headers = {
                "x-decentral-job-id": row["job_id"],
                "x-decentral-tx-signature": row["lock_tx"],
                "x-decentral-settlement-tx": row["settlement_tx"],
                "x-decentral-worker": row["worker"],
                "x-decentral-job-nonce": str(row["nonce"]),
                "x-decentral-cost": str(row["cost"]),
            }
            state.tasks.finish(task.task_id, "completed", 200, json.dumps(result).encode(), headers)
            continue
        error = gw.GatewayError("The gateway restarted before this task finished; its job's credits are refunded")
        error.code = "task_interrupted"
        state.tasks.finish(task.task_id, "failed", 500, json.dumps(gw.envelope(error)).encode(), {})


async def _run(
    state: State,
    client: Pubkey,
    req: ChatCompletionRequest,
    credits_read: asyncio.Task,
    *,
    on_open: Callable[[Job], None] | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> Response:
    """Run one chat completion on a worker: its job opened, run, settled (or refunded and
    retried on another worker when one fails before its first token)."""
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
        if on_open is not None:
            on_open(job)
        try:
            if req.stream:
                return await _stream(state, req, job, remaining, kwargs)
            return await _complete(state, req, job, remaining, kwargs, on_result)
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


async def _complete(
    state: State,
    req: ChatCompletionRequest,
    job: Job,
    remaining: int,
    kwargs: dict[str, Any],
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> Response:
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
    texts = [c["message"].get("content") or "" for c in result["choices"]]
    content = result_text(texts)  # what the result hash covers (n > 1: the texts as a JSON array)
    usage = result["usage"]
    if worker.remote:  # its usage is a claim: bill the gateway's own count, never more than claimed
        try:
            usage = _checked_usage(state, job, "".join(texts), None, usage)
        except UsageDisputed as exc:
            state.spawn(refund(state, job, str(exc)))
            raise gw.WorkerFailed(f"{exc}; the job's credits are refunded", headers=job.headers(remaining)) from None
        result["usage"] = usage
    if on_result is not None:
        on_result(result)
    settlement, cost = await settle(state, job, content, usage, done.offer)
    result["model"] = state.settings.model_name
    result["usage"] = dict(result["usage"]) | cost_fields(cost)
    if req.tool_mode is not None:  # the constrained output as tool_calls or content; the output itself kept
        for choice, text in zip(result["choices"], texts, strict=True):
            choice["message"], choice["finish_reason"] = tools.answer(text, choice.get("finish_reason"))
    if req.tool_mode is not None or len(texts) > 1:
        result["decentral"] = {"output": content}
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

    tool_mode = req.tool_mode is not None

    async def events() -> AsyncIterator[bytes]:
        finish: str | None = None
        handed = False
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
                if tool_mode:  # the output becomes tool calls once whole: nothing is sent before
                    finish = chunk["choices"][0].get("finish_reason") or finish
                else:
                    yield f"data: {json.dumps(chunk)}\n\n".encode()
                if delta:
                    parts.append(delta)
                    completion_tokens += 1  # llama.cpp streams one token per chunk
                    if not tool_mode:
                        state.journal.deliver(job.uuid, delta, completion_tokens)
                chunk = await anext(chunks, None)
            state.pool.release(worker)
            released = True
            content = "".join(parts)
            if tool_mode:
                message, reason = tools.answer(content, finish)
                base = {k: first[k] for k in ("id", "object", "created")} | {"model": state.settings.model_name}
                for piece in tools.stream_chunks(base, message, reason):
                    yield f"data: {json.dumps(piece)}\n\n".encode()
                state.journal.deliver(job.uuid, content, completion_tokens)
                handed = True
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
                | ({"output": content} if tool_mode else {})
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
                # a tool call is handed whole or not at all
                content = "".join(parts) if not tool_mode or handed else ""
                tokens = completion_tokens if not tool_mode or handed else 0
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
    listing = model_list(s.model_name, "decentral", info)
    if state.embedder is not None:
        from decentral_chain.gateway.embedding_model import DIMENSIONS, MODEL_ID

        embedding = {
            "type": "embedding",
            "dimensions": DIMENSIONS,
            "price_per_1k_input_tokens": s.embedding_price_per_1k,
            "currency": "credits (µUSDC)",
            "context_length": state.embedder.context_length,
            "workers": [str(state.embedder.wallet)],
        }
        first = listing["data"][0]
        listing["data"].append(
            {"id": MODEL_ID, "object": "model", "created": first.get("created", 0), "owned_by": "decentral"}
            | {"decentral": embedding}
        )
    return JSONResponse(listing)


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


def job_receipt(state: State, row: dict[str, Any]) -> dict[str, Any]:
    """A journaled job's receipt, as /v1/jobs and the webhooks give it (Receipt.parse reads it)."""
    return {
        "job_id": row["job_id"],
        "lock_tx": row["lock_tx"],
        "settlement_tx": row["settlement_tx"],
        "worker": row["worker"],
        "client": row["client"],
        "cost": row["cost"],
        "result_hash": row["result_hash"],
        "nonce": row["nonce"],
        "outcome": "refunded" if row["state"] in ("refunding", "refunded") else "settled",
        "program_id": state.settings.program_id,
    }


async def job_status(request: Request) -> Response:
    state = _state(request)
    wallet = _client_wallet(request, state)
    job_id = request.path_params["job_id"]
    await state.landed(job_uuid=job_id)
    record = state.journal.get(job_id)
    if record is None or record["client"] != str(wallet):  # a key sees its own wallet's jobs only
        raise gw.JobNotFound(f"No job {job_id}", param="job_id")
    receipt = job_receipt(state, record)
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
