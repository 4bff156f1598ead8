"""A worker in another process or on another machine (``decentral worker``), seen by the
gateway through the same surface as an in-process one.

Its wallet, model, price, context and slots come from its ``/v1/models``; the gateway polls
``/health`` and routes only to a worker that answers, serves the gateway's model at the
gateway's price, and has not been caught overstating usage lately. Every request to it is
signed with the gateway's key (:mod:`decentral_chain.worker.protocol`).

Failures are told apart by whether a token came back: before it, :class:`WorkerUnavailable`
(the job is refunded and the request may go to another worker); after it,
:class:`WorkerLost` (the stream ends with an error event and the job is refunded).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

from decentral_chain.errors import ConsentRefused, WorkerLost, WorkerUnavailable
from decentral_chain.gateway.consent import Produced
from decentral_chain.gateway.tokens import Tokenizer
from decentral_chain.gateway.workers import Completion
from decentral_chain.worker.protocol import sign_request
from decentral_chain.worker.wire import Reply, WireClient, WireError

logger = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 2.0


class RemoteWorker:
    remote = True

    def __init__(
        self,
        url: str,
        gateway: Keypair,
        tokenizer: Tokenizer,
        *,
        model_name: str,
        price: tuple[int, int],
        job_timeout: float = 120.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.name = self.url
        self.gateway = gateway
        self.tokenizer = tokenizer
        self.model_name = model_name
        self.gateway_price = price
        self.job_timeout = job_timeout
        self._http = http
        self.wire = WireClient(self.url, connect_timeout=CONNECT_TIMEOUT_S)
        self.wallet: Pubkey | None = None
        self.price: tuple[int, int] | None = None
        self.context_length = 0
        self.capacity = 1
        self.reachable = False
        self.problem = "not contacted yet"  # why it is not routed to, if it is not
        self.suspended_until = 0.0  # caught overstating usage: not routed to until then

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(self.job_timeout, connect=CONNECT_TIMEOUT_S), limits=limits
            )
        return self._http

    @property
    def healthy(self) -> bool:
        return self.reachable and self.wallet is not None and time.monotonic() >= self.suspended_until

    def suspend(self, seconds: float, why: str) -> None:
        self.suspended_until = time.monotonic() + seconds
        self.problem = why
        logger.warning("worker %s not routed to for %g s: %s", self.url, seconds, why)

    def mark_down(self, why: str) -> None:
        if self.reachable:
            logger.warning("worker %s is down: %s", self.url, why)
        self.reachable = False
        self.problem = why

    async def refresh(self) -> bool:
        """Read the worker's /v1/models (who it is, what it serves, at which price) and /health."""
        try:
            models = (await self.http.get(f"{self.url}/v1/models", timeout=CONNECT_TIMEOUT_S)).json()
            health = await self.http.get(f"{self.url}/health", timeout=CONNECT_TIMEOUT_S)
            entry = next((m for m in models["data"] if m["id"] == self.model_name), None)
            if entry is None:
                self.mark_down(f"does not serve {self.model_name}")
                return False
            info = entry["decentral"]
            wallet = Pubkey.from_string(info["wallet"])
            price = (int(info["price_per_1k_prompt_tokens"]), int(info["price_per_1k_completion_tokens"]))
            context, parallel = int(info["context_length"]), int(info["parallel"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            self.mark_down(f"unreachable or not a decentral worker ({type(exc).__name__}: {exc})")
            return False
        if self.wallet is not None and wallet != self.wallet:
            self.mark_down(f"its wallet changed from {self.wallet} to {wallet}")
            return False
        if price != self.gateway_price:
            self.mark_down(f"publishes price {price}, the gateway charges {self.gateway_price}")
            return False
        if health.status_code != 200:
            self.mark_down(f"/health answered {health.status_code}")
            return False
        self.wallet, self.price, self.context_length, self.capacity = wallet, price, context, max(1, parallel)
        if not self.reachable:
            logger.info("worker %s is up: wallet %s, %d slots", self.url, wallet, self.capacity)
        self.reachable, self.problem = True, ""
        return True

    def prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        return self.tokenizer.prompt_tokens(messages)

    def _signed(self, path: str, body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        raw = json.dumps(body, separators=(",", ":")).encode()
        headers = sign_request(self.gateway, "POST", path, raw) | {"content-type": "application/json"}
        return raw, headers

    async def complete(
        self, job_uuid: str, prompt_tokens: int, kwargs: dict[str, Any], blockhash: Hash | None = None
    ) -> Completion:
        path = "/v1/chat/completions"
        raw, headers = self._signed(path, _body(job_uuid, prompt_tokens, kwargs, blockhash, stream=False))
        start = time.perf_counter()
        try:
            reply = await self.wire.request("POST", path, raw, headers)
        except WireError as exc:
            self.mark_down(str(exc))
            raise WorkerUnavailable(f"worker {self.url} failed: {exc}") from exc
        if reply.status != 200:
            raise WorkerUnavailable(f"worker {self.url} answered {reply.status}: {_message(reply)}")
        try:
            result = json.loads(reply.body)
            timing = reply.headers.get("server-timing", "")
            inference_s = float(timing.split("dur=")[1]) / 1000 if "dur=" in timing else time.perf_counter() - start
            result["choices"][0]["message"]
            int(result["usage"]["prompt_tokens"]), int(result["usage"]["completion_tokens"])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise WorkerUnavailable(f"worker {self.url} answered a malformed completion: {exc}") from exc
        extra = result.pop("decentral", None)
        offer = extra.get("settlement") if isinstance(extra, dict) else None
        return Completion(result, inference_s, offer if isinstance(offer, dict) else None)

    async def stream_chat(
        self, job_uuid: str, prompt_tokens: int, kwargs: dict[str, Any], blockhash: Hash | None = None
    ) -> AsyncIterator[dict]:
        """The worker's chunks; its last one carries ``usage`` (its count) and its settlement offer."""
        path = "/v1/chat/completions"
        raw, headers = self._signed(path, _body(job_uuid, prompt_tokens, kwargs, blockhash, stream=True))
        started = False
        try:
            parts = self.wire.stream("POST", path, raw, headers)
            try:
                head = await anext(parts)
                assert isinstance(head, Reply)
                if head.status != 200:
                    body = b"".join([p async for p in parts if isinstance(p, bytes)])
                    reply = Reply(head.status, head.headers, body)
                    raise WorkerUnavailable(f"worker {self.url} answered {head.status}: {_message(reply)}")
                buffer = b""
                async for piece in parts:
                    assert isinstance(piece, bytes)
                    buffer += piece
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if not line.startswith(b"data: "):
                            continue
                        data = line[6:].strip()
                        if data == b"[DONE]":
                            return
                        chunk = json.loads(data)
                        if "error" in chunk:
                            error = chunk["error"]
                            message = error.get("message", "error") if isinstance(error, dict) else "error"
                            raise (WorkerLost if started else WorkerUnavailable)(f"worker {self.url}: {message}")
                        started = True
                        yield chunk
            finally:
                await parts.aclose()
            raise WorkerLost(f"worker {self.url} ended its stream without [DONE]")
        except (WireError, ValueError) as exc:
            self.mark_down(f"{type(exc).__name__}: {exc}")
            error = WorkerLost if started else WorkerUnavailable
            raise error(f"worker {self.url} failed {'mid-stream' if started else 'before its first token'}") from exc

    def signer(self, job_uuid: str, produced: Produced, price: Callable[[int, int], int], program_id: Pubkey):
        return RemoteConsent(self, job_uuid)

    async def consent(self, job_uuid: str, message: bytes) -> Signature:
        path = "/v1/consent"
        raw, headers = self._signed(path, {"job_id": job_uuid, "message": base64.b64encode(message).decode()})
        try:
            reply = await asyncio.wait_for(self.wire.request("POST", path, raw, headers), self.job_timeout)
        except (WireError, TimeoutError) as exc:
            raise ConsentRefused(f"worker {self.url} could not be asked to sign: {exc}") from exc
        if reply.status != 200:
            raise ConsentRefused(f"worker {self.url} refused to sign: {_message(reply)}")
        try:
            return Signature.from_string(json.loads(reply.body)["signature"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ConsentRefused(f"worker {self.url} answered no signature: {exc}") from exc

    async def aclose(self) -> None:
        await self.wire.aclose()
        if self._http is not None:
            await self._http.aclose()
            self._http = None


class RemoteConsent:
    """A remote worker's signature, asked for over HTTP once the message exists; the
    settlement client checks it against the worker's key before using it."""

    def __init__(self, worker: RemoteWorker, job_uuid: str) -> None:
        assert worker.wallet is not None
        self.worker, self.job_uuid, self._wallet = worker, job_uuid, worker.wallet

    def pubkey(self) -> Pubkey:
        return self._wallet

    def sign_message(self, message: bytes):
        return self.worker.consent(self.job_uuid, message)


def _body(
    job_uuid: str, prompt_tokens: int, kwargs: dict[str, Any], blockhash: Hash | None, *, stream: bool
) -> dict[str, Any]:
    extra: dict[str, Any] = {"job_id": job_uuid, "prompt_tokens": prompt_tokens}
    if blockhash is not None:
        extra["blockhash"] = str(blockhash)
    return kwargs | {"stream": stream, "decentral": extra}


def _message(reply: Reply) -> str:
    try:
        return str(json.loads(reply.body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return reply.body[:200].decode(errors="replace")
