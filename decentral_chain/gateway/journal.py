"""The job journal (SQLite, WAL): each job's state is written before acting on it.

    locked → settling → settled
           ↘ refunding → refunded
           ↘ rejected              (the chain refused the lock: nothing was locked)

``locked`` is written when the lock is signed, before it is sent; the Job's lifecycle nonce
is added once the lock has landed (read from the Job account).

While a stream runs, the text handed to the client and its token count are written after
each chunk (``delivered_*``): a crash mid-stream is settled for exactly that, with the
worker's signature, or refunded when nothing was delivered.

``settling`` is written once inference finished and the settlement is signed: cost, result
hash, token counts, the settlement's signature and bytes, in one write, before the answer
goes out. A row in a non-final state after a crash names exactly what is owed: settle with
the recorded result (re-sending the very transaction the client was told about, while its
blockhash lives) if it has one, otherwise refund. (``inferred`` — a result without a signed
settlement — is only found in journals of earlier versions; it is settled the same way.)
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FINAL = ("settled", "refunded", "rejected")
NOTIFIED = ("settled", "refunded", "refunding", "rejected")
logger = logging.getLogger(__name__)
COLUMNS = (
    "job_id",
    "client",
    "worker",
    "amount",
    "state",
    "lock_tx",
    "settlement_tx",
    "cost",
    "result_hash",
    "prompt_tokens",
    "completion_tokens",
    "created",
    "updated",
    "error",
    "settlement_raw",
    "nonce",
    "delivered_tokens",
    "delivered_text",
)


def open_db(path: Path | str) -> sqlite3.Connection:
    """The journal's SQLite file (jobs, tasks, webhooks): autocommit, WAL, shared across threads."""
    db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


class Journal:
    #: called as listener(job_id, state) after a job enters settled / refunded / refunding /
    #: rejected (the webhooks' job events)
    listener: Callable[[str, str], None] | None = None

    def __init__(self, path: Path | str) -> None:
        self.db = open_db(path)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS jobs (job_id TEXT PRIMARY KEY, client TEXT, worker TEXT, "
            "amount INTEGER, state TEXT, lock_tx TEXT, settlement_tx TEXT, cost INTEGER, "
            "result_hash TEXT, prompt_tokens INTEGER, completion_tokens INTEGER, created REAL, "
            "updated REAL, error TEXT, settlement_raw BLOB)"
        )
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(jobs)").fetchall()}
        if "settlement_raw" not in columns:  # a journal written before settlements were kept signed
            self.db.execute("ALTER TABLE jobs ADD COLUMN settlement_raw BLOB")
        if "nonce" not in columns:  # a journal written before Jobs had lifecycle nonces
            self.db.execute("ALTER TABLE jobs ADD COLUMN nonce INTEGER")
        if "delivered_tokens" not in columns:  # a journal written before streams were journaled
            self.db.execute("ALTER TABLE jobs ADD COLUMN delivered_tokens INTEGER")
            self.db.execute("ALTER TABLE jobs ADD COLUMN delivered_text TEXT")

    def open(
        self, job_id: str, client: str, worker: str, amount: int, lock_tx: str, prompt_tokens: int | None = None
    ) -> None:
        now = time.time()
        self.db.execute(
            "INSERT INTO jobs (job_id, client, worker, amount, state, lock_tx, prompt_tokens, created, updated) "
            "VALUES (?, ?, ?, ?, 'locked', ?, ?, ?, ?)",
            (job_id, client, worker, amount, lock_tx, prompt_tokens, now, now),
        )

    def deliver(self, job_id: str, piece: str, tokens: int) -> None:
        """A stream handed ``piece`` to its client, ``tokens`` in all so far (the state is
        unchanged): appended, so each chunk costs its own length, not the whole text's."""
        self.db.execute(
            "UPDATE jobs SET delivered_text = coalesce(delivered_text, '') || ?, delivered_tokens = ? WHERE job_id = ?",
            (piece, tokens, job_id),
        )

    def update(self, job_id: str, state: str, **fields: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        notify = state in NOTIFIED and self.listener is not None
        before = self.db.execute("SELECT state FROM jobs WHERE job_id = ?", (job_id,)).fetchall() if notify else []
        self.db.execute(
            f"UPDATE jobs SET state = ?, updated = ?{', ' + sets if sets else ''} WHERE job_id = ?",
            (state, time.time(), *fields.values(), job_id),
        )
        if notify and before and before[0][0] != state:
            assert self.listener is not None
            try:
                self.listener(job_id, state)
            except Exception:  # an event that cannot be queued must not undo the job's state
                logger.exception("job %s: %s event not queued", job_id, state)

    def get(self, job_id: str) -> dict[str, Any] | None:
        # fetchall: an unfinished statement would pin a stale WAL snapshot
        rows = self.db.execute(f"SELECT {', '.join(COLUMNS)} FROM jobs WHERE job_id = ?", (job_id,)).fetchall()
        return dict(zip(COLUMNS, rows[0], strict=True)) if rows else None

    def open_jobs(self) -> list[dict[str, Any]]:
        rows = self.db.execute(
            f"SELECT {', '.join(COLUMNS)} FROM jobs WHERE state NOT IN ({', '.join('?' for _ in FINAL)})", FINAL
        ).fetchall()
        return [dict(zip(COLUMNS, row, strict=True)) for row in rows]

    def close(self) -> None:
        self.db.close()
