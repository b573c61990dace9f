"""Kubernetes objects for running secretpatch, for `secretpatch manifests`: the same objects
the Helm chart (deploy/helm/secretpatch) renders with its defaults, for clusters without Helm.

tests/test_chart.py renders both with equivalent settings and compares them object by object
(labels Helm adds aside), so a change here or in the chart that makes them drift fails.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from .webhook_config import WebhookOptions, webhook_configuration

CONFIG_DIR = "/etc/secretpatch/config"
FOLDER_ROOT = "/etc/secretpatch"
CERT_DIR = "/etc/webhook/certs"
# GKE private clusters' control planes reach nodes only on 443 and 10250 by default.
CONTAINER_PORT = 10250
GRACE_SECONDS = 25
# Never sent to the webhook, with the webhook's own namespace, so its pods never wait on it.
EXCLUDED_NAMESPACES = ("kube-system", "kube-node-lease")
_FILE_PATH = re.compile(r"[-._a-zA-Z0-9/]+")


# Without a config file: Flyte's defaults written out, as the chart's values.yaml has them.
DEFAULT_CONFIG = """webhook:
  secretManagerTypes: [GCP]
  gcpSecretManager:
    sidecarImage: gcr.io/google.com/cloudsdktool/cloud-sdk:alpine
    resources:
      requests: {cpu: 200m, memory: 500Mi}
      limits: {cpu: 200m, memory: 500Mi}
