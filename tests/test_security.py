"""Defence in depth, tested with a deliberately lax rule: even if an operator's grammar let a
hostile value through, quoting, path checks and the fragment design keep it inert."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from secretpatch import Engine, RenderError

from .conftest import ROOT, flyte_pod

GCP_RULE = (ROOT / "rules" / "gcp.yaml").read_text()


@pytest.fixture
def lax(tmp_path: Path) -> Engine:
    """The GCP rule with a group grammar that accepts any printable ASCII."""
    rules = tmp_path / "rules"
    rules.mkdir()
    start = GCP_RULE.index("    group:\n      required:")
    end = GCP_RULE.index("      rule:", start)
    (rules / "gcp.yaml").write_text(
        GCP_RULE[:start] + '    group:\n      required: true\n      pattern: "[ -~]+"\n' + GCP_RULE[end:]
    )
    return Engine.from_config({"secretpatch": {"rules": str(rules)}})


@pytest.mark.parametrize(
    "group", ["a;reboot", "$(id)", "`id`", "a b", "x' || curl evil ||'", "a&&b", "{{ 7*7 }}"]
)
def test_shell_words_stay_single_words_whatever_the_grammar(lax: Engine, group: str) -> None:
    line = lax.mutate(flyte_pod({"group": group, "group_version": "1"})).pod["spec"]["initContainers"][0][
        "command"
    ][2]
    words = shlex.split(line)
    assert words[:5] == ["gcloud", "secrets", "versions", "access", f"{group}/versions/1"]
    assert f"--secret={group}" in words


def test_values_are_data_never_templates(lax: Engine) -> None:
    line = lax.mutate(flyte_pod({"group": "{{ 7*7 }}", "group_version": "1"})).pod["spec"]["initContainers"][
        0
    ]["command"][2]
    assert "'{{ 7*7 }}/versions/1'" in line
    assert "49" not in line


@pytest.mark.parametrize("group", ["..", "../../etc", "a/../../x"])
def test_a_path_out_of_the_secrets_folder_is_refused_by_the_template(lax: Engine, group: str) -> None:
    with pytest.raises(RenderError, match="is outside '/etc/flyte/secrets'"):
        lax.mutate(flyte_pod({"group": group, "group_version": "1"}))


def test_an_absolute_group_stays_inside_the_secrets_folder(lax: Engine) -> None:
    line = lax.mutate(flyte_pod({"group": "/etc/shadow", "group_version": "1"})).pod["spec"][
        "initContainers"
    ][0]["command"][2]
    assert "--out-file=/etc/flyte/secrets/etc/shadow/1 " in line
    assert "chmod +rX /etc/flyte/secrets/etc/shadow /etc/flyte/secrets/etc/shadow/1" in line


def test_values_cannot_add_yaml_keys_or_items(lax: Engine) -> None:
    group = 'x"\nimage: evil:latest\nsecurityContext: {privileged: true}\n- y'
    init = lax.mutate(flyte_pod({"group": group.replace("\n", " "), "group_version": "1"})).pod["spec"][
        "initContainers"
    ][0]
    assert init["image"] == "gcr.io/google.com/cloudsdktool/cloud-sdk:alpine"
    assert sorted(init) == ["command", "env", "image", "name", "resources", "volumeMounts"]


def test_the_bundled_grammar_refuses_before_any_template_runs(engine: Engine) -> None:
    from secretpatch import Rejected

    with pytest.raises(Rejected):
        engine.mutate(flyte_pod({"group": "a;reboot", "group_version": "1"}))


def test_every_test_the_threat_model_cites_exists() -> None:
    import re

    text = (ROOT / "docs" / "security.md").read_text()
    cited = set(re.findall(r"`(test_\w+\.py)::(test_\w+)`", text))
    assert len(cited) >= 25
    for file, name in sorted(cited):
        source = (ROOT / "tests" / file).read_text()
        assert f"def {name}(" in source, f"docs/security.md cites {file}::{name}, which does not exist"
    for file in set(re.findall(r"`(test_\w+\.py)`", text)):
        assert (ROOT / "tests" / file).is_file(), file
