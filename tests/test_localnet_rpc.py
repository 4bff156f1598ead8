"""The localnet over real HTTP on loopback, driven by solana-py's AsyncClient (unpatched)
and by raw JSON-RPC for the error shapes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time

import httpx
import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Finalized
from solana.rpc.core import RPCException
from solana.rpc.types import TxOpts
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from decentral_chain.abi import TOKEN_PROGRAM_ID
from decentral_chain.events import JobSettled, parse_events
from decentral_chain.instructions import build_deposit, build_lock_job, build_settle_job
from decentral_chain.localnet.genesis import USDC
from decentral_chain.pda import new_job_id
from tests.conftest import job_nonce


def rpc(url: str, method: str, params: list | None = None) -> dict:
    return httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).json()


async def send_signed(client: AsyncClient, ixs, payer: Keypair, *signers: Keypair) -> str:
    blockhash = (await client.get_latest_blockhash()).value.blockhash
    tx = VersionedTransaction(Message.new_with_blockhash(ixs, payer.pubkey(), blockhash), [payer, *signers])
    sig = (await client.send_transaction(tx)).value
    await client.confirm_transaction(sig, Finalized, sleep_seconds=0.05)  # the client reads at finalized
    return sig


def test_solana_py_transfers_and_reads_back(rpc_localnet):
    url, chain, g = rpc_localnet

    async def run():
        async with AsyncClient(url) as client:
            assert await client.is_connected()
            sender, receiver = g.admin, Keypair()
            before = (await client.get_balance(sender.pubkey())).value
            sig = await send_signed(
                client,
                [
                    transfer(
                        TransferParams(from_pubkey=sender.pubkey(), to_pubkey=receiver.pubkey(), lamports=1_234_567)
                    )
                ],
                sender,
            )
            assert (await client.get_balance(receiver.pubkey())).value == 1_234_567
            assert (await client.get_balance(sender.pubkey())).value == before - 1_234_567 - 5_000
            info = (await client.get_account_info(receiver.pubkey())).value
            assert info.lamports == 1_234_567 and info.owner == Pubkey.default()
            tx = (await client.get_transaction(sig, max_supported_transaction_version=0)).value
            assert tx.transaction.meta.err is None and tx.transaction.meta.fee == 5_000
            assert tx.transaction.meta.post_balances[1] == 1_234_567
            raw = (await client.get_transaction(sig, encoding="base64", max_supported_transaction_version=0)).value
            assert raw.slot == tx.slot and raw.block_time is not None
            statuses = (await client.get_signature_statuses([sig])).value
            assert statuses[0].err is None and statuses[0].slot == tx.slot

    asyncio.run(run())


def test_escrow_settlement_through_solana_py_reports_token_balances(rpc_localnet):
    url, chain, g = rpc_localnet
    client_wallet, worker = g.clients[0], g.workers[0]

    async def run():
        async with AsyncClient(url) as client:
            await send_signed(
                client,
                [build_deposit(owner=client_wallet.pubkey, source=client_wallet.token, amount=5 * USDC)],
                client_wallet.keypair,
            )
            job_id = new_job_id()
            lock_sig = await send_signed(
                client,
                [
                    build_lock_job(
                        gateway=g.gateway.pubkey(),
                        client=client_wallet.pubkey,
                        job_id=job_id,
                        amount=2 * USDC,
                        worker=worker.pubkey,
                    )
                ],
                g.gateway,
            )
            settle_sig = await send_signed(
                client,
                [
                    build_settle_job(
                        gateway=g.gateway.pubkey(),
                        client=client_wallet.pubkey,
                        job_id=job_id,
                        worker_token=worker.token,
                        treasury=g.treasury.token,
                        payer=g.gateway.pubkey(),
                        cost=USDC,
                        result_hash=hashlib.sha256(b"r").digest(),
                        prompt_tokens=1,
                        completion_tokens=2,
                        worker=worker.pubkey,
                        nonce=job_nonce(chain.svm, job_id),
                    )
                ],
                g.gateway,
                worker.keypair,
            )
            settled = (await client.get_transaction(settle_sig, max_supported_transaction_version=0)).value
            meta = settled.transaction.meta
            events = parse_events(meta.log_messages)
            assert isinstance(events[0], JobSettled) and events[0].cost == USDC and events[0].fee == 25_000
            post = {str(b.owner): int(b.ui_token_amount.amount) for b in meta.post_token_balances}
            assert post[str(worker.pubkey)] == USDC - 25_000
            assert all(b.mint == g.mint for b in meta.post_token_balances)
            assert meta.inner_instructions  # the two token transfers
            locked = (await client.get_transaction(lock_sig, max_supported_transaction_version=0)).value
            assert locked.slot <= settled.slot
            balance = (await client.get_token_account_balance(worker.token)).value
            assert balance.amount == str(USDC - 25_000) and balance.decimals == 6

    asyncio.run(run())


def test_failed_escrow_transaction_is_a_preflight_error_with_logs(rpc_localnet):
    url, chain, g = rpc_localnet
    worker = g.workers[0]

    async def run():
        async with AsyncClient(url) as client:
            blockhash = (await client.get_latest_blockhash()).value.blockhash
            ix = build_lock_job(
                gateway=g.gateway.pubkey(),
                client=g.clients[0].pubkey,
                job_id=new_job_id(),
                amount=1,
                worker=worker.pubkey,
            )  # the client has no Credits yet
            tx = VersionedTransaction(Message.new_with_blockhash([ix], g.gateway.pubkey(), blockhash), [g.gateway])
            with pytest.raises(RPCException) as info:
                await client.send_transaction(tx)
            data = info.value.args[0]
            # Agave's words: AccountOwnedByWrongProgram is custom code 6006 = 0x1776
            assert data.message == (
                "Transaction simulation failed: Error processing Instruction 0: custom program error: 0x1776"
            )
            # skipping preflight lands the failure on chain, with its error in the status
            sig = (await client.send_transaction(tx, opts=TxOpts(skip_preflight=True))).value
            status = (await client.get_signature_statuses([sig])).value[0]
            assert status is not None and status.err is not None

    asyncio.run(run())


@pytest.mark.parametrize(
    "err,words",
    [
        pytest.param("BlockhashNotFound", "Blockhash not found", id="blockhash"),
        pytest.param(
            "AccountNotFound", "Attempt to debit an account but found no record of a prior credit.", id="no-funds"
        ),
        pytest.param(
            {"InstructionError": [2, {"Custom": 6022}]},
            "Error processing Instruction 2: custom program error: 0x1786",
            id="custom",
        ),
        pytest.param(
            {"InstructionError": [0, "MissingRequiredSignature"]},
            "Error processing Instruction 0: missing required signature for instruction",
            id="builtin",
        ),
        pytest.param(
            {"InstructionError": [1, {"BorshIoError": "x"}]},
            "Error processing Instruction 1: Failed to serialize or deserialize account data",
            id="borsh",
        ),
        pytest.param(
            {"InsufficientFundsForRent": {"account_index": 3}},
            "Transaction results in an account (3) with insufficient funds for rent",
            id="rent",
        ),
        pytest.param(
            {"DuplicateInstruction": 4},
            "Transaction contains a duplicate instruction (4) that is not allowed",
            id="duplicate",
        ),
    ],
)
def test_transaction_errors_are_described_in_agaves_words(err, words):
    from decentral_chain.localnet.encoding import describe_error

    assert describe_error(err) == words


def test_bad_input_gets_json_rpc_errors_and_the_server_keeps_serving(rpc_localnet):
    url, chain, g = rpc_localnet
    assert httpx.post(url, content=b"{not json").json()["error"]["code"] == -32700
    unknown = rpc(url, "getEverything")["error"]
    assert unknown["code"] == -32601 and "getEverything" in unknown["data"]  # says which method
    largest = rpc(url, "getLargestAccounts", [{"filter": "circulating"}])["result"]["value"]
    lamports = [a["lamports"] for a in largest]
    assert 0 < len(largest) <= 20 and lamports == sorted(lamports, reverse=True)
    assert lamports[0] == max(acc.lamports for _, acc in chain.accounts())
    assert rpc(url, "getLargestAccounts", [{"filter": "nonCirculating"}])["result"]["value"] == []
    assert rpc(url, "getLargestAccounts", [{"filter": "everything"}])["error"]["code"] == -32602
    assert rpc(url, "getBalance", ["not-a-key"])["error"]["code"] == -32602
    assert rpc(url, "getBalance", [123])["error"]["code"] == -32602
    garbage = base64.b64encode(b"\x01" + bytes(40)).decode()
    assert rpc(url, "sendTransaction", [garbage, {"encoding": "base64"}])["error"]["code"] == -32602
    stale = VersionedTransaction(
        Message.new_with_blockhash(
            [transfer(TransferParams(from_pubkey=g.admin.pubkey(), to_pubkey=Keypair().pubkey(), lamports=1))],
            g.admin.pubkey(),
            chain.genesis_hash,
        ),
        [g.admin],
    )
    reply = rpc(url, "sendTransaction", [base64.b64encode(bytes(stale)).decode(), {"encoding": "base64"}])
    assert reply["error"]["code"] == -32002 and reply["error"]["data"]["err"] == "BlockhashNotFound"
    batch = httpx.post(
        url, json=[{"jsonrpc": "2.0", "id": i, "method": m} for i, m in enumerate(["getHealth", "getSlot", "nope"])]
    ).json()
    assert [r.get("result", r.get("error", {}).get("code")) for r in batch][0] == "ok"
    assert batch[2]["error"]["code"] == -32601
    assert rpc(url, "getHealth")["result"] == "ok"


def test_slots_advance_and_old_blockhashes_stay_valid(rpc_localnet):
    url, chain, g = rpc_localnet
    first = rpc(url, "getLatestBlockhash")["result"]["value"]["blockhash"]
    slot = rpc(url, "getSlot")["result"]
    time.sleep(1.0)  # 400 ms slots
    assert rpc(url, "getSlot")["result"] >= slot + 2
    assert rpc(url, "getLatestBlockhash")["result"]["value"]["blockhash"] != first
    assert rpc(url, "isBlockhashValid", [first])["result"]["value"] is True


def test_every_read_method_parses_in_solana_py(rpc_localnet):
    """solana-py parses each answer with solders' strict response types."""
    url, chain, g = rpc_localnet
    from solana.rpc.types import DataSliceOpts, MemcmpOpts, TokenAccountOpts

    from decentral_chain.abi import CREDITS, PROGRAM_ID

    async def run():
        async with AsyncClient(url) as client:
            c = g.clients[0]
            sig = await send_signed(client, [build_deposit(owner=c.pubkey, source=c.token, amount=3 * USDC)], c.keypair)
            tx_slot = (await client.get_transaction(sig, max_supported_transaction_version=0)).value.slot
            while (await client.get_slot()).value <= tx_slot:
                await asyncio.sleep(0.1)
            block = (await client.get_block(tx_slot, max_supported_transaction_version=0)).value
            assert any(t.transaction.signatures[0] == sig for t in block.transactions)
            assert (await client.get_block_time(tx_slot)).value == block.block_time
            assert tx_slot in (await client.get_blocks(max(0, tx_slot - 5))).value
            assert (await client.get_block_commitment(tx_slot)).value.total_stake == 0
            assert (await client.get_first_available_block()).value == 0
            assert (await client.get_recent_performance_samples(5)).value[0].num_transactions >= 1
            assert (await client.get_block_height()).value >= tx_slot
            assert (await client.get_transaction_count()).value >= 1
            epoch = (await client.get_epoch_info()).value
            assert epoch.slots_in_epoch == (await client.get_epoch_schedule()).value.slots_per_epoch
            assert (await client.get_version()).value.solana_core
            assert str((await client.get_genesis_hash()).value) == str(chain.genesis_hash)
            assert (
                await client.get_minimum_balance_for_rent_exemption(80)
            ).value == chain.svm.minimum_balance_for_rent_exemption(80)
            supply = (await client.get_token_supply(g.mint)).value
            assert supply.decimals == 6 and int(supply.amount) == 1_000 * USDC
            largest = (await client.get_token_largest_accounts(g.mint)).value
            assert int(largest[0].amount.amount) == 997 * USDC
            owned = (await client.get_token_accounts_by_owner(c.pubkey, TokenAccountOpts(mint=g.mint))).value
            assert [a.pubkey for a in owned] == [c.token]
            credits = (
                await client.get_program_accounts(
                    PROGRAM_ID,
                    encoding="base64",
                    filters=[CREDITS.size, MemcmpOpts(offset=8, bytes=str(c.pubkey))],
                    data_slice=DataSliceOpts(offset=40, length=8),
                )
            ).value
            assert len(credits) == 1 and int.from_bytes(bytes(credits[0].account.data), "little") == 3 * USDC
            many = (await client.get_multiple_accounts([c.pubkey, Keypair().pubkey()])).value
            assert many[0] is not None and many[1] is None
            history = (await client.get_signatures_for_address(c.pubkey, limit=1)).value
            assert history[0].signature == sig
            assert (await client.get_supply()).value.total > 0
            assert (await client.get_inflation_governor()).value.initial == 0.0
            assert (await client.get_inflation_rate()).value.total == 0.0
            nodes = (await client.get_cluster_nodes()).value
            leader = (await client.get_slot_leader()).value
            identity = str((await client.get_identity()).value.identity)
            assert json.loads(nodes[0].to_json())["pubkey"] == str(leader) == identity
            assert (await client.get_vote_accounts()).value.current == []
            schedule = (await client.get_leader_schedule()).value
            assert len(schedule[leader]) == epoch.slots_in_epoch
            lucky = Keypair().pubkey()
            airdrop = (await client.request_airdrop(lucky, 10**9)).value
            await client.confirm_transaction(airdrop, Finalized, sleep_seconds=0.05)  # airdrops are transactions
            assert (await client.get_balance(lucky)).value == 10**9
            msg = Message.new_with_blockhash(
                [transfer(TransferParams(from_pubkey=c.pubkey, to_pubkey=g.admin.pubkey(), lamports=1))],
                c.pubkey,
                (await client.get_latest_blockhash()).value.blockhash,
            )
            assert (await client.get_fee_for_message(msg)).value == 5_000
            sim = (await client.simulate_transaction(VersionedTransaction(msg, [c.keypair]))).value
            assert sim.err is None and sim.logs

    asyncio.run(run())