"""


@dataclass(frozen=True)
class DeployOptions:
    webhook: WebhookOptions
    image: str
    secret_name: str
    replicas: int = 2
    cert_manager: bool = False
    config_text: str = DEFAULT_CONFIG
    port: int = CONTAINER_PORT
    # The operator's own rules and templates: kind ("rules"/"templates") -> relative path -> text.
    folders: dict[str, dict[str, str]] = field(default_factory=dict)


def file_key(path: str) -> str:
    """A template path as a ConfigMap key (a key cannot hold '/'), as the chart writes it."""
    if not _FILE_PATH.fullmatch(path):
        raise ValueError(f"{path!r} is not a template path (letters, digits, '.', '-', '_' and '/')")
    return path.replace("/", "__")


def _labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "secretpatch", "app.kubernetes.io/instance": name}


def _meta(name: str, namespace: str, instance: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": _labels(instance)}


def _probe(path: str, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "https", "scheme": "HTTPS"},
        "periodSeconds": 5,
        "failureThreshold": failures,
    }


def _pod_spec(options: DeployOptions) -> dict[str, Any]:
    name = options.webhook.service
    selector = _labels(name)
    mounts = [
        {"name": "certs", "mountPath": CERT_DIR, "readOnly": True},
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        *(
            {"name": kind, "mountPath": f"{FOLDER_ROOT}/{kind}", "readOnly": True}
            for kind in sorted(options.folders)
        ),
    ]
    volumes: list[dict[str, Any]] = [
        {
            "name": "certs",
            "secret": {
                "secretName": options.secret_name,
                "items": [{"key": "tls.crt", "path": "tls.crt"}, {"key": "tls.key", "path": "tls.key"}],
            },
        },
        {"name": "config", "configMap": {"name": f"{name}-config"}},
    ]
    if "rules" in options.folders:
        volumes.append({"name": "rules", "configMap": {"name": f"{name}-rules"}})
    if "templates" in options.folders:
        items = [{"key": file_key(path), "path": path} for path in sorted(options.folders["templates"])]
        volumes.append({"name": "templates", "configMap": {"name": f"{name}-templates", "items": items}})
    args = ["serve", "--config", f"{CONFIG_DIR}/config.yaml", "--cert-dir", CERT_DIR]
    args += ["--port", str(options.port), "--grace", str(GRACE_SECONDS)]
    return {
        "serviceAccountName": name,
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": GRACE_SECONDS + 10,
        "securityContext": {
            "fsGroup": 65532,
            "runAsGroup": 65532,
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": selector},
                        },
                    }
                ]
            }
        },
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": selector},
            }
        ],
        "containers": [
            {
                "name": "secretpatch",
                "image": options.image,
                "imagePullPolicy": "IfNotPresent",
                "args": args,
                "ports": [{"name": "https", "containerPort": options.port, "protocol": "TCP"}],
                # Keep answering while the endpoint is removed from the Service.
                "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
                "readinessProbe": _probe("/readyz", 3),
                "livenessProbe": _probe("/healthz", 6),
                # No CPU limit: throttling a webhook delays every pod the API server creates.
                "resources": {"limits": {"memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "256Mi"}},
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                    "readOnlyRootFilesystem": True,
                },
                "volumeMounts": mounts,
            }
        ],
        "volumes": volumes,
    }


def deployment(options: DeployOptions, config_hash: str) -> dict[str, Any]:
    name, namespace = options.webhook.service, options.webhook.namespace
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, namespace, name),
        "spec": {
            "replicas": options.replicas,
            "selector": {"matchLabels": _labels(name)},
            # A new pod is ready before an old one goes: never fewer replicas.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": _labels(name), "annotations": {"checksum/config": config_hash}},
                "spec": _pod_spec(options),
            },
        },
    }


def _cert_manager(options: DeployOptions) -> list[dict[str, Any]]:
    """A self-signed CA and the serving certificate, renewed by cert-manager into the Secret."""
    name, namespace = options.webhook.service, options.webhook.namespace

    def meta(object_name: str) -> dict[str, Any]:
        return _meta(object_name, namespace, name)

    return [
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Issuer",
            "metadata": meta(f"{name}-selfsigned"),
            "spec": {"selfSigned": {}},
        },
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": meta(f"{name}-ca"),
            "spec": {
                "isCA": True,
                "commonName": "secretpatch webhook CA",  # cert-manager refuses over 64 characters
                "secretName": f"{name}-ca",
                "duration": "87600h",
                "privateKey": {"algorithm": "ECDSA", "size": 256},
                "issuerRef": {"name": f"{name}-selfsigned", "kind": "Issuer"},
            },
        },
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Issuer",
            "metadata": meta(f"{name}-ca"),
            "spec": {"ca": {"secretName": f"{name}-ca"}},
        },
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": meta(name),
            "spec": {
                "secretName": options.secret_name,
                "dnsNames": [name, f"{name}.{namespace}", f"{name}.{namespace}.svc"],
                "duration": "8760h",
                "renewBefore": "720h",
                "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
                "usages": ["server auth", "digital signature"],
                "issuerRef": {"name": f"{name}-ca", "kind": "Issuer"},
            },
        },
    ]


def config_hash(options: DeployOptions) -> str:
    """Changes with the config, the rules and the templates: the pods roll when it does."""
    digest = hashlib.sha256(options.config_text.encode())
    for kind in sorted(options.folders):
        for path, text in sorted(options.folders[kind].items()):
            digest.update(f"{kind}/{path}\0{text}\0".encode())
    return digest.hexdigest()


def cluster_objects(
    options: DeployOptions, ca_pem: bytes | None, tls_secret: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Everything a cluster needs, in the order `kubectl apply -f -` should create it."""
    webhook = options.webhook
    name, namespace = webhook.service, webhook.namespace
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(name, namespace, name),
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(f"{name}-config", namespace, name),
            "data": {"config.yaml": options.config_text},
        },
    ]
    if options.cert_manager:
        objects += _cert_manager(options)
    elif tls_secret is not None:
        objects.append(tls_secret)
    for kind in sorted(options.folders):
        files = options.folders[kind]
        # Rule files sit in one folder; template paths need keys without '/' (file_key).
        keyed = dict(files) if kind == "rules" else {file_key(p): t for p, t in files.items()}
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": _meta(f"{name}-{kind}", namespace, name),
                "data": dict(sorted(keyed.items())),
            }
        )
    objects.append(deployment(options, config_hash(options)))
    if options.replicas >= 2:  # with one replica, a budget could only block node drains
        objects.append(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": _meta(name, namespace, name),
                "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _labels(name)}},
            }
        )
    objects.append(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(name, namespace, name),
            "spec": {
                "type": "ClusterIP",
                "selector": _labels(name),
                "ports": [{"name": "https", "port": webhook.port, "targetPort": "https", "protocol": "TCP"}],
            },
        }
    )
    configuration = webhook_configuration(ca_pem or b"", webhook)
    configuration["metadata"]["labels"] = _labels(name)
    if options.cert_manager:
        configuration["metadata"]["annotations"] = {"cert-manager.io/inject-ca-from": f"{namespace}/{name}"}
        del configuration["webhooks"][0]["clientConfig"]["caBundle"]
    objects.append(configuration)
    return objects


def excluding_system_namespaces(selector: dict[str, Any], namespace: str) -> dict[str, Any]:
    """A namespace selector that also leaves out kube-system, kube-node-lease and the
    webhook's own namespace (as the chart's does)."""
    excluded = list(dict.fromkeys([*EXCLUDED_NAMESPACES, namespace]))
    expressions = [
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": excluded},
        *selector.get("matchExpressions", []),
    ]
    return {**selector, "matchExpressions": expressions}
