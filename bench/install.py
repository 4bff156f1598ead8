"""What an install costs: the core (an auditor's `pip install decentral-chain`) against the
full set (every extra, as `make test` installs it), and how long `decentral verify --help`
takes to answer.

    python bench/install.py            a table
    python bench/install.py --json     {"core_install_s", "core_size_mb", "full_install_s",
                                        "full_size_mb", "verify_help_s"}

The wheel is built first; each install goes into a fresh virtualenv, with pip's cache as
this machine has it (downloads and llama-cpp-python's built wheel cached: the figures are
install times, not download times). Sizes are the virtualenv minus an empty one.
verify_help_s is the median of 7 runs in the core virtualenv.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


def timed(*cmd: str | Path) -> float:
    start = time.monotonic()
    subprocess.run([str(c) for c in cmd], check=True, capture_output=True)
    return time.monotonic() - start


def measure() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        subprocess.run(
            [sys.executable, "-m", "build", "--outdir", tmp_path / "dist", ROOT],  # the wheel from the sdist
            check=True,
            capture_output=True,
        )
        wheel = next((tmp_path / "dist").glob("*.whl"))
        venv.create(tmp_path / "empty", with_pip=True)
        empty = size_mb(tmp_path / "empty")
        quiet = ("--quiet", "--disable-pip-version-check")

        venv.create(tmp_path / "core", with_pip=True)
        core_s = timed(tmp_path / "core" / "bin" / "python", "-m", "pip", "install", *quiet, wheel)
        venv.create(tmp_path / "full", with_pip=True)
        pip = (tmp_path / "full" / "bin" / "python", "-m", "pip", "install", *quiet)
        full_s = timed(*pip, "--require-hashes", "-r", ROOT / "requirements.lock")
        full_s += timed(*pip, "--no-deps", wheel)

        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        runs = []
        for _ in range(7):
            start = time.monotonic()
            subprocess.run(
                [tmp_path / "core" / "bin" / "decentral", "verify", "--help"],
                check=True,
                capture_output=True,
                env=env,
                cwd=tmp,
            )
            runs.append(time.monotonic() - start)
        return {
            "core_install_s": round(core_s, 1),
            "core_size_mb": round(size_mb(tmp_path / "core") - empty, 1),
            "full_install_s": round(full_s, 1),
            "full_size_mb": round(size_mb(tmp_path / "full") - empty, 1),
            "verify_help_s": round(statistics.median(runs), 3),
        }


def main() -> None:
    result = measure()
    if "--json" in sys.argv[1:]:
        print(json.dumps(result))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="installs (fresh virtualenvs, warm pip cache)")
    for col in ("measure", "core", "full (every extra)"):
        table.add_column(col)
    table.add_row("install time", f"{result['core_install_s']} s", f"{result['full_install_s']} s")
    table.add_row("size", f"{result['core_size_mb']} MB", f"{result['full_size_mb']} MB")
    table.add_row("`decentral verify --help`", f"{result['verify_help_s']} s (target < 0.3 s)", "")
    Console().print(table)


if __name__ == "__main__":
    main()
