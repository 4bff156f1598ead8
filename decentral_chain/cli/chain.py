"""`decentral credits …` and `decentral job …`: the settlement client from the shell.

Defaults come from the localnet's ``addresses.json`` (RPC URL, keypairs), so on a local
chain no option is needed; ``--rpc-url`` / ``--keypair`` (or DECENTRAL_RPC_URL /
DECENTRAL_KEYPAIR) point the same commands at any cluster. Amounts are USDC with up to
six decimals; ``--json`` prints one object.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from decentral_chain.cli.common import (
    LOCALNET_DIR,
    out,
    parse_job_id,
    parse_pubkey,
    parse_usdc,
    rpc_option,
    usdc,
)

if TYPE_CHECKING:
    from solders.keypair import Keypair
    from solders.pubkey import Pubkey

    from decentral_chain.client import EscrowClient


@dataclass
class ChainOptions:
    rpc_url: str
    keypair_path: Path | None
    as_json: bool

    def keypair(self, role: str) -> Keypair:
        from decentral_chain.localnet.keys import read_keypair

        path = self.keypair_path or LOCALNET_DIR / f"{role}-keypair.json"
        if not path.exists():
            raise click.UsageError(f"no keypair at {path}: pass --keypair (or start `decentral localnet`)")
        try:
            return read_keypair(path)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc


pass_options = click.make_pass_decorator(ChainOptions)


def chain_options(fn: Callable) -> Callable:
    fn = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")(fn)
    fn = click.option(
        "--keypair",
        "keypair_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="DECENTRAL_KEYPAIR",
        help="Signer keypair file (default: the localnet's).",
    )(fn)
    return rpc_option(fn)


def run(opts: ChainOptions, action: Callable[[EscrowClient], Awaitable[dict[str, Any]]], title: str) -> None:
    from rich.table import Table

    from decentral_chain.client import EscrowClient

    async def go() -> dict[str, Any]:
        async with EscrowClient(opts.rpc_url) as escrow:
            return await action(escrow)

    result = asyncio.run(go())
    if opts.as_json:
        click.echo(json.dumps(result))
        return
    table = Table(title=title, show_header=False)
    table.add_column("field")
    table.add_column("value")
    for key, value in result.items():
        table.add_row(key, str(value))
    out().print(table)


# ------------------------------------------------------------------------- credits


@click.group()
@chain_options
@click.pass_context
def credits(ctx: click.Context, rpc_url: str, keypair_path: Path | None, as_json: bool) -> None:
    """Deposit, withdraw and inspect prepaid credits (1 credit = 1 micro-USDC)."""
    ctx.obj = ChainOptions(rpc_url, keypair_path, as_json)


def _move_credits(opts: ChainOptions, amount: int, direction: str) -> None:
    """deposit or withdraw AMOUNT for the keypair's wallet, then show its credits."""
    owner = opts.keypair("client")

    async def action(escrow: EscrowClient) -> dict[str, Any]:
        move = escrow.deposit if direction == "deposited" else escrow.withdraw
        sig = await move(owner, amount)
        c = await escrow.get_credits(owner.pubkey())
        return {
            "signature": str(sig),
            "owner": str(owner.pubkey()),
            direction: usdc(amount),
            "free": usdc(c.free if c else 0),
            "locked": usdc(c.locked if c else 0),
        }

    run(opts, action, "deposit" if direction == "deposited" else "withdraw")


@credits.command("deposit")
@click.argument("amount", callback=parse_usdc)
@pass_options
def credits_deposit(opts: ChainOptions, amount: int) -> None:
    """Move AMOUNT USDC from your token account into the escrow."""
    _move_credits(opts, amount, "deposited")


@credits.command("withdraw")
@click.argument("amount", callback=parse_usdc)
@pass_options
def credits_withdraw(opts: ChainOptions, amount: int) -> None:
    """Move AMOUNT USDC of free credits back to your token account."""
    _move_credits(opts, amount, "withdrawn")


