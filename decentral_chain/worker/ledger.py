"""What a worker produced, per job: the basis of every signature it gives.

A job's output is kept as the pieces the worker sent, in order, each with its token count
(a streamed chunk is one token; a whole completion is one piece of ``usage`` tokens). The
worker signs a settlement only for a *prefix* of that output — the whole answer, or the part
a client received before it went away or the gateway crashed — and only for at most that
prefix's tokens: :meth:`Output.prefix` finds it by the result hash the settlement carries.

Outputs are written to SQLite when a job ends, so a worker that restarts can still sign the
settlement of a job it ran (a gateway recovering from a crash asks it); jobs older than the
escrow's settlement deadline can no longer be settled and are pruned.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KEEP_S = 7 * 24 * 3600
RECENT = 4096  # finished outputs also kept in memory (a settlement usually follows at once)


@dataclass
class Output:
    job_id: str
    prompt_tokens: int | None  # the worker's own count (None: its engine did not say)
    pieces: list[tuple[str, int]] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    lock: Any = None  # the Job that pays this worker for it, as read on chain (not stored)

    def add(self, text: str, tokens: int) -> None:
        self.pieces.append((text, tokens))

    @property
    def text(self) -> str:
        return "".join(t for t, _ in self.pieces)

    @property
    def tokens(self) -> int:
        return sum(n for _, n in self.pieces)

    def prefix(self, result_hash: bytes) -> int | None:
        """The tokens of the prefix (whole pieces) whose text hashes to ``result_hash``."""
        digest, tokens = hashlib.sha256(), 0
        if digest.digest() == result_hash:
            return 0
        for text, n in self.pieces:
            digest.update(text.encode())
            tokens += n
            if digest.copy().digest() == result_hash:
                return tokens
        return None


class Ledger:
    def __init__(self, path: Path | str) -> None:
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # survives the process dying, as the gateway's journal
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS outputs (job_id TEXT PRIMARY KEY, prompt_tokens INTEGER, "
            "pieces TEXT, created REAL)"
        )
        self.db.execute("DELETE FROM outputs WHERE created < ?", (time.time() - KEEP_S,))
        self.live: dict[str, Output] = {}
        self.recent: OrderedDict[str, Output] = OrderedDict()

    def start(self, job_id: str, prompt_tokens: int | None) -> Output | None:
        """A new output for the job, or None if this worker already ran it (a job runs once)."""
        if job_id in self.live or job_id in self.recent:
            return None
        if self.db.execute("SELECT 1 FROM outputs WHERE job_id = ?", (job_id,)).fetchall():
            return None
        output = self.live[job_id] = Output(job_id, prompt_tokens)
        return output

    def finish(self, output: Output) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO outputs VALUES (?, ?, ?, ?)",
            (output.job_id, output.prompt_tokens, json.dumps(output.pieces), output.created),
        )
        self.live.pop(output.job_id, None)
        self.recent[output.job_id] = output
        if len(self.recent) > RECENT:
            self.recent.popitem(last=False)

    def get(self, job_id: str) -> Output | None:
        if job_id in self.live:
            return self.live[job_id]
        if job_id in self.recent:
            return self.recent[job_id]
        rows = self.db.execute(
            "SELECT prompt_tokens, pieces, created FROM outputs WHERE job_id = ?", (job_id,)
        ).fetchall()
        if not rows:
            return None
        prompt_tokens, pieces, created = rows[0]
        return Output(job_id, prompt_tokens, [(t, n) for t, n in json.loads(pieces)], created)

    def close(self) -> None:
        self.db.close()
