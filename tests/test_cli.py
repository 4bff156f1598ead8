"""The decentral CLI: the scripted demo and error handling at the edge."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from decentral_chain.cli import cli


def test_demo_settles_a_job_and_prints_balances():
    result = CliRunner().invoke(cli, ["demo"], terminal_width=120)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "settle 1.2" in out and "settled in" in out
    worker_row = next(line for line in out.splitlines() if "worker" in line and "│" in line)
    assert worker_row.rstrip(" │").endswith("1.170000")
    vault_row = next(line for line in out.splitlines() if line.startswith("│ vault"))
    assert vault_row.rstrip(" │").endswith("23.800000")


def test_unknown_command_is_a_usage_error():
    proc = subprocess.run([sys.executable, "-m", "decentral_chain.cli", "frobnicate"], capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert "No such command" in proc.stderr
