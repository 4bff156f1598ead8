"""Receipt verification throughput on the localnet.

    python bench/verify.py            a table
    python bench/verify.py --json     {"receipts_per_s": <n>, "sequential_per_s": <n>}

RECEIPTS genuine settlement receipts are created through the client on a `decentral
localnet` process, then verified with verify_batch (concurrent, shared fetches, batched
JSON-RPC) and, for sequential_per_s, with the single-receipt API verify_receipt() called
for one receipt after another (on a sample of SEQUENTIAL_SAMPLE). The table also shows a
shared Verifier awaiting one receipt at a time, the fastest sequential use.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from settlement import LaunchedLocalnet, settle_jobs  # noqa: E402

from decentral_chain.receipts import Receipt  # noqa: E402
from decentral_chain.verify import Verifier, verify_batch, verify_receipt  # noqa: E402

RECEIPTS = 1_000
SEQUENTIAL_SAMPLE = 100


async def make_receipts(net: LaunchedLocalnet) -> list[Receipt]:
    worker = json.loads((net.keys / "addresses.json").read_text())["workers"][0]["wallet"]
    jobs = await settle_jobs(net, RECEIPTS, 128)
    return [
        Receipt(job_id=uuid.UUID(bytes=job_id), lock_tx=lock, settlement_tx=end, worker=worker, cost=700)
        for job_id, lock, end in jobs
    ]


async def sequential(url: str, receipts: list[Receipt]) -> float:
    """The single-receipt API, verify_receipt(), called for one receipt after another."""
    start = time.monotonic()
    for receipt in receipts:
        report = await verify_receipt(url, receipt)
        assert report.verified, report.to_dict()
    return len(receipts) / (time.monotonic() - start)


async def sequential_shared(url: str, receipts: list[Receipt]) -> float:
    """One Verifier (connection, Config and blocks shared), awaiting one receipt at a time."""
    async with Verifier(url) as verifier:
        start = time.monotonic()
        for receipt in receipts:
            assert (await verifier.verify(receipt)).verified
        return len(receipts) / (time.monotonic() - start)


def measure() -> dict:
    net = LaunchedLocalnet()
    try:
        with httpx.Client() as http:
            net.wait_ready(http)
        receipts = asyncio.run(make_receipts(net))
        time.sleep(1.0)  # every block closed
        start = time.monotonic()
        reports = asyncio.run(verify_batch(net.url, receipts, concurrency=256))
        batch = len(receipts) / (time.monotonic() - start)
        assert all(r.verified for r in reports), next(r.to_dict() for r in reports if not r.verified)
        seq = asyncio.run(sequential(net.url, receipts[:SEQUENTIAL_SAMPLE]))
        shared = asyncio.run(sequential_shared(net.url, receipts[:SEQUENTIAL_SAMPLE]))
    finally:
        net.close()
    return {"receipts_per_s": round(batch, 1), "sequential_per_s": round(seq, 1), "_shared": round(shared, 1)}


def main() -> None:
    result = measure()
    shared = result.pop("_shared")
    if "--json" in sys.argv[1:]:
        print(json.dumps(result))
        return
    table = Table(title="receipt verification on the localnet")
    for col in ("measure", "value", "target"):
        table.add_column(col)
    table.add_row(f"verify_batch, {RECEIPTS} receipts", f"{result['receipts_per_s']:,.1f}/s", "≥ 1,000/s")
    table.add_row("sequential: verify_receipt() per receipt", f"{result['sequential_per_s']:,.1f}/s", "")
    ratio = result["receipts_per_s"] / result["sequential_per_s"]
    table.add_row("ratio", f"{ratio:.1f}×", "≥ 5×")
    table.add_row(
        "(one shared Verifier, one receipt at a time)",
        f"{shared:,.1f}/s",
        f"batch is {result['receipts_per_s'] / shared:.1f}× faster",
    )
    Console().print(table)


if __name__ == "__main__":
    main()
