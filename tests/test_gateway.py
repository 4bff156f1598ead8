"""The gateway with the official openai SDK (unchanged but for base URL and key), a real
localnet, the real SPL Token program and the real model; every receipt is verified."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import Iterator

import httpx
import openai
import pytest
from solders.pubkey import Pubkey

from decentral_chain.client import EscrowClient
from decentral_chain.gateway.app import GatewaySettings, create_app
from decentral_chain.gateway.keys import KeyStore
from decentral_chain.gateway.model import default_model_path
from decentral_chain.gateway.workers import Worker, WorkerSpec
from decentral_chain.localnet.chain import LocalChain
from decentral_chain.localnet.genesis import USDC, build_genesis
from decentral_chain.localnet.server import ServerThread
from decentral_chain.localnet.server import create_app as create_rpc_app
from decentral_chain.localnet.svm import token_balance
from decentral_chain.receipts import Receipt
from decentral_chain.verify import verify_receipt
from tests.conftest import FAST_CHAIN

MODEL = "smollm2-135m-instruct"
ASK = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is 2 + 2?"}]


@pytest.fixture(scope="module")
def workers(program_elf):
    g = build_genesis(program_elf, workers=2)
    ws = [
        Worker(WorkerSpec(f"w{i}", default_model_path(), w.keypair, n_ctx=1024)).start()
        for i, w in enumerate(g.workers)
    ]
    yield g, ws
    for w in ws:
        w.close()


@pytest.fixture(scope="module")
def stack(workers, tmp_path_factory):
    g, ws = workers
    tmp = tmp_path_factory.mktemp("gateway")
    chain = LocalChain.from_genesis(g, **FAST_CHAIN)
    rpc = ServerThread((create_rpc_app(chain), 0))
    rpc.__enter__()
    settings = GatewaySettings(
        rpc_url=rpc.url(),
        keys_db=tmp / "keys.db",
        journal_db=tmp / "journal.db",
        price_per_1k_prompt=1_000,
        price_per_1k_completion=2_000,
    )
    keys = KeyStore(settings.keys_db)
    rich_key = keys.create(g.clients[0].pubkey, "demo client")
    poor_key = keys.create(Pubkey.new_unique(), "no credits")
    keys.close()

    async def deposit():
        async with EscrowClient(rpc.url()) as escrow:
            await escrow.deposit(g.clients[0].keypair, 5 * USDC)

    asyncio.run(deposit())
    from decentral_chain.gateway.embedding_model import embedding_model_path
    from decentral_chain.gateway.embeddings import Embedder

    embedder = Embedder(embedding_model_path(), g.workers[0].keypair, price_per_1k=20).start()
    gateway = ServerThread((create_app(settings, g.gateway, ws, embedder=embedder), 0))
    gateway.__enter__()
    yield {
        "url": gateway.url(),
        "rpc": rpc.url(),
        "key": rich_key,
        "poor": poor_key,
        "g": g,
        "chain": chain,
        "keys_db": settings.keys_db,
        "journal_db": settings.journal_db,
    }
    gateway.__exit__(None, None, None)
    embedder.close()
    rpc.__exit__(None, None, None)


@contextlib.contextmanager
def sdk(stack, key=None) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=stack["url"] + "/v1", api_key=key or stack["key"], max_retries=0) as client:
        yield client


def verify(stack, headers, content: str, **kw):
    receipt = Receipt.from_headers(headers)
    return asyncio.run(verify_receipt(stack["rpc"], receipt, response=content.encode(), **kw))


def test_non_streaming_completion_returns_a_verifiable_receipt(stack):
    with sdk(stack) as client:
        start = time.perf_counter()
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=ASK, max_tokens=24, temperature=0, seed=3
        )
        elapsed_ms = (time.perf_counter() - start) * 1000
    completion = raw.parse()
    # Server-Timing reports the model call alone: positive and inside what the client waited
    timing = raw.headers["server-timing"]
    assert timing.startswith("inference;dur=")
    assert 0 < float(timing.split("dur=")[1]) < elapsed_ms
    content = completion.choices[0].message.content
    assert content and completion.usage.completion_tokens <= 24 and completion.model == MODEL
    headers = raw.headers
    assert headers["x-decentral-worker"] in {str(w.pubkey) for w in stack["g"].workers}
    assert int(headers["x-decentral-credits-remaining"]) < 5 * USDC
    report = verify(stack, headers, content)
    assert report.verified, report.to_dict()
    assert int(headers["x-decentral-job-nonce"]) == report.facts["nonce"] >= 1  # the lifecycle the receipt names
    expected = -(-(completion.usage.prompt_tokens * 1_000 + completion.usage.completion_tokens * 2_000) // 1000)
    assert report.facts["cost"] == expected
    assert report.facts["result_hash"] == hashlib.sha256(content.encode()).hexdigest()
    # the money in the response: usage.cost in USDC (OpenRouter's field), credits exact, the header
    assert int(headers["x-decentral-cost"]) == expected == completion.usage.model_extra["cost_details"]["credits"]
    assert completion.usage.model_extra["cost"] == expected / 1_000_000


def test_streaming_carries_the_settlement_in_its_final_chunk(stack):
    with (
        sdk(stack) as client,
        client.chat.completions.with_streaming_response.create(
            model=MODEL, messages=ASK, max_tokens=16, temperature=0, stream=True, stream_options={"include_usage": True}
        ) as response,
    ):
        headers = response.headers
        chunks = list(response.parse())
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    final = chunks[-1].model_extra["decentral"]
    usage = next(c.usage for c in chunks if c.usage is not None)
    assert final["job_id"] == headers["x-decentral-job-id"] and usage.completion_tokens >= 1
    assert usage.model_extra["cost_details"]["credits"] == final["cost"] > 0
    assert usage.model_extra["cost"] == final["cost"] / 1_000_000
    receipt_headers = dict(headers) | {
        "x-decentral-settlement-tx": final["settlement_tx"],
        "x-decentral-job-nonce": str(final["nonce"]),
    }
    report = verify(stack, receipt_headers, content, expected_cost=final["cost"])
    assert report.verified, report.to_dict()
    assert report.facts["nonce"] == final["nonce"] >= 1
    job = httpx.get(
        f"{stack['url']}/v1/jobs/{final['job_id']}", headers={"authorization": f"Bearer {stack['key']}"}
    ).json()
    assert job["receipt"]["settlement_tx"] == final["settlement_tx"] and job["status"] == "settled"
    assert job["usage"]["completion_tokens"] == usage.completion_tokens
    assert job["usage"]["cost_details"]["credits"] == final["cost"] and job["usage"]["cost"] == final["cost"] / 1e6
    assert (job["receipt"]["nonce"], job["receipt"]["outcome"]) == (final["nonce"], "settled")
    assert asyncio.run(verify_receipt(stack["rpc"], Receipt.parse(job["receipt"]), response=content.encode())).verified
    other = httpx.get(f"{stack['url']}/v1/jobs/{final['job_id']}", headers={"authorization": f"Bearer {stack['poor']}"})
    assert other.status_code == 404 and other.json()["error"]["code"] == "job_not_found"  # another wallet's key


def test_async_client_and_the_other_endpoints(stack):
    async def run():
        client = openai.AsyncOpenAI(base_url=stack["url"] + "/v1", api_key=stack["key"], max_retries=0)
        completion = await client.chat.completions.create(model=MODEL, messages=ASK, max_completion_tokens=8)
        models = await client.models.list()
        await client.close()
        return completion, models

    completion, models = asyncio.run(run())
    assert completion.choices[0].message.content is not None
    assert models.data[0].id == MODEL and models.data[0].model_extra["decentral"]["context_length"] == 1024
    account = httpx.get(f"{stack['url']}/v1/account", headers={"authorization": f"Bearer {stack['key']}"}).json()
    assert account["wallet"] == str(stack["g"].clients[0].pubkey) and account["credits_remaining"] < 5 * USDC


def test_errors_use_openais_envelope(stack):
    with sdk(stack, "dc-wrong") as client, pytest.raises(openai.AuthenticationError) as auth:
        client.chat.completions.create(model=MODEL, messages=ASK)
    assert auth.value.status_code == 401 and auth.value.body["code"] == "invalid_api_key"
    with sdk(stack, stack["poor"]) as client, pytest.raises(openai.APIStatusError) as poor:
        client.chat.completions.create(model=MODEL, messages=ASK)
    assert poor.value.status_code == 402 and poor.value.body["code"] == "insufficient_credits"
    with sdk(stack) as client, pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-5", messages=ASK)
    assert missing.value.body["param"] == "model"
    with sdk(stack) as client, pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=MODEL, messages=ASK, temperature=7)
    assert bad.value.body["param"] == "temperature" and bad.value.body["type"] == "invalid_request_error"
    raw = httpx.post(
        f"{stack['url']}/v1/chat/completions", content=b"{nope", headers={"authorization": f"Bearer {stack['key']}"}
    )
    assert raw.status_code == 400 and set(raw.json()["error"]) == {"message", "type", "param", "code"}


def test_x_api_key_wins_and_relays_path_is_served(stack):
    """X-API-Key as well as Authorization: Bearer; with both, X-API-Key decides (Relay's rule);
    /v2/openai/v1/chat/completions is the same endpoint."""
    with openai.OpenAI(
        base_url=stack["url"] + "/v2/openai/v1",
        api_key="sk-not-a-key-of-ours",
        max_retries=0,
        default_headers={"X-API-Key": stack["key"]},
    ) as client:
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=ASK, max_tokens=4, user="alice")
    assert raw.parse().choices[0].message.content is not None
    assert verify(stack, raw.headers, raw.parse().choices[0].message.content).verified
    with (
        openai.OpenAI(
            base_url=stack["url"] + "/v1",
            api_key=stack["key"],
            max_retries=0,
            default_headers={"X-API-Key": "dc-not-a-key"},
        ) as client,
        pytest.raises(openai.AuthenticationError),
    ):
        client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=4)


def test_what_the_gateway_cannot_honour_is_named_not_ignored(stack):
    """The legacy functions, logit_bias, top_logprobs without logprobs or above 20, n > 10 or
    streamed n > 1, a max_tokens beyond the context and malformed tools / schemas are 400s
    naming the param (and the limit), before anything is locked."""
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    cases = [
        ({"functions": [tool["function"]]}, "functions"),
        ({"tools": [tool], "tool_choice": {"type": "function", "function": {"name": "g"}}}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": [tool, tool]}, "tools"),
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools.0.function.name"),
        ({"tools": [tool], "response_format": {"type": "json_object"}}, "response_format"),
        ({"response_format": {"type": "json_schema"}}, "response_format"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#/nope"}}}},
            "response_format.json_schema.schema",
        ),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"logit_bias": {"42": 5}}, "logit_bias"),
        ({"n": 11}, "n"),
        ({"n": 2, "stream": True}, "n"),
        ({"max_tokens": 100_000}, "max_tokens"),
        ({"max_completion_tokens": 5_000}, "max_completion_tokens"),
    ]
    before = httpx.get(f"{stack['url']}/v1/account", headers={"X-API-Key": stack["key"]}).json()
    with sdk(stack) as client:
        for extra, param in cases:
            with pytest.raises(openai.BadRequestError) as bad:
                client.chat.completions.create(model=MODEL, messages=ASK, **extra)
            assert bad.value.body["param"] == param, bad.value.body
        with pytest.raises(openai.BadRequestError) as big:
            client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=100_000)
    assert "context is 1024 tokens" in big.value.body["message"] and "at most" in big.value.body["message"]
    after = httpx.get(f"{stack['url']}/v1/account", headers={"X-API-Key": stack["key"]}).json()
    assert (after["credits_remaining"], after["credits_locked"]) == (
        before["credits_remaining"],
        before["credits_locked"],
    )


def test_jobs_left_open_by_a_crash_are_resolved_at_start(stack, workers, tmp_path):
    """A journal as a killed gateway leaves it: one job mid-inference, one inferred. The
    next start refunds the first and settles the second with the recorded result."""
    from decentral_chain.gateway.journal import Journal
    from decentral_chain.localnet.svm import token_balance
    from decentral_chain.pda import new_job_id
    from decentral_chain.verify import Status

    g, ws = workers
    client = g.clients[0]
    unfinished, finished = new_job_id(), new_job_id()

    async def lock_both():
        async with EscrowClient(stack["rpc"]) as escrow:
            a = await escrow.lock_job(g.gateway, client.pubkey, unfinished, 50_000, ws[0].wallet)
            b = await escrow.lock_job(g.gateway, client.pubkey, finished, 50_000, ws[1].wallet)
            return str(a), str(b), await escrow.get_credits(client.pubkey)

    lock_a, lock_b, before = asyncio.run(lock_both())
    journal = Journal(tmp_path / "journal.db")
    import uuid as _uuid

    ua, ub = str(_uuid.UUID(bytes=unfinished)), str(_uuid.UUID(bytes=finished))
    journal.open(ua, str(client.pubkey), str(ws[0].wallet), 50_000, lock_a)
    journal.update(ua, "locked")
    journal.open(ub, str(client.pubkey), str(ws[1].wallet), 50_000, lock_b)
    journal.update(
        ub,
        "inferred",
        cost=12_345,
        result_hash=hashlib.sha256(b"done").hexdigest(),
        prompt_tokens=10,
        completion_tokens=20,
    )
    journal.close()
    worker_before = token_balance(stack["chain"].svm, g.workers[1].token)
    # prices under which 10 + 20 tokens cost 12,345: the worker re-signs only that
    settings = GatewaySettings(
        rpc_url=stack["rpc"],
        keys_db=tmp_path / "keys.db",
        journal_db=tmp_path / "journal.db",
        price_per_1k_prompt=1_234_500,
        price_per_1k_completion=0,
    )
    with ServerThread((create_app(settings, g.gateway, ws), 0)):
        pass  # startup ran recovery; shutdown waited for its settlement
    journal = Journal(tmp_path / "journal.db")
    rows = {r: journal.get(r) for r in (ua, ub)}
    journal.close()
    assert rows[ua]["state"] == "refunded" and rows[ub]["state"] == "settled"
    paid = token_balance(stack["chain"].svm, g.workers[1].token) - worker_before
    assert paid == 12_345 - 12_345 * 250 // 10_000

    async def after():
        async with EscrowClient(stack["rpc"]) as escrow:
            return await escrow.get_credits(client.pubkey), await escrow.get_job(unfinished)

    credits, job = asyncio.run(after())
    assert job is None and credits.locked == before.locked - 100_000
    assert credits.free == before.free + 50_000 + 50_000 - 12_345
    receipt = Receipt(
        job_id=_uuid.UUID(bytes=finished),
        lock_tx=lock_b,
        settlement_tx=rows[ub]["settlement_tx"],
        worker=str(ws[1].wallet),
    )
    report = asyncio.run(verify_receipt(stack["rpc"], receipt, response=b"done"))
    assert report.verified and report.check("result_hash").status == Status.PASS


def test_a_gateway_whose_jobs_could_outlive_their_deadline_does_not_start(stack, tmp_path):
    """job_timeout + confirm_timeout must stay well inside the escrow's refund_timeout (600 s
    here): a settlement after expires_at is refused by the program. (The app's lifespan runs
    this check before it serves.)"""
    from decentral_chain.gateway.app import check_deadline
    from decentral_chain.gateway.errors import GatewayError

    async def check(**overrides) -> None:
        settings = GatewaySettings(
            rpc_url=stack["rpc"], keys_db=tmp_path / "k.db", journal_db=tmp_path / "j.db", **overrides
        )
        async with EscrowClient(stack["rpc"]) as escrow:
            await check_deadline(escrow, settings)

    asyncio.run(check())  # the defaults: 120 + 60 s of 600
    with pytest.raises(GatewayError, match="refund_timeout of 600 s"):
        asyncio.run(check(job_timeout=250, confirm_timeout=60))


def test_a_journaled_settlement_past_its_deadline_is_refunded_at_start(program_elf, workers, tmp_path):
    """A crash left a signed settlement that was never sent; by the next start the Job
    expired, so the program would refuse it: the job is refunded, the journal names the refund
    and its receipt (outcome refunded) verifies."""
    from decentral_chain.gateway.journal import Journal
    from decentral_chain.pda import new_job_id

    _, ws = workers
    g = build_genesis(program_elf, refund_timeout=2)
    chain = LocalChain.from_genesis(g, **FAST_CHAIN)
    with ServerThread((create_rpc_app(chain), 0)) as rpc:
        job_id = new_job_id()

        async def lock():
            async with EscrowClient(rpc.url()) as escrow:
                await escrow.deposit(g.clients[0].keypair, USDC)
                return str(await escrow.lock_job(g.gateway, g.clients[0].pubkey, job_id, 50_000, ws[0].wallet))

        lock_tx = asyncio.run(lock())
        job_uuid = str(uuid.UUID(bytes=job_id))
        journal = Journal(tmp_path / "j.db")
        journal.open(job_uuid, str(g.clients[0].pubkey), str(ws[0].wallet), 50_000, lock_tx)
        journal.update(
            job_uuid,
            "settling",
            cost=10_000,
            result_hash=hashlib.sha256(b"late").hexdigest(),
            prompt_tokens=1,
            completion_tokens=1,
        )
        journal.close()
        time.sleep(3.5)  # past expires_at (refund_timeout 2 s), and a slot later on chain
        settings = GatewaySettings(
            rpc_url=rpc.url(),
            keys_db=tmp_path / "keys.db",
            journal_db=tmp_path / "j.db",
            job_timeout=0.2,
            confirm_timeout=0.5,
        )
        with ServerThread((create_app(settings, g.gateway, ws[:1]), 0)):
            pass
        journal = Journal(tmp_path / "j.db")
        row = journal.get(job_uuid)
        journal.close()
        assert row["state"] == "refunded" and "deadline" in row["error"], row
        receipt = Receipt(
            job_id=uuid.UUID(job_uuid),
            lock_tx=lock_tx,
            settlement_tx=row["settlement_tx"],
            worker=str(ws[0].wallet),
            outcome="refunded",
            client=str(g.clients[0].pubkey),
        )
        report = asyncio.run(verify_receipt(rpc.url(), receipt, program_id=g.program_id, mint=g.mint))
        assert report.verified, report.to_dict()
        assert g.credits(g.clients[0].pubkey).free == USDC


def _second_gateway(stack, workers, tmp_path, **overrides):
    g, ws = workers
    settings = GatewaySettings(
        **{"rpc_url": stack["rpc"], "keys_db": tmp_path / "keys.db", "journal_db": tmp_path / "j.db", **overrides}
    )
    store = KeyStore(settings.keys_db)
    key = store.create(g.clients[0].pubkey)
    store.close()
    return ServerThread((create_app(settings, g.gateway, ws[:1]), 0)), key, settings


def test_a_worker_that_refuses_to_sign_is_never_paid_and_the_client_never_charged(stack, workers, tmp_path):
    """A worker signs only at its own published price; asked to sign the gateway's (higher)
    price it refuses: the answer is an error in OpenAI's envelope and the job is refunded."""
    g, _ = workers
    worker = Worker(
        WorkerSpec("own-price", default_model_path(), g.workers[1].keypair, n_ctx=1024, price_per_1k=(1, 1))
    ).start()
    try:
        settings = GatewaySettings(
            rpc_url=stack["rpc"],
            keys_db=tmp_path / "keys.db",
            journal_db=tmp_path / "j.db",
            price_per_1k_prompt=1_000,
            price_per_1k_completion=2_000,
        )
        store = KeyStore(settings.keys_db)
        key = store.create(g.clients[0].pubkey)
        store.close()
        paid_before = token_balance(stack["chain"].svm, g.workers[1].token)
        with ServerThread((create_app(settings, g.gateway, [worker]), 0)) as server:
            reply = httpx.post(
                f"{server.url()}/v1/chat/completions",
                headers={"authorization": f"Bearer {key}"},
                json={"model": MODEL, "messages": ASK, "max_tokens": 8},
                timeout=60,
            )
            assert reply.status_code == 500 and "refused to sign" in reply.json()["error"]["message"]
            row = _wait_final(settings, reply.headers["x-decentral-job-id"])
        assert row["state"] == "refunded" and "published price" in row["error"]
        assert token_balance(stack["chain"].svm, g.workers[1].token) == paid_before
    finally:
        worker.close()


