"""Receipt verification: who paid whom, for which job lifecycle and which response —
without trusting the gateway, the receipt, nor the RPC's word on signatures.

The trust anchor is the auditor's: the program id (and optionally the mint) given to the
:class:`Verifier`, never the receipt's. Both transactions are fetched as raw base64 at the
requested commitment and read defensively (:mod:`decentral_chain.txview`); signatures are
verified here over the exact message bytes; the program's instructions are read wherever
they ran (top level or CPI), each with the events of its own invoke frame and the token
transfers it invoked itself.

A Job address has many lifecycles (a job id may be reused once its Job closed). Every lock
stamps the Job with a nonce, the client's Credits lock counter, which only grows: (client,
nonce) names one lifecycle and never repeats. ``JobLocked``, ``JobSettled`` and
``JobRefunded`` carry it, so a receipt pairs the lock and the close of one lifecycle by
construction — order, and "nothing closed it in between", follow.

Each receipt claim is compared in exactly one check, and a check whose transaction is
missing or failed is *skipped* with the reason, so a receipt that breaks one thing fails
one check. The checks, in order:

    transactions  both exist at the commitment, are readable and succeeded
    signatures    every ed25519 signature verifies locally over the message bytes
    program       the receipt's program is the auditor's; its Config holds the auditor's mint
    lock          lock_job of the program for this job's PDA and this worker (and client)
    settlement    settle_job (or refund_job, as the receipt says) for the same Job
    lifecycle     lock and close carry the same (client, nonce), worker and amounts
    events        each run logged its own event, agreeing with its arguments
    consent       settle_job was co-signed by the job's worker, for this lifecycle: its
                  signature covers the job, the nonce, the result hash, the tokens and the cost
    payouts       settle_job's own token CPIs: cost − fee to the worker (owner, mint), fee to
                  the treasury, the fee at the rate fixed at lock
    cost          cost ≤ locked, and equal to the expected cost when one is given
    result_hash   equal to sha256 of the response (or the receipt's hash) when given

What stays the RPC's word: a transaction's execution results (status, logs, inner
instructions, balances) are not signed; point the verifier at an RPC you trust.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from solders.pubkey import Pubkey
from solders.signature import Signature

from decentral_chain import pda
from decentral_chain.abi import BPS_DENOMINATOR, PROGRAM_ID
from decentral_chain.accounts import Config
from decentral_chain.errors import DecodeError, RpcError
from decentral_chain.events import JobLocked, JobRefunded, JobSettled, LogsTruncated
from decentral_chain.receipts import Receipt
from decentral_chain.rpc import JsonRpc
from decentral_chain.txview import FetchedTx, Run, parse_transaction

DEFAULT_WAIT = 3.0  # seconds a signature not yet visible is waited for
WAIT_POLL = 0.05


class Status(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"


CHECKS: tuple[tuple[str, str], ...] = (
    ("transactions", "both transactions exist at the commitment, are readable and succeeded"),
    ("signatures", "every signature verifies locally over the message bytes"),
    ("program", "the receipt's program is the auditor's; its Config holds the auditor's mint"),
    ("lock", "lock_job of the program for this job's PDA and worker"),
    ("settlement", "settle_job / refund_job of the program for the same Job"),
    ("lifecycle", "lock and close are one lifecycle: same client, nonce, worker and amounts"),
    ("events", "each run logged its own event, agreeing with its arguments"),
    ("consent", "the job's worker co-signed this settlement (job, lifecycle, result, tokens, cost)"),
    ("payouts", "settle_job's own transfers: cost − fee to the worker, the fee to the treasury"),
    ("cost", "cost ≤ locked; equal to the expected cost when given"),
    ("result_hash", "sha256 of the response when given"),
)


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: Status
    detail: str


def _usdc(amount: int) -> str:
    return f"{amount / 1_000_000:,.6f}"


@dataclass
class Report:
    receipt: Receipt
    checks: list[CheckResult] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def verified(self) -> bool:
        return all(c.status != Status.FAIL for c in self.checks) and any(c.status == Status.PASS for c in self.checks)

    def check(self, name: str) -> CheckResult:
        return next(c for c in self.checks if c.name == name)

    def explain(self) -> str:
        """What the receipt proves, in plain words (or why it proves nothing)."""
        if not self.verified:
            failed = ", ".join(c.name for c in self.checks if c.status == Status.FAIL)
            return f"This receipt proves nothing: the {failed} check(s) failed."
        f = self.facts
        client = f.get("client", self.receipt.client or "an unnamed client")
        life = f"job {f['job_id']}" + (f" (lifecycle nonce {f['nonce']})" if "nonce" in f else "")
        where = f"under program {f['program']}" + (f" in mint {f['mint']}" if "mint" in f else "")
        if f.get("outcome") == "refunded":
            return (
                f"Client {client} had {_usdc(f.get('locked', 0))} USDC locked for {life} "
                f"(worker {f.get('worker')}), and all of it was refunded to their free credits; "
                f"nobody was paid. {where.capitalize()}."
            )
        text = (
            f"Client {client} paid {_usdc(f['cost'])} USDC for {life}, {where}: "
            f"worker {f.get('worker')} received {_usdc(f.get('worker_paid', 0))} "
            f"and the treasury a fee of {_usdc(f.get('fee', 0))}"
        )
        if "locked" in f:
            text += (
                f"; {_usdc(f['locked'])} had been locked at slot {f.get('lock_slot')} and "
                f"{_usdc(f.get('refunded', 0))} went back to the client's free credits"
            )
        text += f". The settlement (slot {f.get('settlement_slot')}) committed to result hash {f.get('result_hash')}"
        if f.get("worker_consent"):
            text += ", and the worker signed it"
        if f.get("response_checked"):
            text += ", the sha256 of the response checked here"
        return text + f" ({f.get('prompt_tokens')} prompt + {f.get('completion_tokens')} completion tokens)."

    def to_dict(self) -> dict[str, Any]:
        return {
            "verified": self.verified,
            "receipt": self.receipt.model_dump(mode="json"),
            "checks": [{"name": c.name, "status": c.status.value, "detail": c.detail} for c in self.checks],
            "facts": self.facts,
            "explanation": self.explain(),
        }


# ---------------------------------------------------------------------- verifier


def _lifecycle(event: Any) -> tuple[Pubkey, int] | None:
    """(client, nonce): one lifecycle of one Job, never repeated (None for other events)."""
    return (event.client, event.nonce) if isinstance(event, (JobLocked, JobSettled, JobRefunded)) else None


def _own_event(run: Run | None, cls: type) -> Any:
    """The run's one event of ``cls`` (None if it logged none or several)."""
    if run is None:
        return None
    found = [e for e in run.events if isinstance(e, cls)]
    return found[0] if len(found) == 1 else None


