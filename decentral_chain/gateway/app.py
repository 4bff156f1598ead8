"""The OpenAI-compatible gateway: settings, shared state, and the app with its lifespan.

One on-chain job per chat completion; the parts live in their own modules:

- :mod:`.routes`     the HTTP routes (chat completions, models, account, jobs, health, metrics)
- :mod:`.lifecycle`  lock → run → sign → settle / refund, the journal states, recovery
- :mod:`.workers`    in-process llama.cpp workers and the pool that routes to any worker
- :mod:`.remote`     workers in other processes or on other machines (``decentral worker``)
- :mod:`.consent`    what a worker signs, and what it refuses
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from starlette.applications import Starlette
from starlette.routing import Route

from decentral_chain.abi import PROGRAM_ID
from decentral_chain.client import EscrowClient
from decentral_chain.errors import DecentralError
from decentral_chain.gateway import embeddings, notify, routes
from decentral_chain.gateway import errors as gw
from decentral_chain.gateway.credits import CreditsBook
from decentral_chain.gateway.journal import Journal
from decentral_chain.gateway.keys import KeyStore
from decentral_chain.gateway.lifecycle import recover
from decentral_chain.gateway.metrics import Metrics
from decentral_chain.gateway.tasks import TaskStore
from decentral_chain.gateway.tokens import Tokenizer
from decentral_chain.gateway.webhooks import Deliverer, WebhookStore
from decentral_chain.gateway.workers import WorkerPool

logger = logging.getLogger(__name__)
LANDING_WAIT_S = 2.0  # how long /v1/account and /v1/jobs wait for a settlement on its way


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
    lock_delay: float = Field(
        default=0.004,
        ge=0,
        le=0.05,
        description="Seconds a non-streamed job's lock waits for the model's thread to start",
    )
    health_interval: float = Field(default=2.0, gt=0, description="Seconds between polls of remote workers' /health")
    suspend_s: float = Field(
        default=60.0, ge=0, description="Seconds a worker that overstated its usage is not routed to"
    )
    keys_db: Path = Field(description="SQLite file of hashed API keys")
    journal_db: Path = Field(description="SQLite file of the job journal")
    embedding_price_per_1k: int = Field(default=20, ge=0, description="Credits per 1,000 embedded input tokens")
    webhooks_allow_private: bool = Field(
        default=False, description="Webhooks may go to loopback / private / link-local addresses"
    )
    webhook_retry_base: float = Field(default=1.0, gt=0, description="Seconds before a webhook's first retry")
    webhook_retry_cap: float = Field(default=300.0, gt=0, description="Longest wait between webhook retries")
    webhook_max_attempts: int = Field(default=12, ge=1, description="Attempts before an event is marked failed")
    webhook_timeout: float = Field(default=10.0, gt=0, description="Seconds a receiver has to answer")
    webhook_poll_interval: float = Field(
        default=2.0, gt=0, description="Seconds between reads of watched wallets' credits (deposits, low credits)"
    )
    task_retention: float = Field(
        default=86_400.0,
        gt=0,
        description="Seconds async tasks and Idempotency-Key results are kept (then 404 / the key is free again)",
    )


@dataclass
class State:
    settings: GatewaySettings
    gateway: Keypair
    pool: WorkerPool
    keys: KeyStore
    journal: Journal
    escrow: EscrowClient
    credits: CreditsBook
    tokenizer: Any  # the gateway's own token counter (the model's vocabulary)
    tasks: TaskStore
    webhooks: WebhookStore
    deliverer: Deliverer
    embedder: Any = None  # the embedding model (embeddings.Embedder), if served
    metrics: Metrics = field(default_factory=Metrics)
    background: set[asyncio.Task] = field(default_factory=set)
    settling: dict[str, tuple[Pubkey, asyncio.Task]] = field(default_factory=dict)  # job → (client, its send)

    @property
    def context_length(self) -> int:
        return max((w.context_length for w in self.pool.workers if w.healthy), default=0)

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


def gateway_metrics(state: State) -> Metrics:
    m = state.metrics
    m.counter("decentral:jobs_total", "Jobs ended, by outcome (settled, refunded).")
    m.counter("decentral:failures_total", "Failures, by reason.")
    m.counter("llamacpp:prompt_tokens_total", "Number of prompt tokens processed.")
    m.counter("llamacpp:tokens_predicted_total", "Number of generation tokens processed.")
    m.gauge("llamacpp:requests_processing", "Number of requests processing.", lambda: state.pool.busy)
    m.gauge("llamacpp:requests_deferred", "Number of requests deferred.", lambda: state.pool.waiting)
    m.gauge("decentral:workers_healthy", "Workers routed to.", lambda: sum(w.healthy for w in state.pool.workers))
    m.gauge("decentral:slots_total", "Slots of the healthy workers.", lambda: state.pool.capacity)
    m.histogram("decentral:settlement_latency_seconds", "From a signed settlement to its confirmation.")
    return m


async def watch_workers(state: State) -> None:
    """Poll the remote workers' /health and /v1/models; a worker that comes back is routed to."""
    remote = [w for w in state.pool.workers if w.remote]
    while remote:
        await asyncio.gather(*(w.refresh() for w in remote))
        state.pool.dispatch()
        await asyncio.sleep(state.settings.health_interval)