def _wait_final(settings, job_id: str, timeout: float = 10.0) -> dict:
    from decentral_chain.gateway.journal import Journal

    deadline = time.monotonic() + timeout
    while True:
        journal = Journal(settings.journal_db)
        row = journal.get(job_id)
        journal.close()
        if row and row["state"] in ("settled", "refunded") or time.monotonic() > deadline:
            return row
        time.sleep(0.05)


def test_a_job_that_times_out_is_refunded_with_504(stack, workers, tmp_path):
    server, key, settings = _second_gateway(stack, workers, tmp_path, job_timeout=0.05)
    with server:
        reply = httpx.post(
            f"{server.url()}/v1/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json={"model": MODEL, "messages": ASK, "max_tokens": 400},
            timeout=30,
        )
        assert reply.status_code == 504 and reply.json()["error"]["code"] == "job_timed_out"
        job_id = reply.headers["x-decentral-job-id"]
        row = _wait_final(settings, job_id)
    assert row["state"] == "refunded"

    async def job():
        async with EscrowClient(stack["rpc"]) as escrow:
            return await escrow.get_job(uuid.UUID(job_id).bytes)

    assert asyncio.run(job()) is None  # closed on chain: the locked credits are free again


def test_a_client_leaving_mid_stream_pays_only_for_what_it_was_sent(stack, workers, tmp_path):
    server, key, settings = _second_gateway(stack, workers, tmp_path)
    with server:
        with httpx.stream(
            "POST",
            f"{server.url()}/v1/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json={"model": MODEL, "messages": ASK, "max_tokens": 400, "stream": True, "temperature": 0.9},
            timeout=30,
        ) as response:
            job_id = response.headers["x-decentral-job-id"]
            lines = response.iter_lines()
            received = [next(lines) for _ in range(3)]  # three events, then the client goes away
        assert all(line.startswith("data: ") or line == "" for line in received)
        row = _wait_final(settings, job_id)
    assert row["state"] == "settled", row
    assert 1 <= row["completion_tokens"] < 400
    assert row["cost"] < row["amount"]