def test_missing_block_is_a_block_not_available_error(rpc_localnet):
    url, chain, g = rpc_localnet
    reply = rpc(url, "getBlock", [10**9])
    assert reply["error"]["code"] == -32004
    assert rpc(url, "getBlockTime", [10**9])["error"]["code"] == -32004


def test_a_forged_signature_is_refused_with_and_without_preflight(rpc_localnet):
    url, chain, g = rpc_localnet
    msg = Message.new_with_blockhash(
        [transfer(TransferParams(from_pubkey=g.admin.pubkey(), to_pubkey=Keypair().pubkey(), lamports=1))],
        g.admin.pubkey(),
        chain.latest_blockhash[0],
    )
    good = VersionedTransaction(msg, [g.admin])
    forged = VersionedTransaction.populate(msg, [Keypair().sign_message(bytes(msg))])
    raw = base64.b64encode(bytes(forged)).decode()
    for skip in (False, True):
        reply = rpc(url, "sendTransaction", [raw, {"encoding": "base64", "skipPreflight": skip}])
        assert reply["error"]["code"] == -32003, reply
    assert good.signatures[0] not in chain.history and forged.signatures[0] not in chain.history


def test_base58_sends_paging_and_block_details(rpc_localnet):
    url, chain, g = rpc_localnet
    import based58

    sigs = []
    for lamports in (1, 2, 3):
        msg = Message.new_with_blockhash(
            [transfer(TransferParams(from_pubkey=g.admin.pubkey(), to_pubkey=g.gateway.pubkey(), lamports=lamports))],
            g.admin.pubkey(),
            chain.latest_blockhash[0],
        )
        raw = based58.b58encode(bytes(VersionedTransaction(msg, [g.admin]))).decode()
        reply = rpc(url, "sendTransaction", [raw])  # base58 is the default encoding
        sigs.append(reply["result"])
    while rpc(url, "getSignatureStatuses", [sigs[-1:]])["result"]["value"][0]["confirmationStatus"] != "finalized":
        time.sleep(0.05)  # reads default to finalized, as on a validator
    page = rpc(url, "getSignaturesForAddress", [str(g.admin.pubkey()), {"limit": 2}])["result"]
    assert [p["signature"] for p in page] == [sigs[2], sigs[1]]
    older = rpc(url, "getSignaturesForAddress", [str(g.admin.pubkey()), {"before": sigs[2], "until": sigs[0]}])
    assert [p["signature"] for p in older["result"]] == [sigs[1]]
    tx = rpc(url, "getTransaction", [sigs[0], {"encoding": "base58"}])["result"]
    assert tx["transaction"][1] == "base58" and tx["meta"]["err"] is None
    slot = tx["slot"]
    while rpc(url, "getSlot")["result"] <= slot:
        time.sleep(0.05)
    signatures = rpc(url, "getBlock", [slot, {"transactionDetails": "signatures"}])["result"]
    assert sigs[0] in signatures["signatures"] and "transactions" not in signatures
    bare = rpc(url, "getBlock", [slot, {"transactionDetails": "none", "rewards": False}])["result"]
    assert set(bare) == {"blockHeight", "blockTime", "blockhash", "parentSlot", "previousBlockhash"}


