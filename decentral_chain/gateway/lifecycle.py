"""The job lifecycle: lock → run → sign → settle, or refund; journal states; recovery.

Per job: price the ceiling (prompt tokens + max tokens at the published price) → 402 unless
the client's free credits cover it → ``lock_job`` naming the worker (submitted, confirming
while the model runs) → inference → cost from the token counts → ``settle_job`` with the
result hash, co-signed by the worker (its consent: it signs only what it produced) and
journaled, sent as the answer goes out → or ``refund_job`` when the job failed. Every step
is written to the journal before it is taken; what a stream delivered is journaled as it
goes, so recovery after a crash settles exactly that (with the worker's signature) or
refunds when nothing was delivered.

The result hash is sha256 of the UTF-8 bytes of the assistant message's content — the
``choices[0].message.content`` of a completion, or the concatenated ``delta.content`` of a
stream (of the part delivered, for a stream cut short).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from solders.hash import Hash
from solders.message import Message
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from decentral_chain import pda
from decentral_chain.client import PreparedTransaction, pubkey_of
from decentral_chain.errors import (
    ConsentRefused,
    DecentralError,
    EscrowError,
    ProgramError,
    RpcError,
    RpcUnavailable,
    TransactionFailed,
)
from decentral_chain.gateway import errors as gw
from decentral_chain.gateway.consent import Produced, settlement_instruction
from decentral_chain.pda import new_job_id
from decentral_chain.rpc import PROCESSED

if TYPE_CHECKING:
    from decentral_chain.gateway.app import GatewaySettings, State
    from decentral_chain.gateway.schemas import ChatCompletionRequest

logger = logging.getLogger(__name__)
PAUSED_RETRY_S = 30  # retry_after of a 503 while the escrow is paused
CHAIN_RETRY_S = 5  # retry_after of a 503 while the RPC is unreachable


def price_at(per_1k_prompt: int, per_1k_completion: int, prompt_tokens: int, completion_tokens: int) -> int:
    """Credits for a job at these rates per 1,000 tokens, rounded up to the whole credit."""
    return math.ceil((prompt_tokens * per_1k_prompt + completion_tokens * per_1k_completion) / 1000)


def price(settings: GatewaySettings, prompt_tokens: int, completion_tokens: int) -> int:
    """Credits for a job at the gateway's published price."""
    return price_at(settings.price_per_1k_prompt, settings.price_per_1k_completion, prompt_tokens, completion_tokens)


@contextlib.contextmanager
def chain_errors() -> Iterator[None]:
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
    worker: Any  # a Worker or a RemoteWorker
    client: Pubkey
    amount: int
    lock_tx: str
    prompt_tokens: int  # counted once, for the ceiling; the same prompt is billed
    lock_confirmed: asyncio.Task = field(init=False)
    nonce: int | None = None  # the Job's lifecycle nonce, read once the lock landed
    refused: bool = False  # the worker refused to sign its settlement: the job is being refunded
    #: the lock's blockhash and its last valid height: a remote worker signs its settlement
    #: offer over it, so the gateway knows the blockhash is recent
    blockhash: tuple[Hash, int] | None = None

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


