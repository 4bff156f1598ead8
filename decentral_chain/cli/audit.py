"""The auditor's commands: verify, verify-batch, job show, program verify-build.

Exit codes: 0 verified (or matching), 1 a check failed, 2 usage or network error — always
one readable line on stderr for the latter, never a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from solders.pubkey import Pubkey
from solders.signature import Signature

from decentral_chain import pda
from decentral_chain.abi import BPF_LOADER_UPGRADEABLE_ID, PROGRAM_ID
from decentral_chain.cli.chain import ChainOptions, _default_rpc_url, job, parse_job_id, pass_options
from decentral_chain.errors import DecodeError
from decentral_chain.localnet.keys import LOCALNET_DIR
from decentral_chain.receipts import Receipt, load_jsonl
from decentral_chain.verify import DEFAULT_WAIT, RawRpc, Report, Status, Verifier, verify_batch, verify_receipt

_STYLE = {Status.PASS: "[green]pass[/green]", Status.FAIL: "[red]FAIL[/red]", Status.SKIP: "[yellow]skip[/yellow]"}


def _rpc_option(fn):
    return click.option("--rpc-url", envvar="DECENTRAL_RPC_URL", default=_default_rpc_url, show_default="localnet",
                        help="Solana JSON-RPC endpoint.")(fn)


def _commitment_option(fn):
    fn = click.option("--wait", type=click.FloatRange(0, 600), default=DEFAULT_WAIT, show_default=True,
                      help="Seconds to wait for a signature not yet visible (a fresh receipt's settlement).")(fn)
    return click.option("--commitment", type=click.Choice(["confirmed", "finalized"]), default="confirmed",
                        show_default=True)(fn)


def _trust_options(fn):
    fn = click.option("--mint", default=None, help="The mint payouts must be in (default: the localnet's "
                      "addresses.json for its RPC URL; elsewhere not pinned: the Config's mint is reported).")(fn)
    return click.option("--program-id", default=None, help="The escrow program you trust (default: the localnet's "
                        f"addresses.json for its RPC URL, else the published {PROGRAM_ID}). Never taken from a "
                        "receipt: a receipt naming another program fails the `program` check.")(fn)


def trust_anchor(rpc_url: str, program_id: str | None, mint: str | None) -> tuple[Pubkey, Pubkey | None, str]:
    """The auditor's program and mint: given, else the cluster's addresses.json (when it
    describes this RPC URL), else the package's published program id and no pinned mint."""
    try:
        addresses = json.loads((LOCALNET_DIR / "addresses.json").read_text())
        local = addresses if addresses.get("rpc_url") == rpc_url else None
    except (OSError, ValueError, AttributeError):
        local = None
    source = "given"
    if program_id is None:
        program_id, source = ((local["program_id"], "the localnet's addresses.json") if local
                              else (str(PROGRAM_ID), "the published program id"))
    if mint is None and local and local.get("program_id") == program_id:
        mint = local.get("mint")
    return (Pubkey.from_string(_pubkey(program_id, "--program-id")),  # type: ignore[arg-type]
            Pubkey.from_string(_pubkey(mint, "--mint")) if mint else None, source)  # type: ignore[arg-type]


def _report_table(report: Report) -> Table:
    r = report.receipt
    table = Table(title=f"job {r.job_id}  ({r.outcome})")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for check in report.checks:
        table.add_row(check.name, _STYLE[check.status], check.detail)
    return table


def _pubkey(value: str | None, name: str) -> str | None:
    if value is not None:
        try:
            Pubkey.from_string(value)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a base-58 public key", param_hint=name) from None
    return value


