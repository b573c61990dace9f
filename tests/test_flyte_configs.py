"""The webhook sections Flyte's own Helm charts render (tests/flyte-configs/, each file says
where it comes from): each one that turns GCP on loads, with one warning per key secretpatch
does not use, and renders the example pod as the defaults do; a chart's default that turns
on no manager secretpatch serves stops start-up, saying what it enables."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from secretpatch import Engine, LoadError
from secretpatch.core.config import SERVER_KEYS

from .conftest import ROOT, run_cli

FOLDER = ROOT / "tests" / "flyte-configs"
WITH_GCP = sorted(FOLDER.glob("*-gcp.yaml"))
POD = yaml.safe_load((ROOT / "examples" / "pod.yaml").read_text())
USED = {"secretManagerType", "secretManagerTypes", "gcpSecretManager", *SERVER_KEYS}


def test_there_is_a_file_for_each_chart() -> None:
    assert [p.name for p in WITH_GCP] == [
        "flyte-2.0-gcp.yaml",
        "flyte-binary-1.16-gcp.yaml",
        "flyte-core-1.16-gcp.yaml",
    ]


@pytest.mark.parametrize("path", WITH_GCP, ids=lambda p: p.stem)
def test_a_charts_webhook_section_with_gcp_on_loads_and_renders_the_example_pod(path: Path) -> None:
    engine = Engine.from_config(path)
    assert engine.mutate(POD).patch == Engine.from_config(None).mutate(POD).patch
    section = yaml.safe_load(path.read_text())["webhook"]
    for key in section:
        mentions = sum(f"webhook.{key} is ignored" in w for w in engine.warnings)
        assert mentions == (0 if key in USED else 1), key


@pytest.mark.parametrize("path", WITH_GCP, ids=lambda p: p.stem)
def test_the_command_line_renders_with_a_charts_section(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "render", "--config", str(path), str(ROOT / "examples" / "pod.yaml"))
    assert code == 0 and "gcloud secrets versions access" in out


def test_a_chart_default_that_enables_only_flytes_embedded_manager_stops_start_up() -> None:
    path = FOLDER / "flyte-2.0-chart-default.yaml"
    with pytest.raises(LoadError) as caught:
        Engine.from_config(path)
    assert "the config enables Embedded, and secretpatch serves GCP" in str(caught.value)
    lines = path.read_text().splitlines()
    assert caught.value.line == 1 + next(i for i, line in enumerate(lines) if "secretManagerTypes" in line)


def test_the_migration_page_names_only_flags_and_keys_that_exist() -> None:
    """docs/migrating-from-flyte.md: every `--flag` it gives secretpatch is one of the command's
    flags, and every `secretpatch:` setting it recommends loads."""
    import re

    from secretpatch.cli.main import build_parser

    page = (ROOT / "docs" / "migrating-from-flyte.md").read_text()
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    flags = {name: {o for a in sub._actions for o in a.option_strings} for name, sub in commands.items()}
    shown = re.findall(r"secretpatch (?:manifests|webhook-config|render|lint)\b[^\n`]*(?:\\\n[^\n`]*)*", page)
    assert len(shown) >= 3, "the page shows secretpatch commands"
    for line in shown:
        command = line.split()[1]
        for flag in re.findall(r"(--[a-z-]+)", line):
            assert flag in flags[command], f"{command} has no {flag}"
    selector = re.findall(r"`(--[a-z-]+)`\s+on\s+`secretpatch manifests`\s+or\s+`webhook-config`", page)
    assert selector == ["--namespace-selector"]
    assert selector[0] in flags["manifests"] and selector[0] in flags["webhook-config"]
    for setting in ({}, {"flyte": "v1", "onRefusal": "admit"}, {"flyte": "v1"}):
        assert Engine.from_config({"secretpatch": setting}).config.profile == setting.get("flyte", "v2")
