"""Shared fixtures: the built program and a fresh chain (LiteSVM + real SPL Token) per test."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from decentral_chain import pda
from decentral_chain.accounts import Job
from decentral_chain.errors import EscrowError, ProgramError
from decentral_chain.instructions import (
    build_accept_admin,
    build_deposit,
    build_initialize,
    build_lock_job,
    build_propose_admin,
    build_refund_job,
    build_set_treasury,
    build_settle_job,
    build_update_config,
    build_withdraw,
)
from decentral_chain.localnet.genesis import USDC, Genesis, Wallet, build_genesis
from decentral_chain.localnet.svm import send, token_balance
from decentral_chain.sbpf.build import ensure_built


@pytest.fixture(scope="session")
def program_elf() -> bytes:
    return ensure_built()


@dataclass
class Chain:
    """A Genesis plus one-line helpers for the escrow's instructions."""

    g: Genesis

    def __getattr__(self, name: str):  # delegate svm, gateway, workers, ... to Genesis
        return getattr(self.g, name)

    @property
    def client(self) -> Wallet:
        return self.g.clients[0]

    @property
    def worker(self) -> Wallet:
        return self.g.workers[0]

    def send(self, ixs: Instruction | Sequence[Instruction], payer: Keypair, *signers: Keypair):
        self.g.svm.expire_blockhash()  # a retried identical transaction is a new one
        return send(self.g.svm, [ixs] if isinstance(ixs, Instruction) else list(ixs), payer, signers)

    def balance(self, account: Pubkey) -> int:
        return token_balance(self.g.svm, account)

    def deposit(self, client: Wallet | None = None, amount: int = 100 * USDC):
        client = client or self.client
        return self.send(
            build_deposit(owner=client.pubkey, source=client.token, amount=amount, program_id=self.g.program_id),
            client.keypair,
        )

    def withdraw(self, client: Wallet | None = None, amount: int = USDC):
        client = client or self.client
        return self.send(
            build_withdraw(owner=client.pubkey, destination=client.token, amount=amount, program_id=self.g.program_id),
            client.keypair,
        )

    def lock_ix(
        self, job_id: bytes, amount: int = 10 * USDC, client: Wallet | None = None, worker: Pubkey | None = None
    ) -> Instruction:
        return build_lock_job(
            gateway=self.g.gateway.pubkey(),
            client=(client or self.client).pubkey,
            job_id=job_id,
            amount=amount,
            worker=worker or self.worker.pubkey,
            program_id=self.g.program_id,
        )

    def lock(
        self,
        amount: int = 10 * USDC,
        client: Wallet | None = None,
        worker: Pubkey | None = None,
        job_id: bytes | None = None,
    ) -> bytes:
        job_id = job_id or uuid.uuid4().bytes
        self.send(self.lock_ix(job_id, amount, client, worker), self.g.gateway)
        return job_id

    def settle_ix(
        self,
        job_id: bytes,
        cost: int,
        *,
        client: Wallet | None = None,
        worker_token: Pubkey | None = None,
        treasury: Pubkey | None = None,
        payer: Pubkey | None = None,
        gateway: Pubkey | None = None,
        result: bytes = b"response",
        worker: Pubkey | None = None,
        nonce: int | None = None,
    ) -> Instruction:
        """settle_job co-signed (by default) by the job's own worker, for its lifecycle."""
        job = self.job(job_id)
        return build_settle_job(
            gateway=gateway or self.g.gateway.pubkey(),
            client=(client or self.client).pubkey,
            job_id=job_id,
            worker_token=worker_token or self.worker.token,
            treasury=treasury or self.g.treasury.token,
            payer=payer or self.g.gateway.pubkey(),
            cost=cost,
            result_hash=hashlib.sha256(result).digest(),
            prompt_tokens=11,
            completion_tokens=22,
            worker=worker or (job.worker if job else self.worker.pubkey),
            nonce=nonce if nonce is not None else (job.nonce if job else 0),
            program_id=self.g.program_id,
        )

    def worker_keypair(self, wallet: Pubkey) -> Keypair:
        return next(w.keypair for w in self.g.workers if w.pubkey == wallet)

    def settle(self, job_id: bytes, cost: int, *, signer: Keypair | None = None, **kw):
        """Send settle_job signed by the gateway and the co-signing worker (``signer``, by
        default the keypair of the worker the instruction names)."""
        ix = self.settle_ix(job_id, cost, **kw)
        worker = ix.accounts[9].pubkey
        return self.send(ix, self.g.gateway, signer or self.worker_keypair(worker))

    def refund_ix(
        self, job_id: bytes, authority: Pubkey | None = None, client: Wallet | None = None, payer: Pubkey | None = None
    ) -> Instruction:
        return build_refund_job(
            authority=authority or self.g.gateway.pubkey(),
            client=(client or self.client).pubkey,
            job_id=job_id,
            payer=payer or self.g.gateway.pubkey(),
            program_id=self.g.program_id,
        )

    def refund(self, job_id: bytes, signer: Keypair | None = None, **kw):
        signer = signer or self.g.gateway
        return self.send(self.refund_ix(job_id, authority=signer.pubkey(), **kw), signer)

    def job(self, job_id: bytes) -> Job | None:
        acc = self.g.svm.get_account(pda.job_address(job_id, self.g.program_id))
        return Job.from_bytes(bytes(acc.data)) if acc is not None and len(acc.data) else None

    def free(self, client: Wallet | None = None) -> int:
        credits = self.g.credits((client or self.client).pubkey)
        return credits.free if credits else 0

    def locked(self, client: Wallet | None = None) -> int:
        credits = self.g.credits((client or self.client).pubkey)
        return credits.locked if credits else 0

    def warp(self, seconds: int) -> None:
        clock = self.g.svm.get_clock()
        clock.unix_timestamp += seconds
        clock.slot += 1
        self.g.svm.set_clock(clock)


