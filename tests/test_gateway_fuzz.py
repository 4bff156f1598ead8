"""Hostile requests against the live gateway: never a 5xx, never a lost credit; and 503
with retry_after when every worker is busy."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import openai
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from decentral_chain.client import EscrowClient
from decentral_chain.gateway.app import GatewaySettings, create_app
from decentral_chain.gateway.journal import Journal
from decentral_chain.gateway.keys import KeyStore
from decentral_chain.gateway.model import default_model_path
from decentral_chain.gateway.workers import Worker, WorkerSpec
from decentral_chain.localnet.chain import LocalChain
from decentral_chain.localnet.genesis import USDC, build_genesis
from decentral_chain.localnet.server import ServerThread
from decentral_chain.localnet.server import create_app as create_rpc_app
from decentral_chain.localnet.svm import token_balance
from tests.conftest import FAST_CHAIN

MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def stack(program_elf, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    g = build_genesis(program_elf, workers=1)
    chain = LocalChain.from_genesis(g, **FAST_CHAIN)
    worker = Worker(WorkerSpec("w", default_model_path(), g.workers[0].keypair, n_ctx=512)).start()
    with ServerThread((create_rpc_app(chain), 0)) as rpc:
        s = GatewaySettings(
            rpc_url=rpc.url(), keys_db=tmp / "keys.db", journal_db=tmp / "journal.db", default_max_tokens=4
        )
        store = KeyStore(s.keys_db)
        key = store.create(g.clients[0].pubkey)
        store.close()

        async def deposit():
            async with EscrowClient(rpc.url()) as escrow:
                await escrow.deposit(g.clients[0].keypair, 3 * USDC)

        asyncio.run(deposit())
        with ServerThread((create_app(s, g.gateway, [worker], max_waiting=0), 0)) as gateway:
            yield {"url": gateway.url(), "key": key, "g": g, "chain": chain, "settings": s}
    worker.close()


weird = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
valid_messages = st.lists(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "system"]), "content": st.text(min_size=1, max_size=30)}),
    min_size=1,
    max_size=2,
)
messages = st.one_of(
    valid_messages,
    valid_messages,
    weird,
    st.lists(
        st.fixed_dictionaries(
            {
                "role": st.sampled_from(["user", "system", "assistant", "robot", 7]),
                "content": st.one_of(st.text(max_size=40), weird),
            }
        ),
        max_size=3,
    ),
)
FIELDS = [
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "frequency_penalty",
    "presence_penalty",
    "seed",
    "response_format",
    "stream",
    "stream_options",
    "n",
    "model",
]


@st.composite
def bodies(draw):
    if draw(st.booleans()):
        return draw(st.one_of(weird, st.text(max_size=50)))  # not even an object
    body = {"model": MODEL, "messages": draw(messages), "max_tokens": draw(st.integers(1, 4))}
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)):
        body[name] = draw(weird)
    return body


def test_no_5xx_and_no_lost_credit(stack):
    url, key = stack["url"], stack["key"]
    statuses = []

    with httpx.Client(timeout=60) as http:

        @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
        @given(body=bodies())
        @example(body={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
        @example(
            body={
                "model": MODEL,
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 2,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        )
        def hit(body):
            reply = http.post(
                f"{url}/v1/chat/completions",
                content=json.dumps(body).encode(),
                headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
            )
            statuses.append(reply.status_code)
            assert reply.status_code < 500, (body, reply.text)
            if reply.status_code >= 400:
                error = reply.json()["error"]
                assert set(error) >= {"message", "type", "param", "code"}

        hit()
    assert 200 in statuses and any(400 <= s < 500 for s in statuses)
    # every job opened by the run ended, and the vault still backs every credit
    deadline = time.monotonic() + 15
    while True:
        journal = Journal(stack["settings"].journal_db)
        open_jobs = journal.open_jobs()
        journal.close()
        if not open_jobs or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert open_jobs == []
    g = stack["g"]
    credits = g.credits(g.clients[0].pubkey)
    assert credits.locked == 0
    assert token_balance(g.svm, g.vault) == credits.free


def test_all_workers_busy_is_503_with_retry_after(stack):
    url, key = stack["url"], stack["key"]
    started = threading.Event()

    def hold_the_worker():
        with httpx.stream(
            "POST",
            f"{url}/v1/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json={
                "model": MODEL,
                "messages": [{"role": "user", "content": "Count to fifty."}],
                "max_tokens": 200,
                "stream": True,
            },
            timeout=60,
        ) as response:
            for _ in response.iter_lines():
                started.set()

    holder = threading.Thread(target=hold_the_worker)
    holder.start()
    assert started.wait(30)
    with (
        openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0) as sdk,
        pytest.raises(openai.APIStatusError) as info,
    ):
        sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    holder.join(60)
    assert info.value.status_code == 503
    assert info.value.body["code"] == "no_worker_free" and info.value.body["details"]["retry_after"] > 0
    assert info.value.response.headers["retry-after"] == "1"
