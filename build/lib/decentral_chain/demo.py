"""`decentral demo`, the README's main job, end to end on this machine.

Starts a localnet (RPC + PubSub) and the gateway with one llama.cpp worker, gives a client
credits, sends one non-streamed and one streamed chat completion with the official openai
SDK, verifies both receipts with the verification library (the response text included),
and prints a summary. Exit code 0 only if both receipts verify.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import openai
from rich.console import Console
from rich.table import Table

from decentral_chain.client import EscrowClient
from decentral_chain.gateway.app import GatewaySettings, create_app
from decentral_chain.gateway.keys import KeyStore
from decentral_chain.gateway.model import default_model_path
from decentral_chain.gateway.workers import Worker, WorkerSpec
from decentral_chain.localnet.chain import LocalChain
from decentral_chain.localnet.genesis import USDC, build_genesis
from decentral_chain.localnet.pubsub import create_pubsub_app
from decentral_chain.localnet.server import ServerThread, free_port_pair
from decentral_chain.localnet.server import create_app as create_rpc_app
from decentral_chain.localnet.svm import token_balance
from decentral_chain.receipts import Receipt
from decentral_chain.sbpf.build import ensure_built
from decentral_chain.verify import Status, verify_receipt

MODEL = "smollm2-135m-instruct"
QUESTION = [
    {"role": "system", "content": "You are a helpful assistant. Answer in one sentence."},
    {"role": "user", "content": "Why is the sky blue?"},
]


def run_demo(console: Console | None = None) -> int:
    console = console or Console()
    console.print("[bold]decentral demo[/bold]: localnet + gateway + openai SDK, receipts verified")
    g = build_genesis(ensure_built(), workers=1)
    chain = LocalChain.from_genesis(g)
    worker = Worker(WorkerSpec("worker-1", default_model_path(), g.workers[0].keypair, n_ctx=1024)).start()
    port = free_port_pair()
    with (
        tempfile.TemporaryDirectory() as tmp,
        ServerThread((create_rpc_app(chain), port), (create_pubsub_app(chain), port + 1)) as rpc,
    ):
        rpc_url = rpc.url()
        client = g.clients[0]
        settings = GatewaySettings(
            model_name=MODEL, rpc_url=rpc_url, keys_db=Path(tmp) / "keys.db", journal_db=Path(tmp) / "journal.db"
        )
        store = KeyStore(settings.keys_db)
        api_key = store.create(client.pubkey, "demo")
        store.close()

        async def deposit() -> None:
            async with EscrowClient(rpc_url) as escrow:
                await escrow.deposit(client.keypair, 2 * USDC)

        asyncio.run(deposit())
        before = g.credits(client.pubkey).free
        results = []
        with (
            ServerThread((create_app(settings, g.gateway, [worker]), 0)) as gateway,
            openai.OpenAI(base_url=gateway.url() + "/v1", api_key=api_key) as sdk,
        ):
            raw = sdk.chat.completions.with_raw_response.create(
                model=MODEL, messages=QUESTION, max_tokens=48, temperature=0.2, seed=1
            )
            answer = raw.parse().choices[0].message.content or ""
            results.append(("non-stream", answer, Receipt.from_headers(raw.headers)))
            with sdk.chat.completions.with_streaming_response.create(
                model=MODEL,
                messages=QUESTION,
                max_tokens=48,
                temperature=0.2,
                seed=2,
                stream=True,
                stream_options={"include_usage": True},
            ) as response:
                headers = dict(response.headers)
                chunks = list(response.parse())
            streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            final = chunks[-1].model_extra["decentral"]
            tail = {"x-decentral-settlement-tx": final["settlement_tx"], "x-decentral-job-nonce": final["nonce"]}
            results.append(("stream", streamed, Receipt.from_headers(headers | tail)))
        reports = [
            asyncio.run(verify_receipt(rpc_url, receipt, mint=g.mint, response=text.encode()))
            for _, text, receipt in results
        ]
        after = g.credits(client.pubkey).free
        paid = token_balance(g.svm, g.workers[0].token)
    worker.close()

    for (mode, text, receipt), report in zip(results, reports, strict=True):
        passed = sum(c.status == Status.PASS for c in report.checks)
        verdict = (
            f"[green]{passed}/{len(report.checks)} checks pass[/green]"
            if report.verified
            else "[red]NOT VERIFIED[/red]"
        )
        table = Table(title=f"{mode} completion", show_header=False)
        table.add_column("field", style="bold")
        table.add_column("value", overflow="fold")
        for field, value in (
            ("answer", text.strip()),
            ("job", f"{receipt.job_id} (lifecycle {receipt.nonce})"),
            ("lock tx", receipt.lock_tx),
            ("settlement tx", receipt.settlement_tx),
            ("worker paid", receipt.worker),
            ("worker consent", report.check("consent").detail),
            ("cost", f"{report.facts.get('cost', 0)} credits"),
            ("receipt", verdict),
        ):
            table.add_row(field, value)
        table.add_row("proves", report.explain())
        console.print(table)
    console.print(
        f"client credits: {before / USDC:.6f} → {after / USDC:.6f} USDC;  "
        f"worker {g.workers[0].pubkey} paid {paid / USDC:.6f} USDC"
    )
    ok = all(r.verified for r in reports)
    console.print("[green]both receipts verified[/green]" if ok else "[red]a receipt did not verify[/red]")
    return 0 if ok else 1