def test_simulate_transaction_follows_the_spec(rpc_localnet):
    """sigVerify defaults to false (an unsigned transaction simulates), accounts come back as
    the simulation left them (the chain unchanged), CPIs with innerInstructions, a stale
    blockhash replaced on request, and the validator's errors for the rest."""
    from solders.signature import Signature

    url, chain, g = rpc_localnet
    client, receiver = g.clients[0], Keypair()
    blockhash = chain.latest_blockhash[0]
    move = transfer(TransferParams(from_pubkey=client.pubkey, to_pubkey=receiver.pubkey(), lamports=777))
    unsigned = VersionedTransaction.populate(
        Message.new_with_blockhash([move], client.pubkey, blockhash), [Signature.default()]
    )
    raw = base64.b64encode(bytes(unsigned)).decode()
    accounts = {"addresses": [str(receiver.pubkey()), str(client.pubkey)], "encoding": "base64"}
    sim = rpc(url, "simulateTransaction", [raw, {"encoding": "base64", "accounts": accounts}])["result"]["value"]
    assert sim["err"] is None and sim["unitsConsumed"] > 0 and sim["returnData"] is None
    assert sim["accounts"][0]["lamports"] == 777 and sim["accounts"][1]["owner"] == str(Pubkey.default())
    assert chain.get_account(receiver.pubkey()) is None  # nothing committed
    refused = rpc(url, "simulateTransaction", [raw, {"encoding": "base64", "sigVerify": True}])
    assert refused["error"]["code"] == -32003
    both = rpc(
        url, "simulateTransaction", [raw, {"encoding": "base64", "sigVerify": True, "replaceRecentBlockhash": True}]
    )
    assert both["error"]["code"] == -32602

    deposit = build_deposit(owner=client.pubkey, source=client.token, amount=USDC)
    signed = VersionedTransaction(
        Message.new_with_blockhash([deposit], client.pubkey, Hash.new_unique()), [client.keypair]
    )  # a blockhash the chain never had
    raw = base64.b64encode(bytes(signed)).decode()
    stale = rpc(url, "simulateTransaction", [raw, {"encoding": "base64"}])["result"]["value"]
    assert stale["err"] == "BlockhashNotFound"
    fresh = rpc(
        url,
        "simulateTransaction",
        [raw, {"encoding": "base64", "replaceRecentBlockhash": True, "innerInstructions": True}],
    )["result"]["value"]
    replacement = Hash.from_string(fresh["replacementBlockhash"]["blockhash"])
    assert fresh["err"] is None and chain.blockhash_valid(replacement)  # a recent one (slots tick meanwhile)
    assert replacement != signed.message.recent_blockhash
    cpis = fresh["innerInstructions"][0]["instructions"]
    assert any(signed.message.account_keys[ix["programIdIndex"]] == TOKEN_PROGRAM_ID for ix in cpis)
