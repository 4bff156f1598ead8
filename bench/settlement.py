"""Localnet cold start and settlement throughput.

    python bench/settlement.py            a table
    python bench/settlement.py --json     {"cold_start_s": <s>, "jobs_per_s": <n>}

cold_start_s  from launching `decentral localnet` (a new process) to its first confirmed
              transaction, seen by a client polling the RPC port (median of 3 launches).
jobs_per_s    lock_job + settle_job pairs per second through EscrowClient over JSON-RPC
              (HTTP on loopback) to a `decentral localnet` process (ledger on), JOBS jobs
              timed from the first lock to the last confirmed settlement (the client's
              deposit before them is not), CONCURRENCY jobs in flight; the gateway's path:
              no preflight, cached blockhash, batched status polls, each lock awaited
              until processed (it has landed: the credits are held) and its Job read for
              the lifecycle nonce, each settlement co-signed by the worker and awaited
              until confirmed (its slot closed: up to one 400 ms slot).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from solders.hash import Hash  # noqa: E402
from solders.keypair import Keypair  # noqa: E402
from solders.message import Message  # noqa: E402
from solders.pubkey import Pubkey  # noqa: E402
from solders.system_program import TransferParams, transfer  # noqa: E402
from solders.transaction import VersionedTransaction  # noqa: E402

from decentral_chain.client import EscrowClient  # noqa: E402
from decentral_chain.localnet.genesis import USDC  # noqa: E402
from decentral_chain.localnet.keys import read_keypair  # noqa: E402
from decentral_chain.localnet.server import free_port_pair  # noqa: E402
from decentral_chain.pda import new_job_id  # noqa: E402
from decentral_chain.rpc import PROCESSED  # noqa: E402
from decentral_chain.sbpf.build import ensure_built  # noqa: E402

CONCURRENCY = 512
JOBS = 3000


class LaunchedLocalnet:
    """`decentral localnet` in its own process, on a free port pair, with its own keys."""

    def __init__(self) -> None:
        self.port = free_port_pair()
        self.url = f"http://127.0.0.1:{self.port}"
        self.keys = Path(tempfile.mkdtemp(prefix="localnet-"))
        exe = shutil.which("decentral", path=str(Path(sys.executable).parent)) or "decentral"
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [exe, "localnet", "--port", str(self.port), "--keys-dir", str(self.keys)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def call(self, http: httpx.Client, method: str, params: list) -> dict:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        return http.post(self.url, json=body, timeout=5).json()

    def wait_ready(self, http: httpx.Client) -> str:
        """Poll until the RPC answers; returns the latest blockhash."""
        while True:
            try:
                return self.call(http, "getLatestBlockhash", [])["result"]["value"]["blockhash"]
            except (httpx.TransportError, KeyError):
                if self.proc.poll() is not None:
                    raise RuntimeError("decentral localnet exited") from None
                time.sleep(0.002)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        shutil.rmtree(self.keys, ignore_errors=True)


def cold_start_once() -> float:
    """Launch `decentral localnet`, then send and confirm one transfer as soon as it answers."""
    net = LaunchedLocalnet()
    try:
        with httpx.Client() as http:
            blockhash = net.wait_ready(http)
            admin = read_keypair(net.keys / "admin-keypair.json")
            msg = Message.new_with_blockhash(
                [
                    transfer(
                        TransferParams(from_pubkey=admin.pubkey(), to_pubkey=Keypair().pubkey(), lamports=1_000_000)
                    )
                ],
                admin.pubkey(),
                Hash.from_string(blockhash),
            )
            raw = base64.b64encode(bytes(VersionedTransaction(msg, [admin]))).decode()
            sig = net.call(http, "sendTransaction", [raw, {"encoding": "base64"}])["result"]
            while net.call(http, "getSignatureStatuses", [[sig]])["result"]["value"][0] is None:
                time.sleep(0.001)
            return time.monotonic() - net.started
    finally:
        net.close()


async def settle_jobs(
    net: LaunchedLocalnet, count: int, concurrency: int, timing: dict | None = None
) -> list[tuple[bytes, str, str]]:
    """Lock and settle ``count`` jobs (client, gateway and worker of the launched localnet),
    ``concurrency`` in flight; returns (job id, lock signature, settlement signature) each.
    ``timing["s"]`` gets the seconds of the jobs alone (after the client's deposit)."""
    addresses = json.loads((net.keys / "addresses.json").read_text())
    client = read_keypair(net.keys / "client-keypair.json")
    gateway = read_keypair(net.keys / "gateway-keypair.json")
    worker_keypair = read_keypair(net.keys / "worker-1-keypair.json")
    worker = worker_keypair.pubkey()
    worker_token = Pubkey.from_string(addresses["workers"][0]["token"])
    async with EscrowClient(net.url, poll_interval=0.02, skip_preflight=True) as escrow:
        await escrow.deposit(client, 500 * USDC)
        await escrow.get_config()
        sem = asyncio.Semaphore(concurrency)

        async def one_job() -> tuple[bytes, str, str]:
            async with sem:
                job_id = new_job_id()
                pending = await escrow.prepare_lock_job(gateway, client.pubkey(), job_id, 1000, worker)
                await escrow.submit(pending)
                await escrow.confirm(pending.signature, commitment=PROCESSED)
                lock = pending.signature
                nonce = (await escrow.get_job(job_id, commitment=PROCESSED)).nonce  # as the gateway reads it
                end = await escrow.settle_job(
                    gateway,
                    job_id,
                    worker=worker_keypair,
                    nonce=nonce,
                    cost=700,
                    result_hash=bytes(32),
                    prompt_tokens=1,
                    completion_tokens=1,
                    worker_token=worker_token,
                    client=client.pubkey(),
                    payer=gateway.pubkey(),
                )
                return job_id, str(lock), str(end)

        start = time.monotonic()
        jobs = await asyncio.gather(*(one_job() for _ in range(count)))
        if timing is not None:
            timing["s"] = time.monotonic() - start
        return jobs


async def throughput(net: LaunchedLocalnet) -> float:
    timing: dict = {}
    await settle_jobs(net, JOBS, CONCURRENCY, timing)
    return JOBS / timing["s"]


def measure() -> dict:
    ensure_built()
    cold = statistics.median(cold_start_once() for _ in range(3))
    net = LaunchedLocalnet()
    try:
        with httpx.Client() as http:
            net.wait_ready(http)
        jobs = asyncio.run(throughput(net))
    finally:
        net.close()
    return {"cold_start_s": round(cold, 3), "jobs_per_s": round(jobs, 1)}


def main() -> None:
    result = measure()
    if "--json" in sys.argv[1:]:
        print(json.dumps(result))
        return
    table = Table(title=f"settlement on the localnet ({os.cpu_count()} cores)")
    for col in ("measure", "value", "target"):
        table.add_column(col)
    table.add_row("cold start → first confirmed tx", f"{result['cold_start_s']:.3f} s", "< 0.4 s")
    table.add_row(f"lock+settle pairs/s ({CONCURRENCY} in flight)", f"{result['jobs_per_s']:,.1f}", "≥ 600")
    Console().print(table)


if __name__ == "__main__":
    main()
