"""Instruction builders and decoders for the escrow.

Each builder derives the PDAs it can and hands a name → pubkey map to
:func:`build_instruction`, which orders the account metas from the one table in
:mod:`decentral_chain.abi` and Borsh-encodes the arguments after the discriminator.
:func:`decode_instruction` is the exact inverse (and is what receipt verification uses).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey

from decentral_chain import pda
from decentral_chain.abi import (
    INSTRUCTIONS,
    INSTRUCTIONS_BY_NAME,
    PROGRAM_ID,
    Field,
    Option,
)
from decentral_chain.errors import DecodeError

_BY_DISCRIMINATOR = {ix.discriminator: ix for ix in INSTRUCTIONS}


@dataclass(frozen=True, slots=True)
class DecodedInstruction:
    name: str
    args: Mapping[str, Any]
    accounts: Mapping[str, Pubkey]


def encode_args(fields: tuple[Field, ...], values: Mapping[str, Any]) -> bytes:
    missing = [f.name for f in fields if f.name not in values and not isinstance(f.type, Option)]
    if missing:
        raise TypeError(f"missing arguments: {', '.join(missing)}")
    return b"".join(f.type.encode(values.get(f.name)) for f in fields)


def decode_args(fields: tuple[Field, ...], data: bytes) -> dict[str, Any]:
    """Borsh-decode ``data`` exactly (trailing bytes are an error, as in the program)."""
    out: dict[str, Any] = {}
    off = 0
    try:
        for f in fields:
            ty = f.type
            if isinstance(ty, Option):
                if off >= len(data) or data[off] > 1:
                    raise ValueError(f"bad Option tag for {f.name}")
                off += 1
                if data[off - 1] == 0:
                    out[f.name] = None
                    continue
                ty = ty.inner
            out[f.name] = ty.decode(data, off)
            off += ty.size
    except ValueError as exc:
        raise DecodeError(f"instruction arguments: {exc}") from exc
    if off != len(data):
        raise DecodeError(f"instruction arguments: {len(data) - off} trailing bytes")
    return out


def build_instruction(
    name: str,
    accounts: Mapping[str, Pubkey],
    args: Mapping[str, Any] | None = None,
    program_id: Pubkey = PROGRAM_ID,
) -> Instruction:
    """Build any escrow instruction from account and argument maps keyed by ABI name."""
    spec = INSTRUCTIONS_BY_NAME[name]
    metas = []
    for acc in spec.accounts:
        key = accounts.get(acc.name, acc.address)
        if key is None:
            raise TypeError(f"{name}: missing account {acc.name}")
        metas.append(AccountMeta(key, is_signer=acc.signer, is_writable=acc.writable))
    data = spec.discriminator + encode_args(spec.args, args or {})
    return Instruction(program_id, data, metas)


def decode_instruction(ix: Instruction, program_id: Pubkey = PROGRAM_ID) -> DecodedInstruction:
    """Inverse of :func:`build_instruction` for an instruction of ``program_id``."""
    if ix.program_id != program_id:
        raise DecodeError(f"instruction of program {ix.program_id}, not {program_id}")
    return decode_instruction_data(bytes(ix.data), [m.pubkey for m in ix.accounts])


def decode_instruction_data(data: bytes, account_keys: list[Pubkey]) -> DecodedInstruction:
    spec = _BY_DISCRIMINATOR.get(bytes(data[:8]))
    if spec is None:
        raise DecodeError("unknown instruction discriminator")
    if len(account_keys) < len(spec.accounts):
        raise DecodeError(f"{spec.name}: {len(account_keys)} accounts, needs {len(spec.accounts)}")
    accounts = {acc.name: key for acc, key in zip(spec.accounts, account_keys, strict=False)}
    return DecodedInstruction(spec.name, decode_args(spec.args, bytes(data[8:])), accounts)


# ------------------------------------------------------------------------ builders


def build_initialize(
    *,
    admin: Pubkey,
    mint: Pubkey,
    gateway: Pubkey,
    treasury: Pubkey,
    fee_bps: int,
    refund_timeout: int,
    program_id: Pubkey = PROGRAM_ID,
) -> Instruction:
    """initialize(fee_bps, refund_timeout)

    0. [writable, signer] admin - program upgrade authority; pays rent
    1. [writable] config  2. [writable] vault  3. [] mint  4. [] gateway  5. [] treasury
    6. [] program  7. [] program_data  8. [] token_program  9. [] system_program
    """
    accounts = {
        "admin": admin,
        "config": pda.config_address(program_id),
        "vault": pda.vault_address(program_id),
        "mint": mint,
        "gateway": gateway,
        "treasury": treasury,
        "program": program_id,
        "program_data": pda.program_data_address(program_id),
    }
    return build_instruction("initialize", accounts, {"fee_bps": fee_bps, "refund_timeout": refund_timeout}, program_id)


def build_deposit(*, owner: Pubkey, source: Pubkey, amount: int, program_id: Pubkey = PROGRAM_ID) -> Instruction:
    """deposit(amount)

    0. [writable, signer] owner  1. [writable] config  2. [writable] credits
    3. [writable] source  4. [writable] vault  5. [] token_program  6. [] system_program
    """
    accounts = {
        "owner": owner,
        "config": pda.config_address(program_id),
        "credits": pda.credits_address(owner, program_id),
        "source": source,
        "vault": pda.vault_address(program_id),
    }
    return build_instruction("deposit", accounts, {"amount": amount}, program_id)


def build_withdraw(*, owner: Pubkey, destination: Pubkey, amount: int, program_id: Pubkey = PROGRAM_ID) -> Instruction:
    """withdraw(amount)

    0. [signer] owner  1. [writable] config  2. [writable] credits
    3. [writable] destination  4. [writable] vault  5. [] token_program
    """
    accounts = {
        "owner": owner,
        "config": pda.config_address(program_id),
        "credits": pda.credits_address(owner, program_id),
        "destination": destination,
        "vault": pda.vault_address(program_id),
    }
    return build_instruction("withdraw", accounts, {"amount": amount}, program_id)


def build_lock_job(
    *, gateway: Pubkey, client: Pubkey, job_id: bytes, amount: int, worker: Pubkey, program_id: Pubkey = PROGRAM_ID
) -> Instruction:
    """lock_job(job_id, amount, worker)

    0. [writable, signer] gateway  1. [] config  2. [writable] credits (client's)
    3. [writable] job  4. [] system_program
    """
    accounts = {
        "gateway": gateway,
        "config": pda.config_address(program_id),
        "credits": pda.credits_address(client, program_id),
        "job": pda.job_address(job_id, program_id),
    }
    return build_instruction("lock_job", accounts, {"job_id": job_id, "amount": amount, "worker": worker}, program_id)


def build_settle_job(
    *,
    gateway: Pubkey,
    client: Pubkey,
    job_id: bytes,
    worker_token: Pubkey,
    treasury: Pubkey,
    payer: Pubkey,
    cost: int,
    result_hash: bytes,
    prompt_tokens: int,
    completion_tokens: int,
    worker: Pubkey,
    nonce: int,
    program_id: Pubkey = PROGRAM_ID,
) -> Instruction:
    """settle_job(cost, result_hash, prompt_tokens, completion_tokens, nonce)

    0. [signer] gateway  1. [writable] config  2. [writable] job  3. [writable] credits
    4. [writable] vault  5. [writable] worker_token  6. [writable] treasury
    7. [writable] payer  8. [] token_program  9. [signer] worker (job.worker, co-signs)
    """
    accounts = {
        "gateway": gateway,
        "config": pda.config_address(program_id),
        "job": pda.job_address(job_id, program_id),
        "credits": pda.credits_address(client, program_id),
        "vault": pda.vault_address(program_id),
        "worker_token": worker_token,
        "treasury": treasury,
        "payer": payer,
        "worker": worker,
    }
    args = {
        "cost": cost,
        "result_hash": result_hash,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "nonce": nonce,
    }
    return build_instruction("settle_job", accounts, args, program_id)


def build_refund_job(
    *, authority: Pubkey, client: Pubkey, job_id: bytes, payer: Pubkey, program_id: Pubkey = PROGRAM_ID
) -> Instruction:
    """refund_job()

    0. [signer] authority (gateway, or the client after expires_at)  1. [writable] config
    2. [writable] job  3. [writable] credits  4. [writable] payer
    """
    accounts = {
        "authority": authority,
        "config": pda.config_address(program_id),
        "job": pda.job_address(job_id, program_id),
        "credits": pda.credits_address(client, program_id),
        "payer": payer,
    }
    return build_instruction("refund_job", accounts, {}, program_id)


def build_update_config(
    *,
    admin: Pubkey,
    fee_bps: int | None = None,
    refund_timeout: int | None = None,
    gateway: Pubkey | None = None,
    paused: bool | None = None,
    program_id: Pubkey = PROGRAM_ID,
) -> Instruction:
    """update_config(fee_bps?, refund_timeout?, gateway?, paused?)

    0. [signer] admin  1. [writable] config
    """
    args = {"fee_bps": fee_bps, "refund_timeout": refund_timeout, "gateway": gateway, "paused": paused}
    return build_instruction(
        "update_config", {"admin": admin, "config": pda.config_address(program_id)}, args, program_id
    )


def build_set_treasury(*, admin: Pubkey, treasury: Pubkey, program_id: Pubkey = PROGRAM_ID) -> Instruction:
    """set_treasury()

    0. [signer] admin  1. [writable] config  2. [] treasury
    """
    accounts = {"admin": admin, "config": pda.config_address(program_id), "treasury": treasury}
    return build_instruction("set_treasury", accounts, {}, program_id)


def build_propose_admin(*, admin: Pubkey, new_admin: Pubkey, program_id: Pubkey = PROGRAM_ID) -> Instruction:
    """propose_admin(new_admin)

    0. [signer] admin  1. [writable] config
    """
    return build_instruction(
        "propose_admin",
        {"admin": admin, "config": pda.config_address(program_id)},
        {"new_admin": new_admin},
        program_id,
    )


def build_accept_admin(*, new_admin: Pubkey, program_id: Pubkey = PROGRAM_ID) -> Instruction:
    """accept_admin()

    0. [signer] new_admin  1. [writable] config
    """
    return build_instruction(
        "accept_admin", {"new_admin": new_admin, "config": pda.config_address(program_id)}, {}, program_id
    )
