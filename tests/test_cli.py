"""The command line: outputs and exit codes (0 done, 1 rejected, 2 bad usage or input)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import ROOT, admission_review, flyte_pod, run_cli

EXAMPLE = str(ROOT / "examples" / "pod.yaml")


def test_render_prints_the_patch_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "render", EXAMPLE)
    assert code == 0
    patch = json.loads(out)
    assert patch[0] == {
        "op": "add",
        "path": "/spec/volumes",
        "value": [{"name": "gcp-secret-vol", "emptyDir": {"medium": "Memory"}}],
    }
    assert err == ""


def test_render_output_pod_prints_yaml_and_commands_prints_lines(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "render", EXAMPLE, "--output", "pod")
    assert code == 0
    pod = yaml.safe_load(out)
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["gcp-pull-secret-0", "gcp-pull-secret-1"]
    code, out, _ = run_cli(capsys, "render", EXAMPLE, "-o", "commands")
    assert code == 0
    assert out.splitlines()[0].startswith("gcloud secrets versions access TestSecret/versions/2 ")
    assert len(out.splitlines()) == 2


def test_render_reads_stdin_and_accepts_an_admission_review(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "u", "object": flyte_pod({"group": "a", "group_version": "1"})},
    }
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(review)))
    code, out, _ = run_cli(capsys, "render", "-", "-o", "commands")
    assert code == 0
    assert out.startswith("gcloud secrets versions access a/versions/1 ")


def test_a_rejected_secret_exits_1_with_one_line_on_stderr(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pod = tmp_path / "pod.json"
    pod.write_text(json.dumps(flyte_pod({"group": "a;reboot", "group_version": "1"})))
    code, out, err = run_cli(capsys, "render", str(pod))
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("secretpatch: rejected: none of the secret managers injected secret [")
    assert 'group "a;reboot" is not valid' in err


def write_review(tmp_path: Path, pod: dict[str, Any]) -> str:
    review = admission_review(pod, uid="abc")
    path = tmp_path / "review.yaml"
    path.write_text(yaml.safe_dump(review))
    return str(path)


def test_review_prints_the_response(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run_cli(
        capsys, "review", write_review(tmp_path, flyte_pod({"group": "a", "group_version": "1"}))
    )
    assert code == 0
    response = json.loads(out)["response"]
    assert response["uid"] == "abc" and response["allowed"] is True and response["patchType"] == "JSONPatch"


def test_review_of_a_denied_pod_prints_the_answer_and_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run_cli(
        capsys,
        "review",
        write_review(
            tmp_path, flyte_pod({"group": "a", "group_version": "1", "mount_requirement": "ENV_VAR"})
        ),
    )
    assert code == 1
    assert json.loads(out)["response"]["allowed"] is False
    assert err.startswith("secretpatch: denied: none of the secret managers injected secret [")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["render", "/nonexistent/pod.yaml"], "cannot read /nonexistent/pod.yaml: No such file or directory"),
        (["render", EXAMPLE, "--config", "/nonexistent.yaml"], "cannot read the config file"),
        (["review", EXAMPLE], 'apiVersion "v1" is not an AdmissionReview version'),
    ],
)
def test_unreadable_input_exits_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert out == ""
    assert message in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "cannot parse"),
        ("- a\n- b\n", "expected a pod (a mapping), got list"),
        ("spec: 5\n", "invalid input: the pod has no spec object"),
    ],
)
def test_malformed_pods_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "pod.yaml"
    if "spec" in text:
        text = yaml.safe_dump({**flyte_pod({"group": "a", "group_version": "1"}), "spec": 5})
    path.write_text(text)
    code, _, err = run_cli(capsys, "render", str(path))
    assert code == 2
    assert message in err


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "render")[0] == 2
    assert run_cli(capsys, "render", EXAMPLE, "--output", "xml")[0] == 2
    assert run_cli(capsys, "nosuchcommand")[0] == 2


def test_config_warnings_go_to_stderr(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("webhook:\n  localCert: true\n")
    result = subprocess.run(
        [sys.executable, "-m", "secretpatch.cli", "render", EXAMPLE, "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert "secretpatch: warning: " in result.stderr and "webhook.localCert is ignored" in result.stderr


def test_with_on_refusal_admit_render_and_review_say_the_pod_goes_through_without_its_secrets(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Exit 1 still: a secret was rejected, even though the webhook admits the pod."""
    config = tmp_path / "config.yaml"
    config.write_text("secretpatch:\n  onRefusal: admit\n")
    pod = flyte_pod({"group": "a", "group_version": "1", "mount_requirement": "ENV_VAR"})
    (tmp_path / "pod.json").write_text(json.dumps(pod))
    code, out, err = run_cli(capsys, "render", "--config", str(config), str(tmp_path / "pod.json"))
    assert code == 1 and out == "" and err.count("\n") == 1
    assert err.rstrip().endswith(
        "(onRefusal is admit: the webhook lets this pod through unchanged, without its secrets, with a warning)"
    )
    code, out, err = run_cli(capsys, "review", "--config", str(config), write_review(tmp_path, pod))
    assert code == 1
    assert json.loads(out)["response"]["allowed"] is True
    assert err.splitlines()[0].startswith("secretpatch: warning: secretpatch admitted the pod unchanged")
    assert "mount_requirement ENV_VAR is not supported" in err.splitlines()[1]


@pytest.mark.parametrize("where", ["before the command", "after the command"])
def test_the_config_is_read_wherever_config_stands(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, where: str
) -> None:
    """`secretpatch --config F render POD`, as --help shows it, and `secretpatch render --config
    F POD` both read F (the command's own option once reset the one given before it)."""
    config = tmp_path / "config.yaml"
    config.write_text("secretpatch:\n  values:\n    gcp: {fetch: batched}\n")
    pod = tmp_path / "pod.json"
    pod.write_text(
        json.dumps(flyte_pod({"group": "a", "group_version": "1"}, {"group": "b", "group_version": "1"}))
    )
    argv = ["--config", str(config), "render", str(pod)]
    if where == "after the command":
        argv = ["render", "--config", str(config), str(pod)]
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0
    fetchers = [
        op for op in json.loads(out) if op["path"] in ("/spec/initContainers", "/spec/initContainers/-")
    ]
    assert len(fetchers) == 1, "one batched fetcher: the config was read"
