"""Receipt verification on the localnet: genuine receipts pass; a receipt that breaks one
check fails that check only (the others pass or are skipped with a reason)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import uuid

import pytest
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from decentral_chain.abi import EVENTS
from decentral_chain.client import EscrowClient
from decentral_chain.errors import DecodeError, ProgramError
from decentral_chain.instructions import build_lock_job, build_settle_job
from decentral_chain.localnet import spl
from decentral_chain.localnet.chain import LocalChain
from decentral_chain.localnet.genesis import USDC
from decentral_chain.pda import new_job_id
from decentral_chain.receipts import Receipt, load_jsonl
from decentral_chain.sbpf.build import compile_object
from decentral_chain.sbpf.linker import link
from decentral_chain.verify import Status, verify_batch, verify_receipt
from tests.conftest import job_nonce

RESPONSE = b'{"choices":[{"message":{"content":"42"}}]}'
CHECK_NAMES = [
    "transactions",
    "signatures",
    "program",
    "lock",
    "settlement",
    "lifecycle",
    "events",
    "consent",
    "payouts",
    "cost",
    "result_hash",
]


@dataclasses.dataclass
class Net:
    url: str
    chain: LocalChain
    g: object

    def run(self, coro):
        return asyncio.run(coro)

    async def job(self, *, cost: int = USDC, amount: int = 2 * USDC, refund: bool = False, worker=None) -> Receipt:
        g = self.g
        worker = worker or g.workers[0]
        async with EscrowClient(self.url) as escrow:
            job_id = new_job_id()
            lock = await escrow.lock_job(g.gateway, g.clients[0].pubkey, job_id, amount, worker.pubkey)
            if refund:
                end = await escrow.refund_job(g.gateway, job_id)
            else:
                end = await escrow.settle_job(
                    g.gateway,
                    job_id,
                    worker=worker.keypair,
                    cost=cost,
                    result_hash=hashlib.sha256(RESPONSE).digest(),
                    prompt_tokens=10,
                    completion_tokens=20,
                    worker_token=worker.token,
                )
        return Receipt(
            job_id=uuid.UUID(bytes=job_id),
            lock_tx=str(lock),
            settlement_tx=str(end),
            worker=str(worker.pubkey),
            outcome="refunded" if refund else "settled",
            client=str(g.clients[0].pubkey),
        )

    def verify(self, receipt: Receipt, **kw):
        return self.run(verify_receipt(self.url, receipt, **kw))


@pytest.fixture
def net(rpc_localnet):
    n = Net(*rpc_localnet)
    n.run(_deposit(n))
    return n


async def _deposit(n: Net) -> None:
    async with EscrowClient(n.url) as escrow:
        await escrow.deposit(n.g.clients[0].keypair, 100 * USDC)


def statuses(report) -> dict[str, Status]:
    assert [c.name for c in report.checks] == CHECK_NAMES
    return {c.name: c.status for c in report.checks}


def only_failure(report, name: str) -> None:
    got = statuses(report)
    failed = [k for k, v in got.items() if v == Status.FAIL]
    assert failed == [name], report.to_dict()
    assert not report.verified


# ------------------------------------------------------------------------- genuine


def test_a_genuine_settlement_receipt_passes_every_check(net):
    receipt = net.run(net.job(cost=1_234_567))
    report = net.verify(receipt, expected_cost=1_234_567, response=RESPONSE)
    assert set(statuses(report).values()) == {Status.PASS}, report.to_dict()
    assert report.verified
    assert report.facts["worker_paid"] == 1_234_567 - 30_864 and report.facts["fee"] == 30_864


def test_a_genuine_refund_receipt_passes(net):
    receipt = net.run(net.job(refund=True))
    report = net.verify(receipt)
    got = statuses(report)
    assert report.verified
    assert [got[k] for k in CHECK_NAMES[:5]] == [Status.PASS] * 5
    assert got["payouts"] == got["cost"] == got["result_hash"] == Status.SKIP


def test_without_response_or_expected_cost_those_checks_are_skipped_or_compared_to_the_receipt(net):
    receipt = net.run(net.job(cost=500))
    report = net.verify(receipt)
    assert report.verified and report.check("result_hash").status == Status.SKIP
    with_hash = receipt.model_copy(update={"result_hash": hashlib.sha256(RESPONSE).hexdigest(), "cost": 500})
    assert set(statuses(net.verify(with_hash)).values()) == {Status.PASS}


# ----------------------------------------------------------------- one broken check


def test_wrong_worker(net):
    receipt = net.run(net.job())
    only_failure(net.verify(receipt.model_copy(update={"worker": str(net.g.workers[1].pubkey)})), "lock")


def test_another_jobs_settlement(net):
    mine = net.run(net.job(cost=USDC, amount=2 * USDC))
    other = net.run(net.job(cost=USDC, amount=2 * USDC))
    only_failure(net.verify(mine.model_copy(update={"settlement_tx": other.settlement_tx})), "settlement")


def test_a_failed_lock_transaction(net):
    g = net.g
    job_id = new_job_id()

    async def flow():
        async with EscrowClient(net.url) as escrow:
            failing = await escrow.prepare_lock_job(g.gateway, g.clients[0].pubkey, job_id, 10**15, g.workers[0].pubkey)
            await escrow.submit(failing, skip_preflight=True)  # lands and fails: InsufficientCredits
            with pytest.raises(ProgramError):
                await escrow.confirm(failing.signature, timeout=5)
            await escrow.lock_job(g.gateway, g.clients[0].pubkey, job_id, USDC, g.workers[0].pubkey)
            end = await escrow.settle_job(
                g.gateway,
                job_id,
                worker=g.workers[0].keypair,
                cost=USDC // 2,
                result_hash=bytes(32),
                prompt_tokens=1,
                completion_tokens=1,
            )
            return failing.signature, end

    failed_lock, end = net.run(flow())
    receipt = Receipt(
        job_id=uuid.UUID(bytes=job_id),
        lock_tx=str(failed_lock),
        settlement_tx=str(end),
        worker=str(g.workers[0].pubkey),
    )
    report = net.verify(receipt)
    only_failure(report, "transactions")
    assert "lock transaction failed" in report.check("transactions").detail


def test_a_refund_presented_as_a_settlement(net):
    receipt = net.run(net.job(refund=True))
    only_failure(net.verify(receipt.model_copy(update={"outcome": "settled"})), "settlement")


def _echo_program(net: Net, tmp_path) -> Pubkey:
    from pathlib import Path

    source = Path(__file__).parent / "programs" / "echo.c"
    elf = link(compile_object(source, tmp_path)).elf
    echo = Keypair().pubkey()
    net.chain.svm.add_program(echo, elf)
    return echo


def _event(name: str, **values) -> bytes:
    struct = next(s for s in EVENTS if s.name == name)
    return struct.discriminator + b"".join(f.type.encode(values[f.name]) for f in struct.fields)


def _send(net: Net, ixs, *signers: Keypair) -> Signature:
    async def go():
        async with EscrowClient(net.url) as escrow:
            return await escrow.send(ixs, signers[0], signers[1:])

    return net.run(go())


def test_another_program_logging_identical_event_bytes_proves_nothing(net, tmp_path):
    g = net.g
    echo = _echo_program(net, tmp_path)
    receipt = net.run(net.job(refund=True))  # nothing was paid for this job
    job = receipt.job_id_bytes
    fake = _event(
        "JobSettled",
        job_id=job,
        client=g.clients[0].pubkey,
        worker=g.workers[0].pubkey,
        result_hash=hashlib.sha256(RESPONSE).digest(),
        cost=2 * USDC,
        fee=50_000,
        refunded=0,
        prompt_tokens=1,
        completion_tokens=1,
        nonce=1,
    )
    forged = _send(net, [Instruction(echo, fake, [])], g.gateway)
    logs = net.chain.history[forged].logs
    assert any(line.startswith("Program data: ") for line in logs)  # the bytes are really there
    report = net.verify(
        receipt.model_copy(update={"settlement_tx": str(forged), "outcome": "settled"}), response=RESPONSE
    )
    got = statuses(report)
    assert got["settlement"] == Status.FAIL and got["payouts"] == Status.SKIP
    assert "JobSettled" not in report.check("events").detail  # the echoed event was not taken


def test_an_echoed_event_beside_a_real_settlement_is_ignored(net, tmp_path):
    g = net.g
    echo = _echo_program(net, tmp_path)
    worker = g.workers[0]
    job_id = new_job_id()
    lock = _send(
        net,
        [
            build_lock_job(
                gateway=g.gateway.pubkey(),
                client=g.clients[0].pubkey,
                job_id=job_id,
                amount=2 * USDC,
                worker=worker.pubkey,
            )
        ],
        g.gateway,
    )
    digest = hashlib.sha256(RESPONSE).digest()
    settle_ix = build_settle_job(
        gateway=g.gateway.pubkey(),
        client=g.clients[0].pubkey,
        job_id=job_id,
        worker_token=worker.token,
        treasury=g.treasury.token,
        payer=g.gateway.pubkey(),
        cost=USDC,
        result_hash=digest,
        prompt_tokens=1,
        completion_tokens=1,
        worker=worker.pubkey,
        nonce=job_nonce(net.chain.svm, job_id),
    )
    fake = _event(
        "JobSettled",
        job_id=job_id,
        client=g.clients[0].pubkey,
        worker=worker.pubkey,
        result_hash=digest,
        cost=2 * USDC,
        fee=0,
        refunded=0,
        prompt_tokens=1,
        completion_tokens=1,
        nonce=2,
    )
    end = _send(net, [settle_ix, Instruction(echo, fake, [])], g.gateway, worker.keypair)
    receipt = Receipt(
        job_id=uuid.UUID(bytes=job_id), lock_tx=str(lock), settlement_tx=str(end), worker=str(worker.pubkey)
    )
    report = net.verify(receipt, expected_cost=USDC)
    assert report.verified, report.to_dict()
    assert report.facts["fee"] == 25_000 and report.facts["cost"] == USDC  # the real event, not the echo


def test_a_worker_token_account_owned_by_someone_else(net):
    g = net.g
    worker = g.workers[0]
    job_id = new_job_id()
    lock = _send(
        net,
        [
            build_lock_job(
                gateway=g.gateway.pubkey(),
                client=g.clients[0].pubkey,
                job_id=job_id,
                amount=2 * USDC,
                worker=worker.pubkey,
            )
        ],
        g.gateway,
    )
    settle_ix = build_settle_job(
        gateway=g.gateway.pubkey(),
        client=g.clients[0].pubkey,
        job_id=job_id,
        worker_token=worker.token,
        treasury=g.treasury.token,
        payer=g.gateway.pubkey(),
        cost=USDC,
        result_hash=bytes(32),
        prompt_tokens=1,
        completion_tokens=1,
        worker=worker.pubkey,
        nonce=job_nonce(net.chain.svm, job_id),
    )
    give_away = spl.set_owner(worker.token, worker.pubkey, Keypair().pubkey())
    end = _send(net, [settle_ix, give_away], g.gateway, worker.keypair)
    receipt = Receipt(
        job_id=uuid.UUID(bytes=job_id), lock_tx=str(lock), settlement_tx=str(end), worker=str(worker.pubkey)
    )
    report = net.verify(receipt)
    only_failure(report, "payouts")
    assert "owned by" in report.check("payouts").detail


def test_a_cost_mismatch(net):
    receipt = net.run(net.job(cost=700_000))
    only_failure(net.verify(receipt, expected_cost=700_001), "cost")


def test_a_tampered_response(net):
    receipt = net.run(net.job())
    only_failure(net.verify(receipt, response=RESPONSE + b" "), "result_hash")


def test_a_tampered_signature(net):
    """An RPC that serves a transaction whose bytes were changed: the signature no longer
    verifies over them, and verification does not take the RPC's word for it."""
    receipt = net.run(net.job())
    signature = receipt.lock_signature
    record = net.chain.history[signature]
    msg = record.transaction.message
    tampered = Message.new_with_compiled_instructions(
        msg.header.num_required_signatures,
        msg.header.num_readonly_signed_accounts,
        msg.header.num_readonly_unsigned_accounts,
        list(msg.account_keys),
        Hash.new_unique(),
        list(msg.instructions),
    )
    net.chain.history[signature] = dataclasses.replace(
        record, transaction=VersionedTransaction.populate(tampered, list(record.transaction.signatures))
    )
    report = net.verify(receipt)
    only_failure(report, "signatures")
    assert "does not verify" in report.check("signatures").detail


