"""A stand-in for the Kubernetes API server, on 127.0.0.1, with just enough for helm's
server-side dry run: the discovery documents of the kinds the chart renders, and GET of
objects by name (404 unless one was put in `objects`), and for `secretpatch cluster-certs`
creating (POST), replacing (PUT) and JSON-patching (PATCH) them.

Helm's `lookup` is how the chart reuses its certificate Secret on upgrade, and it only
answers against an API server: this lets tests run the real helm against a cluster that holds
a given Secret, with no cluster at hand; and `cluster-certs` to run its calls against
something that keeps what it writes. It answers nothing else.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# group/version -> (resource, kind, namespaced), for the kinds the chart renders.
RESOURCES: dict[str, list[tuple[str, str, bool]]] = {
    "v1": [
        ("secrets", "Secret", True),
        ("configmaps", "ConfigMap", True),
        ("services", "Service", True),
        ("serviceaccounts", "ServiceAccount", True),
    ],
    "apps/v1": [("deployments", "Deployment", True)],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    "autoscaling/v2": [("horizontalpodautoscalers", "HorizontalPodAutoscaler", True)],
    "admissionregistration.k8s.io/v1": [
        ("mutatingwebhookconfigurations", "MutatingWebhookConfiguration", False)
    ],
    "networking.k8s.io/v1": [("networkpolicies", "NetworkPolicy", True)],
}
NOT_FOUND = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}


class FakeAPI:
    def __init__(self) -> None:
        # "/api/v1/namespaces/<ns>/secrets/<name>" (the path helm GETs) -> the object
        self.objects: dict[str, dict[str, Any]] = {}
        self.paths: list[str] = []
        self.writes: list[tuple[str, str]] = []
        self.url = ""  # set once serving

    def put(self, obj: dict[str, Any]) -> None:
        kind, meta = obj["kind"], obj["metadata"]
        for version, kinds in RESOURCES.items():
            for resource, each, namespaced in kinds:
                if each == kind and obj["apiVersion"] == version:
                    base = "/api/v1" if version == "v1" else f"/apis/{version}"
                    where = f"/namespaces/{meta['namespace']}" if namespaced else ""
                    self.objects[f"{base}{where}/{resource}/{meta['name']}"] = obj
                    return
        raise ValueError(f"the stand-in API has no {kind}")

    def answer(self, path: str) -> tuple[int, dict[str, Any]]:
        self.paths.append(path)
        if path == "/version":
            return 200, {"major": "1", "minor": "37", "gitVersion": "v1.37.0", "platform": "linux/amd64"}
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if path == "/apis":
            groups = [
                {
                    "name": gv.split("/")[0],
                    "versions": [{"groupVersion": gv, "version": gv.split("/")[1]}],
                    "preferredVersion": {"groupVersion": gv, "version": gv.split("/")[1]},
                }
                for gv in RESOURCES
                if "/" in gv
            ]
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        version = "v1" if path == "/api/v1" else path.removeprefix("/apis/")
        if version in RESOURCES:
            listed = [
                {"name": r, "singularName": k.lower(), "namespaced": ns, "kind": k, "verbs": ["get", "list"]}
                for r, k, ns in RESOURCES[version]
            ]
            return 200, {"kind": "APIResourceList", "groupVersion": version, "resources": listed}
        found = self.objects.get(path)
        return (200, found) if found is not None else (404, NOT_FOUND)

    def write(self, method: str, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        import jsonpatch

        self.writes.append((method, path))
        if method == "POST":
            path = f"{path}/{body['metadata']['name']}"
            if path in self.objects:
                return 409, {"kind": "Status", "code": 409, "message": "already exists"}
            self.objects[path] = body
            return 201, body
        if path not in self.objects:
            return 404, NOT_FOUND
        if method == "PUT":
            self.objects[path] = body
        else:  # PATCH, application/json-patch+json
            self.objects[path] = jsonpatch.apply_patch(self.objects[path], body)
        return 200, self.objects[path]


@contextmanager
def serving(tmp_path: Path) -> Iterator[tuple[FakeAPI, Path]]:
    """A running stand-in and a kubeconfig file that points at it."""
    api = FakeAPI()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.reply(*api.answer(self.path.split("?")[0]))

        def do_POST(self) -> None:
            self.written()

        do_PUT = do_PATCH = do_POST

        def written(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"null")
            self.reply(*api.write(self.command, self.path.split("?")[0], body))

        def reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    api.url = f"http://127.0.0.1:{server.server_port}"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: stand-in, cluster: {{server: 'http://127.0.0.1:{server.server_port}'}}}}]\n"
        "users: [{name: stand-in, user: {}}]\n"
        "contexts: [{name: stand-in, context: {cluster: stand-in, user: stand-in}}]\n"
        "current-context: stand-in\n"
    )
    try:
        yield api, kubeconfig
    finally:
        server.shutdown()
        server.server_close()
