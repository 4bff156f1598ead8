"""Solana JSON-RPC methods over a :class:`LocalChain`, in the validator's wire format.

Each ``@method`` joins the registry that :func:`decentral_chain.localnet.jsonrpc.dispatch`
serves; encodings come from :mod:`decentral_chain.localnet.encoding`.
"""

from __future__ import annotations

import base64
from typing import Any

from solders.hash import Hash
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from solders.transaction_status import TransactionErrorFieldless

from decentral_chain.errors import RpcError
from decentral_chain.localnet.chain import LAMPORTS_PER_SIGNATURE, SLOTS_PER_EPOCH, TOKEN_PROGRAMS, LocalChain
from decentral_chain.localnet.encoding import (
    account_json,
    check_version,
    decode_transaction,
    describe_error,
    inner_instructions_json,
    matches_filters,
    return_data_json,
    token_amount,
    transaction_json,
    tx_error_json,
)
from decentral_chain.localnet.jsonrpc import (
    FEATURE_SET,
    SOLANA_CORE_VERSION,
    config,
    context,
    method,
    param,
    parse_pubkey,
    parse_signature,
    read_commitment,
)
from decentral_chain.localnet.parsed import memo_of
from decentral_chain.rpc import (
    BLOCK_NOT_AVAILABLE,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    NO_SNAPSHOT,
    SEND_TRANSACTION_PREFLIGHT_FAILURE,
    TRANSACTION_SIGNATURE_VERIFICATION_FAILURE,
)

# ------------------------------------------------------------------------- cluster


@method("getHealth")
def get_health(chain: LocalChain, params: list) -> str:
    return "ok"


@method("getVersion")
def get_version(chain: LocalChain, params: list) -> dict:
    return {"solana-core": SOLANA_CORE_VERSION, "feature-set": FEATURE_SET}


@method("getGenesisHash")
def get_genesis_hash(chain: LocalChain, params: list) -> str:
    return str(chain.genesis_hash)


@method("getSlot")
def get_slot(chain: LocalChain, params: list) -> int:
    return chain.slot_at(read_commitment(param(params, 0, {})))


@method("getBlockHeight")
def get_block_height(chain: LocalChain, params: list) -> int:
    return chain.slot_at(read_commitment(param(params, 0, {})))  # one block per slot, none skipped


@method("getTransactionCount")
def get_transaction_count(chain: LocalChain, params: list) -> int:
    return chain.transaction_count


@method("getEpochInfo")
def get_epoch_info(chain: LocalChain, params: list) -> dict:
    return {
        "absoluteSlot": chain.slot,
        "blockHeight": chain.slot,
        "epoch": chain.slot // SLOTS_PER_EPOCH,
        "slotIndex": chain.slot % SLOTS_PER_EPOCH,
        "slotsInEpoch": SLOTS_PER_EPOCH,
        "transactionCount": chain.transaction_count,
    }


@method("getLatestBlockhash")
def get_latest_blockhash(chain: LocalChain, params: list) -> dict:
    blockhash, last_valid = chain.latest_blockhash
    return context(chain, {"blockhash": str(blockhash), "lastValidBlockHeight": last_valid})


@method("isBlockhashValid")
def is_blockhash_valid(chain: LocalChain, params: list) -> dict:
    try:
        blockhash = Hash.from_string(param(params, 0))
    except Exception as exc:
        raise ValueError("invalid blockhash") from exc
    return context(chain, chain.blockhash_valid(blockhash))


@method("getFeeForMessage")
def get_fee_for_message(chain: LocalChain, params: list) -> dict:
    raw = base64.b64decode(param(params, 0), validate=True)
    try:
        msg: Any = MessageV0.from_bytes(raw[1:]) if raw[0] & 0x80 else Message.from_bytes(raw)
    except Exception as exc:
        raise ValueError("invalid message") from exc
    return context(chain, LAMPORTS_PER_SIGNATURE * msg.header.num_required_signatures)


