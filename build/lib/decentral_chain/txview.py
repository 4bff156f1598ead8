"""A transaction as an RPC returned it, read defensively, and what the escrow did in it.

:func:`parse_transaction` turns a ``getTransaction`` answer (base64 encoding) into a
:class:`FetchedTx` or raises one :class:`DecodeError` naming the first thing wrong with it
(missing or mistyped fields, an index out of range, undecodable bytes): a lying or broken
RPC is a readable error, never a crash.

:meth:`FetchedTx.runs` lists every run of one program's instructions, top level or CPI, in
execution order, each with the events logged in its own invoke frame and the SPL Token
transfers it invoked itself (attributed through the inner instructions' stack heights).
That is what the verifier compares: per instruction, never whole-transaction deltas, so one
transaction may lock, settle and refund several jobs and each is read on its own.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass
from typing import Any

import based58
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from decentral_chain.abi import TOKEN_PROGRAM_ID
from decentral_chain.errors import DecodeError
from decentral_chain.events import Event, program_frames
from decentral_chain.instructions import DecodedInstruction, decode_instruction_data

_TOKEN_TRANSFER = 3
_TOKEN_TRANSFER_CHECKED = 12


# ------------------------------------------------------------ the RPC's answer


class _Answer(BaseModel):
    model_config = ConfigDict(frozen=True, strict=True, extra="ignore")


def _pubkey_text(value: str) -> str:
    try:
        Pubkey.from_string(value)
    except ValueError:
        raise ValueError(f"not a base-58 public key: {value[:60]!r}") from None
    return value


class _UiTokenAmount(_Answer):
    amount: str

    @field_validator("amount")
    @classmethod
    def _digits(cls, value: str) -> str:
        if not value.isascii() or not value.isdigit() or len(value) > 20:
            raise ValueError(f"not a token amount: {value[:30]!r}")
        return value


class _TokenBalance(_Answer):
    accountIndex: int
    mint: str
    owner: str | None = None
    uiTokenAmount: _UiTokenAmount

    _mint = field_validator("mint")(_pubkey_text)

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: str | None) -> str | None:
        return None if value is None else _pubkey_text(value)


class _InnerInstruction(_Answer):
    programIdIndex: int
    accounts: list[int]
    data: str
    stackHeight: int | None = None


class _InnerGroup(_Answer):
    index: int
    instructions: list[_InnerInstruction]


class _Loaded(_Answer):
    writable: list[str] = []
    readonly: list[str] = []


class _Meta(_Answer):
    err: Any = None
    logMessages: list[str] | None = None
    innerInstructions: list[_InnerGroup] | None = None
    preTokenBalances: list[_TokenBalance] | None = None
    postTokenBalances: list[_TokenBalance] | None = None
    loadedAddresses: _Loaded | None = None


class _TransactionAnswer(_Answer):
    slot: int
    blockTime: int | None = None
    transaction: list[str]
    meta: _Meta

    @field_validator("transaction")
    @classmethod
    def _pair(cls, value: list[str]) -> list[str]:
        if len(value) != 2:
            raise ValueError("expected [data, encoding]")
        return value


# ------------------------------------------------------------------ the view


@dataclass(frozen=True, slots=True)
class TokenTransfer:
    """An SPL Token Transfer / TransferChecked: who moved how much from where to where."""

    source: Pubkey
    destination: Pubkey
    authority: Pubkey
    amount: int


@dataclass(frozen=True, slots=True)
class TokenBalance:
    mint: Pubkey
    owner: Pubkey | None
    amount: int


@dataclass(frozen=True, slots=True)
class _Instruction:
    group: int  # index of the top-level instruction it runs under
    program: Pubkey
    data: bytes
    accounts: tuple[Pubkey, ...]
    height: int | None  # 1 for top level; None where the RPC gave no stackHeight


@dataclass(frozen=True, slots=True)
class Run:
    """One run of a program's instruction with what it did in its own frame."""

    ix: DecodedInstruction
    events: tuple[Event, ...]
    #: the token transfers it invoked itself; None if the RPC's answer cannot attribute them
    transfers: tuple[TokenTransfer, ...] | None


@dataclass(frozen=True)
class FetchedTx:
    signature: Signature
    transaction: VersionedTransaction
    message_bytes: bytes
    slot: int
    block_time: int | None
    err: Any
    logs: tuple[str, ...] | None
    keys: tuple[Pubkey, ...]  # static keys, then loaded writable, then loaded readonly
    instructions: tuple[_Instruction, ...]  # execution order: each top-level one, then its CPIs
    post_tokens: dict[int, TokenBalance]

    def runs(self, program: Pubkey, *, events: bool = True) -> list[Run]:
        """Every run of ``program``'s instructions in execution order (top level and CPI);
        runs whose data is not a well-formed escrow instruction (they could not have
        succeeded) are left out. Raises DecodeError if the log does not match them, and
        LogsTruncated if it was cut (``events=False``: the runs without their events)."""
        ours = [k for k, ix in enumerate(self.instructions) if ix.program == program]
        if not ours:
            return []
        if events and self.logs is None:
            raise DecodeError("the RPC returned no log messages: events cannot be read")
        frames = program_frames(self.logs or (), program) if events else [[] for _ in ours]
        if len(frames) != len(ours):
            raise DecodeError(f"the log shows {len(frames)} runs of {program}, the instructions {len(ours)}")
        out = []
        for k, events in zip(ours, frames, strict=True):
            ix = self.instructions[k]
            try:
                decoded = decode_instruction_data(ix.data, list(ix.accounts))
            except DecodeError:
                continue
            out.append(Run(decoded, tuple(events), self._transfers(k)))
        return out

    def _transfers(self, k: int) -> tuple[TokenTransfer, ...] | None:
        """Token transfers invoked directly by instruction ``k``: the instructions after it in
        its group, while deeper than it, one level below it."""
        me = self.instructions[k]
        found = []
        for ix in self.instructions[k + 1 :]:
            if ix.group != me.group:
                break
            if ix.height is None:
                if me.height != 1:
                    return None  # a CPI's children cannot be told apart without stack heights
            elif ix.height <= (me.height or 1):
                break
            elif ix.height != (me.height or 1) + 1:
                continue
            if ix.program == TOKEN_PROGRAM_ID and (transfer := _token_transfer(ix)) is not None:
                found.append(transfer)
        return tuple(found)


