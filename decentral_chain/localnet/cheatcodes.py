"""Surfpool's cheatcodes, with Surfpool's method names and parameters, so its users' scripts
run against ``decentral localnet`` unchanged (``txtx/surfpool``, ``surfnet_cheatcodes.rs``).

    surfnet_setAccount       [pubkey, {lamports?, data? (hex), owner?, executable?, rentEpoch?}]
    surfnet_setTokenAccount  [owner, mint, {amount?, delegate?, state?, delegatedAmount?,
                              closeAuthority?}, tokenProgram?]   the owner's associated account
    surfnet_timeTravel       [{absoluteSlot | absoluteEpoch | absoluteTimestamp (ms)}?]  → EpochInfo
    surfnet_pauseClock       []  → EpochInfo      no slots, the clock stands still
    surfnet_resumeClock      []  → EpochInfo      the clock goes on from where it stood
    surfnet_resetAccount     [pubkey, {includeOwnedAccounts?}]   back to genesis (or gone)

As in Surfpool, a delegate / close authority of ``"null"`` clears it, a token account's
state is ``uninitialized`` / ``initialized`` / ``frozen``, and setting a token account does
not change its mint's supply. Time only moves forward; a jump of N slots produces one block
(the slots between are skipped) and expires every older blockhash, as 150 slots would.
"""

from __future__ import annotations

import struct
from typing import Any

from solders.account import Account

from decentral_chain.abi import SYSTEM_PROGRAM_ID, TOKEN_ACCOUNT_LEN, TOKEN_PROGRAM_ID
from decentral_chain.localnet.chain import SLOTS_PER_EPOCH, LocalChain
from decentral_chain.localnet.jsonrpc import config, context, method, param, parse_pubkey
from decentral_chain.localnet.methods import get_epoch_info
from decentral_chain.pda import associated_token_address

STATES = {"uninitialized": 0, "initialized": 1, "frozen": 2}


def epoch_info(chain: LocalChain) -> dict[str, int]:
    """What Surfpool's clock cheatcodes answer: getEpochInfo's value."""
    return get_epoch_info(chain, [])


def _u64(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
        raise ValueError(f"{name}: expected an unsigned 64-bit integer")
    return value


@method("surfnet_setAccount")
def set_account(chain: LocalChain, params: list) -> dict:
    key = parse_pubkey(param(params, 0))
    update = config(params, 1)
    current = chain.get_account(key)
    lamports = current.lamports if current else 0
    data = bytes(current.data) if current else b""
    owner = current.owner if current else SYSTEM_PROGRAM_ID
    executable = current.executable if current else False
    rent_epoch = current.rent_epoch if current else 0
    if "lamports" in update:
        lamports = _u64(update["lamports"], "lamports")
    if "data" in update:
        if not isinstance(update["data"], str):
            raise ValueError("data: expected a hex string")
        try:
            data = bytes.fromhex(update["data"])
        except ValueError:
            raise ValueError("data: Invalid hex data provided") from None
    if "owner" in update:
        owner = parse_pubkey(update["owner"])
    if "executable" in update:
        if not isinstance(update["executable"], bool):
            raise ValueError("executable: expected a boolean")
        executable = update["executable"]
    if "rentEpoch" in update:
        rent_epoch = _u64(update["rentEpoch"], "rentEpoch")
    chain.set_account(key, Account(lamports, data, owner, executable, rent_epoch))
    return context(chain, None)


def _optional_key(value: Any, name: str) -> bytes:
    """A COption<Pubkey> as SPL Token packs it; ``"null"`` is None (Surfpool's spelling)."""
    if value == "null":
        return b"\x00" * 36
    try:
        return struct.pack("<I", 1) + bytes(parse_pubkey(value))
    except ValueError:
        raise ValueError(f'{name}: expected a base-58 public key or "null"') from None


@method("surfnet_setTokenAccount")
def set_token_account(chain: LocalChain, params: list) -> dict:
    owner = parse_pubkey(param(params, 0))
    mint = parse_pubkey(param(params, 1))
    update = config(params, 2)
    program = parse_pubkey(param(params, 3)) if param(params, 3) is not None else TOKEN_PROGRAM_ID
    address = associated_token_address(owner, mint, program)
    current = chain.get_account(address)
    if current is not None and len(current.data) >= TOKEN_ACCOUNT_LEN and current.owner == program:
        data = bytearray(bytes(current.data)[:TOKEN_ACCOUNT_LEN])
    else:  # a new, initialized account of this owner and mint
        data = bytearray(TOKEN_ACCOUNT_LEN)
        data[0:32], data[32:64], data[108] = bytes(mint), bytes(owner), STATES["initialized"]
    # SPL Token account layout: mint 0..32, owner 32..64, amount 64..72, delegate 72..108,
    # state 108, is_native 109..121, delegated_amount 121..129, close_authority 129..165
    if "amount" in update:
        data[64:72] = struct.pack("<Q", _u64(update["amount"], "amount"))
    if "delegate" in update:
        data[72:108] = _optional_key(update["delegate"], "delegate")
    if "state" in update:
        if update["state"] not in STATES:
            raise ValueError(f"state: one of {', '.join(STATES)}")
        data[108] = STATES[update["state"]]
    if "delegatedAmount" in update:
        data[121:129] = struct.pack("<Q", _u64(update["delegatedAmount"], "delegatedAmount"))
    if "closeAuthority" in update:
        data[129:165] = _optional_key(update["closeAuthority"], "closeAuthority")
    rent = chain.svm.minimum_balance_for_rent_exemption(TOKEN_ACCOUNT_LEN)
    chain.set_account(address, Account(rent, bytes(data), program, False, 0))
    return context(chain, None)


@method("surfnet_timeTravel")
def time_travel(chain: LocalChain, params: list) -> dict:
    target = config(params, 0) or {"absoluteTimestamp": int((chain.now() + 3600) * 1000)}  # Surfpool: an hour on
    if len(target) != 1:
        raise ValueError("expected one of absoluteSlot, absoluteEpoch, absoluteTimestamp")
    kind, value = next(iter(target.items()))
    value = _u64(value, kind)
    if kind == "absoluteSlot":
        chain.time_travel(slot=value)
    elif kind == "absoluteEpoch":
        chain.time_travel(slot=value * SLOTS_PER_EPOCH)
    elif kind == "absoluteTimestamp":
        chain.time_travel(timestamp=value / 1000)  # milliseconds, as Surfpool takes it
    else:
        raise ValueError(f"unknown time travel {kind!r}: absoluteSlot, absoluteEpoch or absoluteTimestamp")
    return epoch_info(chain)


@method("surfnet_pauseClock")
def pause_clock(chain: LocalChain, params: list) -> dict:
    chain.pause()
    return epoch_info(chain)


@method("surfnet_resumeClock")
def resume_clock(chain: LocalChain, params: list) -> dict:
    chain.resume()
    return epoch_info(chain)


@method("surfnet_resetAccount")
def reset_account(chain: LocalChain, params: list) -> dict:
    key = parse_pubkey(param(params, 0))
    cascade = config(params, 1).get("includeOwnedAccounts", False)
    if not isinstance(cascade, bool):
        raise ValueError("includeOwnedAccounts: expected a boolean")
    keys = [key]
    if cascade:
        keys += [k for k, account in chain.accounts() if account.owner == key]
    for k in keys:
        chain.set_account(k, chain.genesis_accounts.get(k) or Account(0, b"", SYSTEM_PROGRAM_ID, False, 0))
    return context(chain, None)
