"""Workers as processes of their own: localnet + gateway + two `decentral worker` processes
(one running llama.cpp in-process, one in front of a real `llama_cpp.server`), driven by the
official openai SDK, with workers killed (SIGKILL) mid-stream and mid-settlement."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from decentral_chain import pda
from decentral_chain.client import EscrowClient
from decentral_chain.errors import ConsentRefused
from decentral_chain.gateway.journal import Journal
from decentral_chain.gateway.keys import KeyStore
from decentral_chain.gateway.model import default_model_path
from decentral_chain.gateway.remote import RemoteConsent, RemoteWorker
from decentral_chain.localnet.genesis import USDC
from decentral_chain.localnet.keys import read_keypair
from decentral_chain.localnet.server import ServerThread, free_port_pair
from decentral_chain.receipts import Receipt
from decentral_chain.verify import verify_receipt
from decentral_chain.worker.protocol import sign_request
from tests.test_gateway_crash import CLI, wait_until

MODEL = "smollm2-135m-instruct"
ASK = [{"role": "user", "content": "Say hi"}]


class Network:
    """The processes of one test network, and what the tests need to reach them."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen] = {}
        self.cmds: dict[str, list[str]] = {}
        self.env = {
            **os.environ,
            "DECENTRAL_GATEWAY_KEYS_DB": str(tmp / "keys.db"),
            "DECENTRAL_GATEWAY_JOURNAL_DB": str(tmp / "journal.db"),
            # the gateway CLI reads it: webhooks to this machine's receivers are allowed
            "DECENTRAL_WEBHOOKS_ALLOW_PRIVATE": "1",
        }
        self.ports = {name: free_port_pair() for name in ("rpc", "backend", "a", "b", "gateway")}

    def start(self, name: str, cmd: list[str] | None = None) -> subprocess.Popen:
        if cmd is not None:
            self.cmds[name] = cmd
        with open(self.tmp / f"{name}.log", "ab") as log:  # the process has its own descriptor
            self.procs[name] = subprocess.Popen(self.cmds[name], stdout=log, stderr=log, env=self.env)
        return self.procs[name]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(timeout=30)

    def worker_cmd(self, name: str, keypair: str, *extra: str) -> list[str]:
        return [
            *CLI,
            "worker",
            "--port",
            str(self.ports[name]),
            "--keypair",
            str(self.tmp / keypair),
            "--gateway",
            str(self.gateway.pubkey()),
            "--rpc-url",
            self.rpc,
            "--n-ctx",
            "1024",
            "--lock-wait",
            "2",
            "--ledger",
            str(self.tmp / f"ledger-{name}.db"),
            *extra,
        ]

    def start_worker(self, name: str) -> None:
        self.start(name)
        wait_until(lambda: httpx.get(f"{self.url(name)}/health").status_code == 200)

    def wait_healthy(self, count: int) -> None:
        wait_until(lambda: httpx.get(f"{self.url('gateway')}/health").json()["healthy"] == count)

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()

    # -------------------------------------------------------------- chain reads

    def run(self, coro):
        return asyncio.run(coro)

    async def _balances(self):
        async with EscrowClient(self.rpc) as escrow:
            cfg = await escrow.get_config()
            credits = await escrow.get_credits(self.client.pubkey())
            workers = [await escrow.token_balance(w) for w in self.worker_tokens]
            return await escrow.token_balance(cfg.vault), credits, workers

    def balances(self):
        return self.run(self._balances())

    def journal_rows(self) -> list[dict]:
        journal = Journal(self.tmp / "journal.db")
        rows = [journal.get(r[0]) for r in journal.db.execute("SELECT job_id FROM jobs").fetchall()]
        journal.close()
        return rows

    def final_rows(self) -> list[dict]:
        """Every job of the journal, once each has ended (settled or refunded)."""
        wait_until(lambda: all(r["state"] in ("settled", "refunded", "rejected") for r in self.journal_rows()))
        return self.journal_rows()


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("workers")
    n = Network(tmp)
    model = str(default_model_path())
    try:
        n.start("localnet", [*CLI, "localnet", "--port", str(n.ports["rpc"]), "--keys-dir", str(tmp)])
        n.start(
            "backend",
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                model,
                "--port",
                str(n.ports["backend"]),
                "--n_ctx",
                "1024",
                "--n_threads",
                "1",
                "--interrupt_requests",
                "false",
            ],
        )
        wait_until(lambda: json.loads((tmp / "addresses.json").read_text())["ready"])
        addresses = json.loads((tmp / "addresses.json").read_text())
        n.rpc = addresses["rpc_url"]
        n.gateway = read_keypair(tmp / "gateway-keypair.json")
        n.client = read_keypair(tmp / "client-keypair.json")
        n.workers = [read_keypair(tmp / f"worker-{i}-keypair.json") for i in (1, 2)]
        n.worker_tokens = [
            pda.associated_token_address(w.pubkey(), Pubkey.from_string(addresses["mint"])) for w in n.workers
        ]
        n.start("a", n.worker_cmd("a", "worker-1-keypair.json"))
        n.start(
            "b",
            n.worker_cmd("b", "worker-2-keypair.json", "--backend-url", n.url("backend"), "--model", model),
        )
        store = KeyStore(tmp / "keys.db")
        n.key = store.create(n.client.pubkey())
        store.close()

        async def deposit():
            async with EscrowClient(n.rpc) as escrow:
                await escrow.deposit(n.client, 5 * USDC)

        n.run(deposit())
        workers_file = tmp / "workers.txt"
        workers_file.write_text(f"# the worker in front of llama_cpp.server\n{n.url('b')}\n\n")
        wait_until(lambda: httpx.get(f"{n.url('backend')}/v1/models").status_code == 200)
        for name in ("a", "b"):
            wait_until(lambda name=name: httpx.get(f"{n.url(name)}/health").status_code == 200)
        n.start(
            "gateway",
            [
                *CLI,
                "gateway",
                "--port",
                str(n.ports["gateway"]),
                "--rpc-url",
                n.rpc,
                "--gateway-keypair",
                str(tmp / "gateway-keypair.json"),
                "--worker",
                n.url("a"),
                "--workers-file",
                str(workers_file),
                "--health-interval",
                "5",
            ],
        )
        n.wait_healthy(2)
        n.sdk = openai.OpenAI(base_url=f"{n.url('gateway')}/v1", api_key=n.key, max_retries=0, timeout=60)
        yield n
    finally:
        n.close()


