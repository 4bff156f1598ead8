"""The escrow program as shipped in the package: the built sBPF ELF, byte-identical to a
build of this checkout's sources (``tests/test_build.py`` rebuilds and compares;
``decentral program build`` refreshes it). An install without the [build] extra deploys and
checks this binary; one with it can rebuild and compare."""

from __future__ import annotations

from pathlib import Path

SHIPPED_PATH = Path(__file__).resolve().parent / "decentral_escrow.so"


def shipped_program() -> bytes:
    return SHIPPED_PATH.read_bytes()
