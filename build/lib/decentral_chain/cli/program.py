"""`decentral program …`: build, print the IDL, compare a deployment with the source."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json

import click

from decentral_chain.cli.common import console, out, pubkey, rpc_option


@click.group()
def program() -> None:
    """Build and inspect the decentral_escrow program."""


@program.command("build")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def program_build(as_json: bool) -> None:
    """Compile and link target/deploy/decentral_escrow.so (reproducible) and refresh the
    copy shipped in the package. Needs a source checkout and the [build] extra."""
    from decentral_chain.cli.common import require
    from decentral_chain.sbpf.build import ROOT, UNITY_SOURCE, build

    if not UNITY_SOURCE.exists():
        raise click.UsageError("the program's sources are not here: build from a source checkout")
    require("build", "decentral program build", "ziglang")
    from decentral_chain import codegen
    from decentral_chain.program import SHIPPED_PATH

    changed = codegen.write()
    result = build()
    if not SHIPPED_PATH.exists() or SHIPPED_PATH.read_bytes() != result.program.elf:
        SHIPPED_PATH.write_bytes(result.program.elf)
        changed.append(SHIPPED_PATH)
    info = {
        "path": str(result.path.relative_to(ROOT)),
        "size": result.size,
        "sha256": result.sha256,
        "syscalls": list(result.program.syscalls),
        "regenerated": [str(p.relative_to(ROOT)) for p in changed],
    }
    if as_json:
        click.echo(json.dumps(info))
        return
    for path in info["regenerated"]:
        console().print(f"[yellow]regenerated[/yellow] {path}")
    out().print(f"[green]built[/green] {info['path']}  {info['size']:,} bytes  sha256 {info['sha256']}")


@program.command("idl")
@click.option("--format", "fmt", type=click.Choice(["legacy", "anchor-0.30"]), default="legacy", show_default=True)
def program_idl(fmt: str) -> None:
    """Print the IDL (legacy: anchorpy 0.21; anchor-0.30: current Anchor tools)."""
    from importlib import resources

    name = "decentral_escrow.json" if fmt == "legacy" else "decentral_escrow.anchor-0.30.json"
    click.echo(resources.files("decentral_chain").joinpath("idl", name).read_text().rstrip("\n"))


@program.command("verify-build")
@click.option("--program-id", default=None, help="The deployed program (default: the published id).")
@rpc_option
@click.option("--json", "as_json", is_flag=True)
def verify_build(program_id: str | None, rpc_url: str, as_json: bool) -> None:
    """Compare the deployed program's bytes with a fresh build of the sources (with the
    [build] extra in a checkout) or else with the binary shipped in the package."""
    from decentral_chain.abi import BPF_LOADER_UPGRADEABLE_ID, PROGRAM_ID
    from decentral_chain.rpc import JsonRpc
    from decentral_chain.sbpf.build import can_build

    program_key = pubkey(program_id, "--program-id") or PROGRAM_ID

    async def deployed() -> bytes:
        async with JsonRpc(rpc_url) as rpc:
            acc = await rpc.call("getAccountInfo", [str(program_key), {"encoding": "base64"}])
            value = acc.get("value") if isinstance(acc, dict) else None
            if not isinstance(value, dict) or value.get("owner") != str(BPF_LOADER_UPGRADEABLE_ID):
                raise click.UsageError(f"{program_key} is not an upgradeable program on this cluster")
            from solders.pubkey import Pubkey

            programdata = Pubkey.from_bytes(base64.b64decode(value["data"][0])[4:36])
            data = await rpc.call("getAccountInfo", [str(programdata), {"encoding": "base64"}])
            return base64.b64decode(data["value"]["data"][0])[45:]

    onchain = asyncio.run(deployed())
    if can_build():
        import tempfile
        from pathlib import Path

        from decentral_chain.sbpf.build import build

        with tempfile.TemporaryDirectory() as tmp:
            local, against = build(Path(tmp) / "decentral_escrow.so").program.elf, "a fresh build of the sources"
    else:
        from decentral_chain.program import shipped_program

        local, against = shipped_program(), "the binary shipped in the package"
    # ProgramData may be larger than the ELF (room for upgrades): the rest must be zeros.
    matches = onchain[: len(local)] == local and not any(onchain[len(local) :])
    deployed_bytes = onchain[: len(local)] if matches else onchain.rstrip(b"\0")
    result = {
        "program_id": str(program_key),
        "match": matches,
        "against": against,
        "local_sha256": hashlib.sha256(local).hexdigest(),
        "deployed_sha256": hashlib.sha256(deployed_bytes).hexdigest(),
        "local_size": len(local),
        "deployed_size": len(onchain),
    }
    if as_json:
        click.echo(json.dumps(result))
    else:
        out().print(f"local    {result['local_sha256']}  {len(local):,} bytes ({against})")
        out().print(f"deployed {result['deployed_sha256']}  ({len(onchain):,} bytes of program data)")
        out().print("[green]MATCH[/green]" if matches else "[red]MISMATCH[/red]")
    raise SystemExit(0 if matches else 1)