@pytest.mark.parametrize("expired", [False, True])
def test_a_settlement_signed_before_a_crash_is_the_one_that_lands(stack, workers, tmp_path, expired):
    """The gateway answers with the settlement's signature, then sends it. Killed in between,
    it finds the signed bytes in its journal at start and sends exactly those, so the receipt
    the client holds verifies. Only if their blockhash expired is a new settlement signed
    (and the job endpoint names it)."""
    from solders.compute_budget import set_compute_unit_limit
    from solders.hash import Hash
    from solders.message import Message
    from solders.transaction import VersionedTransaction

    from decentral_chain.gateway.journal import Journal
    from decentral_chain.instructions import build_settle_job
    from decentral_chain.pda import new_job_id

    g, ws = workers
    client, job_id = g.clients[0], new_job_id()
    digest = hashlib.sha256(b"the answer").digest()

    async def lock_and_sign():
        async with EscrowClient(stack["rpc"]) as escrow:
            lock = await escrow.lock_job(g.gateway, client.pubkey, job_id, 40_000, ws[0].wallet)
            ix = build_settle_job(
                gateway=g.gateway.pubkey(),
                client=client.pubkey,
                job_id=job_id,
                worker_token=g.workers[0].token,
                treasury=(await escrow.get_config()).treasury,
                payer=g.gateway.pubkey(),
                cost=12_000,
                result_hash=digest,
                prompt_tokens=4,
                completion_tokens=4,
                worker=ws[0].wallet,
                nonce=(await escrow.get_job(job_id)).nonce,
            )
            # a compute-unit limit too: bytes the gateway would not sign again by itself
            ixs = [set_compute_unit_limit(100_000), ix]
            signers = [g.gateway, g.workers[0].keypair]  # the worker co-signs
            if expired:  # a blockhash the chain no longer knows
                return lock, VersionedTransaction(
                    Message.new_with_blockhash(ixs, g.gateway.pubkey(), Hash.new_unique()), signers
                )
            return lock, (await escrow.prepare(ixs, g.gateway, signers[1:])).transaction

    lock, signed = asyncio.run(lock_and_sign())
    ujob = str(uuid.UUID(bytes=job_id))
    journal = Journal(tmp_path / "journal.db")
    journal.open(ujob, str(client.pubkey), str(ws[0].wallet), 40_000, str(lock))
    journal.update(
        ujob,
        "settling",
        cost=12_000,
        result_hash=digest.hex(),
        prompt_tokens=4,
        completion_tokens=4,
        settlement_tx=str(signed.signatures[0]),
        settlement_raw=bytes(signed),
    )
    journal.close()
    # prices under which 4 + 4 tokens cost 12,000: what a new settlement's worker will consent to
    settings = GatewaySettings(
        rpc_url=stack["rpc"],
        keys_db=tmp_path / "keys.db",
        journal_db=tmp_path / "journal.db",
        price_per_1k_prompt=1_500_000,
        price_per_1k_completion=1_500_000,
    )
    with ServerThread((create_app(settings, g.gateway, ws), 0)):
        pass  # recovery runs at start
    journal = Journal(tmp_path / "journal.db")
    row = journal.get(ujob)
    journal.close()
    assert row["state"] == "settled"
    assert (row["settlement_tx"] == str(signed.signatures[0])) is not expired
    receipt = Receipt(
        job_id=uuid.UUID(bytes=job_id), lock_tx=str(lock), settlement_tx=row["settlement_tx"], worker=str(ws[0].wallet)
    )
    report = asyncio.run(verify_receipt(stack["rpc"], receipt, response=b"the answer", expected_cost=12_000))
    assert report.verified, report.to_dict()