def job_nonce(svm, job_id: bytes, program_id: Pubkey | None = None) -> int:
    """The open Job's lifecycle nonce, read from the SVM (what a settlement must name)."""
    from decentral_chain.abi import PROGRAM_ID

    return Job.from_bytes(bytes(svm.get_account(pda.job_address(job_id, program_id or PROGRAM_ID)).data)).nonce


@pytest.fixture
def chain(program_elf: bytes) -> Chain:
    return Chain(build_genesis(program_elf, clients=2))


#: Served test chains: 100 ms slots, finalized two slots after processed (the localnet's
#: defaults are 400 ms and 32 slots); tests of commitment itself set their own.
FAST_CHAIN = {"slot_ms": 100, "finality_slots": 2}


@pytest.fixture
def rpc_localnet(program_elf: bytes):
    """A fresh chain served over JSON-RPC on loopback: (url, LocalChain, Genesis)."""
    from decentral_chain.localnet.chain import LocalChain
    from decentral_chain.localnet.server import ServerThread, create_app

    g = build_genesis(program_elf)
    chain = LocalChain.from_genesis(g, **FAST_CHAIN)
    with ServerThread((create_app(chain), 0)) as server:
        yield server.url(), chain, g


@pytest.fixture
def raw_genesis(program_elf: bytes) -> Genesis:
    """Program deployed, mint and wallets ready, Config not initialized yet."""
    return build_genesis(program_elf, initialize=False)


ANY_ACCOUNT = object()


@contextmanager
def raises_escrow(error: EscrowError, account: Any = ANY_ACCOUNT) -> Iterator[None]:
    """Assert that the block fails with exactly this custom error of the escrow, and that the
    program logged it as Anchor does (the line Anchor's clients make an AnchorError of):
    ``AnchorError occurred. ...`` or, for a failed account constraint, ``AnchorError caused
    by account: <name>. ...``. ``account``: the name the line must give (None: the
    `occurred` form); by default either form, with any account of the IDL."""
    from decentral_chain.codegen import ACCOUNT_NAMES, anchor_error_line

    with pytest.raises(ProgramError) as info:
        yield
    assert info.value.error == error, f"expected {error.name}, got {info.value}\n" + "\n".join(info.value.logs)
    lines = [line for line in info.value.logs or [] if line.startswith("Program log: AnchorError")]
    assert len(lines) == 1, info.value.logs
    names = (None, *ACCOUNT_NAMES) if account is ANY_ACCOUNT else (account,)
    assert lines[0] in {f"Program log: {anchor_error_line(error.name, a)}" for a in names}, lines[0]


def valid_instructions(chain: Chain) -> dict[str, tuple[Instruction, list[Keypair]]]:
    """One instruction per name that would pass the account-flag checks."""
    chain.deposit(amount=10 * USDC)
    job = chain.lock(amount=2 * USDC)
    other = chain.lock(amount=2 * USDC)
    c, pid, admin = chain.client, chain.program_id, chain.admin
    return {
        "initialize": (
            build_initialize(
                admin=admin.pubkey(),
                mint=chain.mint,
                gateway=chain.gateway.pubkey(),
                treasury=chain.treasury.token,
                fee_bps=1,
                refund_timeout=60,
                program_id=pid,
            ),
            [admin],
        ),
        "deposit": (build_deposit(owner=c.pubkey, source=c.token, amount=1, program_id=pid), [c.keypair]),
        "withdraw": (build_withdraw(owner=c.pubkey, destination=c.token, amount=1, program_id=pid), [c.keypair]),
        "lock_job": (chain.lock_ix(uuid.uuid4().bytes, 1), [chain.gateway]),
        "settle_job": (chain.settle_ix(job, 1), [chain.gateway, chain.worker.keypair]),
        "refund_job": (chain.refund_ix(other), [chain.gateway]),
        "update_config": (build_update_config(admin=admin.pubkey(), fee_bps=1, program_id=pid), [admin]),
        "set_treasury": (
            build_set_treasury(admin=admin.pubkey(), treasury=chain.treasury.token, program_id=pid),
            [admin],
        ),
        "propose_admin": (build_propose_admin(admin=admin.pubkey(), new_admin=admin.pubkey(), program_id=pid), [admin]),
        "accept_admin": (build_accept_admin(new_admin=admin.pubkey(), program_id=pid), [admin]),
    }


def pytest_sessionfinish(session, exitstatus):
    """llama-cpp-python opens two /dev/null files at import and never closes them: close them
    here instead of seeing a ResourceWarning when the interpreter exits."""
    import sys

    utils = sys.modules.get("llama_cpp._utils")
    for name in ("outnull_file", "errnull_file"):
        f = getattr(utils, name, None)
        if f is not None:
            f.close()


JS = Path(__file__).resolve().parent / "js"


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """tests/js's pinned npm packages (web3.js, @coral-xyz/anchor, openai), installed with
    `npm ci` from its lock file when missing."""
    import shutil
    import subprocess

    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are required for the JavaScript client tests (see README)")
    if not all((JS / "node_modules" / name).exists() for name in ("@solana/web3.js", "@coral-xyz/anchor", "openai")):
        subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=JS, check=True, timeout=300)
    return JS / "node_modules"
