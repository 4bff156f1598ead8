"""`--validator solana-test-validator`: the RPC genesis it runs, proven against a bare chain
(program deployed, nothing else), and the real validator where its binary is on PATH."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time

import httpx
import pytest
from solders.litesvm import LiteSVM

from decentral_chain.abi import PROGRAM_ID
from decentral_chain.client import EscrowClient
from decentral_chain.localnet.chain import LocalChain
from decentral_chain.localnet.genesis import USDC
from decentral_chain.localnet.keys import LocalnetKeys
from decentral_chain.localnet.rpc_genesis import genesis_over_rpc
from decentral_chain.localnet.server import ServerThread, create_app, free_port_pair
from decentral_chain.localnet.svm import deploy_upgradeable


def test_rpc_genesis_on_a_bare_chain(program_elf, tmp_path):
    keys = LocalnetKeys.load(tmp_path)
    svm = LiteSVM()
    deploy_upgradeable(svm, PROGRAM_ID, program_elf, keys.admin.pubkey())  # what --upgradeable-program does
    chain = LocalChain(svm)
    with ServerThread((create_app(chain), 0)) as server:

        async def run():
            await genesis_over_rpc(server.url(), keys)
            async with EscrowClient(server.url()) as escrow:
                cfg = await escrow.get_config()
                assert (cfg.admin, cfg.gateway, cfg.mint) == (
                    keys.admin.pubkey(),
                    keys.gateway.pubkey(),
                    keys.mint.pubkey(),
                )
                await escrow.deposit(keys.client, 3 * USDC)
                assert (await escrow.get_credits(keys.client.pubkey())).free == 3 * USDC

        asyncio.run(run())


@pytest.mark.skipif(shutil.which("solana-test-validator") is None, reason="solana-test-validator is not on PATH")
def test_decentral_localnet_with_solana_test_validator(tmp_path):
    port = free_port_pair()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "decentral_chain.cli",
            "localnet",
            "--validator",
            "solana-test-validator",
            "--port",
            str(port),
            "--keys-dir",
            str(tmp_path),
        ]
    )
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "addresses.json").exists() or "ready" not in (tmp_path / "addresses.json").read_text():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.5)
        addresses = json.loads((tmp_path / "addresses.json").read_text())
        reply = httpx.post(
            addresses["rpc_url"],
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "getAccountInfo",
                "params": [addresses["config"], {"encoding": "base64"}],
            },
        )
        assert reply.json()["result"]["value"]["owner"] == str(PROGRAM_ID)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
