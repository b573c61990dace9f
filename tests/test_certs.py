"""Certificates and the webhook configuration, as an operator gets them."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cryptography import x509
from secretpatch.webhook import certs

from .conftest import ROOT, run_cli
from .kube import VERSIONS

TEST_CA = ROOT / "tests" / "data" / "ca.crt"


def stable(info: dict[str, Any]) -> str:
    return json.dumps({k: info[k] for k in ("subject", "issuer", "sans", "days")}, indent=2) + "\n"


def test_the_serving_certificate_names_the_service(snapshot: Any) -> None:
    snapshot.snapshot_dir = ROOT / "snapshots" / "certs"
    bundle = certs.generate("flyte-pod-webhook", "flyte")
    snapshot.assert_match(stable(certs.describe(bundle.cert)), "serving.json")
    snapshot.assert_match(stable(certs.describe(bundle.ca_cert)), "ca.json")
    dev = certs.generate("secretpatch", "default", dev=True, days=1)
    snapshot.assert_match(stable(certs.describe(dev.cert)), "serving-dev.json")


def test_the_serving_certificate_is_signed_by_the_ca_and_for_servers_only() -> None:
    bundle = certs.generate("svc", "ns", key_type="rsa")
    ca = x509.load_pem_x509_certificate(bundle.ca_cert)
    cert = x509.load_pem_x509_certificate(bundle.cert)
    cert.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert [u.dotted_string for u in usages] == ["1.3.6.1.5.5.7.3.1"]
    assert cert.public_key().key_size == 2048  # type: ignore[union-attr]


def test_certs_writes_files_with_private_keys_readable_by_owner_only(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run_cli(
        capsys, "certs", "--service", "hook", "--namespace", "ops", "--out-dir", str(tmp_path)
    )
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]
    for name in ("ca.key", "tls.key"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert "CN=hook.ops.svc; SANs hook, hook.ops, hook.ops.svc;" in err


def test_renewing_keeps_the_ca_so_the_ca_bundle_stays_valid(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run_cli(capsys, "certs", "--out-dir", str(tmp_path), "--days", "30")
    ca_before, cert_before = (tmp_path / "ca.crt").read_bytes(), (tmp_path / "tls.crt").read_bytes()
    code, _, _ = run_cli(capsys, "certs", "--out-dir", str(tmp_path), "--renew")
    assert code == 0
    assert (tmp_path / "ca.crt").read_bytes() == ca_before
    assert (tmp_path / "tls.crt").read_bytes() != cert_before
    renewed = x509.load_pem_x509_certificate((tmp_path / "tls.crt").read_bytes())
    renewed.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_before))


def test_renew_without_a_ca_says_what_is_missing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "certs", "--out-dir", str(tmp_path), "--renew")
    assert code == 2
    assert "--renew needs ca.crt and ca.key in" in err


def test_certs_as_a_secret_manifest(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "certs", "--secret", "--namespace", "flyte")
    assert code == 0
    secret = yaml.safe_load(out)
    assert secret["metadata"] == {
        "name": "flyte-pod-webhook-tls",  # <service>-tls, as manifests and the chart name it
        "namespace": "flyte",
        "labels": {"app.kubernetes.io/name": "secretpatch"},
    }
    assert secret["type"] == "kubernetes.io/tls"
    assert sorted(secret["data"]) == ["ca.crt", "tls.crt", "tls.key"]
    for version in VERSIONS:
        kubernetes_validate.validate(secret, version, strict=True)


def test_certs_needs_a_destination(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "certs")
    assert code == 2 and "--out-dir DIR, --secret NAME, or both" in err


def test_the_webhook_configuration_matches_flytes(capsys: pytest.CaptureFixture[str], snapshot: Any) -> None:
    code, out, _ = run_cli(capsys, "webhook-config", "--ca-file", str(TEST_CA))
    assert code == 0
    snapshot.snapshot_dir = ROOT / "snapshots" / "webhook-config"
    snapshot.assert_match(out, "default.yaml")
    config = yaml.safe_load(out)
    for version in VERSIONS:
        kubernetes_validate.validate(config, version, strict=True)


def test_the_webhook_configuration_takes_flags_and_flytes_config(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    flyte = tmp_path / "flyte.yaml"
    flyte.write_text(
        "webhook:\n  serviceName: my-hook\n  servicePort: 8443\n  namespaceSelector:\n    matchLabels: {flyte: enabled}\n"
    )
    code, out, _ = run_cli(
        capsys,
        "webhook-config",
        "--config",
        str(flyte),
        "--ca-file",
        str(TEST_CA),
        "--namespace",
        "ops",
        "--timeout-seconds",
        "3",
        "--reinvocation-policy",
        "IfNeeded",
    )
    assert code == 0
    config = yaml.safe_load(out)
    hook = config["webhooks"][0]
    assert config["metadata"]["name"] == "my-hook"
    assert hook["clientConfig"]["service"] == {
        "name": "my-hook",
        "namespace": "ops",
        "path": "/mutate--v1-pod",
        "port": 8443,
    }
    assert hook["namespaceSelector"] == {"matchLabels": {"flyte": "enabled"}}
    assert hook["timeoutSeconds"] == 3 and hook["reinvocationPolicy"] == "IfNeeded"
    for version in VERSIONS:
        kubernetes_validate.validate(config, version, strict=True)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--timeout-seconds", "31"], "timeoutSeconds must be between 1 and 30"),
        (["--namespace-selector", "{x"], "--namespace-selector is not JSON"),
        (["--namespace-selector", "[1]"], "must be a LabelSelector object"),
    ],
)
def test_webhook_config_mistakes_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run_cli(capsys, "webhook-config", "--ca-file", str(TEST_CA), *argv)
    assert code == 2 and message in err


def test_webhook_config_refuses_a_file_that_is_not_a_certificate(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "webhook-config", "--ca-file", str(ROOT / "examples" / "pod.yaml"))
    assert code == 2 and "is not a PEM certificate" in err
