"""docs/customising.md, performed exactly as written: each section's files are written into a
fresh `secretpatch init` folder, the cases are updated, and the resulting diff of the example's
pod.yaml must be the one the guide shows (and the golden file under snapshots/customising/)."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import pytest
from secretpatch.cli.main import main

from .conftest import ROOT

GUIDE = (ROOT / "docs" / "customising.md").read_text()
BLOCK = re.compile(r"<!-- (file|append|diff): (\S+) -->\n```\w*\n(.*?)```\n", re.DOTALL)


def sections() -> dict[str, tuple[list[tuple[str, str, str]], str]]:
    """diff name -> (the file and append blocks before it in its section, the diff shown)."""
    result = {}
    for section in re.split(r"\n## ", GUIDE):
        blocks = BLOCK.findall(section)
        edits = [(kind, target, text) for kind, target, text in blocks if kind != "diff"]
        for kind, target, text in blocks:
            if kind == "diff":
                result[target] = (edits, text)
    return result


def cli(*argv: str) -> int:
    try:
        return main(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)


def perform(tmp_path: Path, edits: list[tuple[str, str, str]], capsys: pytest.CaptureFixture[str]) -> str:
    ops = tmp_path / "ops"
    assert cli("init", str(ops)) == 0
    before = (ops / "cases" / "example" / "pod.yaml").read_text()
    for kind, target, text in edits:
        path = ops / target
        if kind == "file":
            path.write_text(text)
        else:
            path.write_text(path.read_text() + text)
    config = str(ops / "config.yaml")
    assert cli("test", str(ops / "cases"), "--config", config) == 1, (
        "the change must show as a failing case first"
    )
    assert cli("test", str(ops / "cases"), "--config", config, "--update") == 0
    assert cli("test", str(ops / "cases"), "--config", config) == 0
    assert cli("lint", "--config", config) == 0, capsys.readouterr().out
    capsys.readouterr()
    after = (ops / "cases" / "example" / "pod.yaml").read_text()
    diff = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        "a/cases/example/pod.yaml",
        "b/cases/example/pod.yaml",
    )
    return "".join(diff)


def test_the_guide_has_three_customisations() -> None:
    assert sorted(sections()) == ["hardened-sidecar", "in-house-image", "pod-metadata"]


@pytest.mark.parametrize("name", ["hardened-sidecar", "in-house-image", "pod-metadata"])
def test_each_customisation_gives_the_diff_the_guide_shows(
    name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    snapshot: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)  # the guide is an operator's local workflow
    edits, shown = sections()[name]
    assert edits, f"section {name} edits nothing"
    diff = perform(tmp_path, edits, capsys)
    snapshot.snapshot_dir = ROOT / "snapshots" / "customising"
    snapshot.assert_match(diff, f"{name}.diff")
    assert shown == diff, f"docs/customising.md shows a different diff for {name}"