def _funded_client(stack, credits: int):
    """A new client wallet with ``credits`` deposited and an API key on the stack's gateway."""
    g = stack["g"]
    with stack["chain"].lock:
        wallet = g.new_wallet(usdc=USDC)

    async def deposit():
        async with EscrowClient(stack["rpc"]) as escrow:
            await escrow.deposit(wallet.keypair, credits)

    asyncio.run(deposit())
    store = KeyStore(stack["keys_db"])
    key = store.create(wallet.pubkey)
    store.close()
    return wallet, key


def _credits(stack, owner):
    async def read():
        async with EscrowClient(stack["rpc"]) as escrow:
            return await escrow.get_credits(owner)

    return asyncio.run(read())


def _settled(stack, job_id: str, key: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (
        httpx.get(f"{stack['url']}/v1/jobs/{job_id}", headers={"authorization": f"Bearer {key}"}).json()["status"]
        != "settled"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_credits_withdrawn_after_the_gateways_reading_are_never_spent(stack):
    """The 402 check uses the gateway's recent reading; the chain re-checks at the lock. A
    client that withdrew since gets 402 (streamed or not) and nothing is locked or charged."""
    wallet, key = _funded_client(stack, 20_000)
    with sdk(stack, key) as client:
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=ASK, max_tokens=4)
    _settled(stack, raw.headers["x-decentral-job-id"], key)

    async def withdraw_all():
        async with EscrowClient(stack["rpc"]) as escrow:
            await escrow.withdraw(wallet.keypair, (await escrow.get_credits(wallet.pubkey)).free)

    asyncio.run(withdraw_all())  # the gateway still remembers ~19,900 free credits
    with sdk(stack, key) as client, pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=4, stream=True)
    assert refused.value.status_code == 402 and refused.value.body["code"] == "insufficient_credits"
    with sdk(stack, key) as client, pytest.raises(openai.APIStatusError) as again:
        client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=4)
    assert again.value.status_code == 402
    credits = _credits(stack, wallet.pubkey)
    assert credits.free == 0 and credits.locked == 0 and credits.open_jobs == 0
    from decentral_chain.gateway.journal import Journal

    journal = Journal(stack["journal_db"])
    states = [
        r[0]
        for r in journal.db.execute(
            "SELECT state FROM jobs WHERE client = ? ORDER BY created", (str(wallet.pubkey),)
        ).fetchall()
    ]
    journal.close()
    # the stream's lock was refused by the chain; the last request read the chain and never locked
    assert states == ["settled", "rejected"]


