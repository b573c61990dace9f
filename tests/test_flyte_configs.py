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
