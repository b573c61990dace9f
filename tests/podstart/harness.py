"""Starting a pod with the driver: shared by tests/test_pod_starts.py and bench/podstart.py
(which puts this folder on sys.path: bench/ is not a package and imports no test module)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def install_gcloud(bin_dir: Path) -> None:
    """The stand-in gcloud in `bin_dir`, run by this Python, readable and runnable by all."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = (HERE / "gcloud").read_text().replace("#!/usr/bin/env python3", f"#!{sys.executable}", 1)
    (bin_dir / "gcloud").write_text(script)
    (bin_dir / "gcloud").chmod(0o755)


def run_plan(plan: dict[str, Any], folder: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run the driver on `plan` in a private mount namespace (see driver.py for the plan)."""
    (folder / "plan.json").write_text(json.dumps(plan))
    command = ["unshare", "--mount", "--propagation", "private", sys.executable, str(HERE / "driver.py")]
    return subprocess.run(
        [*command, str(folder / "plan.json")], capture_output=True, text=True, check=False, timeout=timeout
    )
