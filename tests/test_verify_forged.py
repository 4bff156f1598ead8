"""Receipts that cannot lie: for each rule, the forged receipt beside the genuine one.

A job id may be reused once its Job closed, so the lock and the close of one lifecycle must
be paired by construction (the nonce), across transactions and inside one; the trust anchor
is the auditor's program and mint, never the receipt's; payouts are read per instruction;
an RPC that answers garbage gets a readable failure; and commitment means something.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from decentral_chain import pda
from decentral_chain.accounts import Credits, Job
from decentral_chain.client import EscrowClient
from decentral_chain.errors import DecentralError
from decentral_chain.instructions import build_initialize, build_lock_job, build_refund_job, build_settle_job
from decentral_chain.localnet.chain import LocalChain
from decentral_chain.localnet.genesis import USDC, Genesis, build_genesis
from decentral_chain.localnet.server import ServerThread, create_app
from decentral_chain.localnet.svm import create_mint, create_token_account, deploy_upgradeable, mint_to
from decentral_chain.pda import new_job_id
from decentral_chain.receipts import Receipt
from decentral_chain.verify import Report, Status, verify_batch, verify_receipt
from tests.conftest import FAST_CHAIN

RESPONSE = b'{"choices":[{"message":{"content":"forty-two"}}]}'
DIGEST = hashlib.sha256(RESPONSE).digest()


@dataclass
class Net:
    url: str
    chain: LocalChain
    g: Genesis
    program: Pubkey

    def send(self, ixs: list, *signers: Keypair) -> str:
        """Send, signed by ``signers`` and by the worker each settle_job names (its consent)."""
        cosigners = {ix.accounts[9].pubkey for ix in ixs if len(ix.accounts) == 10}
        workers = [w.keypair for w in self.g.workers if w.pubkey in cosigners]

        async def go() -> str:
            async with EscrowClient(self.url, program_id=self.program) as escrow:
                return str(await escrow.send(ixs, signers[0], [*signers[1:], *workers]))

        return asyncio.run(go())

    def lock_ix(self, job_id: bytes, amount: int, client: int = 0, worker: int = 0):
        return build_lock_job(
            gateway=self.g.gateway.pubkey(),
            client=self.g.clients[client].pubkey,
            job_id=job_id,
            amount=amount,
            worker=self.g.workers[worker].pubkey,
            program_id=self.program,
        )

    def nonce(self, job_id: bytes, client: int = 0) -> int:
        """The open Job's lifecycle nonce, or the one its client's next lock will get."""
        job = self.chain.get_account(pda.job_address(job_id, self.program))
        if job is not None:
            return Job.from_bytes(bytes(job.data)).nonce
        credits = self.chain.get_account(pda.credits_address(self.g.clients[client].pubkey, self.program))
        return Credits.from_bytes(bytes(credits.data)).locks + 1

    def settle_ix(
        self,
        job_id: bytes,
        cost: int,
        client: int = 0,
        worker: int = 0,
        treasury: Pubkey | None = None,
        nonce: int | None = None,
    ):
        return build_settle_job(
            gateway=self.g.gateway.pubkey(),
            client=self.g.clients[client].pubkey,
            job_id=job_id,
            worker_token=self.g.workers[worker].token,
            treasury=treasury or self.g.treasury.token,
            payer=self.g.gateway.pubkey(),
            cost=cost,
            result_hash=DIGEST,
            prompt_tokens=5,
            completion_tokens=7,
            worker=self.g.workers[worker].pubkey,
            nonce=self.nonce(job_id, client) if nonce is None else nonce,
            program_id=self.program,
        )

    def refund_ix(self, job_id: bytes, client: int = 0):
        return build_refund_job(
            authority=self.g.gateway.pubkey(),
            client=self.g.clients[client].pubkey,
            job_id=job_id,
            payer=self.g.gateway.pubkey(),
            program_id=self.program,
        )

    def settled(self, cost: int, amount: int = USDC) -> tuple[bytes, str, str]:
        """A job locked and settled in two transactions: (job id, lock, settlement)."""
        job_id = new_job_id()
        lock = self.send([self.lock_ix(job_id, amount)], self.g.gateway)
        return job_id, lock, self.send([self.settle_ix(job_id, cost)], self.g.gateway)

    def receipt(
        self, job_id: bytes, lock_tx: str, settlement_tx: str, *, client: int = 0, worker: int = 0, **extra: Any
    ) -> Receipt:
        return Receipt(
            job_id=uuid.UUID(bytes=job_id),
            lock_tx=lock_tx,
            settlement_tx=settlement_tx,
            worker=str(self.g.workers[worker].pubkey),
            client=str(self.g.clients[client].pubkey),
            **extra,
        )

    def verify(self, receipt: Receipt, url: str | None = None, **kw: Any) -> Report:
        kw.setdefault("program_id", self.program)
        kw.setdefault("mint", self.g.mint)
        return asyncio.run(verify_receipt(url or self.url, receipt, **kw))


@pytest.fixture
def net(program_elf: bytes):
    g = build_genesis(program_elf, clients=2)
    chain = LocalChain.from_genesis(g, **FAST_CHAIN)
    with ServerThread((create_app(chain), 0)) as server:
        n = Net(server.url(), chain, g, g.program_id)
        for client in g.clients:

            async def deposit(c=client) -> None:
                async with EscrowClient(n.url) as escrow:
                    await escrow.deposit(c.keypair, 50 * USDC)

            asyncio.run(deposit())
        yield n


def failed(report: Report) -> set[str]:
    return {c.name for c in report.checks if c.status == Status.FAIL}


def only_failure(report: Report, name: str) -> None:
    assert failed(report) == {name}, report.to_dict()
    assert not report.verified


# ------------------------------------------------------------------- one lifecycle


def test_a_lock_of_one_lifecycle_never_pairs_with_the_close_of_another(net):
    """Job id X: client B locks and is refunded; then client A locks X and is charged. The
    genuine receipts of both lifecycles verify; crossing them — "B paid", "A was refunded" —
    fails the lifecycle check alone, though every transaction is real and in order."""
    x = new_job_id()
    lock_b = net.send([net.lock_ix(x, 3 * USDC, client=1)], net.g.gateway)
    refund_b = net.send([net.refund_ix(x, client=1)], net.g.gateway)
    lock_a = net.send([net.lock_ix(x, 2 * USDC, client=0)], net.g.gateway)
    settle_a = net.send([net.settle_ix(x, USDC, client=0)], net.g.gateway)

    genuine_b = net.verify(net.receipt(x, lock_b, refund_b, client=1, outcome="refunded"))
    genuine_a = net.verify(net.receipt(x, lock_a, settle_a, client=0), response=RESPONSE)
    assert genuine_b.verified and genuine_a.verified, (genuine_b.to_dict(), genuine_a.to_dict())
    assert (genuine_b.facts["nonce"], genuine_a.facts["nonce"]) == (1, 1)  # each client's first lock

    b_paid = net.verify(net.receipt(x, lock_b, settle_a, client=1), response=RESPONSE)
    only_failure(b_paid, "lifecycle")
    assert "client" in b_paid.check("lifecycle").detail
    a_refunded = net.verify(net.receipt(x, lock_a, refund_b, client=0, outcome="refunded"))
    only_failure(a_refunded, "lifecycle")


def test_a_lifecycle_reused_inside_one_transaction(net):
    """lock, refund, lock of the same id in one transaction, then a settlement: each
    lifecycle's genuine receipt verifies, and a receipt claiming the settled lifecycle was
    refunded (the refund in the same transaction belongs to the first one) fails."""
    x = new_job_id()
    first = net.send([net.lock_ix(x, USDC)], net.g.gateway)  # nonce 1 of client A, closed below
    net.send([net.settle_ix(x, 1)], net.g.gateway)
    both = net.send([net.lock_ix(x, USDC), net.refund_ix(x), net.lock_ix(x, 2 * USDC)], net.g.gateway)
    settle = net.send([net.settle_ix(x, USDC)], net.g.gateway)

    settled = net.verify(net.receipt(x, both, settle, nonce=3), response=RESPONSE)
    assert settled.verified, settled.to_dict()
    assert (settled.facts["locked"], settled.facts["nonce"]) == (2 * USDC, 3)
    without_nonce = net.verify(net.receipt(x, both, settle))
    assert without_nonce.verified and without_nonce.facts["nonce"] == 3
    refunded = net.verify(net.receipt(x, both, both, outcome="refunded", nonce=2))
    assert refunded.verified and refunded.facts["locked"] == USDC, refunded.to_dict()

    forged = net.verify(net.receipt(x, both, both, outcome="refunded", nonce=3))
    only_failure(forged, "lifecycle")
    stale = net.verify(net.receipt(x, first, settle, nonce=3), response=RESPONSE)  # the first lock, the last close
    only_failure(stale, "lifecycle")


# --------------------------------------------------------------- per instruction


def test_one_transaction_settling_two_jobs_verifies_each(net):
    j1, j2 = new_job_id(), new_job_id()
    lock = net.send([net.lock_ix(j1, 2 * USDC), net.lock_ix(j2, 2 * USDC)], net.g.gateway)
    settle = net.send([net.settle_ix(j1, 400_000), net.settle_ix(j2, 1_200_000)], net.g.gateway)
    for job_id, cost in ((j1, 400_000), (j2, 1_200_000)):
        report = net.verify(net.receipt(job_id, lock, settle, cost=cost), response=RESPONSE)
        assert report.verified, report.to_dict()
        assert report.facts["worker_paid"] == cost - cost * 250 // 10_000


def test_lock_and_settle_in_one_transaction(net):
    x = new_job_id()
    both = net.send([net.lock_ix(x, USDC), net.settle_ix(x, 300_000)], net.g.gateway)
    report = net.verify(net.receipt(x, both, both, cost=300_000), response=RESPONSE)
    assert report.verified, report.to_dict()


@pytest.fixture
def lying(net):
    """An RPC in front of the localnet that rewrites getTransaction answers with ``mutate``."""
    holder: dict[str, Callable[[Any], Any]] = {"mutate": lambda result: result}

    async def rpc(request: Request) -> Response:
        body = await request.json()
        async with httpx.AsyncClient(timeout=10) as upstream:
            answer = (await upstream.post(net.url, json=body)).json()
        for req, reply in zip(
            body if isinstance(body, list) else [body], answer if isinstance(answer, list) else [answer], strict=True
        ):
            if req.get("method") == "getTransaction" and reply.get("result") is not None:
                reply["result"] = holder["mutate"](reply["result"])
        return JSONResponse(answer)

    with ServerThread((Starlette(routes=[Route("/", rpc, methods=["POST"])]), 0)) as server:
        yield server.url(), holder


def test_transfers_moved_to_another_settlement_fail_payouts(net, lying):
    """A lying RPC swaps the token CPIs of two settlements in one transaction: the totals are
    unchanged (so whole-transaction deltas would still add up), each receipt fails payouts."""
    url, holder = lying
    j1, j2 = new_job_id(), new_job_id()
    lock = net.send([net.lock_ix(j1, 2 * USDC), net.lock_ix(j2, 2 * USDC)], net.g.gateway)
    settle = net.send([net.settle_ix(j1, 400_000), net.settle_ix(j2, 1_200_000)], net.g.gateway)

    def swap(result: dict) -> dict:
        groups = result["meta"]["innerInstructions"]
        if len(groups) == 2:
            groups[0]["index"], groups[1]["index"] = groups[1]["index"], groups[0]["index"]
        return result

    holder["mutate"] = swap
    for job_id, cost in ((j1, 400_000), (j2, 1_200_000)):
        report = net.verify(net.receipt(job_id, lock, settle, cost=cost), url=url)
        only_failure(report, "payouts")


def test_an_altered_transfer_amount_fails_payouts(net, lying):
    import based58

    url, holder = lying
    x, lock, settle = net.settled(500_000)

    def inflate(result: dict) -> dict:
        for group in result["meta"]["innerInstructions"]:
            for ix in group["instructions"]:
                data = based58.b58decode(ix["data"].encode())
                if data[0] == 3:  # SPL Token Transfer: pay the worker 1 more
                    ix["data"] = based58.b58encode(
                        data[:1] + (int.from_bytes(data[1:], "little") + 1).to_bytes(8, "little")
                    ).decode()
                    return result
        return result

    assert net.verify(net.receipt(x, lock, settle), url=url).verified
    holder["mutate"] = inflate
    only_failure(net.verify(net.receipt(x, lock, settle), url=url), "payouts")


# ------------------------------------------------------------------ trust anchor


@pytest.fixture
def copy_escrow(net, program_elf):
    """The same escrow deployed at another address with a worthless mint, and a settled job
    on it: every transaction real, every event from that program's own frames."""
    g, chain = net.g, net.chain
    program = Keypair().pubkey()
    worthless_authority = Keypair()
    with chain.lock:
        chain.svm.airdrop(worthless_authority.pubkey(), 10**10)
        deploy_upgradeable(chain.svm, program, program_elf, g.admin.pubkey())
        mint = create_mint(chain.svm, worthless_authority, worthless_authority.pubkey())
        accounts = {
            w.pubkey: create_token_account(chain.svm, worthless_authority, mint, w.pubkey)
            for w in (*g.clients, *g.workers, g.treasury)
        }
        mint_to(chain.svm, mint, accounts[g.clients[0].pubkey], 1_000 * USDC, worthless_authority)
        chain.known.update((program, pda.program_data_address(program), mint, *accounts.values()))
    copy_net = Net(net.url, chain, g, program)
    copy_net.send(
        [
            build_initialize(
                admin=g.admin.pubkey(),
                mint=mint,
                gateway=g.gateway.pubkey(),
                treasury=accounts[g.treasury.pubkey],
                fee_bps=0,
                refund_timeout=600,
                program_id=program,
            )
        ],
        g.admin,
    )

    async def deposit() -> None:
        async with EscrowClient(net.url, program_id=program) as escrow:
            await escrow.deposit(g.clients[0].keypair, 100 * USDC, source=accounts[g.clients[0].pubkey])

    asyncio.run(deposit())
    x = new_job_id()
    lock = copy_net.send([copy_net.lock_ix(x, 50 * USDC)], g.gateway)
    settle = copy_net.send(
        [
            build_settle_job(
                gateway=g.gateway.pubkey(),
                client=g.clients[0].pubkey,
                job_id=x,
                worker_token=accounts[g.workers[0].pubkey],
                treasury=accounts[g.treasury.pubkey],
                payer=g.gateway.pubkey(),
                cost=50 * USDC,
                result_hash=DIGEST,
                prompt_tokens=1,
                completion_tokens=1,
                worker=g.workers[0].pubkey,
                nonce=copy_net.nonce(x),
                program_id=program,
            )
        ],
        g.gateway,
    )
    return program, mint, copy_net.receipt(x, lock, settle, cost=50 * USDC)


