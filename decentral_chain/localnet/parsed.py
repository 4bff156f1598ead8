"""Transactions as ``jsonParsed`` shows them: Agave's transaction-status parsers.

A parsed message lists its accounts as ``{pubkey, writable, signer, source}`` and each
instruction of a known program as ``{program, programId, parsed: {type, info}, stackHeight}``
— system, spl-token (classic and Token-2022's classic instructions), spl-associated-token-account
and spl-memo, with Agave's type names and info fields. Any other instruction, or one a parser
cannot read (short data, too few accounts, an extension instruction), is *partially decoded*:
``{programId, accounts: [pubkey...], data: base58, stackHeight}``, as Agave does. Agave has no
parser for the compute-budget program, so its instructions are partially decoded as there.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

from solders.message import Message, MessageV0
from solders.pubkey import Pubkey

from decentral_chain.abi import SYSTEM_PROGRAM_ID, TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID
from decentral_chain.localnet.encoding import address_table_lookups_json, b58, token_amount

ATA_PROGRAM_ID = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
MEMO_V1_PROGRAM_ID = Pubkey.from_string("Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo")
MEMO_V3_PROGRAM_ID = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
BPF_UPGRADEABLE_LOADER_ID = Pubkey.from_string("BPFLoaderUpgradeab1e11111111111111111111111")

#: Keys a transaction can never write (Agave's reserved account keys: builtins and sysvars);
#: ``writable`` says false for them whatever the header says.
RESERVED_KEYS = frozenset(
    Pubkey.from_string(k)
    for k in (
        "11111111111111111111111111111111",
        "AddressLookupTab1e1111111111111111111111111",
        "BPFLoader1111111111111111111111111111111111",
        "BPFLoader2111111111111111111111111111111111",
        "BPFLoaderUpgradeab1e11111111111111111111111",
        "LoaderV411111111111111111111111111111111111",
        "ComputeBudget111111111111111111111111111111",
        "Config1111111111111111111111111111111111111",
        "Ed25519SigVerify111111111111111111111111111",
        "Feature111111111111111111111111111111111111",
        "NativeLoader1111111111111111111111111111111",
        "KeccakSecp256k11111111111111111111111111111",
        "Secp256r1SigVerify1111111111111111111111111",
        "Stake11111111111111111111111111111111111111",
        "StakeConfig11111111111111111111111111111111",
        "Vote111111111111111111111111111111111111111",
        "ZkE1Gama1Proof11111111111111111111111111111",
        "ZkTokenProof1111111111111111111111111111111",
        "SysvarC1ock11111111111111111111111111111111",
        "SysvarEpochRewards1111111111111111111111111",
        "SysvarEpochSchedu1e111111111111111111111111",
        "SysvarFees111111111111111111111111111111111",
        "Sysvar1nstructions1111111111111111111111111",
        "SysvarLastRestartS1ot1111111111111111111111",
        "SysvarRecentB1ockHashes11111111111111111111",
        "SysvarRent111111111111111111111111111111111",
        "SysvarRewards111111111111111111111111111111",
        "SysvarS1otHashes111111111111111111111111111",
        "SysvarS1otHistory11111111111111111111111111",
        "SysvarStakeHistory1111111111111111111111111",
    )
)


class NotParsable(Exception):
    """This instruction is shown partially decoded."""


class _Reader:
    """Little-endian reads over instruction data; any short read is NotParsable."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise NotParsable
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def pubkey(self) -> str:
        return str(Pubkey.from_bytes(self.take(32)))

    def bincode_str(self) -> str:
        try:
            return self.take(self.u64()).decode()
        except UnicodeDecodeError as exc:
            raise NotParsable from exc

    def coption_pubkey(self) -> str | None:
        """spl-token's instruction packing of COption<Pubkey>: a 0/1 byte, then the key."""
        tag = self.u8()
        if tag == 0:
            return None
        if tag != 1:
            raise NotParsable
        return self.pubkey()


