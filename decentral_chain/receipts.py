"""Receipts: what the gateway returns and stores, and what an auditor verifies.

A receipt names a job (UUID), its lock transaction, its settlement (or refund)
transaction, the worker, and optionally the client, the job's lifecycle nonce, the cost,
the result hash and the program id. It loads from gateway response headers, a JSON file or
JSON Lines. A receipt is a claim: the verifier checks it against the auditor's program, and
a receipt naming another program fails.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from solders.pubkey import Pubkey
from solders.signature import Signature

from decentral_chain.errors import DecodeError

HEADER_JOB_ID = "x-decentral-job-id"
HEADER_LOCK_TX = "x-decentral-tx-signature"
HEADER_SETTLEMENT_TX = "x-decentral-settlement-tx"
HEADER_WORKER = "x-decentral-worker"
HEADER_COST = "x-decentral-cost"
HEADER_RESULT_HASH = "x-decentral-result-hash"
HEADER_NONCE = "x-decentral-job-nonce"


class Receipt(BaseModel):
    """An on-chain receipt of one job."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    job_id: uuid.UUID
    """The job's 16-byte UUID (the Job PDA is ["job", job_id])."""
    lock_tx: str
    """Signature of the transaction that ran lock_job."""
    settlement_tx: str
    """Signature of the transaction that ran settle_job (or refund_job)."""
    worker: str
    """Wallet the job was bound to at lock, and paid at settlement."""
    outcome: Literal["settled", "refunded"] = "settled"
    """What the settlement transaction claims to be."""
    client: str | None = None
    """The client whose credits were locked, when known."""
    nonce: int | None = Field(default=None, ge=1, lt=2**64)
    """The Job's lifecycle nonce (the client's lock counter at lock), when known."""
    cost: int | None = Field(default=None, ge=0)
    """Credits charged (micro-USDC), when known."""
    result_hash: str | None = None
    """sha256 of the response body (64 hex digits), when known."""
    program_id: str | None = None
    """The escrow program the receipt claims; the verifier checks it against its own."""

    @field_validator("lock_tx", "settlement_tx")
    @classmethod
    def _signature(cls, value: str) -> str:
        try:
            Signature.from_string(value)
        except ValueError:
            raise ValueError(f"not a base-58 transaction signature: {value!r}") from None
        return value

    @field_validator("worker", "client", "program_id")
    @classmethod
    def _pubkey(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                Pubkey.from_string(value)
            except ValueError:
                raise ValueError(f"not a base-58 public key: {value!r}") from None
        return value

    @field_validator("result_hash")
    @classmethod
    def _hash(cls, value: str | None) -> str | None:
        if value is not None and (len(value) != 64 or any(c not in "0123456789abcdef" for c in value.lower())):
            raise ValueError("result_hash must be 64 hex digits")
        return value.lower() if value else value

    # typed views
    @property
    def job_id_bytes(self) -> bytes:
        return self.job_id.bytes

    @property
    def lock_signature(self) -> Signature:
        return Signature.from_string(self.lock_tx)

    @property
    def settlement_signature(self) -> Signature:
        return Signature.from_string(self.settlement_tx)

    @property
    def worker_pubkey(self) -> Pubkey:
        return Pubkey.from_string(self.worker)

    @property
    def program(self) -> Pubkey | None:
        return Pubkey.from_string(self.program_id) if self.program_id is not None else None

    # loaders
    @staticmethod
    def parse(data: Mapping | str | bytes) -> Receipt:
        """From a mapping or JSON text; a malformed receipt is a DecodeError (one line)."""
        try:
            if isinstance(data, (str, bytes)):
                return Receipt.model_validate_json(data)
            return Receipt.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "receipt"
            raise DecodeError(f"invalid receipt: {where}: {first['msg']}") from None

    @staticmethod
    def from_headers(headers: Mapping[str, str], **extra: object) -> Receipt:
        """From a gateway response's x-decentral-* headers (names case-insensitive)."""
        lower = {k.lower(): v for k, v in headers.items()}
        missing = [h for h in (HEADER_JOB_ID, HEADER_LOCK_TX, HEADER_SETTLEMENT_TX, HEADER_WORKER) if h not in lower]
        if missing:
            raise DecodeError(f"invalid receipt: missing header {missing[0]}")
        fields: dict[str, object] = {
            "job_id": lower[HEADER_JOB_ID],
            "lock_tx": lower[HEADER_LOCK_TX],
            "settlement_tx": lower[HEADER_SETTLEMENT_TX],
            "worker": lower[HEADER_WORKER],
        }
        if HEADER_COST in lower:
            fields["cost"] = lower[HEADER_COST]
        if HEADER_RESULT_HASH in lower:
            fields["result_hash"] = lower[HEADER_RESULT_HASH]
        if HEADER_NONCE in lower:
            fields["nonce"] = lower[HEADER_NONCE]
        return Receipt.parse({**fields, **extra})

    @staticmethod
    def load(path: Path) -> Receipt:
        try:
            return Receipt.parse(Path(path).read_text())
        except OSError as exc:
            raise DecodeError(f"cannot read receipt {path}: {exc.strerror}") from None


def load_jsonl(path: Path) -> list[Receipt]:
    """Receipts from JSON Lines (blank lines ignored); errors name the line."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise DecodeError(f"cannot read {path}: {exc.strerror}") from None
    receipts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            receipts.append(Receipt.parse(json.loads(line)))
        except (json.JSONDecodeError, DecodeError) as exc:
            raise DecodeError(f"{path}:{number}: {exc}") from None
    return receipts
