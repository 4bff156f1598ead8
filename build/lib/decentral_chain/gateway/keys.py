"""API keys: each maps to a client wallet; only their sha256 is stored (SQLite)."""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from solders.pubkey import Pubkey

PREFIX = "dc-"


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: str  # the first 8 hex digits of the hash: safe to show
    wallet: Pubkey
    label: str
    created: float
    revoked: bool


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    def __init__(self, path: Path | str) -> None:
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS keys (hash TEXT PRIMARY KEY, wallet TEXT NOT NULL, "
            "label TEXT NOT NULL, created REAL NOT NULL, revoked INTEGER NOT NULL DEFAULT 0)"
        )

    def create(self, wallet: Pubkey, label: str = "") -> str:
        """A new key for ``wallet``; the plaintext is returned once and never stored."""
        key = PREFIX + secrets.token_urlsafe(32)
        self.db.execute("INSERT INTO keys VALUES (?, ?, ?, ?, 0)", (_digest(key), str(wallet), label, time.time()))
        return key

    def wallet(self, key: str) -> Pubkey | None:
        # fetchall, not fetchone: an unfinished statement pins a WAL read snapshot, and a
        # key revoked by `decentral gateway keys revoke` would stay valid in a running gateway
        rows = self.db.execute("SELECT wallet FROM keys WHERE hash = ? AND revoked = 0", (_digest(key),)).fetchall()
        return Pubkey.from_string(rows[0][0]) if rows else None

    def list(self) -> list[KeyRecord]:
        rows = self.db.execute("SELECT hash, wallet, label, created, revoked FROM keys ORDER BY created").fetchall()
        return [KeyRecord(h[:8], Pubkey.from_string(w), lbl, c, bool(r)) for h, w, lbl, c, r in rows]

    def revoke(self, key_id: str) -> bool:
        if len(key_id) < 8:
            return False
        cur = self.db.execute("UPDATE keys SET revoked = 1 WHERE hash LIKE ? AND revoked = 0", (key_id + "%",))
        return cur.rowcount == 1

    def close(self) -> None:
        self.db.close()
