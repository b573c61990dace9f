"""The Helm chart (deploy/helm/secretpatch), rendered by the real helm and checked object by
object: `helm lint --strict` over every values file in ci/, each rendered object against the
Kubernetes 1.31 and 1.37 schemas in strict mode, golden files for two values files, the schema
refusing what it should, and the certificates and config it renders doing their job.

helm and kubectl are installed into .venv/bin by the Makefile (scripts/install_kube_tools.py);
these tests skip, saying so, where they are not (a platform without the binaries). kubectl
checks nothing here: `kubectl apply --dry-run=client` (and `create`) start with the API
server's discovery, and no API server runs in these tests, so the objects are checked against
the Kubernetes schemas with kubernetes-validate instead. Helm's `lookup`, which the upgrade
test needs, is answered by a stand-in API server (tests/kube_api.py).
"""

from __future__ import annotations

import base64
import datetime
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from secretpatch import Engine

from .conftest import ROOT, flyte_pod
from .kube import validate_object
from .kube_api import serving

CHART = ROOT / "deploy" / "helm" / "secretpatch"
HELM = ROOT / ".venv" / "bin" / "helm"
VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
MONITORING = [
    "--api-versions",
    "monitoring.coreos.com/v1/ServiceMonitor",
    "--api-versions",
    "monitoring.coreos.com/v1/PrometheusRule",
]
# Kinds that come from CRDs, which the Kubernetes schemas do not describe.
CRD_KINDS = {"Issuer", "Certificate", "ServiceMonitor", "PrometheusRule"}

pytestmark = pytest.mark.skipif(
    not HELM.exists(), reason="helm is not in .venv/bin (make installs it on Linux x86_64 only)"
)


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, check=check, timeout=120)


def refusal(setting: list[str]) -> str:
    """What helm says when it refuses to render the chart with `setting`."""
    result = helm("template", "flyte", str(CHART), *setting, check=False)
    assert result.returncode != 0, "rendered although it should not"
    return result.stderr


def render(*values: str, namespace: str = "flyte", extra: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """`helm template` of the chart as release `flyte`, each object parsed."""
    flags = [f for v in values for f in ("-f", v)]
    out = helm("template", "flyte", str(CHART), "--namespace", namespace, *flags, *MONITORING, *extra).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = by_kind(objects, kind)
    return found


def test_there_is_a_values_file_for_each_case_the_chart_supports() -> None:
    names = {v.name.removesuffix("-values.yaml") for v in VALUES}
    assert {
        "defaults",
        "cert-manager",
        "existing-secret",
        "ha",
        "custom-rules",
        "gke-private",
        "gitops",
    } <= names


@pytest.mark.parametrize("values", VALUES, ids=lambda v: v.name)
def test_helm_lint_strict_passes(values: Path) -> None:
    result = helm("lint", "--strict", str(CHART), "-f", str(values), check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("version", ["1.31", "1.37"])
@pytest.mark.parametrize("values", VALUES, ids=lambda v: v.name)
def test_every_rendered_object_is_valid_kubernetes(values: Path, version: str) -> None:
    objects = render(str(values))
    assert objects
    for obj in objects:
        if obj["kind"] in CRD_KINDS:
            assert obj["apiVersion"] in ("cert-manager.io/v1", "monitoring.coreos.com/v1")
            continue
        validate_object(obj, version)


@pytest.mark.parametrize(
    ("values", "name"),
    [("cert-manager-values.yaml", "cert-manager"), ("existing-secret-values.yaml", "existing-secret")],
)
def test_the_rendered_chart_matches_its_golden_file(values: str, name: str, snapshot: Any) -> None:
    """Two values files whose output has nothing random (no generated certificate)."""
    snapshot.snapshot_dir = ROOT / "snapshots" / "chart"
    out = helm(
        "template", "flyte", str(CHART), "--namespace", "flyte", "-f", str(CHART / "ci" / values), *MONITORING
    )
    snapshot.assert_match(out.stdout, f"{name}.yaml")


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (
            ["--set", "webhook.failurePolicy=Ignor"],
            "at '/webhook/failurePolicy': value must be one of 'Fail', 'Ignore'",
        ),
        (["--set", "replicas=3"], "additional properties 'replicas' not allowed"),
        (["--set", "webhook.timeoutSeconds=60"], "at '/webhook/timeoutSeconds': maximum: got 60, want 30"),
        (["--set", "certificates.mode=manual"], "at '/certificates/mode': value must be one of"),
        (
            ["--set", "config.secretpatch.flyte=v3"],
            "at '/config/secretpatch/flyte': value must be one of 'v2', 'v1'",
        ),
        (["--set", "image.digest=latest"], "at '/image/digest'"),
        (["--set", "resources.requests.cpu=lots"], "at '/resources/requests/cpu'"),
        # Settings that cannot work together: the chart says what to do.
        (
            ["--set", "certificates.mode=existingSecret", "--set", "certificates.secretName=x"],
            "certificates.existingSecret.caBundle: give the PEM of the CA",
        ),
        (
            ["--set", "rules.gcp\\.yaml=x", "--set", "existingRulesConfigMap=mine"],
            "give rules or existingRulesConfigMap",
        ),
        (
            [
                "--set",
                "autoscaling.enabled=true",
                "--set",
                "autoscaling.minReplicas=5",
                "--set",
                "autoscaling.maxReplicas=2",
            ],
            "minReplicas is more than",
        ),
        # Found by an independent review: each rendered (or started), then failed in the cluster.
        (["--set-string", "fullnameOverride=my_hook"], "at '/fullnameOverride'"),
        (["--set-string", "webhook.name=Hook"], "at '/webhook/name'"),
        (["--set", "config.secretpatch.limits.maxSecret=5"], "additional properties 'maxSecret' not allowed"),
        (["--set", "config.secretpatch.limits.maxSecrets=0"], "at '/config/secretpatch/limits/maxSecrets'"),
        (["--set", "certificates.certManager.issuerRef.kind=ClusterIssuer"], "missing property 'name'"),
        (["--set", "templates.gcp__x\\.j2=x"], "invalid propertyName 'gcp__x.j2'"),
        (["--set", "templates.\\.\\./escape\\.j2=x"], "invalid propertyName '../escape.j2'"),
        (
            [
                "--set",
                "existingTemplatesConfigMaps[0].name=t",
                "--set",
                "existingTemplatesConfigMaps[0].folder=..",
            ],
            "folder",
        ),
    ],
)
def test_values_that_cannot_work_are_refused_saying_what_is_wrong(setting: list[str], message: str) -> None:
    assert message in refusal(setting)