class _Accounts:
    """An instruction's accounts by position, as base58; a missing one is NotParsable."""

    def __init__(self, keys: Sequence[str], indexes: bytes, minimum: int = 0) -> None:
        if any(i >= len(keys) for i in indexes) or len(indexes) < minimum:
            raise NotParsable
        self.keys = [keys[i] for i in indexes]

    def need(self, n: int) -> None:
        if len(self.keys) < n:
            raise NotParsable

    def __getitem__(self, i: int) -> str:
        return self.keys[i]

    def __len__(self) -> int:
        return len(self.keys)


# --------------------------------------------------------------------- system


def _parse_system(data: bytes, acc: _Accounts) -> dict:
    r = _Reader(data)
    match r.u32():
        case 0:
            lamports, space, owner = r.u64(), r.u64(), r.pubkey()
            acc.need(2)
            return _ix("createAccount", source=acc[0], newAccount=acc[1], lamports=lamports, space=space, owner=owner)
        case 1:
            owner = r.pubkey()
            acc.need(1)
            return _ix("assign", account=acc[0], owner=owner)
        case 2:
            lamports = r.u64()
            acc.need(2)
            return _ix("transfer", source=acc[0], destination=acc[1], lamports=lamports)
        case 3:
            base, seed, lamports, space, owner = r.pubkey(), r.bincode_str(), r.u64(), r.u64(), r.pubkey()
            acc.need(2)
            return _ix(
                "createAccountWithSeed",
                source=acc[0],
                newAccount=acc[1],
                base=base,
                seed=seed,
                lamports=lamports,
                space=space,
                owner=owner,
            )
        case 4:
            acc.need(3)
            return _ix("advanceNonce", nonceAccount=acc[0], recentBlockhashesSysvar=acc[1], nonceAuthority=acc[2])
        case 5:
            lamports = r.u64()
            acc.need(5)
            return _ix(
                "withdrawFromNonce",
                nonceAccount=acc[0],
                destination=acc[1],
                recentBlockhashesSysvar=acc[2],
                rentSysvar=acc[3],
                nonceAuthority=acc[4],
                lamports=lamports,
            )
        case 6:
            authority = r.pubkey()
            acc.need(3)
            return _ix(
                "initializeNonce",
                nonceAccount=acc[0],
                recentBlockhashesSysvar=acc[1],
                rentSysvar=acc[2],
                nonceAuthority=authority,
            )
        case 7:
            authority = r.pubkey()
            acc.need(2)
            return _ix("authorizeNonce", nonceAccount=acc[0], nonceAuthority=acc[1], newAuthorized=authority)
        case 8:
            space = r.u64()
            acc.need(1)
            return _ix("allocate", account=acc[0], space=space)
        case 9:
            base, seed, space, owner = r.pubkey(), r.bincode_str(), r.u64(), r.pubkey()
            acc.need(2)
            return _ix("allocateWithSeed", account=acc[0], base=base, seed=seed, space=space, owner=owner)
        case 10:
            base, seed, owner = r.pubkey(), r.bincode_str(), r.pubkey()
            acc.need(2)
            return _ix("assignWithSeed", account=acc[0], base=base, seed=seed, owner=owner)
        case 11:
            lamports, seed, owner = r.u64(), r.bincode_str(), r.pubkey()
            acc.need(3)
            return _ix(
                "transferWithSeed",
                source=acc[0],
                sourceBase=acc[1],
                destination=acc[2],
                lamports=lamports,
                sourceSeed=seed,
                sourceOwner=owner,
            )
        case 12:
            acc.need(1)
            return _ix("upgradeNonce", nonceAccount=acc[0])
        case 13:
            lamports, space, owner = r.u64(), r.u64(), r.pubkey()
            if lamports == 0:
                acc.need(1)
                return _ix("createAccountAllowPrefund", newAccount=acc[0], space=space, owner=owner)
            acc.need(2)
            return _ix(
                "createAccountAllowPrefund",
                newAccount=acc[0],
                source=acc[1],
                lamports=lamports,
                space=space,
                owner=owner,
            )
    raise NotParsable


