"""The async settlement client: the escrow's instructions and typed reads over JSON-RPC.

    async with EscrowClient("http://127.0.0.1:8899") as escrow:
        sig = await escrow.deposit(owner, 5_000_000)
        pending = await escrow.prepare_lock_job(gateway, client, job_id, 2_000_000, worker)
        hand_out(pending.signature)               # known before it is sent
        await escrow.submit(pending)              # returns at once
        await escrow.confirm(pending.signature, timeout=10)

It talks to any Solana RPC (the localnet, a validator, devnet) through the package's one
JSON-RPC layer (:mod:`decentral_chain.rpc`): concurrent sends, status polls and reads share
batch requests. Only transport errors are retried, with backoff; RPC and program errors are
raised at once, custom escrow codes as :class:`~decentral_chain.errors.ProgramError`. A
transaction whose blockhash expired before it landed is re-signed with a fresh one (a new
signature, which the call returns).
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import time
from collections.abc import Sequence
from dataclasses import dataclass

from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from decentral_chain import instructions as ix
from decentral_chain import pda
from decentral_chain.abi import PROGRAM_ID
from decentral_chain.accounts import Config, Credits, Job
from decentral_chain.errors import (
    BlockhashExpired,
    ConfirmationTimeout,
    DecentralError,
    DecodeError,
    RpcError,
    TransactionFailed,
    transaction_error,
)
from decentral_chain.rpc import COMMITMENTS, CONFIRMED, PROCESSED, SEND_TRANSACTION_PREFLIGHT_FAILURE, JsonRpc


@dataclass(frozen=True, slots=True)
class PreparedTransaction:
    """A signed transaction; its signature is final before it is sent."""

    transaction: VersionedTransaction
    last_valid_block_height: int
    instructions: tuple[Instruction, ...]
    payer: Keypair
    signers: tuple[Keypair, ...]

    @property
    def signature(self) -> Signature:
        return self.transaction.signatures[0]


_PUBKEYS: dict[int, tuple[Keypair, Pubkey]] = {}


def pubkey_of(keypair: Keypair) -> Pubkey:
    """``keypair.pubkey()``, remembered per keypair object: solders derives it again on every
    call (~30 µs, as much as signing), and a gateway signs with the same keypair all day.
    Other signers (a worker's consent, one per settlement) are asked each time, not kept."""
    if not isinstance(keypair, Keypair):
        return keypair.pubkey()
    hit = _PUBKEYS.get(id(keypair))
    if hit is None or hit[0] is not keypair:
        if len(_PUBKEYS) >= 1024:
            _PUBKEYS.clear()
        hit = _PUBKEYS[id(keypair)] = (keypair, keypair.pubkey())
    return hit[1]


class EscrowClient:
    """One lifecycle: ``async with EscrowClient(url) as c`` (cannot be reopened)."""

    def __init__(
        self,
        rpc: str | JsonRpc,
        *,
        program_id: Pubkey = PROGRAM_ID,
        commitment: str = CONFIRMED,
        transport_retries: int = 3,
        backoff: float = 0.1,
        poll_interval: float = 0.05,
        skip_preflight: bool = False,
        blockhash_ttl: float = 2.0,
    ) -> None:
        """``commitment``: processed, confirmed or finalized, for reads and confirmations.
        ``skip_preflight`` sends without simulating first (errors then surface at confirm);
        a fetched blockhash is reused for ``blockhash_ttl`` seconds (it stays valid ~60 s), and
        for up to 10× as long while a newer one is fetched in the background."""
        if commitment not in COMMITMENTS:
            raise ValueError(f"commitment must be one of {', '.join(COMMITMENTS)}")
        self.rpc = JsonRpc(rpc, retries=transport_retries, backoff=backoff) if isinstance(rpc, str) else rpc
        self.program_id = program_id
        self.commitment = commitment
        self.poll_interval = poll_interval
        self.skip_preflight = skip_preflight
        self.blockhash_ttl = blockhash_ttl
        self._state = "new"
        self._config: Config | None = None
        self._blockhash: tuple[float, Hash, int] | None = None  # (fetched at, hash, last valid height)
        self._blockhash_task: asyncio.Task | None = None

    async def __aenter__(self) -> EscrowClient:
        if self._state != "new":
            raise RuntimeError("Cannot reopen a client instance, once it has been closed.")
        self._state = "open"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._state = "closed"
        if self._blockhash_task is not None:
            self._blockhash_task.cancel()
        await self.rpc.aclose()

    # ------------------------------------------------------- send and confirm

    async def prepare(
        self, instructions: Sequence[Instruction], payer: Keypair, signers: Sequence[Keypair] = ()
    ) -> PreparedTransaction:
        """Sign against a recent blockhash; the signature is known from here on.

        A signer other than a Keypair (a worker's consent, perhaps in another process) may
        answer ``sign_message`` with an awaitable; its signature is checked before use."""
        blockhash, last_valid = await self._recent_blockhash()
        payer_key = pubkey_of(payer)
        message = Message.new_with_blockhash(list(instructions), payer_key, blockhash)
        keys = {payer_key: payer}
        for s in signers:
            keys.setdefault(pubkey_of(s), s)
        required = message.account_keys[: message.header.num_required_signatures]
        if all(k in keys for k in required):
            signed = bytes(message)
            signatures = []
            for k in required:
                signature = keys[k].sign_message(signed)
                if inspect.isawaitable(signature):
                    signature = await signature
                    if not signature.verify(k, signed):
                        raise DecodeError(f"the signature given for {k} does not verify over the message")
                signatures.append(signature)
            tx = VersionedTransaction.populate(message, signatures)
        else:  # solders names what is missing
            tx = VersionedTransaction(message, list(keys.values()))
        return PreparedTransaction(tx, last_valid, tuple(instructions), payer, tuple(signers))

    async def recent_blockhash(self) -> tuple[Hash, int]:
        """A recent blockhash and its last valid block height (cached, see ``blockhash_ttl``)."""
        return await self._recent_blockhash()

    async def _recent_blockhash(self, *, fresh: bool = False) -> tuple[Hash, int]:
        age = time.monotonic() - self._blockhash[0] if self._blockhash is not None else None
        if fresh or age is None or age > 10 * self.blockhash_ttl:
            await self._fetch_blockhash()
        elif age > self.blockhash_ttl and (self._blockhash_task is None or self._blockhash_task.done()):
            self._blockhash_task = asyncio.create_task(self._fetch_blockhash(background=True))
        assert self._blockhash is not None
        return self._blockhash[1], self._blockhash[2]

    async def _fetch_blockhash(self, *, background: bool = False) -> None:
        sent = time.monotonic()
        try:
            value = (await self.rpc.call("getLatestBlockhash", [{"commitment": self.commitment}]))["value"]
            latest = (Hash.from_string(value["blockhash"]), int(value["lastValidBlockHeight"]))
        except (DecentralError, KeyError, TypeError, ValueError) as exc:
            if background:  # the cached one is still valid; the next call tries again
                return
            if isinstance(exc, DecentralError):
                raise
            raise DecodeError(f"malformed getLatestBlockhash answer: {exc}") from exc
        if self._blockhash is None or self._blockhash[0] <= sent:
            self._blockhash = (sent, *latest)

    async def submit(self, prepared: PreparedTransaction, *, skip_preflight: bool | None = None) -> Signature:
        """Send without waiting for confirmation. Concurrent submits share one JSON-RPC batch
        request (HTTP round trips dominate the cost of a settlement); each transaction still
        gets its own answer or error."""
        await self.send_raw(bytes(prepared.transaction), skip_preflight=skip_preflight)
        return prepared.signature

    async def send_raw(self, raw: bytes, *, skip_preflight: bool | None = None) -> Signature:
        """Send an already signed transaction as it is (the same bytes, the same signature):
        how a transaction signed and recorded before a crash is sent again."""
        skip = self.skip_preflight if skip_preflight is None else skip_preflight
        try:
            result = await self.rpc.call(
                "sendTransaction",
                [
                    base64.b64encode(raw).decode(),
                    {"encoding": "base64", "skipPreflight": skip, "preflightCommitment": self.commitment},
                ],
            )
        except RpcError as exc:
            data = exc.data if isinstance(exc.data, dict) else {}
            if exc.code == SEND_TRANSACTION_PREFLIGHT_FAILURE and data.get("err") is not None:
                logs = data.get("logs")
                raise transaction_error(data["err"], logs if isinstance(logs, list) else None) from exc
            raise
        try:
            return Signature.from_string(result)
        except (TypeError, ValueError) as exc:
            raise DecodeError(f"sendTransaction answered {result!r}, not a signature") from exc

    async def confirm(
        self,
        signature: Signature,
        *,
        timeout: float = 30.0,
        commitment: str | None = None,
        last_valid_block_height: int | None = None,
    ) -> None:
        """Wait until ``signature`` reaches the commitment; raise its error if it failed.

        The deadline is explicit: :class:`ConfirmationTimeout` after ``timeout`` seconds, or
        :class:`BlockhashExpired` once the chain passed ``last_valid_block_height``.
        """
        wanted = COMMITMENTS.index(commitment or self.commitment)
        deadline = time.monotonic() + timeout
        while True:
            status = await self._status(signature)
            if status is not None:
                if status.get("err") is not None:
                    raise transaction_error(status["err"], None, str(signature))
                level = status.get("confirmationStatus")
                if level not in COMMITMENTS or COMMITMENTS.index(level) >= wanted:
                    return  # an RPC that does not say is taken at its word (older nodes)
            elif last_valid_block_height is not None:
                height = await self.rpc.call("getBlockHeight", [{"commitment": PROCESSED}])
                if isinstance(height, int) and height > last_valid_block_height:
                    raise BlockhashExpired(f"{signature}: blockhash expired before it landed")
            if time.monotonic() >= deadline:
                raise ConfirmationTimeout(signature, timeout)
            await asyncio.sleep(self.poll_interval)

    async def _status(self, signature: Signature) -> dict | None:
        """This signature's status (concurrent confirmations share one batch request)."""
        result = await self.rpc.call("getSignatureStatuses", [[str(signature)]])
        try:
            status = result["value"][0]
        except (KeyError, IndexError, TypeError) as exc:
            raise DecodeError(f"malformed getSignatureStatuses answer: {result!r:.100}") from exc
        return status if isinstance(status, dict) else None

    async def send(
        self,
        instructions: Sequence[Instruction],
        payer: Keypair,
        signers: Sequence[Keypair] = (),
        *,
        confirm: bool = True,
        timeout: float = 30.0,
        skip_preflight: bool | None = None,
    ) -> Signature:
        """Prepare, submit and (by default) confirm; re-sign once if the blockhash expired."""
        prepared = await self.prepare(instructions, payer, signers)
        for attempt in range(2):
            try:
                await self.submit(prepared, skip_preflight=skip_preflight)
                if confirm:
                    await self.confirm(
                        prepared.signature, timeout=timeout, last_valid_block_height=prepared.last_valid_block_height
                    )
                return prepared.signature
            except (BlockhashExpired, TransactionFailed) as exc:
                expired = isinstance(exc, BlockhashExpired) or exc.err == "BlockhashNotFound"
                if not expired or attempt == 1:
                    raise
                await self._recent_blockhash(fresh=True)
                prepared = await self.prepare(instructions, payer, signers)
        raise AssertionError("unreachable")

    # ----------------------------------------------------------------- reads

    async def account_data(self, key: Pubkey, commitment: str | None = None) -> bytes | None:
        """An account's raw data (None when it does not exist), at ``commitment``."""
        result = await self.rpc.call(
            "getAccountInfo", [str(key), {"encoding": "base64", "commitment": commitment or self.commitment}]
        )
        try:
            value = result["value"]
            return None if value is None else base64.b64decode(value["data"][0], validate=True)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise DecodeError(f"malformed getAccountInfo answer for {key}") from exc

    async def get_config(self) -> Config:
        data = await self.account_data(pda.config_address(self.program_id))
        if data is None:
            raise DecentralError(f"escrow {self.program_id} is not initialized on this cluster")
        self._config = Config.from_bytes(data)
        return self._config

    async def get_credits(self, owner: Pubkey) -> Credits | None:
        data = await self.account_data(pda.credits_address(owner, self.program_id))
        return Credits.from_bytes(data) if data else None

    async def get_job(self, job_id: bytes, *, commitment: str | None = None) -> Job | None:
        data = await self.account_data(pda.job_address(job_id, self.program_id), commitment)
        return Job.from_bytes(data) if data else None

    async def token_balance(self, account: Pubkey) -> int:
        result = await self.rpc.call("getTokenAccountBalance", [str(account), {"commitment": self.commitment}])
        try:
            return int(result["value"]["amount"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DecodeError(f"malformed getTokenAccountBalance answer for {account}") from exc

    async def cached_config(self) -> Config:
        """The Config read once (its mint and vault never change; re-read for the rest)."""
        return self._config or await self.get_config()

    async def token_account(self, owner: Pubkey) -> Pubkey:
        """The owner's associated token account of the config mint."""
        return pda.associated_token_address(owner, (await self.cached_config()).mint)

    # ------------------------------------------------------------ instructions

    async def initialize(
        self, admin: Keypair, *, mint: Pubkey, gateway: Pubkey, treasury: Pubkey, fee_bps: int, refund_timeout: int
    ) -> Signature:
        return await self.send(
            [
                ix.build_initialize(
                    admin=admin.pubkey(),
                    mint=mint,
                    gateway=gateway,
                    treasury=treasury,
                    fee_bps=fee_bps,
                    refund_timeout=refund_timeout,
                    program_id=self.program_id,
                )
            ],
            admin,
        )

    async def deposit(self, owner: Keypair, amount: int, *, source: Pubkey | None = None) -> Signature:
        source = source or await self.token_account(owner.pubkey())
        return await self.send(
            [ix.build_deposit(owner=owner.pubkey(), source=source, amount=amount, program_id=self.program_id)], owner
        )

    async def withdraw(self, owner: Keypair, amount: int, *, destination: Pubkey | None = None) -> Signature:
        if await self.get_credits(owner.pubkey()) is None:
            raise DecentralError(f"{owner.pubkey()} has no credits: deposit first")
        destination = destination or await self.token_account(owner.pubkey())
        return await self.send(
            [
                ix.build_withdraw(
                    owner=owner.pubkey(), destination=destination, amount=amount, program_id=self.program_id
                )
            ],
            owner,
        )

    def _lock_ix(self, gateway: Keypair, client: Pubkey, job_id: bytes, amount: int, worker: Pubkey) -> Instruction:
        return ix.build_lock_job(
            gateway=pubkey_of(gateway),
            client=client,
            job_id=job_id,
            amount=amount,
            worker=worker,
            program_id=self.program_id,
        )

    async def prepare_lock_job(
        self, gateway: Keypair, client: Pubkey, job_id: bytes, amount: int, worker: Pubkey
    ) -> PreparedTransaction:
        return await self.prepare([self._lock_ix(gateway, client, job_id, amount, worker)], gateway)

    async def lock_job(
        self, gateway: Keypair, client: Pubkey, job_id: bytes, amount: int, worker: Pubkey, *, confirm: bool = True
    ) -> Signature:
        return await self.send([self._lock_ix(gateway, client, job_id, amount, worker)], gateway, confirm=confirm)

    async def settle_job(
        self,
        gateway: Keypair,
        job_id: bytes,
        *,
        worker: Keypair,
        cost: int,
        result_hash: bytes,
        prompt_tokens: int,
        completion_tokens: int,
        worker_token: Pubkey | None = None,
        client: Pubkey | None = None,
        payer: Pubkey | None = None,
        nonce: int | None = None,
        confirm: bool = True,
    ) -> Signature:
        """Pay the job's worker cost - fee, co-signed by that worker (``worker``: its keypair,
        or a signer that holds it). Client, worker account, payer and the lifecycle nonce are
        read from the Job unless given (the program checks them all anyway)."""
        cfg = await self.cached_config()
        if client is None or payer is None or worker_token is None or nonce is None:
            job = await self.get_job(job_id)
            if job is None:
                raise DecentralError(f"job {job_id.hex()} is not open")
            client, payer = client or job.client, payer or job.payer
            nonce = job.nonce if nonce is None else nonce
            worker_token = worker_token or pda.associated_token_address(job.worker, cfg.mint)
        settle = ix.build_settle_job(
            gateway=pubkey_of(gateway),
            client=client,
            job_id=job_id,
            worker_token=worker_token,
            treasury=cfg.treasury,
            payer=payer,
            cost=cost,
            result_hash=result_hash,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            worker=pubkey_of(worker),
            nonce=nonce,
            program_id=self.program_id,
        )
        return await self.send([settle], gateway, [worker], confirm=confirm)

    async def refund_job(self, authority: Keypair, job_id: bytes, *, confirm: bool = True) -> Signature:
        """Refund by the gateway, or by the client once the job expired."""
        job = await self.get_job(job_id)
        if job is None:
            raise DecentralError(f"job {job_id.hex()} is not open")
        return await self.send(
            [
                ix.build_refund_job(
                    authority=authority.pubkey(),
                    client=job.client,
                    job_id=job_id,
                    payer=job.payer,
                    program_id=self.program_id,
                )
            ],
            authority,
            confirm=confirm,
        )
