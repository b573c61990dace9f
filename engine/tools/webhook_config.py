"""The MutatingWebhookConfiguration that sends pods to secretpatch.

Names and defaults follow Flyte's webhook (docs/flyte-parity.md) so that an operator can
replace Flyte's webhook object by object: the configuration is named after the service, its
one webhook is `flyte-pod-webhook.flyte.org`, and it only sees pods labelled
`inject-flyte-secrets: "true"`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from ..core.admission import MUTATE_PATH
from ..core.requests import INJECT_LABEL

FLYTE_SERVICE = "flyte-pod-webhook"
FLYTE_NAMESPACE = "flyte"
WEBHOOK_NAME = "flyte-pod-webhook.flyte.org"
REINVOCATION_POLICIES = ("Never", "IfNeeded")
FAILURE_POLICIES = ("Fail", "Ignore")


@dataclass(frozen=True)
class WebhookOptions:
    service: str = FLYTE_SERVICE
    namespace: str = FLYTE_NAMESPACE
    name: str | None = None  # the configuration's name; Flyte uses the service name
    port: int = 443
    timeout_seconds: int = 5  # Flyte sets 30, which the API server would wait on every pod
    reinvocation_policy: str = "Never"
    failure_policy: str = "Fail"
    namespace_selector: dict[str, Any] = field(default_factory=dict)
    # Flyte's value; the chart and `manifests` say None, which is what the webhook has.
    side_effects: str = "NoneOnDryRun"


def webhook_configuration(ca_pem: bytes, options: WebhookOptions) -> dict[str, Any]:
    if options.reinvocation_policy not in REINVOCATION_POLICIES:
        raise ValueError(f"reinvocationPolicy must be one of {', '.join(REINVOCATION_POLICIES)}")
    if options.failure_policy not in FAILURE_POLICIES:
        raise ValueError(f"failurePolicy must be one of {', '.join(FAILURE_POLICIES)}")
    if not 1 <= options.timeout_seconds <= 30:
        raise ValueError("timeoutSeconds must be between 1 and 30 (the API server's limits)")
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {
            "name": options.name or options.service,
            "labels": {"app.kubernetes.io/name": "secretpatch"},
        },
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "clientConfig": {
                    "service": {
                        "name": options.service,
                        "namespace": options.namespace,
                        "path": MUTATE_PATH,
                        "port": options.port,
                    },
                    "caBundle": base64.b64encode(ca_pem).decode("ascii"),
                },
                "rules": [
                    {
                        "operations": ["CREATE"],
                        "apiGroups": ["*"],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                    }
                ],
                "failurePolicy": options.failure_policy,
                "sideEffects": options.side_effects,
                "admissionReviewVersions": ["v1", "v1beta1"],
                "objectSelector": {"matchLabels": {INJECT_LABEL: "true"}},
                "namespaceSelector": options.namespace_selector,
                "timeoutSeconds": options.timeout_seconds,
                "reinvocationPolicy": options.reinvocation_policy,
            }
        ],
    }