@method("getMinimumBalanceForRentExemption")
def get_minimum_balance_for_rent_exemption(chain: LocalChain, params: list) -> int:
    size = param(params, 0)
    if not isinstance(size, int) or size < 0:
        raise ValueError("expected a non-negative data length")
    return chain.svm.minimum_balance_for_rent_exemption(size)


# ------------------------------------------------------------------------ accounts


@method("getBalance")
def get_balance(chain: LocalChain, params: list) -> dict:
    acc = chain.get_account(parse_pubkey(param(params, 0)))
    return context(chain, acc.lamports if acc else 0)


@method("getAccountInfo")
def get_account_info(chain: LocalChain, params: list) -> dict:
    cfg = config(params, 1)
    acc = chain.get_account(parse_pubkey(param(params, 0)))
    value = (
        account_json(acc, cfg.get("encoding") or "base58", cfg.get("dataSlice"), chain.mint_decimals) if acc else None
    )
    return context(chain, value)


@method("getMultipleAccounts")
def get_multiple_accounts(chain: LocalChain, params: list) -> dict:
    keys = param(params, 0)
    if not isinstance(keys, list) or len(keys) > 100:
        raise ValueError("expected a list of at most 100 public keys")
    cfg = config(params, 1)
    accounts = [chain.get_account(parse_pubkey(k)) for k in keys]
    enc = cfg.get("encoding") or "base64"
    return context(
        chain, [account_json(a, enc, cfg.get("dataSlice"), chain.mint_decimals) if a else None for a in accounts]
    )


@method("getProgramAccounts")
def get_program_accounts(chain: LocalChain, params: list) -> Any:
    program = parse_pubkey(param(params, 0))
    cfg = config(params, 1)
    filters = cfg.get("filters") or []
    enc = cfg.get("encoding") or "base64"
    out = [
        {"pubkey": str(k), "account": account_json(a, enc, cfg.get("dataSlice"), chain.mint_decimals)}
        for k, a in chain.accounts()
        if a.owner == program and matches_filters(bytes(a.data), filters)
    ]
    return context(chain, out) if cfg.get("withContext") else out


@method("getTokenAccountBalance")
def get_token_account_balance(chain: LocalChain, params: list) -> dict:
    key = parse_pubkey(param(params, 0))
    balances = chain.token_balances([key])
    if not balances:
        raise RpcError(
            INVALID_PARAMS,
            "Invalid param: could not find account"
            if chain.get_account(key) is None
            else "Invalid param: not a Token account",
        )
    return context(chain, token_amount(balances[0].amount, balances[0].decimals))


@method("getTokenAccountsByOwner")
def get_token_accounts_by_owner(chain: LocalChain, params: list) -> dict:
    owner = parse_pubkey(param(params, 0))
    return _token_accounts(chain, params, lambda data: data[32:64] == bytes(owner))


@method("getTokenAccountsByDelegate")
def get_token_accounts_by_delegate(chain: LocalChain, params: list) -> dict:
    """Token accounts whose delegate (COption<Pubkey> at 72..108) is the given key."""
    delegate = b"\x01\x00\x00\x00" + bytes(parse_pubkey(param(params, 0)))
    return _token_accounts(chain, params, lambda data: data[72:108] == delegate)


def _token_accounts(chain: LocalChain, params: list, matches: Any) -> dict:
    selector = param(params, 1)
    if not isinstance(selector, dict) or not ({"mint", "programId"} & selector.keys()):
        raise ValueError('expected {"mint": ...} or {"programId": ...}')
    cfg = config(params, 2)
    mint = parse_pubkey(selector["mint"]) if "mint" in selector else None
    program = parse_pubkey(selector["programId"]) if "programId" in selector else None
    programs = (program,) if program else TOKEN_PROGRAMS
    out = []
    for key, acc in chain.accounts():
        data = bytes(acc.data)
        if acc.owner not in programs or len(data) < 165 or not matches(data):
            continue
        if mint is not None and data[:32] != bytes(mint):
            continue
        out.append(
            {
                "pubkey": str(key),
                "account": account_json(acc, cfg.get("encoding") or "base64", None, chain.mint_decimals),
            }
        )
    return context(chain, out)