def test_a_disruption_budget_only_where_it_cannot_block_a_drain() -> None:
    assert one(render(), "PodDisruptionBudget")["spec"] == {
        "maxUnavailable": 1,
        "selector": {
            "matchLabels": {"app.kubernetes.io/name": "secretpatch", "app.kubernetes.io/instance": "flyte"}
        },
    }
    assert by_kind(render(extra=("--set", "replicaCount=1")), "PodDisruptionBudget") == []
    autoscaled = ("--set", "autoscaling.enabled=true", "--set", "autoscaling.minReplicas=1")
    assert by_kind(render(extra=autoscaled), "PodDisruptionBudget") == []


def test_the_defaults_follow_the_restricted_profile_and_reach_the_https_port() -> None:
    objects = render()
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert "cpu" not in container["resources"]["limits"], "no CPU limit: throttling delays every pod"
    assert container["ports"] == [{"name": "https", "containerPort": 10250, "protocol": "TCP"}]
    assert container["args"][container["args"].index("--port") + 1] == "10250"
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "https", "scheme": "HTTPS"}
    assert one(objects, "Service")["spec"]["ports"] == [
        {"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}
    ]
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
    assert "podAntiAffinity" in pod["affinity"]


def test_the_webhook_configuration_selects_flytes_pods_outside_system_namespaces() -> None:
    (hook,) = one(render(), "MutatingWebhookConfiguration")["webhooks"]
    assert hook["objectSelector"] == {"matchLabels": {"inject-flyte-secrets": "true"}}
    assert hook["namespaceSelector"]["matchExpressions"] == [
        {
            "key": "kubernetes.io/metadata.name",
            "operator": "NotIn",
            "values": ["kube-system", "kube-node-lease", "flyte"],
        }
    ]
    assert (hook["failurePolicy"], hook["sideEffects"], hook["timeoutSeconds"]) == ("Fail", "None", 5)
    assert hook["clientConfig"]["service"] == {
        "name": "flyte-secretpatch",
        "namespace": "flyte",
        "path": "/mutate--v1-pod",
        "port": 443,
    }
    conditions = one(render(str(CHART / "ci" / "gke-private-values.yaml")), "MutatingWebhookConfiguration")
    assert conditions["webhooks"][0]["matchConditions"][0]["name"] == "not-a-dry-run-of-the-system"


def test_self_signed_certificates_are_signed_by_the_ca_the_api_server_is_given() -> None:
    from cryptography import x509

    objects = render()
    secret = one(objects, "Secret")
    (hook,) = one(objects, "MutatingWebhookConfiguration")["webhooks"]
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    assert base64.b64decode(hook["clientConfig"]["caBundle"]) == data["ca.crt"]
    ca = x509.load_pem_x509_certificate(data["ca.crt"])
    cert = x509.load_pem_x509_certificate(data["tls.crt"])
    cert.verify_directly_issued_by(ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )
    assert sorted(sans) == ["flyte-secretpatch", "flyte-secretpatch.flyte", "flyte-secretpatch.flyte.svc"]
    lifetime = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(days=3640) < lifetime <= datetime.timedelta(days=3650)
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    volume = one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"][0]
    assert [item["key"] for item in volume["secret"]["items"]] == ["tls.crt", "tls.key"], (
        "the CA key stays out"
    )


def test_cert_manager_mode_injects_the_ca_and_existing_secret_mode_uses_the_given_one() -> None:
    objects = render(str(CHART / "ci" / "cert-manager-values.yaml"))
    configuration = one(objects, "MutatingWebhookConfiguration")
    assert configuration["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": "flyte/flyte-secretpatch"
    }
    assert "caBundle" not in configuration["webhooks"][0]["clientConfig"]
    assert by_kind(objects, "Secret") == []
    serving = [c for c in by_kind(objects, "Certificate") if not c["spec"].get("isCA")]
    assert serving[0]["spec"]["secretName"] == "flyte-secretpatch-tls"
    objects = render(str(CHART / "ci" / "existing-secret-values.yaml"))
    given = yaml.safe_load((CHART / "ci" / "existing-secret-values.yaml").read_text())
    ca = base64.b64decode(
        one(objects, "MutatingWebhookConfiguration")["webhooks"][0]["clientConfig"]["caBundle"]
    )
    assert ca.decode() == given["certificates"]["existingSecret"]["caBundle"]
    assert by_kind(objects, "Secret") == []
    volume = one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"][0]
    assert volume["secret"]["secretName"] == "my-webhook-certs"


def test_monitoring_objects_need_their_crds() -> None:
    values = str(CHART / "ci" / "ha-values.yaml")
    with_crds = {o["kind"] for o in render(values)}
    assert {"ServiceMonitor", "PrometheusRule", "NetworkPolicy", "HorizontalPodAutoscaler"} <= with_crds
    out = helm("template", "flyte", str(CHART), "--namespace", "flyte", "-f", values).stdout
    assert "kind: ServiceMonitor" not in out and "kind: PrometheusRule" not in out


def files_of(
    objects: list[dict[str, Any]], name: str, deployment: dict[str, Any], volume: str
) -> dict[str, str]:
    """The files a ConfigMap volume of the Deployment puts in its folder: path -> text."""
    data = next(o for o in by_kind(objects, "ConfigMap") if o["metadata"]["name"] == name)["data"]
    (spec,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == volume]
    items = spec["configMap"].get("items")
    return {item["path"]: data[item["key"]] for item in items} if items else dict(data)


@pytest.mark.parametrize("values", VALUES, ids=lambda v: v.name)
def test_the_config_the_pods_get_loads_and_injects_the_example_pod(values: Path, tmp_path: Path) -> None:
    """The ConfigMaps written out as the pods see them (/etc/secretpatch/...), under tmp_path."""
    objects = render(str(values))
    deployment = one(objects, "Deployment")
    config_map = next(o for o in by_kind(objects, "ConfigMap") if o["metadata"]["name"].endswith("-config"))
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    own = config.get("secretpatch", {})
    for kind in ("rules", "templates"):
        if kind not in own:
            continue
        assert own[kind] == f"/etc/secretpatch/{kind}"
        folder = tmp_path / kind
        for path, text in files_of(objects, f"flyte-secretpatch-{kind}", deployment, kind).items():
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / path).write_text(text)
        own[kind] = str(folder)
    engine = Engine.from_config(config)
    mutation = engine.mutate(flyte_pod({"group": "a", "group_version": "1"}))
    names = [c["name"] for c in mutation.pod["spec"]["initContainers"]]
    assert names == (["fetch-secret-0"] if "custom-rules" in values.name else ["gcp-pull-secret-0"])
    assert engine.mutate(mutation.pod).patch == [], "a second review (IfNeeded) adds nothing"
    if "custom-rules" in values.name:
        assert engine.config.profile == "v1" and engine.config.on_refusal == "admit"
        assert mutation.pod["spec"]["initContainers"][0]["securityContext"]["runAsUser"] == 65532


