"""PubSub on port + 1, driven by solana-py's websocket client (its solders parser is strict
about every notification shape)."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from solana.rpc.async_api import AsyncClient
from solana.rpc.websocket_api import connect
from solders.keypair import Keypair
from solders.message import Message
from solders.rpc.config import RpcTransactionLogsFilter, RpcTransactionLogsFilterMentions
from solders.rpc.responses import (
    AccountNotification,
    LogsNotification,
    SignatureNotification,
    SlotNotification,
)
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from decentral_chain.abi import PROGRAM_ID
from decentral_chain.instructions import build_deposit
from decentral_chain.localnet.chain import LocalChain
from decentral_chain.localnet.genesis import USDC, build_genesis
from decentral_chain.localnet.pubsub import create_pubsub_app
from decentral_chain.localnet.server import ServerThread, create_app
from tests.conftest import FAST_CHAIN


@pytest.fixture
def localnet(program_elf):
    g = build_genesis(program_elf)
    chain = LocalChain.from_genesis(g, **FAST_CHAIN)
    with ServerThread((create_app(chain), 0), (create_pubsub_app(chain), 0)) as server:
        yield server.url(0), server.url(1, "ws"), chain, g


async def _signed(client: AsyncClient, ixs, payer: Keypair) -> VersionedTransaction:
    blockhash = (await client.get_latest_blockhash()).value.blockhash
    return VersionedTransaction(Message.new_with_blockhash(ixs, payer.pubkey(), blockhash), [payer])


async def _next(ws, kind):
    while True:
        for msg in await asyncio.wait_for(ws.recv(), timeout=5):
            if isinstance(msg, kind):
                return msg


def test_signature_account_and_logs_notifications(localnet):
    url, ws_url, chain, g = localnet
    receiver = Keypair()

    async def run():
        async with AsyncClient(url) as client, connect(ws_url) as ws:
            tx = await _signed(
                client,
                [
                    transfer(
                        TransferParams(from_pubkey=g.admin.pubkey(), to_pubkey=receiver.pubkey(), lamports=7_000_000)
                    )
                ],
                g.admin,
            )
            await ws.signature_subscribe(tx.signatures[0])
            sig_sub = (await ws.recv())[0].result
            await ws.account_subscribe(receiver.pubkey())
            acc_sub = (await ws.recv())[0].result
            await ws.logs_subscribe(RpcTransactionLogsFilterMentions(g.admin.pubkey()))
            logs_sub = (await ws.recv())[0].result
            assert len({sig_sub, acc_sub, logs_sub}) == 3
            await client.send_transaction(tx)
            got = {}
            while len(got) < 3:
                for msg in await asyncio.wait_for(ws.recv(), timeout=5):
                    got[type(msg)] = msg
            assert got[SignatureNotification].result.value.err is None
            assert got[AccountNotification].result.value.lamports == 7_000_000
            logs = got[LogsNotification].result.value
            assert logs.signature == tx.signatures[0] and any("invoke [1]" in line for line in logs.logs)

    asyncio.run(run())


def test_signature_already_processed_is_notified_at_once(localnet):
    url, ws_url, chain, g = localnet

    async def run():
        async with AsyncClient(url) as client, connect(ws_url) as ws:
            c = g.clients[0]
            tx = await _signed(client, [build_deposit(owner=c.pubkey, source=c.token, amount=USDC)], c.keypair)
            await client.send_transaction(tx)
            await ws.signature_subscribe(tx.signatures[0])
            await ws.recv()
            note = await _next(ws, SignatureNotification)
            assert note.result.value.err is None

    asyncio.run(run())


def test_signature_notifications_wait_for_their_commitment(localnet):
    """processed at once, confirmed when the slot closed, finalized finality_slots later."""
    from solana.rpc.commitment import Confirmed, Finalized, Processed

    url, ws_url, chain, g = localnet

    async def run():
        async with AsyncClient(url) as client, connect(ws_url) as ws:
            c = g.clients[0]
            tx = await _signed(client, [build_deposit(owner=c.pubkey, source=c.token, amount=USDC)], c.keypair)
            subs = {}
            for level, commitment in (("processed", Processed), ("confirmed", Confirmed), ("finalized", Finalized)):
                await ws.signature_subscribe(tx.signatures[0], commitment)
                subs[(await ws.recv())[0].result] = level
            await client.send_transaction(tx)
            seen = []
            while len(seen) < 3:
                note = await _next(ws, SignatureNotification)
                record = chain.history[tx.signatures[0]]
                seen.append((subs[note.subscription], chain.status(record.slot)))
            return seen

    seen = asyncio.run(run())
    assert [level for level, _ in seen] == ["processed", "confirmed", "finalized"]
    assert all(status in ("confirmed", "finalized") for level, status in seen if level != "processed")
    assert seen[2][1] == "finalized"


def test_slot_notifications_and_program_logs_filter(localnet):
    url, ws_url, chain, g = localnet

    async def run():
        async with connect(ws_url) as ws:
            await ws.slot_subscribe()
            await ws.recv()
            first = (await _next(ws, SlotNotification)).result.slot
            second = (await _next(ws, SlotNotification)).result.slot
            assert second == first + 1
            await ws.logs_subscribe(RpcTransactionLogsFilter.All)
            assert isinstance((await ws.recv())[0].result, int)
        async with connect(ws_url) as ws, AsyncClient(url) as client:
            await ws.logs_subscribe(RpcTransactionLogsFilterMentions(PROGRAM_ID))
            await ws.recv()
            c = g.clients[0]
            await client.send_transaction(
                await _signed(client, [build_deposit(owner=c.pubkey, source=c.token, amount=USDC)], c.keypair)
            )
            logs = (await _next(ws, LogsNotification)).result.value
            assert any(line.startswith("Program data: ") for line in logs.logs)

    asyncio.run(run())


def test_bad_subscriptions_get_json_rpc_errors(localnet):
    url, ws_url, chain, g = localnet

    async def run():
        async with websockets.connect(ws_url) as ws:

            async def ask(payload) -> dict:
                await ws.send(payload if isinstance(payload, str) else json.dumps(payload))
                return json.loads(await asyncio.wait_for(ws.recv(), timeout=5))

            assert (await ask("{nope"))["error"]["code"] == -32700
            unknown = (await ask({"jsonrpc": "2.0", "id": 1, "method": "fooSubscribe"}))["error"]
            assert unknown["code"] == -32601 and "fooSubscribe" in unknown["data"]
            bad = await ask({"jsonrpc": "2.0", "id": 2, "method": "accountSubscribe", "params": ["xyz"]})
            assert bad["error"]["code"] == -32602
            gone = await ask({"jsonrpc": "2.0", "id": 3, "method": "slotUnsubscribe", "params": [999]})
            assert gone["error"]["code"] == -32602
            sub = await ask({"jsonrpc": "2.0", "id": 4, "method": "rootSubscribe"})
            done = await ask({"jsonrpc": "2.0", "id": 5, "method": "rootUnsubscribe", "params": [sub["result"]]})
            while "id" not in done:  # a root notification may arrive first
                done = json.loads(await asyncio.wait_for(ws.recv(), timeout=5))
            assert done == {"jsonrpc": "2.0", "result": True, "id": 5}

    asyncio.run(run())


def test_slots_updates_block_and_vote_subscriptions(localnet):
    """solana-py's websocket client (solders' strict parsers) on slotsUpdatesSubscribe (each
    slot's life), blockSubscribe (a block with our transaction once confirmed, shaped as
    getBlock; a mentions filter that matches nothing stays quiet) and voteSubscribe (accepted,
    silent: no votes on one node)."""
    from solders.rpc.config import RpcBlockSubscribeFilterMentions
    from solders.rpc.responses import (
        BlockNotification,
        SlotUpdateCreatedBank,
        SlotUpdateFrozen,
        SlotUpdateNotification,
        SlotUpdateRoot,
    )
    from solders.transaction_status import TransactionDetails

    url, ws_url, chain, g = localnet
    receiver = Keypair()

    async def run():
        async with AsyncClient(url) as client, connect(ws_url) as ws, connect(ws_url) as quiet:
            await ws.slots_updates_subscribe()
            await ws.recv()
            updates = []
            while not {SlotUpdateCreatedBank, SlotUpdateFrozen, SlotUpdateRoot} <= {type(u) for u in updates}:
                note = await _next(ws, SlotUpdateNotification)
                updates.append(note.result)
            await ws.block_subscribe(
                commitment="confirmed", transaction_details=TransactionDetails.Signatures, show_rewards=False
            )
            await ws.recv()
            await quiet.block_subscribe(RpcBlockSubscribeFilterMentions(Keypair().pubkey()), commitment="confirmed")
            await quiet.vote_subscribe()
            await quiet.recv()
            await quiet.recv()
            tx = await _signed(
                client,
                [transfer(TransferParams(from_pubkey=g.admin.pubkey(), to_pubkey=receiver.pubkey(), lamports=10**6))],
                g.admin,
            )
            signature = (await client.send_raw_transaction(bytes(tx))).value
            while True:
                note = await _next(ws, BlockNotification)
                block = note.result.value.block
                if block is not None and signature in (block.signatures or []):
                    break
            with pytest.raises(TimeoutError):  # the mentions filter and vote stay quiet
                await asyncio.wait_for(quiet.recv(), timeout=0.5)
            return updates, note

    updates, note = asyncio.run(run())
    frozen = next(u for u in updates if isinstance(u, SlotUpdateFrozen))
    assert frozen.stats.num_failed_transactions == 0
    assert note.result.value.err is None and note.result.value.block.block_height == note.result.value.slot


def test_a_nonce_account_reads_as_agave_parses_it(localnet):
    """A durable nonce account made by the system program, read with jsonParsed through
    solana-py: Agave's account-decoder shape ("nonce", initialized, authority, blockhash,
    feeCalculator); a plain wallet stays base64, as on a validator."""
    from solders.hash import Hash
    from solders.system_program import create_nonce_account

    url, _, chain, g = localnet
    nonce, authority = Keypair(), Keypair().pubkey()

    async def run():
        async with AsyncClient(url) as client:
            ixs = list(create_nonce_account(g.admin.pubkey(), nonce.pubkey(), authority, 1_500_000))
            blockhash = (await client.get_latest_blockhash()).value.blockhash
            tx = VersionedTransaction(Message.new_with_blockhash(ixs, g.admin.pubkey(), blockhash), [g.admin, nonce])
            await client.send_raw_transaction(bytes(tx))
            await asyncio.sleep(0.3)
            parsed = await client.get_account_info_json_parsed(nonce.pubkey(), commitment="processed")
            raw = await client.get_account_info(nonce.pubkey(), commitment="processed")
            wallet = await client.get_account_info_json_parsed(authority, commitment="processed")
            funded = await client.get_account_info_json_parsed(g.admin.pubkey(), commitment="processed")
            return parsed.value, raw.value, wallet.value, funded.value

    parsed, raw, wallet, funded = asyncio.run(run())
    data = parsed.data
    assert data.program == "nonce" and data.space == 80
    assert data.parsed["type"] == "initialized"
    info = data.parsed["info"]
    assert info["authority"] == str(authority) and info["feeCalculator"] == {"lamportsPerSignature": "5000"}
    assert info["blockhash"] == str(Hash.from_bytes(raw.data[40:72]))
    assert wallet is None and isinstance(funded.data, bytes)  # no data to parse: base64, as validators do
