"""Anchor events of the escrow, decoded from transaction logs.

An event is ``sol_log_data(discriminator ++ borsh)``, shown as ``Program data: <base64>``.
Any program can log those bytes, so :func:`parse_events` follows the invoke frames
(``Program <id> invoke [n]`` … ``success``/``failed``) and keeps only data logged while the
expected program is the innermost running frame. A log that the runtime truncated is
reported as such rather than silently read short.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass

from solders.pubkey import Pubkey

from decentral_chain.abi import EVENTS, PROGRAM_ID, Struct
from decentral_chain.accounts import decode_struct
from decentral_chain.errors import DecodeError, LogsTruncated


@dataclass(frozen=True, slots=True)
class CreditsDeposited:
    owner: Pubkey
    free: int
    locked: int
    amount: int


@dataclass(frozen=True, slots=True)
class CreditsWithdrawn:
    owner: Pubkey
    free: int
    locked: int
    amount: int


@dataclass(frozen=True, slots=True)
class JobLocked:
    job_id: bytes
    client: Pubkey
    worker: Pubkey
    payer: Pubkey
    amount: int
    created_at: int
    expires_at: int
    nonce: int
    fee_bps: int


@dataclass(frozen=True, slots=True)
class JobSettled:
    job_id: bytes
    client: Pubkey
    worker: Pubkey
    result_hash: bytes
    cost: int
    fee: int
    refunded: int
    prompt_tokens: int
    completion_tokens: int
    nonce: int


@dataclass(frozen=True, slots=True)
class JobRefunded:
    job_id: bytes
    client: Pubkey
    worker: Pubkey
    authority: Pubkey
    amount: int
    nonce: int


@dataclass(frozen=True, slots=True)
class ConfigUpdated:
    admin: Pubkey
    pending_admin: Pubkey
    gateway: Pubkey
    mint: Pubkey
    vault: Pubkey
    treasury: Pubkey
    refund_timeout: int
    fee_bps: int
    paused: bool


Event = CreditsDeposited | CreditsWithdrawn | JobLocked | JobSettled | JobRefunded | ConfigUpdated

EVENT_CLASSES: dict[str, type] = {
    cls.__name__: cls for cls in (CreditsDeposited, CreditsWithdrawn, JobLocked, JobSettled, JobRefunded, ConfigUpdated)
}
_BY_DISCRIMINATOR: dict[bytes, Struct] = {s.discriminator: s for s in EVENTS}


def decode_event(data: bytes) -> Event:
    """Decode ``discriminator ++ borsh`` bytes of one escrow event."""
    struct = _BY_DISCRIMINATOR.get(bytes(data[:8]))
    if struct is None:
        raise DecodeError("unknown event discriminator")
    return EVENT_CLASSES[struct.name](**decode_struct(struct, data))  # type: ignore[no-any-return]


_INVOKE = re.compile(r"^Program (\w+) invoke \[(\d+)\]$")
_EXIT = re.compile(r"^Program (\w+) (success|failed: .*)$")
_DATA = "Program data: "


def parse_events(logs: Iterable[str], program_id: Pubkey = PROGRAM_ID) -> list[Event]:
    """Events logged by ``program_id`` itself, in order; raises :class:`LogsTruncated`."""
    return [event for frame in program_frames(logs, program_id) for event in frame]


def program_frames(logs: Iterable[str], program_id: Pubkey = PROGRAM_ID) -> list[list[Event]]:
    """One list per run (invoke) of ``program_id``, in the order the runs started, holding the
    events it logged while it was the innermost frame. The k-th list belongs to the k-th
    instruction of that program in execution order (top level, then its CPIs). Raises
    :class:`LogsTruncated`, or :class:`DecodeError` for unbalanced frames or bad base64."""
    expected = str(program_id)
    stack: list[tuple[str, int | None]] = []  # (program, index of its frame when it is ours)
    frames: list[list[Event]] = []
    for line in logs:
        if line == "Log truncated":
            raise LogsTruncated("transaction log was truncated by the runtime")
        if line.startswith("Program log: ") or line.endswith(" compute units"):
            continue  # most lines: skipped without a regex
        if line.endswith("]") and (m := _INVOKE.match(line)):
            ours = m.group(1) == expected
            if ours:
                frames.append([])
            stack.append((m.group(1), len(frames) - 1 if ours else None))
        elif not line.startswith(_DATA) and (m := _EXIT.match(line)):
            if not stack or stack[-1][0] != m.group(1):
                raise DecodeError(f"unbalanced log frames at: {line}")
            stack.pop()
        elif line.startswith(_DATA) and stack and stack[-1][1] is not None:
            parts = line[len(_DATA) :].split(" ")
            try:
                raw = b"".join(base64.b64decode(p, validate=True) for p in parts)
            except binascii.Error as exc:
                raise DecodeError(f"bad base64 in log: {line}") from exc
            if raw[:8] in _BY_DISCRIMINATOR:
                frames[stack[-1][1]].append(decode_event(raw))
    return frames
