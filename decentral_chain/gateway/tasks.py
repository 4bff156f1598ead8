"""Async tasks and idempotent requests, kept in the journal's SQLite file.

One row per *recorded request*, owned by the wallet whose key sent it:

* an **async task** (``"async": true``, Relay's mode): ``pending`` when its job is locked and
  the 202 goes out, ``running`` once a worker runs it, then ``completed`` (the completion and
  its receipt headers) or ``failed`` (the error envelope; its job refunded);
* a **synchronous request with an ``Idempotency-Key``**: ``running`` while it runs, then
  ``completed`` with the response as sent (status, body, receipt headers), which a retry with
  the same key gets again — never a second lock or charge. A request that does not complete
  (an error, a stream its client left) is not kept: a retry runs anew, and what the first
  delivered stays charged as usual.

Rows expire ``retention`` seconds after they were made (default 24 h); an expired task is a
404 and an expired key can be used again. A key is bound to the request's body: the same key
with another body is a 400, one still running a 409.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from decentral_chain.gateway.journal import open_db

COLUMNS = (
    "task_id",
    "client",
    "idem_key",
    "body_hash",
    "kind",
    "status",
    "job_id",
    "lock_tx",
    "status_code",
    "body",
    "headers",
    "created",
    "updated",
    "expires",
)


@dataclass(frozen=True, slots=True)
class Task:
    task_id: str
    client: str
    idem_key: str | None
    body_hash: str
    kind: str  # "task" (async) or "sync" (an idempotent synchronous request)
    status: str
    job_id: str | None
    lock_tx: str | None
    status_code: int | None
    body: bytes | None
    headers: dict[str, str]
    created: float
    updated: float
    expires: float


class KeyInUse(Exception):
    """Another request holds this Idempotency-Key (a race on insert)."""


class TaskStore:
    def __init__(self, path: Path | str, retention: float) -> None:
        self.retention = retention
        self.db = open_db(path)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS tasks (task_id TEXT PRIMARY KEY, client TEXT NOT NULL, idem_key TEXT, "
            "body_hash TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL, job_id TEXT, lock_tx TEXT, "
            "status_code INTEGER, body BLOB, headers TEXT, created REAL, updated REAL, expires REAL, "
            "UNIQUE (client, idem_key))"
        )
        self.purge()

    def purge(self, now: float | None = None) -> int:
        """Forget rows past their retention; returns how many."""
        cur = self.db.execute("DELETE FROM tasks WHERE expires < ?", (now or time.time(),))
        return cur.rowcount

    def create(self, client: str, kind: str, body_hash: str, idem_key: str | None) -> Task:
        self.purge()
        now = time.time()
        task_id = ("task_" if kind == "task" else "req_") + secrets.token_hex(12)
        try:
            self.db.execute(
                "INSERT INTO tasks (task_id, client, idem_key, body_hash, kind, status, headers, created, updated, "
                "expires) VALUES (?, ?, ?, ?, ?, ?, '{}', ?, ?, ?)",
                (task_id, client, idem_key, body_hash, kind, "pending" if kind == "task" else "running", now, now,
                 now + self.retention),
            )  # fmt: skip
        except sqlite3.IntegrityError:
            raise KeyInUse(idem_key) from None
        task = self.get(task_id)
        assert task is not None
        return task

    def by_key(self, client: str, idem_key: str) -> Task | None:
        rows = self.db.execute(
            f"SELECT {', '.join(COLUMNS)} FROM tasks WHERE client = ? AND idem_key = ? AND expires >= ?",
            (client, idem_key, time.time()),
        ).fetchall()
        return _task(rows[0]) if rows else None

    def get(self, task_id: str) -> Task | None:
        rows = self.db.execute(
            f"SELECT {', '.join(COLUMNS)} FROM tasks WHERE task_id = ? AND expires >= ?", (task_id, time.time())
        ).fetchall()
        return _task(rows[0]) if rows else None

    def started(self, task_id: str, job_id: str, lock_tx: str) -> None:
        """Its job is locked (a retry on another worker names the new job)."""
        self.db.execute(
            "UPDATE tasks SET job_id = ?, lock_tx = ?, updated = ? WHERE task_id = ?",
            (job_id, lock_tx, time.time(), task_id),
        )

    def running(self, task_id: str) -> None:
        self.db.execute(
            "UPDATE tasks SET status = 'running', updated = ? WHERE task_id = ? AND status = 'pending'",
            (time.time(), task_id),
        )

    def finish(self, task_id: str, status: str, status_code: int, body: bytes, headers: dict[str, str]) -> None:
        assert status in ("completed", "failed")
        job_id = headers.get("x-decentral-job-id")
        self.db.execute(
            "UPDATE tasks SET status = ?, status_code = ?, body = ?, headers = ?, job_id = coalesce(?, job_id), "
            "updated = ? WHERE task_id = ?",
            (status, status_code, body, json.dumps(headers), job_id, time.time(), task_id),
        )

    def finish_pending(self, task_id: str, body: bytes) -> None:
        """The result, kept before its job is settled (the task still running): a restart
        completes the task with it once the job's settlement is known."""
        self.db.execute("UPDATE tasks SET body = ?, updated = ? WHERE task_id = ?", (body, time.time(), task_id))

    def forget(self, task_id: str) -> None:
        """A synchronous request that did not complete: its key may be used again."""
        self.db.execute("DELETE FROM tasks WHERE task_id = ?", (task_id,))

    def unfinished(self) -> list[Task]:
        rows = self.db.execute(
            f"SELECT {', '.join(COLUMNS)} FROM tasks WHERE status IN ('pending', 'running')"
        ).fetchall()
        return [_task(r) for r in rows]

    def close(self) -> None:
        self.db.close()


def _task(row: tuple) -> Task:
    d = dict(zip(COLUMNS, row, strict=True))
    d["headers"] = json.loads(d["headers"] or "{}")
    d["body"] = bytes(d["body"]) if d["body"] is not None else None
    return Task(**d)