@click.command()
@click.argument("job_id", required=False)
@click.option("--receipt", "receipt_file", type=click.Path(dir_okay=False, path_type=Path),
              help="A receipt JSON file (instead of JOB_ID and the options below).")
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
@_rpc_option
@click.option("--json", "as_json", is_flag=True, help="Print one report object.")
@click.option("--explain", is_flag=True, help="Say in plain words what the receipt proves.")
def verify(job_id: str | None, receipt_file: Path | None, lock_tx: str | None, settlement_tx: str | None,
           worker: str | None, client: str | None, refund: bool, expect_cost: int | None, nonce: int | None,
           response: Any, program_id: str | None, mint: str | None, commitment: str, wait: float, rpc_url: str,
           as_json: bool, explain: bool) -> None:
    """Verify one receipt against the chain, check by check."""
    from decentral_chain.cli import console, out

    program, trusted_mint, source = trust_anchor(rpc_url, program_id, mint)
    try:
        if receipt_file is not None:
            if job_id or lock_tx or settlement_tx or worker:
                raise click.UsageError("give --receipt, or JOB_ID with --lock-tx, --settlement-tx and --worker")
            receipt = Receipt.load(receipt_file)
        else:
            if not (job_id and lock_tx and settlement_tx and worker):
                raise click.UsageError("give JOB_ID, --lock-tx, --settlement-tx and --worker (or --receipt FILE)")
            receipt = Receipt.parse({"job_id": job_id, "lock_tx": lock_tx, "settlement_tx": settlement_tx,
                                     "worker": worker, "client": _pubkey(client, "--client"), "nonce": nonce,
                                     "outcome": "refunded" if refund else "settled"})
    except DecodeError as exc:
        raise click.UsageError(str(exc)) from None
    body = response.read() if response is not None else None
    report = asyncio.run(verify_receipt(rpc_url, receipt, program_id=program, mint=trusted_mint,
                                        commitment=commitment, expected_cost=expect_cost, response=body, wait=wait))
    if as_json:
        click.echo(json.dumps(report.to_dict()))
    else:
        console.print(f"trusting program {program} ({source})"
                      + (f", mint {trusted_mint}" if trusted_mint else ", mint not pinned"))
        out.print(_report_table(report))
        out.print("[green]VERIFIED[/green]" if report.verified else "[red]NOT VERIFIED[/red]")
        if explain:
            out.print(report.explain(), soft_wrap=True)
    raise SystemExit(0 if report.verified else 1)