def test_a_deposit_counts_at_once(stack):
    """A request the gateway's reading would refuse is checked against the chain first."""
    wallet, key = _funded_client(stack, 100)
    with sdk(stack, key) as client:
        client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=1)  # the reading: ~70 free
        with pytest.raises(openai.APIStatusError) as poor:
            client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=64)  # ceiling > 128
        assert poor.value.status_code == 402

        async def deposit():
            async with EscrowClient(stack["rpc"]) as escrow:
                await escrow.deposit(wallet.keypair, 10_000)

        asyncio.run(deposit())
        completion = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=64)
    assert completion.choices[0].message.content is not None


def test_settlements_of_one_tick_are_sent_together():
    """Settlements wait for the next tick, so those signed within one tick wake in the same
    loop turn (EscrowClient then sends them in one JSON-RPC batch)."""
    from decentral_chain.gateway.lifecycle import next_tick

    async def run():
        loop = asyncio.get_running_loop()
        await next_tick(0.05)  # start just after a tick
        woke: list[float] = []

        async def settle_after(delay: float):
            await asyncio.sleep(delay)
            await next_tick(0.05)
            woke.append(loop.time())

        await asyncio.gather(settle_after(0.0), settle_after(0.02))
        return woke

    first, second = asyncio.run(run())
    assert abs(first - second) < 0.005  # together, though they started 20 ms apart
    assert abs(first / 0.05 - round(first / 0.05)) < 0.4  # on a tick (give or take a busy machine)


def test_the_account_and_the_job_agree_with_the_receipt_at_once(stack, workers, tmp_path):
    """The settlement goes out just after the answer (here on a slow 0.5 s tick, as if the
    chain were far away); the gateway's own endpoints wait for it, so right after a
    completion they report what its headers said."""
    server, key, _ = _second_gateway(stack, workers, tmp_path, settle_tick=0.5)
    auth = {"authorization": f"Bearer {key}"}
    with server:
        with openai.OpenAI(base_url=server.url() + "/v1", api_key=key, max_retries=0) as client:
            before = httpx.get(f"{server.url()}/v1/account", headers=auth).json()["credits_remaining"]
            raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=ASK, max_tokens=16)
        account = httpx.get(f"{server.url()}/v1/account", headers=auth).json()
        job = httpx.get(f"{server.url()}/v1/jobs/{raw.headers['x-decentral-job-id']}", headers=auth).json()
    assert account["credits_locked"] == 0
    assert account["credits_remaining"] == int(raw.headers["x-decentral-credits-remaining"])
    assert job["status"] == "settled" and not job["open_on_chain"]
    assert job["receipt"]["settlement_tx"] == raw.headers["x-decentral-settlement-tx"]
    assert before - account["credits_remaining"] == job["receipt"]["cost"]


