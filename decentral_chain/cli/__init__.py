"""The ``decentral`` command line: thin commands over the library, rich output.

Commands are imported only when they run (or their help is asked for), so an auditor's
``decentral verify`` never imports the gateway, llama.cpp or the localnet. Errors of the
library surface in exactly one place (:func:`main`) as one readable line: exit 2 for usage,
network and unreadable input (an RPC down, an answer or receipt that does not decode, a
missing extra), 1 when the chain or a check said no; usage errors are click's (exit 2).
"""

from __future__ import annotations

import importlib
import sys

import click

#: command name → "module:attribute" under decentral_chain.cli
COMMANDS = {
    "credits": "chain:credits",
    "job": "chain:job",
    "verify": "audit:verify",
    "verify-batch": "audit:verify_batch_command",
    "program": "program:program",
    "localnet": "localnet:localnet",
    "gateway": "gateway:gateway",
    "worker": "worker:worker",
    "demo": "gateway:demo",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute = COMMANDS[name].split(":")
        return getattr(importlib.import_module(f"decentral_chain.cli.{module}"), attribute)  # type: ignore[no-any-return]


@click.group(cls=LazyGroup)
@click.version_option(package_name="decentral-chain")
def cli() -> None:
    """Settle AI-inference jobs on Solana and verify the receipts."""


def main() -> None:
    """Exit codes: 0 done, 1 the chain refused (a failed transaction or check), 2 usage, network
    or input that does not decode."""
    from decentral_chain.errors import DecentralError, DecodeError, MissingExtra, RpcError, RpcUnavailable

    try:
        cli(standalone_mode=True)
    except DecentralError as exc:
        from rich.text import Text

        from decentral_chain.cli.common import console

        console().print(Text.assemble((type(exc).__name__, "red"), f": {exc}"), soft_wrap=True)
        sys.exit(2 if isinstance(exc, RpcUnavailable | RpcError | DecodeError | MissingExtra) else 1)


if __name__ == "__main__":
    main()
