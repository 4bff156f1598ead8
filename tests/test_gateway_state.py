"""The gateway's own records on a real localnet: the credits reading and the journal."""

from __future__ import annotations

import asyncio
import sqlite3

from decentral_chain.client import EscrowClient
from decentral_chain.gateway.credits import CreditsBook
from decentral_chain.gateway.journal import Journal
from decentral_chain.localnet.genesis import USDC


def test_the_credits_reading_follows_the_chain_and_the_gateways_own_moves(rpc_localnet):
    url, _, g = rpc_localnet
    client = g.clients[0]

    async def run():
        async with EscrowClient(url) as escrow:
            await escrow.deposit(client.keypair, 3 * USDC)
            book = CreditsBook(escrow, max_age=2.0)
            first = await book.free(client.pubkey)  # nothing remembered: the chain
            book.move(client.pubkey, -USDC)  # a lock the gateway sent
            remembered = await book.free(client.pubkey)
            await escrow.deposit(client.keypair, USDC)  # behind the gateway's back
            unchanged = await book.free(client.pubkey)
            await asyncio.sleep(1.1)  # past half its age: the next look refreshes in the background
            stale = await book.free(client.pubkey)
            await asyncio.sleep(0.3)
            refreshed = await book.free(client.pubkey)
            book.forget(client.pubkey)
            forgotten = await book.free(client.pubkey)
            await book.aclose()
            return first, remembered, unchanged, stale, refreshed, forgotten

    first, remembered, unchanged, stale, refreshed, forgotten = asyncio.run(run())
    assert first == (3 * USDC, False)
    assert remembered == unchanged == stale == (2 * USDC, True)
    assert refreshed == (4 * USDC, True)  # the background read brought the deposit in
    assert forgotten == (4 * USDC, False)


def test_a_journal_of_an_earlier_version_is_migrated_and_its_open_jobs_found(tmp_path):
    path = tmp_path / "journal.db"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE jobs (job_id TEXT PRIMARY KEY, client TEXT, worker TEXT, amount INTEGER, state TEXT, "
        "lock_tx TEXT, settlement_tx TEXT, cost INTEGER, result_hash TEXT, prompt_tokens INTEGER, "
        "completion_tokens INTEGER, created REAL, updated REAL, error TEXT)"
    )
    old.executemany(
        "INSERT INTO jobs (job_id, state, amount) VALUES (?, ?, 5)",
        [("a", "locking"), ("b", "inferred"), ("c", "settled"), ("d", "refunded")],
    )
    old.commit()
    old.close()
    journal = Journal(path)
    assert {row["job_id"] for row in journal.open_jobs()} == {"a", "b"}
    journal.update("b", "settling", settlement_tx="sig", settlement_raw=b"\x01\x02")
    assert journal.get("b")["settlement_raw"] == b"\x01\x02"
    journal.open("e", "client", "worker", 7, "lock")
    journal.update("e", "rejected", error="lock refused")
    assert {row["job_id"] for row in journal.open_jobs()} == {"a", "b"}  # rejected is final
    journal.close()