@click.command("verify-batch")
@click.argument("receipts_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--concurrency", type=click.IntRange(1, 512), default=32, show_default=True)
@click.option("--fail-fast", is_flag=True, help="Stop starting new receipts after the first failure.")
@_trust_options
@_commitment_option
@_rpc_option
@click.option("--json", "as_json", is_flag=True, help="Print one summary object with every report.")
def verify_batch_command(receipts_file: Path, concurrency: int, fail_fast: bool, program_id: str | None,
                         mint: str | None, commitment: str, wait: float, rpc_url: str, as_json: bool) -> None:
    """Verify every receipt of a JSON Lines file, concurrently."""
    from decentral_chain.cli import console, out

    program, trusted_mint, _ = trust_anchor(rpc_url, program_id, mint)
    try:
        receipts = load_jsonl(receipts_file)
    except DecodeError as exc:
        raise click.UsageError(str(exc)) from None
    with Progress(TextColumn("verifying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=as_json) as progress:
        task = progress.add_task("receipts", total=len(receipts))
        reports = asyncio.run(verify_batch(rpc_url, receipts, program_id=program, mint=trusted_mint,
                                           commitment=commitment, concurrency=concurrency,
                                           fail_fast=fail_fast, on_report=lambda r: progress.advance(task),
                                           wait=wait))
    verified = sum(r.verified for r in reports)
    failures = Counter(c.name for r in reports for c in r.checks if c.status == Status.FAIL)
    summary = {"receipts": len(receipts), "checked": len(reports), "verified": verified,
               "failed": len(reports) - verified, "failed_checks": dict(failures)}
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
        out.print(table)
        out.print(f"{verified} of {len(receipts)} verified")
        for report in reports:
            if not report.verified:
                failed = next(c for c in report.checks if c.status == Status.FAIL)
                out.print(f"[red]✗[/red] {report.receipt.job_id}: {failed.name}: {failed.detail}")
    raise SystemExit(0 if verified == len(receipts) else 1)


@job.command("show")
@click.argument("job_id", callback=parse_job_id)
@click.option("--program-id", default=None, help="The escrow program (default as for `verify`).")
@pass_options
def job_show(opts: ChainOptions, job_id: bytes, program_id: str | None) -> None:
    """The job's timeline: every transaction on its PDA (lock → settle / refund), with the
    lifecycle nonce of each step (a job id reused after its Job closed starts a new one)."""
    from decentral_chain.cli import out

    program, _, _ = trust_anchor(opts.rpc_url, program_id, None)
    job_key = pda.job_address(job_id, program)

    async def timeline() -> list[dict[str, Any]]:
        async with Verifier(opts.rpc_url, program_id=program, wait=0) as verifier:
            history = await verifier.rpc.call("getSignaturesForAddress", [str(job_key), {
                "limit": 1000, "commitment": "confirmed"}])
            rows = []
            for entry in reversed(history or []):  # oldest first
                tx = await verifier.transaction(Signature.from_string(entry["signature"]))
                if tx is None:
                    continue
                runs = [r for r in tx.runs(program) if r.ix.accounts.get("job") == job_key] if tx.err is None else []
                names = [r.ix.name for r in runs]
                events = [e for r in runs for e in r.events if getattr(e, "job_id", None) == job_id]
                rows.append({"slot": tx.slot, "time": tx.block_time, "signature": entry["signature"],
                             "instructions": names, "ok": tx.err is None, "events": [_event_json(e) for e in events]})
            return rows

    rows = asyncio.run(timeline())
    if opts.as_json:
        click.echo(json.dumps({"job_id": str(uuid.UUID(bytes=job_id)), "job": str(job_key), "timeline": rows}))
        return
    table = Table(title=f"job {uuid.UUID(bytes=job_id)}  (PDA {job_key})")
    for col in ("slot", "time (UTC)", "step", "lifecycle", "amounts", "signature"):
        table.add_column(col, overflow="fold")
    for row in rows:
        when = datetime.fromtimestamp(row["time"], UTC).strftime("%Y-%m-%d %H:%M:%S") if row["time"] else "?"
        step = ", ".join(row["instructions"]) + ("" if row["ok"] else " (failed)")
        amounts = "; ".join(", ".join(f"{k}={v}" for k, v in e.items() if k in (
            "amount", "cost", "fee", "refunded")) for e in row["events"])
        nonces = ", ".join(str(e["nonce"]) for e in row["events"] if "nonce" in e)
        table.add_row(str(row["slot"]), when, step or "—", nonces, amounts, row["signature"])
    out.print(table)
    if not rows:
        out.print("no transaction touched this job")


def _event_json(event: Any) -> dict[str, Any]:
    import dataclasses

    out: dict[str, Any] = {"event": type(event).__name__}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        out[f.name] = value.hex() if isinstance(value, bytes) else value if isinstance(value, int) else str(value)
    return out


@click.command("verify-build")
@click.option("--program-id", default=str(PROGRAM_ID), show_default=True)
@_rpc_option
@click.option("--json", "as_json", is_flag=True)
def verify_build(program_id: str, rpc_url: str, as_json: bool) -> None:
    """Compare the deployed program's bytes with a fresh local build (sha256)."""
    import tempfile

    from decentral_chain.cli import out
    from decentral_chain.sbpf.build import build

    program = Pubkey.from_string(program_id)

    async def deployed() -> bytes:
        rpc = RawRpc(rpc_url)
        try:
            acc = await rpc.call("getAccountInfo", [str(program), {"encoding": "base64"}])
            value = acc["value"] if acc else None
            if value is None or value["owner"] != str(BPF_LOADER_UPGRADEABLE_ID):
                raise click.UsageError(f"{program} is not an upgradeable program on this cluster")
            programdata = Pubkey.from_bytes(base64.b64decode(value["data"][0])[4:36])
            data = await rpc.call("getAccountInfo", [str(programdata), {"encoding": "base64"}])
            return base64.b64decode(data["value"]["data"][0])[45:]
        finally:
            await rpc.aclose()

    onchain = asyncio.run(deployed())
    with tempfile.TemporaryDirectory() as tmp:
        local = build(Path(tmp) / "decentral_escrow.so").program.elf
    # ProgramData may be larger than the ELF (room for upgrades): the rest must be zeros.
    matches = onchain[: len(local)] == local and not any(onchain[len(local):])
    deployed_bytes = onchain[: len(local)] if matches else onchain.rstrip(b"\0")
    result = {"program_id": program_id, "match": matches, "local_sha256": hashlib.sha256(local).hexdigest(),
              "deployed_sha256": hashlib.sha256(deployed_bytes).hexdigest(), "local_size": len(local),
              "deployed_size": len(onchain)}
    if as_json:
        click.echo(json.dumps(result))
    else:
        out.print(f"local    {result['local_sha256']}  {len(local):,} bytes")
        out.print(f"deployed {result['deployed_sha256']}  ({len(onchain):,} bytes of program data)")
        out.print("[green]MATCH[/green]" if matches else "[red]MISMATCH[/red]")
    raise SystemExit(0 if matches else 1)
