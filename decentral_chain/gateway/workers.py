"""llama.cpp workers: one model instance per worker, one dedicated thread per instance.

A ``Llama`` object used from two threads crashes, and runs 1.6–1.8× slower on a thread
other than the one that loaded it (../shared/design/llama.md). So each :class:`Worker`
loads its model on its own thread and runs every call there, for its whole life. Each
worker holds its own keypair: its address is where its jobs are paid, and its signature —
given only to a settlement it checked (:mod:`decentral_chain.gateway.consent`) — is what
``settle_job`` requires.

The gateway sees every worker — this in-process :class:`Worker` or a
:class:`~decentral_chain.gateway.remote.RemoteWorker` in another process or on another
machine — through one surface: ``wallet``, ``capacity``, ``healthy``, ``prompt_tokens()``,
``complete()``, ``stream_chat()`` and ``signer()`` (the consent that co-signs a settlement).

:class:`WorkerPool` hands out the healthy, least-busy worker with a free slot; callers
beyond the free slots wait in a bounded queue, and past that :class:`NoWorkerFree` (the
gateway's 503, with retry_after).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from decentral_chain.errors import NoWorkerFree, WorkerError
from decentral_chain.gateway import logprobs
from decentral_chain.gateway.consent import ConsentSigner, Produced
from decentral_chain.gateway.tokens import Tokenizer
from decentral_chain.worker.protocol import choice_kwargs, merge_choices

T = TypeVar("T")
_STOP = object()


@dataclass(slots=True)
class Completion:
    """A finished chat completion (OpenAI's shape, ``usage`` by the worker's count) and how
    long the model itself took."""

    result: dict[str, Any]
    inference_s: float
    offer: dict[str, Any] | None = None  # a remote worker's settlement, signed in advance


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
    """In-process: one llama.cpp instance on a thread of its own."""

    capacity = 1
    healthy = True
    remote = False

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self._calls: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=f"llama-{spec.name}", daemon=True)
        self._loaded = threading.Event()
        self._load_error: BaseException | None = None
        self.llama: Any = None
        self.context_length = spec.n_ctx
        self.tokenizer: Tokenizer | None = None
        self._wallet = spec.keypair.pubkey()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def wallet(self) -> Pubkey:
        return self._wallet

    @property
    def price(self) -> tuple[int, int] | None:
        return self.spec.price_per_1k

    def signer(self, job_uuid: str, produced: Produced, price: Callable[[int, int], int], program_id: Pubkey):
        """The worker's signature for the one settlement that matches what it produced."""
        return ConsentSigner(self.spec.keypair, produced, price, program_id)

    async def complete(self, job_uuid: str, prompt_tokens: int, kwargs: dict[str, Any], blockhash=None) -> Completion:
        return Completion(*await self.call(lambda llama: _timed_completion(llama, kwargs)))

    def stream_chat(
        self, job_uuid: str, prompt_tokens: int, kwargs: dict[str, Any], blockhash=None
    ) -> AsyncIterator[dict]:
        return self.stream(lambda llama: _stream_chat(llama, kwargs))

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
                n_threads_batch=self.spec.n_threads,  # llama-cpp-python's default is every core
                verbose=False,
            )
            self.llama.create_completion("warm", max_tokens=1)  # warm on this thread
            self.context_length = self.llama.n_ctx()
            self.tokenizer = Tokenizer(self.llama)
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
        assert self.tokenizer is not None, "start() the worker first"
        return self.tokenizer.prompt_tokens(messages)

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


def _timed_completion(llama: Any, kwargs: dict[str, Any]) -> tuple[dict, float]:
    """create_chat_completion on the worker thread (``n`` times for n choices, one after the
    other; with logprobs when asked), and how long exactly that took."""
    start = time.perf_counter()
    n = int(kwargs.get("n") or 1)
    results = [_one_choice(llama, choice_kwargs(kwargs, i)) for i in range(n)]
    result = results[0] if n == 1 else merge_choices(results)
    return result, time.perf_counter() - start