def test_the_pods_roll_when_the_config_changes_and_only_then() -> None:
    def checksum(*extra: str) -> str:
        pod = one(render(extra=extra), "Deployment")["spec"]["template"]
        return str(pod["metadata"]["annotations"]["checksum/config"])

    assert checksum() == checksum()
    assert checksum() != checksum("--set", "config.secretpatch.onRefusal=admit")
    assert checksum() != checksum("--set", "templates.gcp/volume\\.yaml\\.j2=x")


def render_against(kubeconfig: Path, *extra: str) -> list[dict[str, Any]]:
    """`helm template --dry-run=server`: rendered against an API server, so `lookup` answers."""
    out = subprocess.run(
        [
            str(HELM),
            "template",
            "flyte",
            str(CHART),
            "--namespace",
            "flyte",
            "--dry-run=server",
            "--disable-openapi-validation",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={"KUBECONFIG": str(kubeconfig), "HOME": str(kubeconfig.parent), "PATH": "/usr/bin:/bin"},
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def test_an_upgrade_reuses_the_certificates_in_the_cluster_and_never_rotates_the_ca(tmp_path: Path) -> None:
    """The chart looks up its Secret: found whole, it is kept as it is, and the webhook
    configuration gets its CA; so `helm upgrade` (any number of times) changes no certificate.
    (The API server here is a stand-in, tests/kube_api.py: discovery and GET by name.)"""
    with serving(tmp_path) as (api, kubeconfig):
        first = render_against(kubeconfig)
        secret = one(first, "Secret")
        assert "/api/v1/namespaces/flyte/secrets/flyte-secretpatch-tls" in api.paths, "the chart looked it up"
        # As an install leaves it: Helm marks what it owns.
        owner = {"meta.helm.sh/release-name": "flyte", "meta.helm.sh/release-namespace": "flyte"}
        secret["metadata"]["annotations"].update(owner)
        api.put(secret)
        for _ in range(2):
            again = render_against(kubeconfig, "--set", "config.secretpatch.onRefusal=admit")
            assert one(again, "Secret")["data"] == secret["data"]
            bundle = one(again, "MutatingWebhookConfiguration")["webhooks"][0]["clientConfig"]["caBundle"]
            assert bundle == secret["data"]["ca.crt"]
        # A Secret missing a file is not half reused: a whole new pair is made.
        api.put({**secret, "data": {k: v for k, v in secret["data"].items() if k != "tls.key"}})
        fresh = one(render_against(kubeconfig), "Secret")["data"]
        assert fresh["ca.crt"] != secret["data"]["ca.crt"] and "tls.key" in fresh


HELM_LABELS = ("app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart")


def comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """An object without what only Helm adds (its labels, its keep annotation) and without
    what differs on every run (certificates, the config checksum); config files parsed."""
    obj = yaml.safe_load(yaml.safe_dump(obj))
    for meta in (obj["metadata"], obj.get("spec", {}).get("template", {}).get("metadata", {})):
        for label in HELM_LABELS:
            meta.get("labels", {}).pop(label, None)
        annotations = meta.get("annotations", {})
        annotations.pop("helm.sh/resource-policy", None)
        if "checksum/config" in annotations:
            annotations["checksum/config"] = "<checksum>"
        if meta.get("annotations") == {}:
            del meta["annotations"]
    if obj["kind"] == "Secret":
        obj["data"] = sorted(obj["data"])
    if obj["kind"] == "MutatingWebhookConfiguration":
        for hook in obj["webhooks"]:
            hook["clientConfig"].pop("caBundle", None)
    if obj["kind"] == "ConfigMap" and "config.yaml" in obj["data"]:
        parsed = yaml.safe_load(obj["data"]["config.yaml"])
        obj["data"]["config.yaml"] = parsed
    return obj


def manifests_of(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    from .conftest import run_cli

    code, out, err = run_cli(capsys, "manifests", "--service", "secretpatch", "--namespace", "flyte", *argv)
    assert code == 0, err
    return list(yaml.safe_load_all(out))


@pytest.mark.parametrize("cert_manager", [False, True], ids=["self-signed", "cert-manager"])
def test_the_chart_and_manifests_render_the_same_objects(
    capsys: pytest.CaptureFixture[str], cert_manager: bool
) -> None:
    """`helm template secretpatch` with the image manifests uses, and `secretpatch manifests
    --service secretpatch`: the same objects, field for field."""
    from secretpatch import __version__

    chart_flags = ("--set", "image.repository=secretpatch", "--set", f"image.tag={__version__}")
    if cert_manager:
        chart_flags += (
            "--set",
            "certificates.mode=certManager",
            "--set",
            "certificates.certManager.duration=8760h",
        )
    out = helm("template", "secretpatch", str(CHART), "--namespace", "flyte", *chart_flags).stdout
    chart = {(o["kind"], o["metadata"]["name"]): comparable(o) for o in yaml.safe_load_all(out) if o}
    printed = manifests_of(capsys, *(["--cert-manager"] if cert_manager else []))
    ours = {(o["kind"], o["metadata"]["name"]): comparable(o) for o in printed}
    assert sorted(ours) == sorted(chart)
    for key, obj in ours.items():
        assert obj == chart[key], key


def test_the_chart_and_manifests_carry_an_operators_rules_and_templates_alike(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from secretpatch import __version__

    rules, templates = tmp_path / "rules", tmp_path / "templates" / "gcp"
    rules.mkdir()
    templates.mkdir(parents=True)
    rule = (ROOT / "rules" / "gcp.yaml").read_text().replace("gcp-pull-secret-", "fetch-secret-")
    (rules / "gcp.yaml").write_text(rule)
    volume = "name: gcp-secret-vol\nemptyDir: {medium: Memory, sizeLimit: 8Mi}\n"
    (templates / "volume.yaml.j2").write_text(volume)
    config = tmp_path / "config.yaml"
    config.write_text(
        "webhook:\n  secretManagerTypes: [GCP]\n  gcpSecretManager:\n"
        "    sidecarImage: gcr.io/google.com/cloudsdktool/cloud-sdk:alpine\n"
        "    resources:\n      requests: {cpu: 200m, memory: 500Mi}\n      limits: {cpu: 200m, memory: 500Mi}\n"
        "secretpatch:\n  flyte: v1\n  rules: rules\n  templates: templates\n"
    )
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "image": {"repository": "secretpatch", "tag": __version__},
                "config": {"secretpatch": {"flyte": "v1"}},
                "rules": {"gcp.yaml": rule},
                "templates": {"gcp/volume.yaml.j2": volume},
            }
        )
    )
    out = helm("template", "secretpatch", str(CHART), "--namespace", "flyte", "-f", str(values)).stdout
    chart = {(o["kind"], o["metadata"]["name"]): comparable(o) for o in yaml.safe_load_all(out) if o}
    ours = {
        (o["kind"], o["metadata"]["name"]): comparable(o)
        for o in manifests_of(capsys, "--config", str(config))
    }
    assert sorted(ours) == sorted(chart)
    for key, obj in ours.items():
        assert obj == chart[key], key


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("securityContext.capabilities=null", "missing property 'capabilities'"),
        ("securityContext.allowPrivilegeEscalation=null", "missing property 'allowPrivilegeEscalation'"),
        ("securityContext.allowPrivilegeEscalation=true", "at '/securityContext/allowPrivilegeEscalation'"),
        ("securityContext.privileged=true", "at '/securityContext/privileged'"),
        ("securityContext.capabilities.add={NET_ADMIN}", "at '/securityContext/capabilities/add/0'"),
        ("securityContext.capabilities.drop={NET_RAW}", "at '/securityContext/capabilities/drop'"),
        ("podSecurityContext=null", "missing property 'podSecurityContext'"),
        ("podSecurityContext.seccompProfile=null", "missing property 'seccompProfile'"),
        ("podSecurityContext.runAsNonRoot=false", "at '/podSecurityContext/runAsNonRoot'"),
        ("podSecurityContext.runAsUser=0", "at '/podSecurityContext/runAsUser'"),
    ],
)
def test_security_contexts_cannot_leave_the_restricted_profile(setting: str, message: str) -> None:
    """Found by the review: each rendered a pod that the restricted profile refuses."""
    assert message in refusal(["--set", setting])