@method("requestAirdrop")
def request_airdrop(chain: LocalChain, params: list) -> str:
    key = parse_pubkey(param(params, 0))
    lamports = param(params, 1)
    if not isinstance(lamports, int) or lamports <= 0:
        raise ValueError("expected a positive lamport amount")
    outcome = chain.airdrop(key, lamports)
    if outcome.record is None or outcome.record.err is not None:
        raise RpcError(INTERNAL_ERROR, f"airdrop failed: {tx_error_json(outcome.rejected or outcome.record.err)}")
    return str(outcome.record.signature)


# ------------------------------------------------------------------- transactions


@method("sendTransaction")
def send_transaction(chain: LocalChain, params: list) -> str:
    tx = decode_transaction(params)
    cfg = config(params, 1)
    if not cfg.get("skipPreflight", False):
        sim = chain.simulate(tx)
        failure = sim.rejected
        if failure == TransactionErrorFieldless.SignatureFailure:
            raise RpcError(TRANSACTION_SIGNATURE_VERIFICATION_FAILURE, "Transaction signature verification failure")
        if failure is not None:
            raise RpcError(
                SEND_TRANSACTION_PREFLIGHT_FAILURE,
                f"Transaction simulation failed: {describe_error(tx_error_json(failure))}",
                {
                    "err": tx_error_json(failure),
                    "logs": sim.logs,
                    "accounts": None,
                    "unitsConsumed": sim.units,
                    "returnData": None,
                    "innerInstructions": None,
                },
            )
    outcome = chain.process(tx)  # LiteSVM verifies every signature
    if outcome.rejected == TransactionErrorFieldless.SignatureFailure:
        raise RpcError(TRANSACTION_SIGNATURE_VERIFICATION_FAILURE, "Transaction signature verification failure")
    if outcome.record is None and outcome.rejected is not None:
        raise RpcError(
            SEND_TRANSACTION_PREFLIGHT_FAILURE,
            f"Transaction simulation failed: {describe_error(tx_error_json(outcome.rejected))}",
            {
                "err": tx_error_json(outcome.rejected),
                "logs": outcome.logs,
                "accounts": None,
                "unitsConsumed": outcome.units,
                "returnData": None,
                "innerInstructions": None,
            },
        )
    return str(tx.signatures[0])


