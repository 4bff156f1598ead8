"""llama.cpp workers: one model instance per worker, one dedicated thread per instance.

A ``Llama`` object used from two threads crashes, and runs 1.6–1.8× slower on a thread
other than the one that loaded it (../shared/design/llama.md). So each :class:`Worker`
loads its model on its own thread and runs every call there, for its whole life. Each
worker holds its own keypair: its address is where its jobs are paid, and its signature —
given only to a settlement it checked (:mod:`decentral_chain.gateway.consent`) — is what
``settle_job`` requires.

:class:`WorkerPool` hands out free workers; callers beyond the free workers wait in a
bounded queue, and past that :class:`NoWorkerFree` (the gateway's 503, with retry_after).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from decentral_chain.errors import NoWorkerFree, WorkerError
from decentral_chain.gateway.consent import ConsentSigner, Produced

T = TypeVar("T")
_STOP = object()


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    name: str
    model_path: Path
    keypair: Keypair
    n_ctx: int = 2048
    n_threads: int = 1
    #: the worker's own published price (credits per 1,000 prompt / completion tokens); it
    #: signs settlements only at that price. None: the gateway's price.
    price_per_1k: tuple[int, int] | None = None


class Worker:
    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self._calls: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=f"llama-{spec.name}", daemon=True)
        self._loaded = threading.Event()
        self._load_error: BaseException | None = None
        self.llama: Any = None
        self.context_length = spec.n_ctx
        self._formatter: Any = None
        self._wallet = spec.keypair.pubkey()

    @property
    def wallet(self) -> Pubkey:
        return self._wallet

    def consent(self, produced: Produced, price: Callable[[int, int], int], program_id: Pubkey) -> ConsentSigner:
        """The worker's signature for the one settlement that matches what it produced."""
        return ConsentSigner(self.spec.keypair, produced, price, program_id)

    def start(self, timeout: float = 120.0) -> Worker:
        self._thread.start()
        if not self._loaded.wait(timeout):
            raise WorkerError(f"{self.spec.name}: model did not load within {timeout:g} s")
        if self._load_error is not None:
            raise WorkerError(f"{self.spec.name}: cannot load {self.spec.model_path}: {self._load_error}")
        return self

    def _run(self) -> None:
        try:
            from llama_cpp import Llama

            self.llama = Llama(
                model_path=str(self.spec.model_path),
                n_ctx=self.spec.n_ctx,
                n_threads=self.spec.n_threads,
                verbose=False,
            )
            self.llama.create_completion("warm", max_tokens=1)  # warm on this thread
            self.context_length = self.llama.n_ctx()
            template = self.llama.metadata.get("tokenizer.chat_template")
            if template:
                from llama_cpp.llama_chat_format import Jinja2ChatFormatter

                self._formatter = Jinja2ChatFormatter(template, eos_token="", bos_token="")
        except BaseException as exc:  # reported to start(); the thread ends
            self._load_error = exc
            self._loaded.set()
            return
        self._loaded.set()
        while True:
            item = self._calls.get()
            if item is _STOP:
                return
            fn, future = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(self.llama))
                except BaseException as exc:
                    future.set_exception(exc)

    def prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        """Tokens of the chat-formatted prompt, with the model's own template, counted on the
        caller's thread (no hop to the inference thread and back): tokenizing reads only the
        vocabulary, which inference never changes — llama.cpp's own server tokenizes on its
        HTTP threads too."""
        if self._formatter is not None:
            text = self._formatter(messages=messages).prompt
        else:
            text = "\n".join(f"{m['role']}: {m['content']}" for m in messages)
        return len(self.llama.tokenize(text.encode(), add_bos=True, special=True))

    def submit(self, fn: Callable[[Any], T]) -> concurrent.futures.Future[T]:
        """Run ``fn(llama)`` on this worker's thread."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._calls.put((fn, future))
        return future

    async def call(self, fn: Callable[[Any], T]) -> T:
        return await asyncio.wrap_future(self.submit(fn))

    async def stream(self, fn: Callable[[Any], Iterator[T]]) -> AsyncIterator[T]:
        """Iterate ``fn(llama)`` on the worker thread, yielding each item here as it comes.
        Leaving the loop early (a client that went away) stops the generation."""
        loop = asyncio.get_running_loop()
        items: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()

        def produce(llama: Any) -> None:
            iterator = fn(llama)
            try:
                for item in iterator:
                    loop.call_soon_threadsafe(items.put_nowait, ("item", item))
                    if stop.is_set():
                        break
            except BaseException as exc:
                loop.call_soon_threadsafe(items.put_nowait, ("error", exc))
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
                loop.call_soon_threadsafe(items.put_nowait, ("end", None))

        self.submit(produce)
        try:
            while True:
                kind, value = await items.get()
                if kind == "item":
                    yield value
                elif kind == "error":
                    raise value
                else:
                    return
        finally:
            stop.set()

    def close(self) -> None:
        self._calls.put(_STOP)
        self._thread.join(timeout=30)


class WorkerPool:
    """Free workers are handed out at once; up to ``max_waiting`` callers wait for one, in
    the order they came. The worker freed last goes out first: under light load one warm
    instance serves (its CPU caches and llama.cpp's prompt-prefix cache still hold the last
    job), about 5% faster than taking turns."""

    def __init__(self, workers: list[Worker], *, max_waiting: int = 8, retry_after: float = 1.0) -> None:
        if not workers:
            raise ValueError("a pool needs at least one worker")
        self.workers = workers
        self.max_waiting = max_waiting
        self.retry_after = retry_after
        self._free: asyncio.Queue[Worker] | None = None
        self._waiting = 0

    def _queue(self) -> asyncio.Queue[Worker]:
        if self._free is None:
            self._free = asyncio.LifoQueue()
            for w in self.workers:
                self._free.put_nowait(w)
        return self._free

    async def acquire(self) -> Worker:
        free = self._queue()
        if free.empty() and self._waiting >= self.max_waiting:
            raise NoWorkerFree(self.retry_after)
        self._waiting += 1
        try:
            return await free.get()
        finally:
            self._waiting -= 1

    def release(self, worker: Worker) -> None:
        self._queue().put_nowait(worker)

    @property
    def busy(self) -> int:
        return len(self.workers) - self._queue().qsize()

    def close(self) -> None:
        for w in self.workers:
            w.close()
