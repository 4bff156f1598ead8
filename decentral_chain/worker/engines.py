"""Where a worker's inference runs: in-process llama.cpp, or an OpenAI-compatible server.

:class:`LlamaEngine` is today's embedded pool (one llama.cpp instance per slot, each on its
own thread). :class:`HttpEngine` forwards to an inference server already running —
llama.cpp's ``llama-server``, llama-cpp-python's ``llama_cpp.server``, vLLM — and reads its
answers. Both report the worker's *own* token counts: the engine's ``usage`` where it gives
one, else the model's tokenizer (``--model`` beside ``--backend-url``), and one token per
streamed chunk, as llama.cpp streams.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from decentral_chain.errors import WorkerError
from decentral_chain.gateway.tokens import Tokenizer
from decentral_chain.gateway.workers import Worker, WorkerPool
from decentral_chain.worker.protocol import choice_kwargs, merge_choices


class LlamaEngine:
    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers
        self.pool = WorkerPool(workers, max_waiting=len(workers))
        self.context_length = workers[0].context_length
        self.tokenizer = workers[0].tokenizer

    def prompt_tokens(self, messages: list[dict[str, str]]) -> int | None:
        return self.workers[0].prompt_tokens(messages)

    async def complete(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], float]:
        worker = await self.pool.acquire()
        try:
            completion = await worker.complete("", 0, kwargs)
            return completion.result, completion.inference_s
        finally:
            self.pool.release(worker)

    async def stream(self, kwargs: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        worker = await self.pool.acquire()
        try:
            async for chunk in worker.stream_chat("", 0, kwargs):
                yield chunk
        finally:
            self.pool.release(worker)

    async def aclose(self) -> None:
        self.pool.close()


class HttpEngine:
    def __init__(
        self,
        url: str,
        *,
        context_length: int,
        tokenizer: Tokenizer | None = None,
        model: str | None = None,
        timeout: float = 120.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.context_length = context_length
        self.tokenizer = tokenizer
        self.model = model
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=2.0), limits=limits)

    def prompt_tokens(self, messages: list[dict[str, str]]) -> int | None:
        return self.tokenizer.prompt_tokens(messages) if self.tokenizer is not None else None

    def _body(self, kwargs: dict[str, Any], stream: bool) -> dict[str, Any]:
        body = {k: v for k, v in kwargs.items() if v is not None} | {"stream": stream}
        if self.model is not None:
            body["model"] = self.model
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    async def complete(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], float]:
        """One completion; for ``n`` choices, n of them one after the other (engines such as
        llama_cpp.server answer one choice per request)."""
        start = time.perf_counter()
        n = int(kwargs.get("n") or 1)
        results = []
        for i in range(n):
            body = self._body(choice_kwargs(kwargs, i), False)
            try:
                reply = await self.http.post(f"{self.url}/v1/chat/completions", json=body)
            except httpx.HTTPError as exc:
                raise WorkerError(f"inference server {self.url}: {type(exc).__name__}: {exc}") from exc
            if reply.status_code != 200:
                raise WorkerError(f"inference server {self.url} answered {reply.status_code}: {reply.text[:200]}")
            results.append(reply.json())
        return (results[0] if n == 1 else merge_choices(results)), time.perf_counter() - start

    async def stream(self, kwargs: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        try:
            async with self.http.stream(
                "POST", f"{self.url}/v1/chat/completions", json=self._body(kwargs, True)
            ) as reply:
                if reply.status_code != 200:
                    await reply.aread()
                    raise WorkerError(f"inference server {self.url} answered {reply.status_code}: {reply.text[:200]}")
                async for line in reply.aiter_lines():
                    if line.startswith("data: ") and line[6:].strip() != "[DONE]":
                        yield json.loads(line[6:])
        except httpx.HTTPError as exc:
            raise WorkerError(f"inference server {self.url}: {type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        await self.http.aclose()