def _story(n: Network, chunks: int) -> tuple[Any, dict, str]:
    """A long stream through the SDK, ``chunks`` of it read: (the stream, the job's journal
    row, the name of the worker running it)."""
    n.wait_healthy(2)
    stream = n.sdk.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Tell me a long story."}], max_tokens=300, stream=True
    )
    it = iter(stream)
    read = [next(it) for _ in range(chunks)]
    assert read[0].choices
    [row] = [r for r in n.journal_rows() if r["state"] == "locked"]
    return stream, row, "a" if row["worker"] == str(n.workers[0].pubkey()) else "b"


def _ask(n: Network, i: int, stream: bool) -> tuple[str, str]:
    """One completion through the openai SDK: (job id, the text the client got)."""
    messages = [{"role": "user", "content": f"Say hi to number {i}"}]
    if not stream:
        raw = n.sdk.chat.completions.with_raw_response.create(model=MODEL, messages=messages, max_tokens=12)
        return raw.headers["x-decentral-job-id"], raw.parse().choices[0].message.content
    text, job_id = "", None
    for chunk in n.sdk.chat.completions.create(model=MODEL, messages=messages, max_tokens=12, stream=True):
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        job_id = (chunk.model_extra or {}).get("decentral", {}).get("job_id", job_id)
    return job_id, text


def _receipt(n: Network, job_id: str) -> Receipt:
    reply = httpx.get(f"{n.url('gateway')}/v1/jobs/{job_id}", headers={"x-api-key": n.key}, timeout=30)
    return Receipt.parse(reply.json()["receipt"])


def _invariant(n: Network) -> None:
    """vault = Σ free + Σ locked (one client here), and nothing is left locked."""
    vault, credits, _ = n.balances()
    assert credits.locked == 0
    assert vault == credits.free + credits.locked


