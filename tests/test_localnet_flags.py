"""`decentral localnet` with solana-test-validator's genesis flags, as a process: an extra
program (BPF loader 2) that runs, an upgradeable one with its authority, an account from
`solana account --output json`; bad arguments are one line and exit 2."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys

from solana.rpc.async_api import AsyncClient
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from decentral_chain.localnet.server import free_port_pair
from decentral_chain.paths import CHECKOUT
from decentral_chain.pda import program_data_address
from tests.test_gateway_crash import wait_until

CLI = [sys.executable, "-m", "decentral_chain.cli", "localnet"]
SO = CHECKOUT / "decentral_chain" / "program" / "decentral_escrow.so"
LOADER_2 = Pubkey.from_string("BPFLoader2111111111111111111111111111111111")
LOADER_3 = Pubkey.from_string("BPFLoaderUpgradeab1e11111111111111111111111")


def test_genesis_flags_add_programs_and_accounts(tmp_path):
    program_keypair = Keypair()
    (tmp_path / "program.json").write_text(json.dumps(list(bytes(program_keypair))))
    upgradeable, authority = Keypair().pubkey(), Keypair().pubkey()
    account_key = Keypair().pubkey()
    dump = {
        "pubkey": str(account_key),
        "account": {
            "lamports": 4_242_424,
            "data": [base64.b64encode(b"hello, genesis").decode(), "base64"],
            "owner": str(LOADER_2),
            "executable": False,
            "rentEpoch": 18446744073709551615,
            "space": 14,
        },
    }
    (tmp_path / "account.json").write_text(json.dumps(dump))
    port = free_port_pair()
    base = [*CLI, "--port", str(port), "--keys-dir", str(tmp_path / "keys")]
    proc = subprocess.Popen(
        [
            *base,
            "--bpf-program",
            str(tmp_path / "program.json"),
            str(SO),
            "--upgradeable-program",
            str(upgradeable),
            str(SO),
            str(authority),
            "--account",
            "-",
            str(tmp_path / "account.json"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ,
    )
    try:
        wait_until(lambda: json.loads((tmp_path / "keys" / "addresses.json").read_text())["ready"])
        url = f"http://127.0.0.1:{port}"

        async def run():
            async with AsyncClient(url) as sol:
                program = (await sol.get_account_info(program_keypair.pubkey())).value
                upgrade = (await sol.get_account_info(upgradeable)).value
                data = (await sol.get_account_info(program_data_address(upgradeable))).value
                account = (await sol.get_account_info(account_key)).value
                # the extra program runs: empty instruction data is its InstructionMissing (6000)
                payer = Keypair()
                await sol.request_airdrop(payer.pubkey(), 10**9)
                await asyncio.sleep(0.5)
                blockhash = (await sol.get_latest_blockhash()).value.blockhash
                ix = Instruction(program_keypair.pubkey(), b"", [])
                tx = VersionedTransaction(Message.new_with_blockhash([ix], payer.pubkey(), blockhash), [payer])
                simulated = (await sol.simulate_transaction(tx)).value
                return program, upgrade, data, account, simulated

        program, upgrade, data, account, simulated = asyncio.run(run())
        assert program.executable and program.owner == LOADER_2 and program.data == SO.read_bytes()
        assert upgrade.executable and upgrade.owner == LOADER_3
        assert data.data[13:45] == bytes(authority) and data.data[45:] == SO.read_bytes()
        assert account.lamports == 4_242_424 and account.data == b"hello, genesis" and account.owner == LOADER_2
        assert "custom program error: 0x1770" in str(simulated.err) or "Custom(6000)" in str(simulated.err)
        assert any("AnchorError occurred. Error Code: InstructionMissing" in line for line in simulated.logs)
        # what the flags added is genesis: a restart keeps all of it (ProgramData included)
        proc.terminate()
        proc.wait(timeout=30)
        (tmp_path / "keys" / "addresses.json").unlink()
        proc = subprocess.Popen(base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: json.loads((tmp_path / "keys" / "addresses.json").read_text())["ready"])
        wait_until(lambda: asyncio.run(run()) is not None)
        again = asyncio.run(run())
        assert again[0].data == program.data and again[1] == upgrade and again[2] == data and again[3] == account
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_bad_genesis_flags_are_one_line_and_exit_2(tmp_path):
    (tmp_path / "bad.json").write_text('{"pubkey": "x"}')
    (tmp_path / "not.so").write_bytes(b"plain text")
    cases = [
        (["--bpf-program", "not-an-address", str(SO)], "neither a base-58 address nor a keypair file"),
        (["--bpf-program", str(Keypair().pubkey()), str(tmp_path / "not.so")], "is not an ELF program"),
        (["--bpf-program", str(Keypair().pubkey()), str(tmp_path / "missing.so")], "cannot read"),
        (["--account", "-", str(tmp_path / "bad.json")], "not a `solana account --output json` file"),
        (["--upgradeable-program", str(Keypair().pubkey()), str(SO), "bogus"], "authority"),
    ]
    for args, words in cases:
        proc = subprocess.run(
            [*CLI, "--keys-dir", str(tmp_path / "k"), *args], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 2, proc.stderr
        assert words in proc.stderr and "Traceback" not in proc.stderr
