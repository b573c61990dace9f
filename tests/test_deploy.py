"""What `secretpatch manifests` prints and the Dockerfile, checked as a cluster would."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cryptography import x509
from secretpatch.cli.main import build_parser, main

from .conftest import ROOT, run_cli
from .kube import VERSIONS


def manifests(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    code, out, err = run_cli(capsys, "manifests", *argv)
    assert code == 0, err
    return list(yaml.safe_load_all(out))


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def test_every_object_validates_against_the_kubernetes_schema(capsys: pytest.CaptureFixture[str]) -> None:
    objects = manifests(capsys, "--image", "registry.example.com/secretpatch:0.1.0")
    assert [o["kind"] for o in objects] == [
        "ServiceAccount",
        "ConfigMap",
        "Secret",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
        "MutatingWebhookConfiguration",
    ]
    for obj in objects:
        for version in VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)


def test_the_pieces_fit_together(capsys: pytest.CaptureFixture[str]) -> None:
    objects = manifests(capsys, "--namespace", "ops", "--service", "hook", "--replicas", "3")
    (secret,) = by_kind(objects, "Secret")
    (deployment,) = by_kind(objects, "Deployment")
    (service,) = by_kind(objects, "Service")
    (config,) = by_kind(objects, "MutatingWebhookConfiguration")
    (pdb,) = by_kind(objects, "PodDisruptionBudget")
    assert all(o["metadata"].get("namespace") in ("ops", None) for o in objects)
    ca = base64.b64decode(secret["data"]["ca.crt"])
    assert base64.b64decode(config["webhooks"][0]["clientConfig"]["caBundle"]) == ca
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca))
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )
    assert sans == ["hook", "hook.ops", "hook.ops.svc"]
    assert config["webhooks"][0]["clientConfig"]["service"] == {
        "name": "hook",
        "namespace": "ops",
        "path": "/mutate--v1-pod",
        "port": 443,
    }
    assert service["metadata"]["name"] == "hook"
    assert service["spec"]["ports"] == [
        {"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}
    ]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert deployment["spec"]["replicas"] == 3
    assert container["ports"] == [{"name": "https", "containerPort": 10250, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "https", "scheme": "HTTPS"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert secret["metadata"]["name"] == "hook-tls"
    assert pod["volumes"][0] == {
        "name": "certs",
        "secret": {
            "secretName": "hook-tls",
            "items": [{"key": "tls.crt", "path": "tls.crt"}, {"key": "tls.key", "path": "tls.key"}],
        },
    }
    assert (
        service["spec"]["selector"]
        == deployment["spec"]["selector"]["matchLabels"]
        == pdb["spec"]["selector"]["matchLabels"]
    )
    args = build_parser().parse_args(container["args"])
    assert (args.command, args.config, args.cert_dir, args.port) == (
        "serve",
        "/etc/secretpatch/config/config.yaml",
        "/etc/webhook/certs",
        10250,
    )


def test_the_config_map_carries_the_operators_config(capsys: pytest.CaptureFixture[str]) -> None:
    text = (ROOT / "examples" / "config.yaml").read_text()
    objects = manifests(capsys, "--config", str(ROOT / "examples" / "config.yaml"))
    (config_map,) = by_kind(objects, "ConfigMap")
    assert config_map["data"] == {"config.yaml": text}


def test_a_broken_config_is_refused_before_it_reaches_the_cluster(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("webhook:\n  gcpSecretManger: {}\n")
    with pytest.raises(SystemExit) as caught:
        main(["manifests", "--config", str(bad)])
    assert caught.value.code == 2
    assert "did you mean 'gcpSecretManager'?" in capsys.readouterr().err


def test_cert_manager_issues_the_certificate_and_injects_the_ca(capsys: pytest.CaptureFixture[str]) -> None:
    objects = manifests(capsys, "--cert-manager")
    assert not by_kind(objects, "Secret")
    certificates = by_kind(objects, "Certificate")
    serving = next(c for c in certificates if not c["spec"].get("isCA"))
    assert serving["spec"]["secretName"] == "flyte-pod-webhook-tls"
    assert serving["spec"]["dnsNames"] == [
        "flyte-pod-webhook",
        "flyte-pod-webhook.flyte",
        "flyte-pod-webhook.flyte.svc",
    ]
    (config,) = by_kind(objects, "MutatingWebhookConfiguration")
    assert config["metadata"]["annotations"] == {"cert-manager.io/inject-ca-from": "flyte/flyte-pod-webhook"}
    assert "caBundle" not in config["webhooks"][0]["clientConfig"]
    for obj in objects:
        if obj["apiVersion"].startswith("cert-manager.io/"):
            continue
        for version in VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)


def test_the_dockerfile_passes_hadolint_and_runs_as_the_deployments_user(
    capsys: pytest.CaptureFixture[str],
) -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    text = (ROOT / "Dockerfile").read_text()
    user = re.search(r"^USER (\d+):(\d+)$", text, re.MULTILINE)
    assert user is not None and user.group(1) != "0"
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.MULTILINE):
        for path in source.split():
            assert (ROOT / path).exists(), path
    assert 'ENTRYPOINT ["secretpatch"]' in text
    (deployment,) = by_kind(manifests(capsys), "Deployment")
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(user.group(1))


def test_the_operators_rules_and_templates_travel_as_config_maps(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Mount the ConfigMaps as the kubelet would, under a fake root, and the webhook in the
    cluster renders exactly what the operator's folder renders locally."""
    from secretpatch import Engine

    assert run_cli(capsys, "init", str(tmp_path / "ops"))[0] == 0
    template = tmp_path / "ops" / "templates" / "gcp" / "volume.yaml.j2"
    template.write_text(template.read_text().replace("medium: Memory", "medium: Memory\n  sizeLimit: 8Mi"))
    objects = manifests(capsys, "--config", str(tmp_path / "ops" / "config.yaml"))
    for obj in objects:
        if not obj["apiVersion"].startswith("cert-manager.io/"):
            for version in VERSIONS:
                kubernetes_validate.validate(obj, version, strict=True)
    (deployment,) = by_kind(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    maps = {o["metadata"]["name"]: o["data"] for o in by_kind(objects, "ConfigMap")}
    root = tmp_path / "mounted"
    for mount in pod["containers"][0]["volumeMounts"]:
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        if "configMap" not in volume:
            continue
        data = maps[volume["configMap"]["name"]]
        items = volume["configMap"].get("items") or [{"key": k, "path": k} for k in data]
        for item in items:
            target = root / mount["mountPath"].lstrip("/") / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(data[item["key"]])
    config = yaml.safe_load((root / "etc/secretpatch/config/config.yaml").read_text())
    for kind in ("rules", "templates"):
        assert config["secretpatch"][kind] == f"/etc/secretpatch/{kind}"
        config["secretpatch"][kind] = str(root / "etc/secretpatch" / kind)
    example = yaml.safe_load((tmp_path / "ops" / "cases" / "example" / "input.yaml").read_text())
    in_cluster = Engine.from_config(config).mutate(example).pod
    local = Engine.from_config(tmp_path / "ops" / "config.yaml").mutate(example).pod
    assert in_cluster == local
    assert in_cluster["spec"]["volumes"][0]["emptyDir"] == {"medium": "Memory", "sizeLimit": "8Mi"}
    assert sorted(m["mountPath"] for m in pod["containers"][0]["volumeMounts"]) == [
        "/etc/secretpatch/config",
        "/etc/secretpatch/rules",
        "/etc/secretpatch/templates",
        "/etc/webhook/certs",
    ]


def test_a_disruption_budget_only_where_it_cannot_block_a_drain(capsys: pytest.CaptureFixture[str]) -> None:
    (pdb,) = by_kind(manifests(capsys), "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
    assert by_kind(manifests(capsys, "--replicas", "1"), "PodDisruptionBudget") == []


def test_certs_and_manifests_name_the_secret_alike_and_honour_the_config(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """secretName and listenPort from Flyte's section are honoured; without them, both
    commands name the Secret `<service>-tls`."""
    code, out, _ = run_cli(capsys, "certs", "--service", "secretpatch", "--secret")
    assert code == 0 and yaml.safe_load(out)["metadata"]["name"] == "secretpatch-tls"
    (secret,) = by_kind(manifests(capsys, "--service", "secretpatch"), "Secret")
    assert secret["metadata"]["name"] == "secretpatch-tls"
    config = tmp_path / "config.yaml"
    config.write_text("webhook:\n  secretManagerTypes: [GCP]\n  secretName: my-certs\n  listenPort: 8443\n")
    objects = manifests(capsys, "--config", str(config), "--service", "secretpatch")
    assert by_kind(objects, "Secret")[0]["metadata"]["name"] == "my-certs"
    (deployment,) = by_kind(objects, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == 8443
    assert deployment["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"] == "my-certs"
    code, out, _ = run_cli(capsys, "certs", "--config", str(config), "--secret")
    assert yaml.safe_load(out)["metadata"]["name"] == "my-certs"


def test_running_manifests_again_with_a_cert_dir_changes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, first, err = run_cli(capsys, "manifests", "--cert-dir", str(tmp_path / "certs"))
    assert code == 0 and "ca.key is the CA's private key" in err
    assert (tmp_path / "certs" / "ca.key").stat().st_mode & 0o777 == 0o600
    code, second, err = run_cli(capsys, "manifests", "--cert-dir", str(tmp_path / "certs"))
    assert code == 0 and "reusing the certificates" in err
    assert second == first
    code, _, err = run_cli(capsys, "manifests", "--cert-dir", str(tmp_path / "certs"), "--service", "other")
    assert code == 2 and "its certificate is for flyte-pod-webhook" in err


def test_the_image_runs_the_python_the_tests_run_on_with_the_locked_dependencies() -> None:
    """The Dockerfile's base is an exact Python release of this interpreter's minor version,
    and it installs the lock, which holds every runtime dependency at a version pyproject
    allows (scripts/lock_server.py writes it)."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    text = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM python:(\d+)\.(\d+)\.(\d+)-slim-\w+", text, re.MULTILINE)
    assert len(bases) == 2 and len(set(bases)) == 1, "both stages on one exact Python release"
    assert tuple(map(int, bases[0][:2])) == sys.version_info[:2]
    assert "-r requirements-server.lock" in text and "--no-deps ." in text
    locked = {}
    for line in (ROOT / "requirements-server.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            locked[canonicalize_name(name)] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for spec in project["dependencies"] + project["optional-dependencies"]["server"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} is not in requirements-server.lock; run scripts/lock_server.py"
        assert requirement.specifier.contains(locked[name]), f"{name}=={locked[name]} breaks {spec}"