def test_a_signature_that_does_not_exist(net):
    receipt = net.run(net.job())
    missing = Receipt.parse(receipt.model_dump() | {"lock_tx": str(Keypair().sign_message(b"never sent"))})
    report = net.verify(missing, wait=0.5)
    only_failure(report, "transactions")
    got = statuses(report)
    assert got["lock"] == Status.SKIP and "not found" in report.check("transactions").detail


def test_a_settlement_that_lands_after_the_receipt_is_waited_for(net):
    """The gateway hands out a receipt as its settlement is sent: the verifier waits (up to
    ``wait``) for a signature not yet visible, and only then calls it not found."""
    g = net.g

    async def run(wait: float):
        async with EscrowClient(net.url) as escrow:
            job_id = new_job_id()
            lock = await escrow.lock_job(g.gateway, g.clients[0].pubkey, job_id, USDC, g.workers[0].pubkey)
            settle = await escrow.prepare(
                [
                    build_settle_job(
                        gateway=g.gateway.pubkey(),
                        client=g.clients[0].pubkey,
                        job_id=job_id,
                        worker_token=g.workers[0].token,
                        treasury=(await escrow.get_config()).treasury,
                        payer=g.gateway.pubkey(),
                        cost=1000,
                        result_hash=hashlib.sha256(RESPONSE).digest(),
                        prompt_tokens=1,
                        completion_tokens=1,
                        worker=g.workers[0].pubkey,
                        nonce=(await escrow.get_job(job_id)).nonce,
                    )
                ],
                g.gateway,
                [g.workers[0].keypair],
            )
            receipt = Receipt(
                job_id=uuid.UUID(bytes=job_id),
                lock_tx=str(lock),
                settlement_tx=str(settle.signature),
                worker=str(g.workers[0].pubkey),
            )
            verifying = asyncio.create_task(verify_receipt(net.url, receipt, response=RESPONSE, wait=wait))
            await asyncio.sleep(0.3)  # the receipt is out; its settlement lands later
            await escrow.submit(settle)
            return await verifying

    assert net.run(run(wait=5.0)).verified
    report = net.run(run(wait=0.0))
    assert not report.verified and "not found" in report.check("transactions").detail