@method("simulateTransaction")
def simulate_transaction(chain: LocalChain, params: list) -> dict:
    """As Agave: signatures are not checked unless ``sigVerify`` (so an unsigned or partly
    signed transaction simulates); ``replaceRecentBlockhash`` (not with sigVerify) swaps in the
    newest blockhash; ``accounts`` returns the listed accounts as the simulation left them;
    ``innerInstructions`` the CPIs; ``returnData`` and ``unitsConsumed`` always."""
    tx = decode_transaction(params)
    cfg = config(params, 1)
    sig_verify = bool(cfg.get("sigVerify"))
    if sig_verify and cfg.get("replaceRecentBlockhash"):
        raise RpcError(INVALID_PARAMS, "sigVerify may not be used with replaceRecentBlockhash")
    if sig_verify and not all(tx.verify_with_results()):
        raise RpcError(TRANSACTION_SIGNATURE_VERIFICATION_FAILURE, "Transaction signature verification failure")
    wanted = cfg.get("accounts")
    if wanted is not None and (not isinstance(wanted, dict) or not isinstance(wanted.get("addresses"), list)):
        raise ValueError('accounts must be {"addresses": [...], "encoding": ...}')
    addresses = [parse_pubkey(a) for a in wanted["addresses"]] if wanted else []
    replacement = None
    if cfg.get("replaceRecentBlockhash"):
        msg = tx.message
        blockhash, last_valid = chain.latest_blockhash
        replacement = {"blockhash": str(blockhash), "lastValidBlockHeight": last_valid}
        if isinstance(msg, MessageV0):
            msg = MessageV0(
                msg.header, list(msg.account_keys), blockhash, list(msg.instructions), list(msg.address_table_lookups)
            )
        else:
            msg = Message.new_with_compiled_instructions(
                msg.header.num_required_signatures,
                msg.header.num_readonly_signed_accounts,
                msg.header.num_readonly_unsigned_accounts,
                list(msg.account_keys),
                blockhash,
                list(msg.instructions),
            )
        tx = VersionedTransaction.populate(msg, list(tx.signatures))
    sim = chain.simulate(tx, sig_verify=sig_verify)
    accounts = None
    if wanted:
        encoding = wanted.get("encoding") or "base64"

        def after(key: Pubkey) -> Any:
            acc = sim.post_accounts.get(key) or chain.get_account(key)
            empty = acc is None or (acc.lamports == 0 and not bytes(acc.data))
            return None if empty else account_json(acc, encoding, None, chain.mint_decimals)

        accounts = [after(k) for k in addresses]
    value = {
        "err": tx_error_json(sim.rejected),
        "logs": sim.logs,
        "accounts": accounts,
        "unitsConsumed": sim.units,
        "returnData": return_data_json(sim.return_data),
        "innerInstructions": inner_instructions_json(sim.inner_instructions) if cfg.get("innerInstructions") else None,
        "loadedAccountsDataSize": None,
    }
    if replacement is not None:
        value["replacementBlockhash"] = replacement
    return context(chain, value)


@method("getSignatureStatuses")
def get_signature_statuses(chain: LocalChain, params: list) -> dict:
    sigs = param(params, 0)
    if not isinstance(sigs, list) or len(sigs) > 256:
        raise ValueError("expected a list of at most 256 signatures")
    out = []
    for s in sigs:
        rec = chain.history.get(parse_signature(s))
        if rec is None:
            out.append(None)
            continue
        err = tx_error_json(rec.err)
        status = chain.status(rec.slot)
        out.append(
            {
                "slot": rec.slot,
                "confirmations": None if status == "finalized" else chain.slot - rec.slot,
                "err": err,
                "status": {"Ok": None} if err is None else {"Err": err},
                "confirmationStatus": status,
            }
        )
    return context(chain, out)


@method("getTransaction")
def get_transaction(chain: LocalChain, params: list) -> dict | None:
    sig = parse_signature(param(params, 0))
    cfg = param(params, 1, {})
    encoding = cfg if isinstance(cfg, str) else (cfg.get("encoding") or "json")
    commitment = read_commitment(cfg, minimum="confirmed")
    rec = chain.history.get(sig)
    if rec is None or not chain.reached(rec.slot, commitment):
        return None
    check_version(rec.transaction, cfg.get("maxSupportedTransactionVersion") if isinstance(cfg, dict) else None)
    return transaction_json(rec, encoding)


@method("getSignaturesForAddress")
def get_signatures_for_address(chain: LocalChain, params: list) -> list:
    key = parse_pubkey(param(params, 0))
    cfg = config(params, 1)
    limit = int(cfg.get("limit") or 1000)
    if not 1 <= limit <= 1000:
        raise ValueError("limit must be between 1 and 1000")
    before = parse_signature(cfg["before"]) if cfg.get("before") else None
    until = parse_signature(cfg["until"]) if cfg.get("until") else None
    commitment = read_commitment(cfg, minimum="confirmed")
    sigs = [
        s
        for s in reversed(chain.by_address.get(key, []))  # newest first
        if chain.reached(chain.history[s].slot, commitment)
    ]
    if before is not None:
        sigs = sigs[sigs.index(before) + 1 :] if before in sigs else []
    out = []
    for s in sigs:
        if s == until or len(out) == limit:
            break
        rec = chain.history[s]
        out.append(
            {
                "signature": str(s),
                "slot": rec.slot,
                "err": tx_error_json(rec.err),
                "memo": memo_of(rec.transaction.message),
                "blockTime": rec.block_time,
                "confirmationStatus": chain.status(rec.slot),
            }
        )
    return out


