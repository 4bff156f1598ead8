"""A single-node chain around LiteSVM: what a validator adds to an SVM.

* Slots advance (``tick``; the server calls it every 400 ms) and each slot gets a new
  blockhash. A transaction may use any of the last 150 blockhashes, as on a validator;
  LiteSVM itself only accepts the latest one, so its check is off and ours is on.
* The clock sysvar follows the slot and the wall clock, so ``blockTime`` and the program's
  ``unix_timestamp`` are real.
* Every processed transaction is recorded with its slot, time, pre/post lamport and token
  balances, logs and inner instructions — what ``getTransaction`` and ``getBlock`` serve.
* Commitment is modelled as on a cluster: a transaction is *processed* in the slot that
  executes it, *confirmed* once that slot closed (one slot later) and *finalized*
  ``finality_slots`` slots later (default 32, as on mainnet). Reads that take a commitment
  (``getTransaction``, ``getBlock``, ``getSignatureStatuses``, ...) answer accordingly.
  There are no forks, so nothing confirmed is ever rolled back.
* Accounts touched by genesis or by any transaction are indexed, so ``getProgramAccounts``
  and ``getTokenAccountsByOwner`` can scan them (LiteSVM cannot enumerate accounts).

Failures of the SVM are values here (:class:`TxOutcome`); the JSON-RPC layer turns them
into Solana's error shapes in one place.
"""

from __future__ import annotations

import secrets
import struct
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from solders.account import Account
from solders.clock import Clock
from solders.hash import Hash
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata
from solders.transaction_status import TransactionErrorFieldless, TransactionErrorType

from decentral_chain.abi import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID
from decentral_chain.localnet.ledger import Ledger

_REJECTED_BEFORE_EXECUTION = (
    TransactionErrorFieldless.AlreadyProcessed,
    TransactionErrorFieldless.SignatureFailure,
    TransactionErrorFieldless.AccountNotFound,
    TransactionErrorFieldless.InsufficientFundsForFee,
    TransactionErrorFieldless.AccountLoadedTwice,
)
SLOT_MS = 400
FINALITY_SLOTS = 32  # slots from processed to finalized (mainnet: ~32, i.e. ~13 s)
COMMITMENTS = ("processed", "confirmed", "finalized")
MAX_BLOCKHASH_AGE = 150  # slots, as MAX_PROCESSING_AGE on a validator
LAMPORTS_PER_SIGNATURE = 5_000
FAUCET_LAMPORTS = 10**14  # 100,000 SOL, refilled from LiteSVM's own reserve when short
SLOTS_PER_EPOCH = 8_192  # a short epoch keeps getLeaderSchedule small (solana-test-validator: 432,000)
TOKEN_PROGRAMS = (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID)


@dataclass(frozen=True, slots=True)
class TokenBalance:
    account_index: int
    mint: Pubkey
    owner: Pubkey
    program_id: Pubkey
    amount: int
    decimals: int


@dataclass(frozen=True, slots=True)
class TxRecord:
    """One processed transaction, as getTransaction reports it."""

    signature: Signature
    transaction: VersionedTransaction
    slot: int
    block_time: int
    err: TransactionErrorType | None
    fee: int
    pre_balances: list[int]
    post_balances: list[int]
    pre_token_balances: list[TokenBalance]
    post_token_balances: list[TokenBalance]
    logs: list[str]
    inner_instructions: list  # per top-level instruction: list[InnerInstruction]
    compute_units: int
    return_data: object | None


@dataclass(frozen=True, slots=True)
class TxOutcome:
    """The result of processing or simulating: a record, or a failure before execution."""

    record: TxRecord | None
    rejected: TransactionErrorType | None = None  # never executed (e.g. BlockhashNotFound)
    logs: list[str] = field(default_factory=list)
    units: int = 0
    # a simulation's effects (nothing committed): accounts after it, CPIs, return data
    post_accounts: dict = field(default_factory=dict)
    inner_instructions: list = field(default_factory=list)
    return_data: object | None = None


@dataclass
class Block:
    slot: int
    parent_slot: int
    blockhash: Hash
    previous_blockhash: Hash
    block_time: int
    signatures: list[Signature] = field(default_factory=list)


