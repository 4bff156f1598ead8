"""The package as an auditor installs it: wheel and sdist built, checked by twine, the wheel
installed alone into a clean virtualenv (core dependencies only, from the registry) and used
to verify a receipt from a live localnet and to check the deployed program's bytes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import uuid
import venv
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from decentral_chain.client import EscrowClient
from decentral_chain.localnet.genesis import USDC
from decentral_chain.pda import new_job_id
from decentral_chain.program import SHIPPED_PATH
from decentral_chain.receipts import Receipt
from decentral_chain.sbpf.build import build

ROOT = Path(__file__).resolve().parents[1]
RESPONSE = b"a verified answer"


def run(*args: str | Path, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = run(sys.executable, "-m", "build", "--outdir", out, ROOT)  # the wheel from the sdist: no build/ here
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def clean_venv(dist, tmp_path_factory) -> Path:
    """A virtualenv with nothing but the wheel and its core dependencies."""
    home = tmp_path_factory.mktemp("venv")
    venv.create(home, with_pip=True)
    wheel = next(dist.glob("*.whl"))
    installed = run(home / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel)
    assert installed.returncode == 0, installed.stderr[-3000:]
    return home


def test_the_shipped_program_is_a_fresh_build(tmp_path):
    """decentral_chain/program/decentral_escrow.so is what the sources build, byte for byte
    (run `decentral program build` after changing the program)."""
    assert build(tmp_path / "escrow.so").program.elf == SHIPPED_PATH.read_bytes()


def test_wheel_and_sdist_pass_twine_and_carry_the_program(dist):
    checked = run(sys.executable, "-m", "twine", "check", "--strict", *sorted(dist.iterdir()))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    wheel = next(dist.glob("*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        shipped = z.read("decentral_chain/program/decentral_escrow.so")
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert shipped == SHIPPED_PATH.read_bytes()
    assert {
        "decentral_chain/idl/decentral_escrow.json",
        "decentral_chain/idl/decentral_escrow.anchor-0.30.json",
    } <= names
    core = [line for line in meta.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert not any(name in " ".join(core) for name in ("llama", "anchorpy", "ziglang", "starlette", "solana"))
    assert any('extra == "gateway"' in line and "llama-cpp-python" in line for line in meta.splitlines())


def test_the_core_install_verifies_a_receipt_and_the_deployed_program(clean_venv, rpc_localnet, tmp_path):
    url, chain, g = rpc_localnet

    async def settled() -> Receipt:
        async with EscrowClient(url) as escrow:
            await escrow.deposit(g.clients[0].keypair, 5 * USDC)
            job_id = new_job_id()
            lock = await escrow.lock_job(g.gateway, g.clients[0].pubkey, job_id, USDC, g.workers[0].pubkey)
            end = await escrow.settle_job(
                g.gateway,
                job_id,
                worker=g.workers[0].keypair,
                cost=300_000,
                result_hash=hashlib.sha256(RESPONSE).digest(),
                prompt_tokens=3,
                completion_tokens=4,
            )
        return Receipt(
            job_id=uuid.UUID(bytes=job_id),
            lock_tx=str(lock),
            settlement_tx=str(end),
            worker=str(g.workers[0].pubkey),
            client=str(g.clients[0].pubkey),
        )

    (tmp_path / "receipt.json").write_text(asyncio.run(settled()).model_dump_json())
    (tmp_path / "response.txt").write_bytes(RESPONSE)
    decentral = clean_venv / "bin" / "decentral"
    env = {**os.environ, "COLUMNS": "200", "DECENTRAL_LOCALNET_DIR": str(tmp_path / "localnet")}
    env.pop("PYTHONPATH", None)
    verified = run(
        decentral,
        "verify",
        "--receipt",
        tmp_path / "receipt.json",
        "--response",
        tmp_path / "response.txt",
        "--rpc-url",
        url,
        "--mint",
        g.mint,
        "--json",
        cwd=tmp_path,
        env=env,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["verified"] is True
    same = run(decentral, "program", "verify-build", "--rpc-url", url, "--json", cwd=tmp_path, env=env)
    result = json.loads(same.stdout)
    assert same.returncode == 0 and result["match"] and result["against"] == "the binary shipped in the package"
    idl = run(decentral, "program", "idl", "--format", "anchor-0.30", cwd=tmp_path, env=env)
    assert json.loads(idl.stdout)["address"] == str(g.program_id)


def test_the_core_install_names_the_extra_a_command_needs(clean_venv, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    decentral = clean_venv / "bin" / "decentral"
    for command, extra in (("localnet", "localnet"), ("gateway", "gateway"), ("demo", "gateway")):
        proc = run(decentral, command, cwd=tmp_path, env=env)
        assert proc.returncode == 2, (command, proc.stdout, proc.stderr)
        assert f"pip install 'decentral-chain[{extra}]'" in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    version = run(decentral, "--version", cwd=tmp_path, env=env)
    assert version.stdout.split()[-1] == metadata.version("decentral-chain")
    helped = run(
        clean_venv / "bin" / "python",
        "-c",
        "import sys; from decentral_chain.cli import cli\n"
        "try:\n    cli(['verify', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('starlette', 'uvicorn', 'llama_cpp', 'solana', 'anchorpy', 'httpx', "
        "'pydantic', 'decentral_chain.verify') if m in sys.modules))",
        cwd=tmp_path,
        env=env,
    )
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.strip().splitlines()[-1] == "[]"  # --help imports none of it


def test_the_localnet_extra_deploys_the_shipped_program_without_a_compiler(dist, tmp_path):
    """[localnet] without [build]: no ziglang, no sources — `decentral localnet` deploys the
    binary shipped in the wheel, byte for byte."""
    import base64
    import time

    import httpx

    from decentral_chain.localnet.server import free_port_pair
    from decentral_chain.pda import program_data_address

    home = tmp_path / "venv"
    venv.create(home, with_pip=True)
    wheel = next(dist.glob("*.whl"))
    installed = run(
        home / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"{wheel}[localnet]"
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    assert run(home / "bin" / "python", "-c", "import ziglang").returncode != 0  # no compiler here
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    port = free_port_pair()
    proc = subprocess.Popen(
        [home / "bin" / "decentral", "localnet", "--port", str(port), "--keys-dir", str(tmp_path / "keys")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 60
        while not (tmp_path / "keys" / "addresses.json").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        account = None
        while account is None and time.monotonic() < deadline:
            try:
                account = httpx.post(
                    url,
                    json={
                        "jsonrpc": "2.0",
                        "id": 1,
                        "method": "getAccountInfo",
                        "params": [str(program_data_address()), {"encoding": "base64", "commitment": "processed"}],
                    },
                ).json()["result"]
            except httpx.TransportError:
                time.sleep(0.1)
        deployed = base64.b64decode(account["value"]["data"][0])[45:]
        assert deployed[: len(SHIPPED_PATH.read_bytes())] == SHIPPED_PATH.read_bytes()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
