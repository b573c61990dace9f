"""The wheel carries every rule and template and the py.typed marker: every template a bundled
rule names is inside it; installed into a fresh venv, outside the checkout, it renders the
example pod as the checkout does."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT


def templates_named_by_rules(archive: zipfile.ZipFile) -> set[str]:
    """Every template any rule in the wheel names: its texts and its fragments."""
    named = set()
    for name in archive.namelist():
        if name.startswith("secretpatch/_bundled/rules/") and name.endswith(".yaml"):
            rule = yaml.safe_load(archive.read(name))
            texts = rule.get("texts", {}).values()  # a file, or {template: file, when: ...}
            named.update(text["template"] if isinstance(text, dict) else text for text in texts)
            named.update(fragment["template"] for fragment in rule["fragments"])
    return named


@pytest.mark.slow
def test_the_installed_wheel_renders_the_example_as_the_checkout_does(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(ROOT),
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = dist.glob("secretpatch-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    bundled = sorted(n for n in names if "/_bundled/" in n)
    expected = sorted(
        f"secretpatch/_bundled/{p.relative_to(ROOT).as_posix()}"
        for p in [*ROOT.glob("rules/*.yaml"), *ROOT.glob("templates/**/*.j2")]
    )
    assert bundled == expected
    assert "secretpatch/py.typed" in names
    with zipfile.ZipFile(wheel) as archive:
        named = templates_named_by_rules(archive)
    assert named, "the bundled rules name no templates"
    missing = sorted(f"secretpatch/_bundled/templates/{t}" for t in named)
    assert [t for t in missing if t not in names] == []

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
        check=True,
        cwd=tmp_path,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "pod.yaml").write_text((ROOT / "examples" / "pod.yaml").read_text())
    installed = subprocess.run(
        [str(env_dir / "bin" / "secretpatch"), "render", "pod.yaml", "--output", "pod"],
        capture_output=True,
        text=True,
        check=True,
        cwd=work,
    )
    location = subprocess.run(
        [str(env_dir / "bin" / "python"), "-c", "import secretpatch; print(secretpatch.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=work,
    )
    assert str(ROOT) not in location.stdout
    checkout = subprocess.run(
        [
            sys.executable,
            "-m",
            "secretpatch.cli",
            "render",
            str(ROOT / "examples" / "pod.yaml"),
            "--output",
            "pod",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert installed.stdout == checkout.stdout
    assert "gcp-pull-secret-1" in installed.stdout
    subprocess.run(
        [str(env_dir / "bin" / "secretpatch"), "init", "ops"], check=True, cwd=work, capture_output=True
    )
    for relative in ("rules/gcp.yaml", "templates/gcp/command.sh.j2", "templates/gcp/init-container.yaml.j2"):
        assert (work / "ops" / relative).read_text() == (ROOT / relative).read_text()
    assert sorted(p.name for p in (work / "ops" / "templates" / "gcp").iterdir()) == sorted(
        p.name for p in (ROOT / "templates" / "gcp").iterdir()
    )
