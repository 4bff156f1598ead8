"""The localnet's ledger: a chain that survives a restart, and a kill.

What is stored is what a validator's ledger holds — genesis and then the blocks and the
transactions in them — not a copy of the state: one SQLite file (WAL), one append-only
``events`` table written as things happen:

    block    a new slot: its slot, parent, blockhash, previous blockhash and time
    tx       a transaction the chain executed (its bytes), in the block it landed in
    account  an account written from outside a transaction (a cheatcode, a faucet refill)

A transaction is written, in its own SQLite transaction, before its RPC answer leaves, so
a SIGKILL loses nothing a client was told landed. At start the genesis accounts are loaded
and every event is replayed in order on a fresh SVM, with each block's own clock: the
same programs on the same inputs give the same accounts, logs, balances and signatures
(the SVM is deterministic), so ``getTransaction``, ``getBlock`` and the slot height come
back as they were. Blockhashes are restored from the blocks, so a transaction signed before
the restart still lands while its blockhash is recent.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Iterator
from pathlib import Path

from solders.account import Account
from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey

LEDGER_FILE = "ledger.sqlite"


def pack_account(account: Account) -> bytes:
    return (
        struct.pack("<QQ?", account.lamports, account.rent_epoch, account.executable)
        + bytes(account.owner)
        + bytes(account.data)
    )


def unpack_account(raw: bytes) -> Account:
    lamports, rent_epoch, executable = struct.unpack_from("<QQ?", raw)
    owner = Pubkey.from_bytes(raw[17:49])
    return Account(lamports, raw[49:], owner, executable, rent_epoch)


class Ledger:
    def __init__(self, directory: Path, *, reset: bool = False) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / LEDGER_FILE
        if reset:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        self.db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # durable against the process dying
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB)")
        self.db.execute("CREATE TABLE IF NOT EXISTS genesis (pubkey BLOB PRIMARY KEY, account BLOB)")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT, "
            "slot INTEGER, a BLOB, b BLOB, c BLOB, d INTEGER, e INTEGER)"
        )

    @property
    def exists(self) -> bool:
        return bool(self.db.execute("SELECT 1 FROM meta WHERE key = 'genesis_hash'").fetchall())

    # ------------------------------------------------------------------ writing

    def write_genesis(
        self, accounts: dict[Pubkey, Account], genesis_hash: Hash, faucet: Keypair, identity: Pubkey
    ) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT OR REPLACE INTO genesis VALUES (?, ?)",
                [(bytes(k), pack_account(a)) for k, a in accounts.items()],
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [
                    ("genesis_hash", bytes(genesis_hash)),
                    ("faucet", bytes(faucet)),
                    ("identity", bytes(identity)),
                    ("time_offset", struct.pack("<d", 0.0)),
                ],
            )

    def block(self, slot: int, parent: int, blockhash: Hash, previous: Hash, block_time: int) -> None:
        self.db.execute(
            "INSERT INTO events (kind, slot, a, b, d, e) VALUES ('block', ?, ?, ?, ?, ?)",
            (slot, bytes(blockhash), bytes(previous), parent, block_time),
        )

    def tx(self, slot: int, raw: bytes) -> None:
        self.db.execute("INSERT INTO events (kind, slot, a) VALUES ('tx', ?, ?)", (slot, raw))

    def account(self, slot: int, key: Pubkey, account: Account) -> None:
        self.db.execute(
            "INSERT INTO events (kind, slot, a, b) VALUES ('account', ?, ?, ?)",
            (slot, bytes(key), pack_account(account)),
        )

    def time_offset(self, offset: float) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('time_offset', ?)", (struct.pack("<d", offset),))

    # ------------------------------------------------------------------ reading

    def meta(self, key: str) -> bytes:
        return self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchall()[0][0]

    def genesis_accounts(self) -> dict[Pubkey, Account]:
        rows = self.db.execute("SELECT pubkey, account FROM genesis").fetchall()
        return {Pubkey.from_bytes(k): unpack_account(a) for k, a in rows}

    def events(self) -> Iterator[tuple]:
        """(kind, slot, ...) in the order they happened."""
        rows = self.db.execute("SELECT kind, slot, a, b, d, e FROM events ORDER BY seq").fetchall()
        for kind, slot, a, b, d, e in rows:
            if kind == "block":
                yield kind, slot, Hash.from_bytes(a), Hash.from_bytes(b), d, e
            elif kind == "tx":
                yield kind, slot, a
            else:
                yield kind, slot, Pubkey.from_bytes(a), unpack_account(b)

    def close(self) -> None:
        self.db.close()
