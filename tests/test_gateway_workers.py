"""llama.cpp workers with the real default model (SmolLM2-135M, fetched and checked)."""

from __future__ import annotations

import asyncio
import time

import pytest
from solders.keypair import Keypair

from decentral_chain.errors import NoWorkerFree, WorkerError
from decentral_chain.gateway.model import SHA256, default_model_path, file_sha256
from decentral_chain.gateway.workers import Worker, WorkerPool, WorkerSpec

MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name three colors."}]


@pytest.fixture(scope="module")
def model_path():
    return default_model_path()


@pytest.fixture(scope="module")
def workers(model_path):
    ws = [Worker(WorkerSpec(f"w{i}", model_path, Keypair(), n_ctx=512)).start() for i in range(2)]
    yield ws
    for w in ws:
        w.close()


def chat(**kw):
    return lambda llama: llama.create_chat_completion(messages=MESSAGES, **kw)


def test_the_default_model_is_the_pinned_file(model_path):
    assert model_path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert file_sha256(model_path) == SHA256


def test_completions_are_deterministic_at_temperature_zero(workers):
    async def run():
        first = await workers[0].call(chat(max_tokens=16, temperature=0.0, seed=7))
        again = await workers[1].call(chat(max_tokens=16, temperature=0.0, seed=7))
        return first, again

    first, again = asyncio.run(run())
    text = first["choices"][0]["message"]["content"]
    assert text and text == again["choices"][0]["message"]["content"]
    usage = first["usage"]
    assert 0 < usage["completion_tokens"] <= 16 and usage["prompt_tokens"] > 5


def test_the_prompt_count_is_the_models_own(workers):
    """The ceiling is priced from this count, on the request's thread: it must equal what
    llama.cpp reports for the same conversation (system, multi-turn, unicode)."""
    conversation = [
        *MESSAGES,
        {"role": "assistant", "content": "Red, green, blue."},
        {"role": "user", "content": "Und auf Deutsch? Ünïcödé — 色"},
    ]
    for messages in (MESSAGES, conversation):
        reported = workers[0].submit(lambda llama, m=messages: llama.create_chat_completion(messages=m, max_tokens=1))
        assert workers[0].prompt_tokens(messages) == reported.result()["usage"]["prompt_tokens"]


def test_streaming_yields_the_same_text_and_can_stop_early(workers):
    async def run():
        full = await workers[0].call(chat(max_tokens=24, temperature=0.0))
        pieces = [
            c["choices"][0]["delta"].get("content", "")
            async for c in workers[0].stream(chat(max_tokens=24, temperature=0.0, stream=True))
        ]
        taken = 0
        async for _ in workers[0].stream(chat(max_tokens=400, temperature=0.0, stream=True)):
            taken += 1
            if taken == 2:
                break  # the client went away
        start = time.monotonic()
        after = await workers[0].call(chat(max_tokens=4, temperature=0.0))  # the worker is free again
        return full, "".join(pieces), time.monotonic() - start, after

    full, streamed, waited, after = asyncio.run(run())
    assert streamed == full["choices"][0]["message"]["content"]
    assert waited < 5 and after["choices"][0]["message"]["content"] is not None


def test_two_workers_run_in_parallel_without_sharing_a_model(workers):
    async def run():
        return await asyncio.gather(
            *(w.call(chat(max_tokens=32, temperature=0.7, seed=i)) for i, w in enumerate(workers))
        )

    results = asyncio.run(run())
    assert all(r["choices"][0]["message"]["content"] for r in results)


def test_the_pool_queues_then_refuses(workers):
    async def run():
        pool = WorkerPool(workers[:1], max_waiting=1, retry_after=2.0)
        held = await pool.acquire()
        waiter = asyncio.create_task(pool.acquire())
        await asyncio.sleep(0)
        with pytest.raises(NoWorkerFree) as info:
            await pool.acquire()
        assert info.value.retry_after == 2.0 and pool.busy == 1
        pool.release(held)
        assert await waiter is held

    asyncio.run(run())


def test_the_pool_hands_out_the_warm_worker_first_and_serves_waiters_in_order(workers):
    async def run():
        pool = WorkerPool(workers, max_waiting=4)
        a = await pool.acquire()
        pool.release(a)
        again = await pool.acquire()  # freed last, out first: not the other, idle one
        b = await pool.acquire()
        first, second = asyncio.create_task(pool.acquire()), asyncio.create_task(pool.acquire())
        await asyncio.sleep(0)
        pool.release(b)
        await asyncio.sleep(0)
        served_first = first.done() and not second.done()  # one worker freed: the earlier waiter has it
        pool.release(again)
        return a, again, b, served_first, {await first, await second}

    a, again, b, served_first, handed = asyncio.run(run())
    assert again is a and b is not a and served_first and handed == {a, b}


def test_a_bad_model_file_is_a_clear_error(tmp_path):
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"GGUF" + bytes(100))
    with pytest.raises(WorkerError, match="cannot load"):
        Worker(WorkerSpec("bad", bogus, Keypair())).start()