def test_a_copy_of_the_escrow_with_a_worthless_mint_never_verifies_as_payment(net, copy_escrow):
    program, mint, receipt = copy_escrow
    # the copy's own view: genuine under its own anchor (the auditor chose to trust it)
    assert net.verify(receipt, program_id=program, mint=mint, response=RESPONSE).verified
    # the receipt names the copy: the auditor's program is another
    named = net.verify(receipt.model_copy(update={"program_id": str(program)}))
    assert "program" in failed(named) and "the auditor trusts" in named.check("program").detail
    # names nothing: no instruction of the auditor's program is there
    unnamed = net.verify(receipt)
    assert {"lock", "settlement"} <= failed(unnamed) and not unnamed.verified
    # the auditor pins the real mint but trusts the copy's id by mistake: its mint gives it away
    pinned = net.verify(receipt, program_id=program, mint=net.g.mint)
    assert failed(pinned) == {"program"} and "not the trusted mint" in pinned.check("program").detail
    # in a batch too
    reports = asyncio.run(
        verify_batch(
            net.url, [receipt.model_copy(update={"program_id": str(program)})], program_id=net.program, mint=net.g.mint
        )
    )
    assert "program" in failed(reports[0])


# ------------------------------------------------------------- bad RPC answers


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


GARBAGE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.text(max_size=12),
    st.just("not-base58-0OIl"),
    st.just(base64.b64encode(b"\x00" * 5).decode()),
    st.lists(st.integers(-3, 300), max_size=3),
    st.dictionaries(st.text(max_size=4), st.none(), max_size=2),
)


