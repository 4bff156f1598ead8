"""Surfpool's cheatcodes on the localnet, called over HTTP with Surfpool's names and
parameters, read back through solana-py's AsyncClient and our settlement client."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from solana.rpc.async_api import AsyncClient
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from decentral_chain import pda
from decentral_chain.client import EscrowClient
from decentral_chain.errors import EscrowError, ProgramError, TransactionFailed
from decentral_chain.instructions import build_deposit
from decentral_chain.localnet.chain import SLOTS_PER_EPOCH
from decentral_chain.localnet.genesis import USDC

OWNER = Pubkey.from_string("Stake11111111111111111111111111111111111111")


def cheat(url: str, method: str, *params) -> dict:
    reply = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}, timeout=10)
    return reply.json()


def test_client_refunds_its_own_job_after_time_travel(rpc_localnet):
    """The client may refund a job itself once it expired: travel past expires_at instead of
    waiting the escrow's refund_timeout (600 s)."""
    url, chain, g = rpc_localnet
    client = g.clients[0]
    job_id = pda.new_job_id()

    async def run():
        async with EscrowClient(url) as escrow:
            await escrow.deposit(client.keypair, 10 * USDC)
            await escrow.lock_job(g.gateway, client.pubkey, job_id, USDC, g.workers[0].pubkey)
            with pytest.raises(ProgramError) as early:
                await escrow.refund_job(client.keypair, job_id)
            assert early.value.error == EscrowError.JobNotExpired
            job = await escrow.get_job(job_id)
            travelled = cheat(url, "surfnet_timeTravel", {"absoluteTimestamp": (job.expires_at + 1) * 1000})
            assert travelled["result"]["absoluteSlot"] > 0 and "slotsInEpoch" in travelled["result"]  # an EpochInfo
            await escrow.refund_job(client.keypair, job_id)
            credits = await escrow.get_credits(client.pubkey)
            return credits, await escrow.get_job(job_id)

    credits, job = asyncio.run(run())
    assert job is None and credits.free == 10 * USDC and credits.locked == 0
    assert chain.svm.get_clock().unix_timestamp >= time.time() + 590  # the program saw the new time


def test_time_travel_by_slot_and_epoch_moves_forward_only_and_expires_old_blockhashes(rpc_localnet):
    url, chain, g = rpc_localnet

    async def run():
        async with AsyncClient(url) as sol:
            before = (await sol.get_latest_blockhash()).value
            start = (await sol.get_epoch_info()).value
            target = start.absolute_slot + 500
            info = cheat(url, "surfnet_timeTravel", {"absoluteSlot": target})["result"]
            assert info["absoluteSlot"] == target and info["slotsInEpoch"] == SLOTS_PER_EPOCH
            assert (await sol.get_slot("processed")).value == target
            # a transaction signed before the jump: 500 slots is past every blockhash's age
            async with EscrowClient(url) as escrow:
                ix = build_deposit(owner=g.clients[0].pubkey, source=g.clients[0].token, amount=USDC)
                from solders.message import Message
                from solders.transaction import VersionedTransaction

                stale = VersionedTransaction(
                    Message.new_with_blockhash([ix], g.clients[0].pubkey, before.blockhash), [g.clients[0].keypair]
                )
                with pytest.raises(TransactionFailed) as expired:
                    await escrow.send_raw(bytes(stale))
                assert expired.value.err == "BlockhashNotFound"
                await escrow.send([ix], g.clients[0].keypair)  # a fresh one lands
            epoch = cheat(url, "surfnet_timeTravel", {"absoluteEpoch": 3})["result"]
            assert epoch["epoch"] == 3 and epoch["slotIndex"] == 0
            back = cheat(url, "surfnet_timeTravel", {"absoluteSlot": 1})
            assert back["error"]["code"] == -32602 and "in the past" in back["error"]["message"]
            garbage = cheat(url, "surfnet_timeTravel", {"absoluteYear": 3})
            assert garbage["error"]["code"] == -32602

    asyncio.run(run())


