"""The webhook's certificates kept in the cluster by the cluster itself: what the chart's
certificate Job runs (`secretpatch cluster-certs`) after each install and upgrade.

A chart that generates certificates while it renders makes new ones at each render where it
cannot look up the old ones (Argo CD and other tools that run `helm template`). This keeps
them out of the rendered objects: the Secret is made once, kept while its certificate is
sound and more than RENEW_BEFORE from expiry, and the CA is written into the webhook
configuration, which the chart renders without a caBundle.
"""

from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from . import certs
from .kubeapi import KubeAPI

RENEW_BEFORE = datetime.timedelta(days=30)
WEBHOOKS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"


@dataclass(frozen=True)
class Outcome:
    secret: str  # "kept", "created" or "replaced", and why
    webhooks: int  # webhooks of the configuration whose caBundle was written


def _sound(data: dict[str, str], service: str, namespace: str, now: datetime.datetime) -> str | None:
    """None when the Secret's pair can be kept, else why not."""
    try:
        ca = x509.load_pem_x509_certificate(base64.b64decode(data["ca.crt"]))
        cert = x509.load_pem_x509_certificate(base64.b64decode(data["tls.crt"]))
        base64.b64decode(data["tls.key"], validate=True)
        cert.verify_directly_issued_by(ca)
    except (KeyError, ValueError, TypeError, InvalidSignature) as exc:
        return f"its certificates are not a usable pair ({type(exc).__name__})"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    missing = set(certs.dns_names(service, namespace)) - set(sans.get_values_for_type(x509.DNSName))
    if missing:
        return f"its certificate is not for {', '.join(sorted(missing))}"
    if cert.not_valid_after_utc - now < RENEW_BEFORE:
        return f"its certificate expires at {cert.not_valid_after_utc.isoformat()}"
    return None


def ensure(
    api: KubeAPI,
    *,
    namespace: str,
    secret_name: str,
    webhook_name: str,
    service: str,
    days: int,
    now: datetime.datetime | None = None,
) -> Outcome:
    """Make or keep the Secret, then put its CA into every webhook of the configuration."""
    now = now or datetime.datetime.now(datetime.UTC)
    path = f"/api/v1/namespaces/{namespace}/secrets/{secret_name}"
    existing = api.call("GET", path)
    why = (
        "it does not exist"
        if existing is None
        else _sound(existing.get("data") or {}, service, namespace, now)
    )
    if why is None:
        ca_b64 = existing["data"]["ca.crt"]
        state = "kept"
    else:
        bundle = certs.generate(service, namespace, days=days)
        body = certs.secret_manifest(bundle, secret_name, namespace, service)
        if existing is None:
            api.call("POST", f"/api/v1/namespaces/{namespace}/secrets", body)
            state = f"created ({why})"
        else:
            body["metadata"]["resourceVersion"] = existing["metadata"].get("resourceVersion")
            api.call("PUT", path, body)
            state = f"replaced ({why})"
        ca_b64 = body["data"]["ca.crt"]
    configuration = api.call("GET", f"{WEBHOOKS}/{webhook_name}")
    if configuration is None:
        raise LookupError(f"no MutatingWebhookConfiguration {webhook_name!r}; install the chart first")
    patch = [
        {"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": ca_b64}
        for i, hook in enumerate(configuration.get("webhooks") or [])
        if hook.get("clientConfig", {}).get("caBundle") != ca_b64
    ]
    if patch:
        api.call("PATCH", f"{WEBHOOKS}/{webhook_name}", patch, "application/json-patch+json")
    return Outcome(state, len(patch))
