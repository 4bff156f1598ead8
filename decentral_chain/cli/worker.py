"""`decentral worker`: a GPU worker as a process of its own, serving one gateway."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import click

from decentral_chain.cli.common import LOCALNET_DIR, price_options, read_addresses, require, rpc_option

if TYPE_CHECKING:
    from solders.pubkey import Pubkey


def _gateway_key(ctx: click.Context, param: click.Parameter, value: str | None) -> Pubkey:
    """--gateway PUBKEY, or the localnet gateway's, when there is a localnet here."""
    from solders.pubkey import Pubkey

    if value is None:
        local = LOCALNET_DIR / "gateway-keypair.json"
        if not local.exists():
            raise click.BadParameter("give the public key of the gateway this worker serves", param=param)
        from decentral_chain.localnet.keys import read_keypair

        return read_keypair(local).pubkey()
    try:
        return Pubkey.from_string(value)
    except ValueError:
        raise click.BadParameter(f"not a base-58 public key: {value!r}", param=param) from None


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Listen address (0.0.0.0: other machines).")
@click.option("--port", default=8100, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--keypair",
    "keypair_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=LOCALNET_DIR / "worker-1-keypair.json",
    show_default=True,
    help="The worker's keypair: its payout wallet, and the key that co-signs its settlements.",
)
@click.option("--gateway", "gateway", callback=_gateway_key, help="Public key of the only gateway it takes jobs from.")
@click.option(
    "--model",
    "model_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="GGUF to run in-process (default: SmolLM2-135M-Instruct); with --backend-url, its vocabulary "
    "counts the worker's own tokens.",
)
@click.option(
    "--backend-url",
    help="An OpenAI-compatible inference server to run the jobs on (llama-server, llama_cpp.server, vLLM).",
)
@click.option("--backend-model", help="The model id to ask the backend for (default: none sent).")
@click.option("--model-name", default="smollm2-135m-instruct", show_default=True, help="The id the gateway asks for.")
@click.option("--parallel", default=1, show_default=True, type=click.IntRange(1, 64), help="Jobs at once (slots).")
@click.option("--n-ctx", default=2048, show_default=True, type=click.IntRange(256, 131072))
@rpc_option
@price_options
@click.option(
    "--ledger",
    "ledger_db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite file of what it produced (default: worker-<wallet>.db beside the keypair).",
)
@click.option(
    "--program-id",
    help="The escrow program (default: the localnet's when --rpc-url is the localnet's, else the published one).",
)
@click.option(
    "--lock-wait",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds to wait for the lock that pays a job before its result is withheld.",
)
def worker(
    host: str,
    port: int,
    keypair_path: Path,
    gateway: Pubkey,
    model_path: Path | None,
    backend_url: str | None,
    backend_model: str | None,
    model_name: str,
    parallel: int,
    n_ctx: int,
    rpc_url: str,
    price_prompt: int,
    price_completion: int,
    ledger_db: Path | None,
    program_id: str | None,
    lock_wait: float,
) -> None:
    """Serve one gateway's jobs, paid only with this worker's own signature."""
    require("gateway", "decentral worker", "starlette", "uvicorn", *(() if backend_url else ("llama_cpp",)))
    import uvicorn
    from solders.pubkey import Pubkey

    from decentral_chain.abi import PROGRAM_ID
    from decentral_chain.client import EscrowClient
    from decentral_chain.localnet.keys import read_keypair
    from decentral_chain.worker.server import WorkerSettings, create_worker_app, ensure_payout_account

    try:
        keypair = read_keypair(keypair_path)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    wallet = keypair.pubkey()
    local = read_addresses() or {}
    try:
        program = Pubkey.from_string(program_id) if program_id else None
    except ValueError:
        raise click.BadParameter(f"not a base-58 public key: {program_id!r}", param_hint="--program-id") from None
    if program is None:
        program = Pubkey.from_string(local["program_id"]) if local.get("rpc_url") == rpc_url else PROGRAM_ID

    async def payout_account() -> tuple[Pubkey, bool]:
        async with EscrowClient(rpc_url, program_id=program) as escrow:
            return await ensure_payout_account(escrow, keypair)

    account, created = asyncio.run(payout_account())
    click.echo(f"payout account {account} {'created' if created else 'exists'} (wallet {wallet})", err=True)
    engine = _engine(model_path, backend_url, backend_model, parallel, n_ctx, keypair)
    settings = WorkerSettings(
        keypair=keypair,
        gateway=gateway,
        model_name=model_name,
        rpc_url=rpc_url,
        program_id=program,
        price_per_1k=(price_prompt, price_completion),
        parallel=parallel,
        ledger_db=ledger_db or keypair_path.with_name(f"worker-{wallet}.db"),
        lock_wait=lock_wait,
    )
    where = f"backend {backend_url}" if backend_url else f"{parallel} llama.cpp instance(s)"
    click.echo(f"worker {wallet} on http://{host}:{port} for gateway {gateway} ({where})", err=True)
    uvicorn.run(create_worker_app(settings, engine), host=host, port=port, log_level="warning")


def _engine(model_path, backend_url, backend_model, parallel, n_ctx, keypair):
    from decentral_chain.gateway.model import default_model_path

    if backend_url:
        from decentral_chain.worker.engines import HttpEngine

        tokenizer = None
        if model_path is not None:
            from decentral_chain.gateway.tokens import Tokenizer

            tokenizer = Tokenizer.load(model_path)
        return HttpEngine(backend_url, context_length=n_ctx, tokenizer=tokenizer, model=backend_model)
    from decentral_chain.gateway.workers import Worker, WorkerSpec
    from decentral_chain.worker.engines import LlamaEngine

    path = model_path or default_model_path()
    return LlamaEngine(
        [Worker(WorkerSpec(f"slot-{i + 1}", path, keypair, n_ctx=n_ctx)).start() for i in range(parallel)]
    )