# ------------------------------------------------------------------------- blocks


def _block(chain: LocalChain, slot: Any, commitment: str = "confirmed") -> Any:
    """A closed block (the current slot is still being filled) at ``commitment``."""
    if not isinstance(slot, int) or isinstance(slot, bool) or slot < 0:
        raise ValueError("expected a slot number")
    block = chain.blocks.get(slot)
    if block is None or slot >= chain.slot or not chain.reached(slot, commitment):
        raise RpcError(BLOCK_NOT_AVAILABLE, f"Block not available for slot {slot}")
    return block


@method("getBlockTime")
def get_block_time(chain: LocalChain, params: list) -> int:
    return _block(chain, param(params, 0)).block_time


@method("getBlock")
def get_block(chain: LocalChain, params: list) -> dict:
    cfg = param(params, 1, {})
    cfg = {"encoding": cfg} if isinstance(cfg, str) else cfg
    block = _block(chain, param(params, 0), read_commitment(cfg, minimum="confirmed"))
    details = cfg.get("transactionDetails") or "full"
    out: dict[str, Any] = {
        "blockHeight": block.slot,
        "blockTime": block.block_time,
        "blockhash": str(block.blockhash),
        "parentSlot": block.parent_slot,
        "previousBlockhash": str(block.previous_blockhash),
    }
    records = [chain.history[s] for s in block.signatures]
    if details == "full":
        for rec in records:
            check_version(rec.transaction, cfg.get("maxSupportedTransactionVersion"))
        out["transactions"] = [
            {
                k: v
                for k, v in transaction_json(rec, cfg.get("encoding") or "json").items()
                if k in ("transaction", "meta", "version")
            }
            for rec in records
        ]
    elif details == "signatures":
        out["signatures"] = [str(r.signature) for r in records]
    elif details != "none":
        raise ValueError(f"unsupported transactionDetails {details!r}")
    if cfg.get("rewards") is not False:
        out["rewards"] = []
    return out


@method("getBlocks")
def get_blocks(chain: LocalChain, params: list) -> list[int]:
    end_param = param(params, 1)
    cfg = end_param if isinstance(end_param, dict) else config(params, 2)
    last = min(chain.slot - 1, chain.slot_at(read_commitment(cfg, minimum="confirmed")))
    start, end = param(params, 0), last if end_param is None or isinstance(end_param, dict) else end_param
    if not isinstance(start, int) or not isinstance(end, int) or start < 0 or end - start > 500_000:
        raise ValueError("expected start_slot and end_slot at most 500,000 apart")
    return [s for s in range(start, min(end, last) + 1) if s in chain.blocks]


@method("getBlocksWithLimit")
def get_blocks_with_limit(chain: LocalChain, params: list) -> list[int]:
    start, limit = param(params, 0), param(params, 1)
    if not isinstance(start, int) or not isinstance(limit, int) or not 0 <= limit <= 500_000:
        raise ValueError("expected start_slot and a limit of at most 500,000")
    return get_blocks(chain, [start, start + limit - 1, config(params, 2)]) if limit else []


@method("getBlockCommitment")
def get_block_commitment(chain: LocalChain, params: list) -> dict:
    slot = param(params, 0)
    if not isinstance(slot, int):
        raise ValueError("expected a slot number")
    return {"commitment": None, "totalStake": 0}  # single node, no stake-weighted votes


@method("getFirstAvailableBlock")
def get_first_available_block(chain: LocalChain, params: list) -> int:
    return next(iter(chain.blocks))


@method("minimumLedgerSlot")  # Agave's name
@method("getMinimumLedgerSlot")
def get_minimum_ledger_slot(chain: LocalChain, params: list) -> int:
    return next(iter(chain.blocks))