def test_the_limits_the_schema_knows_are_the_engines() -> None:
    import json

    from secretpatch.core.limits import LIMIT_KEYS

    schema = json.loads((CHART / "values.schema.json").read_text())
    limits = schema["properties"]["config"]["properties"]["secretpatch"]["properties"]["limits"]
    assert sorted(limits["properties"]) == sorted(LIMIT_KEYS)


def test_long_names_keep_certificates_cert_manager_accepts_and_volumes_kubernetes_accepts() -> None:
    long_name = "flyte-production-secretpatch-webhook-eu-west1-and-more-x"
    objects = render(
        extra=(
            "--set",
            f"fullnameOverride={long_name}",
            "--set",
            "certificates.mode=certManager",
            "--set",
            "existingTemplatesConfigMaps[0].name=a",
            "--set",
            "existingTemplatesConfigMaps[0].folder=Vault_Templates",
        )
    )
    for certificate in by_kind(objects, "Certificate"):
        assert len(certificate["spec"].get("commonName", "")) <= 64
    for version in ("1.31", "1.37"):
        validate_object(one(objects, "Deployment"), version)
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    assert pod["terminationGracePeriodSeconds"] == 35


def test_the_release_namespace_may_be_let_in_for_single_namespace_setups() -> None:
    (hook,) = one(
        render(extra=("--set", "webhook.excludeReleaseNamespace=false")), "MutatingWebhookConfiguration"
    )["webhooks"]
    assert hook["namespaceSelector"]["matchExpressions"][0]["values"] == ["kube-system", "kube-node-lease"]