# ---------------------------------------------------------------------- token

_AUTHORITY_TYPES = ("mintTokens", "freezeAccount", "accountOwner", "closeAccount")


def _signers(info: dict, acc: _Accounts, last: int, single: str, multisig: str) -> dict:
    """spl-token's signer accounts: one authority, or a multisig and the keys that signed."""
    if len(acc) > last + 1:
        info[multisig] = acc[last]
        info["signers"] = list(acc.keys[last + 1 :])
    else:
        info[single] = acc[last]
    return info


def _parse_token(data: bytes, acc: _Accounts) -> dict:
    r = _Reader(data)
    tag = r.u8()
    match tag:
        case 0 | 20:
            decimals, mint_authority, freeze = r.u8(), r.pubkey(), r.coption_pubkey()
            acc.need(2 if tag == 0 else 1)
            info: dict[str, Any] = {"mint": acc[0], "decimals": decimals, "mintAuthority": mint_authority}
            if tag == 0:
                info["rentSysvar"] = acc[1]
            if freeze is not None:
                info["freezeAuthority"] = freeze
            return {"type": "initializeMint" if tag == 0 else "initializeMint2", "info": info}
        case 1:
            acc.need(4)
            return _ix("initializeAccount", account=acc[0], mint=acc[1], owner=acc[2], rentSysvar=acc[3])
        case 16:
            owner = r.pubkey()
            acc.need(3)
            return _ix("initializeAccount2", account=acc[0], mint=acc[1], owner=owner, rentSysvar=acc[2])
        case 18:
            owner = r.pubkey()
            acc.need(2)
            return _ix("initializeAccount3", account=acc[0], mint=acc[1], owner=owner)
        case 2:
            m = r.u8()
            acc.need(3)
            return _ix("initializeMultisig", multisig=acc[0], rentSysvar=acc[1], signers=acc.keys[2:], m=m)
        case 19:
            m = r.u8()
            acc.need(2)
            return _ix("initializeMultisig2", multisig=acc[0], signers=acc.keys[1:], m=m)
        case 3:
            amount = r.u64()
            acc.need(3)
            info = {"source": acc[0], "destination": acc[1], "amount": str(amount)}
            return {"type": "transfer", "info": _signers(info, acc, 2, "authority", "multisigAuthority")}
        case 4:
            amount = r.u64()
            acc.need(3)
            info = {"source": acc[0], "delegate": acc[1], "amount": str(amount)}
            return {"type": "approve", "info": _signers(info, acc, 2, "owner", "multisigOwner")}
        case 5:
            acc.need(2)
            return {"type": "revoke", "info": _signers({"source": acc[0]}, acc, 1, "owner", "multisigOwner")}
        case 6:
            kind, new_authority = r.u8(), r.coption_pubkey()
            if kind >= len(_AUTHORITY_TYPES):
                raise NotParsable  # Token-2022's extension authorities: partially decoded
            acc.need(2)
            owned = "mint" if kind <= 1 else "account"
            info = {owned: acc[0], "authorityType": _AUTHORITY_TYPES[kind], "newAuthority": new_authority}
            return {"type": "setAuthority", "info": _signers(info, acc, 1, "authority", "multisigAuthority")}
        case 7:
            amount = r.u64()
            acc.need(3)
            info = {"mint": acc[0], "account": acc[1], "amount": str(amount)}
            return {"type": "mintTo", "info": _signers(info, acc, 2, "mintAuthority", "multisigMintAuthority")}
        case 8:
            amount = r.u64()
            acc.need(3)
            info = {"account": acc[0], "mint": acc[1], "amount": str(amount)}
            return {"type": "burn", "info": _signers(info, acc, 2, "authority", "multisigAuthority")}
        case 9:
            acc.need(3)
            info = {"account": acc[0], "destination": acc[1]}
            return {"type": "closeAccount", "info": _signers(info, acc, 2, "owner", "multisigOwner")}
        case 10 | 11:
            acc.need(3)
            info = {"account": acc[0], "mint": acc[1]}
            name = "freezeAccount" if tag == 10 else "thawAccount"
            return {"type": name, "info": _signers(info, acc, 2, "freezeAuthority", "multisigFreezeAuthority")}
        case 12 | 13:
            amount, decimals = r.u64(), r.u8()
            acc.need(4)
            role = "destination" if tag == 12 else "delegate"
            info = {"source": acc[0], "mint": acc[1], role: acc[2], "tokenAmount": token_amount(amount, decimals)}
            if tag == 12:
                return {"type": "transferChecked", "info": _signers(info, acc, 3, "authority", "multisigAuthority")}
            return {"type": "approveChecked", "info": _signers(info, acc, 3, "owner", "multisigOwner")}
        case 14:
            amount, decimals = r.u64(), r.u8()
            acc.need(3)
            info = {"mint": acc[0], "account": acc[1], "tokenAmount": token_amount(amount, decimals)}
            return {
                "type": "mintToChecked",
                "info": _signers(info, acc, 2, "mintAuthority", "multisigMintAuthority"),
            }
        case 15:
            amount, decimals = r.u64(), r.u8()
            acc.need(3)
            info = {"account": acc[0], "mint": acc[1], "tokenAmount": token_amount(amount, decimals)}
            return {"type": "burnChecked", "info": _signers(info, acc, 2, "authority", "multisigAuthority")}
        case 17:
            acc.need(1)
            return _ix("syncNative", account=acc[0])
        case 21:
            if len(data) > 1:
                raise NotParsable  # extension types: Token-2022, partially decoded
            acc.need(1)
            return _ix("getAccountDataSize", mint=acc[0])
        case 22:
            acc.need(1)
            return _ix("initializeImmutableOwner", account=acc[0])
        case 23:
            amount = r.u64()
            acc.need(1)
            return _ix("amountToUiAmount", mint=acc[0], amount=str(amount))
        case 24:
            try:
                ui_amount = data[1:].decode()
            except UnicodeDecodeError as exc:
                raise NotParsable from exc
            acc.need(1)
            return _ix("uiAmountToAmount", mint=acc[0], uiAmount=ui_amount)
    raise NotParsable