@st.composite
def mutations(draw, answer: dict) -> Callable[[Any], Any]:
    """Replace or delete one node of the getTransaction answer, or replace the raw bytes."""
    paths = [p for p in _paths(answer) if p]
    kind = draw(st.sampled_from(["replace", "delete", "raw"]))
    path = draw(st.sampled_from(paths))
    value = draw(GARBAGE)
    raw = draw(st.binary(max_size=300))

    def mutate(result: Any) -> Any:
        result = copy.deepcopy(result)
        if kind == "raw":
            result["transaction"][0] = base64.b64encode(raw).decode()
            return result
        node = result
        for key in path[:-1]:
            node = node[key]
        if kind == "delete" and isinstance(node, dict):
            del node[path[-1]]
        else:
            node[path[-1]] = value
        return result

    return mutate


def test_mutated_rpc_answers_are_errors_never_crashes(net, lying):
    url, holder = lying
    x, lock, settle = net.settled(300_000)
    receipt = net.receipt(x, lock, settle)
    answer = httpx.post(
        net.url,
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "getTransaction",
            "params": [settle, {"encoding": "base64", "commitment": "confirmed", "maxSupportedTransactionVersion": 0}],
        },
    ).json()
    assert net.verify(receipt, url=url, wait=0).verified  # the proxy passes genuine answers through

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(mutations(answer["result"]))
    def check(mutate):
        holder["mutate"] = mutate
        try:
            report = net.verify(receipt, url=url, wait=0)
        except DecentralError as exc:  # an RPC error, or a receipt-level decode error: one line
            assert "\n" not in str(exc)
            return
        failing = [c for c in report.checks if c.status == Status.FAIL]
        assert all(c.detail and "\n" not in c.detail for c in failing)

    check()


