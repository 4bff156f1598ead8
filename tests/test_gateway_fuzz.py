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
    "logprobs",
    "top_logprobs",
    "parallel_tool_calls",
    "async",
    "user",
]
schema = st.one_of(
    st.none(),
    st.just({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}),
    st.just({"$ref": "#/nowhere"}),
    weird,
)
tool = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["function", "fn", 3]),
            "function": st.one_of(
                st.fixed_dictionaries(
                    {"name": st.sampled_from(["f", "get_x", "bad name", "", "g" * 65]), "parameters": schema}
                ),
                weird,
            ),
        }
    ),
    weird,
)
STRUCTURED = {
    "tools": st.one_of(st.lists(tool, max_size=3), weird),
    "tool_choice": st.one_of(
        st.sampled_from(["auto", "none", "required", "sometimes"]),
        st.fixed_dictionaries(
            {"type": st.just("function"), "function": st.fixed_dictionaries({"name": st.sampled_from(["f", "g"])})}
        ),
        weird,
    ),
    "response_format": st.one_of(
        st.fixed_dictionaries(
            {
                "type": st.sampled_from(["json_schema", "json_object", "text", "xml"]),
                "json_schema": st.one_of(
                    st.fixed_dictionaries({"name": st.sampled_from(["s", "bad name"]), "schema": schema}), weird
                ),
            }
        ),
        weird,
    ),
    "n": st.one_of(st.integers(-2, 12), weird),
}
idempotency_keys = st.one_of(
    st.none(), st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=300)
)


@st.composite
def bodies(draw):
    if draw(st.booleans()):
        return draw(st.one_of(weird, st.text(max_size=50)))  # not even an object
    body = {"model": MODEL, "messages": draw(messages), "max_tokens": draw(st.integers(1, 4))}
    for name in draw(st.lists(st.sampled_from(FIELDS + list(STRUCTURED)), max_size=4, unique=True)):
        body[name] = draw(STRUCTURED[name]) if name in STRUCTURED else draw(weird)
    return body


def test_no_5xx_and_no_lost_credit(stack):
    url, key = stack["url"], stack["key"]
    statuses = []

    with httpx.Client(timeout=60) as http:

        @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
        @given(body=bodies(), idem=idempotency_keys)
        @example(body={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}, idem=None)
        @example(
            body={
                "model": MODEL,
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 2,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
            idem=None,
        )
        @example(
            body={
                "model": MODEL,
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 2,
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
                "async": True,
            },
            idem="fuzz-key",
        )
        def hit(body, idem):
            headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
            if idem is not None:
                headers["idempotency-key"] = idem
            reply = http.post(f"{url}/v1/chat/completions", content=json.dumps(body).encode(), headers=headers)
            statuses.append(reply.status_code)
            assert reply.status_code < 500, (body, reply.text)
            if reply.status_code == 202:  # an async task holds the one worker: let it finish
                task_url = f"{url}/v1/tasks/{reply.json()['id']}"
                deadline = time.monotonic() + 30
                while http.get(task_url, headers=headers).json()["status"] not in ("completed", "failed"):
                    assert time.monotonic() < deadline
                    time.sleep(0.02)
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


webhook_bodies = st.one_of(
    weird,
    st.fixed_dictionaries(
        {
            "url": st.one_of(
                st.sampled_from(
                    [
                        "http://127.0.0.1/",
                        "http://localhost:8000/x",
                        "http://[::1]/",
                        "http://169.254.169.254/",
                        "https://10.0.0.1/",
                        "gopher://x",
                        "http://",
                        "http://a b/",
                    ]
                ),
                weird,
            ),
            "events": st.one_of(
                st.lists(st.sampled_from(["job.settled", "job.failed", "credits.low", "nope"]), max_size=4), weird
            ),
        },
        optional={"credits_low_threshold": st.one_of(st.integers(-5, 10**15), weird)},
    ),
)


def test_webhook_and_task_routes_answer_hostile_input_with_4xx(stack):
    """/v1/webhooks bodies (no private destination is allowed here) and /v1/tasks ids: never
    a 5xx, always OpenAI's envelope, and no webhook ever created for a private address."""
    url, key = stack["url"], stack["key"]

    with httpx.Client(timeout=30) as http:

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(body=webhook_bodies, task_id=st.text(alphabet="abcdef0123456789_tk", max_size=40))
        def hit(body, task_id):
            auth = {"x-api-key": key}
            reply = http.post(f"{url}/v1/webhooks", content=json.dumps(body).encode(), headers=auth)
            assert reply.status_code == 400, (body, reply.text)
            assert set(reply.json()["error"]) >= {"message", "type", "param", "code"}
            task = http.get(f"{url}/v1/tasks/{task_id}" if task_id else f"{url}/v1/tasks/x", headers=auth)
            assert task.status_code == 404 and task.json()["error"]["code"] == "task_not_found"

        hit()
        assert http.get(f"{url}/v1/webhooks", headers={"x-api-key": key}).json()["data"] == []


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