def _token_transfer(ix: _Instruction) -> TokenTransfer | None:
    data, acc = ix.data, ix.accounts
    if len(data) == 9 and data[0] == _TOKEN_TRANSFER and len(acc) >= 3:
        return TokenTransfer(acc[0], acc[1], acc[2], struct.unpack_from("<Q", data, 1)[0])
    if len(data) == 10 and data[0] == _TOKEN_TRANSFER_CHECKED and len(acc) >= 4:
        return TokenTransfer(acc[0], acc[2], acc[3], struct.unpack_from("<Q", data, 1)[0])
    return None


def _shortvec(data: bytes) -> tuple[int, int]:
    """Decode a compact-u16: (value, bytes used)."""
    value, shift = 0, 0
    for i in range(min(3, len(data))):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i + 1
        shift += 7
    raise DecodeError("bad compact-u16")


def parse_transaction(signature: Signature, result: Any) -> FetchedTx:
    """A ``getTransaction`` answer (base64) as a :class:`FetchedTx`; DecodeError if malformed."""
    try:
        answer = _TransactionAnswer.model_validate(result)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "answer"
        raise DecodeError(f"malformed getTransaction answer: {where}: {first['msg']}") from None
    if answer.slot < 0:
        raise DecodeError("malformed getTransaction answer: negative slot")
    if answer.transaction[1] != "base64":
        raise DecodeError(f"getTransaction answered in {answer.transaction[1][:20]!r}, not the base64 asked for")
    try:
        raw = base64.b64decode(answer.transaction[0], validate=True)
        tx = VersionedTransaction.from_bytes(raw)
        count, used = _shortvec(raw)
    except (ValueError, binascii.Error, DecodeError) as exc:
        raise DecodeError("the RPC returned an undecodable transaction") from exc
    message = tx.message
    static = list(message.account_keys)
    required = message.header.num_required_signatures
    if count != len(tx.signatures) or not 1 <= required == count <= len(static):
        raise DecodeError(f"the transaction carries {len(tx.signatures)} signatures for {required} signers")
    meta = answer.meta
    loaded = meta.loadedAddresses or _Loaded()
    try:
        keys = (
            *static,
            *(Pubkey.from_string(k) for k in loaded.writable),
            *(Pubkey.from_string(k) for k in loaded.readonly),
        )
    except ValueError:
        raise DecodeError("malformed getTransaction answer: meta.loadedAddresses: not a public key") from None

    def key(index: int, where: str) -> Pubkey:
        if not 0 <= index < len(keys):
            raise DecodeError(f"malformed getTransaction answer: {where}: account index {index} out of range")
        return keys[index]

    groups: dict[int, list[_InnerInstruction]] = {}
    for g in meta.innerInstructions or []:
        if not 0 <= g.index < len(message.instructions) or g.index in groups:
            raise DecodeError(f"malformed getTransaction answer: meta.innerInstructions: bad index {g.index}")
        groups[g.index] = g.instructions
    instructions: list[_Instruction] = []
    for i, top in enumerate(message.instructions):
        where = f"instruction {i}"
        instructions.append(
            _Instruction(
                i,
                key(top.program_id_index, where),
                bytes(top.data),
                tuple(key(a, where) for a in bytes(top.accounts)),
                1,
            )
        )
        for j, inner in enumerate(groups.get(i, [])):
            where = f"meta.innerInstructions[{i}].instructions[{j}]"
            try:
                data = based58.b58decode(inner.data.encode())
            except ValueError:
                raise DecodeError(f"malformed getTransaction answer: {where}.data is not base-58") from None
            if inner.stackHeight is not None and inner.stackHeight < 2:
                raise DecodeError(f"malformed getTransaction answer: {where}.stackHeight {inner.stackHeight}")
            instructions.append(
                _Instruction(
                    i,
                    key(inner.programIdIndex, where),
                    data,
                    tuple(key(a, where) for a in inner.accounts),
                    inner.stackHeight,
                )
            )
    post: dict[int, TokenBalance] = {}
    for b in meta.postTokenBalances or []:
        key(b.accountIndex, "meta.postTokenBalances")
        post[b.accountIndex] = TokenBalance(
            Pubkey.from_string(b.mint), Pubkey.from_string(b.owner) if b.owner else None, int(b.uiTokenAmount.amount)
        )
    return FetchedTx(
        signature,
        tx,
        raw[used + 64 * count :],
        answer.slot,
        answer.blockTime,
        meta.err,
        None if meta.logMessages is None else tuple(meta.logMessages),
        keys,
        tuple(instructions),
        post,
    )