def test_both_workers_are_paid_and_every_receipt_passes_every_check(net):
    _, _, paid_before = net.balances()
    seen: dict[str, tuple[str, str]] = {}
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for i, (job_id, text) in enumerate(pool.map(lambda i: _ask(net, i, stream=i % 2 == 0), range(8))):
            seen[job_id] = (text, "stream" if i % 2 == 0 else "json")
    rows = {r["job_id"]: r for r in net.final_rows()}
    workers_used = set()
    for job_id, (text, _) in seen.items():
        assert rows[job_id]["state"] == "settled", rows[job_id]
        receipt = _receipt(net, job_id)
        report = net.run(verify_receipt(net.rpc, receipt, response=text.encode()))
        assert report.verified, report.failures
        assert report.check("consent").status.value == "pass"
        workers_used.add(receipt.worker)
    assert workers_used == {str(w.pubkey()) for w in net.workers}  # both processes served and were paid
    _, _, paid_after = net.balances()
    assert all(after > before for before, after in zip(paid_before, paid_after, strict=True))
    _invariant(net)
    metrics = httpx.get(f"{net.url('gateway')}/metrics").text
    assert 'decentral:jobs_total{outcome="settled"}' in metrics and "llamacpp:tokens_predicted_total" in metrics
    worker_metrics = httpx.get(f"{net.url('b')}/metrics").text
    assert 'decentral:consents_total{outcome="offered"}' in worker_metrics  # signed with the result


def test_tool_calls_and_json_schemas_run_on_remote_workers_and_verify(net):
    """The grammar travels to remote workers (one in-process llama.cpp, one in front of
    llama_cpp.server): tool calls whose arguments match their schema, streamed and not, a
    json_schema answer and n = 2 choices, on both; each receipt verifies against the output
    the worker signed."""
    tool = {
        "type": "function",
        "function": {
            "name": "add",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
            },
        },
    }
    ask = [{"role": "user", "content": "Add 2 and 3."}]
    schema = {"type": "object", "properties": {"sum": {"type": "integer"}}, "required": ["sum"]}
    outputs: dict[str, str] = {}
    with concurrent.futures.ThreadPoolExecutor(4) as pool:

        def call(i: int) -> None:
            if i % 3 == 0:
                stream = net.sdk.chat.completions.create(
                    model=MODEL, messages=ask, tools=[tool], tool_choice="required", max_tokens=40, stream=True
                )
                chunks = list(stream)
                final = chunks[-1].model_extra["decentral"]
                args = "".join(
                    p.function.arguments or ""
                    for c in chunks
                    if c.choices and c.choices[0].delta.tool_calls
                    for p in c.choices[0].delta.tool_calls
                )
                assert set(json.loads(args)) == {"a", "b"}
                outputs[final["job_id"]] = final["output"]
            elif i % 3 == 1:
                raw = net.sdk.chat.completions.with_raw_response.create(
                    model=MODEL, messages=ask, tools=[tool], tool_choice="required", max_tokens=40
                )
                [c] = raw.parse().choices[0].message.tool_calls
                assert c.function.name == "add" and set(json.loads(c.function.arguments)) == {"a", "b"}
                outputs[raw.headers["x-decentral-job-id"]] = raw.parse().model_extra["decentral"]["output"]
            else:
                raw = net.sdk.chat.completions.with_raw_response.create(
                    model=MODEL,
                    messages=ask,
                    max_tokens=20,
                    response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
                )
                content = raw.parse().choices[0].message.content
                assert isinstance(json.loads(content)["sum"], int)
                outputs[raw.headers["x-decentral-job-id"]] = content

        list(pool.map(call, range(6)))

        def choices(i: int) -> None:  # n = 2 on each remote worker: the texts' JSON array is the result
            raw = net.sdk.chat.completions.with_raw_response.create(
                model=MODEL, messages=ask, max_tokens=8, n=2, seed=i
            )
            completion = raw.parse()
            assert len(completion.choices) == 2
            texts = [c.message.content for c in completion.choices]
            output = completion.model_extra["decentral"]["output"]
            assert json.loads(output) == texts
            outputs[raw.headers["x-decentral-job-id"]] = output

        list(pool.map(choices, range(4)))
    workers = set()
    for job_id, output in outputs.items():
        receipt = _receipt(net, job_id)
        report = net.run(verify_receipt(net.rpc, receipt, response=output.encode()))
        assert report.verified, report.failures
        workers.add(receipt.worker)
    assert workers == {str(w.pubkey()) for w in net.workers}
    _invariant(net)