# ------------------------------------------------------ associated token, memo


def _parse_associated_token(data: bytes, acc: _Accounts) -> dict:
    kind = 0 if not data else data[0]
    if len(data) > 1 or kind > 2:
        raise NotParsable
    if kind == 2:
        acc.need(7)
        return _ix(
            "recoverNested",
            nestedSource=acc[0],
            nestedMint=acc[1],
            destination=acc[2],
            nestedOwner=acc[3],
            ownerMint=acc[4],
            wallet=acc[5],
            tokenProgram=acc[6],
        )
    acc.need(6)
    return _ix(
        "create" if kind == 0 else "createIdempotent",
        source=acc[0],
        account=acc[1],
        wallet=acc[2],
        mint=acc[3],
        systemProgram=acc[4],
        tokenProgram=acc[5],
    )


def _ix(kind: str, **info: Any) -> dict:
    return {"type": kind, "info": info}


_PARSERS: dict[Pubkey, tuple[str, Callable[[bytes, _Accounts], Any]]] = {
    SYSTEM_PROGRAM_ID: ("system", _parse_system),
    TOKEN_PROGRAM_ID: ("spl-token", _parse_token),
    TOKEN_2022_PROGRAM_ID: ("spl-token", _parse_token),
    ATA_PROGRAM_ID: ("spl-associated-token-account", _parse_associated_token),
}
_MEMO_PROGRAMS = (MEMO_V1_PROGRAM_ID, MEMO_V3_PROGRAM_ID)


