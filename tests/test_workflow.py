"""The operator's golden-file workflow: init, test (never passes falsely), diff."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT, annotation, run_cli


@pytest.fixture
def ops(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("CI", raising=False)
    code, out, _ = run_cli(capsys, "init", str(tmp_path / "ops"))
    assert code == 0 and "cases/example/" in out
    return tmp_path / "ops"


def test_init_gives_working_files_that_pass(ops: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (ops / "rules" / "gcp.yaml").read_text() == (ROOT / "rules" / "gcp.yaml").read_text()
    assert (ops / "templates" / "gcp" / "command.sh.j2").read_text() == (
        ROOT / "templates" / "gcp" / "command.sh.j2"
    ).read_text()
    assert sorted(p.name for p in (ops / "cases" / "example").iterdir()) == [
        "commands.txt",
        "input.yaml",
        "patch.json",
        "pod.yaml",
    ]
    code, out, _ = run_cli(capsys, "test", str(ops / "cases"), "--config", str(ops / "config.yaml"))
    assert code == 0
    assert out.splitlines() == ["PASS  example", "1 passed, 0 failed"]


def test_init_refuses_a_folder_that_is_not_empty(ops: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "init", str(ops))
    assert code == 2 and "is not empty" in err


def test_the_operators_templates_are_the_ones_tested(ops: Path, capsys: pytest.CaptureFixture[str]) -> None:
    command = ops / "templates" / "gcp" / "command.sh.j2"
    command.write_text(command.read_text().replace("chmod +rX", "chmod a+rX"))
    code, out, _ = run_cli(capsys, "test", str(ops / "cases"), "--config", str(ops / "config.yaml"))
    assert code == 1
    assert "-gcloud secrets versions access TestSecret/versions/2" in out
    assert "chmod a+rX /etc/flyte/secrets/testsecret" in out


def test_a_one_character_change_in_a_gcloud_line_fails_with_a_unified_diff(
    ops: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = ops / "cases" / "example" / "commands.txt"
    commands.write_text(commands.read_text().replace("--secret=TestSecret", "--secret=TestSecrets"))
    code, out, _ = run_cli(capsys, "test", str(ops / "cases"), "--config", str(ops / "config.yaml"))
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "FAIL  example"
    assert "      commands.txt differs:" in lines
    assert any(line.startswith("        -gcloud") and "--secret=TestSecrets" in line for line in lines)
    assert any(line.startswith("        +gcloud") and "--secret=TestSecret " in line for line in lines)
    assert lines[-1] == "0 passed, 1 failed"


def test_a_changed_value_in_an_operation_is_named_by_its_path(
    ops: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    patch_file = ops / "cases" / "example" / "patch.json"
    patch = json.loads(patch_file.read_text())
    patch[1]["value"][0]["image"] = "example.com/other:1"
    patch_file.write_text(json.dumps(patch))
    code, out, _ = run_cli(capsys, "test", str(ops / "cases"), "--config", str(ops / "config.yaml"))
    assert code == 1
    assert (
        'patch[1] (add /spec/initContainers).value[0].image changed from "example.com/other:1" to "gcr.io/google.com/cloudsdktool/cloud-sdk:alpine"'
        in out
    )


def test_an_added_operation_fails(ops: Path, capsys: pytest.CaptureFixture[str]) -> None:
    patch_file = ops / "cases" / "example" / "patch.json"
    patch = json.loads(patch_file.read_text())
    patch_file.write_text(json.dumps(patch[:-1]))
    code, out, _ = run_cli(capsys, "test", str(ops / "cases"), "--config", str(ops / "config.yaml"))
    assert code == 1
    assert f"patch[{len(patch) - 1}] was added: " in out


def test_a_reordered_operation_fails(ops: Path, capsys: pytest.CaptureFixture[str]) -> None:
    patch_file = ops / "cases" / "example" / "patch.json"
    patch = json.loads(patch_file.read_text())
    patch[0], patch[1] = patch[1], patch[0]
    patch_file.write_text(json.dumps(patch))
    code, out, _ = run_cli(capsys, "test", str(ops / "cases"), "--config", str(ops / "config.yaml"))
    assert code == 1
    assert "patch has the same operations in another order (positions 0, 1 differ)" in out


def test_a_changed_denial_message_fails_and_the_right_one_passes(
    ops: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = ops / "cases" / "env-var"
    case.mkdir()
    pod = yaml.safe_load((ops / "cases" / "example" / "input.yaml").read_text())
    pod["metadata"]["annotations"]["flyte.secrets/s0"] = annotation(
        group="a", group_version="1", mount_requirement="ENV_VAR"
    )
    (case / "input.yaml").write_text(yaml.safe_dump(pod))
    assert run_cli(capsys, "test", str(case), "--config", str(ops / "config.yaml"), "--update")[0] == 0
    denied = (case / "denied.txt").read_text()
    assert denied.startswith(
        'none of the secret managers injected secret [group:"a" group_version:"1" mount_requirement:ENV_VAR]'
    )
    assert sorted(p.name for p in case.iterdir()) == ["denied.txt", "input.yaml"]
    assert run_cli(capsys, "test", str(case), "--config", str(ops / "config.yaml"))[0] == 0
    (case / "denied.txt").write_text(denied.replace("request FILE or ANY", "request FILE"))
    code, out, _ = run_cli(capsys, "test", str(case), "--config", str(ops / "config.yaml"))
    assert code == 1 and "denied.txt differs:" in out and "+none of the secret managers" in out


def test_a_case_without_expected_files_is_reported_not_invented(
    ops: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = ops / "cases" / "new"
    case.mkdir()
    (case / "input.yaml").write_text((ops / "cases" / "example" / "input.yaml").read_text())
    code, out, _ = run_cli(capsys, "test", str(ops / "cases"), "--config", str(ops / "config.yaml"))
    assert code == 1
    assert "no expected output: add patch.json, pod.yaml, commands.txt or denied.txt" in out
    assert sorted(p.name for p in case.iterdir()) == ["input.yaml"]


def test_update_is_refused_in_ci_unless_insisted(
    ops: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    code, _, err = run_cli(
        capsys, "test", str(ops / "cases"), "--config", str(ops / "config.yaml"), "--update"
    )
    assert code == 2 and "refusing --update in CI" in err
    code, _, _ = run_cli(
        capsys, "test", str(ops / "cases"), "--config", str(ops / "config.yaml"), "--update", "--update-in-ci"
    )
    assert code == 0


def test_junit_xml_records_each_case(ops: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (ops / "cases" / "example" / "commands.txt").write_text("gcloud nothing\n")
    report = tmp_path / "report.xml"
    run_cli(capsys, "test", str(ops / "cases"), "--config", str(ops / "config.yaml"), "--junit", str(report))
    suite = ET.parse(report).getroot()
    assert suite.tag == "testsuite" and suite.get("tests") == "1" and suite.get("failures") == "1"
    failure = suite.find("testcase/failure")
    assert failure is not None and failure.get("message") == "commands.txt differs:"


def test_a_case_config_is_merged_over_the_base_config(ops: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = ops / "cases" / "example"
    (case / "config.yaml").write_text(
        "webhook:\n  gcpSecretManager:\n    sidecarImage: example.com/gcloud:2\n"
    )
    code, out, _ = run_cli(capsys, "test", str(ops / "cases"), "--config", str(ops / "config.yaml"))
    assert code == 1 and '"example.com/gcloud:2"' in out


def test_diff_shows_a_plain_unified_diff_and_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "diff", str(ROOT / "examples" / "pod.yaml"))
    assert code == 0
    assert "\033[" not in out
    assert "+  - name: gcp-pull-secret-0" in out
    assert out.rstrip().splitlines()[-5:] == [
        "2 secret(s) injected, 10 operation(s)",
        "+ volume gcp-secret-vol",
        "+ init container gcp-pull-secret-0",
        "+ init container gcp-pull-secret-1",
        "~ ahvpkfmvnh8ltbpbvrwz-n0-0: mounts gcp-secret-vol; env FLYTE_SECRETS_FILE_PREFIX, FLYTE_SECRETS_DEFAULT_DIR",
    ]
    code, coloured, _ = run_cli(capsys, "diff", str(ROOT / "examples" / "pod.yaml"), "--color", "always")
    assert "\033[32m+  - name: gcp-pull-secret-0\033[0m" in coloured