@credits.command("balance")
@click.argument("owner", required=False, callback=parse_pubkey)
@pass_options
def credits_balance(opts: ChainOptions, owner: Pubkey | None) -> None:
    """Free and locked credits of OWNER (default: your keypair's wallet)."""
    owner = owner or opts.keypair("client").pubkey()

    from decentral_chain.errors import RpcError

    async def action(escrow: EscrowClient) -> dict[str, Any]:
        c = await escrow.get_credits(owner)
        token = await escrow.token_account(owner)
        try:
            wallet = await escrow.token_balance(token)
        except RpcError:  # no token account yet
            wallet = 0
        return {
            "owner": str(owner),
            "free": usdc(c.free if c else 0),
            "locked": usdc(c.locked if c else 0),
            "open_jobs": c.open_jobs if c else 0,
            "wallet_usdc": usdc(wallet),
        }

    run(opts, action, "credits")


# ----------------------------------------------------------------------------- job


@click.group()
@chain_options
@click.pass_context
def job(ctx: click.Context, rpc_url: str, keypair_path: Path | None, as_json: bool) -> None:
    """Operator commands: lock, settle and refund jobs (signed by the gateway)."""
    ctx.obj = ChainOptions(rpc_url, keypair_path, as_json)


@job.command("lock")
@click.option("--client", "client", required=True, callback=parse_pubkey, help="Client wallet.")
@click.option("--worker", required=True, callback=parse_pubkey, help="Worker wallet to be paid.")
@click.option("--amount", required=True, callback=parse_usdc, help="USDC to lock.")
@click.option("--job-id", callback=parse_job_id, help="UUID (default: a fresh one).")
@pass_options
def job_lock(opts: ChainOptions, client: Pubkey, worker: Pubkey, amount: int, job_id: bytes | None) -> None:
    """Lock credits of a client for one job."""
    from decentral_chain.pda import new_job_id

    gateway = opts.keypair("gateway")

    async def action(escrow: EscrowClient) -> dict[str, Any]:
        jid = job_id or new_job_id(escrow.program_id)
        sig = await escrow.lock_job(gateway, client, jid, amount, worker)
        return {
            "job_id": str(uuid.UUID(bytes=jid)),
            "signature": str(sig),
            "client": str(client),
            "worker": str(worker),
            "locked": usdc(amount),
        }

    run(opts, action, "lock_job")


@job.command("settle")
@click.argument("job_id", callback=parse_job_id)
@click.option("--cost", required=True, callback=parse_usdc, help="USDC charged (≤ locked).")
@click.option("--response", "response", type=click.File("rb"), help="Response body; its sha256 is the result hash.")
@click.option("--result-hash", help="sha256 of the response, 64 hex digits (instead of --response).")
@click.option("--prompt-tokens", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True)
@click.option("--completion-tokens", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True)
@click.option(
    "--worker-keypair",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The job's worker, who co-signs (default: the localnet's worker keypair for the job's worker).",
)
@pass_options
def job_settle(
    opts: ChainOptions,
    job_id: bytes,
    cost: int,
    response: Any,
    result_hash: str | None,
    prompt_tokens: int,
    completion_tokens: int,
    worker_keypair: Path | None,
) -> None:
    """Settle JOB_ID: pay its worker cost − fee, the treasury the fee (co-signed by the worker)."""
    if (response is None) == (result_hash is None):
        raise click.UsageError("give exactly one of --response and --result-hash")
    if response is not None:
        digest = hashlib.sha256(response.read()).digest()
    else:
        try:
            digest = bytes.fromhex(result_hash or "")
        except ValueError:
            digest = b""
        if len(digest) != 32:
            raise click.BadParameter("expected 64 hex digits", param_hint="--result-hash")
    from decentral_chain.localnet.keys import read_keypair

    gateway = opts.keypair("gateway")

    def worker_for(wallet: Pubkey) -> Keypair:
        paths = [worker_keypair] if worker_keypair else sorted(LOCALNET_DIR.glob("worker-*-keypair.json"))
        for path in paths:
            try:
                keypair = read_keypair(path)
            except ValueError as exc:
                raise click.UsageError(str(exc)) from exc
            if keypair.pubkey() == wallet:
                return keypair
        raise click.UsageError(f"no keypair of the job's worker {wallet}: pass --worker-keypair")

    async def action(escrow: EscrowClient) -> dict[str, Any]:
        job = await escrow.get_job(job_id)
        if job is None:
            raise click.UsageError(f"job {uuid.UUID(bytes=job_id)} is not open")
        sig = await escrow.settle_job(
            gateway,
            job_id,
            worker=worker_for(job.worker),
            cost=cost,
            result_hash=digest,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )
        return {
            "job_id": str(uuid.UUID(bytes=job_id)),
            "signature": str(sig),
            "cost": usdc(cost),
            "result_hash": digest.hex(),
        }

    run(opts, action, "settle_job")