def test_the_service_monitor_verifies_with_the_given_ca_in_existing_secret_mode() -> None:
    objects = render(
        str(CHART / "ci" / "existing-secret-values.yaml"), extra=("--set", "serviceMonitor.enabled=true")
    )
    monitor = one(objects, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["tlsConfig"]["ca"] == {
        "configMap": {"name": "flyte-secretpatch-ca", "key": "ca.crt"}
    }
    ca_map = next(o for o in by_kind(objects, "ConfigMap") if o["metadata"]["name"] == "flyte-secretpatch-ca")
    assert ca_map["data"]["ca.crt"].startswith("-----BEGIN CERTIFICATE-----")


def test_configmaps_an_operator_manages_roll_the_pods_at_the_next_upgrade(tmp_path: Path) -> None:
    """Their content, read from the cluster when Helm renders, is part of a checksum."""

    def checksum(api: Any, kubeconfig: Path, rules: str) -> str:
        api.put(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "my-rules", "namespace": "flyte"},
                "data": {"gcp.yaml": rules},
            }
        )
        deployment = one(render_against(kubeconfig, "--set", "existingRulesConfigMap=my-rules"), "Deployment")
        return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/managed-config"])

    with serving(tmp_path) as (api, kubeconfig):
        first = checksum(api, kubeconfig, "name: gcp\n")
        assert checksum(api, kubeconfig, "name: gcp\n") == first
        assert checksum(api, kubeconfig, "name: gcp\nmanager: GCP\n") != first