def test_pause_and_resume_the_clock(rpc_localnet):
    url, chain, _ = rpc_localnet
    paused = cheat(url, "surfnet_pauseClock")["result"]
    clock, stood = chain.svm.get_clock().unix_timestamp, chain.now()
    time.sleep(0.6)  # six 100 ms slots would have passed
    assert cheat(url, "getSlot", {"commitment": "processed"})["result"] == paused["absoluteSlot"]
    assert chain.now() == stood  # the chain's time stands
    assert chain.svm.get_clock().unix_timestamp == clock  # and so does the programs' clock
    resumed = cheat(url, "surfnet_resumeClock")["result"]
    assert resumed["absoluteSlot"] == paused["absoluteSlot"]
    time.sleep(0.4)
    assert cheat(url, "getSlot", {"commitment": "processed"})["result"] > paused["absoluteSlot"]
    assert chain.now() < time.time() - 0.4  # the pause took no chain time


def test_set_account_and_reset_account(rpc_localnet):
    url, chain, g = rpc_localnet
    key = Keypair().pubkey()

    async def read(address: Pubkey):
        async with AsyncClient(url) as sol:
            return (await sol.get_account_info(address, commitment="processed")).value

    assert (
        cheat(url, "surfnet_setAccount", str(key), {"lamports": 5_000_000, "data": "deadbeef", "owner": str(OWNER)})[
            "result"
        ]["value"]
        is None
    )
    account = asyncio.run(read(key))
    assert account.lamports == 5_000_000 and account.data == bytes.fromhex("deadbeef") and account.owner == OWNER
    cheat(url, "surfnet_setAccount", str(key), {"lamports": 7})  # the rest stays
    account = asyncio.run(read(key))
    assert account.lamports == 7 and account.data == bytes.fromhex("deadbeef")
    bad = cheat(url, "surfnet_setAccount", str(key), {"data": "not hex"})
    assert bad["error"]["code"] == -32602 and "hex" in bad["error"]["message"]
    # reset: an account genesis made goes back to it; one it did not make is gone
    genesis_lamports = asyncio.run(read(g.clients[0].pubkey)).lamports
    cheat(url, "surfnet_setAccount", str(g.clients[0].pubkey), {"lamports": 1})
    assert asyncio.run(read(g.clients[0].pubkey)).lamports == 1
    cheat(url, "surfnet_resetAccount", str(g.clients[0].pubkey))
    assert asyncio.run(read(g.clients[0].pubkey)).lamports == genesis_lamports
    cheat(url, "surfnet_resetAccount", str(key))
    assert asyncio.run(read(key)) is None
    # with includeOwnedAccounts, what the owner owns goes too
    owned = Keypair().pubkey()
    cheat(url, "surfnet_setAccount", str(owned), {"lamports": 1_000_000, "owner": str(key)})
    cheat(url, "surfnet_setAccount", str(key), {"lamports": 1_000_000})
    cheat(url, "surfnet_resetAccount", str(key), {"includeOwnedAccounts": True})
    assert asyncio.run(read(owned)) is None and asyncio.run(read(key)) is None


def test_set_token_account(rpc_localnet):
    url, chain, g = rpc_localnet
    owner, delegate = Keypair().pubkey(), Keypair().pubkey()
    update = {"amount": 123 * USDC, "delegate": str(delegate), "delegatedAmount": 5, "state": "frozen"}
    assert "error" not in cheat(url, "surfnet_setTokenAccount", str(owner), str(g.mint), update)
    ata = pda.associated_token_address(owner, g.mint)

    async def parsed():
        async with AsyncClient(url) as sol:
            balance = (await sol.get_token_account_balance(ata, commitment="processed")).value
            info = await sol.get_account_info_json_parsed(ata, commitment="processed")
            return balance, info.value.data.parsed["info"]

    balance, info = asyncio.run(parsed())
    assert balance.amount == str(123 * USDC) and balance.decimals == 6
    assert info["owner"] == str(owner) and info["mint"] == str(g.mint) and info["state"] == "frozen"
    assert info["delegate"] == str(delegate) and info["delegatedAmount"]["amount"] == "5"
    cheat(url, "surfnet_setTokenAccount", str(owner), str(g.mint), {"delegate": "null", "state": "initialized"})
    _, info = asyncio.run(parsed())
    assert (
        "delegate" not in info and info["state"] == "initialized" and info["tokenAmount"]["amount"] == str(123 * USDC)
    )
    bad = cheat(url, "surfnet_setTokenAccount", str(owner), str(g.mint), {"state": "melted"})
    assert bad["error"]["code"] == -32602


