"""The auditor's commands: verify and verify-batch (job show and program verify-build live
with their groups). Everything heavy is imported when a command runs, not for its help.

Exit codes: 0 verified, 1 a check failed, 2 usage or network error — always one readable
line on stderr for the latter, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from decentral_chain.cli.common import console, out, pubkey, read_addresses, rpc_option

if TYPE_CHECKING:
    from rich.table import Table
    from solders.pubkey import Pubkey

    from decentral_chain.verify import Report

DEFAULT_WAIT = 3.0  # as decentral_chain.verify.DEFAULT_WAIT (not imported: --help stays light)


def _commitment_option(fn):
    fn = click.option(
        "--wait",
        type=click.FloatRange(0, 600),
        default=DEFAULT_WAIT,
        show_default=True,
        help="Seconds to wait for a signature not yet visible (a fresh receipt's settlement).",
    )(fn)
    return click.option(
        "--commitment", type=click.Choice(["confirmed", "finalized"]), default="confirmed", show_default=True
    )(fn)


def _trust_options(fn):
    fn = click.option(
        "--mint",
        default=None,
        help="The mint payouts must be in (default: the localnet's "
        "addresses.json for its RPC URL; elsewhere not pinned: the Config's mint is reported).",
    )(fn)
    return click.option(
        "--program-id",
        default=None,
        help="The escrow program you trust (default: the localnet's "
        "addresses.json for its RPC URL, else the published program id). Never taken from a "
        "receipt: a receipt naming another program fails the `program` check.",
    )(fn)


def trust_anchor(rpc_url: str, program_id: str | None, mint: str | None) -> tuple[Pubkey, Pubkey | None, str]:
    """The auditor's program and mint: given, else the cluster's addresses.json (when it
    describes this RPC URL), else the package's published program id and no pinned mint."""
    from decentral_chain.abi import PROGRAM_ID

    addresses = read_addresses()
    local = addresses if addresses is not None and addresses.get("rpc_url") == rpc_url else None
    source = "given"
    if program_id is None:
        program_id, source = (
            (str(local["program_id"]), "the localnet's addresses.json")
            if local and local.get("program_id")
            else (str(PROGRAM_ID), "the published program id")
        )
    if mint is None and local and local.get("program_id") == program_id:
        mint = local.get("mint")
    return pubkey(program_id, "--program-id"), pubkey(mint, "--mint"), source  # type: ignore[return-value]


def _report_table(report: Report) -> Table:
    from rich.table import Table

    from decentral_chain.verify import Status

    style = {Status.PASS: "[green]pass[/green]", Status.FAIL: "[red]FAIL[/red]", Status.SKIP: "[yellow]skip[/yellow]"}
    r = report.receipt
    table = Table(title=f"job {r.job_id}  ({r.outcome})")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for check in report.checks:
        table.add_row(check.name, style[check.status], check.detail)
    return table


