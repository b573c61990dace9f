"""Kubernetes objects for running secretpatch: the Deployment, its Service, ConfigMaps and
certificates, and the MutatingWebhookConfiguration (webhook_config.py), for
`secretpatch manifests`."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from .webhook_config import WebhookOptions, webhook_configuration


@dataclass(frozen=True)
class DeployOptions:
    webhook: WebhookOptions
    image: str
    replicas: int = 2
    cert_manager: bool = False
    config_text: str = "webhook:\n  secretManagerTypes: [GCP]\n"
    port: int = 9443
    # The operator's own rules and templates: kind ("rules"/"templates") -> relative path -> text.
    folders: dict[str, dict[str, str]] = field(default_factory=dict)


CONFIG_DIR = "/etc/secretpatch/config"
FOLDER_ROOT = "/etc/secretpatch"


def folder_key(index: int, path: str) -> str:
    """A ConfigMap key for a file (keys cannot hold '/'); the volume maps it back to `path`."""
    return f"f{index:03d}.{re.sub(r'[^-._a-zA-Z0-9]', '_', path)}"


def _labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "secretpatch", "app.kubernetes.io/instance": name}


def _meta(name: str, namespace: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": _labels(name)}


def deployment(options: DeployOptions, config_hash: str) -> dict[str, Any]:
    name, namespace = options.webhook.service, options.webhook.namespace

    def probe(path: str, failures: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": "https", "scheme": "HTTPS"},
            "periodSeconds": 5,
            "failureThreshold": failures,
        }

    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, namespace),
        "spec": {
            "replicas": options.replicas,
            "selector": {"matchLabels": _labels(name)},
            "template": {
                "metadata": {
                    "labels": _labels(name),
                    "annotations": {"secretpatch.io/config-hash": config_hash},
                },
                "spec": {
                    "serviceAccountName": name,
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65532,
                        "runAsGroup": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "affinity": {
                        "podAntiAffinity": {
                            "preferredDuringSchedulingIgnoredDuringExecution": [
                                {
                                    "weight": 100,
                                    "podAffinityTerm": {
                                        "topologyKey": "kubernetes.io/hostname",
                                        "labelSelector": {"matchLabels": _labels(name)},
                                    },
                                }
                            ]
                        }
                    },
                    "containers": [
                        {
                            "name": "secretpatch",
                            "image": options.image,
                            "args": [
                                "serve",
                                "--config",
                                f"{CONFIG_DIR}/config.yaml",
                                "--cert-dir",
                                "/etc/webhook/certs",
                                "--port",
                                str(options.port),
                            ],
                            "ports": [{"name": "https", "containerPort": options.port, "protocol": "TCP"}],
                            "readinessProbe": probe("/readyz", 3),
                            "livenessProbe": probe("/healthz", 6),
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"memory": "256Mi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [
                                {"name": "certs", "mountPath": "/etc/webhook/certs", "readOnly": True},
                                {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                                *(
                                    {"name": kind, "mountPath": f"{FOLDER_ROOT}/{kind}", "readOnly": True}
                                    for kind in sorted(options.folders)
                                ),
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "certs", "secret": {"secretName": name}},
                        {"name": "config", "configMap": {"name": f"{name}-config"}},
                        *(
                            {
                                "name": kind,
                                "configMap": {
                                    "name": f"{name}-{kind}",
                                    "items": [
                                        {"key": folder_key(i, path), "path": path}
                                        for i, path in enumerate(sorted(options.folders[kind]))
                                    ],
                                },
                            }
                            for kind in sorted(options.folders)
                        ),
                    ],
                },
            },
        },
    }


def _cert_manager(options: WebhookOptions) -> list[dict[str, Any]]:
    """A self-signed CA and the serving certificate, renewed by cert-manager into the Secret."""
    name, namespace = options.service, options.namespace
    return [
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Issuer",
            "metadata": _meta(f"{name}-selfsigned", namespace),
            "spec": {"selfSigned": {}},
        },
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": _meta(f"{name}-ca", namespace),
            "spec": {
                "isCA": True,
                "commonName": "secretpatch webhook CA",
                "subject": {"organizations": ["flyte.org"]},
                "secretName": f"{name}-ca",
                "duration": "87600h",
                "privateKey": {"algorithm": "ECDSA", "size": 256},
                "issuerRef": {"name": f"{name}-selfsigned", "kind": "Issuer"},
            },
        },
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Issuer",
            "metadata": _meta(f"{name}-ca", namespace),
            "spec": {"ca": {"secretName": f"{name}-ca"}},
        },
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": _meta(name, namespace),
            "spec": {
                "secretName": name,
                "commonName": f"{name}.{namespace}.svc",
                "dnsNames": [name, f"{name}.{namespace}", f"{name}.{namespace}.svc"],
                "duration": "8760h",
                "renewBefore": "720h",
                "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
                "usages": ["server auth", "digital signature", "key encipherment"],
                "issuerRef": {"name": f"{name}-ca", "kind": "Issuer"},
            },
        },
    ]


def cluster_objects(
    options: DeployOptions, ca_pem: bytes | None, tls_secret: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Everything a cluster needs, in the order `kubectl apply -f -` should create it."""
    webhook = options.webhook
    name, namespace = webhook.service, webhook.namespace
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name, namespace)},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(f"{name}-config", namespace),
            "data": {"config.yaml": options.config_text},
        },
    ]
    if options.cert_manager:
        objects += _cert_manager(webhook)
    elif tls_secret is not None:
        objects.append(tls_secret)
    for kind in sorted(options.folders):
        files = options.folders[kind]
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": _meta(f"{name}-{kind}", namespace),
                "data": {folder_key(i, path): files[path] for i, path in enumerate(sorted(files))},
            }
        )
    digest = hashlib.sha256(options.config_text.encode())
    for kind in sorted(options.folders):
        for path, text in sorted(options.folders[kind].items()):
            digest.update(f"{kind}/{path}\0{text}\0".encode())
    config_hash = digest.hexdigest()[:16]
    objects += [
        deployment(options, config_hash),
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": _meta(name, namespace),
            "spec": {"minAvailable": 1, "selector": {"matchLabels": _labels(name)}},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(name, namespace),
            "spec": {
                "selector": _labels(name),
                "ports": [{"name": "https", "port": webhook.port, "targetPort": "https", "protocol": "TCP"}],
            },
        },
    ]
    configuration = webhook_configuration(ca_pem or b"", webhook)
    if options.cert_manager:
        configuration["metadata"]["annotations"] = {"cert-manager.io/inject-ca-from": f"{namespace}/{name}"}
        del configuration["webhooks"][0]["clientConfig"]["caBundle"]
    objects.append(configuration)
    return objects
