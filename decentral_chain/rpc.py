"""The package's one JSON-RPC client: calls made together travel together.

Every call is queued; whatever was queued in the same event-loop turn leaves as one HTTP
request (a JSON-RPC batch of up to ``batch_size``; a lone call is a plain request), with at
most ``max_in_flight`` requests at a time. Verifying many receipts, or a gateway's sends and
status polls, are then a few large requests instead of thousands of small ones. Only
transport errors are retried (with backoff, then :class:`RpcUnavailable`); an HTTP status
other than 200, an answer that is not JSON, or a JSON-RPC error is raised at once as
:class:`RpcError` with its code — the Solana codes are named below.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from decentral_chain.errors import RpcError, RpcUnavailable

# JSON-RPC 2.0
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# Solana's server errors (agave rpc-client-api custom_error.rs)
BLOCK_CLEANED_UP = -32001
SEND_TRANSACTION_PREFLIGHT_FAILURE = -32002
TRANSACTION_SIGNATURE_VERIFICATION_FAILURE = -32003
BLOCK_NOT_AVAILABLE = -32004
NODE_UNHEALTHY = -32005
SLOT_SKIPPED = -32007
NO_SNAPSHOT = -32008
LONG_TERM_STORAGE_SLOT_SKIPPED = -32009
UNSUPPORTED_TRANSACTION_VERSION = -32015

# commitment levels, weakest first
PROCESSED = "processed"
CONFIRMED = "confirmed"
FINALIZED = "finalized"
COMMITMENTS = (PROCESSED, CONFIRMED, FINALIZED)


class JsonRpc:
    """JSON-RPC over httpx with batching (see the module docstring). ``async with`` closes it."""

    def __init__(
        self,
        url: str,
        *,
        retries: int = 3,
        backoff: float = 0.1,
        timeout: float = 30.0,
        batch_size: int = 100,
        max_in_flight: int = 4,
    ) -> None:
        self.url = url
        self.retries = retries
        self.backoff = backoff
        self.batch_size = batch_size
        # certificates are loaded only for https endpoints (it costs ~30 ms per client)
        self.http = httpx.AsyncClient(timeout=timeout, verify=url.startswith("https://"))
        self._queue: list[tuple[dict, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._ids = 0

    async def __aenter__(self) -> JsonRpc:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def call(self, method: str, params: list) -> Any:
        """The ``result`` of one call (it may share an HTTP request with others)."""
        self._ids += 1
        future = asyncio.get_running_loop().create_future()
        self._queue.append(({"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params}, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        """Drain the queue until it is empty and nothing is in flight. Calls made while a
        send is pending are picked up here: between the final check and this task ending
        there is no await, so a later call always finds the flusher done and starts one."""
        await asyncio.sleep(0)  # let every caller of this turn enqueue
        sends: set[asyncio.Task] = set()
        while self._queue or sends:
            while self._queue and not self._in_flight.locked():
                batch, self._queue = self._queue[: self.batch_size], self._queue[self.batch_size :]
                await self._in_flight.acquire()
                sends.add(asyncio.create_task(self._send(batch)))
            if sends:
                _, sends = await asyncio.wait(sends, return_when=asyncio.FIRST_COMPLETED)

    async def _send(self, batch: list[tuple[dict, asyncio.Future]]) -> None:
        try:
            body: Any = batch[0][0] if len(batch) == 1 else [request for request, _ in batch]
            replies = await self._post(body)
            by_id = {
                r.get("id"): r for r in (replies if isinstance(replies, list) else [replies]) if isinstance(r, dict)
            }
            for request, future in batch:
                reply = by_id.get(request["id"])
                if future.done():
                    continue
                if reply is None:
                    future.set_exception(RpcError(INTERNAL_ERROR, f"no reply to {request['method']}"))
                elif "error" in reply:
                    err = reply["error"] if isinstance(reply["error"], dict) else {"message": str(reply["error"])}
                    code = err.get("code")
                    future.set_exception(
                        RpcError(
                            code if isinstance(code, int) else INTERNAL_ERROR,
                            str(err.get("message", "")),
                            err.get("data"),
                        )
                    )
                else:
                    future.set_result(reply.get("result"))
        except Exception as exc:  # transport or HTTP failure: every caller of the batch gets it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        finally:
            self._in_flight.release()

    async def _post(self, body: Any) -> Any:
        for attempt in range(self.retries + 1):
            try:
                response = await self.http.post(self.url, json=body)
                break
            except httpx.TransportError as exc:
                if attempt == self.retries:
                    raise RpcUnavailable(f"RPC {self.url} unreachable: {exc}") from exc
                await asyncio.sleep(self.backoff * 2**attempt)
        if response.status_code != 200:
            raise RpcError(response.status_code, f"HTTP {response.status_code} from {self.url}")
        try:
            return response.json()
        except ValueError as exc:
            raise RpcError(PARSE_ERROR, f"{self.url} did not answer JSON") from exc

    async def aclose(self) -> None:
        await self.http.aclose()
