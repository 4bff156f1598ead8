"""The validator's wire encodings of the localnet's accounts, transactions and errors.

Accounts as ``getAccountInfo`` shows them, token amounts and balances, messages, metas and
whole transactions as ``getTransaction`` / ``getBlock`` do (json, base64, base58), and
transaction errors as the RPC spells them.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Callable
from typing import Any

import based58
from solders.hash import Hash
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from solders.transaction_status import (
    InstructionErrorCustom,
    InstructionErrorFieldless,
    TransactionErrorFieldless,
    TransactionErrorInstructionError,
    TransactionErrorType,
)

from decentral_chain.abi import MINT_LEN, SYSTEM_PROGRAM_ID, TOKEN_ACCOUNT_LEN
from decentral_chain.errors import RpcError
from decentral_chain.localnet.chain import TOKEN_PROGRAMS, TokenBalance, TxRecord
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


def _coption_key(data: bytes, offset: int) -> str | None:
    """A COption<Pubkey>: 4-byte tag (0 none, 1 some), then the key."""
    return str(Pubkey.from_bytes(data[offset + 4 : offset + 36])) if data[offset] == 1 else None


def parsed_token_data(acc: Any, mint_decimals: Callable[[Pubkey], int | None]) -> dict | None:
    """A classic SPL Token account or mint as Agave's account-decoder parses it (jsonParsed),
    or None for anything else (which is then shown as base64, as validators do)."""
    data = bytes(acc.data)
    if acc.owner not in TOKEN_PROGRAMS:
        return None
    if len(data) == MINT_LEN and data[45] == 1:
        info: dict[str, Any] = {
            "decimals": data[44],
            "freezeAuthority": _coption_key(data, 46),
            "isInitialized": True,
            "mintAuthority": _coption_key(data, 0),
            "supply": str(int.from_bytes(data[36:44], "little")),
        }
        kind = "mint"
    elif len(data) >= TOKEN_ACCOUNT_LEN and data[108] in (1, 2):
        mint = Pubkey.from_bytes(data[:32])
        decimals = mint_decimals(mint) or 0
        info = {
            "isNative": data[109] == 1,
            "mint": str(mint),
            "owner": str(Pubkey.from_bytes(data[32:64])),
            "state": "initialized" if data[108] == 1 else "frozen",
            "tokenAmount": token_amount(int.from_bytes(data[64:72], "little"), decimals),
        }
        if data[72] == 1:
            info["delegate"] = _coption_key(data, 72)
            info["delegatedAmount"] = token_amount(int.from_bytes(data[121:129], "little"), decimals)
        if data[129] == 1:
            info["closeAuthority"] = _coption_key(data, 129)
        if data[109] == 1:
            info["rentExemptReserve"] = token_amount(int.from_bytes(data[113:121], "little"), decimals)
        kind = "account"
    else:
        return None
    program = "spl-token" if acc.owner == TOKEN_PROGRAMS[0] else "spl-token-2022"
    return {"program": program, "parsed": {"info": info, "type": kind}, "space": len(data)}


def account_json(
    acc: Any, encoding: str, data_slice: dict | None, mint_decimals: Callable[[Pubkey], int | None] | None = None
) -> dict:
    """An account as the RPC shows it. ``jsonParsed`` parses SPL Token accounts and mints
    (``mint_decimals`` gives a token account's decimals) and falls back to base64."""
    parsed = None
    if encoding == "jsonParsed":
        parsed = parsed_nonce_data(acc) or parsed_token_data(acc, mint_decimals or (lambda mint: None))
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
    elif parsed is not None:
        encoded = parsed
    elif encoding in ("base64", "jsonParsed"):  # nothing to parse: base64, as validators do
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


def parsed_nonce_data(acc: Any) -> dict | None:
    """A durable nonce account (system-owned, 80 bytes) as Agave's account-decoder parses it:
    version u32, state u32, authority, blockhash, lamports_per_signature u64."""
    data = bytes(acc.data)
    if acc.owner != SYSTEM_PROGRAM_ID or len(data) != 80:
        return None
    version, state = struct.unpack_from("<II", data)
    if version != 1 or state not in (0, 1):
        return None
    if state == 0:
        parsed: dict = {"type": "uninitialized"}
    else:
        parsed = {
            "type": "initialized",
            "info": {
                "authority": str(Pubkey.from_bytes(data[8:40])),
                "blockhash": str(Hash.from_bytes(data[40:72])),
                "feeCalculator": {"lamportsPerSignature": str(struct.unpack_from("<Q", data, 72)[0])},
            },
        }
    return {"program": "nonce", "parsed": parsed, "space": 80}


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
        out["addressTableLookups"] = address_table_lookups_json(msg)
    return out


def address_table_lookups_json(msg: MessageV0) -> list[dict]:
    return [
        {
            "accountKey": str(lu.account_key),
            "writableIndexes": list(bytes(lu.writable_indexes)),
            "readonlyIndexes": list(bytes(lu.readonly_indexes)),
        }
        for lu in msg.address_table_lookups
    ]


def version(tx: VersionedTransaction) -> Any:
    return 0 if isinstance(tx.message, MessageV0) else "legacy"


def check_version(tx: VersionedTransaction, max_version: Any) -> None:
    if isinstance(tx.message, MessageV0) and max_version is None:
        raise RpcError(
            UNSUPPORTED_TRANSACTION_VERSION,
            "Transaction version (0) is not supported by the requesting client. Please try the request "
            'again with the following configuration parameter: "maxSupportedTransactionVersion": 0',
        )


def inner_instructions_json(groups: list) -> list[dict]:
    """Per top-level instruction (with CPIs), its inner instructions as the RPC shows them."""
    inner = []
    for index, group in enumerate(groups):
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
    return inner


def return_data_json(data: Any) -> dict | None:
    """A transaction's return data, or None when no program set any."""
    if data is None or not bytes(data.data):
        return None
    return {"programId": str(data.program_id), "data": [base64.b64encode(bytes(data.data)).decode(), "base64"]}


def meta_json(rec: TxRecord, parsed: bool = False) -> dict:
    """A transaction's meta; ``parsed`` (jsonParsed) parses its inner instructions and, as
    Agave does, leaves ``loadedAddresses`` out."""
    if parsed:
        from decentral_chain.localnet.parsed import parsed_inner_instructions  # imports this module

        inner = parsed_inner_instructions(rec.transaction.message, rec.inner_instructions)
    else:
        inner = inner_instructions_json(rec.inner_instructions)
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
    if parsed:
        del meta["loadedAddresses"]
    return meta


def transaction_json(rec: TxRecord, encoding: str) -> dict:
    tx = rec.transaction
    if encoding == "json":
        body: Any = {"signatures": [str(s) for s in tx.signatures], "message": message_json(tx.message)}
    elif encoding in ("base64", "base58"):
        raw = bytes(tx)
        body = [base64.b64encode(raw).decode(), "base64"] if encoding == "base64" else [b58(raw), "base58"]
    elif encoding == "jsonParsed":
        from decentral_chain.localnet.parsed import parsed_message_json  # imports this module

        body = {"signatures": [str(s) for s in tx.signatures], "message": parsed_message_json(tx.message)}
    else:
        raise ValueError(f"unsupported encoding {encoding!r}")
    return {
        "slot": rec.slot,
        "blockTime": rec.block_time,
        "transaction": body,
        "meta": meta_json(rec, parsed=encoding == "jsonParsed"),
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


#: TransactionError messages as Agave's RPC prints them (solana-transaction-error's Display)
TRANSACTION_ERROR_MESSAGES = {
    "AccountInUse": "Account in use",
    "AccountLoadedTwice": "Account loaded twice",
    "AccountNotFound": "Attempt to debit an account but found no record of a prior credit.",
    "ProgramAccountNotFound": "Attempt to load a program that does not exist",
    "InsufficientFundsForFee": "Insufficient funds for fee",
    "InvalidAccountForFee": "This account may not be used to pay transaction fees",
    "AlreadyProcessed": "This transaction has already been processed",
    "BlockhashNotFound": "Blockhash not found",
    "CallChainTooDeep": "Loader call chain is too deep",
    "MissingSignatureForFee": "Transaction requires a fee but has no signature present",
    "InvalidAccountIndex": "Transaction contains an invalid account reference",
    "SignatureFailure": "Transaction did not pass signature verification",
    "InvalidProgramForExecution": "This program may not be used for executing instructions",
    "SanitizeFailure": "Transaction failed to sanitize accounts offsets correctly",
    "ClusterMaintenance": "Transactions are currently disabled due to cluster maintenance",
    "AccountBorrowOutstanding": "Transaction processing left an account with an outstanding borrowed reference",
    "WouldExceedMaxBlockCostLimit": "Transaction would exceed max Block Cost Limit",
    "UnsupportedVersion": "Transaction version is unsupported",
    "InvalidWritableAccount": "Transaction loads a writable account that cannot be written",
    "WouldExceedMaxAccountCostLimit": "Transaction would exceed max account limit within the block",
    "WouldExceedAccountDataBlockLimit": "Transaction would exceed account data limit within the block",
    "TooManyAccountLocks": "Transaction locked too many accounts",
    "AddressLookupTableNotFound": "Transaction loads an address table account that doesn't exist",
    "InvalidAddressLookupTableOwner": "Transaction loads an address table account with an invalid owner",
    "InvalidAddressLookupTableData": "Transaction loads an address table account with invalid data",
    "InvalidAddressLookupTableIndex": "Transaction address table lookup uses an invalid index",
    "InvalidRentPayingAccount": "Transaction leaves an account with a lower balance than rent-exempt minimum",
    "WouldExceedMaxVoteCostLimit": "Transaction would exceed max Vote Cost Limit",
    "WouldExceedAccountDataTotalLimit": "Transaction would exceed total account data limit",
    "MaxLoadedAccountsDataSizeExceeded": "Transaction exceeded max loaded accounts data size cap",
    "InvalidLoadedAccountsDataSizeLimit": "LoadedAccountsDataSizeLimit set for transaction must be greater than 0.",
    "ResanitizationNeeded": "ResanitizationNeeded",
    "UnbalancedTransaction": "Sum of account balances before and after transaction do not match",
    "ProgramCacheHitMaxLimit": "Program cache hit max limit",
    "CommitCancelled": "CommitCancelled",
}

#: InstructionError messages (solana-instruction-error's Display)
INSTRUCTION_ERROR_MESSAGES = {
    "GenericError": "generic instruction error",
    "InvalidArgument": "invalid program argument",
    "InvalidInstructionData": "invalid instruction data",
    "InvalidAccountData": "invalid account data for instruction",
    "AccountDataTooSmall": "account data too small for instruction",
    "InsufficientFunds": "insufficient funds for instruction",
    "IncorrectProgramId": "incorrect program id for instruction",
    "MissingRequiredSignature": "missing required signature for instruction",
    "AccountAlreadyInitialized": "instruction requires an uninitialized account",
    "UninitializedAccount": "instruction requires an initialized account",
    "UnbalancedInstruction": "sum of account balances before and after instruction do not match",
    "ModifiedProgramId": "instruction illegally modified the program id of an account",
    "ExternalAccountLamportSpend": "instruction spent from the balance of an account it does not own",
    "ExternalAccountDataModified": "instruction modified data of an account it does not own",
    "ReadonlyLamportChange": "instruction changed the balance of a read-only account",
    "ReadonlyDataModified": "instruction modified data of a read-only account",
    "DuplicateAccountIndex": "instruction contains duplicate accounts",
    "ExecutableModified": "instruction changed executable bit of an account",
    "RentEpochModified": "instruction modified rent epoch of an account",
    "NotEnoughAccountKeys": "insufficient account keys for instruction",
    "AccountDataSizeChanged": "program other than the account's owner changed the size of the account data",
    "AccountNotExecutable": "instruction expected an executable account",
    "AccountBorrowFailed": "instruction tries to borrow reference for an account which is already borrowed",
    "AccountBorrowOutstanding": "instruction left account with an outstanding borrowed reference",
    "DuplicateAccountOutOfSync": "instruction modifications of multiply-passed account differ",
    "InvalidError": "program returned invalid error code",
    "ExecutableDataModified": "instruction changed executable accounts data",
    "ExecutableLamportChange": "instruction changed the balance of an executable account",
    "ExecutableAccountNotRentExempt": "executable accounts must be rent exempt",
    "UnsupportedProgramId": "Unsupported program id",
    "CallDepth": "Cross-program invocation call depth too deep",
    "MissingAccount": "An account required by the instruction is missing",
    "ReentrancyNotAllowed": "Cross-program invocation reentrancy not allowed for this instruction",
    "MaxSeedLengthExceeded": "Length of the seed is too long for address generation",
    "InvalidSeeds": "Provided seeds do not result in a valid address",
    "InvalidRealloc": "Failed to reallocate account data",
    "ComputationalBudgetExceeded": "Computational budget exceeded",
    "PrivilegeEscalation": "Cross-program invocation with unauthorized signer or writable account",
    "ProgramEnvironmentSetupFailure": "Failed to create program execution environment",
    "ProgramFailedToComplete": "Program failed to complete",
    "ProgramFailedToCompile": "Program failed to compile",
    "Immutable": "Account is immutable",
    "IncorrectAuthority": "Incorrect authority provided",
    "BorshIoError": "Failed to serialize or deserialize account data",
    "AccountNotRentExempt": "An account does not have enough lamports to be rent-exempt",
    "InvalidAccountOwner": "Invalid account owner",
    "ArithmeticOverflow": "Program arithmetic overflowed",
    "UnsupportedSysvar": "Unsupported sysvar",
    "IllegalOwner": "Provided owner is not allowed",
    "MaxAccountsDataAllocationsExceeded": "Accounts data allocations exceeded the maximum allowed per transaction",
    "MaxAccountsExceeded": "Max accounts exceeded",
    "MaxInstructionTraceLengthExceeded": "Max instruction trace length exceeded",
    "BuiltinProgramsMustConsumeComputeUnits": "Builtin programs must consume compute units",
    "BailOut": "Block production bailed out",
}


def describe_error(err: Any) -> str:
    """A transaction error (in its JSON form, see :func:`tx_error_json`) in the words Agave's
    RPC uses, e.g. ``Error processing Instruction 0: custom program error: 0x1787``."""
    if isinstance(err, str):
        return TRANSACTION_ERROR_MESSAGES.get(err, err)
    if isinstance(err, dict) and len(err) == 1:
        name, value = next(iter(err.items()))
        if name == "InstructionError" and isinstance(value, list) and len(value) == 2:
            index, inner = value
            if isinstance(inner, dict) and isinstance(inner.get("Custom"), int):
                detail = f"custom program error: {inner['Custom']:#x}"
            elif isinstance(inner, dict) and len(inner) == 1:
                detail = INSTRUCTION_ERROR_MESSAGES.get(next(iter(inner)), str(inner))
            else:
                detail = INSTRUCTION_ERROR_MESSAGES.get(str(inner), str(inner))
            return f"Error processing Instruction {index}: {detail}"
        if name == "DuplicateInstruction":
            return f"Transaction contains a duplicate instruction ({value}) that is not allowed"
        if name == "InsufficientFundsForRent" and isinstance(value, dict):
            return f"Transaction results in an account ({value.get('account_index')}) with insufficient funds for rent"
        if name == "ProgramExecutionTemporarilyRestricted" and isinstance(value, dict):
            return (
                f"Execution of the program referenced by account at index {value.get('account_index')} "
                "is temporarily restricted."
            )
    return str(err)
