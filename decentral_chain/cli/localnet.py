"""`decentral localnet`: serve a local chain (needs the [localnet] extra)."""

from __future__ import annotations

from pathlib import Path

import click

from decentral_chain.cli.common import require


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (loopback by default).")
@click.option(
    "--port",
    default=8899,
    show_default=True,
    type=click.IntRange(1, 65534),
    help="JSON-RPC port; PubSub listens on port + 1.",
)
@click.option(
    "--keys-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where keypairs and addresses.json live (default: localnet/).",
)
@click.option(
    "--validator",
    type=click.Choice(["litesvm", "solana-test-validator"]),
    default="litesvm",
    show_default=True,
    help="The built-in SVM, or solana-test-validator where it is on PATH.",
)
@click.option(
    "--finality-slots",
    type=click.IntRange(1, 10_000),
    default=32,
    show_default=True,
    help="Slots from processed to finalized (confirmed is one slot); 400 ms each.",
)
@click.option(
    "--bpf-program",
    "bpf_programs",
    nargs=2,
    multiple=True,
    metavar="ADDRESS_OR_KEYPAIR SBF_PROGRAM.SO",
    help="Add a program at genesis (BPF loader 2), as solana-test-validator does. Repeatable.",
)
@click.option(
    "--upgradeable-program",
    "upgradeable_programs",
    nargs=3,
    multiple=True,
    metavar="ADDRESS_OR_KEYPAIR SBF_PROGRAM.SO UPGRADE_AUTHORITY",
    help="Add an upgradeable program at genesis (authority: a pubkey, a keypair file or none). Repeatable.",
)
@click.option(
    "--account",
    "accounts",
    nargs=2,
    multiple=True,
    metavar="ADDRESS JSON_FILE",
    help="Add an account from `solana account --output json` (ADDRESS - : the file's). Repeatable.",
)
@click.option(
    "--ledger",
    "ledger_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the chain is recorded; a restart continues it (default: <keys dir>/ledger).",
)
@click.option("--reset", is_flag=True, help="Start a new chain from genesis, discarding the ledger.")
def localnet(
    host: str,
    port: int,
    keys_dir: Path | None,
    validator: str,
    finality_slots: int,
    bpf_programs: tuple[tuple[str, str], ...],
    upgradeable_programs: tuple[tuple[str, str, str], ...],
    accounts: tuple[tuple[str, str], ...],
    ledger_dir: Path | None,
    reset: bool,
) -> None:
    """Serve a local chain: escrow deployed, USDC-like mint, funded wallets."""
    require("localnet", "decentral localnet", "starlette", "uvicorn", "websockets")
    from decentral_chain.localnet.run import serve_localnet, serve_test_validator

    if validator == "solana-test-validator":
        try:
            serve_test_validator(host, port, keys_dir)
        except FileNotFoundError as exc:
            raise click.UsageError(str(exc)) from exc
    else:
        from decentral_chain.localnet.extras import ExtraError, Extras

        try:
            extras = Extras.parse(bpf_programs, upgradeable_programs, accounts)
        except ExtraError as exc:
            raise click.UsageError(str(exc)) from None
        serve_localnet(
            host, port, keys_dir, finality_slots=finality_slots, extras=extras, ledger_dir=ledger_dir, reset=reset
        )
