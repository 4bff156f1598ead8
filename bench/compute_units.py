"""Compute units of every escrow instruction, and the binary size.

    python bench/compute_units.py            a table
    python bench/compute_units.py --json     {"binary_size": ..., "instructions": {name: {"total", "own"}}}

`total` is what the transaction's escrow instruction consumed; `own` excludes the units
consumed inside the programs it invoked, read from the invoke frames of the log (SPL
Token reports its units; the builtin system program logs none and charges a fixed 150).
Measured on LiteSVM (solders 0.26) with its bundled SPL Token program.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from solders.keypair import Keypair  # noqa: E402
from solders.pubkey import Pubkey  # noqa: E402

from decentral_chain.instructions import (  # noqa: E402
    build_accept_admin,
    build_deposit,
    build_lock_job,
    build_propose_admin,
    build_refund_job,
    build_set_treasury,
    build_settle_job,
    build_update_config,
    build_withdraw,
)
from decentral_chain.localnet.genesis import USDC, build_genesis  # noqa: E402
from decentral_chain.localnet.svm import send  # noqa: E402
from decentral_chain.pda import new_job_id  # noqa: E402
from decentral_chain.sbpf.build import ensure_built  # noqa: E402

TARGETS = {  # (kind, limit) from the program issue
    "settle_job": ("own", 7_000),
    "lock_job": ("total", 6_500),
    "refund_job": ("total", 2_500),
    "deposit": ("own", 2_500),
}
_CONSUMED = re.compile(r"^Program (\w+) consumed (\d+) of \d+ compute units$")
_INVOKE = re.compile(r"^Program (\w+) invoke \[(\d+)\]$")
_EXIT = re.compile(r"^Program (\w+) (success|failed: .*)$")
SYSTEM_PROGRAM = "11111111111111111111111111111111"
#: Builtins log no "consumed" line; the system program charges a fixed 150 CU per call.
BUILTIN_UNITS = {SYSTEM_PROGRAM: 150}


def split_units(logs: list[str], program: str) -> tuple[int, int]:
    """(total, own) of the first top-level invocation of ``program``."""
    stack: list[str] = []
    total, inner = None, 0
    for line in logs:
        if m := _INVOKE.match(line):
            stack.append(m.group(1))
            if len(stack) == 2 and total is None:
                inner += BUILTIN_UNITS.get(m.group(1), 0)
        elif m := _CONSUMED.match(line):
            if len(stack) == 1 and m.group(1) == program and total is None:
                total = int(m.group(2))
            elif len(stack) == 2 and total is None:
                inner += int(m.group(2))
        elif _EXIT.match(line):
            stack.pop()
    assert total is not None, "program did not run"
    return total, total - inner


def measure() -> dict:
    elf = ensure_built()
    g = build_genesis(elf, initialize=False)
    svm, pid = g.svm, str(g.program_id)
    units: dict[str, tuple[int, int]] = {}

    def run(name: str, ix, payer, *signers) -> None:
        svm.expire_blockhash()
        meta = send(svm, [ix], payer, signers)
        units.setdefault(name, split_units(list(meta.logs()), pid))

    from decentral_chain.instructions import build_initialize

    run(
        "initialize",
        build_initialize(
            admin=g.admin.pubkey(),
            mint=g.mint,
            gateway=g.gateway.pubkey(),
            treasury=g.treasury.token,
            fee_bps=250,
            refund_timeout=600,
        ),
        g.admin,
    )
    worker = g.workers[0]
    # A client whose Credits PDA has bump 255, so creating it costs one find_program_address try.
    keypair = next(
        k
        for k in iter(Keypair, None)
        if Pubkey.find_program_address([b"credits", bytes(k.pubkey())], g.program_id)[1] == 255
    )
    client = g.new_wallet(usdc=100 * USDC, keypair=keypair)
    run(
        "deposit (creates Credits)",
        build_deposit(owner=client.pubkey, source=client.token, amount=10 * USDC),
        client.keypair,
    )
    run("deposit", build_deposit(owner=client.pubkey, source=client.token, amount=10 * USDC), client.keypair)
    run("withdraw", build_withdraw(owner=client.pubkey, destination=client.token, amount=USDC), client.keypair)
    gw = g.gateway
    jobs = [new_job_id() for _ in range(2)]  # canonical bump 255: one find_program_address try
    for job in jobs:
        run(
            "lock_job",
            build_lock_job(
                gateway=gw.pubkey(), client=client.pubkey, job_id=job, amount=2 * USDC, worker=worker.pubkey
            ),
            gw,
        )
    run(
        "settle_job",
        build_settle_job(
            gateway=gw.pubkey(),
            client=client.pubkey,
            job_id=jobs[0],
            worker_token=worker.token,
            treasury=g.treasury.token,
            payer=gw.pubkey(),
            cost=USDC,
            result_hash=bytes(32),
            prompt_tokens=100,
            completion_tokens=200,
            worker=worker.pubkey,
            nonce=1,
        ),
        gw,
        worker.keypair,
    )
    run(
        "refund_job",
        build_refund_job(authority=gw.pubkey(), client=client.pubkey, job_id=jobs[1], payer=gw.pubkey()),
        gw,
    )
    admin = g.admin
    run("update_config", build_update_config(admin=admin.pubkey(), fee_bps=300), admin)
    run("set_treasury", build_set_treasury(admin=admin.pubkey(), treasury=g.treasury.token), admin)
    new_admin = Keypair()
    svm.airdrop(new_admin.pubkey(), 10**9)
    run("propose_admin", build_propose_admin(admin=admin.pubkey(), new_admin=new_admin.pubkey()), admin)
    run("accept_admin", build_accept_admin(new_admin=new_admin.pubkey()), new_admin)
    return {"binary_size": len(elf), "units": units}


def main() -> None:
    result = measure()
    units = result["units"]
    if "--json" in sys.argv[1:]:
        report = {
            "binary_size": result["binary_size"],
            "instructions": {n: {"total": t, "own": o} for n, (t, o) in units.items() if "(" not in n},
        }
        print(json.dumps(report))
        return
    table = Table(title=f"decentral_escrow compute units (binary {result['binary_size']:,} bytes, target ≤ 20,480)")
    for col in ("instruction", "total CU", "own CU", "target"):
        table.add_column(col, justify="left" if col == "instruction" else "right")
    for name, (total, own) in units.items():
        kind, limit = TARGETS.get(name, ("", 0))
        value = own if kind == "own" else total
        target = f"{kind} ≤ {limit:,} {'ok' if value <= limit else 'MISSED'}" if kind else ""
        table.add_row(name, f"{total:,}", f"{own:,}", target)
    Console().print(table)


if __name__ == "__main__":
    main()
