"""Where the project's files live: a source checkout's folders, or the current directory's.

In a source checkout (``pyproject.toml`` beside the package) the localnet's keys live in its
``localnet/`` folder; an installed package uses ``./localnet`` of the current directory (or
``DECENTRAL_LOCALNET_DIR``). Imports nothing
heavy: the CLI reads these before it knows which command runs.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
#: the source checkout this package runs from, or None for an installed package
CHECKOUT: Path | None = PACKAGE_DIR.parent if (PACKAGE_DIR.parent / "pyproject.toml").exists() else None
LOCALNET_DIR = Path(os.environ.get("DECENTRAL_LOCALNET_DIR") or (CHECKOUT or Path.cwd()) / "localnet")
