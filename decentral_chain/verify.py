"""Receipt verification: who paid whom, for which job and which response — without trusting
the gateway, nor the RPC's word on signatures.

Both transactions are fetched as raw base64 at the requested commitment; signatures are
verified here over the exact message bytes; escrow instructions are decoded wherever they
ran (top level or CPI) but only for the expected program id; events are read only from
that program's own invoke frames; payouts come from pre/post token balances.

Each receipt claim is compared in exactly one check, and a check whose transaction is
missing or failed is *skipped* with the reason, so a receipt that breaks one thing fails
one check. The eight checks (SPEC §3), in order:

    transactions  both exist at the commitment and succeeded
    signatures    every ed25519 signature verifies locally over the message bytes
    lock          lock_job of the program for this job's PDA and this worker (and client)
    settlement    settle_job (or refund_job, as the receipt says) for the same Job, later
    events        the program's own events, agreeing with its instructions
    payouts       the job's worker (token owner, config mint) got cost − fee, the treasury the fee
    cost          cost ≤ locked, and equal to the expected cost when one is given
    result_hash   equal to sha256 of the response (or the receipt's hash) when given

A receipt is handed out as its settlement is sent, and a cluster confirms in about a
second: a signature not yet visible is waited for (``wait``, 3 s by default) before it
counts as not found.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import based58
import httpx
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from decentral_chain import pda
from decentral_chain.accounts import Config
from decentral_chain.errors import DecodeError, RpcError, RpcUnavailable
from decentral_chain.events import JobLocked, JobRefunded, JobSettled, LogsTruncated, parse_events
from decentral_chain.instructions import DecodedInstruction, decode_instruction_data
from decentral_chain.receipts import Receipt

DEFAULT_WAIT = 3.0  # seconds a signature not yet visible is waited for
WAIT_POLL = 0.05


class Status(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"


CHECKS: tuple[tuple[str, str], ...] = (
    ("transactions", "both transactions exist at the commitment and succeeded"),
    ("signatures", "every signature verifies locally over the message bytes"),
    ("lock", "lock_job of the program for this job's PDA and worker"),
    ("settlement", "settle_job / refund_job of the program for the same Job, later"),
    ("events", "the program's own events agree with its instructions"),
    ("payouts", "worker got cost − fee, treasury the fee (token balances)"),
    ("cost", "cost ≤ locked; equal to the expected cost when given"),
    ("result_hash", "sha256 of the response when given"),
)


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: Status
    detail: str


@dataclass
class Report:
    receipt: Receipt
    checks: list[CheckResult] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def verified(self) -> bool:
        return all(c.status != Status.FAIL for c in self.checks) and any(
            c.status == Status.PASS for c in self.checks)

    def check(self, name: str) -> CheckResult:
        return next(c for c in self.checks if c.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {"verified": self.verified, "receipt": self.receipt.model_dump(mode="json"),
                "checks": [{"name": c.name, "status": c.status.value, "detail": c.detail} for c in self.checks],
                "facts": self.facts}


# ------------------------------------------------------------------------ JSON-RPC


class RawRpc:
    """Minimal JSON-RPC over httpx. Concurrent calls share batch requests (up to
    ``batch_size`` per request, ``max_in_flight`` requests at a time): verifying many receipts
    is then a few large requests instead of thousands of small ones. A lone call is a plain
    request. Transport errors are retried with backoff, nothing else."""

    def __init__(self, url: str, *, retries: int = 3, backoff: float = 0.1, timeout: float = 30.0,
                 batch_size: int = 100, max_in_flight: int = 4) -> None:
        self.url = url
        self.retries = retries
        self.backoff = backoff
        self.batch_size = batch_size
        # certificates are loaded only for https endpoints (it costs ~30 ms per client)
        self.http = httpx.AsyncClient(timeout=timeout, verify=url.startswith("https://"))
        self._queue: list[tuple[dict, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._ids = 0

    async def call(self, method: str, params: list) -> Any:
        self._ids += 1
        future = asyncio.get_running_loop().create_future()
        self._queue.append(({"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params}, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        """Drain the queue until it is empty and nothing is in flight. Calls made while a
        send is pending are picked up here: between the final check and this task ending
        there is no await, so a later call always finds the flusher done and starts one."""
        await asyncio.sleep(0)  # let every caller of this turn enqueue
        sends: set[asyncio.Task] = set()
        while self._queue or sends:
            while self._queue and not self._in_flight.locked():
                batch, self._queue = self._queue[: self.batch_size], self._queue[self.batch_size:]
                await self._in_flight.acquire()
                sends.add(asyncio.create_task(self._send(batch)))
            if sends:
                _, sends = await asyncio.wait(sends, return_when=asyncio.FIRST_COMPLETED)

    async def _send(self, batch: list[tuple[dict, asyncio.Future]]) -> None:
        try:
            body: Any = batch[0][0] if len(batch) == 1 else [request for request, _ in batch]
            replies = await self._post(body)
            by_id = {r.get("id"): r for r in (replies if isinstance(replies, list) else [replies])
                     if isinstance(r, dict)}
            for request, future in batch:
                reply = by_id.get(request["id"])
                if future.done():
                    continue
                if reply is None:
                    future.set_exception(RpcError(-32603, f"no reply to {request['method']} in the batch"))
                elif "error" in reply:
                    err = reply["error"]
                    future.set_exception(RpcError(err.get("code", 0), err.get("message", ""), err.get("data")))
                else:
                    future.set_result(reply.get("result"))
        except Exception as exc:  # transport or HTTP failure: every caller of the batch gets it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        finally:
            self._in_flight.release()

    async def _post(self, body: Any) -> Any:
        for attempt in range(self.retries + 1):
            try:
                response = await self.http.post(self.url, json=body)
                break
            except httpx.TransportError as exc:
                if attempt == self.retries:
                    raise RpcUnavailable(f"RPC {self.url} unreachable: {exc}") from exc
                await asyncio.sleep(self.backoff * 2**attempt)
        if response.status_code != 200:
            raise RpcError(response.status_code, f"HTTP {response.status_code} from {self.url}")
        try:
            return response.json()
        except ValueError as exc:
            raise RpcError(-32700, f"{self.url} did not answer JSON") from exc

    async def aclose(self) -> None:
        await self.http.aclose()


# ---------------------------------------------------------------- fetched facts


@dataclass(frozen=True)
class FetchedTx:
    signature: Signature
    raw: bytes
    transaction: VersionedTransaction
    message_bytes: bytes
    slot: int
    block_time: int | None
    meta: dict
    keys: list[Pubkey]  # static keys, then loaded writable, then loaded readonly

    @property
    def err(self) -> Any:
        return self.meta.get("err")

    def instructions(self, program: Pubkey) -> list[DecodedInstruction]:
        """The program's instructions, top level and inner (CPI), decoded; others ignored."""
        found: list[tuple[int, bytes, list[int]]] = []
        for ix in self.transaction.message.instructions:
            found.append((ix.program_id_index, bytes(ix.data), list(bytes(ix.accounts))))
        for group in self.meta.get("innerInstructions") or []:
            for ix in group.get("instructions", []):
                found.append((ix["programIdIndex"], based58.b58decode(ix["data"].encode()), ix["accounts"]))
        out = []
        for program_index, data, accounts in found:
            if program_index >= len(self.keys) or self.keys[program_index] != program:
                continue
            try:
                out.append(decode_instruction_data(data, [self.keys[i] for i in accounts if i < len(self.keys)]))
            except DecodeError:
                continue  # not a well-formed escrow instruction: it could not have succeeded
        return out

    def token_delta(self, account: Pubkey) -> tuple[int, dict | None]:
        """(post - pre amount, post balance entry) of a token account of this transaction."""
        if account not in self.keys:
            return 0, None
        index = self.keys.index(account)

        def entry(kind: str) -> dict | None:
            return next((b for b in self.meta.get(kind) or [] if b["accountIndex"] == index), None)

        pre, post = entry("preTokenBalances"), entry("postTokenBalances")
        def amount(balance: dict | None) -> int:
            return int(balance["uiTokenAmount"]["amount"]) if balance else 0

        return amount(post) - amount(pre), post


