"""The decentral CLI: the scripted demo and error handling at the edge."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys


def test_demo_serves_two_completions_and_verifies_both_receipts():
    """The README's main job: localnet, gateway, the openai SDK, verification."""
    proc = subprocess.run(
        [sys.executable, "-m", "decentral_chain.cli", "demo"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "160"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("11/11 checks pass") == 2 and "both receipts verified" in proc.stdout
    assert "non-stream completion" in proc.stdout and "stream completion" in proc.stdout


def test_unknown_command_is_a_usage_error():
    proc = subprocess.run([sys.executable, "-m", "decentral_chain.cli", "frobnicate"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "No such command" in proc.stderr


def test_localnet_finality_slots(tmp_path):
    """`decentral localnet --finality-slots N`: a transaction is confirmed one slot after it
    lands and finalized N slots after; a bad N is a usage error."""
    import time

    import httpx

    from decentral_chain.localnet.server import free_port_pair

    cli = [sys.executable, "-m", "decentral_chain.cli", "localnet"]
    bad = subprocess.run([*cli, "--finality-slots", "0"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--finality-slots" in bad.stderr
    port = free_port_pair()
    proc = subprocess.Popen(
        [*cli, "--port", str(port), "--keys-dir", str(tmp_path), "--finality-slots", "3"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"

        def call(method: str, params: list):
            return httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).json()

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if (tmp_path / "addresses.json").exists() and call("getHealth", [])["result"] == "ok":
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        admin = json.loads((tmp_path / "addresses.json").read_text())["admin"]
        sig = call("requestAirdrop", [admin, 1_000])["result"]
        seen = []
        while "finalized" not in seen and time.monotonic() < deadline:
            status = call("getSignatureStatuses", [[sig]])["result"]["value"][0]
            if not seen or seen[-1] != status["confirmationStatus"]:
                seen.append(status["confirmationStatus"])
            time.sleep(0.02)
        assert seen[-2:] == ["confirmed", "finalized"] and set(seen) <= {"processed", "confirmed", "finalized"}
        slot = call("getTransaction", [sig, {"commitment": "finalized"}])["result"]["slot"]
        assert call("getSlot", [{"commitment": "finalized"}])["result"] >= slot
        assert call("getSlot", [{"commitment": "processed"}])["result"] - slot >= 3
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ------------------------------------------------------ credits / job on a live localnet

import json  # noqa: E402
import uuid  # noqa: E402

import pytest  # noqa: E402

from decentral_chain.localnet.keys import write_keypair  # noqa: E402


@pytest.fixture
def live(rpc_localnet, tmp_path):
    url, _, g = rpc_localnet
    write_keypair(tmp_path / "client.json", g.clients[0].keypair)
    write_keypair(tmp_path / "gateway.json", g.gateway)
    write_keypair(tmp_path / "worker.json", g.workers[0].keypair)
    write_keypair(tmp_path / "other-worker.json", g.workers[1].keypair)
    return url, tmp_path, g


def decentral(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "decentral_chain.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_credits_and_job_commands_settle_a_job(live):
    url, keys, g = live
    client, gateway = str(keys / "client.json"), str(keys / "gateway.json")
    dep = decentral("credits", "--rpc-url", url, "--keypair", client, "--json", "deposit", "2.5")
    assert dep.returncode == 0, dep.stderr
    assert json.loads(dep.stdout)["free"] == "2.500000"
    lock = decentral(
        "job",
        "--rpc-url",
        url,
        "--keypair",
        gateway,
        "--json",
        "lock",
        "--client",
        str(g.clients[0].pubkey),
        "--worker",
        str(g.workers[0].pubkey),
        "--amount",
        "1",
    )
    assert lock.returncode == 0, lock.stderr
    job_id = json.loads(lock.stdout)["job_id"]
    assert uuid.UUID(job_id).version == 4
    response = keys / "response.json"
    response.write_bytes(b'{"ok": true}')
    settle_args = ["--cost", "0.4", "--response", str(response), "--prompt-tokens", "5", "--completion-tokens", "7"]
    wrong = decentral(
        "job", "--rpc-url", url, "--keypair", gateway, "settle", job_id, *settle_args,
        "--worker-keypair", str(keys / "other-worker.json"),
    )  # fmt: skip
    assert wrong.returncode == 2 and "no keypair of the job's worker" in wrong.stderr  # only its own worker signs
    settle = decentral(
        "job",
        "--rpc-url",
        url,
        "--keypair",
        gateway,
        "--json",
        "settle",
        job_id,
        "--cost",
        "0.4",
        "--response",
        str(response),
        "--prompt-tokens",
        "5",
        "--completion-tokens",
        "7",
        "--worker-keypair",
        str(keys / "worker.json"),
    )
    assert settle.returncode == 0, settle.stderr
    assert json.loads(settle.stdout)["result_hash"] == hashlib.sha256(b'{"ok": true}').hexdigest()
    bal = decentral("credits", "--rpc-url", url, "--keypair", client, "--json", "balance")
    assert json.loads(bal.stdout) | {} == {
        "owner": str(g.clients[0].pubkey),
        "free": "2.100000",
        "locked": "0.000000",
        "open_jobs": 0,
        "wallet_usdc": "997.500000",
    }
    table = decentral("credits", "--rpc-url", url, "--keypair", client, "balance")
    assert table.returncode == 0 and "2.100000" in table.stdout


def test_command_errors_are_one_line_with_exit_codes(live):
    url, keys, g = live
    client = str(keys / "client.json")
    too_fine = decentral("credits", "--rpc-url", url, "--keypair", client, "deposit", "0.0000001")
    assert too_fine.returncode == 2 and "at most 6 decimals" in too_fine.stderr
    refused = decentral("credits", "--rpc-url", url, "--keypair", client, "withdraw", "1")
    assert refused.returncode == 1
    assert refused.stderr.strip().count("\n") == 0 and "has no credits: deposit first" in refused.stderr
    decentral("credits", "--rpc-url", url, "--keypair", client, "deposit", "1")
    too_much = decentral("credits", "--rpc-url", url, "--keypair", client, "withdraw", "5")
    assert too_much.returncode == 1 and "InsufficientCredits" in too_much.stderr
    down = decentral(
        "credits", "--rpc-url", "http://127.0.0.1:9", "--keypair", client, "balance", str(g.clients[0].pubkey)
    )
    assert down.returncode == 2 and "Traceback" not in down.stderr
    bad_job = decentral("job", "--rpc-url", url, "--keypair", client, "refund", "not-a-uuid")
    assert bad_job.returncode == 2 and "not a UUID" in bad_job.stderr


def test_gateway_keys_are_created_listed_and_revoked(tmp_path):
    from decentral_chain.gateway.keys import KeyStore

    env = {**os.environ, "DECENTRAL_GATEWAY_KEYS_DB": str(tmp_path / "keys.db"), "COLUMNS": "200"}

    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "decentral_chain.cli", "gateway", "keys", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    wallet = "11111111111111111111111111111112"
    created = run("create", "--wallet", wallet, "--label", "alice")
    key = created.stdout.strip()
    assert created.returncode == 0 and key.startswith("dc-")
    # only the hash is stored (read before any connection of ours: closing a file descriptor
    # drops this process's POSIX locks on it, which SQLite relies on)
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("keys.db*"))
    assert key.encode() not in stored and hashlib.sha256(key.encode()).hexdigest().encode() in stored
    store = KeyStore(tmp_path / "keys.db")
    assert str(store.wallet(key)) == wallet
    key_id = store.list()[0].key_id
    listed = run("list")
    assert "alice" in listed.stdout and key_id in listed.stdout
    assert run("revoke", key_id).returncode == 0
    assert store.wallet(key) is None
    store.close()
    again = run("revoke", key_id)
    assert again.returncode == 2 and "no active key" in again.stderr
    bad = run("create", "--wallet", "nope")
    assert bad.returncode == 2 and "not a base-58 public key" in bad.stderr


def test_worker_and_gateway_worker_options_refuse_bad_input_in_one_line(tmp_path):
    """No traceback: a bad gateway key, a missing keypair, a worker URL that is not http(s)."""
    from solders.keypair import Keypair

    cli = [sys.executable, "-m", "decentral_chain.cli"]
    keypair = tmp_path / "w.json"
    keypair.write_text(json.dumps(list(bytes(Keypair()))))
    cases = [
        ([*cli, "worker", "--keypair", str(keypair), "--gateway", "not-a-key"], "not a base-58 public key"),
        (
            [*cli, "worker", "--keypair", str(tmp_path / "missing.json"), "--gateway", str(Keypair().pubkey())],
            "does not exist",
        ),
        ([*cli, "gateway", "--worker", "ftp://example", "--gateway-keypair", str(keypair)], "not an http(s) URL"),
    ]
    for cmd, words in cases:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert words in proc.stderr and "Traceback" not in proc.stderr


def test_a_worker_without_sol_for_its_payout_account_names_the_wallet_to_fund(live, tmp_path):
    from solders.keypair import Keypair

    url, _, g = live
    fresh = Keypair()
    write_keypair(tmp_path / "fresh.json", fresh)
    proc = decentral(
        "worker", "--rpc-url", url, "--keypair", str(tmp_path / "fresh.json"), "--gateway", str(g.gateway.pubkey())
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"the worker's wallet {fresh.pubkey()} has 0 lamports" in proc.stderr