def test_the_cli_gateway_allows_private_webhooks_by_environment_and_delivers(net):
    """`decentral gateway` started with DECENTRAL_WEBHOOKS_ALLOW_PRIVATE=1 takes a webhook on
    127.0.0.1 and delivers a job run by a remote worker to it, signed."""
    from standardwebhooks import Webhook as Verifier

    from tests.test_gateway_webhooks import Receiver

    receiver = Receiver().start()
    try:
        made = httpx.post(
            f"{net.url('gateway')}/v1/webhooks",
            headers={"x-api-key": net.key},
            json={"url": receiver.url, "events": ["job.settled"]},
        )
        assert made.status_code == 201, made.text
        job_id, _ = _ask(net, 99, stream=False)
        [event] = [e for e in receiver.wait("job.settled", 1) if e["json"]["data"]["job_id"] == job_id] or [None]
    finally:
        receiver.stop()
        httpx.delete(f"{net.url('gateway')}/v1/webhooks/{made.json()['id']}", headers={"x-api-key": net.key})
    assert event is not None
    assert Verifier(made.json()["secret"]).verify(event["body"], event["headers"]) == event["json"]
    assert event["json"]["data"]["receipt"]["worker"] in {str(w.pubkey()) for w in net.workers}


def test_a_worker_takes_requests_only_from_its_gateway_and_never_twice(net):
    job = {"job_id": str(uuid.uuid4())}
    body = json.dumps({"messages": ASK, "max_tokens": 2, "decentral": job}, separators=(",", ":")).encode()
    url = f"{net.url('a')}/v1/chat/completions"
    unsigned = httpx.post(url, content=body)
    assert unsigned.status_code == 401 and "unsigned" in unsigned.json()["error"]["message"]
    stranger = httpx.post(url, content=body, headers=sign_request(Keypair(), "POST", "/v1/chat/completions", body))
    assert stranger.status_code == 401 and "not signed by this worker's gateway" in stranger.json()["error"]["message"]
    other_path = sign_request(net.gateway, "POST", "/v1/consent", body)
    assert httpx.post(url, content=body, headers=other_path).status_code == 401
    tampered = sign_request(net.gateway, "POST", "/v1/chat/completions", body)
    assert (
        httpx.post(url, content=body.replace(b'"max_tokens":2', b'"max_tokens":3'), headers=tampered).status_code == 401
    )
    stale = sign_request(net.gateway, "POST", "/v1/chat/completions", body) | {"x-decentral-timestamp": "1"}
    assert httpx.post(url, content=body, headers=stale).status_code == 401
    # a genuine request for a job nobody locked: the worker runs it but withholds the result
    headers = sign_request(net.gateway, "POST", "/v1/chat/completions", body)
    unpaid = httpx.post(url, content=body, headers=headers, timeout=30)
    assert unpaid.status_code == 402 and "no lock on chain" in unpaid.json()["error"]["message"]
    replay = httpx.post(url, content=body, headers=headers, timeout=30)  # the very same request again
    assert replay.status_code == 401 and "replayed" in replay.json()["error"]["message"]
    again = httpx.post(url, content=body, headers=sign_request(net.gateway, "POST", "/v1/chat/completions", body))
    assert again.status_code == 409  # a job id runs once


