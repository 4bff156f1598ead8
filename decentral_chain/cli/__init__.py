"""The ``decentral`` command line: thin commands over the library, rich output.

Errors of the library surface in exactly one place (:func:`main`) as one readable line
and a non-zero exit code; usage errors are click's (exit 2).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console

from decentral_chain.errors import DecentralError
from decentral_chain.sbpf.build import BuildError
from decentral_chain.sbpf.linker import LinkError

console = Console(stderr=True)
out = Console()


@click.group()
@click.version_option(package_name="decentral-chain")
def cli() -> None:
    """Settle AI-inference jobs on Solana and verify the receipts."""


from decentral_chain.cli.audit import verify, verify_batch_command, verify_build  # noqa: E402
from decentral_chain.cli.chain import credits, job  # noqa: E402
from decentral_chain.cli.gateway import demo, gateway  # noqa: E402

cli.add_command(credits)
cli.add_command(job)
cli.add_command(verify)
cli.add_command(verify_batch_command)
cli.add_command(gateway)
cli.add_command(demo)


@cli.group()
def program() -> None:
    """Build and inspect the decentral_escrow program."""


@program.command("build")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def program_build(as_json: bool) -> None:
    """Compile and link target/deploy/decentral_escrow.so (reproducible)."""
    from decentral_chain import codegen
    from decentral_chain.sbpf.build import ROOT, build

    changed = codegen.write()
    result = build()
    info = {"path": str(result.path.relative_to(ROOT)), "size": result.size, "sha256": result.sha256,
            "syscalls": list(result.program.syscalls), "regenerated": [str(p.relative_to(ROOT)) for p in changed]}
    if as_json:
        out.print_json(json.dumps(info))
        return
    for path in info["regenerated"]:
        console.print(f"[yellow]regenerated[/yellow] {path}")
    out.print(f"[green]built[/green] {info['path']}  {info['size']:,} bytes  sha256 {info['sha256']}")


program.add_command(verify_build)


@program.command("idl")
@click.option("--format", "fmt", type=click.Choice(["legacy", "anchor-0.30"]), default="legacy", show_default=True)
def program_idl(fmt: str) -> None:
    """Print the IDL (legacy: anchorpy 0.21; anchor-0.30: current Anchor tools)."""
    from decentral_chain import codegen

    idl = codegen.render_idl_legacy() if fmt == "legacy" else codegen.render_idl_anchor30()
    click.echo(json.dumps(idl, indent=2))


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (loopback by default).")
@click.option("--port", default=8899, show_default=True, type=click.IntRange(1, 65534),
              help="JSON-RPC port; PubSub listens on port + 1.")
@click.option("--keys-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where keypairs and addresses.json live (default: localnet/).")
@click.option("--validator", type=click.Choice(["litesvm", "solana-test-validator"]), default="litesvm",
              show_default=True, help="The built-in SVM, or solana-test-validator where it is on PATH.")
@click.option("--finality-slots", type=click.IntRange(1, 10_000), default=32, show_default=True,
              help="Slots from processed to finalized (confirmed is one slot); 400 ms each.")
def localnet(host: str, port: int, keys_dir: Path | None, validator: str, finality_slots: int) -> None:
    """Serve a local chain: escrow deployed, USDC-like mint, funded wallets."""
    from decentral_chain.localnet.run import serve_localnet, serve_test_validator

    if validator == "solana-test-validator":
        try:
            serve_test_validator(host, port, keys_dir)
        except FileNotFoundError as exc:
            raise click.UsageError(str(exc)) from exc
    else:
        serve_localnet(host, port, keys_dir, finality_slots=finality_slots)


def main() -> None:
    """Exit codes: 0 done, 1 the chain refused (a failed transaction or check), 2 usage or network."""
    from decentral_chain.errors import DecodeError, RpcError, RpcUnavailable

    try:
        cli(standalone_mode=True)
    except (RpcUnavailable, RpcError, DecodeError) as exc:  # network, or an answer that is not what it claims
        console.print(f"[red]{type(exc).__name__}[/red]: {exc}", soft_wrap=True)
        sys.exit(2)
    except (DecentralError, BuildError, LinkError) as exc:
        console.print(f"[red]{type(exc).__name__}[/red]: {exc}", soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