def _closing_event(run: Run | None) -> JobSettled | JobRefunded | None:
    """The JobSettled / JobRefunded a settle_job / refund_job run logged itself (or None)."""
    if run is None:
        return None
    return _own_event(run, JobSettled if run.ix.name == "settle_job" else JobRefunded)


def _fee(cost: int, fee_bps: int) -> int:
    return cost * fee_bps // BPS_DENOMINATOR


@dataclass
class _Read:
    """One fetched transaction for one check run: the view, why it is unusable, its runs."""

    tx: FetchedTx | None = None
    problem: str | None = None
    runs: list[Run] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.tx is not None and self.problem is None and self.tx.err is None


class Verifier:
    """Verifies receipts against one RPC, for the auditor's program (and mint); fetched
    transactions and the Config are reused across receipts."""

    def __init__(
        self,
        rpc_url: str,
        *,
        program_id: Pubkey = PROGRAM_ID,
        mint: Pubkey | None = None,
        commitment: str = "confirmed",
        wait: float = DEFAULT_WAIT,
    ) -> None:
        """``program_id`` / ``mint``: the auditor's trust anchor, never taken from a receipt
        (``mint`` None: whatever the program's Config holds, reported). ``wait``: seconds a
        signature not yet visible at ``commitment`` is waited for before it counts as missing."""
        if commitment not in ("confirmed", "finalized"):
            raise ValueError("commitment must be confirmed or finalized")
        if not wait >= 0:
            raise ValueError("wait must be a number of seconds ≥ 0")
        self.rpc = JsonRpc(rpc_url)
        self.program_id = program_id
        self.mint = mint
        self.commitment = commitment
        self.wait = wait
        self._txs: dict[Signature, asyncio.Task] = {}
        self._config: asyncio.Task | None = None

    async def __aenter__(self) -> Verifier:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.rpc.aclose()

    def transaction(self, signature: Signature) -> asyncio.Future:
        """The fetched transaction, or None if it never became visible within ``wait``
        (awaitable; one fetch per signature, shared). A malformed answer raises DecodeError."""

        async def load() -> FetchedTx | None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.wait
            while True:
                result = await self.rpc.call(
                    "getTransaction",
                    [
                        str(signature),
                        {"encoding": "base64", "commitment": self.commitment, "maxSupportedTransactionVersion": 0},
                    ],
                )
                if result is not None:
                    return parse_transaction(signature, result)
                if loop.time() >= deadline:
                    return None
                await asyncio.sleep(min(WAIT_POLL, max(0.0, deadline - loop.time())))

        if signature not in self._txs:
            self._txs[signature] = asyncio.ensure_future(load())
        return self._txs[signature]

    async def config(self) -> Config | None:
        """The trusted program's Config (read once); None if there is none on this cluster."""

        async def load() -> Config | None:
            result = await self.rpc.call(
                "getAccountInfo",
                [str(pda.config_address(self.program_id)), {"encoding": "base64", "commitment": self.commitment}],
            )
            value = result.get("value") if isinstance(result, dict) else None
            if not isinstance(value, dict) or value.get("owner") != str(self.program_id):
                return None
            try:
                return Config.from_bytes(base64.b64decode(value["data"][0], validate=True))
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                raise DecodeError("malformed getAccountInfo answer for the Config") from exc

        if self._config is None:
            self._config = asyncio.ensure_future(load())
        return await self._config

    async def _status(self, signature: Signature) -> str | None:
        """Why a signature is not visible at the commitment: its confirmation status, if any."""
        try:
            result = await self.rpc.call("getSignatureStatuses", [[str(signature)], {"searchTransactionHistory": True}])
            status = result["value"][0]
            return status.get("confirmationStatus") if isinstance(status, dict) else None
        except (RpcError, KeyError, IndexError, TypeError, AttributeError):
            return None

    async def _read(self, signature: Signature, label: str) -> tuple[_Read, str | None]:
        """The transaction and its runs of the program, or what is wrong with it."""
        try:
            tx = await self.transaction(signature)
        except DecodeError as exc:
            return _Read(problem=f"{label} transaction {signature}: {exc}"), None
        if tx is None:
            status = await self._status(signature)
            why = f", {status} only (waited {self.wait:g} s)" if status else ""
            return _Read(problem=f"{label} transaction {signature} not found at {self.commitment}{why}"), None
        if tx.err is not None:
            return _Read(tx, f"{label} transaction failed: {tx.err}"), None
        try:
            return _Read(tx, runs=tx.runs(self.program_id)), None
        except LogsTruncated:
            return _Read(tx, runs=tx.runs(self.program_id, events=False)), (
                f"{label}: the log was truncated, events cannot be checked"
            )
        except DecodeError as exc:
            return _Read(tx, f"{label} transaction: {exc}"), None

    async def verify(
        self, receipt: Receipt, *, expected_cost: int | None = None, response: bytes | None = None
    ) -> Report:
        report = Report(receipt)
        program = self.program_id
        job_key = pda.job_address(receipt.job_id_bytes, program)
        add = lambda name, status, detail: report.checks.append(CheckResult(name, status, detail))  # noqa: E731
        (lock, lock_note), (settle, settle_note) = await asyncio.gather(
            self._read(receipt.lock_signature, "lock"), self._read(receipt.settlement_signature, "settlement")
        )
        report.facts.update(
            program=str(program),
            job_id=str(receipt.job_id),
            lock_tx=receipt.lock_tx,
            settlement_tx=receipt.settlement_tx,
        )

        # 1. transactions: visible at the commitment, readable, succeeded
        problems = [r.problem for r in (lock, settle) if r.problem]
        add(
            "transactions",
            Status.FAIL if problems else Status.PASS,
            "; ".join(problems) or f"both found at {self.commitment}, both succeeded",
        )

        # 2. signatures, verified here over the message bytes
        bad = []
        for label, tx in (("lock", lock.tx), ("settlement", settle.tx)):
            if tx is None:
                continue
            if tx.transaction.signatures[0] != tx.signature:
                bad.append(f"{label}: the RPC returned another transaction")
            for i, sig in enumerate(tx.transaction.signatures):
                if not sig.verify(tx.transaction.message.account_keys[i], tx.message_bytes):
                    bad.append(f"{label}: signature {i} does not verify")
        if lock.tx is None and settle.tx is None:
            add("signatures", Status.SKIP, "no transaction to check")
        else:
            add("signatures", Status.FAIL if bad else Status.PASS, "; ".join(bad) or "all signatures verify")

        # 3. program: the auditor's, never the receipt's; its Config holds the auditor's mint
        config: Config | None = None
        named = receipt.program
        if named is not None and named != program:
            add("program", Status.FAIL, f"the receipt names program {named}; the auditor trusts {program}")
        else:
            try:
                config = await self.config()
            except DecodeError as exc:
                config, problem = None, str(exc)
            else:
                problem = f"no Config of program {program} on this cluster" if config is None else None
            if config is not None and self.mint is not None and config.mint != self.mint:
                problem = f"program {program} settles in mint {config.mint}, not the trusted mint {self.mint}"
            if problem:
                add("program", Status.FAIL, problem)
                config = None
            else:
                assert config is not None
                pinned = "the trusted mint" if self.mint is not None else "mint not pinned (--mint)"
                add("program", Status.PASS, f"program {program}, Config mint {config.mint} ({pinned})")
                report.facts.update(mint=str(config.mint))

        # 4-5. the lock and the close of this Job, paired on their lifecycle (client, nonce)
        locks = [r for r in lock.runs if r.ix.name == "lock_job" and r.ix.accounts["job"] == job_key]
        closes = [
            r for r in settle.runs if r.ix.name in ("settle_job", "refund_job") and r.ix.accounts["job"] == job_key
        ]
        locked_run, closed_run = self._pair(receipt, locks, closes)
        locked_ev = _own_event(locked_run, JobLocked)
        closed_ev = _closing_event(closed_run)

        if not lock.ok:
            add("lock", Status.SKIP, "lock transaction unavailable or failed")
        elif locked_run is None:
            add("lock", Status.FAIL, f"no lock_job of {program} for job PDA {job_key}")
        else:
            worker, args = locked_run.ix.args["worker"], locked_run.ix.args
            client_key = pda.credits_address(Pubkey.from_string(receipt.client), program) if receipt.client else None
            if bytes(args["job_id"]) != receipt.job_id_bytes:
                add("lock", Status.FAIL, "lock_job's job id differs from the receipt")
            elif worker != receipt.worker_pubkey:
                add("lock", Status.FAIL, f"job was locked for worker {worker}, the receipt says {receipt.worker}")
            elif client_key is not None and locked_run.ix.accounts["credits"] != client_key:
                add("lock", Status.FAIL, f"job locked credits of another client than {receipt.client}")
            else:
                add("lock", Status.PASS, f"lock_job for {job_key}, worker {worker}, {args['amount']} credits")
            report.facts.update(lock_slot=lock.tx.slot, locked=args["amount"], worker=str(worker))  # type: ignore[union-attr]

        if not settle.ok:
            add("settlement", Status.SKIP, "settlement transaction unavailable or failed")
        elif closed_run is None:
            add("settlement", Status.FAIL, f"no settle_job or refund_job of {program} for job PDA {job_key}")
        else:
            kind = "settled" if closed_run.ix.name == "settle_job" else "refunded"
            report.facts.update(settlement_slot=settle.tx.slot, outcome=kind)  # type: ignore[union-attr]
            if kind != receipt.outcome:
                add("settlement", Status.FAIL, f"the transaction {kind} the job; the receipt says {receipt.outcome}")
            else:
                add("settlement", Status.PASS, f"{closed_run.ix.name} of the same Job")

        # 6. lifecycle: the close ended the very Job this lock created
        add(*self._check_lifecycle(report, receipt, locked_run, locked_ev, closed_run, closed_ev))

        # 7. events: each run logged its own event, agreeing with its arguments
        add(*self._check_events(lock_note, settle_note, locked_run, locked_ev, closed_run, closed_ev))

        settled = closed_run if closed_run is not None and closed_run.ix.name == "settle_job" else None

        # 8. the worker's consent: a signature of the transaction, by the job's worker
        if settled is None:
            add("consent", Status.SKIP, "no settlement" if closed_run is None else "refund: no worker consent needed")
        else:
            add(*self._check_consent(report, settle.tx, settled, closed_ev))

        # 9. payouts, from the settlement's own token CPIs
        if settled is None:
            add("payouts", Status.SKIP, "no settlement" if closed_run is None else "refund: nothing is paid")
        else:
            add(*self._check_payouts(report, config, settle.tx, settled, closed_ev, locked_ev))

        # 10. cost
        expected = expected_cost if expected_cost is not None else receipt.cost
        if settled is None:
            add("cost", Status.SKIP, "no settlement" if closed_run is None else "refund: no cost")
        else:
            cost = settled.ix.args["cost"]
            report.facts["cost"] = cost
            locked_amount = locked_run.ix.args["amount"] if locked_run is not None else None
            if locked_amount is not None and cost > locked_amount:
                add("cost", Status.FAIL, f"cost {cost} exceeds the {locked_amount} locked")
            elif expected is not None and cost != expected:
                add("cost", Status.FAIL, f"cost {cost}, expected {expected}")
            else:
                add(
                    "cost",
                    Status.PASS,
                    f"cost {cost}"
                    + (" = expected" if expected is not None else "")
                    + (f" ≤ locked {locked_amount}" if locked_amount is not None else ""),
                )

        # 11. result hash
        if settled is None:
            add("result_hash", Status.SKIP, "no settlement" if closed_run is None else "refund: no result")
        else:
            onchain = bytes(settled.ix.args["result_hash"]).hex()
            report.facts.update(
                result_hash=onchain,
                prompt_tokens=settled.ix.args["prompt_tokens"],
                completion_tokens=settled.ix.args["completion_tokens"],
            )
            wanted = hashlib.sha256(response).hexdigest() if response is not None else receipt.result_hash
            source = "sha256 of the response" if response is not None else "the receipt's result hash"
            if wanted is None:
                add("result_hash", Status.SKIP, "no response or result hash given")
            elif wanted != onchain:
                add("result_hash", Status.FAIL, f"{source} {wanted} ≠ on-chain {onchain}")
            else:
                add("result_hash", Status.PASS, f"{source} matches the on-chain hash")
                report.facts["response_checked"] = response is not None
        return report

    @staticmethod
    def _pair(receipt: Receipt, locks: list[Run], closes: list[Run]) -> tuple[Run | None, Run | None]:
        """The receipt's lock and close: a pair of one lifecycle (same client and nonce in
        their own events), preferring the receipt's nonce and outcome. Without such a pair,
        the first candidates, so that the lifecycle check reports the mismatch."""

        def wanted(run: Run) -> bool:
            event = _closing_event(run)
            kind = "settled" if run.ix.name == "settle_job" else "refunded"
            return kind == receipt.outcome and (receipt.nonce is None or getattr(event, "nonce", None) == receipt.nonce)

        pairs = [
            (lk, cl)
            for cl in closes
            for lk in locks
            if (key := _lifecycle(_own_event(lk, JobLocked))) is not None and key == _lifecycle(_closing_event(cl))
        ]
        best = [p for p in pairs if wanted(p[1])] or pairs
        if best:
            return best[0]
        preferred = [c for c in closes if wanted(c)] or closes
        return (locks[0] if locks else None), (preferred[0] if preferred else None)

    @staticmethod
    def _check_lifecycle(
        report: Report,
        receipt: Receipt,
        locked_run: Run | None,
        locked: JobLocked | None,
        closed_run: Run | None,
        closed: JobSettled | JobRefunded | None,
    ) -> tuple[str, Status, str]:
        if locked_run is None or closed_run is None:
            return "lifecycle", Status.SKIP, "needs both the lock and the close"
        if locked is None or closed is None:
            return "lifecycle", Status.SKIP, "needs the lock's and the close's events"
        report.facts.update(client=str(locked.client), nonce=locked.nonce, fee_bps=locked.fee_bps)
        if (closed.client, closed.nonce) != (locked.client, locked.nonce) or closed.job_id != locked.job_id:
            return (
                "lifecycle",
                Status.FAIL,
                (
                    f"the close ended lifecycle {closed.nonce} of client {closed.client}; "
                    f"the lock began lifecycle {locked.nonce} of client {locked.client}"
                ),
            )
        if receipt.nonce is not None and receipt.nonce != locked.nonce:
            return "lifecycle", Status.FAIL, f"lifecycle nonce {locked.nonce}, the receipt says {receipt.nonce}"
        if closed.worker != locked.worker:
            return "lifecycle", Status.FAIL, f"the close names worker {closed.worker}, the lock {locked.worker}"
        ended = closed.cost + closed.refunded if isinstance(closed, JobSettled) else closed.amount
        if ended != locked.amount:
            return "lifecycle", Status.FAIL, f"the close accounts for {ended} credits, the lock held {locked.amount}"
        return (
            "lifecycle",
            Status.PASS,
            (
                f"one lifecycle: nonce {locked.nonce} of client {locked.client}, "
                f"{locked.amount} credits locked and released"
            ),
        )

    def _check_events(
        self,
        lock_note: str | None,
        settle_note: str | None,
        locked_run: Run | None,
        locked: JobLocked | None,
        closed_run: Run | None,
        closed: JobSettled | JobRefunded | None,
    ) -> tuple[str, Status, str]:
        notes = [n for n in (lock_note, settle_note) if n]
        if notes:
            return "events", Status.FAIL, "; ".join(notes)
        if locked_run is None and closed_run is None:
            return "events", Status.SKIP, "no escrow instruction to compare events with"
        names = []
        if locked_run is not None:
            args = locked_run.ix.args
            if locked is None or (locked.job_id, locked.worker, locked.amount) != (
                bytes(args["job_id"]),
                args["worker"],
                args["amount"],
            ):
                return "events", Status.FAIL, "lock_job logged no JobLocked of the program matching its arguments"
            names.append("JobLocked")
        if closed_run is not None:
            name = "JobSettled" if closed_run.ix.name == "settle_job" else "JobRefunded"
            ok = closed is not None and pda.job_address(closed.job_id, self.program_id) == closed_run.ix.accounts["job"]
            if ok and isinstance(closed, JobSettled):
                args = closed_run.ix.args
                ok = (closed.cost, closed.result_hash, closed.prompt_tokens, closed.completion_tokens) == (
                    args["cost"],
                    bytes(args["result_hash"]),
                    args["prompt_tokens"],
                    args["completion_tokens"],
                )
            if not ok:
                return "events", Status.FAIL, f"{closed_run.ix.name} logged no {name} of the program matching it"
            names.append(name)
        return "events", Status.PASS, " and ".join(names) + ", each in its own instruction's frame"

    @staticmethod
    def _check_consent(
        report: Report, settle: FetchedTx | None, settled: Run, closed: JobSettled | JobRefunded | None
    ) -> tuple[str, Status, str]:
        """The co-signer settle_job names is the Job's worker and signed the transaction, for
        the lifecycle this settlement closed (its signature is verified by the signatures
        check, over these very bytes; lock-to-close pairing is the lifecycle check's)."""
        assert settle is not None
        cosigner = settled.ix.accounts["worker"]
        bound = closed.worker if isinstance(closed, JobSettled) else report.receipt.worker_pubkey
        message = settle.transaction.message
        signers = set(message.account_keys[: message.header.num_required_signatures])
        args = settled.ix.args
        if cosigner != bound:
            return "consent", Status.FAIL, f"settle_job was co-signed by {cosigner}, not the job's worker {bound}"
        if cosigner not in signers:
            return "consent", Status.FAIL, f"the worker {cosigner} did not sign the settlement transaction"
        if isinstance(closed, JobSettled) and args["nonce"] != closed.nonce:
            return "consent", Status.FAIL, f"the worker consented to lifecycle {args['nonce']}, not {closed.nonce}"
        report.facts["worker_consent"] = str(cosigner)
        return (
            "consent",
            Status.PASS,
            (
                f"worker {cosigner} signed: lifecycle {args['nonce']}, "
                f"result {bytes(args['result_hash']).hex()[:16]}…, "
                f"{args['prompt_tokens']}+{args['completion_tokens']} tokens, cost {args['cost']}"
            ),
        )

    def _check_payouts(
        self,
        report: Report,
        config: Config | None,
        settle: FetchedTx | None,
        settled: Run,
        closed: JobSettled | JobRefunded | None,
        locked: JobLocked | None,
    ) -> tuple[str, Status, str]:
        if config is None:
            return "payouts", Status.SKIP, "no trusted Config to check the mint and vault against"
        if not isinstance(closed, JobSettled) or settle is None:
            return "payouts", Status.SKIP, "no JobSettled event to read the fee from"
        if settled.transfers is None:
            return "payouts", Status.FAIL, "the RPC gave no stack heights: transfers cannot be attributed to settle_job"
        cost, fee = closed.cost, closed.fee
        if locked is not None and fee != _fee(cost, locked.fee_bps):
            return (
                "payouts",
                Status.FAIL,
                (f"fee {fee} is not {locked.fee_bps} bps of cost {cost} (the rate fixed at lock)"),
            )
        worker_token, treasury = settled.ix.accounts["worker_token"], settled.ix.accounts["treasury"]
        authority = pda.config_address(self.program_id)
        expected = sorted(
            (str(dest), amount) for dest, amount in ((worker_token, cost - fee), (treasury, fee)) if amount > 0
        )
        made = sorted(
            (str(t.destination), t.amount)
            for t in settled.transfers
            if t.source == config.vault and t.authority == authority
        )
        if made != expected or len(made) != len(settled.transfers):
            return (
                "payouts",
                Status.FAIL,
                (
                    f"settle_job's own token transfers {made or 'none'} are not "
                    f"cost − fee = {cost - fee} to the worker and fee = {fee} to the treasury"
                ),
            )
        worker = locked.worker if locked is not None else report.receipt.worker_pubkey
        if cost - fee > 0:
            index = settle.keys.index(worker_token)
            balance = settle.post_tokens.get(index)
            if balance is None:
                return "payouts", Status.FAIL, "no token balance for the worker's account"
            if balance.owner != worker:
                return (
                    "payouts",
                    Status.FAIL,
                    (f"the paid token account is owned by {balance.owner}, not the worker {worker}"),
                )
            if balance.mint != config.mint:
                return "payouts", Status.FAIL, f"the paid token account is of mint {balance.mint}, not {config.mint}"
        report.facts.update(worker_paid=cost - fee, fee=fee, refunded=closed.refunded)
        return "payouts", Status.PASS, f"settle_job paid worker {worker} {cost - fee} and the treasury {fee}"