def test_a_remote_worker_signs_only_what_it_produced(net):
    """Acting as the gateway: lock a job naming worker B, have B run it, then ask B to co-sign
    settlements — forged ones are refused, the genuine one lands and its receipt verifies."""
    job_id = pda.new_job_id()
    job_uuid = str(uuid.UUID(bytes=job_id))
    remote = RemoteWorker(net.url("b"), net.gateway, None, model_name=MODEL, price=(100, 200))

    async def scenario():
        assert await remote.refresh()
        async with EscrowClient(net.rpc) as escrow, contextlib.aclosing(remote):
            await escrow.lock_job(net.gateway, net.client.pubkey(), job_id, 50, remote.wallet)
            done = await remote.complete(job_uuid, 0, {"messages": ASK, "max_tokens": 6, "temperature": 0})
            text = done.result["choices"][0]["message"]["content"]
            usage = done.result["usage"]
            digest = hashlib.sha256(text.encode()).digest()
            price = -(-(usage["prompt_tokens"] * 100 + usage["completion_tokens"] * 200) // 1000)
            genuine = {
                "cost": price,
                "result_hash": digest,
                "prompt_tokens": usage["prompt_tokens"],
                "completion_tokens": usage["completion_tokens"],
            }
            forged = [
                genuine | {"result_hash": bytes(32)},
                genuine | {"completion_tokens": usage["completion_tokens"] + 5, "cost": price + 1},
                genuine | {"prompt_tokens": usage["prompt_tokens"] + 3, "cost": price + 1},
                genuine | {"cost": price + 1},
            ]
            refusals = []
            for terms in forged:
                with pytest.raises(ConsentRefused) as refused:
                    await escrow.settle_job(net.gateway, job_id, worker=RemoteConsent(remote, job_uuid), **terms)
                refusals.append(str(refused.value))
            settlement = await escrow.settle_job(net.gateway, job_id, worker=RemoteConsent(remote, job_uuid), **genuine)
            return text, settlement, refusals, genuine

    text, settlement, refusals, genuine = net.run(scenario())
    assert "result hash" in refusals[0] and "completion tokens" in refusals[1]
    assert "prompt tokens" in refusals[2] and "published price" in refusals[3]
    receipt = Receipt(
        job_id=job_uuid,
        lock_tx=_lock_signature(net, job_id),
        settlement_tx=str(settlement),
        worker=str(net.workers[1].pubkey()),
        cost=genuine["cost"],
    )
    report = net.run(verify_receipt(net.rpc, receipt, response=text.encode()))
    assert report.verified, report.failures


def _lock_signature(n: Network, job_id: bytes) -> str:
    """The job's lock, found from the Job address's history (the newest lock_job there)."""

    async def find():
        async with EscrowClient(n.rpc) as escrow:
            sigs = await escrow.rpc.call(
                "getSignaturesForAddress", [str(pda.job_address(job_id)), {"commitment": "confirmed"}]
            )
            return sigs[-1]["signature"]  # oldest first: the lock

    return n.run(find())


def _lying_proxy(target: str, extra_tokens: int) -> Starlette:
    """A worker that passes jobs to a real one and overstates the completion tokens it used
    (the gateway's signed requests pass through unchanged, so the real worker accepts them)."""

    async def forward(request: Request) -> Response:
        async with httpx.AsyncClient(timeout=60) as http:
            reply = await http.request(
                request.method,
                f"{target}{request.url.path}",
                content=await request.body(),
                headers={k: v for k, v in request.headers.items() if k.startswith(("x-decentral", "content-type"))},
            )
        if request.url.path == "/v1/chat/completions" and reply.status_code == 200:
            body = reply.json()
            body["usage"]["completion_tokens"] += extra_tokens
            body.pop("decentral", None)  # its offer is for the true count
            return JSONResponse(body, headers={"server-timing": reply.headers.get("server-timing", "")})
        return Response(reply.content, reply.status_code, media_type=reply.headers.get("content-type"))

    return Starlette(
        routes=[
            Route("/v1/chat/completions", forward, methods=["POST"]),
            Route("/v1/models", forward, methods=["GET"]),
            Route("/health", forward, methods=["GET"]),
        ]
    )


def test_a_worker_that_overstates_its_usage_is_not_paid_and_not_routed_to(net):
    """The gateway counts the tokens itself: a worker claiming more is refunded, the client
    gets an error in OpenAI's envelope, and the worker is suspended (GET /health says why)."""
    net.wait_healthy(2)
    port = free_port_pair()
    journal = net.tmp / "journal-liar.db"
    with ServerThread((_lying_proxy(net.url("a"), 40), 0)) as proxy:
        env = net.env | {"DECENTRAL_GATEWAY_JOURNAL_DB": str(journal)}
        cmd = [*CLI, "gateway", "--port", str(port), "--rpc-url", net.rpc]
        cmd += ["--gateway-keypair", str(net.tmp / "gateway-keypair.json"), "--worker", proxy.url()]
        with open(net.tmp / "liar-gateway.log", "ab") as log:
            gateway = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until(lambda: httpx.get(f"{url}/health").json()["healthy"] == 1)
            reply = httpx.post(
                f"{url}/v1/chat/completions",
                headers={"x-api-key": net.key},
                json={"model": MODEL, "messages": ASK, "max_tokens": 8},
                timeout=60,
            )
            assert reply.status_code == 502 and reply.json()["error"]["code"] == "worker_failed"
            assert "reported" in reply.json()["error"]["message"]
            job_id = reply.headers["x-decentral-job-id"]
            health = httpx.get(f"{url}/health").json()
            assert health["healthy"] == 0 and "reported" in health["detail"][0]["problem"]
            again = httpx.post(
                f"{url}/v1/chat/completions",
                headers={"x-api-key": net.key},
                json={"model": MODEL, "messages": ASK, "max_tokens": 8},
                timeout=60,
            )
            assert again.status_code == 503  # the only worker is suspended: nothing locked
        finally:
            gateway.terminate()
            gateway.wait(timeout=30)
    rows = Journal(journal)
    row = rows.get(job_id)
    rows.close()
    assert row["state"] == "refunded" and "reported" in row["error"]
    _invariant(net)


def test_a_gateway_killed_mid_stream_settles_the_delivered_part_with_the_remote_workers_signature(net):
    """SIGKILL the gateway while a remote worker streams; at restart the job is settled for
    exactly the text the client was sent — the worker signs that prefix of its output."""
    stream, row, _ = _story(net, 6)
    net.kill("gateway")
    stream.close()
    net.start("gateway")
    net.wait_healthy(2)  # recovery has run: the app serves only after it
    ended = {r["job_id"]: r for r in net.journal_rows()}[row["job_id"]]
    assert ended["state"] == "settled", ended
    assert 1 <= ended["completion_tokens"] <= ended["delivered_tokens"]
    assert ended["result_hash"] == hashlib.sha256(ended["delivered_text"].encode()).hexdigest()
    report = net.run(verify_receipt(net.rpc, _receipt(net, row["job_id"]), response=ended["delivered_text"].encode()))
    assert report.verified, report.failures
    _invariant(net)


def test_sigkill_a_worker_mid_stream_ends_the_stream_with_an_error_and_refunds(net):
    stream, row, victim = _story(net, 1)
    net.kill(victim)  # the worker dies with tokens on the wire
    with pytest.raises(openai.APIError) as failed:
        for _ in stream:
            pass
    assert "refunded" in str(failed.value)
    ended = {r["job_id"]: r for r in net.final_rows()}[row["job_id"]]
    assert ended["state"] == "refunded" and "mid-stream" in ended["error"]
    report = net.run(verify_receipt(net.rpc, _receipt(net, row["job_id"])))
    assert report.verified, report.failures  # the refund is a receipt too
    _invariant(net)
    net.start_worker(victim)
    net.wait_healthy(2)


def test_a_worker_dead_before_its_first_token_is_never_paid_and_the_request_is_retried(net):
    net.wait_healthy(2)
    net.kill("a")  # the gateway still believes it healthy until its next poll
    before = {r["job_id"] for r in net.journal_rows()}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda i: _ask(net, 100 + i, stream=i == 0), range(2)))
    assert all(text for _, text in answers)  # each client saw one answer
    new = [r for r in net.final_rows() if r["job_id"] not in before]
    settled = [r for r in new if r["state"] == "settled"]
    assert {r["job_id"] for r in settled} == {job_id for job_id, _ in answers}
    assert all(r["worker"] == str(net.workers[1].pubkey()) for r in settled)  # only B was paid
    for r in new:
        if r["state"] == "refunded":  # A's attempt, if the pool chose it: refunded, its receipt verifies
            assert r["worker"] == str(net.workers[0].pubkey()) and "before its first token" in r["error"]
            assert net.run(verify_receipt(net.rpc, _receipt(net, r["job_id"]))).verified
    _invariant(net)
    net.start_worker("a")
    net.wait_healthy(2)