def create_app(
    settings: GatewaySettings,
    gateway: Keypair,
    workers: Sequence[Any],
    *,
    max_waiting: int = 8,
    tokenizer: Tokenizer | None = None,
    embedder: Any = None,
) -> Starlette:
    """The ASGI app; its lifespan owns the key store, journal, client and worker pool.
    ``workers``: in-process :class:`~.workers.Worker` and/or :class:`~.remote.RemoteWorker`;
    ``tokenizer``: the gateway's own count of remote workers' tokens (default: the first
    in-process worker's)."""
    from starlette.exceptions import HTTPException

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        escrow = EscrowClient(settings.rpc_url, program_id=Pubkey.from_string(settings.program_id), poll_interval=0.02)
        own_count = tokenizer or next((w.tokenizer for w in workers if not w.remote), None)
        if own_count is None:
            raise gw.GatewayError("remote workers need the gateway's own tokenizer (the model file)")
        async with escrow:
            await check_deadline(escrow, settings)
            webhooks = WebhookStore(settings.journal_db)
            state = State(
                settings,
                gateway,
                WorkerPool(workers, max_waiting=max_waiting),
                KeyStore(settings.keys_db),
                Journal(settings.journal_db),
                escrow,
                CreditsBook(escrow, max_age=settings.credits_max_age),
                own_count,
                TaskStore(settings.journal_db, settings.task_retention),
                webhooks,
                Deliverer(
                    webhooks,
                    allow_private=settings.webhooks_allow_private,
                    retry_base=settings.webhook_retry_base,
                    retry_cap=settings.webhook_retry_cap,
                    max_attempts=settings.webhook_max_attempts,
                    timeout=settings.webhook_timeout,
                ),
            )
            state.journal.listener = lambda job_id, new: notify.on_job(state, job_id, new)
            state.embedder = embedder
            gateway_metrics(state)
            app.state.gateway = state
            remote = [w for w in workers if w.remote]
            await asyncio.gather(*(w.refresh() for w in remote))
            recovered = await recover(state)
            if any(recovered.values()):
                logger.warning("resolved jobs left open by the last run: %s", recovered)
            routes.recover_tasks(state)
            watcher = asyncio.create_task(watch_workers(state))
            delivering = asyncio.create_task(state.deliverer.run())
            watching = asyncio.create_task(notify.watch_credits(state))
            try:
                yield
            finally:
                watcher.cancel()
                delivering.cancel()
                watching.cancel()
                for task in list(state.background):
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(task, timeout=settings.confirm_timeout)
                await state.credits.aclose()
                for w in remote:
                    await w.aclose()
                state.keys.close()
                state.journal.close()
                state.tasks.close()
                await state.deliverer.aclose()
                state.webhooks.close()

    return Starlette(
        routes=[
            Route("/v1/chat/completions", routes.chat_completions, methods=["POST"]),
            Route("/v2/openai/v1/chat/completions", routes.chat_completions, methods=["POST"]),  # Relay's path
            Route("/v1/embeddings", embeddings.embeddings, methods=["POST"]),
            Route("/v1/models", routes.models, methods=["GET"]),
            Route("/v1/account", routes.account, methods=["GET"]),
            Route("/v1/jobs/{job_id}", routes.job_status, methods=["GET"]),
            Route("/v1/tasks/{task_id}", routes.task_status, methods=["GET"]),
            Route("/v1/webhooks", notify.create_webhook, methods=["POST"]),
            Route("/v1/webhooks", notify.list_webhooks, methods=["GET"]),
            Route("/v1/webhooks/{webhook_id}", notify.get_webhook, methods=["GET"]),
            Route("/v1/webhooks/{webhook_id}", notify.delete_webhook, methods=["DELETE"]),
            Route("/v2/openai/v1/tasks/{task_id}", routes.task_status, methods=["GET"]),
            Route("/health", routes.health, methods=["GET"]),
            Route("/metrics", routes.metrics, methods=["GET"]),
        ],
        exception_handlers={
            gw.GatewayError: gw.handle,
            HTTPException: routes.starlette_http,
            Exception: routes.unhandled,
        },
        lifespan=lifespan,
    )