async def open_job(
    state: State,
    client: Pubkey,
    worker: Any,
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
    # one job for every choice: the ceiling covers n of them (the prompt is billed once)
    ceiling = max(1, price(state.settings, prompt_tokens, req.n * kwargs["max_tokens"]))
    return await lock_job(state, client, worker, prompt_tokens, ceiling, credits_read, stream=req.stream)


async def lock_job(
    state: State,
    client: Pubkey,
    worker: Any,
    prompt_tokens: int,
    ceiling: int,
    credits_read: asyncio.Task,
    *,
    stream: bool,
) -> tuple[Job, int]:
    """Check the client's credits against ``ceiling`` (402 otherwise), sign the lock naming
    ``worker``, journal it and send it (confirming in the background while the work runs).
    Returns the job and the credits left free. The caller cancels ``credits_read`` if this
    raises."""
    with chain_errors():
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
    state.journal.open(
        str(uuid.UUID(bytes=job_id)), str(client), str(worker.wallet), ceiling, str(pending.signature), prompt_tokens
    )

    job = Job(job_id, worker, client, ceiling, str(pending.signature), prompt_tokens)
    job.blockhash = (pending.transaction.message.recent_blockhash, pending.last_valid_block_height)

    async def submit_and_confirm() -> None:  # runs while the model does; settlement waits for it
        if not stream:
            # let the model's thread start first: it needs the GIL for its own Python (chat
            # template, tokenizing) before llama.cpp releases it, and sending the lock on this
            # thread at that moment delays it (~1 ms, measured); a stream waits for its lock
            # before its first token, so it sends at once
            await asyncio.sleep(state.settings.lock_delay)
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


async def settle(
    state: State,
    job: Job,
    content: str | bytes,
    usage: dict[str, int],
    offer: dict[str, Any] | None = None,
    *,
    rates: tuple[int, int] | None = None,
) -> tuple[str, int]:
    """Settle at the real price (never above the lock), co-signed by the worker (with the
    settlement it offered already signed, if that is exactly this one). ``content`` is what
    the result hash covers (text as UTF-8, or bytes as they are); ``rates`` per 1,000 prompt /
    completion tokens, by default the gateway's chat price. Returns the settlement's
    signature, final once signed; the transaction is on its way, not awaited."""
    if rates is None:
        rates = (state.settings.price_per_1k_prompt, state.settings.price_per_1k_completion)
    cost = min(job.amount, price_at(*rates, usage["prompt_tokens"], usage["completion_tokens"]))
    state.metrics.inc("llamacpp:prompt_tokens_total", usage["prompt_tokens"])
    state.metrics.inc("llamacpp:tokens_predicted_total", usage["completion_tokens"])
    digest = hashlib.sha256(content if isinstance(content, bytes) else content.encode()).digest()
    await job.lock_confirmed  # landed while the model ran (callers checked it with locked)
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
        pending = await sign_settlement(
            state, job.uuid, job.job_id, job.client, job.worker, produced, cost, offer=offer, blockhash=job.blockhash
        )
    except ConsentRefused as exc:
        job.refused = True
        state.metrics.inc("decentral:failures_total", reason="consent_refused")
        state.spawn(refund(state, job, str(exc)))
        raise gw.GatewayError(
            "The worker refused to sign this settlement; the job's credits are refunded",
            headers={"x-decentral-job-id": job.uuid},
        ) from exc
    state.spawn_settlement(
        job.uuid, job.client, submit_settlement(state, job.uuid, job.client, job.amount - cost, pending)
    )
    return str(pending.signature), cost


async def sign_settlement(
    state: State,
    job_uuid: str,
    job_id: bytes,
    client: Pubkey,
    worker: Any,
    produced: Produced,
    cost: int,
    *,
    offer: dict[str, Any] | None = None,
    blockhash: tuple[Hash, int] | None = None,
) -> PreparedTransaction:
    """Sign ``settle_job`` — the gateway, and the worker for what it produced (it refuses
    anything else: ConsentRefused) — then journal the result (cost, hash, token counts) with
    the settlement's signature and bytes in one write, before anything is sent or answered:
    the signature a client is given is always one the gateway can send again."""
    ix = settlement_instruction(
        gateway=pubkey_of(state.gateway),
        client=client,
        job_id=job_id,
        worker=worker.wallet,
        config=await state.escrow.cached_config(),
        cost=cost,
        result_hash=produced.result_hash,
        prompt_tokens=produced.prompt_tokens,
        completion_tokens=produced.completion_tokens,
        nonce=produced.nonce,
        program_id=state.escrow.program_id,
    )
    pending = _accept_offer(state, ix, worker.wallet, offer, blockhash) if offer and blockhash else None
    if pending is None:
        # the worker's own published price, if it has one, else the gateway's
        rates = worker.price or (state.settings.price_per_1k_prompt, state.settings.price_per_1k_completion)
        consent = worker.signer(job_uuid, produced, lambda p, c: price_at(*rates, p, c), state.escrow.program_id)
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


def _accept_offer(
    state: State, ix: Any, worker: Pubkey, offer: dict[str, Any], blockhash: tuple[Hash, int]
) -> PreparedTransaction | None:
    """The worker's pre-signed settlement, if its message is byte for byte the one the gateway
    builds (over the lock's blockhash) and its signature verifies; else None (ask again)."""
    message = Message.new_with_blockhash([ix], pubkey_of(state.gateway), blockhash[0])
    raw = bytes(message)
    try:
        offered = base64.b64decode(str(offer["message"]), validate=True)
        signature = Signature.from_string(str(offer["signature"]))
    except (KeyError, TypeError, ValueError):
        return None
    if offered != raw or not signature.verify(worker, raw):
        return None
    signers = {pubkey_of(state.gateway): state.gateway.sign_message(raw), worker: signature}
    required = message.account_keys[: message.header.num_required_signatures]
    if set(required) != set(signers):
        return None
    tx = VersionedTransaction.populate(message, [signers[k] for k in required])
    return PreparedTransaction(tx, blockhash[1], (ix,), state.gateway, ())


async def submit_settlement(
    state: State, job_uuid: str, client: Pubkey, unspent: int, pending: PreparedTransaction
) -> None:
    """Send a journaled settlement and follow it to confirmation. If that fails the job stays
    ``settling``: the next start sends the same transaction again (or a new one if expired).
    ``unspent`` (locked − cost) is free again once it lands."""
    signed = time.perf_counter()
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
        state.metrics.inc("decentral:jobs_total", outcome="settled")
        state.metrics.observe("decentral:settlement_latency_seconds", time.perf_counter() - signed)
    except DecentralError as exc:
        state.metrics.inc("decentral:failures_total", reason="settlement_unconfirmed")
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


async def resend_settlement(state: State, row: dict[str, Any]) -> bool:
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


async def refund(state: State, job: Job, reason: str) -> None:
    state.journal.update(job.uuid, "refunding", error=reason)
    try:
        await job.lock_confirmed
        signature = await state.escrow.refund_job(state.gateway, job.job_id)
        state.journal.update(job.uuid, "refunded", settlement_tx=str(signature), settlement_raw=None)
        state.credits.move(job.client, job.amount)
        state.metrics.inc("decentral:jobs_total", outcome="refunded")
    except DecentralError as exc:
        logger.error("refund of %s failed: %s", job.uuid, exc)
        state.credits.forget(job.client)


async def locked(state: State, job: Job) -> None:
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
        state.spawn(refund(state, job, f"lock not confirmed: {exc}"))
        raise gw.GatewayError("The job's lock was not confirmed; nothing is charged") from exc


async def settle_partial(state: State, job: Job, content: str, completion_tokens: int) -> None:
    """A client that disconnected mid-stream pays for the tokens it was sent, no more."""
    if job.refused:
        return
    try:
        await settle(state, job, content, job.usage(completion_tokens))
    except DecentralError as exc:
        logger.error("partial settlement of %s failed: %s", job.uuid, exc)


async def recover(state: State) -> dict[str, int]:
    """Resolve every job the journal left open (a crash or a kill): settle it for the recorded
    result if inference had finished, or for what a stream had delivered, with its worker's
    signature; otherwise refund it. Returns the counts."""
    counts = {"settled": 0, "refunded": 0, "closed": 0}
    for row in state.journal.open_jobs():
        try:
            counts[await _resolve(state, row)] += 1
        except DecentralError as exc:
            logger.error("could not resolve job %s at start: %s", row["job_id"], exc)
    return counts


async def _resolve(state: State, row: dict[str, Any]) -> str:
    job_id = uuid.UUID(row["job_id"]).bytes
    onchain = await state.escrow.get_job(job_id)
    if onchain is None:  # nothing open on chain: the lock never landed, or the job already ended
        ended = "settled" if row["settlement_tx"] else "refunded"
        state.journal.update(row["job_id"], ended, error="resolved at start: no open Job on chain")
        return "closed"
    worker = next((w for w in state.pool.workers if w.healthy and w.wallet == onchain.worker), None)
    live = time.time() < onchain.expires_at
    why = "past the settlement deadline" if not live else "its worker is not here to sign"
    if live and row["cost"] is not None and row["result_hash"]:  # finished: settle what was signed
        if row["settlement_raw"] and await resend_settlement(state, row):
            return "settled"
        produced = (bytes.fromhex(row["result_hash"]), row["prompt_tokens"], row["completion_tokens"], row["cost"])
    elif live and row["cost"] is None and row["delivered_tokens"] and row["prompt_tokens"] is not None:
        # a stream cut by the crash: the client pays for what it was sent
        text = row["delivered_text"] or ""
        completion = row["delivered_tokens"]
        if worker is not None and worker.remote:
            completion = min(completion, state.tokenizer.count(text))
        cost = min(onchain.amount, price(state.settings, row["prompt_tokens"], completion))
        produced = (hashlib.sha256(text.encode()).digest(), row["prompt_tokens"], completion, cost)
    else:
        worker, why = None, "inference unfinished, nothing delivered" if live else why
    if worker is not None:
        result_hash, prompt_tokens, completion_tokens, cost = produced
        terms = Produced(
            pda.job_address(job_id, state.escrow.program_id),
            onchain.nonce,
            result_hash,
            prompt_tokens,
            completion_tokens,
            onchain.amount,
        )
        try:
            pending = await sign_settlement(state, row["job_id"], job_id, onchain.client, worker, terms, cost)
        except ConsentRefused as exc:
            why = f"its worker would not sign ({exc})"
        else:
            await submit_settlement(state, row["job_id"], onchain.client, onchain.amount - cost, pending)
            return "settled"
    state.journal.update(
        row["job_id"], "refunding", error=f"resolved at start: {why}", settlement_tx=None, settlement_raw=None
    )
    signature = await state.escrow.refund_job(state.gateway, job_id)
    state.journal.update(row["job_id"], "refunded", settlement_tx=str(signature))
    return "refunded"