def _one_choice(llama: Any, kwargs: dict[str, Any]) -> dict:
    with logprobs.recording(llama, kwargs) as (call, recorder):
        result = llama.create_chat_completion(**call)
    if recorder is not None:
        text = result["choices"][0]["message"].get("content") or ""
        result["choices"][0]["logprobs"] = logprobs.shape(recorder.content(text))
    return result


def _stream_chat(llama: Any, kwargs: dict[str, Any]) -> Iterator[dict]:
    """A streamed completion; with logprobs, each chunk carries those of its tokens."""
    with logprobs.recording(llama, kwargs) as (call, recorder):
        for chunk in llama.create_chat_completion(stream=True, **call):
            if recorder is not None and chunk.get("choices"):
                delta = chunk["choices"][0].get("delta", {})
                chunk["choices"][0]["logprobs"] = logprobs.shape(recorder.new()) if delta.get("content") else None
            yield chunk


class WorkerPool:
    """Hands out a slot of the healthy worker least busy (busy slots / capacity); among equals
    the one freed last, since under light load one warm instance serves (its CPU caches and
    llama.cpp's prompt-prefix cache still hold the last job), about 5% faster than taking
    turns. Up to ``max_waiting`` callers wait for a slot, in the order they came."""

    def __init__(self, workers: Sequence[Any], *, max_waiting: int = 8, retry_after: float = 1.0) -> None:
        if not workers:
            raise ValueError("a pool needs at least one worker")
        self.workers = list(workers)
        self.max_waiting = max_waiting
        self.retry_after = retry_after
        self._busy = {id(w): 0 for w in self.workers}
        self._freed = {id(w): 0 for w in self.workers}  # when each was last released (a counter)
        self._clock = itertools.count(1)
        self._waiters: deque[tuple[asyncio.Future, frozenset[int]]] = deque()

    def _pick(self, exclude: frozenset[int]) -> Any | None:
        free = [w for w in self.workers if w.healthy and id(w) not in exclude and self._busy[id(w)] < w.capacity]
        if not free:
            return None
        return min(free, key=lambda w: (self._busy[id(w)] / w.capacity, -self._freed[id(w)]))

    async def acquire(self, exclude: Sequence[Any] = ()) -> Any:
        """A slot of a worker not in ``exclude``; NoWorkerFree if none can come soon."""
        skip = frozenset(id(w) for w in exclude)
        worker = self._pick(skip)
        if worker is not None:
            self._busy[id(worker)] += 1
            return worker
        if len(self._waiters) >= self.max_waiting or not any(w.healthy and id(w) not in skip for w in self.workers):
            raise NoWorkerFree(self.retry_after)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        entry = (future, skip)
        self._waiters.append(entry)
        try:
            return await future
        except BaseException:
            if entry in self._waiters:
                self._waiters.remove(entry)
            elif future.done() and not future.cancelled():  # handed a slot as we were cancelled
                self.release(future.result())
            raise

    def release(self, worker: Any) -> None:
        self._busy[id(worker)] -= 1
        self._freed[id(worker)] = next(self._clock)
        self.dispatch()

    def dispatch(self) -> None:
        """Hand free slots to waiters, in order (also after a worker turns healthy)."""
        while self._waiters:
            future, skip = self._waiters[0]
            if future.done():
                self._waiters.popleft()
                continue
            worker = self._pick(skip)
            if worker is None:
                return
            self._waiters.popleft()
            self._busy[id(worker)] += 1
            future.set_result(worker)

    @property
    def waiting(self) -> int:
        """Callers waiting for a slot."""
        return len(self._waiters)

    def busy_slots(self, worker: Any) -> int:
        return self._busy[id(worker)]

    @property
    def busy(self) -> int:
        return sum(self._busy.values())

    @property
    def capacity(self) -> int:
        return sum(w.capacity for w in self.workers if w.healthy)

    def close(self) -> None:
        for w in self.workers:
            if not w.remote:
                w.close()