def test_named_garbage_answers_fail_the_transactions_check(net, lying):
    url, holder = lying
    x, lock, settle = net.settled(300_000)
    receipt = net.receipt(x, lock, settle)

    def no_signatures(result):
        raw = base64.b64decode(result["transaction"][0])
        count = raw[0]
        result["transaction"][0] = base64.b64encode(b"\x00" + raw[1 + 64 * count :]).decode()
        return result

    def bad_inner_data(result):
        result["meta"]["innerInstructions"][0]["instructions"][0]["data"] = "0OIl+/"
        return result

    def wrong_types(result):
        result["slot"] = "twelve"
        return result

    for mutate, words in (
        (no_signatures, "signatures for"),
        (bad_inner_data, "not base-58"),
        (wrong_types, "slot"),
        (lambda r: [], "malformed"),
    ):
        holder["mutate"] = mutate
        report = net.verify(receipt, url=url, wait=0)
        assert failed(report) == {"transactions"}, report.to_dict()  # one broken thing, one failed check
        assert words in report.check("transactions").detail, report.to_dict()


def test_the_cli_prints_one_line_for_a_garbage_rpc(net, lying, tmp_path):
    import subprocess
    import sys

    url, holder = lying
    x, lock, settle = net.settled(300_000)
    (tmp_path / "r.json").write_text(net.receipt(x, lock, settle).model_dump_json())
    holder["mutate"] = lambda result: {"transaction": 7}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "decentral_chain.cli",
            "verify",
            "--receipt",
            str(tmp_path / "r.json"),
            "--rpc-url",
            url,
            "--program-id",
            str(net.program),
            "--json",
            "--wait",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    report = json.loads(proc.stdout)
    assert report["verified"] is False and "malformed getTransaction answer" in json.dumps(report["checks"])