def test_a_paused_escrow_is_a_503_and_charges_nothing(stack, workers, tmp_path):
    """The admin pauses the program: the chain refuses the lock, the client gets 503 with
    retry_after (streamed or not) and its credits do not move."""
    from decentral_chain.instructions import build_update_config

    g = stack["g"]
    server, key, _ = _second_gateway(stack, workers, tmp_path)

    async def pause(paused: bool):
        async with EscrowClient(stack["rpc"]) as escrow:
            await escrow.send([build_update_config(admin=g.admin.pubkey(), paused=paused)], g.admin)

    with server:
        with openai.OpenAI(base_url=server.url() + "/v1", api_key=key, max_retries=0) as client:
            client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=2)  # the gateway reads the credits
            httpx.get(f"{server.url()}/v1/account", headers={"authorization": f"Bearer {key}"})  # its settlement landed
            before = _credits(stack, g.clients[0].pubkey)
            asyncio.run(pause(True))
            try:
                for stream in (False, True):
                    with pytest.raises(openai.APIStatusError) as paused:
                        client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=2, stream=stream)
                    assert paused.value.status_code == 503 and paused.value.body["code"] == "escrow_paused"
                    assert paused.value.body["details"]["retry_after"] > 0
            finally:
                asyncio.run(pause(False))
    after = _credits(stack, g.clients[0].pubkey)
    assert (after.free, after.locked) == (before.free, before.locked)


def test_an_unreachable_chain_is_a_503_to_retry(stack, workers, tmp_path):
    """The RPC cannot be reached before anything is locked: 503 chain_unavailable with
    retry_after, in OpenAI's envelope — for a completion and for the account."""
    from decentral_chain.localnet.server import free_port_pair

    server, key, _ = _second_gateway(stack, workers, tmp_path, rpc_url=f"http://127.0.0.1:{free_port_pair()}")
    with server:
        with (
            openai.OpenAI(base_url=server.url() + "/v1", api_key=key, max_retries=0) as client,
            pytest.raises(openai.APIStatusError) as down,
        ):
            client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=2)
        account = httpx.get(f"{server.url()}/v1/account", headers={"authorization": f"Bearer {key}"})
    assert down.value.status_code == 503 and down.value.body["code"] == "chain_unavailable"
    assert down.value.body["details"]["retry_after"] > 0
    assert account.status_code == 503 and account.json()["error"]["code"] == "chain_unavailable"


# ------------------------------------------------------------- async tasks and idempotency


def _task(server_url: str, key: str, task_id: str, until: str = "completed", timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        task = httpx.get(f"{server_url}/v1/tasks/{task_id}", headers={"x-api-key": key}).json()
        if task.get("status") in (until, "failed") or time.monotonic() > deadline:
            return task
        time.sleep(0.05)


def test_an_async_task_answers_202_at_once_and_its_result_verifies(stack, workers, tmp_path):
    """Relay's async mode through the openai SDK: 202 with the task, its job and its lock
    signature; the task completes with the completion and a receipt that verifies; it survives
    a gateway restart (the journal); another wallet's key sees nothing; stream + async is a 400."""
    g = stack["g"]
    server, key, settings = _second_gateway(stack, workers, tmp_path)
    with server:
        with openai.OpenAI(base_url=server.url() + "/v1", api_key=key, max_retries=0) as client:
            raw = client.chat.completions.with_raw_response.create(
                model=MODEL, messages=ASK, max_tokens=12, temperature=0, extra_body={"async": True}
            )
            assert raw.http_response.status_code == 202
            accepted = raw.http_response.json()
            assert accepted["object"] == "task" and accepted["status"] in ("pending", "running")
            assert accepted["job_id"] == raw.headers["x-decentral-job-id"]
            assert accepted["lock_tx"] == raw.headers["x-decentral-tx-signature"]
            assert raw.headers["location"] == f"/v1/tasks/{accepted['id']}"
            task = _task(server.url(), key, accepted["id"])  # waits for its settlement to land
            before = _credits(stack, g.clients[0].pubkey)
            with pytest.raises(openai.BadRequestError) as both:
                client.chat.completions.create(
                    model=MODEL, messages=ASK, max_tokens=4, stream=True, extra_body={"async": True}
                )
            assert both.value.body["param"] == "async"
    assert task["status"] == "completed", task
    content = task["result"]["choices"][0]["message"]["content"]
    receipt = task["receipt"]
    assert receipt["job_id"] == accepted["job_id"] and receipt["lock_tx"] == accepted["lock_tx"]
    assert task["result"]["usage"]["cost_details"]["credits"] == receipt["cost"] > 0
    headers = {
        "x-decentral-job-id": receipt["job_id"],
        "x-decentral-tx-signature": receipt["lock_tx"],
        "x-decentral-settlement-tx": receipt["settlement_tx"],
        "x-decentral-worker": receipt["worker"],
        "x-decentral-job-nonce": str(receipt["nonce"]),
    }
    assert verify(stack, headers, content).verified
    # the 400 locked nothing
    after = _credits(stack, g.clients[0].pubkey)
    assert (after.free, after.locks) == (before.free, before.locks)
    # a restarted gateway still serves the task from its journal
    server, _, settings = _second_gateway(stack, workers, tmp_path)
    store = KeyStore(settings.keys_db)
    stranger = store.create(Pubkey.new_unique())
    store.close()
    with server:
        again = httpx.get(f"{server.url()}/v1/tasks/{accepted['id']}", headers={"x-api-key": key}).json()
        other = httpx.get(f"{server.url()}/v1/tasks/{accepted['id']}", headers={"x-api-key": stranger})
        unknown = httpx.get(f"{server.url()}/v1/tasks/task_nope", headers={"x-api-key": key})
    assert again == task
    assert other.status_code == 404 and other.json()["error"]["code"] == "task_not_found"
    assert unknown.status_code == 404


def test_an_interrupted_task_is_failed_and_refunded_at_restart(stack, workers, tmp_path):
    """A task whose gateway stopped before its result: at the next start its job is refunded
    (the journal's recovery) and the task says failed, not pending for ever."""
    from decentral_chain.gateway.tasks import TaskStore

    server, key, settings = _second_gateway(stack, workers, tmp_path)
    with server:
        pass  # the journal and task tables exist
    store = TaskStore(settings.journal_db, settings.task_retention)
    orphan = store.create(str(stack["g"].clients[0].pubkey), "task", "0" * 64, None)
    sync = store.create(str(stack["g"].clients[0].pubkey), "sync", "0" * 64, "k-1")
    store.close()
    server, _, _ = _second_gateway(stack, workers, tmp_path)
    with server:
        task = httpx.get(f"{server.url()}/v1/tasks/{orphan.task_id}", headers={"x-api-key": key}).json()
    assert task["status"] == "failed" and task["error"]["code"] == "task_interrupted"
    store = TaskStore(settings.journal_db, settings.task_retention)
    assert store.get(sync.task_id) is None  # an unfinished synchronous request is forgotten: its key is free
    store.close()


def test_tasks_expire_after_their_retention(stack, workers, tmp_path):
    server, key, _ = _second_gateway(stack, workers, tmp_path, task_retention=1.0)
    with server:
        accepted = httpx.post(
            f"{server.url()}/v1/chat/completions",
            headers={"x-api-key": key},
            json={"model": MODEL, "messages": ASK, "max_tokens": 2, "async": True},
        ).json()
        assert _task(server.url(), key, accepted["id"])["status"] == "completed"
        time.sleep(1.2)
        gone = httpx.get(f"{server.url()}/v1/tasks/{accepted['id']}", headers={"x-api-key": key})
    assert gone.status_code == 404


def test_an_idempotent_retry_returns_the_first_answer_and_charges_once(stack, workers, tmp_path):
    g = stack["g"]
    server, key, _ = _second_gateway(stack, workers, tmp_path)
    with server:
        with openai.OpenAI(base_url=server.url() + "/v1", api_key=key, max_retries=0) as client:
            client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=2)  # credits read, settled
            httpx.get(f"{server.url()}/v1/account", headers={"x-api-key": key})
            before = _credits(stack, g.clients[0].pubkey).free
            idem = {"Idempotency-Key": f"order-{uuid.uuid4()}"}
            first = client.chat.completions.with_raw_response.create(
                model=MODEL, messages=ASK, max_tokens=10, extra_headers=idem
            )
            again = client.chat.completions.with_raw_response.create(
                model=MODEL, messages=ASK, max_tokens=10, extra_headers=idem
            )
            assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
            assert again.parse().model_dump() == first.parse().model_dump()
            for name in ("x-decentral-job-id", "x-decentral-settlement-tx", "x-decentral-cost"):
                assert again.headers[name] == first.headers[name]
            with pytest.raises(openai.BadRequestError) as other_body:
                client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=11, extra_headers=idem)
            assert other_body.value.body["param"] == "Idempotency-Key"
            # a stream under a key: the retry gets the same events, nothing run again
            skey = {"Idempotency-Key": f"stream-{uuid.uuid4()}"}
            streams = []
            for _ in range(2):
                with client.chat.completions.with_streaming_response.create(
                    model=MODEL, messages=ASK, max_tokens=6, stream=True, extra_headers=skey
                ) as response:
                    streams.append([c.model_dump() for c in response.parse()])
            assert streams[0] == streams[1]
            final = streams[0][-1]["decentral"]
            httpx.get(f"{server.url()}/v1/account", headers={"x-api-key": key})  # settlements landed
        after = _credits(stack, g.clients[0].pubkey).free
    assert before - after == int(first.headers["x-decentral-cost"]) + final["cost"]  # each charged once
    report = verify(stack, first.headers, first.parse().choices[0].message.content)
    assert report.verified


