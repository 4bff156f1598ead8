"""The validator's wire encodings of the localnet's accounts, transactions and errors.

Accounts as ``getAccountInfo`` shows them, token amounts and balances, messages, metas and
whole transactions as ``getTransaction`` / ``getBlock`` do (json, base64, base58), and
transaction errors as the RPC spells them.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import based58
from solders.message import Message, MessageV0
from solders.transaction import VersionedTransaction
from solders.transaction_status import (
    InstructionErrorCustom,
    InstructionErrorFieldless,
    TransactionErrorFieldless,
    TransactionErrorInstructionError,
    TransactionErrorType,
)

from decentral_chain.errors import RpcError
from decentral_chain.localnet.chain import TokenBalance, TxRecord
from decentral_chain.localnet.jsonrpc import config, param
from decentral_chain.rpc import INVALID_PARAMS, UNSUPPORTED_TRANSACTION_VERSION


def b58(data: bytes) -> str:
    return based58.b58encode(bytes(data)).decode()


def tx_error_json(err: TransactionErrorType | None) -> Any:
    """A TransactionError as Agave's RPC spells it: "Name", {"Name": fields}, and an
    instruction's error as {"InstructionError": [index, "Name" | {"Custom": code} | ...]}
    (built here: solders' own JSON of it differs between releases)."""
    if err is None:
        return None
    if isinstance(err, TransactionErrorFieldless):
        return str(err).split(".")[-1]
    if isinstance(err, TransactionErrorInstructionError):
        inner = err.err
        if isinstance(inner, InstructionErrorCustom):
            detail: Any = {"Custom": inner.code}
        elif isinstance(inner, InstructionErrorFieldless):
            detail = str(inner).split(".")[-1]
        else:
            detail = {type(inner).__name__.removeprefix("InstructionError"): json.loads(inner.to_json())}
        return {"InstructionError": [err.index, detail]}
    name = type(err).__name__.removeprefix("TransactionError")
    return {name: json.loads(err.to_json())}


def account_json(acc: Any, encoding: str, data_slice: dict | None) -> dict:
    data = bytes(acc.data)
    if data_slice:
        off, length = int(data_slice.get("offset", 0)), int(data_slice.get("length", len(data)))
        data = data[off : off + length]
    if encoding == "base58":
        if len(data) > 128:
            raise RpcError(
                INVALID_PARAMS,
                "Encoded binary (base 58) data should be less than 128 bytes, please use Base64 encoding.",
            )
        encoded: Any = [b58(data), "base58"]
    elif encoding in ("base64", "jsonParsed"):  # no parser for our accounts: base64, as validators do
        encoded = [base64.b64encode(data).decode(), "base64"]
    else:
        raise ValueError(f"unsupported encoding {encoding!r}")
    return {
        "lamports": acc.lamports,
        "owner": str(acc.owner),
        "data": encoded,
        "executable": acc.executable,
        "rentEpoch": 18_446_744_073_709_551_615,
        "space": len(acc.data),
    }


def token_amount(amount: int, decimals: int) -> dict:
    ui = amount / 10**decimals
    text = f"{amount / 10**decimals:.{decimals}f}".rstrip("0").rstrip(".") if decimals else str(amount)
    return {"amount": str(amount), "decimals": decimals, "uiAmount": ui, "uiAmountString": text}


def token_balance_json(tb: TokenBalance) -> dict:
    return {
        "accountIndex": tb.account_index,
        "mint": str(tb.mint),
        "owner": str(tb.owner),
        "programId": str(tb.program_id),
        "uiTokenAmount": token_amount(tb.amount, tb.decimals),
    }


def message_json(msg: Message | MessageV0) -> dict:
    header = msg.header
    out = {
        "header": {
            "numRequiredSignatures": header.num_required_signatures,
            "numReadonlySignedAccounts": header.num_readonly_signed_accounts,
            "numReadonlyUnsignedAccounts": header.num_readonly_unsigned_accounts,
        },
        "accountKeys": [str(k) for k in msg.account_keys],
        "recentBlockhash": str(msg.recent_blockhash),
        "instructions": [
            {
                "programIdIndex": ix.program_id_index,
                "accounts": list(bytes(ix.accounts)),
                "data": b58(bytes(ix.data)),
                "stackHeight": None,
            }
            for ix in msg.instructions
        ],
    }
    if isinstance(msg, MessageV0):
        out["addressTableLookups"] = [
            {
                "accountKey": str(lu.account_key),
                "writableIndexes": list(bytes(lu.writable_indexes)),
                "readonlyIndexes": list(bytes(lu.readonly_indexes)),
            }
            for lu in msg.address_table_lookups
        ]
    return out


def version(tx: VersionedTransaction) -> Any:
    return 0 if isinstance(tx.message, MessageV0) else "legacy"


def check_version(tx: VersionedTransaction, max_version: Any) -> None:
    if isinstance(tx.message, MessageV0) and max_version is None:
        raise RpcError(
            UNSUPPORTED_TRANSACTION_VERSION,
            "Transaction version (0) is not supported by the requesting client. Please try the request "
            'again with the following configuration parameter: "maxSupportedTransactionVersion": 0',
        )


def meta_json(rec: TxRecord) -> dict:
    inner = []
    for index, group in enumerate(rec.inner_instructions):
        if group:
            compiled = [(ii.instruction(), ii.stack_height()) for ii in group]
            inner.append(
                {
                    "index": index,
                    "instructions": [
                        {
                            "programIdIndex": ix.program_id_index,
                            "accounts": list(bytes(ix.accounts)),
                            "data": b58(bytes(ix.data)),
                            "stackHeight": height,
                        }
                        for ix, height in compiled
                    ],
                }
            )
    err = tx_error_json(rec.err)
    meta = {
        "err": err,
        "status": {"Ok": None} if err is None else {"Err": err},
        "fee": rec.fee,
        "preBalances": rec.pre_balances,
        "postBalances": rec.post_balances,
        "innerInstructions": inner,
        "logMessages": rec.logs,
        "preTokenBalances": [token_balance_json(t) for t in rec.pre_token_balances],
        "postTokenBalances": [token_balance_json(t) for t in rec.post_token_balances],
        "rewards": [],
        "loadedAddresses": {"writable": [], "readonly": []},
        "computeUnitsConsumed": rec.compute_units,
    }
    return meta


def transaction_json(rec: TxRecord, encoding: str) -> dict:
    tx = rec.transaction
    if encoding == "json":
        body: Any = {"signatures": [str(s) for s in tx.signatures], "message": message_json(tx.message)}
    elif encoding in ("base64", "base58"):
        raw = bytes(tx)
        body = [base64.b64encode(raw).decode(), "base64"] if encoding == "base64" else [b58(raw), "base58"]
    elif encoding == "jsonParsed":
        raise RpcError(
            INVALID_PARAMS, "Invalid params: jsonParsed transactions are not supported here; use json or base64"
        )
    else:
        raise ValueError(f"unsupported encoding {encoding!r}")
    return {
        "slot": rec.slot,
        "blockTime": rec.block_time,
        "transaction": body,
        "meta": meta_json(rec),
        "version": version(tx),
    }


def decode_transaction(params: list) -> VersionedTransaction:
    data = param(params, 0)
    encoding = config(params, 1).get("encoding") or "base58"
    if not isinstance(data, str):
        raise ValueError("expected an encoded transaction string")
    try:
        raw = base64.b64decode(data, validate=True) if encoding == "base64" else based58.b58decode(data.encode())
    except Exception as exc:
        raise ValueError(f"invalid {encoding} transaction data") from exc
    if encoding not in ("base58", "base64"):
        raise ValueError(f"unsupported encoding {encoding!r}")
    try:
        return VersionedTransaction.from_bytes(raw)
    except Exception as exc:
        raise RpcError(INVALID_PARAMS, f"failed to deserialize VersionedTransaction: {exc}") from exc


def matches_filters(data: bytes, filters: list) -> bool:
    for f in filters:
        if "dataSize" in f:
            if len(data) != int(f["dataSize"]):
                return False
        elif "memcmp" in f:
            m = f["memcmp"]
            raw = (
                base64.b64decode(m["bytes"])
                if m.get("encoding") == "base64"
                else based58.b58decode(m["bytes"].encode())
            )
            off = int(m["offset"])
            if data[off : off + len(raw)] != raw:
                return False
        else:
            raise ValueError(f"unsupported filter {f!r}")
    return True
