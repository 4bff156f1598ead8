"""Crash safety: the gateway in a subprocess, killed with SIGKILL mid-stream, restarted.
The job it left open is resolved at start and no credit is lost; the webhook events it had
not delivered (its receiver was down) are sent from the outbox after the restart."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import httpx
from standardwebhooks import Webhook as Verifier

from decentral_chain.client import EscrowClient
from decentral_chain.gateway.journal import Journal
from decentral_chain.gateway.keys import KeyStore
from decentral_chain.localnet.genesis import USDC
from decentral_chain.localnet.keys import read_keypair
from decentral_chain.localnet.server import free_port_pair
from decentral_chain.receipts import Receipt
from decentral_chain.verify import verify_receipt
from tests.test_gateway_webhooks import Receiver

CLI = [sys.executable, "-m", "decentral_chain.cli"]


def wait_until(check, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (httpx.TransportError, OSError, ValueError, KeyError):
            pass
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_sigkill_mid_stream_then_restart_settles_what_was_delivered(tmp_path):
    rpc_port, gw_port = free_port_pair(), free_port_pair()
    env = {
        **os.environ,
        "DECENTRAL_GATEWAY_KEYS_DB": str(tmp_path / "keys.db"),
        "DECENTRAL_GATEWAY_JOURNAL_DB": str(tmp_path / "journal.db"),
        "DECENTRAL_WEBHOOKS_ALLOW_PRIVATE": "1",  # the receiver is on this machine
    }
    down = Receiver().start()
    receiver_port = down.port
    down.stop()  # the receiver is down until after the restart
    localnet = subprocess.Popen(
        [*CLI, "localnet", "--port", str(rpc_port), "--keys-dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    processes = [localnet]
    try:
        wait_until(lambda: json.loads((tmp_path / "addresses.json").read_text())["ready"])
        addresses = json.loads((tmp_path / "addresses.json").read_text())
        rpc = addresses["rpc_url"]
        client = read_keypair(tmp_path / "client-keypair.json")
        store = KeyStore(tmp_path / "keys.db")
        key = store.create(client.pubkey())
        store.close()

        async def deposit():
            async with EscrowClient(rpc) as escrow:
                await escrow.deposit(client, 2 * USDC)

        asyncio.run(deposit())
        gateway_cmd = [
            *CLI,
            "gateway",
            "--port",
            str(gw_port),
            "--rpc-url",
            rpc,
            "--n-ctx",
            "512",
            "--gateway-keypair",
            str(tmp_path / "gateway-keypair.json"),
            "--worker-keypair",
            str(tmp_path / "worker-1-keypair.json"),
        ]
        url = f"http://127.0.0.1:{gw_port}"

        def start_gateway() -> subprocess.Popen:
            proc = subprocess.Popen(gateway_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            processes.append(proc)
            wait_until(lambda: httpx.get(f"{url}/health").status_code == 200)
            return proc

        gateway = start_gateway()
        hook = httpx.post(
            f"{url}/v1/webhooks",
            headers={"authorization": f"Bearer {key}"},
            json={"url": f"http://127.0.0.1:{receiver_port}/hooks", "events": ["job.settled"]},
        )
        assert hook.status_code == 201, hook.text
        first = httpx.post(  # settled before the crash: its event waits in the outbox
            f"{url}/v1/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json={"model": "smollm2-135m-instruct", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]},
            timeout=60,
        )
        assert first.status_code == 200
        wait_until(
            lambda: httpx.get(f"{url}/v1/account", headers={"authorization": f"Bearer {key}"}).status_code == 200
        )
        with httpx.stream(
            "POST",
            f"{url}/v1/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json={
                "model": "smollm2-135m-instruct",
                "max_tokens": 400,
                "stream": True,
                "messages": [{"role": "user", "content": "Tell me a long story."}],
            },
            timeout=60,
        ) as response:
            job_id = response.headers["x-decentral-job-id"]
            lines = response.iter_lines()
            for _ in range(4):
                next(lines)
            gateway.send_signal(signal.SIGKILL)  # mid-stream, no chance to clean up
            gateway.wait(timeout=30)
        journal = Journal(tmp_path / "journal.db")
        assert journal.get(job_id)["state"] not in ("settled", "refunded")  # left open by the crash
        journal.close()

        async def job_open():
            async with EscrowClient(rpc) as escrow:
                return await escrow.get_job(uuid.UUID(job_id).bytes), await escrow.get_credits(client.pubkey())

        job, credits = asyncio.run(job_open())
        assert job is not None and credits.locked > 0

        receiver = Receiver(port=receiver_port).start()  # back while the gateway was down
        processes.append(receiver)
        start_gateway()  # recovery runs before the gateway serves
        journal = Journal(tmp_path / "journal.db")
        row = journal.get(job_id)
        journal.close()
        # the client was sent part of the answer: it pays for exactly that, with the worker's signature
        assert row["state"] == "settled", row
        assert row["delivered_tokens"] >= 1 and row["completion_tokens"] == row["delivered_tokens"]
        assert row["result_hash"] == hashlib.sha256(row["delivered_text"].encode()).hexdigest()
        job, credits = asyncio.run(job_open())
        spent = row["cost"] + int(first.headers["x-decentral-cost"])  # the two jobs
        assert job is None and credits.locked == 0 and credits.free == 2 * USDC - spent  # nothing lost
        receipt = Receipt(
            job_id=job_id,
            lock_tx=row["lock_tx"],
            settlement_tx=row["settlement_tx"],
            worker=row["worker"],
            client=row["client"],
            cost=row["cost"],
            result_hash=row["result_hash"],
            nonce=row["nonce"],
        )
        report = asyncio.run(verify_receipt(rpc, receipt, response=row["delivered_text"].encode()))
        assert report.verified, report.failures

        async def vault():
            async with EscrowClient(rpc) as escrow:
                cfg = await escrow.get_config()
                return await escrow.token_balance(cfg.vault)

        assert asyncio.run(vault()) == credits.free  # vault = Σ free + Σ locked (one client)
        # both job.settled events arrive, signed with the secret given before the crash: the
        # one queued before the SIGKILL (from the outbox) and the recovered job's
        events = receiver.wait("job.settled", 2)
        verifier = Verifier(hook.json()["secret"])
        assert {verifier.verify(e["body"], e["headers"])["data"]["job_id"] for e in events} == {
            first.headers["x-decentral-job-id"],
            job_id,
        }
    finally:
        for proc in processes:
            if isinstance(proc, Receiver):
                proc.stop()
            elif proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
