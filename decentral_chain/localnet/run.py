"""`decentral localnet`: genesis from the persistent keys, addresses.json, the servers."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from decentral_chain.abi import PROGRAM_ID
from decentral_chain.localnet.chain import LocalChain
from decentral_chain.localnet.genesis import USDC, Genesis, build_genesis
from decentral_chain.localnet.keys import LOCALNET_DIR, LocalnetKeys
from decentral_chain.localnet.svm import token_balance
from decentral_chain.sbpf.build import ensure_built

console = Console(stderr=True)


@dataclass(frozen=True, slots=True)
class Localnet:
    chain: LocalChain
    genesis: Genesis
    rpc_url: str
    ws_url: str


def start_chain(host: str, port: int, keys_dir: Path | None = None) -> Localnet:
    """Build the genesis chain and write ``addresses.json``; serving is the caller's."""
    directory = keys_dir or LOCALNET_DIR
    keys = LocalnetKeys.load(directory)
    genesis = build_genesis(ensure_built(), keys=keys)
    chain = LocalChain.from_genesis(genesis)
    chain.rpc_address, chain.pubsub_address = f"{host}:{port}", f"{host}:{port + 1}"
    net = Localnet(chain, genesis, f"http://{host}:{port}", f"ws://{host}:{port + 1}")
    write_addresses(net, directory)
    return net


def write_addresses(net: Localnet, directory: Path) -> None:
    g = net.genesis
    addresses = {
        "rpc_url": net.rpc_url, "ws_url": net.ws_url, "program_id": str(PROGRAM_ID), "mint": str(g.mint),
        "config": str(g.config_address), "vault": str(g.vault), "admin": str(g.admin.pubkey()),
        "gateway": str(g.gateway.pubkey()), "treasury": str(g.treasury.pubkey),
        "treasury_token": str(g.treasury.token),
        "workers": [{"wallet": str(w.pubkey), "token": str(w.token)} for w in g.workers],
        "client": {"wallet": str(g.clients[0].pubkey), "token": str(g.clients[0].token)},
        "keypairs": {role: str(directory / f"{role}-keypair.json") for role in
                     ("admin", "gateway", "treasury", "worker-1", "worker-2", "client")},
    }
    path = directory / "addresses.json"
    path.write_text(json.dumps(addresses, indent=2) + "\n")


def print_summary(net: Localnet, started: float, directory: Path) -> None:
    g = net.genesis
    table = Table(title=f"decentral localnet  {net.rpc_url}  (PubSub {net.ws_url})")
    table.add_column("role")
    table.add_column("address")
    table.add_column("SOL", justify="right")
    table.add_column("USDC", justify="right")
    rows = [("program", PROGRAM_ID, None), ("mint (6 decimals)", g.mint, None), ("config", g.config_address, None),
            ("vault", g.vault, g.vault), ("admin", g.admin.pubkey(), None), ("gateway", g.gateway.pubkey(), None),
            ("treasury", g.treasury.pubkey, g.treasury.token)]
    rows += [(f"worker-{i + 1}", w.pubkey, w.token) for i, w in enumerate(g.workers)]
    rows += [("client", g.clients[0].pubkey, g.clients[0].token)]
    for role, key, token in rows:
        lamports = g.svm.get_balance(key) or 0
        usdc = f"{token_balance(g.svm, token) / USDC:,.2f}" if token is not None else ""
        table.add_row(role, str(key), f"{lamports / 1e9:,.4f}" if lamports else "", usdc)
    console.print(table)
    console.print(f"ready in {time.monotonic() - started:.2f} s; keys and addresses.json in {directory}/; "
                  "Ctrl-C stops")


def serve_localnet(host: str, port: int, keys_dir: Path | None = None) -> None:
    import uvicorn

    from decentral_chain.localnet.pubsub import create_pubsub_app
    from decentral_chain.localnet.server import create_app

    started = time.monotonic()
    net = start_chain(host, port, keys_dir)
    servers = [uvicorn.Server(uvicorn.Config(app, host=host, port=p, log_level="warning", ws="websockets-sansio"))
               for app, p in ((create_app(net.chain), port), (create_pubsub_app(net.chain), port + 1))]

    async def main() -> None:
        tasks = [asyncio.create_task(server.serve()) for server in servers]
        while not all(server.started for server in servers) and not any(t.done() for t in tasks):
            await asyncio.sleep(0.005)
        if all(server.started for server in servers):
            print_summary(net, started, keys_dir or LOCALNET_DIR)
        await asyncio.gather(*tasks)

    asyncio.run(main())