def _shortvec(data: bytes) -> tuple[int, int]:
    """Decode a compact-u16: (value, bytes used)."""
    value, shift = 0, 0
    for i in range(3):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i + 1
        shift += 7
    raise DecodeError("bad compact-u16")


async def fetch_transaction(rpc: RawRpc, signature: Signature, commitment: str) -> FetchedTx | None:
    result = await rpc.call("getTransaction", [str(signature), {
        "encoding": "base64", "commitment": commitment, "maxSupportedTransactionVersion": 0}])
    if result is None:
        return None
    try:
        raw = base64.b64decode(result["transaction"][0], validate=True)
        tx = VersionedTransaction.from_bytes(raw)
        count, used = _shortvec(raw)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise DecodeError(f"{signature}: the RPC returned an undecodable transaction") from exc
    meta = result.get("meta") or {}
    loaded = meta.get("loadedAddresses") or {}
    keys = [*tx.message.account_keys, *(Pubkey.from_string(k) for k in loaded.get("writable", [])),
            *(Pubkey.from_string(k) for k in loaded.get("readonly", []))]
    return FetchedTx(signature, raw, tx, raw[used + 64 * count:], result["slot"], result.get("blockTime"), meta, keys)


# ---------------------------------------------------------------------- verifier


class Verifier:
    """Verifies receipts against one RPC; fetched transactions and the Config are reused."""

    def __init__(self, rpc_url: str, *, commitment: str = "confirmed", wait: float = DEFAULT_WAIT) -> None:
        """``wait``: seconds a signature not yet visible at ``commitment`` is waited for
        before it counts as not found (a receipt is handed out as its settlement is sent)."""
        if commitment not in ("confirmed", "finalized"):
            raise ValueError("commitment must be confirmed or finalized")
        if not wait >= 0:
            raise ValueError("wait must be a number of seconds ≥ 0")
        self.rpc = RawRpc(rpc_url)
        self.commitment = commitment
        self.wait = wait
        self._txs: dict[Signature, asyncio.Task] = {}
        self._configs: dict[Pubkey, asyncio.Task] = {}
        self._blocks: dict[int, asyncio.Task] = {}

    async def __aenter__(self) -> Verifier:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.rpc.aclose()

    def _cached(self, cache: dict, key: Any, factory: Callable[[], Any]) -> asyncio.Task:
        if key not in cache:
            cache[key] = asyncio.ensure_future(factory())
        return cache[key]

    def transaction(self, signature: Signature) -> asyncio.Future:
        """The fetched transaction (awaitable; one fetch per signature, shared)."""
        async def load() -> FetchedTx | None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.wait
            while True:
                tx = await fetch_transaction(self.rpc, signature, self.commitment)
                if tx is not None or loop.time() >= deadline:
                    return tx
                await asyncio.sleep(min(WAIT_POLL, max(0.0, deadline - loop.time())))

        return self._cached(self._txs, signature, load)

    async def config(self, program: Pubkey) -> Config | None:
        async def load() -> Config | None:
            result = await self.rpc.call("getAccountInfo", [str(pda.config_address(program)),
                                                            {"encoding": "base64", "commitment": self.commitment}])
            value = result["value"] if result else None
            if value is None or value["owner"] != str(program):
                return None
            return Config.from_bytes(base64.b64decode(value["data"][0]))

        return await self._cached(self._configs, program, load)

    async def block_signatures(self, slot: int, wait: float = 5.0) -> list[str] | None:
        """The block's signatures in order; waits up to ``wait`` s for a block still being
        produced (both transactions in the current slot). None if it never becomes available."""
        async def load() -> list[str] | None:
            deadline = asyncio.get_running_loop().time() + wait
            while True:
                try:
                    block = await self.rpc.call("getBlock", [slot, {
                        "transactionDetails": "signatures", "rewards": False, "commitment": self.commitment,
                        "maxSupportedTransactionVersion": 0}])
                    return block.get("signatures", []) if block else None
                except RpcError as exc:
                    if exc.code not in (-32004, -32007, -32009) or asyncio.get_running_loop().time() > deadline:
                        return None
                await asyncio.sleep(0.1)

        return await self._cached(self._blocks, slot, load)

    async def verify(self, receipt: Receipt, *, expected_cost: int | None = None,
                     response: bytes | None = None) -> Report:
        report = Report(receipt)
        lock, settle = await asyncio.gather(self.transaction(receipt.lock_signature),
                                            self.transaction(receipt.settlement_signature))
        program = receipt.program
        job_key = pda.job_address(receipt.job_id_bytes, program)
        add = lambda name, status, detail: report.checks.append(CheckResult(name, status, detail))  # noqa: E731

        # 1. transactions
        problems = []
        for label, tx, sig in (("lock", lock, receipt.lock_tx), ("settlement", settle, receipt.settlement_tx)):
            if tx is None:
                problems.append(f"{label} transaction {sig} not found at {self.commitment}")
            elif tx.err is not None:
                problems.append(f"{label} transaction failed: {tx.err}")
        add("transactions", Status.FAIL if problems else Status.PASS,
            "; ".join(problems) or f"both found at {self.commitment}, both succeeded")
        lock_ok = lock is not None and lock.err is None
        settle_ok = settle is not None and settle.err is None

        # 2. signatures, verified here
        bad = []
        for label, tx in (("lock", lock), ("settlement", settle)):
            if tx is None:
                continue
            if tx.transaction.signatures[0] != tx.signature:
                bad.append(f"{label}: the RPC returned another transaction")
            for i, sig in enumerate(tx.transaction.signatures):
                if not sig.verify(tx.transaction.message.account_keys[i], tx.message_bytes):
                    bad.append(f"{label}: signature {i} does not verify")
        if lock is None and settle is None:
            add("signatures", Status.SKIP, "no transaction to check")
        else:
            add("signatures", Status.FAIL if bad else Status.PASS, "; ".join(bad) or "all signatures verify")

        # 3. lock
        locked = None
        if not lock_ok:
            add("lock", Status.SKIP, "lock transaction unavailable or failed")
        else:
            candidates = [d for d in lock.instructions(program)
                          if d.name == "lock_job" and d.accounts["job"] == job_key]
            if not candidates:
                add("lock", Status.FAIL, f"no lock_job of {program} for job PDA {job_key}")
            else:
                locked = candidates[0]
                worker = locked.args["worker"]
                client_ok = receipt.client is None or locked.accounts["credits"] == pda.credits_address(
                    Pubkey.from_string(receipt.client), program)
                if bytes(locked.args["job_id"]) != receipt.job_id_bytes:
                    add("lock", Status.FAIL, "lock_job's job id differs from the receipt")
                elif worker != receipt.worker_pubkey:
                    add("lock", Status.FAIL, f"job was locked for worker {worker}, the receipt says {receipt.worker}")
                elif not client_ok:
                    add("lock", Status.FAIL, f"job locked credits of another client than {receipt.client}")
                else:
                    add("lock", Status.PASS, f"lock_job for {job_key}, worker {worker}, "
                                             f"{locked.args['amount']} credits")
                report.facts.update(lock_slot=lock.slot, locked=locked.args["amount"], worker=str(worker))

        # 4. settlement
        ended = None
        if not settle_ok:
            add("settlement", Status.SKIP, "settlement transaction unavailable or failed")
        else:
            ends = [d for d in settle.instructions(program)
                    if d.name in ("settle_job", "refund_job") and d.accounts["job"] == job_key]
            if not ends:
                add("settlement", Status.FAIL, f"no settle_job or refund_job of {program} for job PDA {job_key}")
            else:
                ended = ends[0]
                kind = "settled" if ended.name == "settle_job" else "refunded"
                report.facts.update(settlement_slot=settle.slot, outcome=kind)
                order = await self._order(lock, settle) if lock_ok else None
                if kind != receipt.outcome:
                    add("settlement", Status.FAIL,
                        f"the transaction {kind} the job; the receipt says {receipt.outcome}")
                elif order is False:
                    add("settlement", Status.FAIL, "the settlement does not come after the lock")
                else:
                    where = "after the lock" if order else "(lock unavailable: order not checked)"
                    add("settlement", Status.PASS, f"{ended.name} of the same Job {where}")

        # 5. events, own frames only
        add(*self._events(report, program, lock if lock_ok else None, locked, settle if settle_ok else None, ended))

        # 6. payouts
        settled = ended if ended is not None and ended.name == "settle_job" else None
        if settled is None:
            add("payouts", Status.SKIP, "no settlement" if ended is None else "refund: nothing is paid")
        else:
            add(*await self._payouts(report, program, settle, settled, locked, receipt))

        # 7. cost
        expected = expected_cost if expected_cost is not None else receipt.cost
        if settled is None:
            add("cost", Status.SKIP, "no settlement" if ended is None else "refund: no cost")
        else:
            cost = settled.args["cost"]
            report.facts["cost"] = cost
            if locked is not None and cost > locked.args["amount"]:
                add("cost", Status.FAIL, f"cost {cost} exceeds the {locked.args['amount']} locked")
            elif expected is not None and cost != expected:
                add("cost", Status.FAIL, f"cost {cost}, expected {expected}")
            else:
                add("cost", Status.PASS, f"cost {cost}" + (" = expected" if expected is not None else "")
                    + (f" ≤ locked {locked.args['amount']}" if locked is not None else ""))

        # 8. result hash
        if settled is None:
            add("result_hash", Status.SKIP, "no settlement" if ended is None else "refund: no result")
        else:
            onchain = bytes(settled.args["result_hash"]).hex()
            report.facts["result_hash"] = onchain
            wanted = hashlib.sha256(response).hexdigest() if response is not None else receipt.result_hash
            source = "sha256 of the response" if response is not None else "the receipt's result hash"
            if wanted is None:
                add("result_hash", Status.SKIP, "no response or result hash given")
            elif wanted != onchain:
                add("result_hash", Status.FAIL, f"{source} {wanted} ≠ on-chain {onchain}")
            else:
                add("result_hash", Status.PASS, f"{source} matches the on-chain hash")
        return report

    async def _order(self, lock: FetchedTx, settle: FetchedTx) -> bool:
        """Settlement after the lock: a later slot, or later in the same block."""
        if settle.slot != lock.slot:
            return settle.slot > lock.slot
        signatures = await self.block_signatures(lock.slot) or []
        lock_s, settle_s = str(lock.signature), str(settle.signature)
        if lock_s in signatures and settle_s in signatures:
            return signatures.index(settle_s) > signatures.index(lock_s)
        return False

    def _events(self, report: Report, program: Pubkey, lock: FetchedTx | None, locked: DecodedInstruction | None,
                settle: FetchedTx | None, ended: DecodedInstruction | None) -> tuple[str, Status, str]:
        if (lock is None or locked is None) and (settle is None or ended is None):
            return "events", Status.SKIP, "no escrow instruction to compare events with"
        notes = []
        try:
            if lock is not None and locked is not None:
                logs = lock.meta.get("logMessages") or []
                ev = [e for e in parse_events(logs, program) if isinstance(e, JobLocked)]
                match = [e for e in ev if e.job_id == bytes(locked.args["job_id"]) and e.worker == locked.args["worker"]
                         and e.amount == locked.args["amount"]]
                if len(match) != 1:
                    return "events", Status.FAIL, "no JobLocked event of the program matching lock_job"
                notes.append("JobLocked")
            if settle is not None and ended is not None:
                cls = JobSettled if ended.name == "settle_job" else JobRefunded
                ev = [e for e in parse_events(settle.meta.get("logMessages") or [], program) if isinstance(e, cls)]
                match = [e for e in ev if pda.job_address(e.job_id, program) == ended.accounts["job"]]
                if cls is JobSettled:
                    match = [e for e in match if e.cost == ended.args["cost"]
                             and e.result_hash == bytes(ended.args["result_hash"])]
                if len(match) != 1:
                    return "events", Status.FAIL, f"no {cls.__name__} event of the program matching {ended.name}"
                if isinstance(match[0], JobSettled):
                    report.facts.update(fee=match[0].fee, refunded=match[0].refunded)
                notes.append(cls.__name__)
        except LogsTruncated:
            return "events", Status.FAIL, "the transaction log was truncated: events cannot be checked"
        except DecodeError as exc:
            return "events", Status.FAIL, f"unreadable log: {exc}"
        return "events", Status.PASS, " and ".join(notes) + " from the program's own frames"

    async def _payouts(self, report: Report, program: Pubkey, settle: FetchedTx, settled: DecodedInstruction,
                       locked: DecodedInstruction | None, receipt: Receipt) -> tuple[str, Status, str]:
        config = await self.config(program)
        if config is None:
            return "payouts", Status.FAIL, f"no Config of {program} on this cluster"
        worker = locked.args["worker"] if locked is not None else receipt.worker_pubkey
        cost = settled.args["cost"]
        worker_delta, worker_entry = settle.token_delta(settled.accounts["worker_token"])
        fee_delta, treasury_entry = settle.token_delta(settled.accounts["treasury"])
        fee = report.facts.get("fee", fee_delta)
        if cost - fee > 0 and worker_entry is None:
            return "payouts", Status.FAIL, "no token balance for the worker's account"
        if worker_entry is not None and worker_entry.get("owner") != str(worker):
            return "payouts", Status.FAIL, (f"the paid token account is owned by {worker_entry.get('owner')}, "
                                            f"not the worker {worker}")
        if worker_entry is not None and worker_entry.get("mint") != str(config.mint):
            return "payouts", Status.FAIL, f"the paid token account is of mint {worker_entry.get('mint')}"
        if worker_delta != cost - fee:
            return "payouts", Status.FAIL, f"worker received {worker_delta}, expected cost − fee = {cost - fee}"
        if fee_delta != fee or (fee and treasury_entry is not None and treasury_entry.get("mint") != str(config.mint)):
            return "payouts", Status.FAIL, f"treasury received {fee_delta}, expected fee {fee}"
        report.facts.update(worker_paid=worker_delta, fee=fee)
        return "payouts", Status.PASS, f"worker {worker} +{worker_delta}, treasury +{fee_delta}"


async def verify_receipt(rpc_url: str, receipt: Receipt, *, commitment: str = "confirmed",
                         expected_cost: int | None = None, response: bytes | None = None,
                         wait: float = DEFAULT_WAIT) -> Report:
    async with Verifier(rpc_url, commitment=commitment, wait=wait) as verifier:
        return await verifier.verify(receipt, expected_cost=expected_cost, response=response)


async def verify_batch(rpc_url: str, receipts: Sequence[Receipt], *, commitment: str = "confirmed",
                       concurrency: int = 32, fail_fast: bool = False,
                       on_report: Callable[[Report], None] | None = None,
                       wait: float = DEFAULT_WAIT) -> list[Report]:
    """Verify concurrently (at most ``concurrency`` at a time), reusing fetched transactions.
    With ``fail_fast`` the first failed receipt stops the receipts not yet started."""
    semaphore = asyncio.Semaphore(concurrency)
    stop = asyncio.Event()
    results: list[Report | None] = [None] * len(receipts)

    async with Verifier(rpc_url, commitment=commitment, wait=wait) as verifier:
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
