"""Webhooks against real HTTP receivers: signed job and account events (verified with the
Standard Webhooks reference library), retries with backoff, an outbox that outlives a
receiver down across a gateway restart, and the SSRF guard at creation and at delivery."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
from typing import Any

import httpx
import openai
import pytest
from solders.pubkey import Pubkey
from standardwebhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from decentral_chain.client import EscrowClient
from decentral_chain.gateway.keys import KeyStore
from decentral_chain.localnet.genesis import USDC
from decentral_chain.receipts import Receipt
from decentral_chain.verify import verify_receipt
from tests.test_gateway import ASK, MODEL, _second_gateway, stack, workers  # noqa: F401  (fixtures)

ALL_EVENTS = ["job.settled", "job.refunded", "job.failed", "credits.low", "credits.deposited"]


class Receiver:
    """A real HTTP server that records each POST; ``fail_first`` answers 500 that many times."""

    def __init__(self, fail_first: int = 0, port: int = 0) -> None:
        self.received: list[dict[str, Any]] = []
        self.fail_first = fail_first
        self.port = port
        self.server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.received.append(
                    {"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body, "at": time.time()}
                )
                failing = receiver.fail_first > 0
                receiver.fail_first -= 1
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        out = []
        for r in self.received:
            body = json.loads(r["body"])
            if kind is None or body["type"] == kind:
                out.append(r | {"json": body})
        return out

    def wait(self, kind: str, count: int = 1, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.events(kind)) < count:
            assert time.monotonic() < deadline, f"no {kind} event: {[e['json']['type'] for e in self.events()]}"
            time.sleep(0.05)
        return self.events(kind)


def _create(gateway: str, key: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{gateway}/v1/webhooks", headers={"x-api-key": key}, json=body, timeout=30)


def _deposit(net: dict, amount: int) -> None:
    async def run():
        async with EscrowClient(net["rpc"]) as escrow:
            await escrow.deposit(net["g"].clients[0].keypair, amount)

    asyncio.run(run())


def _fast(**extra: Any) -> dict[str, Any]:
    return {"webhooks_allow_private": True, "webhook_retry_base": 0.2, "webhook_poll_interval": 0.2} | extra


def test_job_and_account_events_arrive_signed_with_their_receipts(stack, workers, tmp_path):  # noqa: F811
    receiver = Receiver().start()
    server, key, _ = _second_gateway(stack, workers, tmp_path, **_fast())
    try:
        with server:
            created = _create(server.url(), key, url=receiver.url, events=ALL_EVENTS, credits_low_threshold=10**12)
            assert created.status_code == 201, created.text
            hook = created.json()
            assert hook["secret"].startswith("whsec_") and hook["events"] == ALL_EVENTS
            with openai.OpenAI(base_url=server.url() + "/v1", api_key=key, max_retries=0) as client:
                raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=ASK, max_tokens=8)
            [settled] = receiver.wait("job.settled")
            # below the (huge) threshold: credits.low, once
            [low] = receiver.wait("credits.low")
            _deposit(stack, 2 * USDC)
            [deposited] = receiver.wait("credits.deposited")
            listed = httpx.get(f"{server.url()}/v1/webhooks", headers={"x-api-key": key}).json()
            detail = httpx.get(f"{server.url()}/v1/webhooks/{hook['id']}", headers={"x-api-key": key}).json()
            with openai.OpenAI(base_url=server.url() + "/v1", api_key=key, max_retries=0) as client:
                client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=2)
            receiver.wait("job.settled", 2)
            time.sleep(0.5)  # a second settlement while still low: no second credits.low
            assert len(receiver.events("credits.low")) == 1
    finally:
        receiver.stop()
    # every delivery verifies with the Standard Webhooks reference implementation
    verifier = Verifier(hook["secret"])
    for event in receiver.events():
        assert verifier.verify(event["body"], event["headers"]) == event["json"]
        assert event["headers"]["webhook-id"].startswith("msg_")
    with pytest.raises(WebhookVerificationError):  # a tampered body does not
        verifier.verify(settled["body"].replace(b"settled", b"refunded"), settled["headers"])
    with pytest.raises(WebhookVerificationError):  # nor another secret
        Verifier("whsec_" + "A" * 43 + "=").verify(settled["body"], settled["headers"])
    assert len({e["headers"]["webhook-id"] for e in receiver.events()}) == len(receiver.events())  # unique ids
    data = settled["json"]["data"]
    assert data["job_id"] == raw.headers["x-decentral-job-id"]
    receipt = data["receipt"]
    assert receipt["settlement_tx"] == raw.headers["x-decentral-settlement-tx"]
    report = asyncio.run(
        verify_receipt(stack["rpc"], Receipt.parse(receipt), response=raw.parse().choices[0].message.content.encode())
    )
    assert report.verified, report.to_dict()
    assert low["json"]["data"]["threshold"] == 10**12 and low["json"]["data"]["credits_remaining"] > 0
    assert deposited["json"]["data"]["amount"] == 2 * USDC
    assert [w["id"] for w in listed["data"]] == [hook["id"]] and "secret" not in listed["data"][0]
    assert {d["type"] for d in detail["deliveries"]} >= {"job.settled", "credits.low"}
    assert all(d["status"] == "delivered" for d in detail["deliveries"])


def test_a_failed_job_gives_job_failed_then_job_refunded(stack, workers, tmp_path):  # noqa: F811
    receiver = Receiver().start()
    server, key, _ = _second_gateway(stack, workers, tmp_path, **_fast(job_timeout=0.05))
    try:
        with server:
            made = _create(server.url(), key, url=receiver.url, events=["job.failed", "job.refunded"])
            assert made.status_code == 201
            reply = httpx.post(
                f"{server.url()}/v1/chat/completions",
                headers={"x-api-key": key},
                json={"model": MODEL, "messages": ASK, "max_tokens": 400},
                timeout=30,
            )
            assert reply.status_code == 504
            [failed] = receiver.wait("job.failed")
            [refunded] = receiver.wait("job.refunded")
    finally:
        receiver.stop()
    job_id = reply.headers["x-decentral-job-id"]
    assert failed["json"]["data"]["job_id"] == job_id and "timed out" in failed["json"]["data"]["reason"]
    receipt = refunded["json"]["data"]["receipt"]
    assert receipt["outcome"] == "refunded" and receipt["job_id"] == job_id
    report = asyncio.run(verify_receipt(stack["rpc"], Receipt.parse(receipt)))
    assert report.verified, report.to_dict()  # the refund verifies as a refund


def test_a_receiver_that_fails_at_first_gets_the_same_event_again_with_backoff(stack, workers, tmp_path):  # noqa: F811
    receiver = Receiver(fail_first=2).start()
    server, key, _ = _second_gateway(stack, workers, tmp_path, **_fast())
    try:
        with server:
            assert _create(server.url(), key, url=receiver.url, events=["job.settled"]).status_code == 201
            with openai.OpenAI(base_url=server.url() + "/v1", api_key=key, max_retries=0) as client:
                client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=2)
            attempts = receiver.wait("job.settled", 3)
    finally:
        receiver.stop()
    assert len({a["headers"]["webhook-id"] for a in attempts}) == 1  # one event, three attempts
    gaps = [b["at"] - a["at"] for a, b in zip(attempts, attempts[1:], strict=False)]
    assert gaps[0] >= 0.15 and gaps[1] >= 0.3  # 0.2 s, then 0.4 s: exponential


def test_an_event_outlives_a_receiver_down_across_a_gateway_restart(stack, workers, tmp_path):  # noqa: F811
    receiver = Receiver().start()
    port = receiver.port
    receiver.stop()  # down: connections refused
    server, key, _ = _second_gateway(stack, workers, tmp_path, **_fast())
    with server:
        created = _create(server.url(), key, url=f"http://127.0.0.1:{port}/hooks", events=["job.settled"])
        assert created.status_code == 201
        with openai.OpenAI(base_url=server.url() + "/v1", api_key=key, max_retries=0) as client:
            raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=ASK, max_tokens=2)
        time.sleep(1.0)
        detail = httpx.get(f"{server.url()}/v1/webhooks/{created.json()['id']}", headers={"x-api-key": key}).json()
    [pending] = detail["deliveries"]
    assert pending["status"] == "pending" and pending["attempts"] >= 1 and pending["last_error"]
    back = Receiver(port=port).start()  # the receiver comes back while the gateway is down
    try:
        server, _, _ = _second_gateway(stack, workers, tmp_path, **_fast())
        with server:
            [event] = back.wait("job.settled")
    finally:
        back.stop()
    assert event["headers"]["webhook-id"] == pending["id"]  # the very event, from the outbox
    assert event["json"]["data"]["job_id"] == raw.headers["x-decentral-job-id"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hooks",
        "http://localhost/hooks",
        "http://10.1.2.3/",
        "http://192.168.0.10/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "ftp://example.com/",
        "http://user:secret@example.com/",
        "not a url",
        "",
    ],
)
def test_webhook_urls_to_private_addresses_are_refused(stack, url):  # noqa: F811
    reply = _create(stack["url"], stack["key"], url=url, events=["job.settled"])
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "url", reply.text


def test_bad_webhook_requests_and_other_keys(stack, workers, tmp_path):  # noqa: F811
    server, key, settings = _second_gateway(stack, workers, tmp_path, **_fast())
    store = KeyStore(settings.keys_db)
    stranger = store.create(Pubkey.new_unique())
    store.close()
    with server:
        low = "credits_low_threshold"
        for body, param in (
            ({"events": []}, "events"),
            ({"events": ["job.exploded"]}, "events"),
            ({"events": ["job.settled", "job.settled"]}, "events"),
            ({"events": ["credits.low"]}, low),
            ({"events": ["credits.low"], low: -1}, low),
            ({"events": ["job.settled"], low: 5}, low),
        ):
            reply = _create(server.url(), key, url="http://127.0.0.1/", **body)
            assert reply.status_code == 400 and reply.json()["error"]["param"] == param, reply.text
        hook = _create(server.url(), key, url="http://127.0.0.1:9/", events=["job.settled"]).json()
        other = httpx.get(f"{server.url()}/v1/webhooks/{hook['id']}", headers={"x-api-key": stranger})
        gone = httpx.delete(f"{server.url()}/v1/webhooks/{hook['id']}", headers={"x-api-key": stranger})
        assert other.status_code == gone.status_code == 404
        assert httpx.get(f"{server.url()}/v1/webhooks", headers={"x-api-key": stranger}).json()["data"] == []
        deleted = httpx.delete(f"{server.url()}/v1/webhooks/{hook['id']}", headers={"x-api-key": key})
        assert deleted.json() == {"id": hook["id"], "object": "webhook", "deleted": True}
        assert httpx.get(f"{server.url()}/v1/webhooks", headers={"x-api-key": key}).json()["data"] == []
        assert httpx.get(f"{server.url()}/v1/webhooks").status_code == 401


def test_the_destination_is_checked_again_at_delivery(stack, workers, tmp_path):  # noqa: F811
    """A webhook made while private addresses were allowed: a gateway that does not allow
    them refuses to send its events (they are marked refused), and the receiver gets none."""
    receiver = Receiver().start()
    try:
        server, key, _ = _second_gateway(stack, workers, tmp_path, **_fast())
        with server:
            hook = _create(server.url(), key, url=receiver.url, events=["job.settled"]).json()
        server, _, _ = _second_gateway(stack, workers, tmp_path, **_fast(webhooks_allow_private=False))
        with server:
            with openai.OpenAI(base_url=server.url() + "/v1", api_key=key, max_retries=0) as client:
                client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=2)
            deadline = time.monotonic() + 10
            while True:
                detail = httpx.get(f"{server.url()}/v1/webhooks/{hook['id']}", headers={"x-api-key": key}).json()
                if detail["deliveries"] and detail["deliveries"][0]["status"] != "pending":
                    break
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        receiver.stop()
    [refused] = detail["deliveries"]
    assert refused["status"] == "refused" and "loopback" in refused["last_error"]
    assert receiver.received == []
