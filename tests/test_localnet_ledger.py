"""`decentral localnet` keeps its chain in a ledger: killed with SIGKILL and started again, it
serves every account, signature, transaction, block and its slot height as they were, and a
transaction signed before the kill still lands; --reset starts a new chain."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from pathlib import Path

import httpx
from solana.rpc.async_api import AsyncClient
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from decentral_chain.client import EscrowClient
from decentral_chain.instructions import build_deposit
from decentral_chain.localnet.keys import read_keypair
from decentral_chain.localnet.server import free_port_pair
from decentral_chain.pda import associated_token_address
from tests.test_gateway_crash import CLI, wait_until


class Node:
    def __init__(self, tmp: Path) -> None:
        self.tmp, self.port = tmp, free_port_pair()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, *extra: str) -> None:
        (self.tmp / "addresses.json").unlink(missing_ok=True)
        cmd = [*CLI, "localnet", "--port", str(self.port), "--keys-dir", str(self.tmp), *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: json.loads((self.tmp / "addresses.json").read_text())["ready"])
        wait_until(lambda: self.call("getHealth") == "ok")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def call(self, method: str, *params):
        reply = httpx.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        return reply.json()["result"]


def test_a_killed_localnet_restarts_with_its_whole_chain(tmp_path):
    node = Node(tmp_path)
    node.start()
    try:
        client = read_keypair(tmp_path / "client-keypair.json")
        mint = Pubkey.from_string(json.loads((tmp_path / "addresses.json").read_text())["mint"])
        stranger = Keypair().pubkey()

        async def before():
            async with EscrowClient(node.url) as escrow:
                signatures = [str(await escrow.deposit(client, n * 1_000_000)) for n in (1, 2, 3)]
                # signed now, sent after the restart: its blockhash must still be recent then
                ix = build_deposit(
                    owner=client.pubkey(), source=associated_token_address(client.pubkey(), mint), amount=4
                )
                later = await escrow.prepare([ix], client)
                return signatures, later, await escrow.get_credits(client.pubkey())

        signatures, later, credits = asyncio.run(before())
        node.call("surfnet_setAccount", str(stranger), {"lamports": 777, "data": "abcd"})
        wait_until(
            lambda: node.call("getSignatureStatuses", signatures)["value"][-1]["confirmationStatus"] != "processed"
        )
        genesis_hash = node.call("getGenesisHash")
        slot = node.call("getSlot", {"commitment": "processed"})
        txs = [node.call("getTransaction", s, {"commitment": "confirmed", "encoding": "json"}) for s in signatures]
        block = node.call("getBlock", txs[-1]["slot"], {"commitment": "confirmed", "transactionDetails": "signatures"})
        node.kill()  # no chance to flush anything

        node.start()
        assert node.call("getGenesisHash") == genesis_hash
        assert node.call("getSlot", {"commitment": "processed"}) >= slot
        for signature, tx in zip(signatures, txs, strict=True):
            again = node.call("getTransaction", signature, {"commitment": "confirmed", "encoding": "json"})
            assert again["slot"] == tx["slot"] and again["blockTime"] == tx["blockTime"]
            assert again["meta"] == tx["meta"]  # logs, balances, inner instructions, units: replayed exactly
        again_block = node.call(
            "getBlock", txs[-1]["slot"], {"commitment": "confirmed", "transactionDetails": "signatures"}
        )
        assert again_block == block
        statuses = node.call("getSignatureStatuses", signatures)["value"]
        assert all(s is not None and s["err"] is None for s in statuses)

        async def after():
            async with EscrowClient(node.url) as escrow:
                restored = await escrow.get_credits(client.pubkey())
                await escrow.send_raw(bytes(later.transaction))  # signed before the kill
                await escrow.confirm(later.signature, timeout=10)
                return restored, await escrow.get_credits(client.pubkey())

        restored, grown = asyncio.run(after())
        assert restored == credits and grown.free == credits.free + 4

        async def cheat_kept():
            async with AsyncClient(node.url) as sol:
                return (await sol.get_account_info(stranger, commitment="processed")).value

        account = asyncio.run(cheat_kept())
        assert account.lamports == 777 and account.data == bytes.fromhex("abcd")
        node.stop()

        node.start("--reset")  # a new chain: the client never deposited
        assert node.call("getGenesisHash") != genesis_hash
        assert node.call("getTransaction", signatures[0], {"commitment": "confirmed"}) is None

        async def fresh():
            async with EscrowClient(node.url) as escrow:
                return await escrow.get_credits(client.pubkey())

        assert asyncio.run(fresh()) is None
    finally:
        node.stop()


def test_the_ledger_directory_is_chosen_with_ledger(tmp_path):
    node = Node(tmp_path / "keys")
    (tmp_path / "keys").mkdir()
    node.start("--ledger", str(tmp_path / "elsewhere"))
    try:
        assert (tmp_path / "elsewhere" / "ledger.sqlite").exists()
        assert not (tmp_path / "keys" / "ledger").exists()
    finally:
        node.stop()
    time.sleep(0.1)
