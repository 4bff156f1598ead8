"""The auditor's commands as a user runs them (subprocesses against a live localnet)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import uuid

import pytest
from solders.account import Account
from solders.pubkey import Pubkey

from decentral_chain.client import EscrowClient
from decentral_chain.localnet.genesis import USDC
from decentral_chain.pda import new_job_id, program_data_address
from decentral_chain.receipts import Receipt

RESPONSE = b'{"answer": 42}'


def decentral(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}  # rich wraps tables at the terminal width
    return subprocess.run(
        [sys.executable, "-m", "decentral_chain.cli", *args], capture_output=True, text=True, timeout=120, env=env
    )


@pytest.fixture
def live(rpc_localnet, tmp_path):
    url, chain, g = rpc_localnet

    async def jobs() -> list[Receipt]:
        out = []
        async with EscrowClient(url) as escrow:
            await escrow.deposit(g.clients[0].keypair, 10 * USDC)
            for cost in (100_000, 200_000, 300_000):
                job_id = new_job_id()
                lock = await escrow.lock_job(g.gateway, g.clients[0].pubkey, job_id, USDC, g.workers[0].pubkey)
                end = await escrow.settle_job(
                    g.gateway,
                    job_id,
                    worker=g.workers[0].keypair,
                    cost=cost,
                    result_hash=hashlib.sha256(RESPONSE).digest(),
                    prompt_tokens=1,
                    completion_tokens=2,
                )
                out.append(
                    Receipt(
                        job_id=uuid.UUID(bytes=job_id),
                        lock_tx=str(lock),
                        settlement_tx=str(end),
                        worker=str(g.workers[0].pubkey),
                        cost=cost,
                    )
                )
        return out

    return url, chain, asyncio.run(jobs()), tmp_path


def test_verify_a_receipt_by_options_and_by_file(live):
    url, chain, receipts, tmp = live
    r = receipts[0]
    ok = decentral(
        "verify",
        str(r.job_id),
        "--lock-tx",
        r.lock_tx,
        "--settlement-tx",
        r.settlement_tx,
        "--worker",
        r.worker,
        "--expect-cost",
        "100000",
        "--rpc-url",
        url,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "VERIFIED" in ok.stdout and "result_hash" in ok.stdout
    (tmp / "receipt.json").write_text(r.model_dump_json())
    (tmp / "response.json").write_bytes(RESPONSE)
    as_json = decentral(
        "verify",
        "--receipt",
        str(tmp / "receipt.json"),
        "--response",
        str(tmp / "response.json"),
        "--rpc-url",
        url,
        "--json",
        "--commitment",
        "finalized",
    )
    report = json.loads(as_json.stdout)
    assert as_json.returncode == 0 and report["verified"] is True
    assert [c["status"] for c in report["checks"]] == ["pass"] * 11
    (tmp / "other.json").write_bytes(RESPONSE + b"!")
    tampered = decentral(
        "verify", "--receipt", str(tmp / "receipt.json"), "--response", str(tmp / "other.json"), "--rpc-url", url
    )
    assert tampered.returncode == 1 and "NOT VERIFIED" in tampered.stdout and "FAIL" in tampered.stdout
    explained = decentral("verify", "--receipt", str(tmp / "receipt.json"), "--rpc-url", url, "--explain")
    assert explained.returncode == 0 and "trusting program" in explained.stderr
    words = " ".join(explained.stdout.split())
    assert f"worker {r.worker} received 0.097500" in words and "lifecycle nonce 1" in words, words


def test_the_trust_anchor_is_the_auditors(live):
    """A receipt naming another program fails `program` (file and batch alike); an auditor
    who names another program or mint finds nothing of theirs verified."""
    url, chain, receipts, tmp = live
    other = str(Pubkey.new_unique())
    (tmp / "named.json").write_text(receipts[0].model_copy(update={"program_id": other}).model_dump_json())
    named = decentral("verify", "--receipt", str(tmp / "named.json"), "--rpc-url", url, "--json")
    report = json.loads(named.stdout)
    assert named.returncode == 1 and {c["name"] for c in report["checks"] if c["status"] == "fail"} == {"program"}
    (tmp / "named.jsonl").write_text((tmp / "named.json").read_text() + "\n")
    batch = json.loads(decentral("verify-batch", str(tmp / "named.jsonl"), "--rpc-url", url, "--json").stdout)
    assert batch["failed_checks"] == {"program": 1}
    (tmp / "plain.jsonl").write_text(receipts[0].model_dump_json() + "\n")
    elsewhere = json.loads(
        decentral("verify-batch", str(tmp / "plain.jsonl"), "--rpc-url", url, "--json", "--program-id", other).stdout
    )
    assert elsewhere["verified"] == 0 and {"program", "lock", "settlement"} <= set(elsewhere["failed_checks"])
    (tmp / "plain.json").write_text(receipts[0].model_dump_json())
    pinned = json.loads(
        decentral("verify", "--receipt", str(tmp / "plain.json"), "--rpc-url", url, "--mint", other, "--json").stdout
    )
    assert not pinned["verified"] and "not the trusted mint" in json.dumps(pinned["checks"])
    bad = decentral("verify", "--receipt", str(tmp / "named.json"), "--rpc-url", url, "--mint", "nope")
    assert bad.returncode == 2 and "--mint" in bad.stderr and "Traceback" not in bad.stderr


def test_verify_errors_are_one_line_with_exit_2(live):
    url, chain, receipts, tmp = live
    (tmp / "bad.json").write_text('{"job_id": "nope"}')
    bad = decentral("verify", "--receipt", str(tmp / "bad.json"), "--rpc-url", url)
    assert bad.returncode == 2 and "invalid receipt" in bad.stderr and "Traceback" not in bad.stderr
    missing = decentral("verify", "--receipt", str(tmp / "absent.json"), "--rpc-url", url)
    assert missing.returncode == 2 and "cannot read receipt" in missing.stderr
    partial = decentral("verify", str(receipts[0].job_id), "--rpc-url", url)
    assert partial.returncode == 2 and "--lock-tx" in partial.stderr
    (tmp / "r.json").write_text(receipts[0].model_dump_json())
    down = decentral("verify", "--receipt", str(tmp / "r.json"), "--rpc-url", "http://127.0.0.1:9")
    assert down.returncode == 2 and "RpcUnavailable" in down.stderr and "Traceback" not in down.stderr
    unsettled = receipts[0].model_copy(update={"settlement_tx": receipts[1].lock_tx})
    (tmp / "u.json").write_text(unsettled.model_dump_json())
    failed = decentral("verify", "--receipt", str(tmp / "u.json"), "--rpc-url", url)
    assert failed.returncode == 1


def test_verify_batch_summary_progress_and_fail_fast(live):
    url, chain, receipts, tmp = live
    wrong = receipts[1].model_copy(update={"cost": 1})
    path = tmp / "receipts.jsonl"
    path.write_text("\n".join(r.model_dump_json() for r in (receipts[0], wrong, receipts[2])) + "\n")
    result = decentral("verify-batch", str(path), "--rpc-url", url, "--concurrency", "2")
    assert result.returncode == 1 and "2 of 3 verified" in result.stdout and "failed: cost" in result.stdout
    summary = json.loads(decentral("verify-batch", str(path), "--rpc-url", url, "--json").stdout)
    assert (summary["verified"], summary["failed"], summary["failed_checks"]) == (2, 1, {"cost": 1})
    fast = json.loads(
        decentral("verify-batch", str(path), "--rpc-url", url, "--json", "--fail-fast", "--concurrency", "1").stdout
    )
    assert fast["checked"] == 2
    good = tmp / "good.jsonl"
    good.write_text(receipts[0].model_dump_json() + "\n")
    assert decentral("verify-batch", str(good), "--rpc-url", url).returncode == 0
    (tmp / "broken.jsonl").write_text(receipts[0].model_dump_json() + "\n{oops\n")
    broken = decentral("verify-batch", str(tmp / "broken.jsonl"), "--rpc-url", url)
    assert broken.returncode == 2 and "broken.jsonl:2" in broken.stderr


def test_job_show_prints_the_timeline(live):
    url, chain, receipts, tmp = live
    shown = decentral("job", "--rpc-url", url, "--json", "show", str(receipts[2].job_id))
    assert shown.returncode == 0, shown.stderr
    timeline = json.loads(shown.stdout)["timeline"]
    assert [row["instructions"] for row in timeline] == [["lock_job"], ["settle_job"]]
    assert timeline[1]["events"][0]["cost"] == 300_000 and timeline[0]["slot"] <= timeline[1]["slot"]
    assert [row["events"][0]["nonce"] for row in timeline] == [3, 3]  # the client's third lock, and its close
    table = decentral("job", "--rpc-url", url, "show", str(receipts[2].job_id))
    assert "settle_job" in table.stdout and "cost=300000" in table.stdout and "lifecycle" in table.stdout


def test_program_verify_build(live):
    url, chain, receipts, tmp = live
    same = decentral("program", "verify-build", "--rpc-url", url, "--json")
    assert same.returncode == 0, same.stderr
    assert json.loads(same.stdout)["match"] is True
    key = program_data_address()
    acc = chain.svm.get_account(key)
    data = bytearray(bytes(acc.data))
    data[100] ^= 0xFF  # one flipped byte in the deployed ELF
    chain.svm.set_account(key, Account(acc.lamports, bytes(data), acc.owner, False))
    other = decentral("program", "verify-build", "--rpc-url", url)
    assert other.returncode == 1 and "MISMATCH" in other.stdout
