"""`decentral localnet`: genesis from the persistent keys, addresses.json, the servers."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from solders.keypair import Keypair

from decentral_chain import pda
from decentral_chain.abi import PROGRAM_ID
from decentral_chain.localnet.chain import FINALITY_SLOTS, LocalChain
from decentral_chain.localnet.extras import Extras
from decentral_chain.localnet.genesis import USDC, Genesis, Wallet, build_genesis
from decentral_chain.localnet.keys import LOCALNET_DIR, LocalnetKeys
from decentral_chain.localnet.ledger import Ledger
from decentral_chain.localnet.svm import token_balance, tune_allocator
from decentral_chain.pda import associated_token_address
from decentral_chain.sbpf.build import ensure_built

console = Console(stderr=True)


@dataclass(frozen=True, slots=True)
class Localnet:
    chain: LocalChain
    genesis: Genesis
    rpc_url: str
    ws_url: str


def start_chain(
    host: str,
    port: int,
    keys_dir: Path | None = None,
    *,
    finality_slots: int = FINALITY_SLOTS,
    extras: Extras | None = None,
    ledger_dir: Path | None = None,
    reset: bool = False,
) -> Localnet:
    """The chain its ledger recorded (``ledger_dir``, default ``<keys dir>/ledger``), or a new
    genesis (with the test-validator flags' programs and accounts) when there is none or on
    ``reset``; then ``addresses.json``. Serving is the caller's."""
    tune_allocator()
    directory = keys_dir or LOCALNET_DIR
    keys = LocalnetKeys.load(directory)
    ledger = Ledger(ledger_dir or directory / "ledger", reset=reset)
    if ledger.exists:
        if extras is not None and (extras.programs or extras.upgradeable or extras.accounts):
            console.print("[yellow]genesis flags ignored: the ledger keeps its genesis (--reset starts anew)[/]")
        chain = LocalChain.from_ledger(ledger, finality_slots=finality_slots)
        genesis = _genesis_of(chain, keys)
        _warn_if_program_changed(chain)
    else:
        genesis = build_genesis(ensure_built(), keys=keys)
        chain = LocalChain.from_genesis(genesis, finality_slots=finality_slots)
        if extras is not None:
            extras.apply(chain)
        chain.attach_ledger(ledger)
    chain.rpc_address, chain.pubsub_address = f"{host}:{port}", f"{host}:{port + 1}"
    net = Localnet(chain, genesis, f"http://{host}:{port}", f"ws://{host}:{port + 1}")
    write_addresses(keys, net.rpc_url, net.ws_url, directory, "litesvm")
    return net


def _genesis_of(chain: LocalChain, keys: LocalnetKeys) -> Genesis:
    """The genesis roles over a restored chain (the same keys made it)."""
    mint = keys.mint.pubkey()

    def wallet(kp: Keypair) -> Wallet:
        return Wallet(kp, associated_token_address(kp.pubkey(), mint))

    return Genesis(
        chain.svm,
        PROGRAM_ID,
        keys.admin,
        keys.gateway,
        mint,
        keys.mint_authority,
        wallet(keys.treasury),
        [wallet(w) for w in keys.workers],
        [wallet(keys.client)],
    )


def _warn_if_program_changed(chain: LocalChain) -> None:
    """A ledger keeps the program it was made with, as a validator's does: say so when the
    built one differs (``--reset`` deploys it)."""
    try:
        built = ensure_built()
    except Exception:  # no compiler and no build: nothing to compare with
        return
    data = chain.get_account(pda.program_data_address(PROGRAM_ID))
    if data is not None and bytes(data.data)[45:].rstrip(b"\x00") != built.rstrip(b"\x00"):
        console.print("[yellow]the ledger's escrow program differs from the built one; --reset deploys the new one[/]")


def write_addresses(keys: LocalnetKeys, rpc_url: str, ws_url: str, directory: Path, validator: str) -> None:
    """Endpoints and public addresses for other commands; written once genesis is done."""
    mint = keys.mint.pubkey()

    def token(owner: Keypair) -> str:
        return str(associated_token_address(owner.pubkey(), mint))

    addresses = {
        "ready": True,
        "validator": validator,
        "rpc_url": rpc_url,
        "ws_url": ws_url,
        "program_id": str(PROGRAM_ID),
        "mint": str(mint),
        "config": str(pda.config_address()),
        "vault": str(pda.vault_address()),
        "admin": str(keys.admin.pubkey()),
        "gateway": str(keys.gateway.pubkey()),
        "treasury": str(keys.treasury.pubkey()),
        "treasury_token": token(keys.treasury),
        "workers": [{"wallet": str(w.pubkey()), "token": token(w)} for w in keys.workers],
        "client": {"wallet": str(keys.client.pubkey()), "token": token(keys.client)},
        "keypairs": {
            role: str(directory / f"{role}-keypair.json")
            for role in ("admin", "gateway", "treasury", "worker-1", "worker-2", "client")
        },
    }
    (directory / "addresses.json").write_text(json.dumps(addresses, indent=2) + "\n")


def print_summary(net: Localnet, started: float, directory: Path) -> None:
    g = net.genesis
    table = Table(title=f"decentral localnet  {net.rpc_url}  (PubSub {net.ws_url})")
    table.add_column("role")
    table.add_column("address")
    table.add_column("SOL", justify="right")
    table.add_column("USDC", justify="right")
    rows = [
        ("program", PROGRAM_ID, None),
        ("mint (6 decimals)", g.mint, None),
        ("config", g.config_address, None),
        ("vault", g.vault, g.vault),
        ("admin", g.admin.pubkey(), None),
        ("gateway", g.gateway.pubkey(), None),
        ("treasury", g.treasury.pubkey, g.treasury.token),
    ]
    rows += [(f"worker-{i + 1}", w.pubkey, w.token) for i, w in enumerate(g.workers)]
    rows += [("client", g.clients[0].pubkey, g.clients[0].token)]
    for role, key, token in rows:
        lamports = g.svm.get_balance(key) or 0
        usdc = f"{token_balance(g.svm, token) / USDC:,.2f}" if token is not None else ""
        table.add_row(role, str(key), f"{lamports / 1e9:,.4f}" if lamports else "", usdc)
    console.print(table)
    console.print(f"ready in {time.monotonic() - started:.2f} s; keys and addresses.json in {directory}/; Ctrl-C stops")


def serve_localnet(
    host: str,
    port: int,
    keys_dir: Path | None = None,
    *,
    finality_slots: int = FINALITY_SLOTS,
    extras: Extras | None = None,
    ledger_dir: Path | None = None,
    reset: bool = False,
) -> None:
    import uvicorn

    from decentral_chain.localnet.pubsub import create_pubsub_app
    from decentral_chain.localnet.server import create_app

    started = time.monotonic()
    net = start_chain(
        host, port, keys_dir, finality_slots=finality_slots, extras=extras, ledger_dir=ledger_dir, reset=reset
    )
    servers = [
        uvicorn.Server(uvicorn.Config(app, host=host, port=p, log_level="warning", ws="websockets-sansio"))
        for app, p in ((create_app(net.chain), port), (create_pubsub_app(net.chain), port + 1))
    ]

    async def main() -> None:
        tasks = [asyncio.create_task(server.serve()) for server in servers]
        while not all(server.started for server in servers) and not any(t.done() for t in tasks):
            await asyncio.sleep(0.005)
        if all(server.started for server in servers):
            print_summary(net, started, keys_dir or LOCALNET_DIR)
        await asyncio.gather(*tasks)

    asyncio.run(main())


def serve_test_validator(host: str, port: int, keys_dir: Path | None = None) -> None:
    """The same localnet on `solana-test-validator` (when that binary is on PATH)."""
    import shutil
    import subprocess

    import httpx

    from decentral_chain.localnet.rpc_genesis import genesis_over_rpc
    from decentral_chain.sbpf.build import DEPLOY_PATH, ROOT

    exe = shutil.which("solana-test-validator")
    if exe is None:
        raise FileNotFoundError("solana-test-validator is not on PATH; omit --validator to use the built-in SVM")
    tune_allocator()
    directory = keys_dir or LOCALNET_DIR
    keys = LocalnetKeys.load(directory)
    ensure_built()
    rpc_url, ws_url = f"http://{host}:{port}", f"ws://{host}:{port + 1}"
    (directory / "addresses.json").unlink(missing_ok=True)
    proc = subprocess.Popen(
        [
            exe,
            "--reset",
            "--quiet",
            "--ledger",
            str(ROOT / "target" / "test-ledger"),
            "--bind-address",
            host,
            "--rpc-port",
            str(port),
            "--upgradeable-program",
            str(PROGRAM_ID),
            str(DEPLOY_PATH),
            str(keys.admin.pubkey()),
        ]
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if (
                    httpx.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "getHealth"}).json().get("result")
                    == "ok"
                ):
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("solana-test-validator did not become healthy")
            time.sleep(0.5)
        asyncio.run(genesis_over_rpc(rpc_url, keys))
        write_addresses(keys, rpc_url, ws_url, directory, "solana-test-validator")
        console.print(f"solana-test-validator ready at {rpc_url} (PubSub {ws_url}); addresses.json in {directory}/")
        proc.wait()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