def test_an_idempotent_async_retry_returns_the_same_task(stack, workers, tmp_path):
    server, key, _ = _second_gateway(stack, workers, tmp_path)
    body = {"model": MODEL, "messages": ASK, "max_tokens": 4, "async": True}
    headers = {"x-api-key": key, "Idempotency-Key": "same-task"}
    with server:
        first = httpx.post(f"{server.url()}/v1/chat/completions", headers=headers, json=body)
        again = httpx.post(f"{server.url()}/v1/chat/completions", headers=headers, json=body)
        too_long = headers | {"Idempotency-Key": "k" * 256}
        bad = httpx.post(f"{server.url()}/v1/chat/completions", headers=too_long, json=body)
        _task(server.url(), key, first.json()["id"])
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again.json()["job_id"] == first.json()["job_id"]
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "Idempotency-Key"


# ------------------------------------------------------------------ tools and JSON schemas

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]},
    },
}
WEATHER_ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def _receipt_of_output(stack, headers, output: str):
    report = verify(stack, headers, output)
    assert report.verified, report.to_dict()
    return report


def test_tools_give_tool_calls_whose_arguments_match_the_schema(stack):
    """required / a named function / auto, through the openai SDK: tool_calls with JSON
    arguments that parse and match the function's schema, finish_reason tool_calls; the
    receipt verifies against the model's output (decentral.output); a follow-up turn with the
    tool's result answers in words."""
    with sdk(stack) as client:
        for choice, tools_given in (
            ("required", [WEATHER, TIME]),
            ({"type": "function", "function": {"name": "get_weather"}}, [WEATHER, TIME]),
        ):
            raw = client.chat.completions.with_raw_response.create(
                model=MODEL, messages=WEATHER_ASK, tools=tools_given, tool_choice=choice, max_tokens=60, temperature=0
            )
            completion = raw.parse()
            message = completion.choices[0].message
            assert completion.choices[0].finish_reason == "tool_calls" and message.content is None
            [call] = message.tool_calls
            assert call.type == "function" and call.id.startswith("call_")
            args = json.loads(call.function.arguments)
            if call.function.name == "get_weather":
                assert set(args) == {"city", "unit"} and args["unit"] in ("celsius", "fahrenheit")
                assert isinstance(args["city"], str)
            else:
                assert call.function.name == "get_time" and isinstance(args["zone"], str)
            if isinstance(choice, dict):
                assert call.function.name == "get_weather"
            output = completion.model_extra["decentral"]["output"]
            assert json.loads(output) == {"name": call.function.name, "arguments": args}
            _receipt_of_output(stack, raw.headers, output)
        # the tool's result goes back; auto lets the model answer in words or call again
        follow = client.chat.completions.create(
            model=MODEL,
            messages=[
                *WEATHER_ASK,
                {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
                {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 21, "sky": "clear"}'},
            ],
            tools=[WEATHER],
            tool_choice="auto",
            max_tokens=60,
            temperature=0,
        )
        reply = follow.choices[0].message
        assert reply.content or reply.tool_calls
        if reply.tool_calls:
            assert follow.choices[0].finish_reason == "tool_calls"
            json.loads(reply.tool_calls[0].function.arguments)
        # none: no tool is called, the answer is plain text
        plain = client.chat.completions.create(
            model=MODEL, messages=WEATHER_ASK, tools=[WEATHER], tool_choice="none", max_tokens=8
        )
        assert plain.choices[0].message.tool_calls is None and "decentral" not in (plain.model_extra or {})


def test_streamed_tool_calls_are_assembled_by_the_sdk(stack):
    with (
        sdk(stack) as client,
        client.chat.completions.with_streaming_response.create(
            model=MODEL,
            messages=WEATHER_ASK,
            tools=[WEATHER],
            tool_choice="required",
            max_tokens=60,
            temperature=0,
            stream=True,
        ) as response,
    ):
        headers = response.headers
        chunks = list(response.parse())
    calls = [c.choices[0].delta.tool_calls for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert calls[0][0].id.startswith("call_") and calls[0][0].function.name == "get_weather"
    arguments = "".join(piece[0].function.arguments or "" for piece in calls)
    assert set(json.loads(arguments)) == {"city", "unit"}
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["tool_calls"]
    final = chunks[-1].model_extra["decentral"]
    assert json.loads(final["output"])["arguments"] == json.loads(arguments)
    receipt_headers = dict(headers) | {
        "x-decentral-settlement-tx": final["settlement_tx"],
        "x-decentral-job-nonce": str(final["nonce"]),
    }
    _receipt_of_output(stack, receipt_headers, final["output"])

    # and the async SDK's stream helper accumulates the same call
    async def run():
        client = openai.AsyncOpenAI(base_url=stack["url"] + "/v1", api_key=stack["key"], max_retries=0)
        async with client.chat.completions.stream(
            model=MODEL, messages=WEATHER_ASK, tools=[WEATHER], tool_choice="required", max_tokens=60
        ) as stream:
            done = await stream.get_final_completion()
        await client.close()
        return done

    done = asyncio.run(run())
    assert done.choices[0].message.tool_calls[0].function.name == "get_weather"
    json.loads(done.choices[0].message.tool_calls[0].function.arguments)


def test_json_schema_output_always_matches_its_schema(stack):
    schema = {
        "type": "object",
        "properties": {
            "answer": {"type": "integer"},
            "confidence": {"type": "string", "enum": ["low", "high"]},
        },
        "required": ["answer", "confidence"],
        "additionalProperties": False,
    }
    with sdk(stack) as client:
        for seed in (1, 2, 3):
            raw = client.chat.completions.with_raw_response.create(
                model=MODEL,
                messages=ASK,
                max_tokens=40,
                seed=seed,
                temperature=1.0,
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "sum", "schema": schema, "strict": True},
                },
            )
            content = raw.parse().choices[0].message.content
            data = json.loads(content)
            assert set(data) == {"answer", "confidence"}
            assert isinstance(data["answer"], int) and data["confidence"] in ("low", "high")
            assert verify(stack, raw.headers, content).verified  # the hash is over the content, as usual


