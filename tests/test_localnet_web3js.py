"""@solana/web3.js (from npm, pinned in tests/js) against the localnet: its default code
paths, unpatched — confirmTransaction included, which subscribes on RPC port + 1."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from decentral_chain.localnet.chain import LocalChain
from decentral_chain.localnet.genesis import build_genesis
from decentral_chain.localnet.pubsub import create_pubsub_app
from decentral_chain.localnet.server import ServerThread, create_app, free_port_pair
from tests.conftest import FAST_CHAIN

JS = Path(__file__).resolve().parent / "js"


def test_web3js_sends_confirms_and_reads(program_elf, node_modules):
    g = build_genesis(program_elf)
    chain = LocalChain.from_genesis(g, **FAST_CHAIN)
    port = free_port_pair()
    with ServerThread((create_app(chain), port), (create_pubsub_app(chain), port + 1)) as server:
        secret = json.dumps(list(bytes(g.admin)))
        client = g.clients[0]
        proc = subprocess.run(
            ["node", str(JS / "web3_flow.mjs"), server.url(), secret, str(client.pubkey), str(g.mint)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=JS,
        )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["confirmationErr"] is None and result["txErr"] is None
    assert result["airdropErr"] is None
    assert result["lamports"] == 1_234_567 + 500_000_000 and result["fee"] == 5_000
    assert result["owner"] == "11111111111111111111111111111111"
    assert result["version"]["solana-core"]
    # jsonParsed, shaped as Agave's account-decoder
    [token] = result["tokenAccounts"]
    assert token["pubkey"] == str(client.token) and token["program"] == "spl-token"
    info = token["parsed"]["info"]
    assert token["parsed"]["type"] == "account" and info["owner"] == str(client.pubkey)
    assert info["mint"] == str(g.mint) and info["state"] == "initialized" and info["isNative"] is False
    assert info["tokenAmount"] == {
        "amount": str(1_000 * 10**6),
        "decimals": 6,
        "uiAmount": 1000.0,
        "uiAmountString": "1000",
    }
    mint = result["mint"]
    assert mint["type"] == "mint" and mint["info"]["decimals"] == 6 and mint["info"]["isInitialized"] is True
    assert mint["info"]["mintAuthority"] == str(g.mint_authority.pubkey()) and mint["info"]["freezeAuthority"] is None
    # getParsedTransaction / getParsedBlock: the transfer as Agave's system parser shows it
    transfer = result["parsedTransfer"]
    assert transfer["program"] == "system" and transfer["programId"] == "11111111111111111111111111111111"
    assert transfer["parsed"]["type"] == "transfer"
    assert transfer["parsed"]["info"]["source"] == str(g.admin.pubkey())
    assert transfer["parsed"]["info"]["lamports"] == 1_234_567
    assert result["blockTransfer"] == transfer
    payer, receiver, system = result["parsedKeys"]
    assert payer == {"pubkey": str(g.admin.pubkey()), "signer": True, "writable": True}
    assert receiver["writable"] and not receiver["signer"] and not system["writable"]
    from solders.signature import Signature

    record = chain.history[Signature.from_string(result["signature"])]
    assert record.slot == result["slot"]


def test_anchor_client_gets_typed_errors_from_the_program_log(program_elf, node_modules):
    """@coral-xyz/anchor (pinned in tests/js) drives the escrow from our Anchor >= 0.30 IDL:
    program.methods with PDAs it resolves, a typed account fetch, the deposit's event through
    addEventListener and EventParser, and a failed withdraw that
    its translateError turns into an AnchorError by name, number and message — read from the
    `AnchorError occurred. ...` line the program logs for every custom error."""
    from decentral_chain import abi

    g = build_genesis(program_elf)
    chain = LocalChain.from_genesis(g, **FAST_CHAIN)
    port = free_port_pair()
    idl = Path(abi.__file__).parent / "idl" / "decentral_escrow.anchor-0.30.json"
    with ServerThread((create_app(chain), port), (create_pubsub_app(chain), port + 1)) as server:
        client = g.clients[0]
        secret = json.dumps(list(bytes(client.keypair)))
        proc = subprocess.run(
            ["node", str(JS / "anchor_errors.mjs"), server.url(), secret, str(idl), str(client.token)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=JS,
        )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["free"] == "1000000" and result["owner"] == str(client.pubkey)
    # the event, heard live (addEventListener over logsSubscribe) and parsed from the fetched logs
    assert result["listened"] is not None, "addEventListener heard nothing"
    assert result["listened"]["signature"] == result["deposit"]
    assert result["listened"]["owner"] == str(client.pubkey) and result["listened"]["amount"] == "1000000"
    assert result["parsed"] == [{"name": "creditsDeposited", "owner": str(client.pubkey), "amount": "1000000"}]
    error = result["error"]
    assert error["anchorError"] is True, error
    assert error["code"] == "InsufficientCredits"
    assert error["number"] == abi.ERROR_CODES["InsufficientCredits"]
    assert error["message"] == dict(abi.ERRORS)["InsufficientCredits"]
    assert error["programErrorStack"] == [str(g.program_id)]
    # a failed constraint: Anchor's `caused by account` line, the account as the error's origin
    constraint = result["constraint"]
    assert constraint["anchorError"] is True, constraint
    assert constraint["code"] == "TokenOwnerMismatch" and constraint["origin"] == "destination"