def test_token_accounts_by_delegate(rpc_localnet):
    """getTokenAccountsByDelegate through solana-py, parsed and not: the account a delegate
    was set on (with surfnet_setTokenAccount), and nothing for a key that is no delegate."""
    from solana.rpc.types import TokenAccountOpts

    url, chain, g = rpc_localnet
    owner, delegate = Keypair().pubkey(), Keypair().pubkey()
    cheat(url, "surfnet_setTokenAccount", str(owner), str(g.mint), {"amount": 9, "delegate": str(delegate)})

    async def run():
        async with AsyncClient(url) as sol:
            plain = await sol.get_token_accounts_by_delegate(delegate, TokenAccountOpts(mint=g.mint), "processed")
            parsed = await sol.get_token_accounts_by_delegate_json_parsed(
                delegate, TokenAccountOpts(program_id=Pubkey.from_string(str(pda.TOKEN_PROGRAM_ID))), "processed"
            )
            nobody = await sol.get_token_accounts_by_delegate(owner, TokenAccountOpts(mint=g.mint), "processed")
            return plain.value, parsed.value, nobody.value

    plain, parsed, nobody = asyncio.run(run())
    ata = pda.associated_token_address(owner, g.mint)
    assert [a.pubkey for a in plain] == [ata] and [a.pubkey for a in parsed] == [ata]
    assert parsed[0].account.data.parsed["info"]["delegate"] == str(delegate)
    assert nobody == []


AGAVE_HTTP = """getAccountInfo getBalance getBlock getBlockCommitment getBlockHeight getBlockProduction
getBlockTime getBlocks getBlocksWithLimit getClusterNodes getEpochInfo getEpochSchedule getFeeForMessage
getFirstAvailableBlock getGenesisHash getHealth getHighestSnapshotSlot getIdentity getInflationGovernor
getInflationRate getInflationReward getLargestAccounts getLatestBlockhash getLeaderSchedule
getMaxRetransmitSlot getMaxShredInsertSlot getMinimumBalanceForRentExemption getMultipleAccounts
getProgramAccounts getRecentPerformanceSamples getRecentPrioritizationFees getSignatureStatuses
getSignaturesForAddress getSlot getSlotLeader getSlotLeaders getStakeMinimumDelegation getSupply
getTokenAccountBalance getTokenAccountsByDelegate getTokenAccountsByOwner getTokenLargestAccounts
getTokenSupply getTransaction getTransactionCount getVersion getVoteAccounts isBlockhashValid
minimumLedgerSlot requestAirdrop sendTransaction simulateTransaction""".split()


def test_every_agave_http_method_is_served_and_listed_in_the_readme(rpc_localnet):
    """Agave's whole HTTP method list answers (no -32601), through solana-py where it has the
    call; the README's method table names each one."""
    from solders.rpc.responses import GetBlockProductionResp, MinimumLedgerSlotResp

    from decentral_chain.paths import CHECKOUT

    url, chain, g = rpc_localnet
    for name in AGAVE_HTTP:
        answer = cheat(url, name)
        assert answer.get("error", {}).get("code") != -32601, name
    assert cheat(url, "getHighestSnapshotSlot")["error"]["code"] == -32008
    assert cheat(url, "getFoo")["error"] == {
        "code": -32601,
        "message": "Method not found",
        "data": "getFoo is not served by this localnet",
    }

    def parsed(kind, method, *params):  # solders' strict response parsers
        return kind.from_json(json.dumps(cheat(url, method, *params))).value

    production = parsed(GetBlockProductionResp, "getBlockProduction")
    minimum = MinimumLedgerSlotResp.from_json(json.dumps(cheat(url, "minimumLedgerSlot"))).value
    fees = cheat(url, "getRecentPrioritizationFees", [str(g.mint)])["result"]  # solders 0.26 has no parser
    stake = cheat(url, "getStakeMinimumDelegation")["result"]["value"]
    assert production.range.last_slot >= production.range.first_slot == minimum == 0 and stake == 1
    assert fees and all(f["prioritizationFee"] == 0 and isinstance(f["slot"], int) for f in fees)
    assert cheat(url, "getRecentPrioritizationFees", ["not-a-key"])["error"]["code"] == -32602
    readme = (CHECKOUT / "README.md").read_text()
    missing = [name for name in AGAVE_HTTP if f"`{name}`" not in readme]
    assert not missing, f"not in the README's method table: {missing}"