# ---------------------------------------------------------------- batch and inputs


def test_verify_batch_reuses_transactions_and_stops_early_when_asked(net, tmp_path):
    receipts = [net.run(net.job(cost=1000 + i)) for i in range(5)]
    bad = receipts[2].model_copy(update={"worker": str(net.g.workers[1].pubkey)})
    batch = [*receipts[:2], bad, *receipts[3:]]
    seen = []
    reports = net.run(verify_batch(net.url, batch, concurrency=3, on_report=seen.append))
    assert [r.verified for r in reports] == [True, True, False, True, True] and len(seen) == 5
    early = net.run(verify_batch(net.url, batch, concurrency=1, fail_fast=True))
    assert [r.verified for r in early] == [True, True, False]
    path = tmp_path / "receipts.jsonl"
    path.write_text("\n".join(r.model_dump_json() for r in batch) + "\n\n")
    assert load_jsonl(path) == batch


def test_receipts_from_headers_json_and_bad_input():
    headers = {
        "X-Decentral-Job-Id": str(uuid.uuid4()),
        "x-decentral-tx-signature": str(Signature.default()),
        "x-decentral-settlement-tx": str(Signature.default()),
        "x-decentral-worker": str(Pubkey.default()),
        "x-decentral-credits-remaining": "5",
    }
    receipt = Receipt.from_headers(headers)
    assert receipt.outcome == "settled" and Receipt.parse(receipt.model_dump_json()) == receipt
    with pytest.raises(DecodeError, match="missing header x-decentral-worker"):
        Receipt.from_headers({k: v for k, v in headers.items() if k != "x-decentral-worker"})
    with pytest.raises(DecodeError, match="lock_tx"):
        Receipt.parse(receipt.model_dump() | {"lock_tx": "not-a-signature"})
    with pytest.raises(DecodeError, match="cost"):
        Receipt.parse(receipt.model_dump() | {"cost": -1})