def test_with_the_job_generator_every_render_is_the_same_and_the_job_may_touch_only_its_objects() -> None:
    """For tools that render with `helm template` (Argo CD): nothing random in the objects."""
    values = str(CHART / "ci" / "gitops-values.yaml")
    first = helm("template", "flyte", str(CHART), "--namespace", "flyte", "-f", values).stdout
    assert first == helm("template", "flyte", str(CHART), "--namespace", "flyte", "-f", values).stdout
    objects = [o for o in yaml.safe_load_all(first) if o]
    assert by_kind(objects, "Secret") == []
    (hook,) = one(objects, "MutatingWebhookConfiguration")["webhooks"]
    assert "caBundle" not in hook["clientConfig"]
    job = one(objects, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == [
        "cluster-certs",
        "--secret",
        "flyte-secretpatch-tls",
        "--webhook",
        "flyte-secretpatch",
        "--service",
        "flyte-secretpatch",
        "--namespace",
        "flyte",
        "--days",
        "3650",
    ]
    role = one(objects, "Role")["rules"]
    assert role[0] == {
        "apiGroups": [""],
        "resources": ["secrets"],
        "resourceNames": ["flyte-secretpatch-tls"],
        "verbs": ["get", "update"],
    }
    assert one(objects, "ClusterRole")["rules"] == [
        {
            "apiGroups": ["admissionregistration.k8s.io"],
            "resources": ["mutatingwebhookconfigurations"],
            "resourceNames": ["flyte-secretpatch"],
            "verbs": ["get", "patch"],
        }
    ]
    deployment_labels = one(objects, "Deployment")["spec"]["selector"]["matchLabels"]
    job_labels = job["spec"]["template"]["metadata"]["labels"]
    assert not deployment_labels.items() <= job_labels.items(), "the Job's pod is not one of the webhook's"


def test_cluster_certs_makes_the_secret_once_keeps_it_and_writes_the_ca(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the chart's Job runs, against a stand-in API server that keeps what it is sent."""
    from cryptography import x509

    from .conftest import run_cli

    with serving(tmp_path) as (api, _):
        objects = render(str(CHART / "ci" / "gitops-values.yaml"))
        api.put(one(objects, "MutatingWebhookConfiguration"))
        # Exactly what the chart's Job runs, pointed at the stand-in.
        job = one(objects, "Job")["spec"]["template"]["spec"]["containers"][0]["args"]
        argv = [*job, "--api-server", api.url]
        code, _, err = run_cli(capsys, *argv)
        assert code == 0, err
        assert "created (it does not exist); caBundle written to 1 webhook(s)" in err
        secret = api.objects["/api/v1/namespaces/flyte/secrets/flyte-secretpatch-tls"]
        webhooks = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/flyte-secretpatch"
        assert api.objects[webhooks]["webhooks"][0]["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
        cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
        cert.verify_directly_issued_by(
            x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["ca.crt"]))
        )
        # Again (the next upgrade): nothing is written.
        writes = len(api.writes)
        code, _, err = run_cli(capsys, *argv)
        assert code == 0 and "kept; caBundle written to 0 webhook(s)" in err
        assert len(api.writes) == writes
        # A certificate for another Service is replaced, and the new CA written.
        other = list(argv)
        other[argv.index("--service") + 1] = "other"
        code, _, err = run_cli(capsys, *other)
        assert code == 0 and "replaced (its certificate is not for other" in err
        assert api.objects[webhooks]["webhooks"][0]["clientConfig"]["caBundle"] != secret["data"]["ca.crt"]
        # Without the webhook configuration: a clear refusal.
        del api.objects[webhooks]
        code, _, err = run_cli(capsys, *argv)
        assert (
            code == 1
            and "no MutatingWebhookConfiguration 'flyte-secretpatch'; install the chart first" in err
        )


def test_cluster_certs_renews_a_certificate_within_30_days_of_expiry() -> None:
    import datetime

    from secretpatch.webhook import certs, clustercerts

    class Recorder:
        def __init__(self, objects: dict[str, Any]) -> None:
            self.objects, self.calls = objects, []

        def call(self, method: str, path: str, body: Any = None, content_type: str = "") -> Any:
            self.calls.append(method)
            if method == "GET":
                return self.objects.get(path)
            if method == "PATCH":
                import jsonpatch

                body = jsonpatch.apply_patch(self.objects[path], body)
            self.objects[path] = body
            return body

    pair = certs.generate("svc", "ns", days=40)
    secret = certs.secret_manifest(pair, "svc-tls", "ns")
    secret["metadata"]["resourceVersion"] = "7"
    hooks = {"webhooks": [{"clientConfig": {}}]}
    api = Recorder({"/api/v1/namespaces/ns/secrets/svc-tls": secret, f"{clustercerts.WEBHOOKS}/svc": hooks})
    now = datetime.datetime.now(datetime.UTC)
    kept = clustercerts.ensure(
        api, namespace="ns", secret_name="svc-tls", webhook_name="svc", service="svc", days=365, now=now
    )  # type: ignore[arg-type]
    assert kept.secret == "kept"
    later = clustercerts.ensure(
        api,
        namespace="ns",
        secret_name="svc-tls",
        webhook_name="svc",
        service="svc",
        days=365,
        now=now + datetime.timedelta(days=15),
    )  # type: ignore[arg-type]
    assert later.secret.startswith("replaced (its certificate expires at")
    assert api.objects["/api/v1/namespaces/ns/secrets/svc-tls"]["metadata"]["resourceVersion"] == "7"
