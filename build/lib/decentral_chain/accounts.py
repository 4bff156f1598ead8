"""Typed views of the escrow's accounts, decoded from raw account data.

The dataclass fields mirror :mod:`decentral_chain.abi` (a test checks names and order);
decoding verifies the discriminator and the exact length first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, TypeVar

from solders.pubkey import Pubkey

from decentral_chain.abi import CONFIG, CREDITS, JOB, Struct
from decentral_chain.errors import DecodeError

T = TypeVar("T", bound="_Account")


def decode_struct(struct: Struct, data: bytes) -> dict[str, object]:
    """Check discriminator and length of ``data``, then Borsh-decode the fields."""
    data = bytes(data)
    if len(data) != struct.size:
        raise DecodeError(f"{struct.name}: expected {struct.size} bytes, got {len(data)}")
    if data[:8] != struct.discriminator:
        raise DecodeError(f"{struct.name}: discriminator mismatch")
    offsets = struct.offsets()
    try:
        return {f.name: f.type.decode(data, offsets[f.name]) for f in struct.fields}  # type: ignore[union-attr]
    except ValueError as exc:
        raise DecodeError(f"{struct.name}: {exc}") from exc


class _Account:
    """Accounts decode from bytes after checking discriminator and length."""

    STRUCT: ClassVar[Struct]
    __slots__ = ()

    @classmethod
    def from_bytes(cls: type[T], data: bytes) -> T:
        return cls(**decode_struct(cls.STRUCT, data))


@dataclass(frozen=True, slots=True)
class Config(_Account):
    STRUCT: ClassVar[Struct] = CONFIG

    admin: Pubkey
    pending_admin: Pubkey
    gateway: Pubkey
    mint: Pubkey
    vault: Pubkey
    treasury: Pubkey
    refund_timeout: int
    fee_bps: int
    paused: bool
    bump: int
    vault_bump: int
    reserved: bytes
    total_deposited: int
    total_withdrawn: int
    total_paid: int
    total_fees: int
    jobs_settled: int
    jobs_refunded: int


@dataclass(frozen=True, slots=True)
class Credits(_Account):
    STRUCT: ClassVar[Struct] = CREDITS

    owner: Pubkey
    free: int
    locked: int
    total_deposited: int
    total_spent: int
    locks: int
    open_jobs: int
    bump: int
    reserved: bytes


@dataclass(frozen=True, slots=True)
class Job(_Account):
    STRUCT: ClassVar[Struct] = JOB

    job_id: bytes
    client: Pubkey
    worker: Pubkey
    payer: Pubkey
    amount: int
    created_at: int
    expires_at: int
    nonce: int
    fee_bps: int
    bump: int
    reserved: bytes
