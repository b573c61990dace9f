"""Write requirements-server.lock: the exact versions the image installs.

The Dockerfile installs secretpatch[server] from this lock, so that an image built today and
one built next month run the same dependencies. It is the closure of the engine's and the
server extra's dependencies, resolved by pip in a fresh virtual environment with this Python
(the image's minor version; tests/test_deploy.py checks that they agree).

Usage: python scripts/lock_server.py   (then review the diff and commit it)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements-server.lock"


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        venv = Path(scratch) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "install", f"{ROOT}[server]"], check=True)
        frozen = subprocess.run([*pip, "freeze", "--all"], check=True, capture_output=True, text=True).stdout
    lines = sorted(
        line
        for line in frozen.splitlines()
        if line and not line.lower().startswith(("secretpatch", "pip==", "setuptools==", "wheel=="))
    )
    version = ".".join(map(str, sys.version_info[:2]))
    LOCK.write_text(
        "# The exact dependencies of secretpatch[server] for the image (Python "
        f"{version}).\n# Written by scripts/lock_server.py; review changes like code.\n"
        + "".join(line + "\n" for line in lines)
    )
    print(f"wrote {LOCK} ({len(lines)} packages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
