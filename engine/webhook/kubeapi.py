"""The few Kubernetes API calls `secretpatch cluster-certs` makes: read, create and replace
one Secret, and put a CA into a MutatingWebhookConfiguration.

In a pod it authenticates with the pod's ServiceAccount (its token and the cluster's CA under
/var/run/secrets/kubernetes.io/serviceaccount); elsewhere it can talk to `kubectl proxy`
(`--api-server http://127.0.0.1:8001`), which authenticates for it. The standard library is
enough for four calls, so the server extra needs no Kubernetes client.
"""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TIMEOUT = 30.0


class APIError(Exception):
    """A call the API server refused or could not answer; the message says which and why."""


class KubeAPI:
    def __init__(self, server: str, token: str | None = None, ca_file: Path | None = None) -> None:
        if not server.startswith(("https://", "http://")):
            raise APIError(f"--api-server {server!r} is not an http:// or https:// URL")
        self.server = server.rstrip("/")
        self.token = token
        self.context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None

    @classmethod
    def from_environment(cls, server: str | None) -> KubeAPI:
        """`server` (such as kubectl proxy's), or the cluster's API from inside a pod."""
        if server:
            return cls(server)
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
        if not host or not port:
            raise APIError(
                "not in a pod (KUBERNETES_SERVICE_HOST is not set); give --api-server, such as "
                "http://127.0.0.1:8001 from `kubectl proxy`"
            )
        try:
            token = (SERVICE_ACCOUNT / "token").read_text().strip()
        except OSError as exc:
            raise APIError(f"cannot read the ServiceAccount token: {exc.strerror}") from None
        host = f"[{host}]" if ":" in host else host
        return cls(f"https://{host}:{port}", token, SERVICE_ACCOUNT / "ca.crt")

    def call(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        """The decoded answer; None for 404 on GET."""
        data = None if body is None else json.dumps(body).encode()
        # The scheme is http or https: checked when the server was given.
        request = urllib.request.Request(self.server + path, data=data, method=method)  # noqa: S310
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", content_type)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT, context=self.context) as answer:  # noqa: S310
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and method == "GET":
                return None
            try:
                reason = json.loads(exc.read()).get("message", "")
            except (ValueError, AttributeError):
                reason = ""
            raise APIError(f"{method} {path}: {exc.code} {reason or exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise APIError(f"{method} {path}: {getattr(exc, 'reason', exc)}") from None
