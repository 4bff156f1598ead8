"""Compile ``programs/decentral_escrow`` with ziglang's clang and link it with our linker.

The build is reproducible: the object carries no paths or timestamps (no debug info), the
linker is deterministic, and ``tests/test_build.py`` builds twice and compares bytes — and
compares with the binary shipped in the package (:mod:`decentral_chain.program`), which is
what :func:`ensure_built` returns where the sources or the compiler (the [build] extra) are
missing.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from decentral_chain.errors import BuildError
from decentral_chain.sbpf.linker import LinkedProgram, link

ROOT = Path(__file__).resolve().parents[2]
PROGRAM_DIR = ROOT / "programs" / "decentral_escrow"
UNITY_SOURCE = PROGRAM_DIR / "src" / "program.c"
DEPLOY_PATH = ROOT / "target" / "deploy" / "decentral_escrow.so"

CFLAGS = (
    "-target",
    "bpfel-freestanding",
    "-mcpu=v2",  # v3 is rejected at deploy (unknown opcode 0x16)
    "-O2",
    "-mllvm",
    "-inline-threshold=-50",  # helpers stay out of line: -O2 with this is smaller than -Os/-Oz
    "-ffreestanding",
    "-fno-builtin",
    "-fno-unwind-tables",
    "-fno-asynchronous-unwind-tables",
    "-fno-addrsig",
    "-mllvm",
    "-bpf-stack-size=4096",
    "-Wall",
    "-Wextra",
    "-Werror",
)


@dataclass(frozen=True, slots=True)
class BuildResult:
    path: Path
    program: LinkedProgram

    @property
    def size(self) -> int:
        return len(self.program.elf)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.program.elf).hexdigest()


def compile_object(source: Path = UNITY_SOURCE, program_dir: Path = PROGRAM_DIR) -> bytes:
    """Compile one translation unit to a BPF relocatable object."""
    with tempfile.TemporaryDirectory() as tmp:
        obj = Path(tmp) / "program.o"
        cmd = [
            sys.executable,
            "-m",
            "ziglang",
            "cc",
            *CFLAGS,
            "-I",
            str(program_dir / "include"),
            "-I",
            str(program_dir / "src"),
            "-c",
            str(source),
            "-o",
            str(obj),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=program_dir)
        if proc.returncode != 0:
            raise BuildError(proc.stderr.strip() or f"compiler exited {proc.returncode}")
        return obj.read_bytes()


def build(out: Path = DEPLOY_PATH) -> BuildResult:
    """Compile and link the escrow into ``out`` (Anchor's ``target/deploy`` path)."""
    program = link(compile_object())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(program.elf)
    return BuildResult(out, program)


def can_build() -> bool:
    """The sources are here (a checkout) and the compiler is installed (the [build] extra)."""
    import importlib.util

    return UNITY_SOURCE.exists() and importlib.util.find_spec("ziglang") is not None


def ensure_built(path: Path = DEPLOY_PATH) -> bytes:
    """The program bytes: built first when the file is missing or older than a source, where
    this install can build; otherwise the binary shipped in the package."""
    if not can_build():
        from decentral_chain.program import shipped_program

        return shipped_program()
    sources = [*PROGRAM_DIR.rglob("*.c"), *PROGRAM_DIR.rglob("*.h"), *Path(__file__).parent.glob("*.py")]
    if not path.exists() or max(s.stat().st_mtime for s in sources) > path.stat().st_mtime:
        build(path)
    return path.read_bytes()