def test_n_choices_are_one_job_settled_on_their_total(stack):
    """n = 3 through the SDK: three choices (their own seeds), one job whose lock covered
    three times max_tokens and whose settlement bills the prompt once and the three
    completions' tokens; the receipt verifies over the JSON array of the three texts."""
    with sdk(stack) as client:
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=ASK, max_tokens=12, n=3, seed=7, temperature=1.0
        )
    completion = raw.parse()
    assert [c.index for c in completion.choices] == [0, 1, 2]
    texts = [c.message.content for c in completion.choices]
    output = completion.model_extra["decentral"]["output"]
    assert output == json.dumps(texts, ensure_ascii=False, separators=(",", ":"))
    report = verify(stack, raw.headers, output)
    assert report.verified, report.to_dict()
    usage = completion.usage
    assert report.facts["completion_tokens"] == usage.completion_tokens <= 36
    assert report.facts["prompt_tokens"] == usage.prompt_tokens
    expected = -(-(usage.prompt_tokens * 1_000 + usage.completion_tokens * 2_000) // 1000)
    assert report.facts["cost"] == expected == int(raw.headers["x-decentral-cost"])
    ceiling = -(-(usage.prompt_tokens * 1_000 + 3 * 12 * 2_000) // 1000)
    assert report.facts["locked"] == ceiling


def test_logprobs_are_shaped_as_openai_shapes_them(stack):
    """logprobs / top_logprobs through the SDK, plain and streamed: one entry per token of the
    content (their bytes make up the text), log-probabilities <= 0, top_logprobs sorted, of
    the size asked for, and the sampled token's logprob at most the best one's."""
    import math

    with sdk(stack) as client:
        completion = client.chat.completions.create(
            model=MODEL, messages=ASK, max_tokens=10, logprobs=True, top_logprobs=3, temperature=0
        )
        content = completion.choices[0].message.content
        entries = completion.choices[0].logprobs.content
        assert b"".join(bytes(e.bytes) for e in entries).decode() == content
        for e in entries:
            assert e.logprob <= 0 and len(e.top_logprobs) == 3
            tops = [t.logprob for t in e.top_logprobs]
            assert tops == sorted(tops, reverse=True) and e.logprob <= tops[0] + 1e-6
            assert math.isclose(e.logprob, tops[0], abs_tol=1e-4)  # greedy: the best token was taken
        streamed = list(
            client.chat.completions.create(
                model=MODEL, messages=ASK, max_tokens=10, logprobs=True, temperature=0, stream=True
            )
        )
        tokens = [e for c in streamed if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
        text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
        assert text == content and [e.token for e in tokens] == [e.token for e in entries]
        assert all(e.top_logprobs == [] for e in tokens)
        plain = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=4)
        assert plain.choices[0].logprobs is None


def test_a_retry_while_the_first_is_running_is_a_409_and_relays_task_path_answers(stack, workers, tmp_path):
    server, key, _ = _second_gateway(stack, workers, tmp_path)
    headers = {"x-api-key": key, "Idempotency-Key": "in-flight"}
    body = {"model": MODEL, "messages": ASK, "max_tokens": 40, "stream": True}
    with server:
        url = f"{server.url()}/v1/chat/completions"
        with httpx.stream("POST", url, headers=headers, json=body, timeout=60) as first:
            lines = first.iter_lines()
            next(lines)  # the first is running: it holds the key
            second = httpx.post(url, headers=headers, json=body, timeout=60)
            rest = list(lines)
        replay = httpx.post(url, headers=headers, json=body, timeout=60)  # once it finished: the same events
        accepted = httpx.post(
            f"{server.url()}/v2/openai/v1/chat/completions",
            headers={"x-api-key": key},
            json={"model": MODEL, "messages": ASK, "max_tokens": 2, "async": True},
        ).json()
        task = _task(server.url(), key, accepted["id"])
        relay = httpx.get(f"{server.url()}/v2/openai/v1/tasks/{accepted['id']}", headers={"x-api-key": key}).json()
    assert second.status_code == 409 and second.json()["error"]["code"] == "idempotency_key_in_use"
    assert "data: [DONE]" in rest and replay.headers["idempotent-replayed"] == "true"
    assert task["status"] == "completed" and relay == task