@method("getBlockProduction")
def get_block_production(chain: LocalChain, params: list) -> dict:
    """One leader, every block its own; skipped slots (time travel) are leader slots without one."""
    first = next(iter(chain.blocks))
    produced = sum(1 for slot in chain.blocks if slot <= chain.slot)
    by_identity = {str(chain.identity): [chain.slot - first + 1, produced]}
    return context(chain, {"byIdentity": by_identity, "range": {"firstSlot": first, "lastSlot": chain.slot}})


@method("getHighestSnapshotSlot")
def get_highest_snapshot_slot(chain: LocalChain, params: list) -> dict:
    raise RpcError(NO_SNAPSHOT, "No snapshot")  # this node takes none (its ledger is replayed instead)


@method("getMaxRetransmitSlot")
@method("getMaxShredInsertSlot")
def get_max_shred_slot(chain: LocalChain, params: list) -> int:
    return chain.slot


@method("getRecentPrioritizationFees")
def get_recent_prioritization_fees(chain: LocalChain, params: list) -> list:
    """Per recent block, the lowest priority fee paid: 0 here (no fee market on one node)."""
    if params and not (isinstance(params[0], list) and len(params[0]) <= 128):
        raise ValueError("expected a list of at most 128 addresses")
    for key in param(params, 0, []):
        parse_pubkey(key)
    return [{"slot": slot, "prioritizationFee": 0} for slot in list(chain.blocks)[-150:]]


@method("getStakeMinimumDelegation")
def get_stake_minimum_delegation(chain: LocalChain, params: list) -> dict:
    return context(chain, 1)  # the stake program's minimum without the 1-SOL feature, in lamports


@method("getRecentPerformanceSamples")
def get_recent_performance_samples(chain: LocalChain, params: list) -> list[dict]:
    limit = param(params, 0, 720)
    if not isinstance(limit, int) or not 0 < limit <= 720:
        raise ValueError("limit must be between 1 and 720")
    samples, slots = [], sorted(chain.blocks)
    per_sample = 150  # ~60 s of 400 ms slots, as validators sample
    for end in range(len(slots), 0, -per_sample):
        window = slots[max(0, end - per_sample) : end]
        txs = sum(len(chain.blocks[s].signatures) for s in window)
        samples.append(
            {
                "slot": window[-1],
                "numTransactions": txs,
                "numNonVoteTransactions": txs,
                "numSlots": len(window),
                "samplePeriodSecs": max(1, round(len(window) * 0.4)),
            }
        )
        if len(samples) == limit:
            break
    return samples


# ------------------------------------------------------------------- token supply


def _mint_info(chain: LocalChain, key: Pubkey) -> tuple[int, int]:
    acc = chain.get_account(key)
    if acc is None or acc.owner not in TOKEN_PROGRAMS or len(acc.data) < 82:
        raise RpcError(INVALID_PARAMS, "Invalid param: not a Token mint")
    data = bytes(acc.data)
    return int.from_bytes(data[36:44], "little"), data[44]


@method("getTokenSupply")
def get_token_supply(chain: LocalChain, params: list) -> dict:
    supply, decimals = _mint_info(chain, parse_pubkey(param(params, 0)))
    return context(chain, token_amount(supply, decimals))


@method("getTokenLargestAccounts")
def get_token_largest_accounts(chain: LocalChain, params: list) -> dict:
    mint = parse_pubkey(param(params, 0))
    _, decimals = _mint_info(chain, mint)
    holders = []
    for key, acc in chain.accounts():
        data = bytes(acc.data)
        if acc.owner in TOKEN_PROGRAMS and len(data) >= 165 and data[:32] == bytes(mint):
            holders.append((int.from_bytes(data[64:72], "little"), str(key)))
    holders.sort(key=lambda h: (-h[0], h[1]))
    return context(chain, [{"address": key, **token_amount(amount, decimals)} for amount, key in holders[:20]])


# ------------------------------------------------------------- cluster and economy


