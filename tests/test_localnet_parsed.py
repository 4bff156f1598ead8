"""jsonParsed transactions and blocks, shaped as Agave's transaction-status parsers: real
system, SPL Token, associated-token and memo instructions executed by the SVM, read back over
HTTP with getTransaction / getBlock and with solana-py."""

from __future__ import annotations

import asyncio
import base64
import struct
import time

from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solders.compute_budget import set_compute_unit_limit
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, TransferParams, create_account, transfer
from solders.transaction import VersionedTransaction

from decentral_chain.abi import MINT_LEN, PROGRAM_ID, SYSTEM_PROGRAM_ID, TOKEN_PROGRAM_ID
from decentral_chain.instructions import build_deposit
from decentral_chain.localnet import spl
from decentral_chain.localnet.genesis import USDC
from decentral_chain.localnet.parsed import MEMO_V3_PROGRAM_ID, parsed_instruction
from decentral_chain.pda import ASSOCIATED_TOKEN_PROGRAM_ID, associated_token_address
from tests.test_localnet_rpc import rpc


def _send(url: str, ixs, payer: Keypair, *signers: Keypair) -> str:
    blockhash = Hash.from_string(rpc(url, "getLatestBlockhash")["result"]["value"]["blockhash"])
    tx = VersionedTransaction(Message.new_with_blockhash(ixs, payer.pubkey(), blockhash), [payer, *signers])
    reply = rpc(url, "sendTransaction", [base64.b64encode(bytes(tx)).decode(), {"encoding": "base64"}])
    assert "result" in reply, reply
    return reply["result"]


