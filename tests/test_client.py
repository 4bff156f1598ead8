"""The async settlement client against the localnet over real HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import socket

import pytest
from solders.signature import Signature
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from decentral_chain.client import EscrowClient
from decentral_chain.errors import (
    BlockhashExpired,
    ConfirmationTimeout,
    EscrowError,
    ProgramError,
    RpcError,
    RpcUnavailable,
)
from decentral_chain.instructions import build_deposit
from decentral_chain.localnet.chain import MAX_BLOCKHASH_AGE
from decentral_chain.localnet.genesis import USDC
from decentral_chain.localnet.server import ServerThread
from decentral_chain.pda import new_job_id


def test_full_job_lifecycle_with_typed_reads(rpc_localnet):
    url, chain, g = rpc_localnet
    client, worker = g.clients[0], g.workers[0]

    async def run():
        async with EscrowClient(url) as escrow:
            await escrow.deposit(client.keypair, 10 * USDC)
            assert (await escrow.get_credits(client.pubkey)).free == 10 * USDC
            job_id = new_job_id()
            pending = await escrow.prepare_lock_job(g.gateway, client.pubkey, job_id, 3 * USDC, worker.pubkey)
            signature = pending.signature  # known before anything is sent
            assert await escrow.submit(pending) == signature
            await escrow.confirm(signature, timeout=5)
            job = await escrow.get_job(job_id)
            assert (job.client, job.worker, job.amount) == (client.pubkey, worker.pubkey, 3 * USDC)
            await escrow.settle_job(
                g.gateway,
                job_id,
                worker=worker.keypair,
                cost=USDC,
                result_hash=hashlib.sha256(b"x").digest(),
                prompt_tokens=3,
                completion_tokens=4,
            )
            assert await escrow.get_job(job_id) is None
            assert await escrow.token_balance(worker.token) == USDC - 25_000
            refunded = new_job_id()
            await escrow.lock_job(g.gateway, client.pubkey, refunded, USDC, worker.pubkey)
            await escrow.refund_job(g.gateway, refunded)
            await escrow.withdraw(client.keypair, 2 * USDC)
            credits = await escrow.get_credits(client.pubkey)
            assert (credits.free, credits.locked) == (7 * USDC, 0)
            cfg = await escrow.get_config()
            assert (cfg.jobs_settled, cfg.jobs_refunded, cfg.gateway) == (1, 1, g.gateway.pubkey())

    asyncio.run(run())


def test_program_errors_are_named_exceptions(rpc_localnet):
    url, chain, g = rpc_localnet
    client, worker = g.clients[0], g.workers[0]

    async def run():
        async with EscrowClient(url) as escrow:
            await escrow.deposit(client.keypair, USDC)
            with pytest.raises(ProgramError) as info:  # refused at preflight
                await escrow.lock_job(g.gateway, client.pubkey, new_job_id(), 2 * USDC, worker.pubkey)
            assert info.value.error == EscrowError.InsufficientCredits and info.value.logs
            pending = await escrow.prepare_lock_job(g.gateway, client.pubkey, new_job_id(), 2 * USDC, worker.pubkey)
            await escrow.submit(pending, skip_preflight=True)  # lands, and fails on chain
            with pytest.raises(ProgramError) as info:
                await escrow.confirm(pending.signature, timeout=5)
            assert info.value.error == EscrowError.InsufficientCredits

    asyncio.run(run())


def test_expired_blockhash_is_resigned(rpc_localnet):
    url, chain, g = rpc_localnet
    client = g.clients[0]

    class SlowSigner(EscrowClient):
        """Time passes between signing and sending: the first blockhash expires."""

        calls = 0

        async def prepare(self, *args, **kwargs):
            prepared = await super().prepare(*args, **kwargs)
            self.calls += 1
            if self.calls == 1:  # Surfpool's cheatcode, over RPC: 151 slots pass
                slot = (await self.rpc.call("getSlot", [{"commitment": "processed"}])) + MAX_BLOCKHASH_AGE + 1
                await self.rpc.call("surfnet_timeTravel", [{"absoluteSlot": slot}])
                self.first = prepared.signature
            return prepared

    async def run():
        async with SlowSigner(url) as escrow:
            ix = build_deposit(owner=client.pubkey, source=client.token, amount=USDC)
            signature = await escrow.send([ix], client.keypair)
            assert escrow.calls == 2 and signature != escrow.first
            assert (await escrow.get_credits(client.pubkey)).free == USDC
            other = build_deposit(owner=client.pubkey, source=client.token, amount=USDC + 1)
            stale = await escrow.prepare([other], client.keypair)
            for _ in range(MAX_BLOCKHASH_AGE + 1):
                chain.tick()
            with pytest.raises(BlockhashExpired):
                await escrow.confirm(stale.signature, timeout=5, last_valid_block_height=stale.last_valid_block_height)

    asyncio.run(run())


def test_confirmation_has_an_explicit_deadline(rpc_localnet):
    url, chain, g = rpc_localnet

    async def run():
        async with EscrowClient(url) as escrow:
            with pytest.raises(ConfirmationTimeout):
                await escrow.confirm(Signature.default(), timeout=0.2)

    asyncio.run(run())


def test_transport_errors_are_retried_then_reported():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there

    async def run():
        async with EscrowClient(f"http://127.0.0.1:{port}", transport_retries=2, backoff=0.01) as escrow:
            with pytest.raises(RpcUnavailable):
                await escrow.get_config()

    asyncio.run(run())


def test_http_status_errors_are_not_retried():
    hits = []

    async def broken(request):
        hits.append(1)
        return PlainTextResponse("boom", status_code=500)

    app = Starlette(routes=[Route("/", broken, methods=["POST"])])
    with ServerThread((app, 0)) as server:

        async def run():
            async with EscrowClient(server.url(), transport_retries=3, backoff=0.01) as escrow:
                with pytest.raises(RpcError):
                    await escrow.get_config()

        asyncio.run(run())
    assert len(hits) == 1


def test_a_closed_client_cannot_be_reopened():
    async def run():
        escrow = EscrowClient("http://127.0.0.1:1")
        async with escrow:
            pass
        with pytest.raises(RuntimeError, match="Cannot reopen"):
            async with escrow:
                pass

    asyncio.run(run())