# --------------------------------------------------------------------- commitment


@pytest.fixture
def slow_finality(program_elf):
    g = build_genesis(program_elf)
    chain = LocalChain.from_genesis(g, slot_ms=100, finality_slots=30)
    with ServerThread((create_app(chain), 0)) as server:
        yield Net(server.url(), chain, g, g.program_id)


def test_finalized_means_finality_slots_later(slow_finality):
    n = slow_finality

    async def deposit() -> None:
        async with EscrowClient(n.url) as escrow:
            await escrow.deposit(n.g.clients[0].keypair, 10 * USDC)

    asyncio.run(deposit())
    x = new_job_id()
    lock = n.send([n.lock_ix(x, USDC)], n.g.gateway)
    settle = n.send([n.settle_ix(x, 1000)], n.g.gateway)  # confirmed: its slot closed
    receipt = n.receipt(x, lock, settle)
    statuses = httpx.post(
        n.url, json={"jsonrpc": "2.0", "id": 1, "method": "getSignatureStatuses", "params": [[settle]]}
    ).json()["result"]["value"][0]
    assert statuses["confirmationStatus"] == "confirmed" and statuses["confirmations"] >= 1
    slot = statuses["slot"]

    def block(commitment: str) -> dict:
        return httpx.post(
            n.url,
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "getBlock",
                "params": [slot, {"commitment": commitment, "transactionDetails": "signatures"}],
            },
        ).json()

    assert settle in block("confirmed")["result"]["signatures"]
    assert block("finalized")["error"]["code"] == -32004  # not rooted yet
    early = n.verify(receipt, commitment="finalized", wait=0)
    assert failed(early) == {"transactions"}
    assert "not found at finalized, confirmed only" in early.check("transactions").detail
    assert n.verify(receipt, commitment="confirmed", wait=0).verified
    waited = n.verify(receipt, commitment="finalized", wait=15)  # thirty 100 ms slots
    assert waited.verified, waited.to_dict()
    assert settle in block("finalized")["result"]["signatures"]
    processed = httpx.post(
        n.url,
        json={"jsonrpc": "2.0", "id": 1, "method": "getTransaction", "params": [settle, {"commitment": "processed"}]},
    ).json()
    assert processed["error"]["code"] == -32602 and "below `confirmed`" in processed["error"]["message"]


