"""secretpatch lint reports every problem, with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from secretpatch.cli.main import main

from .conftest import ROOT


def lint(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, templates: dict[str, str]
) -> tuple[int, list[str]]:
    folder = tmp_path / "templates" / "gcp"
    folder.mkdir(parents=True)
    for name, text in templates.items():
        (folder / name).write_text(text)
    (tmp_path / "config.yaml").write_text("secretpatch:\n  templates: templates\n")
    try:
        code = main(["lint", "--config", str(tmp_path / "config.yaml")])
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().out.splitlines()


def test_the_bundled_rules_and_templates_are_clean(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["lint"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert lines[-1] == "lint: no problems"
    assert lines[0] == f"lint: checked rules {ROOT / 'rules' / 'gcp.yaml'} and 5 templates"


def test_schema_problems_in_several_templates_are_all_reported(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    init = (
        (ROOT / "templates" / "gcp" / "init-container.yaml.j2")
        .read_text()
        .replace("resources:", "resourcez:")
    )
    mount = (
        (ROOT / "templates" / "gcp" / "mount.yaml.j2")
        .read_text()
        .replace("readOnly: true", 'readOnly: "yes"')
    )
    code, lines = lint(capsys, tmp_path, {"init-container.yaml.j2": init, "mount.yaml.j2": mount})
    folder = tmp_path / "templates" / "gcp"
    init_line = next(i for i, line in enumerate(init.splitlines(), 1) if line.startswith("resourcez:"))
    mount_line = next(i for i, line in enumerate(mount.splitlines(), 1) if line.startswith("readOnly:"))
    assert code == 1
    assert lines[:4] == [  # each problem, then the line at fault
        f"{folder / 'init-container.yaml.j2'}:{init_line}: Additional properties are not allowed ('resourcez' was unexpected) (Kubernetes 1.31)",
        f'  {init_line} | resourcez: "{{{{ values.resources | quantities }}}}"',
        f"{folder / 'mount.yaml.j2'}:{mount_line}: readOnly: 'yes' is not of type 'boolean', 'null' (Kubernetes 1.31)",
        f'  {mount_line} | readOnly: "yes"',
    ]
    assert lines[-1] == "lint: 2 problem(s)"


def test_load_errors_in_several_templates_are_all_reported(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, lines = lint(
        capsys,
        tmp_path,
        {
            "volume.yaml.j2": 'name: "{{ values.volumeName }"\n',
            "env.yaml.j2": '- name: A\n  value: "{{ secret.group | nofilter }}"\n',
        },
    )
    folder = tmp_path / "templates" / "gcp"
    assert code == 1
    assert f"{folder / 'volume.yaml.j2'}:1: Jinja syntax error: unexpected '}}'" in lines
    assert any(
        line.startswith(f"{folder / 'env.yaml.j2'}:2: Jinja syntax error: No filter named 'nofilter'")
        for line in lines
    )
    assert lines[-1] == "lint: 2 problem(s)"


@pytest.mark.parametrize(
    ("values", "oldest"),
    [
        ("{envVars: fileKeyRef}", "1.35"),
        ("{fetch: batched, flyte2Requests: true}", "1.31"),
        ("{envVars: fileKeyRef, fetch: batched, flyte2Requests: true, keyFiles: true}", "1.35"),
    ],
)
def test_every_switch_is_clean_against_the_oldest_kubernetes_the_rule_promises(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, values: str, oldest: str
) -> None:
    """minimumKubernetes: env vars from files (fileKeyRef) need 1.35, and lint checks the
    patched pods against it; the fileKeyRef variables do not validate against 1.31."""
    config = tmp_path / "config.yaml"
    config.write_text(f"secretpatch:\n  values:\n    gcp: {values}\n")
    assert main(["lint", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].endswith(f"against Kubernetes {oldest}, 1.37.0") and lines[-1] == "lint: no problems"


def test_env_vars_from_files_do_not_validate_against_kubernetes_1_31(tmp_path: Path) -> None:
    from secretpatch.tools.lint import lint

    config = tmp_path / "config.yaml"
    config.write_text("secretpatch:\n  values:\n    gcp: {envVars: fileKeyRef}\n")
    problems, _ = lint(config, versions=("1.31",))
    assert any("fileKeyRef" in problem.message and "1.31" in problem.message for problem in problems)