def _get(url: str, sig: str) -> dict:
    """The transaction with jsonParsed, once confirmed."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        reply = rpc(url, "getTransaction", [sig, {"encoding": "jsonParsed", "commitment": "confirmed"}])
        assert "error" not in reply, reply
        if reply["result"]:
            return reply["result"]
        time.sleep(0.05)
    raise AssertionError(f"{sig} not confirmed")


def test_a_transaction_of_known_programs_is_parsed_as_agave_parses_it(rpc_localnet):
    url, chain, g = rpc_localnet
    payer, mint, receiver = g.admin, Keypair(), Keypair()
    owner = g.clients[0]
    rent = rpc(url, "getMinimumBalanceForRentExemption", [MINT_LEN])["result"]
    dest_ata = associated_token_address(receiver.pubkey(), mint.pubkey())
    transfer_checked = Instruction(
        TOKEN_PROGRAM_ID,
        struct.pack("<BQB", 12, 250_000, 6),
        [
            AccountMeta(owner.token, False, True),
            AccountMeta(g.mint, False, False),
            AccountMeta(associated_token_address(g.admin.pubkey(), g.mint), False, True),
            AccountMeta(owner.pubkey, True, False),
        ],
    )
    ixs = [
        set_compute_unit_limit(400_000),
        Instruction(MEMO_V3_PROGRAM_ID, b"hello, auditor", []),
        create_account(
            CreateAccountParams(
                from_pubkey=payer.pubkey(),
                to_pubkey=mint.pubkey(),
                lamports=rent,
                space=MINT_LEN,
                owner=TOKEN_PROGRAM_ID,
            )
        ),
        spl.initialize_mint2(mint.pubkey(), 6, payer.pubkey()),
        spl.create_associated_token_account(payer.pubkey(), receiver.pubkey(), mint.pubkey()),
        spl.create_associated_token_account(payer.pubkey(), g.admin.pubkey(), g.mint),
        Instruction(
            TOKEN_PROGRAM_ID,
            struct.pack("<BQB", 14, 7_500_000, 6),
            [
                AccountMeta(mint.pubkey(), False, True),
                AccountMeta(dest_ata, False, True),
                AccountMeta(payer.pubkey(), True, False),
            ],
        ),
        transfer_checked,
        transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=receiver.pubkey(), lamports=42)),
    ]
    sig = _send(url, ixs, payer, mint, owner.keypair)
    tx = _get(url, sig)
    msg = tx["transaction"]["message"]
    keys = {k["pubkey"]: k for k in msg["accountKeys"]}
    assert keys[str(payer.pubkey())] == {
        "pubkey": str(payer.pubkey()),
        "writable": True,
        "signer": True,
        "source": "transaction",
    }
    assert keys[str(owner.pubkey)]["signer"] and not keys[str(owner.pubkey)]["writable"]
    assert not keys[str(TOKEN_PROGRAM_ID)]["writable"] and not keys[str(SYSTEM_PROGRAM_ID)]["writable"]
    cb, memo, create, init, ata, ata2, mint_to, xfer, sol = msg["instructions"]
    # Agave has no compute-budget parser: partially decoded
    assert set(cb) == {"programId", "accounts", "data", "stackHeight"} and cb["accounts"] == []
    assert memo == {
        "program": "spl-memo",
        "programId": str(MEMO_V3_PROGRAM_ID),
        "parsed": "hello, auditor",
        "stackHeight": None,
    }
    assert create["program"] == "system" and create["parsed"] == {
        "type": "createAccount",
        "info": {
            "source": str(payer.pubkey()),
            "newAccount": str(mint.pubkey()),
            "lamports": rent,
            "space": MINT_LEN,
            "owner": str(TOKEN_PROGRAM_ID),
        },
    }
    assert init["program"] == "spl-token" and init["parsed"] == {
        "type": "initializeMint2",
        "info": {"mint": str(mint.pubkey()), "decimals": 6, "mintAuthority": str(payer.pubkey())},
    }
    assert ata["program"] == "spl-associated-token-account" and ata["parsed"] == {
        "type": "createIdempotent",
        "info": {
            "source": str(payer.pubkey()),
            "account": str(dest_ata),
            "wallet": str(receiver.pubkey()),
            "mint": str(mint.pubkey()),
            "systemProgram": str(SYSTEM_PROGRAM_ID),
            "tokenProgram": str(TOKEN_PROGRAM_ID),
        },
    }
    assert ata2["parsed"]["type"] == "createIdempotent"
    amount = {"amount": "7500000", "decimals": 6, "uiAmount": 7.5, "uiAmountString": "7.5"}
    assert mint_to["parsed"] == {
        "type": "mintToChecked",
        "info": {
            "mint": str(mint.pubkey()),
            "account": str(dest_ata),
            "tokenAmount": amount,
            "mintAuthority": str(payer.pubkey()),
        },
    }
    assert xfer["parsed"]["type"] == "transferChecked"
    assert xfer["parsed"]["info"]["authority"] == str(owner.pubkey)
    assert xfer["parsed"]["info"]["tokenAmount"]["uiAmountString"] == "0.25"
    assert sol["parsed"] == {
        "type": "transfer",
        "info": {"source": str(payer.pubkey()), "destination": str(receiver.pubkey()), "lamports": 42},
    }
    # inner instructions (the ATA program's CPIs into system and token) are parsed too
    meta = tx["meta"]
    assert "loadedAddresses" not in meta and meta["err"] is None
    inner = {group["index"]: group["instructions"] for group in meta["innerInstructions"]}
    inner_types = [(i.get("program"), i.get("parsed", {}).get("type")) for i in inner[4]]
    assert ("spl-token", "initializeAccount3") in inner_types
    assert all(i["stackHeight"] == 2 for i in inner[4])
    # the json encoding of the same transaction is unchanged: indexes, not parsed
    plain = rpc(url, "getTransaction", [sig, {"encoding": "json", "commitment": "confirmed"}])["result"]
    assert "programIdIndex" in plain["transaction"]["message"]["instructions"][0]
    # getBlock's jsonParsed transactions are the same documents
    reply = rpc(
        url,
        "getBlock",
        [tx["slot"], {"encoding": "jsonParsed", "maxSupportedTransactionVersion": 0, "commitment": "confirmed"}],
    )
    assert "result" in reply, reply
    block = reply["result"]
    [same] = [t for t in block["transactions"] if t["transaction"]["signatures"][0] == sig]
    assert same["transaction"] == tx["transaction"] and same["meta"] == tx["meta"]
    # and the memo shows in getSignaturesForAddress as Agave formats it
    [entry] = [
        e
        for e in rpc(url, "getSignaturesForAddress", [str(mint.pubkey()), {"commitment": "confirmed"}])["result"]
        if e["signature"] == sig
    ]
    assert entry["memo"] == "[14] hello, auditor"


def test_escrow_instructions_are_partially_decoded_and_their_token_cpis_parsed(rpc_localnet):
    url, chain, g = rpc_localnet
    client = g.clients[0]
    sig = _send(url, [build_deposit(owner=client.pubkey, source=client.token, amount=3 * USDC)], client.keypair)
    tx = _get(url, sig)
    [ix] = tx["transaction"]["message"]["instructions"]
    assert ix["programId"] == str(PROGRAM_ID) and "parsed" not in ix
    assert ix["accounts"][0] == str(client.pubkey) and ix["accounts"][3] == str(client.token)
    [group] = tx["meta"]["innerInstructions"]
    transfers = [i for i in group["instructions"] if i.get("parsed", {}).get("type") == "transfer"]
    [token_transfer] = [t for t in transfers if t["program"] == "spl-token"]
    assert token_transfer["parsed"]["info"] == {
        "source": str(client.token),
        "destination": str(g.vault),
        "amount": str(3 * USDC),
        "authority": str(client.pubkey),
    }
    # solana-py reads the parsed transaction into its typed objects
    from solders.signature import Signature

    async def read():
        async with AsyncClient(url) as c:
            return (
                await c.get_transaction(
                    Signature.from_string(sig),
                    encoding="jsonParsed",
                    commitment=Confirmed,
                    max_supported_transaction_version=0,
                )
            ).value

    parsed = asyncio.run(read())
    assert str(parsed.transaction.transaction.message.instructions[0].program_id) == str(PROGRAM_ID)


def test_unreadable_instructions_fall_back_to_partial_decoding():
    keys = [str(Pubkey.new_unique()) for _ in range(3)]
    system = SYSTEM_PROGRAM_ID
    cases = [
        (system, b"\x02\x00\x00\x00\x01", bytes([0, 1])),  # transfer with a short amount
        (system, struct.pack("<IQ", 2, 5), bytes([0])),  # transfer with one account
        (system, struct.pack("<I", 99), bytes([0, 1])),  # no such instruction
        (TOKEN_PROGRAM_ID, bytes([3]) + struct.pack("<Q", 1), bytes([0, 1])),  # transfer, no authority
        (TOKEN_PROGRAM_ID, bytes([26, 0]), bytes([0, 1])),  # a Token-2022 extension instruction
        (ASSOCIATED_TOKEN_PROGRAM_ID, b"\x07", bytes([0, 1, 2])),
        (MEMO_V3_PROGRAM_ID, b"\xff\xfe", b""),  # not UTF-8
        (system, struct.pack("<IQ", 2, 5), bytes([0, 9])),  # an index past the keys
    ]
    for program, data, accounts in cases:
        out = parsed_instruction(keys, program, accounts, data, None)
        assert "parsed" not in out and out["programId"] == str(program), (data, out)
    # and the genuine forms of the same parse
    ok = parsed_instruction(keys, system, bytes([0, 1]), struct.pack("<IQ", 2, 5), None)
    assert ok["parsed"] == {"type": "transfer", "info": {"source": keys[0], "destination": keys[1], "lamports": 5}}
    multisig = parsed_instruction(keys, TOKEN_PROGRAM_ID, bytes([0, 1, 2, 0]), bytes([3]) + struct.pack("<Q", 1), 2)
    assert multisig["parsed"]["info"]["multisigAuthority"] == keys[2]
    assert multisig["parsed"]["info"]["signers"] == [keys[0]] and multisig["stackHeight"] == 2