class LocalChain:
    """LiteSVM + slots, blockhash ages, history and an account index. Thread-safe."""

    def __init__(
        self,
        svm: LiteSVM | None = None,
        *,
        genesis_hash: Hash | None = None,
        finality_slots: int = FINALITY_SLOTS,
        slot_ms: int = SLOT_MS,
    ) -> None:
        if finality_slots < 1 or slot_ms < 1:
            raise ValueError("finality_slots and slot_ms must be ≥ 1")
        self.finality_slots = finality_slots
        self.slot_ms = slot_ms
        self.svm = svm or LiteSVM()
        self.svm.with_blockhash_check(False)
        self.lock = threading.RLock()
        self.genesis_hash = genesis_hash or Hash.from_bytes(secrets.token_bytes(32))  # one per genesis
        self.identity = Pubkey.new_unique()  # the node's identity: leader of every slot
        self.faucet = Keypair()  # requestAirdrop pays from here
        self.rpc_address: str | None = None  # "host:port", set by whoever serves it
        self.pubsub_address: str | None = None
        self.started = time.time()
        self.slot = 0
        self.blocks: OrderedDict[int, Block] = OrderedDict()
        self.recent: deque[tuple[Hash, int]] = deque(maxlen=MAX_BLOCKHASH_AGE + 1)  # (hash, slot)
        self.history: dict[Signature, TxRecord] = {}
        self.by_address: dict[Pubkey, list[Signature]] = {}
        self.known: set[Pubkey] = set()
        self.transaction_count = 0
        #: Surfpool's clock cheatcodes: seconds added to the wall clock (time travel), and
        #: while paused no slot is produced and the clock stands still
        self.time_offset = 0.0
        self.paused_at: float | None = None
        #: accounts as genesis left them: what surfnet_resetAccount restores
        self.genesis_accounts: dict[Pubkey, Account] = {}
        #: where blocks, transactions and outside account writes are recorded (see ledger.py)
        self.ledger: Ledger | None = None
        #: called with each TxRecord / each new slot (from the thread that caused it)
        self.tx_listeners: list = []
        self.slot_listeners: list = []
        self._open_block(self.genesis_hash, int(self.started))

    @classmethod
    def from_genesis(cls, genesis: object, **options: int) -> LocalChain:
        """Wrap a :class:`~decentral_chain.localnet.genesis.Genesis` chain, indexing its accounts."""
        chain = cls(genesis.svm, **options)  # type: ignore[attr-defined, arg-type]
        chain.known.update(genesis.addresses())  # type: ignore[attr-defined]
        chain.snapshot_genesis()
        return chain

    def snapshot_genesis(self) -> None:
        """Every indexed account as it is now becomes genesis: what surfnet_resetAccount
        restores and what a new ledger starts from."""
        with self.lock:
            self.genesis_accounts = {k: a for k in self.known if (a := self.get_account(k)) is not None}

    # ------------------------------------------------------------------ slots

    def _open_block(self, previous: Hash, now: int, parent: int = 0) -> None:
        blockhash = self.svm.latest_blockhash()
        self.blocks[self.slot] = Block(self.slot, parent, blockhash, previous, now)
        self.recent.append((blockhash, self.slot))
        if self.ledger is not None:
            self.ledger.block(self.slot, parent, blockhash, previous, now)
        self._set_clock(self.slot, now)

    def _set_clock(self, slot: int, unix_timestamp: int) -> None:
        """The clock sysvar the programs read: this slot, its epoch, this time."""
        epoch = slot // SLOTS_PER_EPOCH
        self.svm.set_clock(
            Clock(
                slot=slot,
                epoch_start_timestamp=self.svm.get_clock().epoch_start_timestamp,
                epoch=epoch,
                leader_schedule_epoch=epoch + 1,
                unix_timestamp=unix_timestamp,
            )
        )

    def now(self) -> float:
        """The chain's clock: the wall clock, moved by time travel, standing while paused."""
        return (self.paused_at if self.paused_at is not None else time.time()) + self.time_offset

    def tick(self, *, to_slot: int | None = None) -> int:
        """Close the current slot and open the next one (or ``to_slot``: the slots between
        pass without blocks) with a fresh blockhash. Nothing happens while the clock is paused."""
        with self.lock:
            if self.paused_at is not None and to_slot is None:
                return self.slot
            parent, previous = self.slot, self.blocks[self.slot].blockhash
            self.slot = self.slot + 1 if to_slot is None else to_slot
            self.svm.expire_blockhash()
            while self.recent and self.recent[0][1] < self.slot - MAX_BLOCKHASH_AGE:
                self.recent.popleft()  # older than 150 slots: expired
            self._open_block(previous, int(self.now()), parent)
            slot = self.slot
        for listener in self.slot_listeners:
            listener(slot)
        return slot

    def time_travel(self, *, slot: int | None = None, timestamp: float | None = None) -> None:
        """Move the chain forward to ``slot`` (its clock by the slots' time) or to the unix
        ``timestamp`` (its slot by as many slots): Surfpool's surfnet_timeTravel. Never back."""
        with self.lock:
            now = self.now()
            if slot is not None:
                if slot < self.slot:
                    raise ValueError(f"slot {slot} is in the past (the chain is at slot {self.slot})")
                seconds = (slot - self.slot) * self.slot_ms / 1000
            else:
                assert timestamp is not None
                if timestamp < now:
                    raise ValueError(f"timestamp {timestamp:.0f} is in the past (the chain's clock is {now:.0f})")
                seconds = timestamp - now
                slot = self.slot + int(seconds * 1000 // self.slot_ms)
            self.time_offset += seconds
            if self.ledger is not None:
                self.ledger.time_offset(self.time_offset)
            if slot > self.slot:
                self.tick(to_slot=slot)
            else:  # the same slot, a later time
                self._set_clock(self.slot, int(self.now()))

    def pause(self) -> None:
        with self.lock:
            if self.paused_at is None:
                self.paused_at = time.time()

    def resume(self) -> None:
        """The clock goes on from where it stood (the pause took no chain time)."""
        with self.lock:
            if self.paused_at is not None:
                self.time_offset -= time.time() - self.paused_at
                self.paused_at = None
                if self.ledger is not None:
                    self.ledger.time_offset(self.time_offset)

    # ------------------------------------------------------------ commitment

    def status(self, slot: int) -> str:
        """The commitment a transaction or block of ``slot`` has reached."""
        if self.slot - slot >= self.finality_slots:
            return "finalized"
        return "confirmed" if self.slot > slot else "processed"

    def reached(self, slot: int, commitment: str) -> bool:
        """Whether ``slot`` has reached ``commitment`` (processed < confirmed < finalized)."""
        return COMMITMENTS.index(self.status(slot)) >= COMMITMENTS.index(commitment)

    def slot_at(self, commitment: str) -> int:
        """The newest slot at ``commitment`` (the current one, the last closed, the root)."""
        if commitment == "processed":
            return self.slot
        if commitment == "confirmed":
            return max(self.slot - 1, 0)
        return max(self.slot - self.finality_slots, 0)

    @property
    def latest_blockhash(self) -> tuple[Hash, int]:
        """The newest blockhash and the last block height at which it is valid."""
        with self.lock:
            blockhash, slot = self.recent[-1]
            return blockhash, slot + MAX_BLOCKHASH_AGE

    def blockhash_valid(self, blockhash: Hash) -> bool:
        with self.lock:
            return any(h == blockhash for h, _ in self.recent)

    # ------------------------------------------------------------- accounts

    def get_account(self, key: Pubkey) -> Account | None:
        with self.lock:
            acc = self.svm.get_account(key)
        if acc is None or (acc.lamports == 0 and len(acc.data) == 0 and acc.owner == Pubkey.default()):
            return None  # closed accounts disappear, as on a validator
        return acc

    def set_account(self, key: Pubkey, account: Account) -> None:
        with self.lock:
            self.svm.set_account(key, account)
            self.known.add(key)
            if self.ledger is not None:
                self.ledger.account(self.slot, key, account)

    def airdrop(self, key: Pubkey, lamports: int) -> TxOutcome:
        """A real transfer from the faucet, recorded like any transaction (so clients can
        confirm it and fetch it)."""
        from solders.message import Message
        from solders.system_program import TransferParams, transfer

        with self.lock:
            faucet = self.faucet.pubkey()
            if (self.svm.get_balance(faucet) or 0) < lamports + LAMPORTS_PER_SIGNATURE:
                refill = self.svm.airdrop(faucet, max(FAUCET_LAMPORTS, lamports + LAMPORTS_PER_SIGNATURE))
                if isinstance(refill, FailedTransactionMetadata):
                    return TxOutcome(None, refill.err())
                if self.ledger is not None:
                    self.ledger.account(self.slot, faucet, self.svm.get_account(faucet))
            msg = Message.new_with_blockhash(
                [transfer(TransferParams(from_pubkey=faucet, to_pubkey=key, lamports=lamports))],
                faucet,
                self.recent[-1][0],
            )
            return self.process(VersionedTransaction(msg, [self.faucet]))

    def accounts(self) -> list[tuple[Pubkey, Account]]:
        """Every indexed account that still exists."""
        with self.lock:
            keys = sorted(self.known, key=bytes)
        return [(k, a) for k in keys if (a := self.get_account(k)) is not None]

    # --------------------------------------------------------- transactions

    def process(self, tx: VersionedTransaction) -> TxOutcome:
        """Execute and record ``tx`` (sigverify and the 150-slot blockhash age enforced); with
        a ledger, it is written there before anyone is told."""
        with self.lock:
            if not self.blockhash_valid(tx.message.recent_blockhash):
                return TxOutcome(None, TransactionErrorFieldless.BlockhashNotFound)
            outcome = self._execute(tx)
            if outcome.record is not None and self.ledger is not None:
                self.ledger.tx(self.slot, bytes(tx))
        if outcome.record is not None:
            for listener in self.tx_listeners:
                listener(outcome.record)
        return outcome

    def _execute(self, tx: VersionedTransaction) -> TxOutcome:
        keys = list(tx.message.account_keys)
        pre = [self._lamports(k) for k in keys]
        pre_tokens = self._token_balances(keys)
        result = self.svm.send_transaction(tx)
        failed = isinstance(result, FailedTransactionMetadata)
        meta = result.meta() if failed else result
        err = result.err() if failed else None
        if failed and err in _REJECTED_BEFORE_EXECUTION:
            # no fee, nothing recorded, as in a validator's banking stage
            return TxOutcome(None, err, list(meta.logs()), meta.compute_units_consumed())
        record = TxRecord(
            signature=tx.signatures[0],
            transaction=tx,
            slot=self.slot,
            block_time=self.blocks[self.slot].block_time,
            err=err,
            fee=LAMPORTS_PER_SIGNATURE * len(tx.signatures),
            pre_balances=pre,
            post_balances=[self._lamports(k) for k in keys],
            pre_token_balances=pre_tokens,
            post_token_balances=self._token_balances(keys),
            logs=list(meta.logs()),
            inner_instructions=list(meta.inner_instructions()),
            compute_units=meta.compute_units_consumed(),
            return_data=meta.return_data(),
        )
        self.known.update(keys)
        self.history[record.signature] = record
        self.blocks[self.slot].signatures.append(record.signature)
        self.transaction_count += 1
        for k in keys:
            self.by_address.setdefault(k, []).append(record.signature)
        return TxOutcome(record)

    # ---------------------------------------------------------------- ledger

    def attach_ledger(self, ledger: Ledger) -> None:
        """Start recording into a new ledger: genesis (:meth:`snapshot_genesis`) and this block."""
        with self.lock:
            ledger.write_genesis(self.genesis_accounts, self.genesis_hash, self.faucet, self.identity)
            block = self.blocks[self.slot]
            ledger.block(block.slot, block.parent_slot, block.blockhash, block.previous_blockhash, block.block_time)
            self.ledger = ledger

    @classmethod
    def from_ledger(cls, ledger: Ledger, **options: int) -> LocalChain:
        """The chain a ledger recorded: genesis, then every block, transaction and account
        write replayed in order on a fresh SVM, each block with its own clock."""
        genesis = ledger.genesis_accounts()
        svm = LiteSVM()
        # data accounts first: LiteSVM loads a program when its account is set, and an
        # upgradeable program's ProgramData must already be there
        for key, account in sorted(genesis.items(), key=lambda item: item[1].executable):
            svm.set_account(key, account)
        chain = cls(svm, genesis_hash=Hash.from_bytes(ledger.meta("genesis_hash")), **options)
        chain.faucet = Keypair.from_bytes(ledger.meta("faucet"))
        chain.identity = Pubkey.from_bytes(ledger.meta("identity"))
        chain.genesis_accounts = dict(genesis)
        chain.known.update(genesis)
        chain.blocks.clear()
        chain.recent.clear()
        for event in ledger.events():
            if event[0] == "block":
                _, slot, blockhash, previous, parent, block_time = event
                if chain.blocks:
                    svm.expire_blockhash()
                chain.slot = slot
                chain.blocks[slot] = Block(slot, parent, blockhash, previous, block_time)
                chain.recent.append((blockhash, slot))
                chain._set_clock(slot, block_time)
            elif event[0] == "tx":
                chain._execute(VersionedTransaction.from_bytes(event[2]))
            else:
                _, _, key, account = event
                svm.set_account(key, account)
                chain.known.add(key)
        svm.expire_blockhash()  # the next block's hash is a new one
        chain.time_offset = struct.unpack("<d", ledger.meta("time_offset"))[0]
        chain.ledger = ledger
        return chain

    def simulate(self, tx: VersionedTransaction, *, sig_verify: bool = True) -> TxOutcome:
        """Run ``tx`` without committing anything (signatures unchecked unless ``sig_verify``)."""
        with self.lock:
            if not self.blockhash_valid(tx.message.recent_blockhash):
                return TxOutcome(None, TransactionErrorFieldless.BlockhashNotFound)
            self.svm.with_sigverify(sig_verify)
            try:
                result = self.svm.simulate_transaction(tx)
            finally:
                self.svm.with_sigverify(True)
        meta = result.meta()
        effects = {"inner_instructions": list(meta.inner_instructions()), "return_data": meta.return_data()}
        if isinstance(result, FailedTransactionMetadata):
            return TxOutcome(None, result.err(), list(meta.logs()), meta.compute_units_consumed(), **effects)
        return TxOutcome(
            None,
            None,
            list(meta.logs()),
            meta.compute_units_consumed(),
            post_accounts=dict(result.post_accounts()),
            **effects,
        )

    def _lamports(self, key: Pubkey) -> int:
        acc = self.svm.get_account(key)
        return acc.lamports if acc is not None else 0

    def mint_decimals(self, mint: Pubkey) -> int | None:
        """A token mint's decimals (None if ``mint`` is not an initialized mint)."""
        acc = self.get_account(mint)
        if acc is None or acc.owner not in TOKEN_PROGRAMS or len(acc.data) < 46 or bytes(acc.data)[45] != 1:
            return None
        return bytes(acc.data)[44]

    def token_balances(self, keys: list[Pubkey]) -> list[TokenBalance]:
        """Token balances (with owner, mint, decimals) of those keys that are token accounts."""
        with self.lock:
            return self._token_balances(keys)

    def _token_balances(self, keys: list[Pubkey]) -> list[TokenBalance]:
        out = []
        for i, key in enumerate(keys):
            acc = self.svm.get_account(key)
            if acc is None or acc.owner not in TOKEN_PROGRAMS or len(acc.data) < 165:
                continue
            data = bytes(acc.data)
            if data[108] == 0:  # uninitialized
                continue
            mint = Pubkey.from_bytes(data[:32])
            mint_acc = self.svm.get_account(mint)
            decimals = bytes(mint_acc.data)[44] if mint_acc is not None and len(mint_acc.data) >= 45 else 0
            out.append(
                TokenBalance(
                    i, mint, Pubkey.from_bytes(data[32:64]), acc.owner, struct.unpack_from("<Q", data, 64)[0], decimals
                )
            )
        return out