def test_sigkill_a_worker_mid_settlement_refunds_the_job(net):
    """The client leaves mid-stream, so the gateway asks the worker to sign a settlement for
    the part delivered; the worker is frozen (SIGSTOP) while that request waits, then killed:
    no signature, no payment, the job refunded, nothing lost."""
    stream, row, victim = _story(net, 4)
    net.procs[victim].send_signal(signal.SIGSTOP)
    stream.close()  # the client goes away: the gateway settles what it delivered, with the worker's consent
    wait_until(lambda: _settling_or_asking(net, row["job_id"]))
    time.sleep(0.5)
    net.kill(victim)  # mid-settlement: its consent was asked for and never given
    ended = {r["job_id"]: r for r in net.final_rows()}[row["job_id"]]
    assert ended["state"] == "refunded", ended
    assert ended["delivered_tokens"] >= 1 and "sign" in ended["error"]
    assert net.run(verify_receipt(net.rpc, _receipt(net, row["job_id"]))).verified
    _invariant(net)
    net.start_worker(victim)
    net.wait_healthy(2)


def _settling_or_asking(n: Network, job_id: str) -> bool:
    """The gateway has stopped streaming the job (its client left) and has not ended it."""
    metrics = httpx.get(f"{n.url('gateway')}/metrics").text
    row = {r["job_id"]: r for r in n.journal_rows()}[job_id]
    return row["state"] == "locked" and "llamacpp:requests_processing 0" in metrics
