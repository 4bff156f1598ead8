"""What every command shares: the consoles, the localnet's addresses.json, option parsers.

Nothing heavy is imported here (no solders, pydantic or httpx): ``decentral verify --help``
must not pay for what only running a command needs.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import uuid
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import click

from decentral_chain.errors import MissingExtra
from decentral_chain.paths import LOCALNET_DIR

if TYPE_CHECKING:
    from rich.console import Console
    from solders.pubkey import Pubkey

DECIMALS = 6
DEFAULT_RPC_URL = "http://127.0.0.1:8899"


@functools.cache
def console() -> Console:
    """stderr: progress, notes and errors."""
    from rich.console import Console

    return Console(stderr=True)


@functools.cache
def out() -> Console:
    """stdout: results."""
    from rich.console import Console

    return Console()


def read_addresses() -> dict[str, Any] | None:
    """The localnet's addresses.json (endpoints and public addresses), if there is one."""
    try:
        data = json.loads((LOCALNET_DIR / "addresses.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def default_rpc_url() -> str:
    return str((read_addresses() or {}).get("rpc_url") or DEFAULT_RPC_URL)


def rpc_option(fn: Any) -> Any:
    return click.option(
        "--rpc-url",
        envvar="DECENTRAL_RPC_URL",
        default=default_rpc_url,
        show_default="localnet",
        help="Solana JSON-RPC endpoint.",
    )(fn)


def price_options(fn: Any) -> Any:
    """--price-prompt / --price-completion, the same on the gateway and its workers: a gateway
    routes only to workers that publish its price."""
    fn = click.option(
        "--price-completion",
        default=200,
        show_default=True,
        type=click.IntRange(0),
        help="Credits per 1,000 completion tokens.",
    )(fn)
    return click.option(
        "--price-prompt",
        default=100,
        show_default=True,
        type=click.IntRange(0),
        help="Credits per 1,000 prompt tokens.",
    )(fn)


def require(extra: str, what: str, *modules: str) -> None:
    """Raise MissingExtra (one line, exit 2) unless every module of the extra is installed."""
    if any(importlib.util.find_spec(m) is None for m in modules):
        raise MissingExtra(extra, what)


def pubkey(value: str | None, hint: str) -> Pubkey | None:
    """A base-58 public key, or a click.BadParameter naming the option."""
    if value is None:
        return None
    from solders.pubkey import Pubkey

    try:
        return Pubkey.from_string(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a base-58 public key", param_hint=hint) from None


def parse_pubkey(ctx: click.Context, param: click.Parameter, value: str | None) -> Pubkey | None:
    return pubkey(value, param.opts[0] if param.opts else str(param.name))


def parse_job_id(ctx: click.Context, param: click.Parameter, value: str | None) -> bytes | None:
    if value is None:
        return None
    try:
        return uuid.UUID(value).bytes
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a UUID") from None


def parse_usdc(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise click.BadParameter(f"{value!r} is not a number") from None
    units = amount * 10**DECIMALS
    if amount <= 0 or units != units.to_integral_value():
        raise click.BadParameter(f"{value!r}: a positive amount with at most {DECIMALS} decimals")
    return int(units)


def usdc(units: int) -> str:
    return f"{Decimal(units) / 10**DECIMALS:.{DECIMALS}f}"