@click.command()
@click.argument("job_id", required=False)
@click.option(
    "--receipt",
    "receipt_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A receipt JSON file (instead of JOB_ID and the options below).",
)
@click.option("--lock-tx", help="Signature of the lock transaction.")
@click.option("--settlement-tx", help="Signature of the settlement (or refund) transaction.")
@click.option("--worker", help="The worker's wallet.")
@click.option("--client", "client", help="The client's wallet (optional).")
@click.option("--refund", is_flag=True, help="The receipt is of a refund, not a settlement.")
@click.option("--expect-cost", type=click.IntRange(0), help="Expected cost in credits (micro-USDC).")
@click.option("--nonce", type=click.IntRange(1), help="The job's lifecycle nonce, if the receipt gave one.")
@click.option("--response", type=click.File("rb"), help="Response body; its sha256 must be the result hash.")
@_trust_options
@_commitment_option
@rpc_option
@click.option("--json", "as_json", is_flag=True, help="Print one report object.")
@click.option("--explain", is_flag=True, help="Say in plain words what the receipt proves.")
def verify(
    job_id: str | None,
    receipt_file: Path | None,
    lock_tx: str | None,
    settlement_tx: str | None,
    worker: str | None,
    client: str | None,
    refund: bool,
    expect_cost: int | None,
    nonce: int | None,
    response: Any,
    program_id: str | None,
    mint: str | None,
    commitment: str,
    wait: float,
    rpc_url: str,
    as_json: bool,
    explain: bool,
) -> None:
    """Verify one receipt against the chain, check by check."""
    from decentral_chain.errors import DecodeError
    from decentral_chain.receipts import Receipt
    from decentral_chain.verify import verify_receipt

    program, trusted_mint, source = trust_anchor(rpc_url, program_id, mint)
    try:
        if receipt_file is not None:
            if job_id or lock_tx or settlement_tx or worker:
                raise click.UsageError("give --receipt, or JOB_ID with --lock-tx, --settlement-tx and --worker")
            receipt = Receipt.load(receipt_file)
        else:
            if not (job_id and lock_tx and settlement_tx and worker):
                raise click.UsageError("give JOB_ID, --lock-tx, --settlement-tx and --worker (or --receipt FILE)")
            receipt = Receipt.parse(
                {
                    "job_id": job_id,
                    "lock_tx": lock_tx,
                    "settlement_tx": settlement_tx,
                    "worker": worker,
                    "client": client and str(pubkey(client, "--client")),
                    "nonce": nonce,
                    "outcome": "refunded" if refund else "settled",
                }
            )
    except DecodeError as exc:
        raise click.UsageError(str(exc)) from None
    body = response.read() if response is not None else None
    report = asyncio.run(
        verify_receipt(
            rpc_url,
            receipt,
            program_id=program,
            mint=trusted_mint,
            commitment=commitment,
            expected_cost=expect_cost,
            response=body,
            wait=wait,
        )
    )
    if as_json:
        click.echo(json.dumps(report.to_dict()))
    else:
        console().print(
            f"trusting program {program} ({source})"
            + (f", mint {trusted_mint}" if trusted_mint else ", mint not pinned")
        )
        out().print(_report_table(report))
        out().print("[green]VERIFIED[/green]" if report.verified else "[red]NOT VERIFIED[/red]")
        if explain:
            out().print(report.explain(), soft_wrap=True)
    raise SystemExit(0 if report.verified else 1)


@click.command("verify-batch")
@click.argument("receipts_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--concurrency", type=click.IntRange(1, 512), default=32, show_default=True)
@click.option("--fail-fast", is_flag=True, help="Stop starting new receipts after the first failure.")
@_trust_options
@_commitment_option
@rpc_option
@click.option("--json", "as_json", is_flag=True, help="Print one summary object with every report.")
def verify_batch_command(
    receipts_file: Path,
    concurrency: int,
    fail_fast: bool,
    program_id: str | None,
    mint: str | None,
    commitment: str,
    wait: float,
    rpc_url: str,
    as_json: bool,
) -> None:
    """Verify every receipt of a JSON Lines file, concurrently."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from decentral_chain.errors import DecodeError
    from decentral_chain.receipts import load_jsonl
    from decentral_chain.verify import Status, verify_batch

    program, trusted_mint, _ = trust_anchor(rpc_url, program_id, mint)
    try:
        receipts = load_jsonl(receipts_file)
    except DecodeError as exc:
        raise click.UsageError(str(exc)) from None
    with Progress(
        TextColumn("verifying"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console(),
        disable=as_json,
    ) as progress:
        task = progress.add_task("receipts", total=len(receipts))
        reports = asyncio.run(
            verify_batch(
                rpc_url,
                receipts,
                program_id=program,
                mint=trusted_mint,
                commitment=commitment,
                concurrency=concurrency,
                fail_fast=fail_fast,
                on_report=lambda r: progress.advance(task),
                wait=wait,
            )
        )
    verified = sum(r.verified for r in reports)
    failures = Counter(c.name for r in reports for c in r.checks if c.status == Status.FAIL)
    summary = {
        "receipts": len(receipts),
        "checked": len(reports),
        "verified": verified,
        "failed": len(reports) - verified,
        "failed_checks": dict(failures),
    }
    if as_json:
        click.echo(json.dumps({**summary, "reports": [r.to_dict() for r in reports]}))
    else:
        table = Table(title=receipts_file.name)
        table.add_column("measure")
        table.add_column("value", justify="right")
        for key in ("receipts", "checked", "verified", "failed"):
            table.add_row(key, str(summary[key]))
        for name, count in failures.items():
            table.add_row(f"failed: {name}", str(count))
        out().print(table)
        out().print(f"{verified} of {len(receipts)} verified")
        for report in reports:
            if not report.verified:
                failed = next(c for c in report.checks if c.status == Status.FAIL)
                out().print(f"[red]✗[/red] {report.receipt.job_id}: {failed.name}: {failed.detail}")
    raise SystemExit(0 if verified == len(receipts) else 1)