def parsed_instruction(
    keys: Sequence[str], program_id: Pubkey, accounts: bytes, data: bytes, stack_height: Any
) -> dict:
    """One instruction, parsed when its program has a parser and it reads, else partially decoded."""
    try:
        if program_id in _MEMO_PROGRAMS:
            try:
                parsed: Any = data.decode()
            except UnicodeDecodeError as exc:
                raise NotParsable from exc
            _Accounts(keys, accounts)
            return {"program": "spl-memo", "programId": str(program_id), "parsed": parsed, "stackHeight": stack_height}
        entry = _PARSERS.get(program_id)
        if entry is None:
            raise NotParsable
        name, parse = entry
        # Agave's check: every account index within the keys, and at least one account
        parsed = parse(data, _Accounts(keys, accounts, minimum=1))
        return {"program": name, "programId": str(program_id), "parsed": parsed, "stackHeight": stack_height}
    except NotParsable:
        return {
            "programId": str(program_id),
            "accounts": [keys[i] for i in accounts if i < len(keys)],
            "data": b58(data),
            "stackHeight": stack_height,
        }


def _is_writable(msg: Message | MessageV0, i: int, invoked: set[int], upgradeable_loader_present: bool) -> bool:
    header = msg.header
    n_keys = len(msg.account_keys)
    n_signed = header.num_required_signatures
    if i < n_signed:
        writable = i < n_signed - header.num_readonly_signed_accounts
    else:
        writable = i < n_keys - header.num_readonly_unsigned_accounts
    if not writable or msg.account_keys[i] in RESERVED_KEYS:
        return False
    # a program an instruction calls is demoted, unless the upgradeable loader is present
    return not (i in invoked and not upgradeable_loader_present)


def parsed_message_json(msg: Message | MessageV0) -> dict:
    """A message as ``jsonParsed`` shows it (accounts with roles, instructions parsed)."""
    keys = [str(k) for k in msg.account_keys]
    invoked = {ix.program_id_index for ix in msg.instructions}
    loader = BPF_UPGRADEABLE_LOADER_ID in msg.account_keys
    n_signed = msg.header.num_required_signatures
    out: dict[str, Any] = {
        "accountKeys": [
            {
                "pubkey": key,
                "writable": _is_writable(msg, i, invoked, loader),
                "signer": i < n_signed,
                "source": "transaction",
            }
            for i, key in enumerate(keys)
        ],
        "recentBlockhash": str(msg.recent_blockhash),
        "instructions": [
            parsed_instruction(keys, msg.account_keys[ix.program_id_index], bytes(ix.accounts), bytes(ix.data), None)
            for ix in msg.instructions
        ],
    }
    if isinstance(msg, MessageV0):
        out["addressTableLookups"] = address_table_lookups_json(msg)
    return out


def parsed_inner_instructions(msg: Message | MessageV0, groups: list) -> list[dict]:
    """A transaction's inner instructions (CPIs), parsed like the top-level ones."""
    keys = [str(k) for k in msg.account_keys]
    out = []
    for index, group in enumerate(groups):
        if group:
            items = []
            for inner in group:
                ix = inner.instruction()
                program = msg.account_keys[ix.program_id_index]
                items.append(
                    parsed_instruction(keys, program, bytes(ix.accounts), bytes(ix.data), inner.stack_height())
                )
            out.append({"index": index, "instructions": items})
    return out


def memo_of(msg: Message | MessageV0) -> str | None:
    """What getSignaturesForAddress shows as ``memo``: each spl-memo instruction's text as
    ``[<length>] <text>``, joined by ``; `` (Agave's extract_memos), or None."""
    memos = []
    for ix in msg.instructions:
        if msg.account_keys[ix.program_id_index] in _MEMO_PROGRAMS:
            text = bytes(ix.data).decode(errors="replace")
            memos.append(f"[{len(bytes(ix.data))}] {text}")
    return "; ".join(memos) or None