@method("getSupply")
def get_supply(chain: LocalChain, params: list) -> dict:
    total = sum(acc.lamports for _, acc in chain.accounts())
    return context(chain, {"total": total, "circulating": total, "nonCirculating": 0, "nonCirculatingAccounts": []})


@method("getLargestAccounts")
def get_largest_accounts(chain: LocalChain, params: list) -> dict:
    """The 20 accounts with the most lamports (every account circulates: no stake here)."""
    cfg = config(params, 0)
    if cfg.get("filter") not in (None, "circulating", "nonCirculating"):
        raise ValueError('filter must be "circulating" or "nonCirculating"')
    if cfg.get("filter") == "nonCirculating":
        return context(chain, [])
    ranked = sorted(((acc.lamports, str(key)) for key, acc in chain.accounts()), key=lambda a: (-a[0], a[1]))
    return context(chain, [{"address": key, "lamports": lamports} for lamports, key in ranked[:20]])


@method("getEpochSchedule")
def get_epoch_schedule(chain: LocalChain, params: list) -> dict:
    return {
        "slotsPerEpoch": SLOTS_PER_EPOCH,
        "leaderScheduleSlotOffset": SLOTS_PER_EPOCH,
        "warmup": False,
        "firstNormalEpoch": 0,
        "firstNormalSlot": 0,
    }


@method("getInflationGovernor")
def get_inflation_governor(chain: LocalChain, params: list) -> dict:
    # this chain mints no inflation: every rate is zero
    return {"initial": 0.0, "terminal": 0.0, "taper": 0.0, "foundation": 0.0, "foundationTerm": 0.0}


@method("getInflationRate")
def get_inflation_rate(chain: LocalChain, params: list) -> dict:
    return {"total": 0.0, "validator": 0.0, "foundation": 0.0, "epoch": chain.slot // SLOTS_PER_EPOCH}


@method("getInflationReward")
def get_inflation_reward(chain: LocalChain, params: list) -> list[None]:
    keys = param(params, 0)
    if not isinstance(keys, list):
        raise ValueError("expected a list of addresses")
    return [None for k in keys if parse_pubkey(k)]  # no staking rewards on this chain


@method("getIdentity")
def get_identity(chain: LocalChain, params: list) -> dict:
    return {"identity": str(chain.identity)}


@method("getClusterNodes")
def get_cluster_nodes(chain: LocalChain, params: list) -> list[dict]:
    return [
        {
            "pubkey": str(chain.identity),
            "gossip": None,
            "tpu": None,
            "tpuQuic": None,
            "rpc": chain.rpc_address,
            "pubsub": chain.pubsub_address,
            "version": SOLANA_CORE_VERSION,
            "featureSet": FEATURE_SET,
            "shredVersion": 0,
        }
    ]


@method("getVoteAccounts")
def get_vote_accounts(chain: LocalChain, params: list) -> dict:
    return {"current": [], "delinquent": []}  # no vote accounts: blocks are produced without voting


@method("getLeaderSchedule")
def get_leader_schedule(chain: LocalChain, params: list) -> dict | None:
    slot = param(params, 0, chain.slot)
    if isinstance(slot, dict):
        slot, cfg = chain.slot, slot
    else:
        cfg = config(params, 1)
    if not isinstance(slot, int) or slot // SLOTS_PER_EPOCH > chain.slot // SLOTS_PER_EPOCH + 1:
        return None
    if cfg.get("identity") not in (None, str(chain.identity)):
        return {}
    return {str(chain.identity): list(range(SLOTS_PER_EPOCH))}


@method("getSlotLeader")
def get_slot_leader(chain: LocalChain, params: list) -> str:
    return str(chain.identity)


@method("getSlotLeaders")
def get_slot_leaders(chain: LocalChain, params: list) -> list[str]:
    start, limit = param(params, 0), param(params, 1)
    if not isinstance(start, int) or not isinstance(limit, int) or not 0 < limit <= 5_000:
        raise ValueError("expected start_slot and a limit of 1..5000")
    return [str(chain.identity)] * limit