# ---------------------------------------------------------------------- consent


def test_consent_is_read_from_the_signed_bytes(net, lying):
    """Every genuine settlement carries the worker's signature (the program requires it). An
    RPC that rewrites the settlement to name the gateway — a signer — as the co-signing
    worker changes the signed bytes: the signatures no longer verify and consent fails."""
    from solders.instruction import CompiledInstruction
    from solders.message import Message
    from solders.transaction import VersionedTransaction

    url, holder = lying
    x, lock, settle = net.settled(300_000)
    genuine = net.verify(net.receipt(x, lock, settle), url=url)
    assert genuine.check("consent").status == Status.PASS and genuine.facts["worker_consent"] == str(
        net.g.workers[0].pubkey
    )

    def gateway_as_worker(result: dict) -> dict:
        tx = VersionedTransaction.from_bytes(base64.b64decode(result["transaction"][0]))
        msg = tx.message
        ixs = []
        for ix in msg.instructions:
            accounts = list(bytes(ix.accounts))
            if len(accounts) == 10:
                accounts[9] = 0  # the fee payer: the gateway
            ixs.append(CompiledInstruction(ix.program_id_index, bytes(ix.data), bytes(accounts)))
        forged = Message.new_with_compiled_instructions(
            msg.header.num_required_signatures,
            msg.header.num_readonly_signed_accounts,
            msg.header.num_readonly_unsigned_accounts,
            list(msg.account_keys),
            msg.recent_blockhash,
            ixs,
        )
        result["transaction"][0] = base64.b64encode(
            bytes(VersionedTransaction.populate(forged, tx.signatures))
        ).decode()
        return result

    holder["mutate"] = gateway_as_worker
    forged = net.verify(net.receipt(x, lock, settle), url=url)
    assert {"signatures", "consent"} <= failed(forged) and not forged.verified
    assert "not the job's worker" in forged.check("consent").detail
