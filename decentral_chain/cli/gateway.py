"""`decentral gateway` (serve), `decentral gateway keys …`, and `decentral demo`."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from decentral_chain.cli.common import LOCALNET_DIR, out, parse_pubkey, price_options, require, rpc_option

if TYPE_CHECKING:
    from solders.pubkey import Pubkey

KEYS_DB = LOCALNET_DIR / "gateway-keys.db"
JOURNAL_DB = LOCALNET_DIR / "gateway-journal.db"
GATEWAY_MODULES = ("llama_cpp", "starlette", "uvicorn")


@click.group(invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@rpc_option
@click.option(
    "--model",
    "model_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Any GGUF file (default: SmolLM2-135M-Instruct, fetched and checked).",
)
@click.option("--model-name", default="smollm2-135m-instruct", show_default=True, help="The id clients ask for.")
@click.option(
    "--workers",
    "n_workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 16),
    help="llama.cpp instances, each on its own thread with its own keypair.",
)
@click.option(
    "--worker-keypair",
    "worker_keypairs",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Keypair file of each worker: its payout wallet, and the key that co-signs its settlements "
    "(default: the localnet's worker-N-keypair.json).",
)
@click.option(
    "--worker",
    "worker_urls",
    multiple=True,
    metavar="URL",
    help="A `decentral worker` to route jobs to (repeatable); then no in-process workers unless --workers is given.",
)
@click.option(
    "--workers-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Worker URLs, one per line (# comments).",
)
@click.option(
    "--health-interval",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds between polls of the remote workers' /health.",
)
@click.option("--n-ctx", default=2048, show_default=True, type=click.IntRange(256, 131072))
@click.option(
    "--embeddings/--no-embeddings",
    default=True,
    show_default=True,
    help="Serve /v1/embeddings (all-MiniLM-L6-v2, fetched, converted and checked), paid to the "
    "first worker keypair's wallet.",
)
@click.option(
    "--price-embedding",
    default=20,
    show_default=True,
    type=click.IntRange(0),
    help="Credits per 1,000 embedded input tokens.",
)
@click.option(
    "--webhooks-allow-private",
    is_flag=True,
    envvar="DECENTRAL_WEBHOOKS_ALLOW_PRIVATE",
    help="Let webhooks go to loopback / private / link-local addresses (a local setup); "
    "also DECENTRAL_WEBHOOKS_ALLOW_PRIVATE=1.",
)
@click.option(
    "--gateway-keypair",
    type=click.Path(dir_okay=False, path_type=Path),
    default=LOCALNET_DIR / "gateway-keypair.json",
    show_default=True,
)
@price_options
@click.pass_context
def gateway(
    ctx: click.Context,
    host: str,
    port: int,
    rpc_url: str,
    model_path: Path | None,
    model_name: str,
    n_workers: int,
    worker_keypairs: tuple[Path, ...],
    worker_urls: tuple[str, ...],
    workers_file: Path | None,
    health_interval: float,
    n_ctx: int,
    gateway_keypair: Path,
    price_prompt: int,
    price_completion: int,
    webhooks_allow_private: bool,
    embeddings: bool,
    price_embedding: int,
) -> None:
    """Serve the OpenAI-compatible API; every completion settles on chain."""
    if ctx.invoked_subcommand is not None:
        return
    require("gateway", "decentral gateway", *GATEWAY_MODULES)
    import uvicorn

    from decentral_chain.gateway.app import GatewaySettings, create_app
    from decentral_chain.gateway.model import default_model_path
    from decentral_chain.gateway.remote import RemoteWorker
    from decentral_chain.gateway.tokens import Tokenizer
    from decentral_chain.gateway.workers import Worker, WorkerSpec
    from decentral_chain.localnet.keys import read_keypair

    urls = list(worker_urls)
    if workers_file is not None:
        lines = (line.split("#", 1)[0].strip() for line in workers_file.read_text().splitlines())
        urls += [line for line in lines if line]
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise click.UsageError(f"--worker {url!r}: not an http(s) URL")
    explicit = ctx.get_parameter_source("n_workers") == click.core.ParameterSource.COMMANDLINE
    if urls and not explicit and not worker_keypairs:
        n_workers = 0
    files = list(worker_keypairs) or [LOCALNET_DIR / f"worker-{i + 1}-keypair.json" for i in range(n_workers)]
    files = [f for f in files if f.exists()]
    if len(files) < n_workers:
        raise click.UsageError(f"{n_workers} workers need {n_workers} --worker-keypair (have {len(files)})")
    try:
        keypairs = [read_keypair(f) for f in files]
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if not gateway_keypair.exists():
        raise click.UsageError(f"no gateway keypair at {gateway_keypair} (start `decentral localnet` first)")
    path = model_path or default_model_path()
    workers: list = [
        Worker(WorkerSpec(f"worker-{i + 1}", path, keypairs[i], n_ctx=n_ctx)).start() for i in range(n_workers)
    ]
    keys_db = Path(os.environ.get("DECENTRAL_GATEWAY_KEYS_DB", KEYS_DB))
    journal_db = Path(os.environ.get("DECENTRAL_GATEWAY_JOURNAL_DB", JOURNAL_DB))
    settings = GatewaySettings(
        model_name=model_name,
        rpc_url=rpc_url,
        keys_db=keys_db,
        journal_db=journal_db,
        price_per_1k_prompt=price_prompt,
        price_per_1k_completion=price_completion,
        health_interval=health_interval,
        webhooks_allow_private=webhooks_allow_private,
        embedding_price_per_1k=price_embedding,
    )
    gateway_key = read_keypair(gateway_keypair)
    tokenizer = workers[0].tokenizer if workers else Tokenizer.load(path)
    price = (price_prompt, price_completion)
    workers += [
        RemoteWorker(url, gateway_key, tokenizer, model_name=model_name, price=price, job_timeout=settings.job_timeout)
        for url in urls
    ]
    embedder = None
    payee = (files or [LOCALNET_DIR / "worker-1-keypair.json"])[0]
    if embeddings and payee.exists():
        from decentral_chain.gateway.embedding_model import embedding_model_path
        from decentral_chain.gateway.embeddings import Embedder

        embedder = Embedder(embedding_model_path(), read_keypair(payee), price_embedding).start()
    elif embeddings:
        click.echo(f"no embeddings: no worker keypair to pay them to ({payee})", err=True)
    app = create_app(settings, gateway_key, workers, tokenizer=tokenizer, embedder=embedder)
    where = f"{n_workers} in-process, {len(urls)} remote worker(s)" + (", embeddings" if embedder else "")
    click.echo(f"gateway {gateway_key.pubkey()} on http://{host}:{port}/v1 ({where}, model {model_name})", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


@gateway.group()
@click.option(
    "--keys-db",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="DECENTRAL_GATEWAY_KEYS_DB",
    default=KEYS_DB,
    show_default=True,
    help="The gateway's key store.",
)
@click.pass_context
def keys(ctx: click.Context, keys_db: Path) -> None:
    """API keys: each maps to a client wallet; only hashes are stored."""
    ctx.obj = keys_db


@keys.command("create")
@click.option("--wallet", required=True, callback=parse_pubkey, help="Client wallet whose credits it spends.")
@click.option("--label", default="", help="A note to recognise the key by.")
@click.pass_obj
def keys_create(keys_db: Path, wallet: Pubkey, label: str) -> None:
    """Create a key; it is printed once and never stored."""
    from decentral_chain.gateway.keys import KeyStore

    store = KeyStore(keys_db)
    click.echo(store.create(wallet, label))
    store.close()


@keys.command("list")
@click.pass_obj
def keys_list(keys_db: Path) -> None:
    """Every key: id, wallet, label, created, revoked."""
    from rich.table import Table

    from decentral_chain.gateway.keys import KeyStore

    store = KeyStore(keys_db)
    table = Table(title="gateway keys")
    for col in ("id", "wallet", "label", "created", "revoked"):
        table.add_column(col)
    for k in store.list():
        table.add_row(
            k.key_id,
            str(k.wallet),
            k.label,
            time.strftime("%Y-%m-%d %H:%M", time.gmtime(k.created)),
            "yes" if k.revoked else "",
        )
    store.close()
    out().print(table)


@keys.command("revoke")
@click.argument("key_id")
@click.pass_obj
def keys_revoke(keys_db: Path, key_id: str) -> None:
    """Revoke the key whose id (first 8 hex digits of its hash) is KEY_ID."""
    from decentral_chain.gateway.keys import KeyStore

    store = KeyStore(keys_db)
    done = store.revoke(key_id)
    store.close()
    if not done:
        raise click.UsageError(f"no active key with id {key_id!r}")
    click.echo(f"revoked {key_id}")


@click.command()
def demo() -> None:
    """The main job: localnet + gateway + the openai SDK; both receipts verified."""
    require("gateway", "decentral demo", *GATEWAY_MODULES, "openai")
    from decentral_chain.demo import run_demo

    raise SystemExit(run_demo())