@job.command("refund")
@click.argument("job_id", callback=parse_job_id)
@pass_options
def job_refund(opts: ChainOptions, job_id: bytes) -> None:
    """Refund JOB_ID (the gateway any time; the client after the job expired)."""
    signer = opts.keypair("gateway")

    async def action(escrow: EscrowClient) -> dict[str, Any]:
        sig = await escrow.refund_job(signer, job_id)
        return {"job_id": str(uuid.UUID(bytes=job_id)), "signature": str(sig)}

    run(opts, action, "refund_job")


@job.command("show")
@click.argument("job_id", callback=parse_job_id)
@click.option("--program-id", default=None, help="The escrow program (default as for `verify`).")
@pass_options
def job_show(opts: ChainOptions, job_id: bytes, program_id: str | None) -> None:
    """The job's timeline: every transaction on its PDA (lock → settle / refund), with the
    lifecycle nonce of each step (a job id reused after its Job closed starts a new one)."""
    import dataclasses
    from datetime import UTC, datetime

    from rich.table import Table
    from solders.signature import Signature

    from decentral_chain import pda
    from decentral_chain.cli.audit import trust_anchor
    from decentral_chain.verify import Verifier

    program, _, _ = trust_anchor(opts.rpc_url, program_id, None)
    job_key = pda.job_address(job_id, program)

    def event_json(event: Any) -> dict[str, Any]:
        row: dict[str, Any] = {"event": type(event).__name__}
        for f in dataclasses.fields(event):
            value = getattr(event, f.name)
            row[f.name] = value.hex() if isinstance(value, bytes) else value if isinstance(value, int) else str(value)
        return row

    async def timeline() -> list[dict[str, Any]]:
        async with Verifier(opts.rpc_url, program_id=program, wait=0) as verifier:
            history = await verifier.rpc.call(
                "getSignaturesForAddress", [str(job_key), {"limit": 1000, "commitment": "confirmed"}]
            )
            rows = []
            for entry in reversed(history or []):  # oldest first
                tx = await verifier.transaction(Signature.from_string(entry["signature"]))
                if tx is None:
                    continue
                runs = [r for r in tx.runs(program) if r.ix.accounts.get("job") == job_key] if tx.err is None else []
                events = [e for r in runs for e in r.events if getattr(e, "job_id", None) == job_id]
                rows.append(
                    {
                        "slot": tx.slot,
                        "time": tx.block_time,
                        "signature": entry["signature"],
                        "instructions": [r.ix.name for r in runs],
                        "ok": tx.err is None,
                        "events": [event_json(e) for e in events],
                    }
                )
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
        amounts = "; ".join(
            ", ".join(f"{k}={v}" for k, v in e.items() if k in ("amount", "cost", "fee", "refunded"))
            for e in row["events"]
        )
        nonces = ", ".join(str(e["nonce"]) for e in row["events"] if "nonce" in e)
        table.add_row(str(row["slot"]), when, step or "—", nonces, amounts, row["signature"])
    out().print(table)
    if not rows:
        out().print("no transaction touched this job")