async def verify_receipt(
    rpc_url: str,
    receipt: Receipt,
    *,
    program_id: Pubkey = PROGRAM_ID,
    mint: Pubkey | None = None,
    commitment: str = "confirmed",
    expected_cost: int | None = None,
    response: bytes | None = None,
    wait: float = DEFAULT_WAIT,
) -> Report:
    async with Verifier(rpc_url, program_id=program_id, mint=mint, commitment=commitment, wait=wait) as verifier:
        return await verifier.verify(receipt, expected_cost=expected_cost, response=response)


async def verify_batch(
    rpc_url: str,
    receipts: Sequence[Receipt],
    *,
    program_id: Pubkey = PROGRAM_ID,
    mint: Pubkey | None = None,
    commitment: str = "confirmed",
    concurrency: int = 32,
    fail_fast: bool = False,
    on_report: Callable[[Report], None] | None = None,
    wait: float = DEFAULT_WAIT,
) -> list[Report]:
    """Verify concurrently (at most ``concurrency`` at a time), reusing fetched transactions.
    With ``fail_fast`` the first failed receipt stops the receipts not yet started."""
    semaphore = asyncio.Semaphore(concurrency)
    stop = asyncio.Event()
    results: list[Report | None] = [None] * len(receipts)

    async with Verifier(rpc_url, program_id=program_id, mint=mint, commitment=commitment, wait=wait) as verifier:
        # fetch every transaction first, in large batches (they are cached for the checks)
        for r in receipts:
            verifier.transaction(r.lock_signature)
            verifier.transaction(r.settlement_signature)

        async def one(i: int, receipt: Receipt) -> None:
            async with semaphore:
                if stop.is_set():
                    return
                report = await verifier.verify(receipt)
                results[i] = report
                if on_report is not None:
                    on_report(report)
                if fail_fast and not report.verified:
                    stop.set()

        await asyncio.gather(*(one(i, r) for i, r in enumerate(receipts)))
    return [r for r in results if r is not None]
